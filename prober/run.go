package prober

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// batchMax is the most packets one flush hands the kernel.
const batchMax = 256

// probeKind is how a probe's answers are read, as nmap reads them.
type probeKind uint8

const (
	kindSYN probeKind = iota // SYN scan: SYN-ACK open, RST closed
	kindACK                  // ACK scan: RST unfiltered
	kindFIN                  // FIN, NULL, Xmas: RST closed, silence open|filtered
)

func kindOf(f craft.Flags) probeKind {
	switch {
	case f&craft.FlagSYN != 0 && f&(craft.FlagACK|craft.FlagRST) == 0:
		return kindSYN
	case f&(craft.FlagACK|craft.FlagRST|craft.FlagSYN) != 0:
		return kindACK
	}
	return kindFIN
}

// Probe statuses.
const (
	probePending uint8 = iota
	probeAnswered
	probeExpired
)

// probeRec is one probe, in a ring indexed by its number.
type probeRec struct {
	num    uint32
	target int32
	index  int32 // the probe's number for its target, from 1
	sport  uint16
	ttl    uint8
	status uint8
	sentAt int64 // Unix nanoseconds, just before the system call
	// wireAt is when the device's driver took the probe, from the
	// kernel's transmit timestamp (Unix nanoseconds; 0: none came).
	wireAt int64
}

// tstate is what a run knows of one target, kept small: a scan holds
// one per port. The reporter of an ICMP error is in run.from.
type tstate struct {
	rtt                          int64 // of the answer that settled the verdict, ns
	probes, answered             int32
	lastNum                      uint32
	verdict                      verdict
	icmpVer, icmpType, icmpCode  uint8 // of an ICMP verdict
	replyTTL                     uint8
	tcpSettled, icmpSet, replied bool
}

// verdict is a settled state with its reason.
type verdict uint8

const (
	noVerdict verdict = iota
	openSYNACK
	closedRST
	unfilteredRST
	filteredICMP
)

// queued is a packet waiting for the next flush.
type queued struct {
	data   []byte
	hop    *nexthop // nil: the raw socket
	target int32
	num    uint32
	probe  bool // a probe (else our RST)
	first  bool // the probe's first packet (fragments after it are not)
}

// deadline is a probe awaiting its answer; its wait ends at sent plus
// the current wait, which shrinks as round-trip times come in.
type deadline struct {
	num  uint32
	sent int64
}

// hopAnswer is the first answer to a traceroute probe.
type hopAnswer struct {
	from netip.Addr
	rtt  time.Duration
	icmp *craft.ICMPError // nil: TCP
}

// run is one Run in progress.
type run struct {
	cfg  *Config
	s    *session
	rng  *rand.Rand
	kind probeKind
	tgt  []tstate

	recs    []probeRec
	recMask uint32
	num     uint32
	seqBase uint32
	ackBase uint32
	idBase  uint16
	rstID   uint16
	seqLen  uint32 // sequence space a probe takes: payload, SYN, FIN

	deadlines   []deadline
	dlHead      int
	retry       []int32
	nextTarget  int
	round       int
	newDone     bool
	outstanding int

	rate   float64
	start  time.Time
	paced  int64
	srtt   time.Duration
	rttvar time.Duration
	timed  bool
	rtts   rttStats
	// userRTTs are the same round trips from just before the send to
	// when this process read the answer (readAt), as a program timing
	// connect(2) sees one.
	userRTTs rttStats
	readAt   time.Time
	stats    Stats
	from     map[int32]netip.Addr // who sent a target's ICMP verdict
	hopAns   map[uint32]hopAnswer
	hops     []Hop
	sendErr  error

	queue   []queued
	pool    [][]byte
	poolUse int
	linkOut []capture.LinkPacket
	rawOut  [][]byte

	// Transmit timestamps still to read, per sender: a sender is read
	// only while it has some, not twice per loop for nothing.
	injStamps  stampsDue
	linkStamps map[*capture.LinkSender]*stampsDue

	ev    Event
	pkt   craft.Packet
	txPkt craft.Packet
	icmp  craft.ICMPError
}

