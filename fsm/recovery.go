package fsm

import (
	"fmt"
	"sort"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Loss detection and recovery for the data we send.
//
// Every segment sent is kept on a scoreboard (txQueue) until the
// cumulative ACK passes it: its sequence range, when it was last sent and
// what is known about it: SACKed by the peer (RFC 2018), deemed lost, a
// retransmission in flight. From the scoreboard come:
//
//   - pipe, the sender's estimate of bytes in the network (RFC 6675 §4
//     SetPipe, counted like Linux: outstanding - SACKed - lost +
//     retransmitted), which the congestion window bounds;
//   - loss detection: RFC 6675 IsLost (DupThresh = 3 SACKed segments, or
//     more than 2*SMSS SACKed bytes, above a hole), RFC 8985 RACK (a
//     segment sent before one that was delivered, and older than the
//     delivered one's RTT plus a reordering window: this also finds lost
//     retransmissions), and without SACK the third duplicate ACK of RFC
//     5681 §3.2 with NewReno partial ACKs (RFC 6582);
//   - what to send next: lost segments first, lowest first (RFC 6675 §4
//     NextSeg rule 1), then new data (rule 2).
//
// A loss detected this way starts fast recovery (RFC 6675 §5, RFC 6582):
// the congestion controller reduces the window once, the first lost
// segment is retransmitted at once, and recovery ends when the cumulative
// ACK reaches the highest sequence number sent when it began. A
// retransmission timeout marks everything not SACKed as lost (RFC 6675
// §5.1) and recovers from a one-segment window. Tail loss probes (RFC 8985
// §7) turn most tail losses into fast recoveries instead of timeouts.
//
// Where this departs from the letter of the RFCs, deliberately:
//   - DupThresh starts at 3 but grows to the reordering actually measured
//     (RFC 6675 §2 allows an adaptive DupThresh; Linux does this), so a
//     link that reorders does not cause a fast retransmit per window;
//   - a recovery that D-SACKs show was spurious is undone (RFC 4015);
//   - loss probes are also sent when a recovery's ACK clock has stopped,
//     up to maxLossProbes with doubling waits while no ACK makes
//     progress (RFC 8985 sends one, outside recovery): at high loss rates
//     a whole flight of retransmissions is often lost, and each probe
//     saves an RTO of at least 200 ms;
//   - the FlightSize that sets ssthresh leaves out limited-transmit data
//     (RFC 5681 §3.2 step 2 says so; noted here as it is easy to miss).
//
// Without SACK each duplicate ACK counts as one segment that left the
// network (as Linux does), which gives limited transmit (RFC 3042) and the
// window inflation of RFC 5681 §3.2 through pipe.

// dupThresh is DupThresh of RFC 5681 §3.2 and RFC 6675 §2, where the
// reordering estimate starts; maxReordering bounds what it may grow to
// (Linux's tcp_max_reordering).
const (
	dupThresh     = 3
	maxReordering = 300
)

// maxLossProbes is how many loss probes may go out while no ACK makes
// progress, each after twice the wait of the one before.
const maxLossProbes = 3

// wcDelAck is WCDelAckT of RFC 8985 §7.2: the worst-case delayed ACK time
// of the peer, added to a loss probe that has only one segment to probe.
const wcDelAck = 200 * time.Millisecond

// tlpMinTimeout is added to 2*SRTT for a loss probe with more than one
// segment in flight, so that ACK jitter on a very fast path does not fire
// probes needlessly (Linux's TCP_TIMEOUT_MIN).
const tlpMinTimeout = 2 * time.Millisecond

// Flags of a segment on the scoreboard.
const (
	segSACKed  uint8 = 1 << iota // the peer selectively acknowledged it
	segLost                      // deemed lost: (re)transmit it unless segRtx
	segRtx                       // a retransmission sent after it was marked lost is in flight
	segEverRtx                   // it was retransmitted at least once
)

// txSeg is one segment of ours not yet cumulatively acknowledged.
type txSeg struct {
	start, end craft.Seq     // end counts the FIN if the segment carries it
	sent       time.Duration // last transmission, on the connection's clock (no pointers: cheap to keep)
	flags      uint8
}

func (s *txSeg) size() craft.Size { return s.start.Size(s.end) }
func (s *txSeg) is(f uint8) bool  { return s.flags&f != 0 }

// txQueue is the scoreboard: the segments in flight in sequence order, a
// slice used as a queue (acknowledged segments leave at the front).
type txQueue struct {
	segs []txSeg
	head int
}

func (q *txQueue) len() int        { return len(q.segs) - q.head }
func (q *txQueue) at(i int) *txSeg { return &q.segs[q.head+i] }

func (q *txQueue) push(s txSeg) {
	if q.head > 0 && len(q.segs) == cap(q.segs) {
		n := copy(q.segs, q.segs[q.head:])
		clear(q.segs[n:])
		q.segs = q.segs[:n]
		q.head = 0
	}
	q.segs = append(q.segs, s)
}

func (q *txQueue) popFront() {
	q.segs[q.head] = txSeg{}
	q.head++
	if q.head == len(q.segs) {
		q.segs = q.segs[:0]
		q.head = 0
	}
}

// search returns the index of the first segment that ends after seq.
func (q *txQueue) search(seq craft.Seq) int {
	return sort.Search(q.len(), func(i int) bool { return q.at(i).end.GreaterThan(seq) })
}

// split cuts the segment at index i in two at seq (start < seq < end);
// both halves keep its flags. It returns the first half.
func (q *txQueue) split(i int, seq craft.Seq) *txSeg {
	q.segs = append(q.segs, txSeg{})
	j := q.head + i
	copy(q.segs[j+2:], q.segs[j+1:])
	second := q.segs[j]
	second.start = seq
	q.segs[j+1] = second
	q.segs[j].end = seq
	return &q.segs[j]
}

// scoreboard is every segment of ours in flight (RFC 6675 §3, as Linux
// keeps it: one entry per segment sent) and the bytes its flags add up to.
//
// Its invariants (check): the segments follow each other without gaps or
// overlaps, none empty; sacked, lost and rtx are the sizes of the
// segments flagged segSACKed, segLost and segRtx; a SACKed segment is
// neither lost nor being retransmitted, and only a lost one is; so
// rtx <= lost.
type scoreboard struct {
	q                 txQueue
	sacked, lost, rtx craft.Size
	rtxHint           craft.Seq // no segment below is lost and not retransmitted
	lostBelow         craft.Seq // IsLost was applied to every segment below
	rtxEver           bool      // something was retransmitted, up to lastRtxEnd
	lastRtxEnd        craft.Seq
}

// markSACKed records that the peer holds s.
func (sb *scoreboard) markSACKed(s *txSeg) {
	n := s.size()
	if s.is(segLost) {
		sb.lost -= n
	}
	if s.is(segRtx) {
		sb.rtx -= n
	}
	s.flags = s.flags&^(segLost|segRtx) | segSACKed
	sb.sacked += n
}

// markLost records that s is deemed lost (again, if a retransmission of
// it was in flight: that retransmission is lost too, and markLost reports
// true).
func (sb *scoreboard) markLost(s *txSeg) (rtxLost bool) {
	if s.is(segSACKed) {
		return false
	}
	n := s.size()
	if s.is(segRtx) {
		sb.rtx -= n
		s.flags &^= segRtx
		rtxLost = true
	}
	if !s.is(segLost) {
		sb.lost += n
		s.flags |= segLost
	}
	if s.start.LessThan(sb.rtxHint) {
		sb.rtxHint = s.start
	}
	return rtxLost
}

// forget takes n bytes of s out of the totals: the cumulative ACK covers
// them.
func (sb *scoreboard) forget(s *txSeg, n craft.Size) {
	if s.is(segSACKed) {
		sb.sacked -= n
	}
	if s.is(segLost) {
		sb.lost -= n
	}
	if s.is(segRtx) {
		sb.rtx -= n
	}
}

// nextLost is RFC 6675 §4 NextSeg() rule 1: the lowest segment deemed
// lost and not retransmitted since; max is SND.MAX.
func (sb *scoreboard) nextLost(max craft.Seq) *txSeg {
	if sb.lost == sb.rtx {
		return nil // every lost segment has a retransmission in flight
	}
	q := &sb.q
	for i := q.search(sb.rtxHint); i < q.len(); i++ {
		s := q.at(i)
		if s.flags&(segLost|segRtx|segSACKed) == segLost {
			sb.rtxHint = s.start
			return s
		}
	}
	sb.rtxHint = max
	return nil
}

// check reports the first invariant that does not hold; una and max are
// SND.UNA and SND.MAX, which the segments must lie between.
func (sb *scoreboard) check(una, max craft.Seq) error {
	var sacked, lost, rtx craft.Size
	q := &sb.q
	for i := 0; i < q.len(); i++ {
		s := q.at(i)
		switch {
		case !s.start.LessThan(s.end):
			return fmt.Errorf("segment %d [%d, %d) is empty", i, s.start, s.end)
		case i == 0 && s.start.LessThan(una):
			return fmt.Errorf("segment 0 starts at %d, before SND.UNA %d", s.start, una)
		case i > 0 && s.start != q.at(i-1).end:
			return fmt.Errorf("segment %d starts at %d, segment %d ends at %d", i, s.start, i-1, q.at(i-1).end)
		case s.end.GreaterThan(max):
			return fmt.Errorf("segment %d ends at %d, after SND.MAX %d", i, s.end, max)
		case s.is(segSACKed) && s.is(segLost|segRtx), s.flags&segRtx != 0 && !s.is(segLost):
			return fmt.Errorf("segment %d [%d, %d) has flags %04b", i, s.start, s.end, s.flags)
		}
		if s.is(segSACKed) {
			sacked += s.size()
		}
		if s.is(segLost) {
			lost += s.size()
		}
		if s.is(segRtx) {
			rtx += s.size()
		}
	}
	if sacked != sb.sacked || lost != sb.lost || rtx != sb.rtx {
		return fmt.Errorf("totals sacked %d, lost %d, rtx %d; the segments add up to %d, %d, %d", sb.sacked, sb.lost, sb.rtx, sacked, lost, rtx)
	}
	return nil
}

// recoveryPhase says which loss recovery is in progress.
type recoveryPhase uint8

const (
	recoveryNone recoveryPhase = iota
	recoveryFast               // fast recovery (RFC 6675 §5, RFC 6582)
	recoveryRTO                // after a retransmission timeout (RFC 6675 §5.1)
)

// recovery is the loss recovery in progress and the ACK counts that
// start one.
type recovery struct {
	phase recoveryPhase
	point craft.Seq // RecoveryPoint of RFC 6675 (recover of RFC 6582)
	// forceRtx: the next retransmission goes regardless of pipe (RFC
	// 6675 §5 step 4.3); fastRtx, partialACK: why it happens (for its
	// event).
	forceRtx, fastRtx, partialACK bool
	renoDups                      uint32     // without SACK: duplicate ACKs standing for segments that arrived
	dupAcks                       int        // consecutive duplicate ACKs (RFC 5681 §2)
	ltBytes                       craft.Size // sent by limited transmit since the last new ACK (RFC 3042)
}

// rackState is RACK's (RFC 8985 §6): the most recently sent segment
// that was delivered, and what reordering has been seen.
type rackState struct {
	ok, moved   bool
	xmit        time.Duration // its send time, on the connection's clock
	end, fack   craft.Seq     // its end; the highest end delivered
	rtt, minRTT time.Duration
	reorderSeen bool
	reordering  int // DupThresh in use: 3, or the reordering seen (segments)
	// The reordering window's multiplier, and for how many recoveries
	// it stays raised (RFC 8985 §6.2 step 4).
	reoWndMult, reoWndPersist int
	dsackRound                craft.Seq // no reo_wnd increase until SND.UNA passes it
	dsackRoundSet             bool
}

// undoState is what it takes to undo a spurious fast recovery (RFC 2883
// §5, RFC 4015).
type undoState struct {
	active   bool
	from, to craft.Seq // the sequence range the recovery covered
	limit    craft.Seq // after the recovery, undo until SND.UNA reaches it
	bytes    int64     // retransmitted in it and not yet reported duplicate
}

// tlpState is the tail loss probe's (RFC 8985 §7).
type tlpState struct {
	out, rtx     bool
	respond      bool // the probe went outside recovery (RFC 8985 §7.4 applies)
	count        int  // probes sent since the ACKs last made progress
	high, rtxSeq craft.Seq
}

// markLost marks s lost on the scoreboard, counting a retransmission
// found lost in its turn.
func (c *Conn) markLost(s *txSeg) {
	if c.sb.markLost(s) {
		c.stats.LostRetransmits++
	}
}

// dropFront removes acknowledged bytes from the scoreboard up to ack,
// reporting each segment newly delivered by it to RACK.
func (c *Conn) dropFront(ack craft.Seq, tsEcr uint32, hasTS bool, now time.Time) {
	q := &c.sb.q
	for q.len() > 0 {
		s := q.at(0)
		if s.end.LessThanEq(ack) {
			if !s.is(segSACKed) {
				c.rackDelivered(s, tsEcr, hasTS, now)
			}
			c.sb.forget(s, s.size())
			q.popFront()
			continue
		}
		if s.start.LessThan(ack) {
			// Part of a segment acknowledged (the peer took a prefix).
			c.sb.forget(s, s.start.Size(ack))
			s.start = ack
		}
		break
	}
	if c.sb.rtxHint.LessThan(ack) {
		c.sb.rtxHint = ack
	}
}

// pipe is RFC 6675 §4 SetPipe(): bytes believed to be in the network.
func (c *Conn) pipe() craft.Size {
	out := int64(c.snd.una.Size(c.snd.max))
	p := out - int64(c.sb.sacked) - int64(c.sb.lost) + int64(c.sb.rtx) - int64(c.rec.renoDups)*int64(c.snd.mss)
	if p < 0 {
		return 0
	}
	return craft.Size(p)
}

// findSACK returns the blocks of the SACK option of seg, if any.
func findSACK(seg *craft.TCP) []craft.SACKBlock {
	for i := range seg.Options {
		if seg.Options[i].Kind == craft.OptSACK {
			return seg.Options[i].Blocks
		}
	}
	return nil
}

// processSACK applies the SACK blocks of an arriving ACK to the scoreboard
// (RFC 2018 §3, RFC 6675 §5 step 1 "update the scoreboard"). A first block
// that reports data below the cumulative ACK, or inside the second block,
// is a D-SACK (RFC 2883 §4): a report of a duplicate, not new information.
// It returns how many bytes were newly SACKed.
func (c *Conn) processSACK(seg *craft.TCP, tsEcr uint32, hasTS bool, now time.Time) craft.Size {
	blocks := findSACK(seg)
	if len(blocks) == 0 {
		return 0
	}
	if c.checkDSACK(seg, blocks, now) {
		blocks = blocks[1:]
	}
	low := craft.Max(c.snd.una, seg.Ack)
	var newly craft.Size
	q := &c.sb.q
	for _, b := range blocks {
		left, right := b.Left, b.Right
		// RFC 2018 §3 blocks must lie in what we sent: ignore nonsense
		// (and a block beyond SND.MAX, which no honest peer sends).
		if !left.LessThan(right) || right.GreaterThan(c.snd.max) || !right.GreaterThan(low) {
			continue
		}
		if left.LessThan(low) {
			left = low
		}
		for i := q.search(left); i < q.len(); i++ {
			s := q.at(i)
			if s.end.GreaterThan(right) {
				break
			}
			if s.start.LessThan(left) || s.is(segSACKed) {
				continue // only whole segments count
			}
			c.sb.markSACKed(s)
			newly += s.size()
			c.rackDelivered(s, tsEcr, hasTS, now)
		}
	}
	return newly
}

// checkDSACK reports whether the first block of an ACK is a D-SACK (RFC
// 2883 §4) and takes what it says: the data was received twice, so a
// retransmission of it was spurious (or the network duplicated it), and
// the peer sees reordering (RFC 8985 §6.2 step 4 widens the reordering
// window).
func (c *Conn) checkDSACK(seg *craft.TCP, blocks []craft.SACKBlock, now time.Time) bool {
	first := blocks[0]
	dsack := first.Right.LessThanEq(seg.Ack) ||
		(len(blocks) > 1 && blocks[1].Left.LessThanEq(first.Left) && first.Right.LessThanEq(blocks[1].Right))
	if !dsack || !first.Left.LessThan(first.Right) {
		return false
	}
	c.stats.DSACKs++
	if c.tlp.out && c.tlp.rtx && c.tlp.rtxSeq.InRange(first.Left, first.Right) {
		// RFC 8985 §7.4: the probe's retransmission was a duplicate: the
		// original arrived, nothing was lost.
		c.tlp.out = false
	}
	if c.everRetransmitted(first.Left, first.Right) {
		c.stats.SpuriousRetransmits++
	}
	if c.undo.active && c.undo.from.LessThanEq(first.Left) && first.Right.LessThanEq(c.undo.to) {
		// RFC 2883 §5 / RFC 3708: when every byte retransmitted in the
		// last fast recovery comes back as a duplicate, that recovery
		// was spurious (reordering, not loss): undo its reduction.
		c.undo.bytes -= int64(first.Left.Size(first.Right))
		if c.undo.bytes <= 0 {
			c.undoRecovery(now)
		}
	}
	if !c.rack.dsackRoundSet || !c.snd.una.LessThan(c.rack.dsackRound) {
		// At most once per round trip (RFC 8985 §6.2 step 4).
		c.rack.dsackRound, c.rack.dsackRoundSet = c.snd.max, true
		if c.rack.reoWndMult < 16 {
			c.rack.reoWndMult++
		}
		c.rack.reoWndPersist = 16
	}
	return true
}

// everRetransmitted reports whether we may have retransmitted data in
// [l, r) (a D-SACK for data we sent once was duplicated by the network).
// Segments still on the scoreboard know; for acknowledged ones (the usual
// case: the original arrived, then the retransmission) the answer is "it
// lies below the highest byte ever retransmitted", an upper bound.
func (c *Conn) everRetransmitted(l, r craft.Seq) bool {
	q := &c.sb.q
	for i := q.search(l); i < q.len() && q.at(i).start.LessThan(r); i++ {
		if q.at(i).is(segEverRtx) {
			return true
		}
	}
	return c.sb.rtxEver && l.LessThan(c.sb.lastRtxEnd)
}

// rackDelivered is RFC 8985 §6.2 steps 2 and 3 for one segment newly
// delivered (cumulatively or selectively acknowledged): the most recently
// sent delivered segment and its RTT, and reordering detection.
func (c *Conn) rackDelivered(s *txSeg, tsEcr uint32, hasTS bool, now time.Time) {
	rtt := c.clock(now) - s.sent
	if s.is(segEverRtx) {
		// Step 2: an ACK for the original transmission would make the
		// sample too small; ignore ambiguous ones.
		if hasTS && tsBefore(tsEcr, c.opt.tsOffset+uint32(s.sent/time.Millisecond)) {
			return
		}
		if c.rack.minRTT > 0 && rtt < c.rack.minRTT {
			return
		}
	} else if rtt >= 0 && (c.rack.minRTT == 0 || rtt < c.rack.minRTT) {
		c.rack.minRTT = max(rtt, time.Microsecond)
	}
	c.rack.rtt = rtt
	if !c.rack.ok || sentAfter(s.sent, s.end, c.rack.xmit, c.rack.end) {
		c.rack.xmit, c.rack.end, c.rack.ok = s.sent, s.end, true
		c.rack.moved = true
	}
	// Step 3: a segment sent once and delivered below the highest
	// delivered sequence number was reordered. How far it was overtaken
	// raises the DupThresh that IsLost uses (RFC 6675 §2 leaves room for
	// an adaptive DupThresh, e.g. RFC 4653; Linux measures it this way).
	if s.end.GreaterThan(c.rack.fack) {
		c.rack.fack = s.end
	} else if s.end.LessThan(c.rack.fack) && !s.is(segEverRtx) {
		c.rack.reorderSeen = true
		mss := craft.Size(c.snd.mss)
		if degree := int((s.start.Size(c.rack.fack) + mss - 1) / mss); degree > c.rack.reordering {
			c.rack.reordering = min(degree, maxReordering)
		}
	}
}

// sentAfter is RACK_sent_after of RFC 8985 §6.2: a was sent after b (ties
// broken by the sequence number).
func sentAfter(ta time.Duration, ea craft.Seq, tb time.Duration, eb craft.Seq) bool {
	return ta > tb || (ta == tb && ea.GreaterThan(eb))
}

// clock is now on the connection's clock (since its first call), which
// the scoreboard uses for send times.
func (c *Conn) clock(now time.Time) time.Duration { return now.Sub(c.clockBase) }

// reoWnd is RACK's reordering window (RFC 8985 §6.2 step 4): zero while
// no reordering has been seen and a loss is being repaired or DupThresh
// segments are SACKed, else a quarter of the minimum RTT times a
// multiplier that D-SACKs raise, at most SRTT.
func (c *Conn) reoWnd() time.Duration {
	if !c.rack.reorderSeen && (c.rec.phase != recoveryNone || c.sb.sacked >= craft.Size(c.rack.reordering*c.snd.mss)) {
		return 0
	}
	w := time.Duration(c.rack.reoWndMult) * c.rack.minRTT / 4
	if c.rtt.srtt > 0 && w > c.rtt.srtt {
		w = c.rtt.srtt
	}
	return w
}

// detectLosses marks the segments the scoreboard says are lost. It runs
// after every ACK and when the RACK reordering timer fires.
func (c *Conn) detectLosses(newlySACKed craft.Size, now time.Time) {
	if c.sb.q.len() == 0 {
		return
	}
	if !c.opt.sack {
		// RFC 5681 §3.2 / RFC 6582 §3.2 step 2: the third duplicate ACK
		// means the segment at SND.UNA is lost (unless a recovery
		// already covers it).
		if c.rec.phase == recoveryNone && c.rec.dupAcks >= dupThresh {
			c.markLost(c.sb.q.at(0))
		}
		return
	}
	if newlySACKed > 0 {
		c.isLostScan()
	}
	if c.rack.moved {
		// Only a more recently sent delivered segment can make other
		// segments lost; otherwise the reordering timer will tell.
		c.rack.moved = false
		c.rackDetect(now)
	}
}

// isLostScan is RFC 6675 §4 IsLost() applied to the scoreboard: a
// segment not SACKed is lost when DupThresh discontiguous SACKed ranges,
// or more than (DupThresh-1)*SMSS SACKed bytes, lie above it. DupThresh
// is 3 until reordering is seen, then the reordering measured (see
// rackDelivered). Walking
// down from the highest SACKed segment, the point where that first holds
// is found; every un-SACKed segment below it is lost. sb.lostBelow remembers
// how far down that was already done.
func (c *Conn) isLostScan() {
	q := &c.sb.q
	i := q.search(c.rack.fack.Sub(1))
	if i >= q.len() {
		i = q.len() - 1
	}
	var bytes craft.Size
	runs := 0
	inRun := false
	point := -1
	for ; i >= 0; i-- {
		s := q.at(i)
		if s.start.LessThan(c.sb.lostBelow) {
			break
		}
		if s.is(segSACKed) {
			bytes += s.size()
			if !inRun {
				runs++
				inRun = true
			}
			if runs >= c.rack.reordering || bytes > craft.Size((c.rack.reordering-1)*c.snd.mss) {
				point = i
				break
			}
		} else {
			inRun = false
		}
	}
	if point < 0 {
		return
	}
	for j := point - 1; j >= 0; j-- {
		s := q.at(j)
		if s.start.LessThan(c.sb.lostBelow) {
			break
		}
		if !s.is(segSACKed) && !s.is(segLost) {
			c.markLost(s)
		}
	}
	c.sb.lostBelow = q.at(point).start
}

// rackDetect is RACK_detect_loss of RFC 8985 §6.2 step 5: a segment sent
// before the most recently sent delivered one is lost once it is older
// than that segment's RTT plus the reordering window; for the others the
// reordering timer is set to when they would be.
func (c *Conn) rackDetect(now time.Time) {
	c.tmr.rackAt = time.Time{}
	if !c.rack.ok {
		return
	}
	wait := c.rack.rtt + c.reoWnd()
	t := c.clock(now)
	var next time.Duration
	first := true
	defer func() {
		if !first {
			c.tmr.rackAt = c.clockBase.Add(next)
		}
	}()
	q := &c.sb.q
	for i := 0; i < q.len(); i++ {
		s := q.at(i)
		// Same send time: segments went out in sequence order, except
		// that retransmissions go before new data in one burst, and they
		// are the lower ones: the tie-break holds either way.
		if !sentAfter(c.rack.xmit, c.rack.end, s.sent, s.end) {
			if !s.is(segEverRtx) {
				// Sent once, after the reference: so were all
				// segments above it (retransmissions even later).
				break
			}
			continue
		}
		if s.is(segSACKed) || s.flags&(segLost|segRtx) == segLost {
			continue // delivered, or already waiting for retransmission
		}
		if due := s.sent + wait; due <= t {
			c.markLost(s)
		} else if first || due < next {
			next, first = due, false
		}
	}
}

// onACKRecovery runs the loss detection and recovery steps for an
// acceptable ACK, after the scoreboard has taken its SACK blocks and
// cumulative acknowledgment (RFC 5681 §3.2, RFC 6582 §3.2, RFC 6675 §5,
// RFC 8985 §6-7).
func (c *Conn) onACKRecovery(acked, newlySACKed craft.Size, dupACK bool, pipeBefore craft.Size, now time.Time) {
	mss := craft.Size(c.snd.mss)
	if acked > 0 {
		c.rec.dupAcks = 0
		c.rec.ltBytes = 0
		if c.rec.renoDups > 0 {
			// Without SACK the duplicate ACKs stood for segments that
			// had arrived; the cumulative ACK now covers them.
			c.rec.renoDups -= min(c.rec.renoDups, uint32((acked+mss-1)/mss))
		}
	} else if dupACK {
		c.rec.dupAcks++
		if !c.opt.sack {
			// A duplicate ACK means one more segment left the network
			// (RFC 5681 §3.2 step 4; limited transmit, RFC 3042, for
			// the first two).
			if out := uint32(c.snd.outstanding() / mss); c.rec.renoDups+1 < out {
				c.rec.renoDups++
			}
		}
	}
	if c.tlp.out && !c.snd.una.LessThan(c.tlp.high) {
		// RFC 8985 §7.4: the probe has been answered. If it was a
		// retransmission and no D-SACK said the original had arrived,
		// the original was lost: respond to the congestion once.
		c.tlp.out = false
		if c.tlp.rtx && c.tlp.respond && c.rec.phase == recoveryNone {
			c.cc.OnLoss(uint32(c.snd.outstanding()), now)
			c.cc.OnRecoveryEnd(now)
		}
	}
	if acked > 0 || newlySACKed > 0 {
		// Progress: the ACK clock runs; a new probe may be scheduled.
		c.tlp.out = false
		c.tlp.count = 0
	}
	if c.rec.phase != recoveryNone && c.snd.una.GreaterThanEq(c.rec.point) {
		// RFC 6582 §3.2 step 3 / RFC 6675 §5: a full acknowledgment ends
		// the recovery.
		if c.rec.phase == recoveryFast {
			c.cc.OnRecoveryEnd(now)
		}
		c.rec.phase = recoveryNone
		c.rec.renoDups = 0
		// The D-SACKs that may show the recovery spurious come within
		// about a round trip: listen for them until what is in flight
		// now is acknowledged.
		c.undo.limit = c.snd.max
		if c.rack.reoWndPersist > 0 {
			c.rack.reoWndPersist--
			if c.rack.reoWndPersist == 0 {
				c.rack.reoWndMult = 1
			}
		}
	}
	if c.undo.active && c.rec.phase == recoveryNone && c.snd.una.GreaterThan(c.undo.limit) {
		c.undo.active = false
	}
	if c.rec.phase == recoveryFast && acked > 0 && !c.opt.sack && c.snd.una.LessThan(c.rec.point) && c.sb.q.len() > 0 {
		// RFC 6582 §3.2 step 3, partial acknowledgment: the segment now
		// at SND.UNA was lost too; retransmit it.
		c.markLost(c.sb.q.at(0))
		c.rec.forceRtx = true
		c.rec.partialACK = true
	}
	c.detectLosses(newlySACKed, now)
	c.maybeEnterRecovery(now)
	if acked > 0 && c.rec.phase != recoveryFast {
		// The ACK that ends a fast recovery has set cwnd to ssthresh
		// (RFC 6582 §3.2 step 3) and then counts like any other in
		// congestion avoidance, as in Linux: at high loss rates, where
		// windows are a few segments and recoveries frequent, not
		// counting it halves the throughput.
		limited := pipeBefore+mss > c.cwnd() || (c.snd.cwndLimited && c.snd.cwndLimitedTo.GreaterThan(c.snd.una.Sub(acked)))
		c.cc.OnAck(uint32(acked), limited, c.rtt.srtt, now)
	}
}

// maybeEnterRecovery starts fast recovery when loss detection found a
// segment lost outside any recovery (RFC 6675 §5 step 4, RFC 5681 §3.2
// step 2): the window falls once for the whole episode and the first lost
// segment goes out at once, whatever pipe says.
func (c *Conn) maybeEnterRecovery(now time.Time) {
	if c.rec.phase != recoveryNone || c.sb.lost <= c.sb.rtx {
		return
	}
	c.rec.phase = recoveryFast
	c.rec.point = c.snd.max
	// RFC 5681 §3.2 step 2: data sent by limited transmit is not part of
	// the FlightSize that sets ssthresh.
	flight := c.snd.outstanding()
	c.cc.OnLoss(uint32(flight-min(c.rec.ltBytes, flight)), now)
	c.rec.ltBytes = 0
	c.rec.forceRtx = true
	c.rec.fastRtx = true
	c.tlp.out = false
	c.stats.FastRecoveries++
	c.undo.active, c.undo.from, c.undo.to, c.undo.bytes = true, c.snd.una, c.snd.max, 0
}

// undoRecovery takes back a fast recovery that D-SACKs showed spurious:
// the congestion window comes back (RFC 4015 §2.2), the segments still
// marked lost are not (they were only reordered), and if the recovery is
// still going on it ends.
func (c *Conn) undoRecovery(now time.Time) {
	c.undo.active = false
	c.cc.Undo(now)
	c.stats.Undos++
	c.rack.reorderSeen = true
	q := &c.sb.q
	for i := 0; i < q.len(); i++ {
		q.at(i).flags &^= segLost | segRtx
	}
	c.sb.lost, c.sb.rtx = 0, 0
	if c.rec.phase == recoveryFast {
		c.rec.phase = recoveryNone
	}
	c.rec.forceRtx, c.rec.fastRtx, c.rec.partialACK = false, false, false
}

// lossProbe fires the tail loss probe (RFC 8985 §7.3): one new segment if
// there is one the peer's window takes, else the last segment not SACKed
// again. Its ACK (or SACK) lets RACK find a tail loss without waiting for
// the RTO.
//
// Unlike RFC 8985 §7.2, probes are sent during a recovery too, when its
// ACK clock has stopped (no ACK for a PTO): at high loss rates a whole
// flight of retransmissions, or their ACKs, is often lost, and only an
// RTO would follow; a probe sent after the lost retransmissions lets RACK
// see them lost as soon as the probe's SACK arrives.
func (c *Conn) lossProbe(now time.Time) {
	c.tmr.tlpAt = time.Time{}
	if c.snd.una == c.snd.max || !c.snd.synAcked || c.tlp.count >= maxLossProbes {
		return
	}
	c.tlp.respond = c.rec.phase == recoveryNone && !c.tlp.out
	dataEnd := c.snd.dataEnd()
	sent := false
	if edge := c.snd.edge(); c.snd.max.LessThan(dataEnd) && c.snd.max.LessThan(edge) {
		n := min(int(c.snd.max.Size(dataEnd)), c.snd.mss, int(c.snd.max.Size(edge)))
		fin := c.snd.finQueued && c.snd.max.Add(craft.Size(n)) == dataEnd && c.snd.max.Add(craft.Size(n)).LessThan(edge)
		c.emitData(c.snd.max, n, fin, dataEnd, now)
		c.tlp.rtx = false
		sent = true
	} else {
		for i := c.sb.q.len() - 1; i >= 0; i-- {
			s := c.sb.q.at(i)
			if s.is(segSACKed) {
				continue
			}
			if s = c.fitWindow(s); s == nil {
				break
			}
			c.tlp.rtxSeq = s.start
			c.retransmit(s, now, CauseTailLossProbe)
			c.tlp.rtx = true
			sent = true
			break
		}
	}
	if !sent {
		return
	}
	c.stats.LossProbes++
	c.tlp.out = true
	c.tlp.count++
	c.tlp.high = c.snd.max
	// RFC 8985 §7.3: the RTO timer restarts after the probe.
	c.tmr.rtoAt = now.Add(c.rtt.rto)
}

// armLossProbe schedules the tail loss probe (RFC 8985 §7.2): PTO =
// 2*SRTT (plus the peer's worst-case delayed ACK when one segment is in
// flight), never later than the RTO. Only with SACK (the probe's answer
// must say what arrived), one probe until the ACKs make progress again.
func (c *Conn) armLossProbe(now time.Time) {
	if !c.opt.sack || !c.snd.synAcked || c.snd.una == c.snd.max || c.tlp.count >= maxLossProbes || !c.rtt.has || !c.tmr.tlpAt.IsZero() {
		return
	}
	pto := 2 * c.rtt.srtt << c.tlp.count
	if c.snd.outstanding() <= craft.Size(c.snd.mss) {
		pto += wcDelAck
	} else {
		pto += tlpMinTimeout
	}
	at := now.Add(pto)
	if !c.tmr.rtoAt.IsZero() && at.After(c.tmr.rtoAt) {
		// Never later than the RTO: then the probe goes instead of the
		// timeout's collapse of the window (as Linux does).
		at = c.tmr.rtoAt
	}
	c.tmr.tlpAt = at
}

// timeoutScoreboard is RFC 6675 §5.1 (and RFC 5681 §3.1) on a
// retransmission timeout: everything not SACKed is lost and goes again
// from SND.UNA; recovery lasts until what was sent before the timeout is
// acknowledged. SACK information is kept (the peer may renege, RFC 2018
// §8: after a second timeout of the same segment it is discarded).
func (c *Conn) timeoutScoreboard(forgetSACK bool) {
	c.sb.lost, c.sb.rtx = 0, 0
	if forgetSACK {
		c.sb.sacked = 0
	}
	q := &c.sb.q
	for i := 0; i < q.len(); i++ {
		s := q.at(i)
		if forgetSACK {
			s.flags &^= segSACKed
		}
		if s.is(segSACKed) {
			continue
		}
		s.flags = s.flags&^segRtx | segLost
		c.sb.lost += s.size()
	}
	c.sb.rtxHint = c.snd.una
	c.sb.lostBelow = c.snd.una
	c.rec.phase = recoveryRTO
	c.rec.point = c.snd.max
	c.rec.dupAcks, c.rec.renoDups, c.rec.ltBytes = 0, 0, 0
	c.tlp.out, c.tmr.tlpAt, c.tmr.rackAt, c.tlp.count = false, time.Time{}, time.Time{}, 0
	c.rec.forceRtx = false
	c.undo.active = false // a timeout is not undone (no F-RTO, RFC 5682)
}

// fitWindow returns s, or its first part that lies within the peer's
// window (the rest becomes a segment of its own, RFC 9293 §3.8.6: nothing
// beyond SND.UNA+SND.WND, even again), or nil if none of it does.
func (c *Conn) fitWindow(s *txSeg) *txSeg {
	edge := c.snd.edge()
	if !s.start.LessThan(edge) {
		return nil
	}
	if s.end.GreaterThan(edge) {
		return c.sb.q.split(c.sb.q.search(s.start), edge)
	}
	return s
}

// retransmit sends s again.
func (c *Conn) retransmit(s *txSeg, now time.Time, cause Cause) {
	dataEnd := c.snd.dataEnd()
	end := s.end
	fin := false
	if c.snd.finQueued && end == dataEnd.Add(1) {
		fin = true
		end = dataEnd
	}
	n := int(s.start.Size(end))
	payload := c.payloadAt(s.start, n)
	flags := craft.FlagACK
	if fin {
		flags |= craft.FlagFIN
	}
	if n > 0 && end == dataEnd {
		flags |= craft.FlagPSH
	}
	c.emit(s.start, flags, payload, now)
	c.snd.lastDataSent = now
	c.stats.BytesSent += uint64(n)
	c.stats.BytesRetransmitted += uint64(n)
	if s.is(segLost) && !s.is(segRtx) {
		s.flags |= segRtx
		c.sb.rtx += s.size()
	}
	s.flags |= segEverRtx
	s.sent = c.clock(now)
	if c.undo.active {
		c.undo.bytes += int64(s.size())
	}
	c.sb.rtxEver = true
	if s.end.GreaterThan(c.sb.lastRtxEnd) {
		c.sb.lastRtxEnd = s.end
	}
	// Karn's rule (RFC 6298 §3): no RTT sample from this round.
	c.rtt.timing = false
	c.noteRetransmit(s.start, s.size(), cause)
}
