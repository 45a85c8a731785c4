// Package stack drives fsm.Conn state machines over one packet link: it reads
// frames, parses them with craft, demultiplexes them by 4-tuple to the right
// connection, feeds the machine, builds and sends the segments it returns,
// fires its timers at NextDeadline, and moves bytes between the machines and
// the application (blocking Read/Write with context cancellation).
//
// It is a package of its own because it is the only place where the
// sans-I/O fsm meets goroutines, clocks and the link; fsm stays pure and
// capture stays free of TCP logic.
//
// What it must not do: implement TCP rules or decide any reply (fsm is the
// only judge: a segment of a connection goes to its fsm.Conn, one to a
// listening port from an unknown 4-tuple to the port's fsm.Listener, any
// other to fsm.ResetFor; the stack only demultiplexes, sends what they
// return and reports it), touch the firewall or open sockets itself (the
// Link is handed in), or print: what happens is reported to a Tracer.
//
// Concurrency: one mutex guards every fsm.Conn of a Stack. The reader
// goroutine, the timer goroutine and application calls each take it, call
// into fsm, flush the resulting segments and events, and release it. fsm is
// fast and never blocks, so the lock is held for microseconds.
package stack

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// Link is what the stack needs from the wire: captured frames of its flow
// (starting at the IP header) in, complete IPv4 or IPv6 packets out. A capture
// (AF_PACKET, frames in) and an injector (a raw socket, packets out),
// joined by the driver, make one.
type Link interface {
	ReadFrame(ctx context.Context) (capture.Frame, error)
	Send(pkt []byte) error
}

// Direction tells whether a traced segment was received or sent.
type Direction int

const (
	// In is a segment that arrived from the peer.
	In Direction = iota
	// Out is a segment tcpcraft sent.
	Out
)

func (d Direction) String() string {
	if d == In {
		return "in"
	}
	return "out"
}

// Tracer is told about every segment in both directions and every fsm event.
// Its methods are called with the stack's lock held, in wire order, from one
// goroutine at a time: they must not call back into the stack.
type Tracer interface {
	// Segment reports a parsed segment; raw holds the packet bytes from the
	// IP header on (valid only during the call). A packet that failed to
	// parse has p == nil and err set.
	Segment(dir Direction, t time.Time, p *craft.Packet, raw []byte, err error)
	// Event reports an fsm event of the connection local<->remote, or,
	// for a segment that a listening port's fsm.Listener dropped or
	// answered, a SegmentDropped event with its cause.
	Event(t time.Time, local, remote netip.AddrPort, ev fsm.Event)
}

// Config sets up a Stack.
type Config struct {
	// Local is our address, IPv4 or IPv6 (the source of every packet
	// sent), and says which segments are ours: those to it. A listener
	// on every address has 0.0.0.0 (IPv4 only) or :: (IPv6 only) here,
	// or the zero netip.Addr (both families, as a kernel socket on [::]
	// without IPV6_V6ONLY), and answers from the address each segment
	// was sent to. An IPv4-mapped IPv6 address counts as its IPv4
	// address (packets of each family carry their own addresses).
	Local netip.Addr
	// IsLocal tells, when Local is unspecified, whether an address is
	// one of this host's: segments to other addresses are not ours to
	// answer (on a forwarding or promiscuous host AF_PACKET sees them
	// too). nil means every address is.
	IsLocal func(netip.Addr) bool
	// TTL of sent packets: the IPv4 time to live and the IPv6 hop limit;
	// 0 means 64, like Linux.
	TTL uint8
	// Conn is the template of every connection (ports are filled in).
	Conn fsm.Config
	// Tracer, if set, sees every segment and event.
	Tracer Tracer
	// SegmentErrorsOnly tells the Tracer only about segments that failed
	// (to parse, build or send), not every good one: for a quiet run
	// that shows nothing else, it saves parsing each sent packet back.
	SegmentErrorsOnly bool
	// TraceHeadersOnly says the Tracer shows sent packets from their
	// headers (a text or JSON trace, not a pcap file): a sent packet is
	// parsed back without verifying the checksum we computed, and a
	// super-segment keeps the partial checksum the offload completes,
	// so tracing costs no pass over the payload.
	TraceHeadersOnly bool
	// Now is the clock; nil means time.Now. Tests may pass a fake.
	Now func() time.Time
	// Rand picks IP IDs; nil means a randomly seeded source.
	Rand *rand.Rand
}