// Run runs cfg: sets the session up, sends the probes, matches what comes
// back, and tears the session down, whatever ends the run — the last
// answer or wait, an error, or ctx (Ctrl-C), after which the probes
// already answered are still reset and the result so far is returned
// with ctx's error. A *ConfigError is the caller's mistake, found before
// anything on the system changed.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Count == 0 && cfg.Traceroute {
		cfg.Count = 1
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Traceroute && (len(cfg.Targets) != 1 || cfg.Targets[0].Hosts() != 1 || cfg.Targets[0].PortCount() != 1) {
		return nil, configErrorf("a traceroute takes one HOST:PORT")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	s, err := openSession(ctx, &cfg, rng)
	if err != nil {
		return nil, err
	}
	r := newRun(&cfg, s, rng)
	if cfg.Traceroute {
		err = r.traceroute(ctx)
	} else {
		err = r.loop(ctx)
	}
	r.finish()
	if cerr := s.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return r.result(), err
}

func newRun(cfg *Config, s *session, rng *rand.Rand) *run {
	r := &run{cfg: cfg, s: s, rng: rng, kind: kindOf(cfg.Flags), tgt: make([]tstate, len(s.targets)), from: map[int32]netip.Addr{}}
	// The ring holds every probe that may still be waited for: a wait's
	// worth at the rate, within bounds.
	size := 4096
	want := cfg.Rate * InitialWait.Seconds() * 2
	if cfg.Flood {
		want = 1 << 16
	}
	if cfg.Wait > 0 {
		want = cfg.Rate * cfg.Wait.Seconds() * 2
	}
	for float64(size) < want && size < 1<<20 {
		size <<= 1
	}
	r.recs = make([]probeRec, size)
	r.recMask = uint32(size - 1)
	r.seqBase, r.ackBase, r.idBase, r.rstID = rng.Uint32(), rng.Uint32(), uint16(rng.Uint32()), uint16(rng.Uint32())
	r.seqLen = uint32(len(cfg.Payload))
	if cfg.Flags&craft.FlagSYN != 0 {
		r.seqLen++
	}
	if cfg.Flags&craft.FlagFIN != 0 {
		r.seqLen++
	}
	r.rate = cfg.Rate
	if cfg.Flood {
		r.rate = 0
	}
	r.pool = make([][]byte, 0, batchMax)
	r.stats.Source, r.stats.PortLow, r.stats.PortHigh, r.stats.Interface = s.hosts[0].src, s.low, s.high, s.iface
	return r
}

// emit hands r.ev to the handler if it wants kind.
func (r *run) emit(kind EventKind) {
	if r.cfg.Handler == nil || !r.cfg.Events.Has(kind) {
		return
	}
	r.ev.Kind = kind
	r.cfg.Handler.Event(&r.ev)
	r.ev = Event{}
}

func (r *run) wants(kind EventKind) bool {
	return r.cfg.Handler != nil && r.cfg.Events.Has(kind)
}

// waitFor is the current wait for an answer.
func (r *run) waitFor() time.Duration {
	if r.cfg.Wait > 0 {
		return r.cfg.Wait
	}
	if !r.timed {
		return InitialWait
	}
	// RFC 6298 §2: SRTT + 4*RTTVAR, within nmap's bounds.
	return min(max(r.srtt+4*r.rttvar, MinWait), InitialWait)
}

// sample feeds a round-trip time to the adaptive wait (RFC 6298 §2).
func (r *run) sample(rtt time.Duration) {
	if !r.timed {
		r.srtt, r.rttvar, r.timed = rtt, rtt/2, true
		return
	}
	d := r.srtt - rtt
	if d < 0 {
		d = -d
	}
	r.rttvar = (3*r.rttvar + d) / 4
	r.srtt = (7*r.srtt + rtt) / 8
}

// loop is a scan, a ping or a flood: probes to every target, Count each,
// at the rate, with retransmissions, until every probe is answered or
// waited for (or ctx ends).
func (r *run) loop(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.drain()
		if r.sendErr != nil {
			return r.sendErr
		}
		now := time.Now()
		r.expire(now)
		r.s.checkPending(now)
		sent := 0
		for n := r.due(now); sent < n; sent++ {
			ti, ok := r.nextProbe()
			if !ok {
				break
			}
			if err := r.probe(ti, r.cfg.IP.TTL); err != nil {
				return err
			}
			if len(r.queue) >= batchMax-8 {
				if err := r.flush(); err != nil {
					return err
				}
			}
		}
		r.paced += int64(sent)
		if err := r.flush(); err != nil {
			return err
		}
		// Done when every probe is answered or waited for; a spoofed
		// run expects no answer at all.
		if r.newDone && len(r.retry) == 0 && (r.outstanding == 0 || !r.s.listen) {
			r.drain()
			return nil
		}
		if sent > 0 && r.rate == 0 {
			continue // flooding: straight on
		}
		r.waitUntil(ctx, r.nextWake(now))
	}
}

