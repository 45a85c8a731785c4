package flow

import (
	"net/netip"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// Builder assembles connections from packets given in capture order. The
// zero Builder is ready to use.
type Builder struct {
	// KeepPayload keeps a copy of every payload (Segment.Payload) and
	// reassembles the streams for Follow. Off, only counters are kept.
	KeepPayload bool
	// LatestOnly keeps only each connection's latest segment in Segments
	// (counters, states and paths are kept in full): for live use, where
	// memory must not grow with the traffic.
	LatestOnly bool

	conns []*Conn
	open  map[pairKey]*Conn
}

// pairKey names a connection's two ends independent of direction.
type pairKey struct{ a, b netip.AddrPort }

func keyOf(src, dst netip.AddrPort) pairKey {
	if lessAddrPort(dst, src) {
		src, dst = dst, src
	}
	return pairKey{src, dst}
}

func lessAddrPort(a, b netip.AddrPort) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Port() < b.Port()
}

// Conns returns the connections seen so far, in order of appearance.
func (b *Builder) Conns() []*Conn { return b.conns }

// Forget drops c: a later packet of its 4-tuple starts a new connection.
func (b *Builder) Forget(c *Conn) {
	for k, o := range b.open {
		if o == c {
			delete(b.open, k)
		}
	}
	for i, o := range b.conns {
		if o == c {
			b.conns = append(b.conns[:i], b.conns[i+1:]...)
			break
		}
	}
}

// Add records one packet captured at time t and returns its connection and
// the segment as recorded (valid until the next Add on that connection).
// The packet is only read; nothing of it is kept unless KeepPayload (and
// then as a copy).
func (b *Builder) Add(n int, t time.Time, p *craft.Packet) (*Conn, *Segment) {
	src := netip.AddrPortFrom(p.Src(), p.TCP.SrcPort)
	dst := netip.AddrPortFrom(p.Dst(), p.TCP.DstPort)
	key := keyOf(src, dst)
	if b.open == nil {
		b.open = make(map[pairKey]*Conn)
	}
	tcp := &p.TCP
	c := b.open[key]
	if c != nil && tcp.Flags&(craft.FlagSYN|craft.FlagACK) == craft.FlagSYN && c.startsAnew(src, tcp.Seq) {
		c = nil // the 4-tuple is reused by a new connection
	}
	if c == nil {
		c = newConn(len(b.conns), src, dst, tcp, b.KeepPayload)
		b.conns = append(b.conns, c)
		b.open[key] = c
	}
	from, _ := c.SideOf(src)
	if b.LatestOnly && len(c.Segments) > 0 {
		c.Segments = c.Segments[:0]
	}
	seg := c.add(n, t, from, tcp)
	return c, seg
}

// startsAnew reports whether a SYN from src with sequence number seq opens
// a new connection on this 4-tuple rather than repeating this one's SYN.
func (c *Conn) startsAnew(src netip.AddrPort, seq craft.Seq) bool {
	if c.finished {
		return true
	}
	from, _ := c.SideOf(src)
	st := &c.st[from]
	return !st.synSeen || st.iss != seq || from != Client
}

// newConn starts a connection with its first segment, deciding which end is
// the client.
func newConn(index int, src, dst netip.AddrPort, tcp *craft.TCP, keep bool) *Conn {
	c := &Conn{Index: index, keepBytes: keep}
	syn, ack := tcp.Flags.Has(craft.FlagSYN), tcp.Flags.Has(craft.FlagACK)
	switch {
	case syn && !ack: // the opener's SYN
		c.Addr = [2]netip.AddrPort{src, dst}
		c.state = [2]fsm.State{fsm.Closed, fsm.Listen}
	case syn && ack: // the SYN was missed; this is the answer
		c.Addr = [2]netip.AddrPort{dst, src}
		c.state = [2]fsm.State{fsm.SynSent, fsm.Listen}
	default:
		// Mid-stream: ephemeral ports are high, so the higher port is
		// most likely the client's.
		if src.Port() >= dst.Port() {
			c.Addr = [2]netip.AddrPort{src, dst}
		} else {
			c.Addr = [2]netip.AddrPort{dst, src}
		}
		c.state = [2]fsm.State{fsm.Established, fsm.Established}
		c.Partial = true
		c.wscaleOn = false
	}
	for s := range c.st {
		c.st[s].wscale = -1
		c.Paths[s] = []fsm.State{c.state[s]}
	}
	return c
}