// Stack runs connections over one Link. Create with New, start with Run.
type Stack struct {
	link   Link
	cfg    Config
	now    func() time.Time
	tracer Tracer

	// flowSeed keys the IPv6 flow label of each connection (flowLabel).
	flowSeed maphash.Seed

	mu        sync.Mutex
	conns     map[craft.FourTuple]*Conn // key: Src = remote, Dst = local (as segments arrive)
	listeners map[uint16]*Listener
	ipID      uint16
	pktBuf    []byte
	segBuf    []craft.TCP
	evBuf     []fsm.Event
	outPkt    craft.Packet // a sent packet parsed back for the tracer
	planned   time.Time    // the deadline the timer goroutine sleeps until
	timerWake chan struct{}
	closed    bool
	sendErr   error

	burst    bool     // reading a burst: flushes wait for its end
	dirty    []*Conn  // connections with input not yet flushed
	gsoOff   bool     // the link's GSO failed once: segment by segment
	pieces   [][]byte // the payload pieces of a vectored send, reused
	tracePkt []byte   // a vectored packet in one piece, for the tracer
	// batch holds the listener answers of the current burst
	// (BatchSender), built into batchBuf.
	batch    [][]byte
	batchBuf []byte
	// inlinePkt is drainInline's parse scratch (readLoop has its own).
	inlinePkt craft.Packet
	// inputInline is s.input with inlinePkt, made once: a FrameTaker is
	// handed it for every frame.
	inputInline func(capture.Frame)
}

// traceSegments reports whether the tracer wants every good segment.
func (s *Stack) traceSegments() bool {
	return s.tracer != nil && !s.cfg.SegmentErrorsOnly
}