// due is how many probes may go now.
func (r *run) due(now time.Time) int {
	if r.start.IsZero() {
		r.start = now
	}
	if r.rate == 0 {
		return batchMax
	}
	allowed := int64(r.rate*now.Sub(r.start).Seconds()) + 1
	return int(min(max(allowed-r.paced, 0), batchMax))
}

// nextWake is when the loop has something to do: the next probe's turn,
// the next wait's end, capped so that the loop looks around every 100 ms.
func (r *run) nextWake(now time.Time) time.Time {
	wake := now.Add(100 * time.Millisecond)
	if r.rate > 0 && (!r.newDone || len(r.retry) > 0) {
		next := r.start.Add(time.Duration(float64(r.paced) / r.rate * float64(time.Second)))
		if next.Before(wake) {
			wake = next
		}
	}
	if r.dlHead < len(r.deadlines) {
		if at := time.Unix(0, r.deadlines[r.dlHead].sent).Add(r.waitFor()); at.Before(wake) {
			wake = at
		}
	}
	return wake
}

// waitUntil waits for a captured frame, ctx, or t.
func (r *run) waitUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	if r.s.cap == nil {
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
		return
	}
	wctx, cancel := context.WithDeadline(ctx, t)
	_ = r.s.cap.WaitFrame(wctx)
	cancel()
}

// nextProbe picks the next target to probe: a retransmission first, then
// the next in turn (targets in order, Count rounds).
func (r *run) nextProbe() (int32, bool) {
	for len(r.retry) > 0 {
		ti := r.retry[0]
		r.retry = r.retry[1:]
		if t := &r.tgt[ti]; !t.tcpSettled && !t.icmpSet {
			r.stats.Retransmitted++
			return ti, true
		}
	}
	if r.newDone {
		return 0, false
	}
	ti := int32(r.nextTarget)
	r.nextTarget++
	if r.nextTarget == len(r.tgt) {
		r.nextTarget = 0
		r.round++
		if r.cfg.Count > 0 && r.round >= r.cfg.Count {
			r.newDone = true
		}
	}
	return ti, true
}

// probe builds the next probe to target ti with the given TTL and queues
// it (and its fragments).
func (r *run) probe(ti int32, ttl uint8) error {
	cfg := r.cfg
	num := r.num
	r.num++
	t := &r.tgt[ti]
	t.probes++
	t.lastNum = num
	h := &r.s.hosts[r.s.tHost[ti]]
	target := r.s.targets[ti]

	sport := r.s.low
	switch {
	case r.cfg.RandomSrcPort:
		sport += uint16(r.rng.IntN(int(r.s.high-r.s.low) + 1))
	case r.s.high > r.s.low:
		sport += uint16(num % uint32(int(r.s.high-r.s.low)+1))
	}
	seg := craft.TCP{SrcPort: sport, DstPort: target.Port, Seq: craft.Seq(r.seqBase + num), Flags: cfg.Flags,
		Window: cfg.Window, Urgent: cfg.Urgent, Options: cfg.Options, Payload: cfg.Payload}
	if cfg.SeqSet {
		seg.Seq = cfg.Seq
	}
	switch {
	case cfg.AckSet:
		seg.Ack = cfg.Ack
	case cfg.Flags&craft.FlagACK != 0:
		seg.Ack = craft.Seq(r.ackBase + num)
	}
	if ttl == 0 {
		ttl = 64
	}
	opts := craft.BuildOptions{BadIPChecksum: cfg.IP.BadIPChecksum, BadTCPChecksum: cfg.IP.BadTCPChecksum}
	buf := r.buffer()
	var pkt []byte
	var err error
	if target.Addr.Is4() {
		id := cfg.IP.ID
		if !cfg.IP.IDSet {
			if id = r.idBase + uint16(num); id == 0 {
				id = 1 // the raw socket would put its own ID in place of 0
			}
		}
		df := cfg.IP.DF || (!cfg.IP.NoDF && cfg.IP.Fragment == 0)
		ip := craft.IPv4{DSCP: cfg.IP.DSCP, ECN: cfg.IP.ECN, ID: id, DontFragment: df,
			MoreFragments: cfg.IP.MF, FragmentOffset: uint16(cfg.IP.FragOffset / 8), TTL: ttl, Src: h.src, Dst: target.Addr}
		pkt, err = craft.AppendIPv4TCP(buf, &ip, &seg, opts)
	} else {
		ip := craft.IPv6{TrafficClass: cfg.IP.DSCP<<2 | cfg.IP.ECN, HopLimit: ttl, Src: h.src, Dst: target.Addr}
		pkt, err = craft.AppendIPv6TCP(buf, &ip, &seg, opts)
	}
	if err != nil {
		return &ConfigError{fmt.Errorf("building the probe to %v: %w", target, err)}
	}
	rec := &r.recs[num&r.recMask]
	if rec.status == probePending && rec.sentAt != 0 {
		r.expireRec(rec, true) // the ring came round: its wait is over
	}
	*rec = probeRec{num: num, target: ti, index: t.probes, sport: sport, ttl: ttl, status: probePending}
	r.outstanding++
	r.stats.Probes++
	if cfg.IP.Fragment > 0 {
		var frags [][]byte
		if target.Addr.Is4() {
			frags, err = craft.FragmentIPv4(pkt, cfg.IP.Fragment)
		} else {
			id := uint32(cfg.IP.ID)
			if !cfg.IP.IDSet {
				id = r.rng.Uint32()
			}
			frags, err = craft.FragmentIPv6(pkt, cfg.IP.Fragment, id)
		}
		if err != nil {
			return &ConfigError{fmt.Errorf("fragmenting the probe to %v: %w", target, err)}
		}
		for i, f := range frags {
			r.queue = append(r.queue, queued{data: f, hop: h.hop, target: ti, num: num, probe: true, first: i == 0})
		}
		return nil
	}
	r.queue = append(r.queue, queued{data: pkt, hop: h.hop, target: ti, num: num, probe: true, first: true})
	return nil
}

