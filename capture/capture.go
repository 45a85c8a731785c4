package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Why not gopacket/afpacket: NewTPacket binds the socket to its protocol
// (ETH_P_ALL by default) before SetBPF can be called, so unrelated frames
// are queued first, and offers no later bind; it keeps the file descriptor
// private, so PACKET_IGNORE_OUTGOING cannot be set; and it does not pass
// tp_status on, so TP_STATUS_CSUMNOTREADY is lost. All three are essential
// here, so the socket and its ring are done directly with x/sys/unix; the
// V2 ring takes a page of code.
//
// Why TPACKET_V2 and not V3: V3 hands a block to user space only when it is
// full or when its retire timer (tp_retire_blk_tov, whole milliseconds; 64
// ms by default in afpacket) fires, so a lone segment — a SYN-ACK, an ACK —
// waits for the timer. V2 hands over every frame as soon as it is written.
// Measured on the lab veth (2-core VM, BenchmarkSYNToSYNACK: inject a SYN,
// read the kernel's SYN-ACK): V2 about 22 µs from sendto to ReadFrame
// returning, of which about 12 µs is the kernel's own turnaround; the same
// loop on an afpacket V3 ring took 1.0 ms with a 1 ms block timeout and
// 8.0 ms with 8 ms — the timer, every time. TCP's RTT estimate and every
// request/response exchange would carry that delay, so V2 it is; the cost
// is fixed-size slots (see Config.SnapLen), a few MiB of ring.

// Ring geometry. With SOCK_DGRAM the kernel puts the frame data at
// TPACKET_ALIGN(TPACKET2_HDRLEN) + 16 bytes into each ring frame
// (tpacket_rcv in net/packet/af_packet.c); TPACKET2_HDRLEN is the 32-byte
// tpacket2_hdr plus a 20-byte sockaddr_ll.
const (
	tpacket2HdrLen   = 32 + 20
	ringDataOffset   = (tpacket2HdrLen+unix.TPACKET_ALIGNMENT-1)&^(unix.TPACKET_ALIGNMENT-1) + 16
	sockaddrLLOffset = (unix.SizeofTpacket2Hdr + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)
	maxPacket        = 65535 + ip6HeaderLen // the largest IPv6 packet without a jumbo payload; any IPv4 packet fits
	defaultFrames    = 64
	defaultBlock     = 1 << 20 // a power of two: the kernel allocates 2^order pages per block
	ethPIP           = 0x0800
	ethPIPv6         = 0x86dd
	readDeadlineNow  = 1 // a Unix time in the past, to wake a blocked read
	longQueueBytes   = 8 << 20
)

// Config tunes a Capture. The zero value is what tcpcraft uses.
type Config struct {
	// SnapLen is the largest frame kept whole; longer frames are truncated
	// (Frame.Truncated). 0 means 65575, any IP packet (an IPv6 payload of
	// 65535 bytes and its header): a kernel peer
	// with TSO/GSO on a veth hands over segments of up to 64 KB, far above
	// the MSS, and they must arrive whole.
	SnapLen int
	// Frames is the minimum number of frames in the receive ring, rounded
	// up to whole 1 MiB blocks (with the default snap length: 75 frames,
	// 5 MiB). 0 means 64. When the ring is full the kernel drops frames
	// (Stats.Drops) and TCP retransmits.
	Frames int
	// LongFramesWhole, with a SnapLen below the default, still delivers
	// frames longer than SnapLen whole: the kernel puts the truncated
	// frame in the ring marked TP_STATUS_COPY and a copy of the whole one
	// on the socket's receive queue (PACKET_COPY_THRESH, tpacket_rcv in
	// net/packet/af_packet.c), which take reads in the ring's order. A
	// ring of small frames holds many more of them in the same memory: a
	// listener's ring must absorb bursts of small segments (a SYN flood
	// arriving while the process is not scheduled) while a peer's 64 KB
	// TSO segments still arrive whole, at the cost of one recvfrom each.
	LongFramesWhole bool
	// Queue, when true, reads frames from the socket's receive queue, a
	// batch at a time (recvmmsg), instead of a memory-mapped ring. Setting
	// a ring up and tearing it down each wait for an RCU grace period in
	// the kernel (queue.go): without one the socket opens without waiting
	// and closes after one wait instead of two. Frames carry the same
	// fields either way. SnapLen keeps its meaning (longer frames arrive
	// truncated, with their true Length); Frames and LongFramesWhole are
	// the ring's only.
	Queue bool
	// KeepOutgoing, when true, also delivers the flow's frames that this
	// host sends out of the interface (Frame.Outgoing), for debugging and
	// tests. tcpcraft leaves it false: on loopback every frame would
	// otherwise be seen twice, and its own injected segments read back.
	KeepOutgoing bool
}

