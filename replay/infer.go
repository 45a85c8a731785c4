package replay

import (
	"fmt"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// analysis is what is inferred about one connection before a line is
// written: which of the other end's segments the kernel's end never
// received, and where its application must have called write, close,
// shutdown or set options.
type analysis struct {
	c    *flow.Conn
	x    *connExtra
	k, o flow.Side // the kernel's end and the other (tcpcraft's)

	// lost[i] says why segment i (the other end's) never reached the
	// kernel's end; "" when it did. The kernel's own segments are never
	// lost: the capture shows they were sent.
	lost []string
	// writes[i] is how many bytes the application wrote just before the
	// kernel's segment i.
	writes map[int]int64
	// closeAt is the segment before which the application closed (after
	// the write there, if any), or -1; shutdown says it shut down its
	// sending side instead because it went on receiving.
	closeAt  int
	shutdown bool
	// lingerAt is the kernel's RST that only an abortive close (SO_LINGER
	// with a zero timeout) explains, or -1.
	lingerAt int
	// nodelay: the kernel sent a small segment while an earlier small one
	// was unacknowledged, which Nagle's algorithm (RFC 9293 §3.7.4, Linux's
	// Minshall variant) forbids: the application had set TCP_NODELAY.
	nodelay bool
	// order is the order in which the script replays the segments
	// (indexes into the connection's): the capture's, except for a
	// segment of the other end that the kernel's next segments show it
	// had not yet received when it sent them (see findCrossing).
	order []int
	// margin is how long a segment of the other end takes, at most, from
	// the capture point to the kernel's end: the kernel's answer time in
	// the handshake, plus a millisecond for jitter.
	margin time.Duration
}

func analyse(c *flow.Conn, x *connExtra, k flow.Side) *analysis {
	a := &analysis{c: c, x: x, k: k, o: k.Other(), lost: make([]string, len(c.Segments)),
		writes: map[int]int64{}, closeAt: -1, lingerAt: -1}
	a.margin = a.answerTime() + time.Millisecond
	a.findLostData()
	a.findLostACKs()
	a.findWrites()
	a.findClose()
	a.findAbort()
	a.findNoDelay()
	a.findCrossing()
	return a
}

// findCrossing orders the segments for the script. A capture taken next
// to the kernel's end can show a segment of the other end a few
// microseconds before the kernel's own segments that were already on
// their way out: those do not acknowledge it although it is next in
// sequence. Replayed in the capture's order, the kernel would have it
// before it sends them and acknowledge it; so it is moved after them.
// Only what the kernel sent within the capture-to-kernel margin moves it.
func (a *analysis) findCrossing() {
	segs := a.c.Segments
	a.order = make([]int, 0, len(segs))
	next := int64(1) // the other end's next byte the kernel's end expects
	for i := 0; i < len(segs); {
		s := &segs[i]
		if s.From == a.k || a.lost[i] != "" {
			a.order = append(a.order, i)
			i++
			continue
		}
		lo, hi := seqRange(s)
		inOrder := hi > lo && lo <= next && hi > next && !s.Flags.Has(craft.FlagSYN) && !s.Flags.Has(craft.FlagRST)
		if inOrder {
			next = hi
		}
		// The kernel's segments right after it, within the margin, that
		// do not acknowledge it.
		j := i + 1
		for inOrder && j < len(segs) && segs[j].From == a.k && segs[j].Time.Sub(s.Time) <= a.margin &&
			segs[j].Flags.Has(craft.FlagACK) && !segs[j].Flags.Has(craft.FlagRST) && segs[j].AckOff <= lo {
			j++
		}
		for k := i + 1; k < j; k++ {
			a.order = append(a.order, k)
		}
		a.order = append(a.order, i)
		i = j
	}
}

func (a *analysis) seg(i int) *flow.Segment { return &a.c.Segments[i] }

func (a *analysis) fromKernel(i int) bool { return a.c.Segments[i].From == a.k }

// answerTime is the time from the other end's handshake segment (SYN for a
// kernel server, SYN-ACK for a kernel client) to the kernel's answer, as
// the capture saw them: the round trip between the capture point and the
// kernel.
func (a *analysis) answerTime() time.Duration {
	var last *flow.Segment
	for i := range a.c.Segments {
		s := a.seg(i)
		if s.From == a.o && s.Flags.Has(craft.FlagSYN) {
			last = s
			continue
		}
		if s.From == a.k && last != nil && s.Flags.Has(craft.FlagACK) {
			return max(s.Time.Sub(last.Time), 0)
		}
	}
	return 0
}

// seqRange is the sequence space a segment occupies, as offsets in its
// sender's space.
func seqRange(s *flow.Segment) (lo, hi int64) { return s.SeqOff, s.SeqOff + s.SeqLen() }

func overlaps(blocks []flow.Range, lo, hi int64) bool {
	for _, b := range blocks {
		if b.Start < hi && b.End > lo {
			return true
		}
	}
	return false
}

// kernelWindow returns the kernel's last acknowledgment and window (in
// bytes) before segment i, and false when it has sent none.
func (a *analysis) kernelWindow(i int) (ack, wnd int64, ok bool) {
	for j := i - 1; j >= 0; j-- {
		s := a.seg(j)
		if s.From == a.k && s.Flags.Has(craft.FlagACK) && !s.Flags.Has(craft.FlagRST) {
			return s.AckOff, int64(s.WindowBytes), true
		}
	}
	return 0, 0, false
}

// beyondWindow reports whether the other end's segment i starts at or
// beyond the right edge of the window the kernel last advertised (a window
// probe or an overrun): the kernel drops such data and only answers with an
// ACK (RFC 9293 §3.10.7.4, first: check sequence number).
func (a *analysis) beyondWindow(i int) bool {
	s := a.seg(i)
	ack, wnd, ok := a.kernelWindow(i)
	return ok && s.Len > 0 && !s.Flags.Has(craft.FlagSYN) && s.SeqOff >= ack+wnd
}

// findLostData marks the other end's segments that carry sequence space
// (data, SYN, FIN) and never reached the kernel: a capture taken anywhere
// but at the kernel's end shows segments that were lost after the capture
// point. Such a segment was sent again later, and between the two copies
// the kernel did nothing that shows it had it — no acknowledgment moving
// over it, no SACK block covering it — and its first ACK after the second
// copy is no D-SACK of it (RFC 2883: a copy of data already held is
// reported that way). Segments beyond the kernel's window are kept when
// the kernel's next segment answers them.
func (a *analysis) findLostData() {
	segs := a.c.Segments
	highAck := int64(-1) // the kernel's highest ACK so far
	for i := range segs {
		s := &segs[i]
		if s.From == a.k {
			if s.Flags.Has(craft.FlagACK) && s.AckOff > highAck {
				highAck = s.AckOff
			}
			continue
		}
		lo, hi := seqRange(s)
		if hi == lo || s.Flags.Has(craft.FlagRST) {
			continue
		}
		if a.beyondWindow(i) {
			if i+1 >= len(segs) || segs[i+1].From != a.k || !segs[i+1].Flags.Has(craft.FlagACK) {
				a.lost[i] = "it lies beyond the kernel's window and the kernel did not answer it"
			}
			continue
		}
		again := -1
		for j := i + 1; j < len(segs); j++ {
			r := &segs[j]
			if rlo, rhi := seqRange(r); r.From == a.o && rhi > rlo && rlo < hi && rhi > lo {
				again = j
				break
			}
		}
		if again < 0 {
			continue // never sent again: no sign it was lost
		}
		reacted := false
		for j := i + 1; j < again && !reacted; j++ {
			r := &segs[j]
			if r.From != a.k || !r.Flags.Has(craft.FlagACK) {
				continue
			}
			reacted = r.AckOff > lo && r.AckOff > highAck || overlaps(r.SACK, lo, hi)
		}
		if !reacted {
			for j := again + 1; j < len(segs); j++ {
				r := &segs[j]
				if r.From != a.k || !r.Flags.Has(craft.FlagACK) {
					continue
				}
				// A D-SACK block is the first one and lies below the
				// cumulative ACK (RFC 2883 §4).
				reacted = len(r.SACK) > 0 && r.SACK[0].End <= r.AckOff && overlaps(r.SACK[:1], lo, hi)
				break
			}
		}
		if !reacted {
			a.lost[i] = fmt.Sprintf("the kernel's end never acknowledged it before it came again as #%d", segs[again].N)
		}
	}
}

// findLostACKs marks the other end's pure ACKs that never reached the
// kernel: the kernel retransmitted data that such an ACK had covered more
// than the capture-to-kernel margin before, which it never does with the
// ACK in hand (data below the cumulative ACK is never sent again, RFC 9293
// §3.10.7.4, fifth). When a segment with data that the kernel did receive
// carried such an ACK, the retransmission has another cause and nothing
// is marked.
func (a *analysis) findLostACKs() {
	segs := a.c.Segments
	for j := range segs {
		s := &segs[j]
		if s.From != a.k || !s.Retransmit || s.SeqLen() == 0 {
			continue
		}
		_, hi := seqRange(s)
		var pure []int
		explained := false
		for i := 0; i < j; i++ {
			o := &segs[i]
			if o.From != a.o || !o.Flags.Has(craft.FlagACK) || o.Flags.Has(craft.FlagRST) || a.lost[i] != "" ||
				o.AckOff < hi || s.Time.Sub(o.Time) <= a.margin {
				continue
			}
			if o.SeqLen() == 0 {
				pure = append(pure, i)
			} else {
				explained = true
			}
		}
		if explained {
			continue
		}
		for _, i := range pure {
			a.lost[i] = fmt.Sprintf("the kernel sent #%d again later, which this ACK covered: it never had it", s.N)
		}
	}
}

// findWrites places the application's writes: one per burst of new data,
// a burst ending with the segment that carries PSH or FIN (Linux sets PSH
// on the last segment of each write, and when a writer waits for send
// buffer space), written just before the burst's first segment.
func (a *analysis) findWrites() {
	sent := int64(1) // the kernel's next new byte (its SYN is offset 0)
	start, at := int64(-1), -1
	for i := range a.c.Segments {
		s := a.seg(i)
		if s.From != a.k || s.Flags.Has(craft.FlagRST) {
			continue
		}
		dataLo := s.SeqOff
		if s.Flags.Has(craft.FlagSYN) {
			dataLo++
		}
		dataHi := dataLo + int64(s.Len)
		if dataHi > sent {
			if at < 0 {
				start, at = sent, i
			}
			sent = dataHi
		}
		if at >= 0 && (s.Flags.Has(craft.FlagPSH) || s.Flags.Has(craft.FlagFIN)) && dataHi >= sent {
			a.writes[at] += sent - start
			start, at = -1, -1
		}
	}
	if at >= 0 {
		a.writes[at] += sent - start
	}
}

// findClose places the application's close: just before the kernel's
// first FIN, or, when that FIN rides on data still queued from an earlier
// write, just after that write (the FIN joined the queue there). When the
// other end's data reached the kernel after that point and the kernel
// acknowledged it rather than resetting, the application only shut down
// its sending side.
func (a *analysis) findClose() {
	fin := -1
	for i := range a.c.Segments {
		if s := a.seg(i); s.From == a.k && s.Flags.Has(craft.FlagFIN) && !s.Flags.Has(craft.FlagRST) {
			fin = i
			break
		}
	}
	if fin < 0 {
		return
	}
	a.closeAt = fin
	s := a.seg(fin)
	if s.Len > 0 && a.writes[fin] == 0 {
		// The data is from an earlier write: the last one before fin.
		for i := fin - 1; i >= 0; i-- {
			if a.writes[i] > 0 {
				a.closeAt = i
				break
			}
		}
	}
	for i := a.closeAt; i < len(a.c.Segments); i++ {
		o := a.seg(i)
		if o.From != a.o || o.Len == 0 || a.lost[i] != "" {
			continue
		}
		if i+1 < len(a.c.Segments) && a.fromKernel(i+1) && a.seg(i+1).Flags.Has(craft.FlagRST) {
			return // a closed socket answers data with RST (RFC 9293 §3.10.7.4)
		}
		a.shutdown = true
		return
	}
}

// findAbort finds a RST of the kernel that nothing the other end sent
// explains: the application closed with SO_LINGER set to zero seconds (or
// with unread data, which the replay reads), and Linux resets.
func (a *analysis) findAbort() {
	established := false
	for i := range a.c.Segments {
		s := a.seg(i)
		if s.From == a.o && a.lost[i] == "" && s.Flags.Has(craft.FlagACK) && s.AckOff >= 1 {
			established = true
		}
		if s.From == a.k && s.Flags.Has(craft.FlagSYN) && s.Flags.Has(craft.FlagACK) {
			continue
		}
		if s.From != a.k || !s.Flags.Has(craft.FlagRST) {
			continue
		}
		closed := a.closeAt >= 0 && a.closeAt < i && !a.shutdown
		if established && !closed && !a.answersSegment(i) {
			a.lingerAt = i
		}
		return
	}
}

// answersSegment reports whether the kernel's RST i answers the segment
// just before it: one the other end sent that the kernel received, with
// the RST's sequence number where that segment's ACK pointed (RFC 9293
// §3.10.7.1's reply to a segment that does not fit the connection).
func (a *analysis) answersSegment(i int) bool {
	if i == 0 || a.fromKernel(i-1) || a.lost[i-1] != "" {
		return false
	}
	prev, s := a.seg(i-1), a.seg(i)
	return prev.Flags.Has(craft.FlagACK) && prev.Ack == s.Seq && prev.SeqLen() > 0 && !prev.Flags.Has(craft.FlagFIN)
}

// findNoDelay looks for a small segment of new data sent while an earlier
// small one was still unacknowledged, which only TCP_NODELAY allows.
func (a *analysis) findNoDelay() {
	mss := a.effectiveMSS()
	if mss <= 0 {
		return
	}
	una, sent := int64(1), int64(1)
	smallEnd := int64(-1) // end of the last small segment sent
	for i := range a.c.Segments {
		s := a.seg(i)
		if s.From == a.o {
			if a.lost[i] == "" && s.Flags.Has(craft.FlagACK) && s.AckOff > una {
				una = s.AckOff
			}
			continue
		}
		if s.Len == 0 || s.Flags.Has(craft.FlagSYN) || s.Flags.Has(craft.FlagRST) {
			continue
		}
		hi := s.SeqOff + int64(s.Len)
		if hi <= sent {
			continue // a retransmission
		}
		sent = hi
		if s.Len >= mss || s.Flags.Has(craft.FlagFIN) {
			continue // full-sized, or pushed out by close (tcp_send_fin)
		}
		if smallEnd > una {
			a.nodelay = true
			return
		}
		smallEnd = hi
	}
}

// effectiveMSS is the largest payload the kernel sends: the smaller of the
// two MSS options, less the timestamps option's 12 bytes (RFC 7323 §3.2)
// when both ends use it; 0 when a SYN is missing.
func (a *analysis) effectiveMSS() int {
	mss := [2]int{-1, -1}
	ts := [2]bool{}
	for i := range a.c.Segments {
		s := a.seg(i)
		if s.Flags.Has(craft.FlagSYN) && mss[s.From] < 0 {
			mss[s.From] = s.MSS
			if s.MSS < 0 {
				mss[s.From] = 536 // RFC 9293 §3.7.1's default
			}
			ts[s.From] = s.TSOption
		}
	}
	if mss[0] < 0 || mss[1] < 0 {
		return 0
	}
	m := min(mss[0], mss[1])
	if ts[0] && ts[1] {
		m -= 12
	}
	return m
}
