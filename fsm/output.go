package fsm

import (
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// transmit sends whatever the state allows: the SYN (or SYN-ACK), data and
// FIN within the send window, and a pure ACK when one is owed. It is called
// at the end of every entry point, so segments always reflect the latest
// state.
func (c *Conn) transmit(now time.Time) {
	switch c.state {
	case Closed, Listen:
		c.rcv.ackNow = false
		return
	case SynSent, SynReceived:
		// RFC 9293 §3.10.1 / §3.10.7.2: the SYN (SYN-ACK once we know the
		// peer's ISN) at ISS; after an RTO snd.nxt goes back to ISS.
		if c.snd.nxt == c.snd.iss {
			c.sendSYN(now)
		}
	case TimeWait, FinWait2:
		// Everything of ours is acknowledged; only ACKs remain.
	default:
		if c.snd.nxt == c.snd.iss {
			// FIN-WAIT-1 or LAST-ACK entered before our SYN was acknowledged:
			// the SYN-ACK comes first.
			c.sendSYN(now)
		}
		if c.snd.synAcked {
			c.sendData(now)
		}
	}
	if c.rcv.ackNow && c.state != SynSent {
		c.emit(c.ackSeq(), craft.FlagACK, nil, now)
	}
	if c.state == TimeWait && c.tmr.twProbe == twProbeDue {
		// Config.TimeWaitProbe, after the ACK of the peer's FIN: an
		// out-of-window ACK (our FIN's sequence number, like a
		// keep-alive probe), which a peer in LAST-ACK answers with an
		// ACK without taking it as the ACK of its FIN, and a peer that
		// closed answers with a reset.
		c.tmr.twProbe = twProbeSent
		c.emit(c.snd.max.Sub(1), craft.FlagACK, nil, now)
		c.events = append(c.events, Event{Kind: Retransmit, Seq: c.snd.max.Sub(1), Cause: CauseTimeWaitProbe})
	}
	c.armTimers(now)
}

// ackSeq is the sequence number of a pure ACK: SND.MAX, or the right edge
// of the peer's window where SND.MAX lies beyond it, as Linux does
// (tcp_acceptable_seq). A zero-window probe or data sent before the peer
// shrank its window may put SND.MAX past the edge; an ACK carrying that
// number is "not acceptable" to a peer whose window is shut (RFC 9293
// §3.10.7.4 first), which then drops it unread, ACK field and all, and
// the data it acknowledges is sent again on the RTO, ever more slowly.
func (c *Conn) ackSeq() craft.Seq {
	if c.snd.synAcked {
		if edge := c.snd.una.Add(c.snd.wnd); edge.LessThan(c.snd.max) {
			return edge
		}
	}
	return c.snd.max
}

// sendSYN emits our SYN (active open) or SYN-ACK (passive or simultaneous
// open) with the options of RFC 7323 §2-3, RFC 2018 and RFC 9293 §3.7.1.
func (c *Conn) sendSYN(now time.Time) {
	flags := craft.FlagSYN
	if c.state != SynSent {
		flags |= craft.FlagACK
	}
	retrans := c.snd.max != c.snd.iss
	c.emit(c.snd.iss, flags, nil, now)
	c.snd.nxt = c.snd.iss.Add(1)
	if c.snd.max.LessThan(c.snd.nxt) {
		c.snd.max = c.snd.nxt
	}
	if retrans {
		c.noteRetransmit(c.snd.iss, 1, CauseSYNRetransmit)
	} else {
		c.rtt.start(c.snd.iss, now)
	}
}

// sendData sends what the windows allow: first the segments the
// scoreboard deems lost, lowest first (RFC 6675 §4 NextSeg rule 1), then
// new data from SND.MAX (rule 2). The congestion window bounds pipe (RFC
// 6675 §5 step C; without losses pipe is the FlightSize of RFC 5681 §3.1),
// and new data never goes beyond SND.UNA+SND.WND (RFC 9293 §3.8.6).
func (c *Conn) sendData(now time.Time) {
	dataEnd := c.snd.dataEnd()
	if c.snd.una == c.snd.max && c.snd.max.LessThan(dataEnd) {
		c.cwndAfterIdle(now)
	}
	cwnd := c.cwnd()
	for {
		s := c.sb.nextLost(c.snd.max)
		if s == nil {
			break
		}
		pipe := c.pipe()
		if !c.rec.forceRtx && pipe > 0 && pipe+s.size() > cwnd {
			c.noteCwndLimited()
			break
		}
		if s = c.fitWindow(s); s == nil {
			// Beyond a window the peer has shrunk since; into a zero
			// window the RTO sends probes.
			break
		}
		c.retransmit(s, now, c.retransmitCause())
		c.rec.forceRtx = false
		cwnd = c.cwnd()
	}
	for {
		avail := int(c.snd.max.Until(dataEnd))
		finPending := c.snd.finQueued && c.snd.max.LessThanEq(dataEnd)
		if avail == 0 && !finPending {
			return
		}
		// The peer's window (RFC 9293 §3.8.6) and the congestion window
		// against what is in flight (RFC 5681 §3.1, RFC 6675 §5).
		usable := int(c.snd.max.Until(c.snd.edge()))
		room := 0
		if p := c.pipe(); p < cwnd {
			room = int(cwnd - p)
		}
		n := min(avail, c.snd.mss, usable, room)
		// The FIN takes one sequence number and goes with the last data
		// when it fits in both windows too.
		fin := finPending && n == avail && usable > n && room > n
		if n < min(avail, c.snd.mss, usable) || (finPending && n == avail && !fin && usable > n) {
			c.noteCwndLimited()
		}
		if n == 0 && !fin {
			return
		}
		if n < c.snd.mss && !fin {
			outstanding := c.snd.una != c.snd.max
			if n == avail {
				if c.snd.corked {
					// More data follows at once (CommitSendMore):
					// let it fill the segment.
					if c.tmr.corkAt.IsZero() {
						c.tmr.corkAt = now.Add(corkTimeout)
					}
					return
				}
				// Nagle (RFC 9293 §3.7.4): hold a small segment while
				// data is unacknowledged.
				if !c.cfg.NoDelay && outstanding {
					return
				}
			} else if outstanding && n < int(c.snd.maxWnd/2) {
				// Sender-side silly window avoidance (RFC 9293
				// §3.8.6.2.1): wait for a full segment or half the
				// largest window; with nothing outstanding we send what
				// fits instead of running an override timer.
				return
			}
		}
		c.emitData(c.snd.max, n, fin, dataEnd, now)
	}
}

// noteCwndLimited records that the congestion window, not the
// application or the peer's window, stopped the sender: only then may the
// window grow (RFC 7661 §4.3, as Linux's tcp_is_cwnd_limited).
func (c *Conn) noteCwndLimited() {
	c.snd.cwndLimited = true
	c.snd.cwndLimitedTo = c.snd.max
}

// retransmitCause says why the next lost segment goes again.
func (c *Conn) retransmitCause() Cause {
	switch {
	case c.rec.phase == recoveryRTO:
		return CauseRTO
	case c.rec.fastRtx:
		c.rec.fastRtx, c.rec.partialACK = false, false
		return CauseFastRetransmit
	case c.rec.partialACK:
		c.rec.partialACK = false
		return CausePartialACK
	case c.opt.sack:
		return CauseSACKRecovery
	}
	return CauseLossRecovery
}

// payloadAt returns the n queued bytes from seq on for a segment: with
// Config.ReuseOutput a slice of the send buffer itself when they lie in one
// piece of the ring (no copy; the caller sends it before it calls again,
// and nothing overwrites unacknowledged bytes before then), else a copy.
func (c *Conn) payloadAt(seq craft.Seq, n int) []byte {
	if n == 0 {
		return nil
	}
	off := int(c.snd.bufSeq.Size(seq))
	if c.slab.reuse {
		if p, ok := c.snd.buf.slice(off, n); ok {
			return p
		}
	}
	payload := c.slab.payload(n)
	c.snd.buf.readAt(off, payload)
	return payload
}

// emitData sends n new bytes from seq = SND.MAX (and the FIN if fin) and
// puts the segment on the scoreboard.
func (c *Conn) emitData(seq craft.Seq, n int, fin bool, dataEnd craft.Seq, now time.Time) {
	payload := c.payloadAt(seq, n)
	flags := craft.FlagACK
	if fin {
		flags |= craft.FlagFIN
	}
	end := seq.Add(craft.Size(n))
	if n > 0 && end == dataEnd {
		// PSH on the segment that carries the last queued byte, i.e. the
		// end of the latest write (RFC 9293 §3.9.1 lets the sender
		// collapse PSHs of successive writes).
		flags |= craft.FlagPSH
	}
	if fin {
		end = end.Add(1)
	}
	c.emit(seq, flags, payload, now)
	c.snd.lastDataSent = now
	c.stats.BytesSent += uint64(n)
	if c.rec.phase == recoveryNone {
		// Data beyond cwnd, sent because duplicate ACKs or SACKs said
		// segments had left the network, is limited transmit (RFC 3042).
		if over := int64(seq.Size(end)) + int64(c.snd.una.Size(seq)) - int64(c.cc.Cwnd()); over > 0 {
			c.rec.ltBytes += craft.Size(min(over, int64(seq.Size(end))))
		}
	}
	c.snd.nxt = end
	c.snd.max = end
	c.sb.q.push(txSeg{start: seq, end: end, sent: c.clock(now)})
	c.tmr.tlpAt = time.Time{} // RFC 8985 §7.2: new data restarts the probe timer
	// Time one segment per round trip (RFC 6298 §3, Karn's rule: never a
	// retransmitted one).
	c.rtt.start(seq, now)
}

// noteRetransmit counts a segment sent again and reports it.
func (c *Conn) noteRetransmit(seq craft.Seq, size craft.Size, cause Cause) {
	c.stats.Retransmits++
	if cause.afterTimeout() {
		c.stats.TimeoutRetransmits++
	} else {
		c.stats.RecoveryRetransmits++
	}
	c.events = append(c.events, Event{Kind: Retransmit, Seq: seq, Bytes: int(size), Cause: cause})
}

// emit builds one segment from the current state and queues it.
func (c *Conn) emit(seq craft.Seq, flags craft.Flags, payload []byte, now time.Time) {
	syn := flags&craft.FlagSYN != 0
	seg := craft.TCP{
		SrcPort: c.cfg.LocalPort,
		DstPort: c.cfg.RemotePort,
		Seq:     seq,
		Flags:   flags,
		Payload: payload,
	}
	if flags&craft.FlagACK != 0 {
		seg.Ack = c.rcv.nxt
		c.rcv.lastAckSent = c.rcv.nxt
		c.rcv.ackNow = false
		c.rcv.unacked = 0
		c.tmr.delackAt = time.Time{}
	}
	seg.Window = c.windowField(syn)
	if syn {
		seg.Options = c.synOptions(now)
	} else {
		seg.Options = c.segOptions(now, len(payload))
	}
	c.out = append(c.out, seg)
	c.stats.SegsSent++
}

// freeSpace is the buffer space we may offer: what the application has not
// taken, less 2^shift-1 bytes held back so that rounding a scaled window up
// (to keep the right edge from moving back) never offers more than the
// buffer holds.
func (c *Conn) freeSpace() int {
	free := c.cfg.RecvBufferSize - c.rcv.buf.n - (1<<c.rcv.shift - 1)
	if free < 0 {
		return 0
	}
	return free
}

// windowField computes the window to advertise and records its right edge.
func (c *Conn) windowField(syn bool) uint16 {
	free := c.freeSpace()
	if syn {
		// RFC 7323 §2.2: the window of a SYN is never scaled.
		w := free
		if w > 0xffff {
			w = 0xffff
		}
		c.rcv.synWnd = craft.Size(w)
		// The first window of the connection: nothing was promised
		// before, so there is nothing to compare with (rcv.adv still holds
		// its zero value, which serial arithmetic may place "after" the
		// new edge for half of all peer ISNs).
		c.rcv.adv = c.rcv.nxt.Add(craft.Size(w))
		return uint16(w)
	}
	edge := c.rcv.nxt.Add(craft.Size(free))
	if edge.GreaterThan(c.rcv.adv) {
		// Receiver-side silly window avoidance (RFC 9293 §3.8.6.2.2): move
		// the right edge only by at least min(buffer/2, MSS).
		thresh := c.cfg.RecvBufferSize / 2
		if int(c.cfg.MSS) < thresh {
			thresh = int(c.cfg.MSS)
		}
		if int(c.rcv.adv.Size(edge)) < thresh && c.rcv.adv.GreaterThanEq(c.rcv.nxt) {
			edge = c.rcv.adv
		}
	}
	if edge.LessThan(c.rcv.adv) {
		// Never shrink the window (RFC 9293 §3.8.6.2.2, RFC 7323 §2.4).
		edge = c.rcv.adv
	}
	wnd := c.rcv.nxt.Size(edge)
	// Scaling rounds down, always. Rounding up "to keep the edge" would
	// move it up to 2^shift-1 bytes further on every ACK while the
	// buffer is full, past what the buffer holds; RFC 7323 §2.4 accepts
	// the apparent shrink by less than one unit that rounding down gives.
	// rcv.adv keeps the furthest edge ever promised, so acceptability
	// (RFC 9293 §3.10.7.4) still honours every promise.
	field := wnd >> c.rcv.shift
	if field > 0xffff {
		field = 0xffff
	}
	adv := c.rcv.nxt.Add(field << c.rcv.shift)
	if adv.GreaterThan(c.rcv.adv) {
		c.rcv.adv = adv
	}
	return uint16(field)
}

// synOptions are the options of our SYN or SYN-ACK, in Linux's order and
// layout: MSS, SACK-permitted, timestamps, NOP, window scale (20 bytes).
// A SYN-ACK carries only what the peer offered (RFC 7323 §2.2, §3.2;
// RFC 2018 §2).
func (c *Conn) synOptions(now time.Time) []craft.Option {
	active := c.state == SynSent
	ws := c.rcv.offShift >= 0 && (active || c.opt.ws)
	sack := c.cfg.SACK && (active || c.opt.sack)
	ts := c.cfg.Timestamps && (active || c.opt.ts)
	shift := -1
	if ws {
		shift = c.rcv.offShift
	}
	var tsval, ecr uint32
	if ts {
		tsval = c.tsNow(now)
		if c.state != SynSent {
			ecr = c.opt.tsRecent
		}
	}
	return appendSYNOptions(c.slab.options(synOptionCount(sack, ts, ws))[:0], c.cfg.MSS, sack, ts, tsval, ecr, shift)
}

// synOptionCount is how many options appendSYNOptions appends.
func synOptionCount(sack, ts, ws bool) int {
	n := 1
	if sack {
		n++
	}
	if ts {
		n++
	}
	if sack != ts {
		n += 2 // NOP NOP before a lone SACK-permitted or timestamps
	}
	if ws {
		n += 2 // NOP WS
	}
	return n
}

// appendSYNOptions appends a SYN's options in Linux's order and layout:
// MSS, SACK-permitted, timestamps (tsval, ecr), NOP, window scale (shift;
// -1 for none). A Conn's SYN or SYN-ACK and a Listener's cookie SYN-ACK
// share it, so that a cookie's answer looks like any other.
func appendSYNOptions(opts []craft.Option, mss uint16, sack, ts bool, tsval, ecr uint32, shift int) []craft.Option {
	opts = append(opts, craft.Option{Kind: craft.OptMSS, MSS: mss})
	switch {
	case sack && ts:
		opts = append(opts, craft.Option{Kind: craft.OptSACKPermitted})
	case sack:
		opts = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptSACKPermitted})
	}
	if ts {
		if !sack {
			opts = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptNOP})
		}
		opts = append(opts, craft.Option{Kind: craft.OptTimestamps, TSVal: tsval, TSEcr: ecr})
	}
	if shift >= 0 {
		opts = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptWindowScale, Shift: uint8(shift)})
	}
	return opts
}

