package fsm

import (
	"fmt"

	"github.com/tcpcraft/tcpcraft/craft"
)

// recvSide is the receiving half of a connection: the receive sequence
// variables of RFC 9293 §3.3.1, the window we advertised, the bytes
// received and not yet read, what is held out of order, and what the next
// ACK owes the peer.
//
// Its invariants (check), once the peer's SYN is in:
//   - RCV.NXT <= adv: adv is the right edge of the furthest window ever
//     advertised, which is never taken back (RFC 9293 §3.8.6.2.2, RFC 7323
//     §2.4); only the peer's FIN may lie just past it, taken with the
//     data that fills the window;
//   - the out-of-order ranges are sorted, apart from each other and from
//     RCV.NXT, and lie within the window and the buffer;
//   - the bytes in the buffer (read or held) never exceed its size.
type recvSide struct {
	irs      craft.Seq
	nxt      craft.Seq  // RCV.NXT
	adv      craft.Seq  // the right edge of the window we advertised last
	shift    uint8      // our window scale, once agreed
	synWnd   craft.Size // the window our SYN offered
	offShift int        // the shift we offer (-1: none)

	buf        recvBuffer
	ooo        []seqRange  // out-of-order data held in buf beyond buf.n
	sackRecent []craft.Seq // a byte of the ranges last reported, most recent first (RFC 2018 §4)
	dsack      seqRange    // a duplicate to report in the next ACK (RFC 2883), if dsackSet
	dsackSet   bool
	finSeen    bool // a FIN arrived, maybe ahead of a hole
	finSeq     craft.Seq
	closed     bool // the peer's FIN has been consumed: EOF after drain

	// ACK generation (RFC 9293 §3.8.6.3).
	ackNow      bool
	unacked     int       // in-order bytes received since our last ACK
	mssGuess    int       // largest payload seen: a "full-sized segment"
	lastAckSent craft.Seq // Last.ACK.sent of RFC 7323 §4.3
}

// window is RCV.WND: the room left in the window we advertised, from
// RCV.NXT to its right edge.
func (r *recvSide) window() craft.Size { return r.nxt.Until(r.adv) }

// oooIndex returns the index of the out-of-order range holding seq, or -1.
func (r *recvSide) oooIndex(seq craft.Seq) int {
	for i, o := range r.ooo {
		if seq.InRange(o.start, o.end) {
			return i
		}
	}
	return -1
}

// insertOOO merges x into the sorted list of out-of-order ranges. It
// reports false when x would need a new range beyond maxOOORanges.
func (r *recvSide) insertOOO(x seqRange) bool {
	// Find the first range that ends at or after x.start.
	i := 0
	for i < len(r.ooo) && r.ooo[i].end.LessThan(x.start) {
		i++
	}
	// Merge every range that touches x.
	j := i
	for j < len(r.ooo) && r.ooo[j].start.LessThanEq(x.end) {
		x.start = craft.Min(x.start, r.ooo[j].start)
		x.end = craft.Max(x.end, r.ooo[j].end)
		j++
	}
	if i == j {
		if len(r.ooo) >= maxOOORanges {
			return false
		}
		r.ooo = append(r.ooo, seqRange{})
		copy(r.ooo[i+1:], r.ooo[i:])
		r.ooo[i] = x
		return true
	}
	r.ooo[i] = x
	r.ooo = append(r.ooo[:i+1], r.ooo[j:]...)
	return true
}

// check reports the first invariant that does not hold.
func (r *recvSide) check() error {
	if r.adv.LessThan(r.nxt) && !(r.closed && r.adv.Add(1) == r.nxt) {
		return fmt.Errorf("advertised edge %d before RCV.NXT %d", r.adv, r.nxt)
	}
	if r.buf.n < 0 || r.buf.n > r.buf.max {
		return fmt.Errorf("%d bytes unread in a %d-byte buffer", r.buf.n, r.buf.max)
	}
	prev := r.nxt
	for i, o := range r.ooo {
		switch {
		case !o.start.LessThan(o.end):
			return fmt.Errorf("out-of-order range %d [%d, %d) is empty", i, o.start, o.end)
		case !prev.LessThan(o.start):
			return fmt.Errorf("out-of-order range %d [%d, %d) touches what comes before (%d)", i, o.start, o.end, prev)
		case o.end.GreaterThan(r.adv):
			return fmt.Errorf("out-of-order range %d [%d, %d) beyond the window's edge %d", i, o.start, o.end, r.adv)
		case r.buf.n+int(r.nxt.Size(o.end)) > r.buf.max:
			return fmt.Errorf("out-of-order range %d [%d, %d) beyond the buffer", i, o.start, o.end)
		}
		prev = o.end
	}
	if len(r.ooo) > maxOOORanges {
		return fmt.Errorf("%d out-of-order ranges, at most %d", len(r.ooo), maxOOORanges)
	}
	return nil
}
