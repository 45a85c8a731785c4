package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rtnl is a route netlink socket (rtnetlink(7)) for the few requests one
// lookup makes in a row: the route to an address, one interface, the
// address list. One socket serves them all, opened in the network
// namespace of the calling thread and bound to it from then on.
//
// Why not github.com/vishvananda/netlink (which this package used): each
// of its package-level calls opens, binds and closes a socket of its own,
// registers it with Go's poller and gives each receive a 64 KiB buffer;
// and the interface behind a route was read with net.InterfaceByIndex, a
// dump of every interface on one more socket. The requests here are the
// ones ip(8) sends, for one interface where one is meant (RTM_GETLINK by
// index or by name, not a dump), and the kernel answers them while the
// request is being sent (rtnetlink handles a request in the sender's
// context), so a receive finds the answer already queued: the socket is
// left blocking and out of the poller, and a wait is only a guard against
// an answer that never comes (docs/PERFORMANCE.md, issue 20).
type rtnl struct {
	fd  int
	seq uint32
	buf []byte
}

// rtnlTimeout bounds the wait for one answer: the kernel queues it before
// the request's send returns, so this only guards against a lost one.
const rtnlTimeout = 10 * time.Second

// From linux/rtnetlink.h and linux/if_link.h.
const (
	rtextFilterSkipStats = 1 << 3 // RTEXT_FILTER_SKIP_STATS (Linux 4.19): no counters in the answer
	rtaxMTU              = 2      // RTAX_MTU in RTA_METRICS
)

func openRtnl() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening a route netlink socket: %w", err)
	}
	return &rtnl{fd: fd, buf: make([]byte, 32<<10)}, nil
}

func (r *rtnl) close() { unix.Close(r.fd) }

// request sends one request of type typ (body: the family header and its
// attributes) and calls each for every answer, until the answer is
// complete: one message, or for a dump (unix.NLM_F_DUMP in flags) all of
// them up to NLMSG_DONE. An error from the kernel comes back as its errno.
func (r *rtnl) request(typ, flags uint16, body []byte, each func(m *syscall.NetlinkMessage) error) error {
	r.seq++
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:6], typ)
	binary.NativeEndian.PutUint16(msg[6:8], unix.NLM_F_REQUEST|flags)
	binary.NativeEndian.PutUint32(msg[8:12], r.seq)
	msg = append(msg, body...)
	if err := unix.Sendto(r.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	dump := flags&unix.NLM_F_DUMP != 0
	for {
		n, err := r.receive()
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(r.buf[:n])
		if err != nil {
			return fmt.Errorf("parsing the kernel's answer: %w", err)
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != r.seq {
				continue // not the answer to this request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				// A dump that failed part-way says so here.
				if len(m.Data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code < 0 {
						return unix.Errno(-code)
					}
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return errors.New("a short netlink error message")
				}
				if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
			if err := each(m); err != nil {
				return err
			}
			if !dump {
				return nil
			}
		}
	}
}

// receive reads one datagram into r.buf. The answer is normally queued
// already; otherwise it waits, up to rtnlTimeout, in poll(2).
func (r *rtnl) receive() (int, error) {
	deadline := time.Now().Add(rtnlTimeout)
	for {
		// MSG_TRUNC: n is the datagram's length even if r.buf is
		// shorter (it is not: the kernel makes a dump's datagrams at
		// most 32 KiB, and a single answer here is a few KiB).
		n, _, err := unix.Recvfrom(r.fd, r.buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		switch {
		case err == nil && n > len(r.buf):
			return 0, fmt.Errorf("an answer of %d bytes, more than %d", n, len(r.buf))
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return 0, err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, errors.New("the kernel did not answer a route netlink request")
		}
		fds := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(wait.Milliseconds())+1); err != nil && err != unix.EINTR {
			return 0, err
		}
	}
}

// rtAttrs parses m's attributes (RTM_NEWROUTE, RTM_NEWLINK, RTM_NEWADDR)
// by type; the last of a type wins.
func rtAttrs(m *syscall.NetlinkMessage) (map[uint16][]byte, error) {
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return nil, fmt.Errorf("parsing the kernel's answer: %w", err)
	}
	out := make(map[uint16][]byte, len(attrs))
	for _, a := range attrs {
		out[a.Attr.Type&^unix.NLA_F_NESTED] = a.Value
	}
	return out, nil
}

// rtRoute is the part of an RTM_NEWROUTE answer a Route needs.
type rtRoute struct {
	typ          uint8
	oif, mtu     int
	src, gateway netip.Addr
}