// segOptions are the options of a non-SYN segment: timestamps on every
// segment once agreed (RFC 7323 §3.2), SACK blocks on ACKs while we hold
// out-of-order data or have a duplicate to report (RFC 2018 §4, RFC 2883
// §4), each padded with NOPs like Linux does.
func (c *Conn) segOptions(now time.Time, payloadLen int) []craft.Option {
	nblocks := 0
	if c.opt.sack && (len(c.rcv.ooo) > 0 || c.rcv.dsackSet) {
		room := 40
		if c.opt.ts {
			room -= 12
		}
		// Up to 4 blocks, 3 with timestamps (RFC 2018 §3).
		nblocks = min((room-4)/8, len(c.rcv.ooo))
		if c.rcv.dsackSet {
			nblocks = min((room-4)/8, len(c.rcv.ooo)+1)
		}
		// Keep the segment within the peer's MSS: data segments carry
		// SACK blocks only when they fit.
		mss := int(c.snd.peerMSS)
		if int(c.cfg.MSS) < mss {
			mss = int(c.cfg.MSS)
		}
		for nblocks > 0 && payloadLen > 0 && payloadLen+c.tsLen()+4+8*nblocks > mss {
			nblocks--
		}
	}
	if !c.opt.ts && nblocks == 0 {
		return nil
	}
	if nblocks == 0 && len(c.out) > 0 {
		// The segments of one burst carry the same timestamps: share the
		// options of the one before (not drained yet, so still valid)
		// rather than build them again for each MSS of a bulk send, and
		// a driver can tell equal options by their address.
		if prev := c.out[len(c.out)-1].Options; len(prev) == 3 && prev[2].Kind == craft.OptTimestamps &&
			prev[2].TSVal == c.tsNow(now) && prev[2].TSEcr == c.opt.tsRecent && prev[0].Kind == craft.OptNOP && prev[1].Kind == craft.OptNOP {
			return prev
		}
	}
	n := 0
	if c.opt.ts {
		n += 3
	}
	if nblocks > 0 {
		n += 3
	}
	opts := c.slab.options(n)[:0]
	if c.opt.ts {
		opts = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptNOP},
			craft.Option{Kind: craft.OptTimestamps, TSVal: c.tsNow(now), TSEcr: c.opt.tsRecent})
	}
	if nblocks > 0 {
		opts = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptNOP},
			craft.Option{Kind: craft.OptSACK, Blocks: c.sackBlocks(nblocks)})
	}
	return opts
}