// New returns a Stack for link. Nothing runs until Run.
func New(link Link, cfg Config) (*Stack, error) {
	if cfg.Local.IsValid() {
		if cfg.Local.Zone() != "" || cfg.Local.Is6() && cfg.Local.IsLinkLocalUnicast() {
			return nil, fmt.Errorf("stack: local address %v: link-local IPv6 is not supported", cfg.Local)
		}
		if cfg.Local.IsMulticast() {
			return nil, fmt.Errorf("stack: local address %v is multicast", cfg.Local)
		}
		cfg.Local = cfg.Local.Unmap()
	}
	if cfg.TTL == 0 {
		cfg.TTL = 64
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	r := cfg.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	s := &Stack{
		link:      link,
		cfg:       cfg,
		now:       now,
		tracer:    cfg.Tracer,
		conns:     make(map[craft.FourTuple]*Conn),
		listeners: make(map[uint16]*Listener),
		ipID:      uint16(r.Uint32()) | 1,
		pktBuf:    make([]byte, 0, 65536+128),
		timerWake: make(chan struct{}, 1),
		flowSeed:  maphash.MakeSeed(),
	}
	s.inputInline = func(f capture.Frame) { s.input(f, &s.inlinePkt) }
	return s, nil
}

// Run reads frames and fires timers until ctx is done or the link fails. It
// returns nil when ctx ends, else the link's error. Run does not abort open
// connections: call Shutdown for that.
func (s *Stack) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timerDone := make(chan struct{})
	go func() {
		defer close(timerDone)
		s.timerLoop(ctx)
	}()
	err := s.readLoop(ctx)
	cancel()
	<-timerDone
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// BurstReader is a Link that can also return a frame that is already
// waiting without blocking (capture.Capture.TryReadFrame). With it the
// stack takes a burst of frames (up to maxBurst) under one lock and
// answers once per connection at its end, as Linux does per NAPI poll:
// one ACK-clocked flush then releases many segments, which the link can
// send as one super-segment (GSOLink), instead of one or two per frame.
type BurstReader interface {
	TryReadFrame() (capture.Frame, bool, error)
}

// FrameTaker is a Link that can hand a waiting frame over in place
// (capture.Capture.TakeFrame): the frame's bytes are valid only during the
// call, and the stack parses and handles them there, so a peer's 64 KB
// GRO segment is not copied out of the capture ring first (fsm copies its
// payload once, into the receive buffer). With it, readLoop and
// drainInline take frames this way instead of TryReadFrame.
type FrameTaker interface {
	TakeFrame(fn func(capture.Frame)) (bool, error)
}

// takeFrame takes one waiting frame and handles it with handle (which
// parses into its own scratch): in place through a FrameTaker, else
// copied through TryReadFrame. Called with s.mu held.
func (s *Stack) takeFrame(br BurstReader, handle func(capture.Frame)) (bool, error) {
	if ft, ok := s.link.(FrameTaker); ok {
		return ft.TakeFrame(handle)
	}
	f, ok, err := br.TryReadFrame()
	if ok && err == nil {
		handle(f)
	}
	return ok, err
}

// FrameWaiter is a BurstReader that can also wait for a frame without
// taking it (capture.Capture.WaitFrame). With it the read loop takes
// frames only under the stack's lock, as an application call's
// drainInline does, so the frames of a flow are handled in the order they
// came whoever takes them. (Taken before the lock, a frame could wait for
// it while drainInline handled later ones: a peer's last ACK of our data
// then came after the ACK of our FIN, found its connection gone and drew
// a RST.)
type FrameWaiter interface {
	BurstReader
	WaitFrame(ctx context.Context) error
}

const maxBurst = 64

func (s *Stack) readLoop(ctx context.Context) error {
	if fw, ok := s.link.(FrameWaiter); ok {
		return s.readLoopOrdered(ctx, fw)
	}
	var pkt craft.Packet
	br, _ := s.link.(BurstReader)
	for {
		f, err := s.link.ReadFrame(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("stack: reading frames: %w", err)
		}
		s.mu.Lock()
		s.burst = br != nil
		s.input(f, &pkt)
		for n := 1; br != nil && n < maxBurst; n++ {
			f, ok, err := br.TryReadFrame()
			if err != nil || !ok {
				break // an error comes back from the next ReadFrame
			}
			s.input(f, &pkt)
		}
		s.burst = false
		s.flushDirty()
		s.mu.Unlock()
	}
}

// readLoopOrdered is readLoop for a FrameWaiter: wait outside the lock,
// take and handle a burst inside it.
func (s *Stack) readLoopOrdered(ctx context.Context, fw FrameWaiter) error {
	var pkt craft.Packet
	handle := func(f capture.Frame) { s.input(f, &pkt) }
	for {
		if err := fw.WaitFrame(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("stack: reading frames: %w", err)
		}
		s.mu.Lock()
		s.burst = true
		var err error
		for range maxBurst {
			var ok bool
			ok, err = s.takeFrame(fw, handle)
			if err != nil || !ok {
				break
			}
		}
		s.burst = false
		s.flushDirty()
		s.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("stack: reading frames: %w", err)
		}
	}
}

// flushDirty flushes the connections fed frames of a burst. Called with
// s.mu held.
func (s *Stack) flushDirty() {
	if len(s.dirty) == 0 && len(s.batch) == 0 {
		return
	}
	now := s.now()
	s.flushBatch(now)
	for i, c := range s.dirty {
		c.dirty = false
		s.flush(c, now)
		s.dirty[i] = nil
	}
	s.dirty = s.dirty[:0]
}

// maxInlineBursts bounds drainInline: an application call handles at most
// this many bursts of frames before it returns.
const maxInlineBursts = 4