// Frame is one captured frame.
type Frame struct {
	// Data is the frame from the IP header (IPv4 or IPv6) on. It belongs
	// to the caller.
	Data []byte
	// Time is when the kernel captured the frame.
	Time time.Time
	// Length is the frame's length on the wire; more than len(Data) if the
	// frame was truncated to the snap length.
	Length int
	// ChecksumNotReady is set when the kernel flagged the frame
	// TP_STATUS_CSUMNOTREADY: the checksum was left for offload (typical
	// on veth and loopback), so the TCP checksum in Data is partial and
	// must be reported "unverified", not rejected.
	ChecksumNotReady bool
	// ChecksumValid is set when the kernel or the NIC already verified the
	// checksum (TP_STATUS_CSUM_VALID).
	ChecksumValid bool
	// Interface is the index of the interface the frame passed.
	Interface int
	// Outgoing is set for a frame this host sent (only with KeepOutgoing).
	Outgoing bool
}

// Truncated reports whether the frame was cut to the snap length.
func (f Frame) Truncated() bool { return f.Length > len(f.Data) }

// Stats counts frames since the capture was opened.
type Stats struct {
	Packets uint64 // frames that passed the filter
	Drops   uint64 // of those, frames lost because the ring was full
}

// Capture reads the frames of one flow from an AF_PACKET socket.
//
// ReadFrame may be called from one goroutine at a time (calls are
// serialized); Close and Stats may be called from any goroutine, at any
// time, any number of times. Close wakes a blocked ReadFrame.
type Capture struct {
	flow      Flow   // the flow, for a capture opened with Open
	name      string // what the capture admits, for errors
	ifindex   int
	file      *os.File
	conn      syscall.RawConn
	frameSize int
	perBlock  int
	blockSize int
	frames    int
	// long holds a whole frame read from the socket's queue for a ring
	// slot marked TP_STATUS_COPY (LongFramesWhole); nil otherwise.
	long []byte

	// waitMu serializes ReadFrame calls (their deadline handling);
	// readMu guards ring and next and is held only while a frame is
	// taken, never while ReadFrame waits, so that TryReadFrame from
	// another goroutine (a stack taking the ACKs its own send caused,
	// without a wake-up) is never blocked by a waiting reader.
	waitMu sync.Mutex
	readMu sync.Mutex
	ring   []byte   // nil once closed
	next   int      // index of the next ring frame to read
	q      *rxQueue // Config.Queue's batch instead of the ring; nil once closed

	statsMu sync.Mutex
	stats   Stats

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Open starts capturing the frames of flow that arrive on the interface
// with index ifindex (0: every interface, e.g. for a listener on all
// addresses), in the network namespace of the calling thread.
//
// No frame outside flow is ever delivered: the socket is created with
// protocol 0, which receives nothing; the filter, PACKET_IGNORE_OUTGOING
// and the ring are set up; and only then does bind(protocol, ifindex)
// connect it to traffic. So nothing is queued before the filter and there
// is nothing to drain. The protocol is the flow's family: ETH_P_IP or
// ETH_P_IPV6, or ETH_P_ALL for a flow of both families (frames of other
// protocols are then refused by the filter's version check, and skipped by
// ReadFrame if one looked like IP).
//
// Outgoing frames are kept out twice over. A tap bound to one protocol
// (ETH_P_IP, ETH_P_IPV6) is never shown transmitted frames:
// dev_queue_xmit_nit in net/core/dev.c only walks the ETH_P_ALL taps. And
// PACKET_IGNORE_OUTGOING is set in any case, so that a tap bound to
// ETH_P_ALL never brings loopback doubles or tcpcraft's own segments back.
// KeepOutgoing binds to ETH_P_ALL without PACKET_IGNORE_OUTGOING.
func Open(ifindex int, flow Flow, cfg Config) (*Capture, error) {
	fams, err := flow.families()
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	prog, err := FilterProgram(flow)
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	c, err := open(ifindex, flow.String(), fams, prog, cfg)
	if err != nil {
		return nil, err
	}
	c.flow = flow
	return c, nil
}

// open opens a capture on ifindex whose filter is prog, admitting frames
// of the families fams; name says what it admits, in errors.
func open(ifindex int, name string, fams int, prog []bpf.Instruction, cfg Config) (*Capture, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("opening capture for %s: assembling the filter: %w", name, err)
	}
	if ifindex < 0 {
		return nil, fmt.Errorf("opening capture for %s: bad interface index %d", name, ifindex)
	}
	snap := cfg.SnapLen
	if snap == 0 {
		snap = maxPacket
	}
	if snap < 60 || snap > maxPacket {
		return nil, fmt.Errorf("opening capture for %s: snap length %d outside 60-%d", name, snap, maxPacket)
	}
	want := cfg.Frames
	if want == 0 {
		want = defaultFrames
	}
	if want < 1 || want > 1<<16 {
		return nil, fmt.Errorf("opening capture for %s: ring of %d frames outside 1-65536", name, want)
	}

	c := &Capture{name: name, ifindex: ifindex}
	c.frameSize = align(ringDataOffset+snap, unix.TPACKET_ALIGNMENT)
	c.blockSize = defaultBlock
	for c.blockSize < c.frameSize {
		c.blockSize <<= 1
	}
	c.perBlock = c.blockSize / c.frameSize
	blocks := (want + c.perBlock - 1) / c.perBlock
	c.frames = blocks * c.perBlock

	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening capture for %s: AF_PACKET socket: %w", name, permissionError(err))
	}
	ok := false
	defer func() {
		if !ok {
			if c.ring != nil {
				unix.Munmap(c.ring)
			}
			unix.Close(fd)
		}
	}()
	fail := func(what string, err error) (*Capture, error) {
		return nil, fmt.Errorf("opening capture for %s: %s: %w", name, what, err)
	}

	fprog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fail("attaching the BPF filter", err)
	}
	if !cfg.KeepOutgoing {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return fail("PACKET_IGNORE_OUTGOING (needs Linux 4.20)", err)
		}
	}
	if cfg.Queue {
		if err := c.openQueue(fd, snap); err != nil {
			return fail("setting up the receive queue", err)
		}
	} else if err := c.openRing(fd, cfg, snap, blocks); err != nil {
		return nil, fmt.Errorf("opening capture for %s: %w", name, err)
	}
	// Traffic starts here, already filtered.
	proto := uint16(unix.ETH_P_ALL)
	switch {
	case cfg.KeepOutgoing:
	case fams == familyIPv4:
		proto = ethPIP
	case fams == familyIPv6:
		proto = ethPIPv6
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex}); err != nil {
		return fail(fmt.Sprintf("binding to interface index %d", ifindex), err)
	}

	// A non-blocking descriptor becomes pollable: the Go runtime's poller
	// waits for the ring (or the queue), which gives deadlines and a Close
	// that wakes a blocked reader and waits for it to leave the ring
	// before unmapping.
	c.file = os.NewFile(uintptr(fd), "af_packet:"+name)
	if c.file == nil {
		return fail("wrapping the descriptor", errors.New("invalid descriptor"))
	}
	conn, err := c.file.SyscallConn()
	if err != nil {
		c.file.Close()
		c.file = nil
		ok = true // the file owned and closed fd
		if c.ring != nil {
			unix.Munmap(c.ring)
		}
		return fail("wrapping the descriptor", err)
	}
	c.conn = conn
	ok = true
	return c, nil
}