// buffer returns an empty buffer for one packet, reused across flushes.
func (r *run) buffer() []byte {
	if r.poolUse == len(r.pool) {
		r.pool = append(r.pool, make([]byte, 0, 2048))
	}
	b := r.pool[r.poolUse][:0]
	r.poolUse++
	return b
}

// flush sends what is queued: each packet through its next hop's link
// sender when the next hop's address is known, else through the raw
// socket; probes get their send time and their wait.
func (r *run) flush() error {
	if len(r.queue) == 0 {
		return nil
	}
	now := time.Now()
	nowNs := now.UnixNano()
	if r.start.IsZero() {
		r.start = now
	}
	for i := range r.queue {
		q := &r.queue[i]
		if q.probe && q.first {
			rec := &r.recs[q.num&r.recMask]
			rec.sentAt = nowNs
			r.deadlines = append(r.deadlines, deadline{num: q.num, sent: nowNs})
		}
	}
	// Group by sender: the raw socket, and each link (usually one).
	r.rawOut = r.rawOut[:0]
	var link *capture.LinkSender
	for i := range r.queue {
		q := &r.queue[i]
		hop := q.hop
		if hop != nil && !hop.resolved && !hop.sentRaw {
			hop.sentRaw = true
			r.s.pending = append(r.s.pending, hop)
		}
		if hop == nil || !hop.resolved {
			r.rawOut = append(r.rawOut, q.data)
			continue
		}
		if link != nil && hop.link != link {
			if err := r.sendLink(link); err != nil {
				return err
			}
		}
		link = hop.link
		r.linkOut = append(r.linkOut, capture.LinkPacket{Data: q.data, To: hop.mac})
	}
	r.stats.Packets += len(r.queue)
	if link != nil {
		if err := r.sendLink(link); err != nil {
			return err
		}
	}
	if r.s.txStamps {
		r.injStamps.add(len(r.rawOut))
	}
	for sent := 0; sent < len(r.rawOut); {
		n, err := r.s.inj.SendBatch(r.rawOut[sent:])
		sent += n
		if err != nil {
			if !r.skippable(err) {
				return err
			}
			sent++
		}
	}
	r.readTxStamps()
	// The pcap and the events of what went, after the system calls: a
	// JSON line formatted between a probe's send time and its send was
	// most of the gap between the median SYN->SYN-ACK time and the
	// minimum (docs/PERFORMANCE.md). A probe's time is its transmit
	// timestamp, read just above, when the kernel gave one (else the
	// send's), so that a pcap's SYN->SYN-ACK delta is the RTT shown.
	for i := range r.queue {
		q := &r.queue[i]
		at := now
		if q.probe && q.first {
			if w := r.recs[q.num&r.recMask].wireAt; w != 0 {
				at = time.Unix(0, w) // as the answer's time: the same clock
			}
		}
		if r.cfg.Pcap != nil {
			_ = r.cfg.Pcap.WritePacket(at, q.data)
		}
		kind := EventSent
		if !q.probe {
			kind = EventReset
		}
		if r.wants(kind) {
			r.ev.Time, r.ev.Target, r.ev.Raw = at, r.s.targets[q.target], q.data
			if q.probe {
				r.ev.Probe = int(r.recs[q.num&r.recMask].index)
			}
			if craft.ParsePacket(craft.LinkRaw, q.data, &r.pkt, craft.PacketOptions{}) == nil {
				r.ev.Packet = &r.pkt
			}
			r.emit(kind)
		}
	}
	r.queue = r.queue[:0]
	r.poolUse = 0
	return nil
}