// drainInline takes the frames already waiting on the link, without
// waiting, and handles them as readLoop would. It runs after a Write
// (not after a Read: on the goroutine of every idle connection of a busy
// listener the deeper stack cost more memory than it saved time): on a veth the peer's receive path runs
// inside our send, so its ACKs are usually waiting by the time the send
// returns, and taking them here, with the lock already held, spares a
// wake-up of the reader goroutine per round trip (the kernel's own TCP
// handles them in the same softirq). In a window-limited transfer the
// round trip is what sets the rate. Called with s.mu held.
//
// It reports whether it handled any frame: a caller that found nothing to
// do before must then look again rather than wait, since what it waits for
// may have come in here, before it took the channel it would wait on.
func (s *Stack) drainInline() (handled bool) {
	br, ok := s.link.(BurstReader)
	if !ok || s.burst {
		return false
	}
	for range maxInlineBursts {
		s.burst = true
		n := 0
		for ; n < maxBurst; n++ {
			ok, err := s.takeFrame(br, s.inputInline)
			if err != nil || !ok {
				break // an error comes back from readLoop's ReadFrame
			}
		}
		s.burst = false
		s.flushDirty()
		handled = handled || n > 0
		if n < maxBurst {
			return handled
		}
	}
	return handled
}

// input handles one captured frame. Called with s.mu held.
func (s *Stack) input(f capture.Frame, pkt *craft.Packet) {
	now := s.now()
	err := craft.ParsePacket(craft.LinkRaw, f.Data, pkt, craft.PacketOptions{PartialChecksum: f.ChecksumNotReady})
	if err != nil {
		s.traceSegment(In, now, nil, f.Data, err)
		return
	}
	if s.traceSegments() {
		s.tracer.Segment(In, now, pkt, f.Data, nil)
	}
	if !s.addressedToUs(pkt.Dst()) {
		return
	}
	// A segment with a checksum proven wrong is dropped silently (RFC 9293
	// §3.1: "the segment is discarded"); one the kernel left unfinished
	// for checksum offload (TP_STATUS_CSUMNOTREADY on veth and lo) is
	// accepted: it was never checksummed, not corrupted.
	if pkt.IPChecksum.State == craft.ChecksumBad || pkt.TCPChecksum.State == craft.ChecksumBad {
		return
	}
	key := pkt.Tuple()
	if c, ok := s.conns[key]; ok {
		c.fc.Input(&pkt.TCP, now)
		if s.burst {
			if !c.dirty {
				c.dirty = true
				s.dirty = append(s.dirty, c)
			}
			return
		}
		s.flush(c, now)
		return
	}
	if l, ok := s.listeners[pkt.TCP.DstPort]; ok && l.accepts(pkt.Dst()) {
		l.input(pkt, now)
		return
	}
	s.resetUnknown(pkt, now)
}

// addressedToUs reports whether dst, the destination of a packet of
// either family, is ours to answer for.
func (s *Stack) addressedToUs(dst netip.Addr) bool {
	if !matchesLocal(s.cfg.Local, dst) {
		return false
	}
	return !isWildcard(s.cfg.Local) || s.cfg.IsLocal == nil || s.cfg.IsLocal(dst)
}

// isWildcard reports whether local stands for many addresses: the zero
// Addr (both families), 0.0.0.0 or ::.
func isWildcard(local netip.Addr) bool {
	return !local.IsValid() || local.IsUnspecified()
}

// matchesLocal reports whether dst, the destination of a packet, is local
// or one of the addresses local stands for (see Config.Local). A packet's
// family is that of its addresses: an IPv6 packet to ::ffff:10.0.2.20 is
// not an IPv4 packet to 10.0.2.20, so it does not match 0.0.0.0 or
// 10.0.2.20 (Linux hands such a packet to no IPv4 socket either).
func matchesLocal(local, dst netip.Addr) bool {
	switch {
	case !local.IsValid():
		return true
	case local.IsUnspecified():
		return local.Is4() == dst.Is4()
	}
	return local == dst
}

// resetUnknown answers a segment for which no connection exists as RFC 9293
// §3.10.7.1 says (a RST, unless the segment is itself a RST).
func (s *Stack) resetUnknown(pkt *craft.Packet, now time.Time) {
	rst, ok := fsm.ResetFor(&pkt.TCP)
	if !ok {
		return
	}
	s.send(pkt.Dst(), pkt.Src(), &rst, now)
}

