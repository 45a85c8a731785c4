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
		c.ackNow = false
		return
	case SynSent, SynReceived:
		// RFC 9293 §3.10.1 / §3.10.7.2: the SYN (SYN-ACK once we know the
		// peer's ISN) at ISS; after an RTO sndNxt goes back to ISS.
		if c.sndNxt == c.iss {
			c.sendSYN(now)
		}
	case TimeWait, FinWait2:
		// Everything of ours is acknowledged; only ACKs remain.
	default:
		if c.sndNxt == c.iss {
			// FIN-WAIT-1 or LAST-ACK entered before our SYN was acknowledged:
			// the SYN-ACK comes first.
			c.sendSYN(now)
		}
		if c.synAcked {
			c.sendData(now)
		}
	}
	if c.ackNow && c.state != SynSent {
		c.emit(c.sndMax, craft.FlagACK, nil, now)
	}
	c.armTimers(now)
}

// sendSYN emits our SYN (active open) or SYN-ACK (passive or simultaneous
// open) with the options of RFC 7323 §2-3, RFC 2018 and RFC 9293 §3.7.1.
func (c *Conn) sendSYN(now time.Time) {
	flags := craft.FlagSYN
	if c.state != SynSent {
		flags |= craft.FlagACK
	}
	retrans := c.sndMax != c.iss
	c.emit(c.iss, flags, nil, now)
	c.sndNxt = c.iss.Add(1)
	if c.sndMax.LessThan(c.sndNxt) {
		c.sndMax = c.sndNxt
	}
	if retrans {
		c.noteRetransmit(c.iss, 1, "SYN retransmission")
	} else if !c.rttTiming {
		c.rttTiming, c.rttSeq, c.rttSent = true, c.iss, now
	}
}

// dataEnd is the sequence number just past the last queued byte; it is also
// where our FIN goes once Close is called.
func (c *Conn) dataEnd() craft.Seq { return c.sndBufSeq.Add(uint32(c.send.n)) }

// finSent reports whether our FIN has been sent (maybe not acknowledged).
func (c *Conn) finSent() bool {
	return c.finQueued && c.sndMax.GreaterThan(c.dataEnd())
}

// finAcked reports whether the peer acknowledged our FIN.
func (c *Conn) finAcked() bool {
	return c.finQueued && c.sndUna.GreaterThan(c.dataEnd())
}

// sendData cuts segments from the send buffer starting at sndNxt.
func (c *Conn) sendData(now time.Time) {
	dataEnd := c.dataEnd()
	if c.sndUna == c.sndMax && c.sndNxt.LessThan(dataEnd) {
		c.cwndAfterIdle(now)
	}
	for {
		avail := 0
		if c.sndNxt.LessThan(dataEnd) {
			avail = int(c.sndNxt.Size(dataEnd))
		}
		finPending := c.finQueued && c.sndNxt.LessThanEq(dataEnd)
		if avail == 0 && !finPending {
			return
		}
		// Never beyond SND.UNA+SND.WND (RFC 9293 §3.8.6), nor beyond the
		// congestion window (RFC 5681 §3.1).
		wnd := c.sndWnd
		if c.cwnd < wnd {
			wnd = c.cwnd
		}
		edge := c.sndUna.Add(wnd)
		usable := 0
		if c.sndNxt.LessThan(edge) {
			usable = int(c.sndNxt.Size(edge))
		}
		n := avail
		if n > c.sndMSS {
			n = c.sndMSS
		}
		if n > usable {
			n = usable
		}
		// The FIN takes one sequence number and goes with the last data
		// when it fits in the window too.
		fin := finPending && n == avail && usable > n
		if n == 0 && !fin {
			return
		}
		newData := !c.sndNxt.LessThan(c.sndMax)
		if newData && n < c.sndMSS && !fin {
			outstanding := c.sndUna != c.sndMax
			if n == avail {
				// Nagle (RFC 9293 §3.7.4): hold a small segment while
				// data is unacknowledged.
				if !c.cfg.NoDelay && outstanding {
					return
				}
			} else if outstanding && n < int(c.maxSndWnd/2) {
				// Sender-side silly window avoidance (RFC 9293
				// §3.8.6.2.1): wait for a full segment or half the
				// largest window; with nothing outstanding we send what
				// fits instead of running an override timer.
				return
			}
		}
		c.emitData(c.sndNxt, n, fin, dataEnd, now)
	}
}

