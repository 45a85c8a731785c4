package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Route is the kernel's answer to "how would you send to this address".
type Route struct {
	Destination netip.Addr
	Interface   string // e.g. "tcv-client", "lo"
	Index       int    // interface index
	MTU         int    // the route's MTU (e.g. a learned path MTU) if set, else the interface's
	Source      netip.Addr
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

// LookupRoute asks the kernel's routing table, in the network namespace of
// the calling thread, how it would send to dst — what `ip route get DST`
// prints.
//
// Why netlink and not `ip -j route get`: one request and one reply on a
// socket, no process to start, no output format to depend on, and it runs
// in the caller's thread namespace without the exec-from-a-locked-thread
// subtleties. The request is the same RTM_GETROUTE that ip(8) sends
// (rtnetlink(7)).
func LookupRoute(dst netip.Addr) (Route, error) {
	dst = dst.Unmap()
	if !dst.Is4() {
		return Route{}, fmt.Errorf("route to %s: not an IPv4 address", dst)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: netlink socket: %w", dst, err)
	}
	defer unix.Close(fd)
	// The kernel answers at once; the timeout only guards against a reply
	// that never comes.
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return Route{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Route{}, fmt.Errorf("route to %s: binding netlink socket: %w", dst, err)
	}

	const seq = 1
	req := routeRequest(dst, seq)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Route{}, fmt.Errorf("route to %s: sending RTM_GETROUTE: %w", dst, err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return Route{}, fmt.Errorf("route to %s: reading the reply: %w", dst, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return Route{}, fmt.Errorf("route to %s: malformed netlink reply: %w", dst, err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return Route{}, fmt.Errorf("route to %s: short netlink error", dst)
				}
				errno := -int32(binary.NativeEndian.Uint32(m.Data[:4]))
				if errno == 0 {
					continue // an acknowledgement, not an error
				}
				return Route{}, fmt.Errorf("route to %s: %w", dst, syscall.Errno(errno))
			case unix.RTM_NEWROUTE:
				return parseRoute(dst, m)
			}
		}
	}
}

// routeRequest builds an RTM_GETROUTE request for dst: nlmsghdr, rtmsg
// (family AF_INET, a /32 destination) and one RTA_DST attribute.
func routeRequest(dst netip.Addr, seq uint32) []byte {
	const attrLen = unix.SizeofRtAttr + 4
	size := unix.SizeofNlMsghdr + unix.SizeofRtMsg + attrLen
	b := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(size))
	ne.PutUint16(b[4:], unix.RTM_GETROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	rt := b[unix.SizeofNlMsghdr:]
	rt[0] = unix.AF_INET // rtm_family
	rt[1] = 32           // rtm_dst_len
	attr := rt[unix.SizeofRtMsg:]
	ne.PutUint16(attr[0:], attrLen)
	ne.PutUint16(attr[2:], unix.RTA_DST)
	a4 := dst.As4()
	copy(attr[unix.SizeofRtAttr:], a4[:])
	return b
}

// parseRoute reads an RTM_NEWROUTE reply.
func parseRoute(dst netip.Addr, m syscall.NetlinkMessage) (Route, error) {
	if len(m.Data) < unix.SizeofRtMsg {
		return Route{}, fmt.Errorf("route to %s: short rtmsg", dst)
	}
	rtm := (*unix.RtMsg)(unsafe.Pointer(&m.Data[0]))
	attrs, err := syscall.ParseNetlinkRouteAttr(&m)
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: malformed attributes: %w", dst, err)
	}
	r := Route{Destination: dst, Local: rtm.Type == unix.RTN_LOCAL}
	switch rtm.Type {
	case unix.RTN_UNICAST, unix.RTN_LOCAL:
	case unix.RTN_UNREACHABLE:
		return Route{}, fmt.Errorf("route to %s: %w", dst, unix.EHOSTUNREACH)
	case unix.RTN_PROHIBIT:
		return Route{}, fmt.Errorf("route to %s: %w", dst, unix.EACCES)
	case unix.RTN_BLACKHOLE:
		return Route{}, fmt.Errorf("route to %s: blackhole route", dst)
	default:
		return Route{}, fmt.Errorf("route to %s: route of type %d cannot be used", dst, rtm.Type)
	}
	routeMTU := 0
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_OIF:
			if len(a.Value) >= 4 {
				r.Index = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_PREFSRC:
			if addr, ok := netip.AddrFromSlice(a.Value); ok {
				r.Source = addr.Unmap()
			}
		case unix.RTA_GATEWAY:
			if addr, ok := netip.AddrFromSlice(a.Value); ok {
				r.Gateway = addr.Unmap()
			}
		case unix.RTA_METRICS:
			routeMTU = metricsMTU(a.Value)
		}
	}
	if r.Index == 0 {
		return Route{}, fmt.Errorf("route to %s: the kernel named no output interface", dst)
	}
	if !r.Source.IsValid() {
		return Route{}, fmt.Errorf("route to %s: the kernel chose no source address (does the interface have an IPv4 address?)", dst)
	}
	ifc, err := net.InterfaceByIndex(r.Index)
	if err != nil {
		return Route{}, fmt.Errorf("route to %s: interface %d: %w", dst, r.Index, err)
	}
	r.Interface = ifc.Name
	r.MTU = ifc.MTU
	if routeMTU > 0 {
		r.MTU = routeMTU
	}
	return r, nil
}

// metricsMTU finds RTAX_MTU in the nested RTA_METRICS attributes; 0 if
// absent.
func metricsMTU(b []byte) int {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		t := binary.NativeEndian.Uint16(b[2:])
		if l < unix.SizeofRtAttr || l > len(b) {
			return 0
		}
		if t == unix.RTAX_MTU && l >= unix.SizeofRtAttr+4 {
			return int(binary.NativeEndian.Uint32(b[unix.SizeofRtAttr:]))
		}
		next := align(l, unix.NLMSG_ALIGNTO)
		if next > len(b) {
			return 0
		}
		b = b[next:]
	}
	return 0
}