// openQueue prepares fd for Config.Queue: the ancillary data that says
// what the ring's slot header would, and a receive buffer as large as a
// ring.
func (c *Capture) openQueue(fd, snap int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fmt.Errorf("PACKET_AUXDATA: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	// SO_RCVBUFFORCE passes net.core.rmem_max (CAP_NET_ADMIN, which
	// tcpcraft has for its guard); without it, what rmem_max allows.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, queueBytes); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, queueBytes); err != nil {
			return fmt.Errorf("SO_RCVBUF: %w", err)
		}
	}
	c.q = newRxQueue(snap)
	return nil
}

// openRing sets fd up with a TPACKET_V2 receive ring of blocks blocks and
// maps it.
func (c *Capture) openRing(fd int, cfg Config, snap, blocks int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fmt.Errorf("selecting TPACKET_V2: %w", err)
	}
	if cfg.LongFramesWhole && snap < maxPacket {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
			return fmt.Errorf("PACKET_COPY_THRESH: %w", err)
		}
		// The copies wait on the socket's queue only until the ring
		// slot before them is read, but a burst of 64 KB segments must
		// fit: the kernel copies only while the queue is below
		// SO_RCVBUF, and a frame it did not copy arrives truncated.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, longQueueBytes); err != nil {
			return fmt.Errorf("SO_RCVBUFFORCE: %w", err)
		}
		c.long = make([]byte, maxPacket)
	}
	req := unix.TpacketReq{
		Block_size: uint32(c.blockSize),
		Block_nr:   uint32(blocks),
		Frame_size: uint32(c.frameSize),
		Frame_nr:   uint32(c.frames),
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("setting up a receive ring of %d frames of %d bytes: %w", c.frames, c.frameSize, err)
	}
	ring, err := unix.Mmap(fd, 0, c.blockSize*blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapping the receive ring: %w", err)
	}
	c.ring = ring
	return nil
}