// sendLink sends r.linkOut through link.
func (r *run) sendLink(link *capture.LinkSender) error {
	out := r.linkOut
	if r.s.txStamps {
		due := r.linkStamps[link]
		if due == nil {
			due = &stampsDue{}
			if r.linkStamps == nil {
				r.linkStamps = map[*capture.LinkSender]*stampsDue{}
			}
			r.linkStamps[link] = due
		}
		due.add(len(out))
	}
	for sent := 0; sent < len(out); {
		n, err := link.SendBatch(out[sent:])
		sent += n
		if err != nil {
			if !r.skippable(err) {
				return err
			}
			sent++
		}
	}
	r.linkOut = r.linkOut[:0]
	return nil
}

// skippable says whether a send error costs only that packet: the
// device's queue or the socket's buffer was full, or a firewall rule
// refused it (counted as a send drop). Anything else ends the run.
func (r *run) skippable(err error) bool {
	// EPERM: a firewall OUTPUT rule of this host refused the packet
	// (for the raw socket), which is the user's to decide.
	if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EPERM) {
		r.stats.SendDrops++
		return true
	}
	if errors.Is(err, unix.EMSGSIZE) {
		r.sendErr = err
	}
	return false
}

// expire ends the waits that are over: a probe that drew nothing is sent
// again when its target has retries left, else its target keeps what it
// has (or nothing).
func (r *run) expire(now time.Time) {
	nowNs := now.UnixNano()
	wait := int64(r.waitFor())
	for r.dlHead < len(r.deadlines) && r.deadlines[r.dlHead].sent+wait <= nowNs {
		d := r.deadlines[r.dlHead]
		r.dlHead++
		if rec := &r.recs[d.num&r.recMask]; rec.num == d.num && rec.status == probePending {
			r.expireRec(rec, false)
		}
	}
	if r.dlHead > 4096 && r.dlHead*2 > len(r.deadlines) {
		r.deadlines = append(r.deadlines[:0], r.deadlines[r.dlHead:]...)
		r.dlHead = 0
	}
}

// expireRec ends a pending probe's wait; early: its ring slot is needed.
func (r *run) expireRec(rec *probeRec, early bool) {
	rec.status = probeExpired
	r.outstanding--
	t := &r.tgt[rec.target]
	retry := !early && r.cfg.Count == 1 && !r.cfg.Traceroute && r.s.listen &&
		!t.tcpSettled && !t.icmpSet && int(t.probes) <= r.cfg.Retries && t.lastNum == rec.num
	if retry {
		r.retry = append(r.retry, rec.target)
	}
	if r.wants(EventTimeout) {
		r.ev.Time, r.ev.Target, r.ev.Probe, r.ev.Retry = time.Now(), r.s.targets[rec.target], int(rec.index), retry
		r.emit(EventTimeout)
	}
}

// drain takes every frame the capture holds and answers SYN-ACKs.
func (r *run) drain() {
	if r.s.cap == nil {
		return
	}
	// The transmit timestamps first: an answer is timed from its probe's.
	r.readTxStamps()
	r.readAt = time.Now()
	for {
		ok, err := r.s.cap.TakeFrame(r.handleFrame)
		if !ok || err != nil {
			break
		}
	}
	if len(r.queue) > 0 {
		if err := r.flush(); err != nil && r.sendErr == nil {
			r.sendErr = err
		}
	}
}