// getRoute asks how the kernel would send to dst: RTM_GETROUTE with
// RTM_F_LOOKUP_TABLE, as `ip route get` sends it.
func (r *rtnl) getRoute(dst netip.Addr) (rtRoute, error) {
	fam := byte(unix.AF_INET)
	if dst.Is6() {
		fam = unix.AF_INET6
	}
	a := dst.AsSlice()
	body := make([]byte, unix.SizeofRtMsg, unix.SizeofRtMsg+unix.SizeofRtAttr+len(a))
	body[0], body[1] = fam, byte(8*len(a)) // rtm_family, rtm_dst_len
	binary.NativeEndian.PutUint32(body[8:12], unix.RTM_F_LOOKUP_TABLE)
	body = appendRtAttr(body, unix.RTA_DST, a)
	var rt rtRoute
	found := false
	err := r.request(unix.RTM_GETROUTE, 0, body, func(m *syscall.NetlinkMessage) (err error) {
		rt, err = parseRoute(m)
		found = err == nil
		return err
	})
	if err == nil && !found {
		err = errNoRoute
	}
	return rt, err
}

var errNoRoute = errors.New("the kernel answered with no route")

// parseRoute reads an RTM_NEWROUTE answer.
func parseRoute(m *syscall.NetlinkMessage) (rtRoute, error) {
	var rt rtRoute
	if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
		return rt, fmt.Errorf("an answer of type %d to a route request", m.Header.Type)
	}
	attrs, err := rtAttrs(m)
	if err != nil {
		return rt, err
	}
	rt.typ = m.Data[7] // rtm_type
	if v := attrs[unix.RTA_OIF]; len(v) == 4 {
		rt.oif = int(binary.NativeEndian.Uint32(v))
	}
	rt.src, _ = netip.AddrFromSlice(attrs[unix.RTA_PREFSRC])
	rt.gateway, _ = netip.AddrFromSlice(attrs[unix.RTA_GATEWAY])
	if v, ok := attrs[unix.RTA_METRICS]; ok {
		rt.mtu = metricsMTU(v)
	}
	return rt, nil
}

// metricsMTU is RTAX_MTU from an RTA_METRICS attribute's nested ones, 0
// if absent.
func metricsMTU(b []byte) int {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4])
		if l < unix.SizeofRtAttr || l > len(b) {
			return 0
		}
		if typ == rtaxMTU && l >= unix.SizeofRtAttr+4 {
			return int(binary.NativeEndian.Uint32(b[4:8]))
		}
		b = b[min(rtaAlign(l), len(b)):]
	}
	return 0
}

// rtLink is the part of an RTM_NEWLINK answer a Route needs.
type rtLink struct {
	index, mtu int
	name       string
	flags      uint32 // ifi_flags: unix.IFF_LOOPBACK, ...
	hwaddr     []byte // IFLA_ADDRESS: 6 bytes on an Ethernet-like device, absent on some
}

// getLink reads one interface, by index or (index 0) by name: one
// RTM_GETLINK without the counters, not a dump of every interface.
func (r *rtnl) getLink(index int, name string) (rtLink, error) {
	body := make([]byte, unix.SizeofIfInfomsg, unix.SizeofIfInfomsg+3*unix.SizeofRtAttr+len(name)+8)
	binary.NativeEndian.PutUint32(body[4:8], uint32(int32(index))) // ifi_index
	if name != "" {
		body = appendRtAttr(body, unix.IFLA_IFNAME, append([]byte(name), 0))
	}
	body = appendRtAttr(body, unix.IFLA_EXT_MASK, binary.NativeEndian.AppendUint32(nil, rtextFilterSkipStats))
	var l rtLink
	err := r.request(unix.RTM_GETLINK, 0, body, func(m *syscall.NetlinkMessage) (err error) {
		l, err = parseLink(m)
		return err
	})
	if err == nil && l.index == 0 {
		err = errors.New("the kernel answered with no interface")
	}
	return l, err
}

// parseLink reads an RTM_NEWLINK answer.
func parseLink(m *syscall.NetlinkMessage) (rtLink, error) {
	var l rtLink
	if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
		return l, fmt.Errorf("an answer of type %d to an interface request", m.Header.Type)
	}
	attrs, err := rtAttrs(m)
	if err != nil {
		return l, err
	}
	l.index = int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
	l.flags = binary.NativeEndian.Uint32(m.Data[8:12])
	if v := attrs[unix.IFLA_MTU]; len(v) == 4 {
		l.mtu = int(binary.NativeEndian.Uint32(v))
	}
	l.name = cString(attrs[unix.IFLA_IFNAME])
	l.hwaddr = slices.Clone(attrs[unix.IFLA_ADDRESS])
	return l, nil
}

// linkByIndex reads interface index on a socket of its own: one request
// for that interface where net.InterfaceByIndex dumps them all.
func linkByIndex(index int) (rtLink, error) {
	nl, err := openRtnl()
	if err != nil {
		return rtLink{}, err
	}
	defer nl.close()
	return nl.getLink(index, "")
}

