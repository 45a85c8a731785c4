package capture

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Route is the kernel's answer to "how would you send to this address":
// the interface, this host's address on it and the MTU.
type Route struct {
	// Destination is the address asked about (invalid for a Route made
	// from an interface or an address alone).
	Destination netip.Addr
	Interface   string // e.g. "tcv-client", "lo"
	Index       int    // interface index
	MTU         int    // the route's MTU (e.g. a learned path MTU) if set, else the interface's
	// Source is this host's address for the route: the kernel's choice
	// (RTA_PREFSRC: RFC 6724 source address selection for IPv6), or the
	// address the Route was made from.
	Source netip.Addr
	// Gateway is the router the packet goes to; invalid when the
	// destination is on the link (or local).
	Gateway netip.Addr
	// Local is true when the destination is an address of this host (route
	// type "local"): packets go through the loopback interface.
	Local bool
}

// NextHop is where the packet is handed on the link: the gateway, or the
// destination itself when it is on the link.
func (r Route) NextHop() netip.Addr {
	if r.Gateway.IsValid() {
		return r.Gateway
	}
	return r.Destination
}

// Why netlink and not `ip -j route get`: one request and one reply on a
// socket, no process to start, no output format to depend on. Each lookup
// below opens one route netlink socket on the calling thread (so it acts
// in the namespace tcpcraft, or a test inside lab.Do, runs in) and makes
// all its requests on it (rtnl). The requests are the ones ip(8) sends
// (rtnetlink(7)).

// LookupRoute asks the kernel's routing table, in the network namespace of
// the calling thread, how it would send to dst — what `ip route get DST`
// prints — for IPv4 and IPv6 alike (an IPv4-mapped address counts as
// IPv4). Link-local IPv6 destinations need a zone and are refused.
func LookupRoute(dst netip.Addr) (Route, error) {
	dst = dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() {
		return Route{}, fmt.Errorf("route to %v: not a destination address", dst)
	}
	if dst.Zone() != "" || (dst.Is6() && dst.IsLinkLocalUnicast()) {
		return Route{}, fmt.Errorf("route to %s: link-local IPv6 addresses are not supported", dst)
	}
	nl, err := openRtnl()
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	defer nl.close()
	rt, err := nl.getRoute(dst)
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	r := Route{Destination: dst, Local: rt.typ == unix.RTN_LOCAL, Index: rt.oif}
	switch rt.typ {
	case unix.RTN_UNICAST, unix.RTN_LOCAL:
	case unix.RTN_UNREACHABLE:
		return Route{}, fmt.Errorf("route to %s: %w", dst, unix.EHOSTUNREACH)
	case unix.RTN_PROHIBIT:
		return Route{}, fmt.Errorf("route to %s: %w", dst, unix.EACCES)
	case unix.RTN_BLACKHOLE:
		return Route{}, fmt.Errorf("route to %s: blackhole route", dst)
	default:
		return Route{}, fmt.Errorf("route to %s: route of type %d cannot be used", dst, rt.typ)
	}
	if rt.src.IsValid() {
		r.Source = rt.src.Unmap()
	}
	if rt.gateway.IsValid() && !rt.gateway.IsUnspecified() {
		r.Gateway = rt.gateway.Unmap()
	}
	if r.Index == 0 {
		return Route{}, fmt.Errorf("route to %s: the kernel named no output interface", dst)
	}
	if !r.Source.IsValid() || r.Source.Is4() != dst.Is4() {
		return Route{}, fmt.Errorf("route to %s: the kernel chose no source address (does the interface have an %s address?)", dst, family(dst))
	}
	if r.Source.Is6() && r.Source.IsLinkLocalUnicast() && !dst.IsLoopback() {
		return Route{}, fmt.Errorf("route to %s: the only source address is the link-local %s; give the interface a global IPv6 address", dst, r.Source)
	}
	// The interface's name and MTU: one request for that interface, on
	// the same socket.
	ifc, err := nl.getLink(r.Index, "")
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: interface %d: %w", dst, r.Index, err)
	}
	r.Interface = ifc.name
	r.MTU = ifc.mtu
	if rt.mtu > 0 {
		r.MTU = rt.mtu
	}
	return r, nil
}