// handleFrame reads one captured frame: a target's TCP answer or an ICMP
// error about a probe.
func (r *run) handleFrame(f capture.Frame) {
	if r.cfg.Pcap != nil {
		_ = r.cfg.Pcap.WriteTruncated(f.Time, f.Data, f.Length)
	}
	err := craft.ParsePacket(craft.LinkRaw, f.Data, &r.pkt, craft.PacketOptions{PartialChecksum: f.ChecksumNotReady})
	if err == nil {
		r.handleTCP(f)
		return
	}
	var nt *craft.NotTCPError
	if errors.As(err, &nt) && (nt.Protocol == craft.ProtocolICMP || nt.Protocol == craft.ProtocolICMPv6) {
		if craft.ParseICMPError(craft.LinkRaw, f.Data, &r.icmp) == nil && r.icmp.Quote.HasPorts {
			r.handleICMP(f)
			return
		}
	}
	r.stats.Unmatched++
}

// match finds the probe an answer is about: by its number when the
// sequence space carries it, else the target's latest probe. ok false:
// no target.
func (r *run) match(target netip.AddrPort, num uint32, numKnown bool, sport uint16) (int32, *probeRec, bool) {
	ti, ok := r.s.targetOf(target)
	if !ok {
		return 0, nil, false
	}
	if !numKnown {
		num = r.tgt[ti].lastNum
	}
	rec := &r.recs[num&r.recMask]
	if rec.num != num || rec.target != ti || rec.sport != sport || rec.sentAt == 0 {
		return ti, nil, true
	}
	return ti, rec, true
}

// readTxStamps reads the kernel's transmit timestamps of what was sent
// (when the session asked for them) and gives each probe its time on the
// wire.
func (r *run) readTxStamps() {
	if !r.s.txStamps {
		return
	}
	if r.injStamps.unread > 0 {
		n, _ := r.s.inj.TxStamps(r.txStamp)
		r.injStamps.read(n)
	}
	for link, due := range r.linkStamps {
		if due.unread > 0 {
			n, _ := link.TxStamps(r.txStamp)
			due.read(n)
		}
	}
}

// stampsDue counts a sender's packets whose transmit timestamps have not
// been read.
type stampsDue struct {
	unread int
	sent   bool // packets went since the last read
}

func (d *stampsDue) add(n int) {
	d.unread += n
	d.sent = d.sent || n > 0
}

// read records n timestamps read. A read that found none, with nothing
// sent since the one before, gives the rest up: a packet dropped before
// the device's driver has no timestamp coming.
func (d *stampsDue) read(n int) {
	d.unread = max(d.unread-n, 0)
	if n == 0 && !d.sent {
		d.unread = 0
	}
	d.sent = false
}

// txStamp finds the probe a transmit timestamp is of, as an answer is
// matched to its probe (match), and records the time.
func (r *run) txStamp(ts capture.TxStamp) {
	if craft.ParsePacket(craft.LinkRaw, ts.Packet, &r.txPkt, craft.PacketOptions{PartialChecksum: true}) != nil {
		return // not TCP, or a fragment after the first
	}
	seg := &r.txPkt.TCP
	if seg.Flags != r.cfg.Flags {
		return // our RST
	}
	num, known := uint32(seg.Seq)-r.seqBase, !r.cfg.SeqSet
	_, rec, ok := r.match(netip.AddrPortFrom(r.txPkt.Dst(), seg.DstPort), num, known, seg.SrcPort)
	if !ok || rec == nil || rec.wireAt != 0 {
		return
	}
	rec.wireAt = ts.Time.UnixNano()
}

// answered records that rec drew an answer at time at (the frame's
// capture time), and returns the round-trip time: from the probe's
// transmit timestamp when the kernel gave one, else from just before
// its send.
func (r *run) answered(ti int32, rec *probeRec, at time.Time) time.Duration {
	if rec == nil {
		return 0
	}
	sent := rec.sentAt
	if rec.wireAt != 0 {
		sent = rec.wireAt
		if rec.status == probePending {
			r.stats.WireTimed++
		}
	}
	rtt := at.Sub(time.Unix(0, sent))
	if rtt < 0 {
		rtt = 0
	}
	switch rec.status {
	case probePending:
		rec.status = probeAnswered
		r.outstanding--
		r.stats.Answered++
		r.tgt[ti].answered++
		r.rtts.add(rtt)
		if u := r.readAt.Sub(time.Unix(0, rec.sentAt)); u >= 0 {
			r.userRTTs.add(u)
		}
		r.sample(rtt)
	case probeExpired:
		rec.status = probeAnswered
		r.stats.Late++
		r.stats.Answered++
		r.tgt[ti].answered++
	}
	return rtt
}