// flush sends what c's machine produced and handles its events. Called with
// s.mu held after every call into c.fc.
func (s *Stack) flush(c *Conn, now time.Time) {
	// Events are reported before the segments they caused are sent, so
	// a trace reads in cause order: "LISTEN -> SYN-RECEIVED (rcvd SYN)",
	// then the SYN-ACK.
	s.segBuf = c.fc.AppendOutput(s.segBuf[:0])
	s.evBuf = c.fc.AppendEvents(s.evBuf[:0])
	var wake [waitKinds]bool
	wake[waitAny] = len(s.evBuf) > 0
	for _, ev := range s.evBuf {
		switch ev.Kind {
		case fsm.DataReadable, fsm.PeerClosed:
			wake[waitRead] = true
		case fsm.BytesAcked:
			wake[waitWrite] = true
		case fsm.StateChange, fsm.Error:
			wake[waitRead], wake[waitWrite] = true, true
			c.writeWant = 0 // whatever the buffer holds
		}
		if s.tracer != nil {
			s.tracer.Event(now, c.local, c.remote, ev)
		}
		switch ev.Kind {
		case fsm.Error:
			if c.err == nil {
				c.err = ev.Err
			}
		case fsm.StateChange:
			if ev.To == fsm.Established && c.listener != nil && !c.queued {
				c.listener.ready(c)
			}
		}
	}
	s.sendSegments(c, now)
	if st := c.fc.State(); st == fsm.Closed || st == fsm.Listen && c.listener != nil {
		// A machine a listener created goes back to LISTEN when its
		// half-open connection is reset (RFC 9293 §3.10.7.4): the
		// Listener does the listening, so it is gone too, and its
		// backlog slot is free again.
		s.remove(c)
	}
	if wake[waitWrite] && c.fc.Writable() < c.writeWant && !c.removed {
		wake[waitWrite] = false // ACKs, but not yet the room it waits for
	}
	for kind, ok := range wake {
		if ok {
			c.signal(waitKind(kind))
		}
	}
	if d, ok := c.fc.NextDeadline(); ok && (s.planned.IsZero() || d.Before(s.planned)) {
		s.planned = d
		select {
		case s.timerWake <- struct{}{}:
		default:
		}
	}
}

// remove forgets a connection that reached CLOSED. Called with s.mu held.
func (s *Stack) remove(c *Conn) {
	if c.removed {
		return
	}
	c.removed = true
	delete(s.conns, craft.FourTuple{Src: c.remote, Dst: c.local})
	if c.err == nil {
		c.err = c.fc.Err()
	}
	if c.listener != nil {
		c.listener.forget(c)
	}
	close(c.done)
}

// BatchSender is a Link that can send many packets with one call
// (capture.Link.SendBatch, sendmmsg(2)). With it the answers a listening
// port's fsm.Listener gives during a burst of frames (SYN-ACKs with SYN
// cookies, RSTs) go out together at the burst's end: under a SYN flood
// there is one per SYN, and the system call around each small packet
// cost as much as the kernel's work on it.
type BatchSender interface {
	SendBatch(pkts [][]byte) (int, error)
}

// sendListenReply sends a listening port's answer: at once, or batched
// until the end of the burst (BatchSender). Called with s.mu held.
func (s *Stack) sendListenReply(src, dst netip.Addr, seg *craft.TCP, now time.Time) {
	if _, ok := s.link.(BatchSender); !ok || !s.burst {
		s.send(src, dst, seg, now)
		return
	}
	start := len(s.batchBuf)
	pkt, ok := s.build(s.batchBuf, src, dst, seg, now)
	if !ok {
		return
	}
	// When the arena grew, pkt is a new array holding the old bytes
	// too: start is still the packet's offset, and the packets batched
	// before keep pointing into the old array.
	s.batchBuf = pkt
	s.batch = append(s.batch, pkt[start:len(pkt):len(pkt)])
}

// flushBatch sends the listener answers batched during a burst. Called
// with s.mu held.
func (s *Stack) flushBatch(now time.Time) {
	if len(s.batch) == 0 {
		return
	}
	if _, err := s.link.(BatchSender).SendBatch(s.batch); err != nil {
		s.sendFailed(err, now)
	}
	clear(s.batch)
	s.batch = s.batch[:0]
	s.batchBuf = s.batchBuf[:0]
}