// emitData sends n bytes from seq (and the FIN if fin).
func (c *Conn) emitData(seq craft.Seq, n int, fin bool, dataEnd craft.Seq, now time.Time) {
	payload := c.slab.payload(n)
	if n > 0 {
		c.send.readAt(int(c.sndBufSeq.Size(seq)), payload)
	}
	flags := craft.FlagACK
	if fin {
		flags |= craft.FlagFIN
	}
	end := seq.Add(uint32(n))
	if n > 0 && end == dataEnd {
		// PSH on the segment that carries the last queued byte, i.e. the
		// end of the latest write (RFC 9293 §3.9.1 lets the sender
		// collapse PSHs of successive writes).
		flags |= craft.FlagPSH
	}
	if fin {
		end = end.Add(1)
	}
	retrans := seq.LessThan(c.sndMax)
	c.emit(seq, flags, payload, now)
	c.lastDataSent = now
	c.stats.BytesSent += uint64(n)
	c.sndNxt = end
	if c.sndMax.LessThan(end) {
		c.sndMax = end
	}
	if retrans {
		c.stats.BytesRetransmitted += uint64(n)
		c.noteRetransmit(seq, seq.Size(end), "")
	} else if !c.rttTiming {
		// Time one segment per round trip (RFC 6298 §3, Karn's rule: never
		// a retransmitted one).
		c.rttTiming, c.rttSeq, c.rttSent = true, seq, now
	}
}

func (c *Conn) noteRetransmit(seq craft.Seq, size uint32, reason string) {
	c.stats.Retransmits++
	if reason == "" {
		reason = "go-back-N after RTO"
	}
	c.events = append(c.events, Event{Kind: Retransmit, Seq: seq, Bytes: int(size), Reason: reason})
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
		seg.Ack = c.rcvNxt
		c.lastAckSent = c.rcvNxt
		c.ackNow = false
		c.rcvUnacked = 0
		c.delackAt = time.Time{}
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
	free := c.cfg.RecvBufferSize - c.recv.n - (1<<c.rcvShift - 1)
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
		c.synWnd = uint32(w)
		// The first window of the connection: nothing was promised
		// before, so there is nothing to compare with (rcvAdv still holds
		// its zero value, which serial arithmetic may place "after" the
		// new edge for half of all peer ISNs).
		c.rcvAdv = c.rcvNxt.Add(uint32(w))
		return uint16(w)
	}
	edge := c.rcvNxt.Add(uint32(free))
	if edge.GreaterThan(c.rcvAdv) {
		// Receiver-side silly window avoidance (RFC 9293 §3.8.6.2.2): move
		// the right edge only by at least min(buffer/2, MSS).
		thresh := c.cfg.RecvBufferSize / 2
		if int(c.cfg.MSS) < thresh {
			thresh = int(c.cfg.MSS)
		}
		if int(c.rcvAdv.Size(edge)) < thresh && c.rcvAdv.GreaterThanEq(c.rcvNxt) {
			edge = c.rcvAdv
		}
	}
	if edge.LessThan(c.rcvAdv) {
		// Never shrink the window (RFC 9293 §3.8.6.2.2, RFC 7323 §2.4).
		edge = c.rcvAdv
	}
	wnd := c.rcvNxt.Size(edge)
	// Scaling rounds down, always. Rounding up "to keep the edge" would
	// move it up to 2^shift-1 bytes further on every ACK while the
	// buffer is full, past what the buffer holds; RFC 7323 §2.4 accepts
	// the apparent shrink by less than one unit that rounding down gives.
	// rcvAdv keeps the furthest edge ever promised, so acceptability
	// (RFC 9293 §3.10.7.4) still honours every promise.
	field := wnd >> c.rcvShift
	if field > 0xffff {
		field = 0xffff
	}
	adv := c.rcvNxt.Add(field << c.rcvShift)
	if adv.GreaterThan(c.rcvAdv) {
		c.rcvAdv = adv
	}
	return uint16(field)
}