func (c *Conn) tsLen() int {
	if c.opt.ts {
		return 12
	}
	return 0
}

// sackBlocks builds up to n SACK blocks (RFC 2018 §4): a D-SACK block
// first if a duplicate arrived (RFC 2883 §4, sent once); then the block
// holding the most recently received segment; then the other blocks
// reported most recently ("repeating the most recently reported SACK
// blocks"); then any others, lowest first.
func (c *Conn) sackBlocks(n int) []craft.SACKBlock {
	b := c.slab.sackBlocks(n)[:0]
	if c.rcv.dsackSet {
		b = append(b, craft.SACKBlock{Left: c.rcv.dsack.start, Right: c.rcv.dsack.end})
		c.rcv.dsackSet = false
		c.stats.DSACKsSent++
	}
	used := uint64(0) // bit i: c.rcv.ooo[i] is in b (the first 64 ranges)
	add := func(i int) {
		if len(b) < n && (i >= 64 || used&(1<<i) == 0) {
			if i < 64 {
				used |= 1 << i
			}
			b = append(b, craft.SACKBlock{Left: c.rcv.ooo[i].start, Right: c.rcv.ooo[i].end})
		}
	}
	live := c.rcv.sackRecent[:0]
	for _, s := range c.rcv.sackRecent {
		if i := c.rcv.oooIndex(s); i >= 0 {
			live = append(live, s)
			add(i)
		}
	}
	c.rcv.sackRecent = live
	for i := range c.rcv.ooo {
		if len(b) == n {
			break
		}
		add(i)
	}
	c.stats.SACKBlocksSent += uint64(len(b))
	return b
}

