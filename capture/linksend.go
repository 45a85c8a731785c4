package capture

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LinkSender sends complete IPv4 and IPv6 packets out of one interface
// through an AF_PACKET socket with a transmit ring (PACKET_TX_RING,
// TPACKET_V2): a batch is copied into the ring's frames and handed over by
// one send(2), the kernel writing the link header for the link-layer
// address given with each packet (SOCK_DGRAM). With PACKET_QDISC_BYPASS
// the packets go straight to the device's transmit function: no routing,
// no netfilter hook of this host, no queueing discipline.
//
// It is a prober's way out: hundreds of thousands of small packets a
// second, to next hops whose addresses the kernel's neighbour table
// already holds (Neighbours). Measured on the lab veth (2-core VM,
// BenchmarkSenders in this package, SYNs to a closed port counted by the
// peer, with a prober's guard and capture): one sendto per packet on the
// raw IPv4 socket did 33-80 k/s, sendmmsg on it 87-169 k/s, sendmmsg on
// an AF_PACKET socket 84-199 k/s, this ring 121-362 k/s; end to end, a
// `send --flood` did 142-241 k/s with sendmmsg on the AF_PACKET socket and
// 290-300 k/s with the ring (docs/PERFORMANCE.md). Skipping the IP layer is
// also what lets a prober send what the raw socket would rewrite: a wrong
// IPv4 header checksum, an IP ID of 0.
//
// The ring costs an RCU grace period to set up (synchronize_net in
// packet_set_ring, 8-16 ms on a kernel ticking at 250 Hz), which a run of
// a few probes feels and cannot win back. LinkConfig.NoRing opens the same
// socket without one: a batch goes out with sendmmsg(2) straight from the
// callers' buffers, each packet naming its own next hop; everything else
// (the bypass, the frames the raw socket cannot send, the MTU check,
// loopback, transmit timestamps) is the same.
//
// With the ring, the frames of one send(2) share a destination, so a
// batch goes out in runs of packets to the same address and family, a
// send each; a blocking send returns once the kernel has taken every
// frame, so the ring is free again for the next batch.
//
// What it does not do: route, resolve link-layer addresses, or fragment;
// a packet larger than the device's MTU is refused (EMSGSIZE). SendBatch
// may be called from several goroutines (each call has the socket in
// turn); Close is safe more than once.
type LinkSender struct {
	fd      int
	ifindex int
	// hwLen is the device's link-layer address length: 6 (Ethernet,
	// veth; loopback takes a zero one), or 0 (no link header).
	hwLen     int
	needsAddr bool
	dev       string
	mtu       int

	mu        sync.Mutex // the ring or the messages, and fd while a send runs
	open      bool       // until Close
	ring      []byte     // nil without one (LinkConfig.NoRing) or once closed
	frameSize int
	frames    int
	next      int
	direct    *directBatch // the messages of a send without the ring
	stamps    txStamper    // the error queue's buffers, under mu
	closed    atomic.Bool
}

// LinkConfig tunes a LinkSender. The zero value has the transmit ring.
type LinkConfig struct {
	// NoRing sends with sendmmsg(2) instead of through a transmit ring:
	// no RCU grace period to set the socket up (and none of the ring's
	// at its release), at the cost of a socket buffer allocated and
	// filled per packet in the system call, which makes it slower in
	// bulk (BenchmarkSenders, docs/PERFORMANCE.md). For a run of a few
	// packets.
	NoRing bool
}

// directBatch is the message array of one sendmmsg, reused.
type directBatch struct {
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrLinklayer
}

// LinkPacket is one packet for LinkSender.SendBatch: a complete IP packet
// and the link-layer address of its next hop (ignored on devices without
// one).
type LinkPacket struct {
	Data []byte
	To   [6]byte
}

// Ring geometry: TPACKET_V2 transmit frames hold their data at tp_hdrlen
// minus the sockaddr_ll (tpacket_fill_skb in net/packet/af_packet.c), 32
// bytes in; frames of 2 KiB or more take a packet of the device's MTU.
const (
	txDataOffset = 32
	txRingFrames = 1024
	txBlockSize  = 1 << 16
)

// linkDirectMax bounds the packets of one sendmmsg without the ring.
const linkDirectMax = 64