// add records one segment sent by from.
func (c *Conn) add(n int, t time.Time, from Side, tcp *craft.TCP) *Segment {
	to := from.Other()
	snd, rcv := &c.st[from], &c.st[to]
	if len(c.Segments) == 0 {
		c.First = t
	}
	c.Last = t
	seg := Segment{
		N: n, Time: t, From: from,
		Seq: tcp.Seq, Ack: tcp.Ack, Flags: tcp.Flags, Len: len(tcp.Payload),
		Window: tcp.Window, MSS: -1, WScale: -1,
	}
	syn := tcp.Flags.Has(craft.FlagSYN)
	for i := range tcp.Options {
		o := &tcp.Options[i]
		switch o.Kind {
		case craft.OptMSS:
			seg.MSS = int(o.MSS)
		case craft.OptWindowScale:
			seg.WScale = int(o.Shift)
		case craft.OptSACKPermitted:
			seg.SACKPermitted = true
		case craft.OptTimestamps:
			seg.TSOption = true
		}
	}

	// Sequence bases: the ISN when the SYN is seen, else just before the
	// first number seen, so that the first data byte is at offset 1 as in
	// tcpdump's relative numbering.
	if syn && !snd.synSeen {
		snd.synSeen, snd.iss = true, tcp.Seq
		snd.wscale = seg.WScale
		snd.setBase(tcp.Seq)
	} else if !snd.haveBase {
		snd.setBase(tcp.Seq.Sub(1))
	}
	if tcp.Flags.Has(craft.FlagACK) && !rcv.haveBase {
		rcv.setBase(tcp.Ack.Sub(1))
	}
	if syn && tcp.Flags.Has(craft.FlagACK) && c.st[Client].synSeen && c.st[Server].synSeen {
		// RFC 7323 §2.2: scaling is in effect only if both SYNs carried
		// the option.
		c.wscaleOn = c.st[Client].wscale >= 0 && c.st[Server].wscale >= 0
	}
	seg.SeqOff = snd.offset(tcp.Seq)
	if tcp.Flags.Has(craft.FlagACK) {
		seg.AckOff = rcv.offset(tcp.Ack)
	}
	seg.WindowBytes = uint32(tcp.Window)
	if !syn && c.wscaleOn && snd.wscale > 0 {
		seg.WindowBytes = uint32(tcp.Window) << min(snd.wscale, 14)
	}
	if o := craft.FindOption(tcp.Options, craft.OptSACK); o != nil {
		for _, b := range o.Blocks {
			seg.SACK = append(seg.SACK, Range{rcv.offset(b.Left), rcv.offset(b.Right)})
		}
	}
	if c.keepBytes && len(tcp.Payload) > 0 {
		seg.Payload = append([]byte(nil), tcp.Payload...)
	}

	c.account(&seg, snd, rcv)
	c.infer(&seg, from)
	if c.keepBytes && seg.Len > 0 {
		c.reassemble(from, seg.SeqOff, seg.Payload, syn)
	}
	c.Segments = append(c.Segments, seg)
	return &c.Segments[len(c.Segments)-1]
}

// setBase starts the offsets of a direction at base.
func (d *dirState) setBase(base craft.Seq) {
	d.haveBase, d.base, d.refSeq, d.refOff = true, base, base, 0
}

// offset unwraps s into an offset from the direction's base: the signed
// distance from a recent reference (RFC 1982 serial arithmetic), so streams
// beyond 4 GiB keep growing instead of wrapping.
func (d *dirState) offset(s craft.Seq) int64 {
	off := d.refOff + int64(s.Diff(d.refSeq))
	if off > d.refOff {
		d.refSeq, d.refOff = s, off
	}
	return off
}