// send builds one IPv4 or IPv6 packet around seg and hands it to the link.
func (s *Stack) send(src, dst netip.Addr, seg *craft.TCP, now time.Time) {
	pkt, ok := s.build(s.pktBuf[:0], src, dst, seg, now)
	if !ok {
		return
	}
	s.pktBuf = pkt[:0]
	if err := s.link.Send(pkt); err != nil {
		s.sendFailed(err, now)
	}
}

// sendFailed reports the first failure to send. A send failure is not
// fatal to TCP (the segment is retransmitted like a lost one) but it is
// worth telling once. raw is nil: the packet was already reported (and
// recorded) when it was built, it must not appear twice in a pcap file.
func (s *Stack) sendFailed(err error, now time.Time) {
	if s.sendErr == nil {
		s.sendErr = err
		s.traceSegment(Out, now, nil, nil, fmt.Errorf("sending: %w", err))
	}
}

// build appends one IPv4 or IPv6 packet (the family of src and dst)
// around seg to buf and traces it; ok is false when it could not be built
// (traced too).
func (s *Stack) build(buf []byte, src, dst netip.Addr, seg *craft.TCP, now time.Time) (pkt []byte, ok bool) {
	start := len(buf)
	var err error
	if dst.Is4() {
		s.ipID++
		if s.ipID == 0 {
			s.ipID = 1 // the kernel rewrites ID 0 (raw(7)); keep traces true
		}
		ip := craft.IPv4{
			TTL:          s.cfg.TTL,
			ID:           s.ipID,
			DontFragment: true, // like Linux with path MTU discovery (RFC 1191)
			Protocol:     craft.ProtocolTCP,
			Src:          src,
			Dst:          dst,
		}
		pkt, err = craft.AppendIPv4TCP(buf, &ip, seg, craft.BuildOptions{})
	} else {
		ip := s.ipv6Header(src, dst, seg)
		pkt, err = craft.AppendIPv6TCP(buf, &ip, seg, craft.BuildOptions{})
	}
	if err != nil {
		s.traceSegment(Out, now, nil, nil, fmt.Errorf("building segment: %w", err))
		return buf, false
	}
	if s.traceSegments() {
		pkt := pkt[start:]
		// Trace the packet as built, not the structs it was built from:
		// the builder fills in lengths, data offset and checksums, and
		// the trace must show what went on the wire.
		if err := craft.ParsePacket(craft.LinkRaw, pkt, &s.outPkt, craft.PacketOptions{PartialChecksum: s.cfg.TraceHeadersOnly}); err != nil {
			s.traceSegment(Out, now, nil, pkt, fmt.Errorf("re-reading a built segment: %w", err))
		} else {
			s.tracer.Segment(Out, now, &s.outPkt, pkt, nil)
		}
	}
	return pkt, true
}

// ipv6Header is the fixed IPv6 header of a segment from src to dst: the
// hop limit from Config.TTL and the connection's flow label. (IPv6 has no
// don't-fragment flag: routers never fragment, RFC 8200 §5.)
func (s *Stack) ipv6Header(src, dst netip.Addr, seg *craft.TCP) craft.IPv6 {
	return craft.IPv6{
		FlowLabel:  s.flowLabel(src, dst, seg.SrcPort, seg.DstPort),
		NextHeader: craft.ProtocolTCP,
		HopLimit:   s.cfg.TTL,
		Src:        src,
		Dst:        dst,
	}
}

// flowLabel is the IPv6 flow label of the connection src:sport ->
// dst:dport: a keyed hash of its addresses and ports, as RFC 6437 §3
// recommends (and Linux's auto flow labels do): the same for every packet
// of a connection, different across connections, unpredictable from
// outside, and never zero (zero means "no label"). The key is the
// stack's, drawn when it was made; nothing is kept per connection, so the
// answers of a listening port (SYN-ACKs with cookies, RSTs) carry the
// label of the connection they belong to too.
func (s *Stack) flowLabel(src, dst netip.Addr, sport, dport uint16) uint32 {
	var h maphash.Hash
	h.SetSeed(s.flowSeed)
	a, b := src.As16(), dst.As16()
	h.Write(a[:])
	h.Write(b[:])
	h.Write([]byte{byte(sport >> 8), byte(sport), byte(dport >> 8), byte(dport)})
	label := uint32(h.Sum64()) & 0xfffff
	if label == 0 {
		label = 1
	}
	return label
}