// OpenLinkSender opens an AF_PACKET socket that sends on interface
// ifindex, in the network namespace of the calling thread, with a
// transmit ring unless cfg.NoRing. It fails on a device whose link-layer
// addresses are neither 6 bytes long nor absent.
func OpenLinkSender(ifindex int, cfg LinkConfig) (*LinkSender, error) {
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
	s := &LinkSender{ifindex: ifindex, hwLen: hwLen, dev: ifi.Name, mtu: ifi.MTU,
		needsAddr: hwLen == 6 && ifi.Flags&net.FlagLoopback == 0}
	s.frameSize = 2048
	for s.frameSize < ifi.MTU+txDataOffset {
		s.frameSize <<= 1
	}
	blockSize := max(txBlockSize, s.frameSize)
	s.frames = txRingFrames
	if s.frames*s.frameSize < blockSize {
		s.frames = blockSize / s.frameSize
	}
	// Protocol 0: the socket only sends; each send names its protocol.
	// Blocking, and never watched by the Go poller: a send waits in the
	// kernel until its frames are taken, and the peer's receive path frees
	// each packet, which would wake a watched socket every time.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("link sender: AF_PACKET socket: %w", permissionError(err))
	}
	fail := func(what string, err error) (*LinkSender, error) {
		if s.ring != nil {
			unix.Munmap(s.ring)
		}
		unix.Close(fd)
		return nil, fmt.Errorf("link sender on %s: %s: %w", ifi.Name, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		return fail("PACKET_QDISC_BYPASS", err)
	}
	if cfg.NoRing {
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
			return fail("binding", err)
		}
		s.fd, s.open, s.direct = fd, true, &directBatch{}
		return s, nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("selecting TPACKET_V2", err)
	}
	// A frame the kernel finds malformed is skipped rather than left
	// blocking the ring (SendBatch checks sizes first, so this is a
	// safety net).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
		return fail("PACKET_LOSS", err)
	}
	req := unix.TpacketReq{Block_size: uint32(blockSize), Block_nr: uint32(s.frames * s.frameSize / blockSize),
		Frame_size: uint32(s.frameSize), Frame_nr: uint32(s.frames)}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return fail("setting up the transmit ring", err)
	}
	if s.ring, err = unix.Mmap(fd, 0, s.frames*s.frameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("mapping the transmit ring", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		return fail("binding", err)
	}
	s.fd, s.open = fd, true
	return s, nil
}

// NeedsAddress reports whether packets need their next hop's link-layer
// address (false on loopback and on devices without link headers).
func (s *LinkSender) NeedsAddress() bool { return s.needsAddr }

// Interface is the index of the interface the sender sends on.
func (s *LinkSender) Interface() int { return s.ifindex }

// SendBatch sends the packets in order and returns how many the kernel
// took. It stops at the first packet it cannot send and returns the
// error, wrapping the errno (EMSGSIZE for a packet larger than the MTU,
// which is not sent; ENOBUFS when the device dropped packets): the caller
// may skip that packet and send the rest.
func (s *LinkSender) SendBatch(pkts []LinkPacket) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return 0, net.ErrClosed
	}
	if s.direct != nil {
		return s.sendDirect(pkts)
	}
	sent := 0
	for sent < len(pkts) {
		// A run of packets for one address and family, as many as the
		// ring holds.
		first := &pkts[sent]
		if len(first.Data) == 0 {
			return sent, errors.New("link send: empty packet")
		}
		version := first.Data[0] >> 4
		end := sent
		for end < len(pkts) && end-sent < s.frames {
			p := &pkts[end]
			if len(p.Data) == 0 || p.Data[0]>>4 != version || p.To != first.To {
				break
			}
			if len(p.Data) > s.mtu {
				break
			}
			end++
		}
		if end == sent {
			return sent, fmt.Errorf("link send on %s: %w", s.dev, sendError(unix.EMSGSIZE, len(first.Data)))
		}
		n, err := s.sendRun(pkts[sent:end], version)
		sent += n
		if err != nil {
			return sent, fmt.Errorf("link send on %s: %w", s.dev, sendError(err, len(pkts[min(sent, len(pkts)-1)].Data)))
		}
	}
	return sent, nil
}