// ErrNoSuchInterface is the error of InterfaceRoute for a name no
// interface has.
var ErrNoSuchInterface = errors.New("no such network interface")

// InterfaceRoute is the Route of interface name for the family of like
// (IPv4 when like is invalid): its index and MTU, and its first address of
// that family that can be a source — for IPv6 not link-local, not still
// tentative (duplicate address detection) nor failed DAD, and of global
// scope where there is one. It is what `--iface` means.
func InterfaceRoute(name string, like netip.Addr) (Route, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return Route{}, fmt.Errorf("%w: %s", ErrNoSuchInterface, name)
	}
	nl, err := openRtnl()
	if err != nil {
		return Route{}, fmt.Errorf("interface %s: %w", name, err)
	}
	defer nl.close()
	link, err := nl.getLink(0, name)
	if errors.Is(err, unix.ENODEV) {
		return Route{}, fmt.Errorf("%w: %s", ErrNoSuchInterface, name)
	}
	if err != nil {
		return Route{}, fmt.Errorf("interface %s: %w", name, err)
	}
	want6 := like.IsValid() && !like.Unmap().Is4()
	fam := byte(unix.AF_INET)
	if want6 {
		fam = unix.AF_INET6
	}
	addrs, err := nl.addresses(fam)
	if err != nil {
		return Route{}, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var src netip.Addr
	for _, a := range addrs {
		if a.index != link.index {
			continue
		}
		ip, ok := usableSource(a)
		if !ok {
			continue
		}
		if !src.IsValid() || (a.scope == unix.RT_SCOPE_UNIVERSE && !src.IsGlobalUnicast()) {
			src = ip
		}
	}
	if !src.IsValid() {
		return Route{}, fmt.Errorf("interface %s has no usable %s address", name, familyName(want6))
	}
	return Route{Interface: link.name, Index: link.index, MTU: link.mtu, Source: src,
		Local: link.flags&unix.IFF_LOOPBACK != 0}, nil
}

// AddressRoute is the Route of the interface that holds addr, with addr as
// its source: where a listener on that address receives (`listen ADDR:PORT`).
func AddressRoute(addr netip.Addr) (Route, error) {
	addr = addr.Unmap()
	nl, err := openRtnl()
	if err != nil {
		return Route{}, fmt.Errorf("listing this host's addresses: %w", err)
	}
	defer nl.close()
	addrs, err := nl.addresses(unix.AF_UNSPEC)
	if err != nil {
		return Route{}, fmt.Errorf("listing this host's addresses: %w", err)
	}
	for _, a := range addrs {
		if a.addr == addr {
			link, err := nl.getLink(a.index, "")
			if err != nil {
				return Route{}, fmt.Errorf("interface %d of %s: %w", a.index, addr, err)
			}
			return Route{Interface: link.name, Index: link.index, MTU: link.mtu, Source: addr,
				Local: link.flags&unix.IFF_LOOPBACK != 0}, nil
		}
	}
	return Route{}, fmt.Errorf("no interface has the address %v", addr)
}

// HostAddresses returns a test for "one of this host's addresses" (IPv4 or
// IPv6), as they are now, in the calling thread's namespace: a listener on
// every address answers only segments to those.
func HostAddresses() (func(netip.Addr) bool, error) {
	nl, err := openRtnl()
	if err != nil {
		return nil, fmt.Errorf("listing this host's addresses: %w", err)
	}
	defer nl.close()
	addrs, err := nl.addresses(unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("listing this host's addresses: %w", err)
	}
	own := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		own[a.addr] = true
	}
	return func(a netip.Addr) bool { return own[a.Unmap()] }, nil
}

// usableSource is a's address if it can be a source address: any IPv4
// address; an IPv6 address that is neither link-local (it would need a
// zone) nor tentative, nor a duplicate (RFC 4862 §5.4).
func usableSource(a rtAddr) (netip.Addr, bool) {
	ip := a.addr
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	if ip.Is6() && (ip.IsLinkLocalUnicast() || a.flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0) {
		return netip.Addr{}, false
	}
	return ip, true
}

func family(a netip.Addr) string { return familyName(!a.Unmap().Is4()) }

func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}