// Flow is the flow this capture admits.
func (c *Capture) Flow() Flow { return c.flow }

// Interface is the interface index the capture is bound to (0: all).
func (c *Capture) Interface() int { return c.ifindex }

// ReadFrame returns the next frame of the flow, waiting for one until ctx
// is done or the capture is closed (then the error is net.ErrClosed).
func (c *Capture) ReadFrame(ctx context.Context) (Frame, error) {
	var f Frame
	var takeErr error
	err := c.wait(ctx, func() bool {
		// Woken for a frame another goroutine may have taken already
		// (TryReadFrame): then this finds none and waits again.
		var ok bool
		f, ok, takeErr = c.TryReadFrame()
		return ok || takeErr != nil
	})
	if err == nil {
		err = takeErr
	}
	return f, err
}

// WaitFrame blocks until a frame is ready to be taken (by TryReadFrame),
// without taking it, or ctx ends. A reader that must take frames in a
// critical section of its own (the stack does, so that frames are handled
// in the order they came, whoever takes them) waits with this, then takes
// them inside.
func (c *Capture) WaitFrame(ctx context.Context) error {
	if err := c.wait(ctx, c.ready); err != nil {
		return err
	}
	if c.closed.Load() {
		return fmt.Errorf("reading capture %s: %w", c.name, net.ErrClosed)
	}
	return nil
}

// ready reports whether the ring's next slot holds a frame, or the capture
// is closed (the next take then says so).
func (c *Capture) ready() bool {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.q != nil {
		// Read the next batch, if there is one, to know: the frames wait
		// in it for the take.
		return !c.q.empty() || c.fillQueue() != nil || !c.q.empty()
	}
	if c.ring == nil {
		return true
	}
	hdr := (*unix.Tpacket2Hdr)(unsafe.Pointer(&c.ring[c.frameOffset(c.next)]))
	return atomic.LoadUint32(&hdr.Status)&unix.TP_STATUS_USER != 0
}

// wait blocks until done (called first at once, then each time the socket
// signals new frames) returns true, ctx ends, or the capture is closed.
func (c *Capture) wait(ctx context.Context, done func() bool) error {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	// Fast path: a frame is already waiting; no deadline bookkeeping.
	if done() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	deadline, _ := ctx.Deadline() // zero: none
	if err := c.file.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("reading capture %s: %w", c.name, err)
	}
	if ctx.Done() != nil {
		woken := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(woken)
			c.file.SetReadDeadline(time.Unix(readDeadlineNow, 0))
		})
		defer func() {
			if !stop() {
				<-woken // the next read must not have its deadline reset under it
			}
		}()
	}

	err := c.conn.Read(func(uintptr) bool { return done() })
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return context.DeadlineExceeded
	case c.closed.Load():
		return fmt.Errorf("reading capture %s: %w", c.name, net.ErrClosed)
	default:
		return fmt.Errorf("reading capture %s: %w", c.name, err)
	}
}