// sendRun copies run (one destination, one IP version) into the ring and
// hands it over with one send. The caller holds s.mu.
func (s *LinkSender) sendRun(run []LinkPacket, version byte) (int, error) {
	queued := 0
	for i := range run {
		frame := s.ring[s.next*s.frameSize : (s.next+1)*s.frameSize]
		hdr := (*unix.Tpacket2Hdr)(unsafe.Pointer(&frame[0]))
		if atomic.LoadUint32(&hdr.Status) != unix.TP_STATUS_AVAILABLE {
			break // still the kernel's: send what is queued
		}
		copy(frame[txDataOffset:], run[i].Data)
		hdr.Len = uint32(len(run[i].Data))
		// The kernel reads the frame once it sees SEND_REQUEST.
		atomic.StoreUint32(&hdr.Status, unix.TP_STATUS_SEND_REQUEST)
		s.next = (s.next + 1) % s.frames
		queued++
	}
	proto := uint16(ethPIP)
	if version == 6 {
		proto = ethPIPv6
	}
	to := unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(proto), Ifindex: int32(s.ifindex), Halen: uint8(s.hwLen)}
	copy(to.Addr[:6], run[0].To[:])
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, 0, uintptr(unsafe.Pointer(&to)), unsafe.Sizeof(to))
	if errno != 0 {
		return 0, errno
	}
	if queued == 0 {
		return 0, unix.ENOBUFS
	}
	return queued, nil
}

// sendDirect sends pkts with sendmmsg, linkDirectMax at a time, each
// packet to its own next hop, stopping at the first the kernel refuses or
// the device's MTU cannot take, as SendBatch does. The caller holds s.mu.
func (s *LinkSender) sendDirect(pkts []LinkPacket) (int, error) {
	sent := 0
	for sent < len(pkts) {
		n := s.fillDirect(pkts[sent:])
		if n == 0 {
			p := pkts[sent].Data
			if len(p) == 0 {
				return sent, errors.New("link send: empty packet")
			}
			return sent, fmt.Errorf("link send on %s: %w", s.dev, sendError(unix.EMSGSIZE, len(p)))
		}
		done := 0
		for done < n {
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.direct.msgs[done])), uintptr(n-done), 0, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				runtime.KeepAlive(pkts)
				sent += done
				return sent, fmt.Errorf("link send on %s: %w", s.dev, sendError(errno, len(pkts[sent].Data)))
			}
			if r == 0 { // sendmmsg(2) sends at least one or fails
				return sent + done, fmt.Errorf("link send on %s: %w", s.dev, unix.EIO)
			}
			done += int(r)
		}
		runtime.KeepAlive(pkts)
		sent += done
	}
	return sent, nil
}

// fillDirect sets up the messages for the longest run at the front of
// pkts (at most linkDirectMax) of packets that are not empty and fit the
// MTU, and returns its length. The caller holds s.mu.
func (s *LinkSender) fillDirect(pkts []LinkPacket) int {
	b := s.direct
	if b.msgs == nil {
		b.msgs = make([]unix.Mmsghdr, linkDirectMax)
		b.iovs = make([]unix.Iovec, linkDirectMax)
		b.names = make([]unix.RawSockaddrLinklayer, linkDirectMax)
	}
	n := 0
	for ; n < len(pkts) && n < linkDirectMax; n++ {
		p := &pkts[n]
		if len(p.Data) == 0 || len(p.Data) > s.mtu {
			break
		}
		proto := uint16(ethPIP)
		if p.Data[0]>>4 == 6 {
			proto = ethPIPv6
		}
		to := &b.names[n]
		*to = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(proto), Ifindex: int32(s.ifindex), Halen: uint8(s.hwLen)}
		copy(to.Addr[:6], p.To[:])
		b.iovs[n] = unix.Iovec{Base: &p.Data[0]}
		b.iovs[n].SetLen(len(p.Data))
		m := &b.msgs[n]
		*m = unix.Mmsghdr{}
		m.Hdr.Name, m.Hdr.Namelen = (*byte)(unsafe.Pointer(to)), unix.SizeofSockaddrLinklayer
		m.Hdr.Iov, m.Hdr.Iovlen = &b.iovs[n], 1
	}
	return n
}

// Control calls f with the sender's socket, unless it is closed (package
// release holds a duplicate of it, so that its release does not hold up
// the exit).
func (s *LinkSender) Control(f func(fd uintptr)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return net.ErrClosed
	}
	f(uintptr(s.fd))
	return nil
}

// Close releases the ring and closes the socket, once a send under way
// has returned; safe more than once.
func (s *LinkSender) Close() error {
	if s == nil || s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring != nil {
		unix.Munmap(s.ring)
		s.ring = nil
	}
	s.open = false
	return unix.Close(s.fd)
}

// HasRing reports whether the sender sends through a transmit ring.
func (s *LinkSender) HasRing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ring != nil
}