// rtAddr is one address of an RTM_NEWADDR answer.
type rtAddr struct {
	index int
	addr  netip.Addr // IFA_LOCAL, else IFA_ADDRESS (a point-to-point link's IFA_ADDRESS is its peer's)
	scope uint8
	flags uint32 // IFA_FLAGS if present, else ifa_flags
}

// addresses dumps this namespace's addresses of family fam
// (unix.AF_UNSPEC: both).
func (r *rtnl) addresses(fam byte) ([]rtAddr, error) {
	body := make([]byte, unix.SizeofIfAddrmsg)
	body[0] = fam
	var out []rtAddr
	err := r.request(unix.RTM_GETADDR, unix.NLM_F_DUMP, body, func(m *syscall.NetlinkMessage) error {
		a, ok, err := parseAddr(m)
		if ok {
			out = append(out, a)
		}
		return err
	})
	return out, err
}

// parseAddr reads one message of an RTM_GETADDR dump; ok is false for
// one that holds no address.
func parseAddr(m *syscall.NetlinkMessage) (a rtAddr, ok bool, err error) {
	if m.Header.Type != unix.RTM_NEWADDR || len(m.Data) < unix.SizeofIfAddrmsg {
		return a, false, nil
	}
	attrs, err := rtAttrs(m)
	if err != nil {
		return a, false, err
	}
	a = rtAddr{scope: m.Data[3], flags: uint32(m.Data[2]), index: int(binary.NativeEndian.Uint32(m.Data[4:8]))}
	ip, ok := netip.AddrFromSlice(attrs[unix.IFA_LOCAL])
	if !ok {
		ip, ok = netip.AddrFromSlice(attrs[unix.IFA_ADDRESS])
	}
	if !ok {
		return a, false, nil
	}
	a.addr = ip.Unmap()
	if v := attrs[unix.IFA_FLAGS]; len(v) == 4 {
		a.flags = binary.NativeEndian.Uint32(v)
	}
	return a, true, nil
}

func rtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// appendRtAttr appends one attribute, padded to its alignment.
func appendRtAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// cString is a NUL-terminated attribute's string.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// From linux/neighbour.h.
const (
	ndaDst    = 1 // NDA_DST
	ndaLLAddr = 2 // NDA_LLADDR
	// usableNUD are the states in which an entry's address may be used:
	// reachable, stale (still valid, the kernel is merely due to confirm
	// it, RFC 4861 §7.3.2), delayed, being probed, or permanent; not
	// incomplete nor failed.
	usableNUD = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT
)

// getNeighbour reads addr's entry on interface ifindex from the
// neighbour table: one RTM_GETNEIGH for that address (Linux 4.20,
// `ip neigh get`), not a dump of the table. It returns the 6-byte
// link-layer address of a usable entry (usableNUD), or nil
// when there is none (no entry, or one not resolved).
func (r *rtnl) getNeighbour(ifindex int, addr netip.Addr) ([]byte, error) {
	addr = addr.Unmap()
	fam := byte(unix.AF_INET)
	if addr.Is6() {
		fam = unix.AF_INET6
	}
	body := make([]byte, unix.SizeofNdMsg, unix.SizeofNdMsg+unix.SizeofRtAttr+16)
	body[0] = fam
	binary.NativeEndian.PutUint32(body[4:8], uint32(int32(ifindex))) // ndm_ifindex
	body = appendRtAttr(body, ndaDst, addr.AsSlice())
	var mac []byte
	err := r.request(unix.RTM_GETNEIGH, 0, body, func(m *syscall.NetlinkMessage) error {
		var err error
		mac, err = parseNeighbour(m)
		return err
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	return mac, err
}

// parseNeighbour reads an RTM_NEWNEIGH answer: the link-layer address of
// a usable entry with a 6-byte one, else nil.
func parseNeighbour(m *syscall.NetlinkMessage) ([]byte, error) {
	if m.Header.Type != unix.RTM_NEWNEIGH || len(m.Data) < unix.SizeofNdMsg {
		return nil, fmt.Errorf("an answer of type %d to a neighbour request", m.Header.Type)
	}
	state := binary.NativeEndian.Uint16(m.Data[8:10]) // ndm_state
	// The attributes follow the ndmsg (syscall.ParseNetlinkRouteAttr
	// knows no neighbour messages).
	var lladdr []byte
	for b := m.Data[unix.SizeofNdMsg:]; len(b) >= unix.SizeofRtAttr; {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil, errors.New("parsing the kernel's answer: a bad attribute length")
		}
		if binary.NativeEndian.Uint16(b[2:4])&^unix.NLA_F_NESTED == ndaLLAddr {
			lladdr = b[unix.SizeofRtAttr:l]
		}
		b = b[min(rtaAlign(l), len(b)):]
	}
	if state&usableNUD == 0 || len(lladdr) != 6 {
		return nil, nil
	}
	return slices.Clone(lladdr), nil
}