// TryReadFrame returns the next frame of the flow if the kernel has
// already handed one over, without waiting (ok false: none yet). A reader
// that found one frame uses it to take the rest of a burst in one go. It
// may be called while another goroutine waits in ReadFrame (which then
// finds the frame gone and goes on waiting).
func (c *Capture) TryReadFrame() (f Frame, ok bool, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.ring == nil && c.q == nil {
		return Frame{}, false, fmt.Errorf("reading capture %s: %w", c.name, net.ErrClosed)
	}
	return c.take()
}

// TakeFrame hands the next frame of the flow to fn, if the kernel has
// already handed one over, without copying it out of the ring (a peer's
// 64 KB GRO segments would otherwise be copied once more than needed): f.Data
// points into the ring slot and is valid only until fn returns, when the
// slot goes back to the kernel. ok false: none yet. fn runs with the ring
// locked, so it must not call back into the Capture. Like TryReadFrame it
// may be called while another goroutine waits in ReadFrame or WaitFrame.
func (c *Capture) TakeFrame(fn func(Frame)) (ok bool, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.ring == nil && c.q == nil {
		return false, fmt.Errorf("reading capture %s: %w", c.name, net.ErrClosed)
	}
	return c.takeWith(fn)
}

// take copies out the next ring frame if the kernel has handed it over and
// gives the slot back. The caller holds readMu and the ring is mapped.
func (c *Capture) take() (Frame, bool, error) {
	var f Frame
	ok, err := c.takeWith(func(in Frame) {
		f = in
		f.Data = append([]byte(nil), in.Data...)
	})
	return f, ok, err
}

// takeWith hands the next ring frame, in place, to fn and gives the slot
// back. Frames that are not IP (possible only on a socket bound to every
// protocol) are given back unread; a slot whose frame does
// not fit is an error (ok true, fn not called). The caller holds readMu
// and the ring is mapped.
func (c *Capture) takeWith(fn func(Frame)) (bool, error) {
	if c.q != nil {
		return c.takeQueued(fn)
	}
	for {
		base := c.frameOffset(c.next)
		hdr := (*unix.Tpacket2Hdr)(unsafe.Pointer(&c.ring[base]))
		// The kernel fills the frame, then publishes it by setting
		// TP_STATUS_USER (with a write barrier); read the status first.
		status := atomic.LoadUint32(&hdr.Status)
		if status&unix.TP_STATUS_USER == 0 {
			return false, nil
		}
		// The sockaddr_ll the kernel writes after the header says which
		// protocol, interface and direction the frame had.
		sll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&c.ring[base+sockaddrLLOffset]))
		start, n := int(hdr.Net), int(hdr.Snaplen)
		var err error
		isIP := sll.Protocol == htons(ethPIP) || sll.Protocol == htons(ethPIPv6)
		switch {
		case start < tpacket2HdrLen || n < 0 || start+n > c.frameSize:
			err = fmt.Errorf("reading capture %s: ring frame with data at %d+%d does not fit a %d-byte slot", c.name, start, n, c.frameSize)
		case isIP:
			data := c.ring[base+start : base+start+n : base+start+n]
			if status&unix.TP_STATUS_COPY != 0 && c.long != nil {
				data = c.readLong(data)
			}
			fn(Frame{
				Data:             data,
				Time:             time.Unix(int64(hdr.Sec), int64(hdr.Nsec)),
				Length:           int(hdr.Len),
				ChecksumNotReady: status&unix.TP_STATUS_CSUMNOTREADY != 0,
				ChecksumValid:    status&unix.TP_STATUS_CSUM_VALID != 0,
				Interface:        int(sll.Ifindex),
				Outgoing:         sll.Pkttype == unix.PACKET_OUTGOING,
			})
		}
		// Hand the slot back to the kernel only after fn is done with it.
		atomic.StoreUint32(&hdr.Status, unix.TP_STATUS_KERNEL)
		c.next = (c.next + 1) % c.frames
		if isIP || err != nil {
			return true, err
		}
	}
}