// noteSACKRecent moves the range holding seq to the front of the SACK
// blocks to report (RFC 2018 §4: "the first SACK block MUST specify the
// contiguous block of data containing the segment which triggered this
// ACK").
func (c *Conn) noteSACKRecent(seq craft.Seq) {
	i := c.rcv.oooIndex(seq)
	if i < 0 {
		return
	}
	r := c.rcv.ooo[i]
	keep := c.rcv.sackRecent[:0]
	for _, s := range c.rcv.sackRecent {
		if !s.InRange(r.start, r.end) {
			keep = append(keep, s)
		}
	}
	if len(keep) >= maxSACKRecent {
		keep = keep[:maxSACKRecent-1]
	}
	keep = append(keep, 0)
	copy(keep[1:], keep)
	keep[0] = seq
	c.rcv.sackRecent = keep
}

// maxSACKRecent is how many recently reported blocks are remembered: a
// SACK option holds at most four.
const maxSACKRecent = 4

// noteDSACK records a duplicate [start, end) to report as a D-SACK block
// (RFC 2883 §4) in the next ACK.
func (c *Conn) noteDSACK(start, end craft.Seq) {
	if !c.opt.sack || !start.LessThan(end) {
		return
	}
	c.rcv.dsack, c.rcv.dsackSet = seqRange{start, end}, true
}

// sendRST emits a reset. With withAck it is <SEQ=seq><ACK=ack><CTL=RST,ACK>,
// otherwise <SEQ=seq><CTL=RST> (RFC 9293 §3.10.7).
func (c *Conn) sendRST(seq, ack craft.Seq, withAck bool, now time.Time) {
	seg := craft.TCP{
		SrcPort: c.cfg.LocalPort,
		DstPort: c.cfg.RemotePort,
		Seq:     seq,
		Flags:   craft.FlagRST,
	}
	if withAck {
		seg.Flags |= craft.FlagACK
		seg.Ack = ack
	}
	if c.opt.ts && c.clockSet {
		// RFC 7323 §3.2: a TSopt SHOULD be sent in an RST too.
		opts := c.slab.options(3)[:0]
		seg.Options = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptNOP},
			craft.Option{Kind: craft.OptTimestamps, TSVal: c.tsNow(now), TSEcr: c.opt.tsRecent})
	}
	c.out = append(c.out, seg)
	c.stats.SegsSent++
}