// synOptions are the options of our SYN or SYN-ACK, in Linux's order and
// layout: MSS, SACK-permitted, timestamps, NOP, window scale (20 bytes).
// A SYN-ACK carries only what the peer offered (RFC 7323 §2.2, §3.2;
// RFC 2018 §2).
func (c *Conn) synOptions(now time.Time) []craft.Option {
	active := c.state == SynSent
	ws := c.offShift >= 0 && (active || c.wsOK)
	sack := c.cfg.SACK && (active || c.sackOK)
	ts := c.cfg.Timestamps && (active || c.tsOK)
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
	opts := c.slab.options(n)[:0]
	opts = append(opts, craft.Option{Kind: craft.OptMSS, MSS: c.cfg.MSS})
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
		var ecr uint32
		if c.state != SynSent {
			ecr = c.tsRecent
		}
		opts = append(opts, craft.Option{Kind: craft.OptTimestamps, TSVal: c.tsNow(now), TSEcr: ecr})
	}
	if ws {
		opts = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptWindowScale, Shift: uint8(c.offShift)})
	}
	return opts
}

// segOptions are the options of a non-SYN segment: timestamps on every
// segment once agreed (RFC 7323 §3.2), SACK blocks on ACKs while we hold
// out-of-order data (RFC 2018 §4), each padded with NOPs like Linux does.
func (c *Conn) segOptions(now time.Time, payloadLen int) []craft.Option {
	nblocks := 0
	if c.sackOK && len(c.ooo) > 0 {
		room := 40
		if c.tsOK {
			room -= 12
		}
		nblocks = (room - 4) / 8
		if nblocks > len(c.ooo) {
			nblocks = len(c.ooo)
		}
		// Keep the segment within the peer's MSS: data segments carry
		// SACK blocks only when they fit.
		mss := int(c.peerMSS)
		if int(c.cfg.MSS) < mss {
			mss = int(c.cfg.MSS)
		}
		for nblocks > 0 && payloadLen > 0 && payloadLen+c.tsLen()+4+8*nblocks > mss {
			nblocks--
		}
	}
	if !c.tsOK && nblocks == 0 {
		return nil
	}
	n := 0
	if c.tsOK {
		n += 3
	}
	if nblocks > 0 {
		n += 3
	}
	opts := c.slab.options(n)[:0]
	if c.tsOK {
		opts = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptNOP},
			craft.Option{Kind: craft.OptTimestamps, TSVal: c.tsNow(now), TSEcr: c.tsRecent})
	}
	if nblocks > 0 {
		opts = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptNOP},
			craft.Option{Kind: craft.OptSACK, Blocks: c.sackBlocks(nblocks)})
	}
	return opts
}

func (c *Conn) tsLen() int {
	if c.tsOK {
		return 12
	}
	return 0
}

// sackBlocks lists the out-of-order ranges, the one holding the latest
// arrival first (RFC 2018 §4), then the others from the lowest.
func (c *Conn) sackBlocks(n int) []craft.SACKBlock {
	b := c.slab.sackBlocks(n)[:0]
	first := -1
	for i, r := range c.ooo {
		if c.lastOOO.start.InRange(r.start, r.end) {
			first = i
			b = append(b, craft.SACKBlock{Left: r.start, Right: r.end})
			break
		}
	}
	for i, r := range c.ooo {
		if len(b) == n {
			break
		}
		if i != first {
			b = append(b, craft.SACKBlock{Left: r.start, Right: r.end})
		}
	}
	return b
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
	if c.tsOK && c.clockSet {
		// RFC 7323 §3.2: a TSopt SHOULD be sent in an RST too.
		opts := c.slab.options(3)[:0]
		seg.Options = append(opts, craft.Option{Kind: craft.OptNOP}, craft.Option{Kind: craft.OptNOP},
			craft.Option{Kind: craft.OptTimestamps, TSVal: c.tsNow(now), TSEcr: c.tsRecent})
	}
	c.out = append(c.out, seg)
	c.stats.SegsSent++
}