// takeQueued is takeWith for Config.Queue: the next frame of the batch,
// the next batch read first if this one is done. The caller holds readMu
// and the queue is open.
func (c *Capture) takeQueued(fn func(Frame)) (bool, error) {
	for {
		if c.q.empty() {
			if err := c.fillQueue(); err != nil {
				return true, err
			}
			if c.q.empty() {
				return false, nil
			}
		}
		if f, isIP := c.q.take(); isIP {
			fn(f)
			return true, nil
		}
	}
}

// fillQueue reads the next batch of Config.Queue's frames, without
// waiting. The caller holds readMu and the queue is open and empty.
func (c *Capture) fillQueue() error {
	var err error
	// Control, not Read: see readLong.
	ctlErr := c.conn.Control(func(fd uintptr) { err = c.q.fill(int(fd)) })
	if ctlErr != nil {
		err = ctlErr
	}
	switch {
	case err == nil:
		return nil
	case c.closed.Load():
		// Close has closed the descriptor and waits for readMu to
		// drop the batch.
		return fmt.Errorf("reading capture %s: %w", c.name, net.ErrClosed)
	}
	return fmt.Errorf("reading capture %s: %w", c.name, err)
}

// readLong reads the whole frame the kernel queued for a ring slot marked
// TP_STATUS_COPY; if there is none (it cannot be, as the copy is queued
// before the slot is published), the truncated frame in the slot stays.
func (c *Capture) readLong(truncated []byte) []byte {
	var n int
	var err error
	// Control, not Read: Read would wait for the descriptor's read lock,
	// which a goroutine blocked in WaitFrame holds while it waits for
	// readMu, held here.
	ctlErr := c.conn.Control(func(fd uintptr) {
		n, _, err = unix.Recvfrom(int(fd), c.long, unix.MSG_DONTWAIT)
	})
	if ctlErr != nil || err != nil || n <= len(truncated) {
		return truncated
	}
	return c.long[:n:n]
}

// frameOffset is where ring frame i starts: frames never straddle blocks,
// and a block may end in unused bytes.
func (c *Capture) frameOffset(i int) int {
	return (i/c.perBlock)*c.blockSize + (i%c.perBlock)*c.frameSize
}

// Stats returns the frame counters since Open. The kernel resets its
// counters on every read (PACKET_STATISTICS), so they are summed here.
func (c *Capture) Stats() (Stats, error) {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	var st *unix.TpacketStats
	var sockErr error
	err := c.conn.Control(func(fd uintptr) {
		st, sockErr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	})
	if err == nil {
		err = sockErr
	}
	if err != nil {
		return c.stats, fmt.Errorf("capture %s statistics: %w", c.name, err)
	}
	// tp_packets counts drops too (packet_getsockopt adds them).
	c.stats.Packets += uint64(st.Packets)
	c.stats.Drops += uint64(st.Drops)
	return c.stats, nil
}

// SyscallConn gives access to the capture's socket (package release
// holds a duplicate of it, so that its release does not hold up the exit).
func (c *Capture) SyscallConn() syscall.RawConn { return c.conn }

// Close stops the capture and releases the socket and its ring. It is safe
// to call more than once and concurrently with ReadFrame, which then
// returns net.ErrClosed. It returns when the kernel has released the
// socket, which waits for an RCU grace period (two with a ring).
func (c *Capture) Close() error {
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		// Closing the file wakes a reader blocked in the poller and, for a
		// pollable file, returns only once no call is using the descriptor.
		if err := c.file.Close(); err != nil {
			c.closeErr = fmt.Errorf("closing capture %s: %w", c.name, err)
		}
		c.readMu.Lock()
		defer c.readMu.Unlock()
		c.q = nil
		if c.ring == nil {
			return
		}
		if err := unix.Munmap(c.ring); err != nil && c.closeErr == nil {
			c.closeErr = fmt.Errorf("closing capture %s: unmapping the ring: %w", c.name, err)
		}
		c.ring = nil
	})
	return c.closeErr
}

func align(n, to int) int { return (n + to - 1) &^ (to - 1) }

// htons converts a 16-bit value to network byte order for sockaddr_ll,
// whatever the host's byte order.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}