// handleTCP reads a target's TCP answer in r.pkt.
func (r *run) handleTCP(f capture.Frame) {
	seg := &r.pkt.TCP
	src := netip.AddrPortFrom(r.pkt.Src(), seg.SrcPort)
	var num uint32
	known := false
	switch {
	case seg.Flags&craft.FlagACK != 0 && !r.cfg.SeqSet:
		num, known = uint32(seg.Ack)-r.seqLen-r.seqBase, true
	case seg.Flags&craft.FlagRST != 0 && r.cfg.Flags&craft.FlagACK != 0 && !r.cfg.AckSet:
		num, known = uint32(seg.Seq)-r.ackBase, true // RFC 9293 §3.10.7.1: <SEQ=SEG.ACK><CTL=RST>
	}
	ti, rec, ok := r.match(src, num, known, seg.DstPort)
	if !ok {
		r.stats.Unmatched++
		return
	}
	r.stats.Replies++
	rtt := r.answered(ti, rec, f.Time)
	t := &r.tgt[ti]
	t.replied = true
	if !t.tcpSettled {
		if v := verdictOf(r.kind, seg.Flags); v != noVerdict {
			t.verdict, t.rtt, t.replyTTL, t.tcpSettled = v, int64(rtt), ipTTL(&r.pkt), true
		}
	}
	if r.hopAns != nil && rec != nil {
		if _, seen := r.hopAns[rec.num]; !seen {
			r.hopAns[rec.num] = hopAnswer{from: src.Addr(), rtt: rtt}
		}
	}
	if r.wants(EventReply) {
		r.ev.Time, r.ev.Target, r.ev.Packet, r.ev.Raw, r.ev.RTT = f.Time, r.s.targets[ti], &r.pkt, f.Data, rtt
		if rec != nil {
			r.ev.Probe = int(rec.index)
		}
		r.emit(EventReply)
	}
	// Our probe drew a SYN-ACK: fsm says what a port with no connection
	// answers (RFC 9293 §3.10.7.1), so the peer keeps nothing half-open.
	// Other answers are left alone: an ACK may come from a live
	// connection of this host's (a probe sent into it with --sport), and
	// an RST there would end it.
	if r.cfg.NoReset || seg.Flags&(craft.FlagSYN|craft.FlagACK|craft.FlagRST) != craft.FlagSYN|craft.FlagACK {
		return
	}
	rst, due := fsm.ResetFor(seg)
	if !due {
		return
	}
	h := &r.s.hosts[r.s.tHost[ti]]
	buf := r.buffer()
	var pkt []byte
	var err error
	r.rstID++
	if r.pkt.IPVersion == 4 {
		ip := craft.IPv4{ID: r.rstID | 1, DontFragment: true, TTL: 64, Src: r.pkt.Dst(), Dst: src.Addr()}
		pkt, err = craft.AppendIPv4TCP(buf, &ip, &rst, craft.BuildOptions{})
	} else {
		ip := craft.IPv6{HopLimit: 64, Src: r.pkt.Dst(), Dst: src.Addr()}
		pkt, err = craft.AppendIPv6TCP(buf, &ip, &rst, craft.BuildOptions{})
	}
	if err != nil {
		return
	}
	r.stats.Resets++
	r.queue = append(r.queue, queued{data: pkt, hop: h.hop, target: ti})
}

// ipTTL is the TTL or hop limit of p.
func ipTTL(p *craft.Packet) uint8 {
	if p.IPVersion == 6 {
		return p.IPv6.HopLimit
	}
	return p.IPv4.TTL
}

// verdictOf reads a TCP answer to a probe of kind k (nmap's readings of
// SYN, ACK and FIN/NULL/Xmas scans). An answer that says nothing about
// the port (a bare ACK, which a reused 4-tuple draws) gives noVerdict.
func verdictOf(k probeKind, f craft.Flags) verdict {
	rst := f&craft.FlagRST != 0
	switch {
	case k == kindACK && rst:
		return unfilteredRST
	case rst:
		return closedRST
	case k == kindSYN && f&(craft.FlagSYN|craft.FlagACK) == craft.FlagSYN|craft.FlagACK:
		return openSYNACK
	}
	return noVerdict
}

