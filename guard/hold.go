package guard

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// PortHold is the guard of one address and port that no kernel socket
// has: tcpcraft holds the port with a TCP socket of its own, bound to it
// and listening, whose socket filter drops every segment it is given.
//
// For each inbound segment the kernel looks up a socket: the connection's
// own (there is none: the connection is tcpcraft's), then a listener. It
// finds this one, and runs the listener's filter before anything a
// listener does (tcp_filter in tcp_v4_rcv and tcp_v6_rcv,
// net/ipv4/tcp_ipv4.c and net/ipv6/tcp_ipv6.c, before the TCP_LISTEN
// branch): the segment is discarded there, with no RST, no SYN-ACK and no
// SYN cookie. AF_PACKET has seen the frame on its way in, so tcpcraft
// still reads it. The effect is the firewall rule's, and so is its scope:
// segments to that address and port, nothing else of the host.
//
// Why a socket, where the port is free: it is the port's owner in the
// kernel's eyes, so nothing of it can outlive the process (the kernel
// closes it on any exit, SIGKILL included: there is nothing to clean up);
// no other program, and no connection of the kernel's own, can take the
// port while tcpcraft uses it; `ss -ltnp` shows it, named by process; and
// it costs six or seven system calls (0.03-0.04 ms), where the nf_tables
// table cost a commit to make and one to delete, each serialised on the
// namespace's commit mutex behind the RCU grace periods of earlier commits
// (back to back, runs waited for each other's), plus the patching of
// kernel text for the first input hook of a machine (docs/PERFORMANCE.md, "The guard as a
// socket").
type PortHold struct {
	local netip.AddrPort

	mu sync.Mutex
	fd int // -1 once closed
}

// dropAll is the hold's socket filter: accept 0 bytes of every packet.
var dropAll = []bpf.Instruction{bpf.RetConstant{Val: 0}}

// HoldPort holds local for the calling thread's network namespace, as
// Install would guard it; the address selects as for Install:
//
//   - an IPv4 or IPv6 address: segments to that address and port (an
//     IPv4-mapped IPv6 address counts as IPv4);
//   - 0.0.0.0 or ::: segments of that family to the port, whatever the
//     address;
//   - the zero netip.Addr: segments of both families to the port (one
//     IPv6 socket that also takes IPv4).
//
// It fails, and leaves nothing, when the port cannot be held: a kernel
// socket has it (EADDRINUSE; the firewall rule, Install, is then the way
// to keep the kernel quiet), the address is not this host's, or the port
// is privileged and the process may not bind it. An address with a zone
// is refused, as Install refuses it.
func HoldPort(local netip.AddrPort) (*PortHold, error) {
	addr := local.Addr().Unmap()
	local = netip.AddrPortFrom(addr, local.Port())
	fail := func(err error) (*PortHold, error) {
		return nil, fmt.Errorf("holding port %s: %w", describe(local), err)
	}
	if local.Port() == 0 {
		return fail(errors.New("port 0"))
	}
	if addr.Zone() != "" {
		return fail(errors.New("an address with a zone cannot be held"))
	}
	family, sa, v6only := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: int(local.Port())}), 0
	switch {
	case addr.Is4():
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(local.Port()), Addr: addr.As4()}
	case addr.Is6():
		sa, v6only = &unix.SockaddrInet6{Port: int(local.Port()), Addr: addr.As16()}, 1
	}
	prog, err := bpf.Assemble(dropAll)
	if err != nil {
		return fail(err)
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fail(fmt.Errorf("socket: %w", err))
	}
	// The filter goes on, locked, before the socket is bound: there is no
	// moment when it listens without it.
	steps := []struct {
		what string
		do   func() error
	}{
		{"attaching the filter", func() error {
			return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]})
		}},
		{"locking the filter", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_LOCK_FILTER, 1) }},
		// A connection in TIME-WAIT whose socket allowed it too (a
		// server's: `listen` on the port of a server just stopped) does
		// not keep the port from us; a live socket that has it does.
		{"SO_REUSEADDR", func() error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) }},
		{"IPV6_V6ONLY", func() error {
			if family != unix.AF_INET6 {
				return nil
			}
			return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only)
		}},
		{"bind", func() error { return unix.Bind(fd, sa) }},
		{"listen", func() error { return unix.Listen(fd, 1) }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			_ = unix.Close(fd)
			return fail(fmt.Errorf("%s: %w", st.what, err))
		}
	}
	return &PortHold{local: local, fd: fd}, nil
}

// Local is the address and port held.
func (h *PortHold) Local() netip.AddrPort { return h.local }

// String says what is held, for the trace: "port 10.0.2.21:40000 held by a
// listening socket that drops what it is given".
func (h *PortHold) String() string {
	return "port " + describe(h.local) + " held by a listening socket that drops what it is given"
}

// Close lets the port go; the kernel answers its segments again from
// then on. Closing more than once is harmless.
func (h *PortHold) Close() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	if err != nil {
		return fmt.Errorf("letting port %s go: %w", describe(h.local), err)
	}
	return nil
}