// account classifies the segment (retransmission, duplicate ACK) and counts
// it.
func (c *Conn) account(seg *Segment, snd, rcv *dirState) {
	st := &c.Stats[seg.From]
	st.Packets++
	if n := seg.SeqLen(); n > 0 {
		start, end := seg.SeqOff, seg.SeqOff+n
		if snd.haveHigh && start < snd.high {
			seg.Retransmit = true
			// RFC 5681 §3.2: the third duplicate ACK triggers fast
			// retransmit; RFC 6675 retransmits SACK holes; during the
			// recovery that follows (RFC 6582) partial ACKs trigger more.
			fast := rcv.dupAcks >= 3 ||
				rcv.lastSACK && rcv.haveAck && start >= rcv.lastAck ||
				snd.recovering && rcv.haveAck && rcv.lastAck < snd.recover
			if fast {
				seg.Kind = Fast
				st.Fast++
				if !snd.recovering {
					snd.recovering, snd.recover = true, snd.high
				}
			} else {
				seg.Kind = Timeout
				st.Timeout++
				snd.recovering = false
			}
			st.Retransmits++
		}
		if seg.Len > 0 {
			dataStart := start
			if seg.Flags.Has(craft.FlagSYN) {
				dataStart++
			}
			fresh := snd.seen.uncovered(dataStart, dataStart+int64(seg.Len))
			st.Bytes += fresh
			st.RetransBytes += int64(seg.Len) - fresh
		}
		snd.seen.add(start, end)
		if !snd.haveHigh || end > snd.high {
			snd.high, snd.haveHigh = end, true
		}
	}
	// Duplicate ACK (RFC 5681 §2): no data, no SYN/FIN, same ack and
	// window as the previous ACK of this end while data is outstanding.
	if seg.Flags.Has(craft.FlagACK) {
		pure := seg.Len == 0 && !seg.Flags.Has(craft.FlagSYN) && !seg.Flags.Has(craft.FlagFIN) && !seg.Flags.Has(craft.FlagRST)
		if pure && snd.haveAck && seg.AckOff == snd.lastAck && seg.Window == snd.lastWin && rcv.haveHigh && rcv.high > seg.AckOff {
			snd.dupAcks++
			st.DupACKs++
		} else if !snd.haveAck || seg.AckOff > snd.lastAck {
			snd.dupAcks = 0
		}
		if !snd.haveAck || seg.AckOff >= snd.lastAck {
			snd.lastAck, snd.haveAck = seg.AckOff, true
		}
		if rcv.recovering && seg.AckOff >= rcv.recover {
			rcv.recovering = false // RFC 6582 §3.2: a full ACK ends recovery
		}
		snd.lastWin = seg.Window
		snd.lastSACK = len(seg.SACK) > 0
		if len(seg.SACK) > 0 {
			st.SACKs++
		}
	}
}

// move changes side's state and records it on seg.
func (c *Conn) move(seg *Segment, side Side, to fsm.State, why string) {
	from := c.state[side]
	if from == to {
		return
	}
	if from == fsm.SynReceived && to == fsm.Listen {
		c.passive[side] = false
	}
	if from == fsm.Listen && to == fsm.SynReceived {
		c.passive[side] = true
	}
	c.state[side] = to
	c.Paths[side] = append(c.Paths[side], to)
	seg.Changes = append(seg.Changes, Change{Side: side, From: from, To: to, Why: why})
}

