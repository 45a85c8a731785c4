package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LinkSender sends complete IPv4 and IPv6 packets out of one interface
// through an AF_PACKET socket, many per system call (sendmmsg(2)), each to
// the link-layer address given with it; the kernel writes the link header
// (SOCK_DGRAM). With PACKET_QDISC_BYPASS the packets go straight to the
// device's transmit function: no routing, no netfilter hook of this host,
// no queueing discipline.
//
// It is a prober's way out: thousands of small packets a second, to next
// hops whose addresses the kernel's neighbour table already holds
// (Neighbours). Measured on the lab veth (2-core VM,
// BenchmarkSenders in this package, SYNs to a closed port counted by the
// peer): one sendto per packet on the raw IPv4 socket reaches about half
// of what sendmmsg on the raw socket does, and this socket with sendmmsg
// goes faster again, as fast as or faster than the same socket with a
// PACKET_TX_RING (whose frames must all go to one address per send unless
// they carry their own link headers) — see docs/PERFORMANCE.md. Skipping
// the IP layer is also what lets a prober send what the raw socket would
// rewrite: a wrong IPv4 header checksum, an IP ID of 0, a total length
// that lies.
//
// What it does not do: route, resolve link-layer addresses, or fragment;
// a packet larger than the device's MTU is refused by the kernel
// (EMSGSIZE). SendBatch may be called from several goroutines (each call
// takes the socket's scratch in turn); Close is safe more than once.
type LinkSender struct {
	file    *os.File
	conn    syscall.RawConn
	ifindex int
	// hwLen is the device's link-layer address length: 6 (Ethernet,
	// veth), or 0 (loopback gets a zero address; devices without link
	// headers need none).
	hwLen     int
	needsAddr bool
	dev       string

	mu     sync.Mutex
	msgs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrLinklayer
	closed atomic.Bool
}

// LinkPacket is one packet for LinkSender.SendBatch: a complete IP packet
// and the link-layer address of its next hop (ignored on devices without
// one).
type LinkPacket struct {
	Data []byte
	To   [6]byte
}

// linkBatchMax is the most packets one sendmmsg call carries (the kernel
// caps a call at UIO_MAXIOV, 1024).
const linkBatchMax = 256

// OpenLinkSender opens an AF_PACKET socket that sends on interface
// ifindex, in the network namespace of the calling thread. It fails on a
// device whose link-layer addresses are neither 6 bytes long nor absent.
func OpenLinkSender(ifindex int) (*LinkSender, error) {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("link sender: interface %d: %w", ifindex, err)
	}
	hwLen := len(ifi.HardwareAddr)
	switch {
	case ifi.Flags&net.FlagLoopback != 0:
		// Loopback takes an Ethernet header of zeros (eth_header needs
		// an address; any one is delivered to this host).
		hwLen = 6
	case hwLen != 0 && hwLen != 6:
		return nil, fmt.Errorf("link sender: %s has %d-byte link-layer addresses; only Ethernet-like devices are supported", ifi.Name, hwLen)
	}
	// Protocol 0: the socket only sends; each message names its own
	// protocol. Blocking, so the Go poller does not watch it: the peer's
	// receive path frees each packet it took, and a watched socket would
	// be woken for every one (see GSOSender).
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("link sender: AF_PACKET socket: %w", permissionError(err))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("link sender: PACKET_QDISC_BYPASS: %w", err)
	}
	// A large send buffer: a burst of probes is charged to it until the
	// device has taken each one.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	file := os.NewFile(uintptr(fd), "af_packet-send:"+ifi.Name)
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("link sender: %w", err)
	}
	return &LinkSender{
		file: file, conn: conn, ifindex: ifindex, hwLen: hwLen, dev: ifi.Name,
		needsAddr: hwLen == 6 && ifi.Flags&net.FlagLoopback == 0,
		msgs:      make([]unix.Mmsghdr, linkBatchMax),
		iovs:      make([]unix.Iovec, linkBatchMax),
		names:     make([]unix.RawSockaddrLinklayer, linkBatchMax),
	}, nil
}

// NeedsAddress reports whether packets need their next hop's link-layer
// address (false on loopback and on devices without link headers).
func (s *LinkSender) NeedsAddress() bool { return s.needsAddr }

// Interface is the index of the interface the sender sends on.
func (s *LinkSender) Interface() int { return s.ifindex }

// SendBatch sends the packets in order and returns how many the kernel
// took. It stops at the first packet the kernel refuses and returns its
// error (wrapping the errno: ENOBUFS when the device dropped it, EMSGSIZE
// when it exceeds the MTU); the caller may skip that packet and send the
// rest.
func (s *LinkSender) SendBatch(pkts []LinkPacket) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := 0
	for sent < len(pkts) {
		if s.closed.Load() {
			return sent, net.ErrClosed
		}
		n := min(len(pkts)-sent, linkBatchMax)
		for i := range n {
			p := &pkts[sent+i]
			if len(p.Data) == 0 {
				return sent, errors.New("link send: empty packet")
			}
			proto := uint16(ethPIP)
			if p.Data[0]>>4 == 6 {
				proto = ethPIPv6
			}
			s.names[i] = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(proto), Ifindex: int32(s.ifindex), Halen: uint8(s.hwLen)}
			copy(s.names[i].Addr[:6], p.To[:])
			s.iovs[i] = unix.Iovec{Base: &p.Data[0]}
			s.iovs[i].SetLen(len(p.Data))
			s.msgs[i] = unix.Mmsghdr{}
			s.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
			s.msgs[i].Hdr.Namelen = uint32(unsafe.Sizeof(s.names[i]))
			s.msgs[i].Hdr.Iov = &s.iovs[i]
			s.msgs[i].Hdr.SetIovlen(1)
		}
		k, err := sendmmsg(s.conn, s.msgs[:n])
		clear(s.iovs[:n]) // keep no pointers to the caller's memory
		sent += k
		if err != nil {
			if s.closed.Load() {
				return sent, net.ErrClosed
			}
			return sent, fmt.Errorf("link send on %s: %w", s.dev, sendError(err, len(pkts[sent].Data)))
		}
	}
	return sent, nil
}

// sendmmsg sends msgs on conn's socket, as many as the kernel takes in
// one call (at least one, or an error about the first). A pollable
// socket whose buffer is full waits in the Go poller.
func sendmmsg(conn syscall.RawConn, msgs []unix.Mmsghdr) (int, error) {
	var n int
	var sendErr error
	err := conn.Write(func(fd uintptr) bool {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		n, sendErr = int(r), nil
		if errno != 0 {
			n, sendErr = 0, errno
		}
		return !errors.Is(sendErr, unix.EAGAIN)
	})
	if err != nil {
		return 0, err
	}
	return n, sendErr
}

// Close closes the socket; safe more than once.
func (s *LinkSender) Close() error {
	if s == nil || s.closed.Swap(true) {
		return nil
	}
	return s.file.Close()
}