// stateOf is the state and reason of t's verdict, silence read by the
// probes' kind k.
func stateOf(t *tstate, k probeKind) (State, string) {
	switch t.verdict {
	case openSYNACK:
		return Open, ReasonSYNACK
	case closedRST:
		return Closed, ReasonRST
	case unfilteredRST:
		return Unfiltered, ReasonRST
	case filteredICMP:
		return Filtered, reasonOf(&craft.ICMPError{IPVersion: t.icmpVer, Type: t.icmpType, Code: t.icmpCode})
	}
	if k == kindFIN {
		return OpenFiltered, ReasonNoResponse
	}
	return Filtered, ReasonNoResponse
}

// reasonOf names an ICMP error as a reason: icmp-unreach-<code name> for
// destination unreachable, icmp-<code name> for the rest.
func reasonOf(e *craft.ICMPError) string {
	if e.TypeName() == "unreachable" {
		return "icmp-unreach-" + e.Name()
	}
	return "icmp-" + e.Name()
}

// handleICMP reads an ICMP error in r.icmp that quotes one of our probes.
func (r *run) handleICMP(f capture.Frame) {
	q := &r.icmp.Quote
	var num uint32
	known := q.HasSeq && !r.cfg.SeqSet
	if known {
		num = uint32(q.Seq) - r.seqBase
	}
	ti, rec, ok := r.match(netip.AddrPortFrom(q.Dst(), q.DstPort), num, known, q.SrcPort)
	if !ok {
		r.stats.Unmatched++
		return
	}
	r.stats.ICMP++
	rtt := r.answered(ti, rec, f.Time)
	t := &r.tgt[ti]
	// On a traceroute's way, a router's time-exceeded says where the
	// probe got to, not what the target is.
	onTheWay := r.hopAns != nil && r.icmp.TypeName() == "time-exceeded"
	if !t.tcpSettled && !t.icmpSet && !onTheWay {
		t.verdict, t.rtt, t.replyTTL, t.icmpSet = filteredICMP, int64(rtt), r.icmp.TTL(), true
		t.icmpVer, t.icmpType, t.icmpCode = r.icmp.IPVersion, r.icmp.Type, r.icmp.Code
		r.from[ti] = r.icmp.From().Unmap()
	}
	if r.hopAns != nil && rec != nil {
		if _, seen := r.hopAns[rec.num]; !seen {
			e := r.icmp
			r.hopAns[rec.num] = hopAnswer{from: r.icmp.From().Unmap(), rtt: rtt, icmp: &e}
		}
	}
	if r.wants(EventICMP) {
		r.ev.Time, r.ev.Target, r.ev.ICMP, r.ev.Raw, r.ev.RTT = f.Time, r.s.targets[ti], &r.icmp, f.Data, rtt
		if rec != nil {
			r.ev.Probe = int(rec.index)
		}
		r.emit(EventICMP)
	}
}

// finish takes the last frames, sends the last RSTs and reads the ring's
// drop counter.
func (r *run) finish() {
	r.drain()
	if !r.start.IsZero() {
		r.stats.Elapsed = time.Since(r.start)
	}
	if r.s.cap != nil {
		if st, err := r.s.cap.Stats(); err == nil {
			r.stats.RingDrops = st.Drops
		}
	}
	r.rtts.fill(&r.stats)
	r.stats.RTTUserMin, r.stats.RTTUserMedian = r.userRTTs.min, r.userRTTs.median()
}

// result is the run's Result: each target's verdict (silence read by the
// probe's kind), the hops, the counters.
func (r *run) result() *Result {
	res := &Result{Targets: make([]TargetResult, len(r.tgt)), Hops: r.hops, Stats: r.stats}
	for i := range r.tgt {
		t := &r.tgt[i]
		tr := TargetResult{Target: r.s.targets[i], RTT: time.Duration(t.rtt), ReplyTTL: t.replyTTL,
			Probes: int(t.probes), Answered: int(t.answered), Responded: t.replied}
		tr.State, tr.Reason = stateOf(t, r.kind)
		if t.verdict == filteredICMP {
			tr.From = r.from[int32(i)]
		}
		res.Targets[i] = tr
	}
	return res
}