// infer applies RFC 9293's state rules (§3.10.7, Figure 5) to both ends as
// if the segment left its sender and reached its receiver at the moment it
// was captured: the sender's transitions first, then the receiver's.
//
// A FIN is the exception, because which FIN arrived first decides between
// CLOSE-WAIT, CLOSING and TIME-WAIT: its receiver is taken to have it only
// once that is certain — when it sends an ACK covering the FIN, or when a
// later segment of the FIN's sender reaches it (segments of one sender
// arrive in order). So crossing FINs show up as the simultaneous close
// they are.
func (c *Conn) infer(seg *Segment, from Side) {
	to := from.Other()
	f := seg.Flags
	syn, ack, fin, rst := f.Has(craft.FlagSYN), f.Has(craft.FlagACK), f.Has(craft.FlagFIN), f.Has(craft.FlagRST)
	snd, rcv := &c.st[from], &c.st[to]

	// The sender: a FIN of its peer it acknowledges has arrived.
	if snd.peerFIN && ack && !rst && seg.AckOff > rcv.finOff {
		c.receiveFIN(seg, from)
	}
	switch {
	case rst:
		switch s := c.state[from]; {
		case s == fsm.Listen && !snd.synSeen && len(c.Paths[from]) == 1:
			// A SYN answered with RST: nothing listened on the port
			// (RFC 9293 §3.10.7.1), the end was CLOSED all along.
			c.state[from], c.Paths[from] = fsm.Closed, []fsm.State{fsm.Closed}
		case s != fsm.Closed && s != fsm.Listen:
			c.move(seg, from, fsm.Closed, "snd RST")
		}
	case syn && !ack && c.state[from] == fsm.Closed:
		c.move(seg, from, fsm.SynSent, "active OPEN, snd SYN")
	case syn && ack && c.state[from] == fsm.Listen:
		// The listener's move is shown when it answers: until then it
		// may as well have had no listener and answer with RST.
		c.move(seg, from, fsm.SynReceived, "rcv SYN, snd SYN,ACK")
	}
	newFIN := fin && !rst && !snd.finSeen
	if newFIN {
		snd.finSeen = true
		snd.finOff = seg.SeqOff + int64(seg.Len)
		if syn {
			snd.finOff++
		}
		switch c.state[from] {
		case fsm.Established, fsm.SynReceived:
			c.move(seg, from, fsm.FinWait1, "CLOSE, snd FIN")
		case fsm.CloseWait:
			c.move(seg, from, fsm.LastAck, "CLOSE, snd FIN")
		}
	}

	// The receiver.
	if rst {
		rcv.peerFIN = false
		switch c.state[to] {
		case fsm.Closed, fsm.Listen:
		case fsm.SynReceived:
			if c.passive[to] {
				c.move(seg, to, fsm.Listen, "rcv RST")
			} else {
				c.move(seg, to, fsm.Closed, "rcv RST")
			}
		default:
			c.move(seg, to, fsm.Closed, "rcv RST")
		}
		c.checkFinished()
		return
	}
	if rcv.peerFIN {
		// An earlier FIN of the sender came before this segment.
		c.receiveFIN(seg, to)
	}
	switch {
	case syn && !ack && c.state[to] == fsm.SynSent:
		c.move(seg, to, fsm.SynReceived, "rcv SYN, snd ACK") // simultaneous open
	case syn && ack && c.state[to] == fsm.SynSent && (!rcv.synSeen || seg.AckOff >= 1):
		c.move(seg, to, fsm.Established, "rcv SYN,ACK, snd ACK")
	}
	if ack {
		if c.state[to] == fsm.SynReceived && (!rcv.synSeen || seg.AckOff >= 1) {
			c.move(seg, to, fsm.Established, "rcv ACK of SYN")
		}
		if rcv.finSeen && seg.AckOff > rcv.finOff {
			switch c.state[to] {
			case fsm.FinWait1:
				if newFIN {
					// A FIN that also acknowledges ours: its sender
					// had our FIN before it sent its own, so this is
					// no simultaneous close and nothing is left to
					// wait for. RFC 9293 §3.10.7.4 (eighth, FIN-WAIT-1):
					// our FIN is ACKed, enter TIME-WAIT — the
					// diagram's direct edge.
					c.move(seg, to, fsm.TimeWait, "rcv FIN,ACK of FIN, snd ACK")
					newFIN = false // taken: no later segment confirms it
					break
				}
				c.move(seg, to, fsm.FinWait2, "rcv ACK of FIN")
			case fsm.Closing:
				c.move(seg, to, fsm.TimeWait, "rcv ACK of FIN")
			case fsm.LastAck:
				c.move(seg, to, fsm.Closed, "rcv ACK of FIN")
			}
		}
	}
	if newFIN {
		rcv.peerFIN = true
	}
	c.checkFinished()
}

// receiveFIN moves side as the arrival of its peer's FIN does (RFC 9293
// §3.10.7.4, eighth: check the FIN bit).
func (c *Conn) receiveFIN(seg *Segment, side Side) {
	c.st[side].peerFIN = false
	switch c.state[side] {
	case fsm.Established, fsm.SynReceived:
		c.move(seg, side, fsm.CloseWait, "rcv FIN, snd ACK")
	case fsm.FinWait1:
		c.move(seg, side, fsm.Closing, "rcv FIN, snd ACK")
	case fsm.FinWait2:
		c.move(seg, side, fsm.TimeWait, "rcv FIN, snd ACK")
	}
}

// checkFinished marks the connection over when neither end can send more:
// a later SYN on the same 4-tuple starts a new connection.
func (c *Conn) checkFinished() {
	done := func(s fsm.State) bool { return s == fsm.Closed || s == fsm.TimeWait || s == fsm.Listen }
	if done(c.state[Client]) && done(c.state[Server]) {
		c.finished = true
	}
}

// rangeSet is a sorted list of disjoint half-open ranges.
type rangeSet []Range

// uncovered returns how many offsets of [start, end) the set lacks.
func (s rangeSet) uncovered(start, end int64) int64 {
	n := end - start
	for _, r := range s {
		lo, hi := max(r.Start, start), min(r.End, end)
		if lo < hi {
			n -= hi - lo
		}
	}
	return n
}

// add merges [start, end) into the set.
func (s *rangeSet) add(start, end int64) {
	if start >= end {
		return
	}
	out := (*s)[:0:0]
	placed := false
	for _, r := range *s {
		switch {
		case r.End < start:
			out = append(out, r)
		case r.Start > end:
			if !placed {
				out = append(out, Range{start, end})
				placed = true
			}
			out = append(out, r)
		default:
			start, end = min(start, r.Start), max(end, r.End)
		}
	}
	if !placed {
		out = append(out, Range{start, end})
	}
	*s = out
}