func (s *Stack) traceSegment(dir Direction, t time.Time, p *craft.Packet, raw []byte, err error) {
	if s.tracer != nil {
		s.tracer.Segment(dir, t, p, raw, err)
	}
}

// timerLoop sleeps until the earliest connection deadline and fires the
// timers that are due.
func (s *Stack) timerLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := s.now()
		next := time.Time{}
		for _, c := range s.conns {
			d, ok := c.fc.NextDeadline()
			if !ok {
				continue
			}
			if !d.After(now) {
				c.fc.Tick(now)
				s.flush(c, now)
				d, ok = c.fc.NextDeadline()
				if !ok || c.removed {
					continue
				}
			}
			if next.IsZero() || d.Before(next) {
				next = d
			}
		}
		s.planned = next
		s.mu.Unlock()

		wait := time.Hour
		if !next.IsZero() {
			wait = next.Sub(now)
			if wait < 0 {
				wait = 0
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.timerWake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

// connConfig is the machine configuration of a new connection. The stack
// sends every segment a machine returns before it calls the machine again,
// so the machine may lend its buffers (fsm.Config.ReuseOutput): no payload
// copy, no allocation on the bulk path.
func (s *Stack) connConfig() fsm.Config {
	cfg := s.cfg.Conn
	cfg.ReuseOutput = true
	return cfg
}

// Dial opens a connection from local port lport to remote (active open) and
// waits until it is established, fails, or ctx ends (then it is aborted).
func (s *Stack) Dial(ctx context.Context, remote netip.AddrPort, lport uint16) (*Conn, error) {
	if !s.cfg.Local.IsValid() || s.cfg.Local.IsUnspecified() {
		return nil, fmt.Errorf("stack: dial %v: the stack has no local address of its own (%v)", remote, s.cfg.Local)
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	if remote.Addr().Is4() != s.cfg.Local.Is4() {
		return nil, fmt.Errorf("stack: dial %v from %v: the addresses are of different families", remote, s.cfg.Local)
	}
	cfg := s.connConfig()
	cfg.LocalPort, cfg.RemotePort = lport, remote.Port()
	cfg.IPv6 = remote.Addr().Is6()
	fc, err := fsm.NewConn(cfg)
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	c := newConn(s, fc, netip.AddrPortFrom(s.cfg.Local, lport), remote, nil)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, net.ErrClosed
	}
	key := craft.FourTuple{Src: remote, Dst: c.local}
	if _, dup := s.conns[key]; dup {
		s.mu.Unlock()
		return nil, fmt.Errorf("stack: a connection %v -> %v already exists", c.local, remote)
	}
	s.conns[key] = c
	now := s.now()
	if err := fc.Connect(now); err != nil {
		delete(s.conns, key)
		s.mu.Unlock()
		return nil, fmt.Errorf("stack: connect: %w", err)
	}
	s.flush(c, now)
	s.mu.Unlock()

	if err := c.waitFor(ctx, func() bool { return c.fc.State() != fsm.SynSent && c.fc.State() != fsm.SynReceived }); err != nil {
		c.Abort()
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.removed || c.fc.State() == fsm.Closed {
		if c.err != nil {
			return nil, c.err
		}
		return nil, fsm.ErrNotConnected
	}
	return c, nil
}

// Shutdown aborts every open connection (RST to the peer, RFC 9293 §3.10.5,
// so no peer is left half-open when tcpcraft goes away) and refuses new
// ones. It is safe to call more than once.
func (s *Stack) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	now := s.now()
	for _, c := range s.conns {
		c.fc.Abort(now)
		s.flush(c, now)
	}
	for _, l := range s.listeners {
		l.closeLocked()
	}
}

// Conns returns how many connections the stack holds (any state but CLOSED).
func (s *Stack) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
