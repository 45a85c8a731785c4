package capture

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
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

// Why github.com/vishvananda/netlink and not `ip -j route get` or a
// hand-written RTM_GETROUTE: one request and one reply on a socket, no
// process to start, no output format to depend on, and the library's
// package-level calls open their socket on the calling thread, so they act
// in the namespace tcpcraft (or a test, inside lab.Do) runs in. The
// requests are the ones ip(8) sends (rtnetlink(7)).

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
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	if len(routes) == 0 {
		return Route{}, fmt.Errorf("route to %s: the kernel answered with no route", dst)
	}
	rt := routes[0]
	r := Route{Destination: dst, Local: rt.Type == unix.RTN_LOCAL, Index: rt.LinkIndex}
	switch rt.Type {
	case unix.RTN_UNICAST, unix.RTN_LOCAL:
	case unix.RTN_UNREACHABLE:
		return Route{}, fmt.Errorf("route to %s: %w", dst, unix.EHOSTUNREACH)
	case unix.RTN_PROHIBIT:
		return Route{}, fmt.Errorf("route to %s: %w", dst, unix.EACCES)
	case unix.RTN_BLACKHOLE:
		return Route{}, fmt.Errorf("route to %s: blackhole route", dst)
	default:
		return Route{}, fmt.Errorf("route to %s: route of type %d cannot be used", dst, rt.Type)
	}
	if a, ok := netip.AddrFromSlice(rt.Src); ok {
		r.Source = a.Unmap()
	}
	if a, ok := netip.AddrFromSlice(rt.Gw); ok && !a.IsUnspecified() {
		r.Gateway = a.Unmap()
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
	ifc, err := net.InterfaceByIndex(r.Index)
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: interface %d: %w", dst, r.Index, err)
	}
	r.Interface = ifc.Name
	r.MTU = ifc.MTU
	if rt.MTU > 0 {
		r.MTU = rt.MTU
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
	link, err := netlink.LinkByName(name)
	if _, ok := err.(netlink.LinkNotFoundError); ok {
		return Route{}, fmt.Errorf("%w: %s", ErrNoSuchInterface, name)
	}
	if err != nil {
		return Route{}, fmt.Errorf("interface %s: %w", name, err)
	}
	want6 := like.IsValid() && !like.Unmap().Is4()
	fam := netlink.FAMILY_V4
	if want6 {
		fam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, fam)
	if err != nil {
		return Route{}, fmt.Errorf("addresses of %s: %w", name, err)
	}
	var src netip.Addr
	for _, a := range addrs {
		ip, ok := usableSource(a)
		if !ok {
			continue
		}
		if !src.IsValid() || (a.Scope == unix.RT_SCOPE_UNIVERSE && !src.IsGlobalUnicast()) {
			src = ip
		}
	}
	if !src.IsValid() {
		return Route{}, fmt.Errorf("interface %s has no usable %s address", name, familyName(want6))
	}
	attrs := link.Attrs()
	return Route{Interface: attrs.Name, Index: attrs.Index, MTU: attrs.MTU, Source: src,
		Local: attrs.Flags&net.FlagLoopback != 0}, nil
}

// AddressRoute is the Route of the interface that holds addr, with addr as
// its source: where a listener on that address receives (`listen ADDR:PORT`).
func AddressRoute(addr netip.Addr) (Route, error) {
	addr = addr.Unmap()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return Route{}, fmt.Errorf("listing this host's addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			link, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return Route{}, fmt.Errorf("interface %d of %s: %w", a.LinkIndex, addr, err)
			}
			attrs := link.Attrs()
			return Route{Interface: attrs.Name, Index: attrs.Index, MTU: attrs.MTU, Source: addr,
				Local: attrs.Flags&net.FlagLoopback != 0}, nil
		}
	}
	return Route{}, fmt.Errorf("no interface has the address %v", addr)
}

// HostAddresses returns a test for "one of this host's addresses" (IPv4 or
// IPv6), as they are now, in the calling thread's namespace: a listener on
// every address answers only segments to those.
func HostAddresses() (func(netip.Addr) bool, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing this host's addresses: %w", err)
	}
	own := make(map[netip.Addr]bool)
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			own[ip.Unmap()] = true
		}
	}
	return func(a netip.Addr) bool { return own[a.Unmap()] }, nil
}

// usableSource is a's address if it can be a source address: any IPv4
// address; an IPv6 address that is neither link-local (it would need a
// zone) nor tentative, nor a duplicate (RFC 4862 §5.4).
func usableSource(a netlink.Addr) (netip.Addr, bool) {
	if a.IPNet == nil {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Addr{}, false
	}
	ip = ip.Unmap()
	if ip.Is6() && (ip.IsLinkLocalUnicast() || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0) {
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
