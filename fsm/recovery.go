package fsm

import (
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

func (s *txSeg) size() uint32    { return s.start.Size(s.end) }
func (s *txSeg) is(f uint8) bool { return s.flags&f != 0 }

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

// recoveryState says which loss recovery is in progress.
type recoveryState uint8

const (
	recoveryNone recoveryState = iota
	recoveryFast               // fast recovery (RFC 6675 §5, RFC 6582)
	recoveryRTO                // after a retransmission timeout (RFC 6675 §5.1)
)

// markSACKed records that the peer holds s.
func (c *Conn) markSACKed(s *txSeg) {
	n := s.size()
	if s.is(segLost) {
		c.lostBytes -= n
	}
	if s.is(segRtx) {
		c.rtxBytes -= n
	}
	s.flags = s.flags&^(segLost|segRtx) | segSACKed
	c.sackedBytes += n
}

// markLost records that s is deemed lost (again, if a retransmission of
// it was in flight: that retransmission is lost too).
func (c *Conn) markLost(s *txSeg) {
	if s.is(segSACKed) {
		return
	}
	n := s.size()
	if s.is(segRtx) {
		c.rtxBytes -= n
		s.flags &^= segRtx
		c.stats.LostRetransmits++
	}
	if !s.is(segLost) {
		c.lostBytes += n
		s.flags |= segLost
	}
	if s.start.LessThan(c.rtxHint) {
		c.rtxHint = s.start
	}
}

// dropFront removes acknowledged bytes from the scoreboard up to ack,
// reporting each segment newly delivered by it to RACK.
func (c *Conn) dropFront(ack craft.Seq, tsEcr uint32, hasTS bool, now time.Time) {
	q := &c.txq
	for q.len() > 0 {
		s := q.at(0)
		if s.end.LessThanEq(ack) {
			if !s.is(segSACKed) {
				c.rackDelivered(s, tsEcr, hasTS, now)
			}
			n := s.size()
			if s.is(segSACKed) {
				c.sackedBytes -= n
			}
			if s.is(segLost) {
				c.lostBytes -= n
			}
			if s.is(segRtx) {
				c.rtxBytes -= n
			}
			q.popFront()
			continue
		}
		if s.start.LessThan(ack) {
			// Part of a segment acknowledged (the peer took a prefix).
			d := s.start.Size(ack)
			if s.is(segSACKed) {
				c.sackedBytes -= d
			}
			if s.is(segLost) {
				c.lostBytes -= d
			}
			if s.is(segRtx) {
				c.rtxBytes -= d
			}
			s.start = ack
		}
		break
	}
	if c.rtxHint.LessThan(ack) {
		c.rtxHint = ack
	}
}

// pipe is RFC 6675 §4 SetPipe(): bytes believed to be in the network.
func (c *Conn) pipe() uint32 {
	out := int64(c.sndUna.Size(c.sndMax))
	p := out - int64(c.sackedBytes) - int64(c.lostBytes) + int64(c.rtxBytes) - int64(c.renoDups)*int64(c.sndMSS)
	if p < 0 {
		return 0
	}
	return uint32(p)
}

// nextLost is RFC 6675 §4 NextSeg() rule 1: the lowest segment deemed
// lost and not retransmitted since.
func (c *Conn) nextLost() *txSeg {
	if c.lostBytes == c.rtxBytes {
		return nil // every lost segment has a retransmission in flight
	}
	q := &c.txq
	for i := q.search(c.rtxHint); i < q.len(); i++ {
		s := q.at(i)
		if s.flags&(segLost|segRtx|segSACKed) == segLost {
			c.rtxHint = s.start
			return s
		}
	}
	c.rtxHint = c.sndMax
	return nil
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
func (c *Conn) processSACK(seg *craft.TCP, tsEcr uint32, hasTS bool, now time.Time) uint32 {
	blocks := findSACK(seg)
	if len(blocks) == 0 {
		return 0
	}
	if c.checkDSACK(seg, blocks, now) {
		blocks = blocks[1:]
	}
	low := craft.Max(c.sndUna, seg.Ack)
	var newly uint32
	q := &c.txq
	for _, b := range blocks {
		left, right := b.Left, b.Right
		// RFC 2018 §3 blocks must lie in what we sent: ignore nonsense
		// (and a block beyond SND.MAX, which no honest peer sends).
		if !left.LessThan(right) || right.GreaterThan(c.sndMax) || !right.GreaterThan(low) {
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
			c.markSACKed(s)
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
	if c.tlpOut && c.tlpRtx && c.tlpRtxSeq.InRange(first.Left, first.Right) {
		// RFC 8985 §7.4: the probe's retransmission was a duplicate: the
		// original arrived, nothing was lost.
		c.tlpOut = false
	}
	if c.everRetransmitted(first.Left, first.Right) {
		c.stats.SpuriousRetransmits++
	}
	if c.undoActive && c.undoFrom.LessThanEq(first.Left) && first.Right.LessThanEq(c.undoTo) {
		// RFC 2883 §5 / RFC 3708: when every byte retransmitted in the
		// last fast recovery comes back as a duplicate, that recovery
		// was spurious (reordering, not loss): undo its reduction.
		c.undoBytes -= int64(first.Left.Size(first.Right))
		if c.undoBytes <= 0 {
			c.undoRecovery(now)
		}
	}
	if !c.dsackRoundSet || !c.sndUna.LessThan(c.dsackRound) {
		// At most once per round trip (RFC 8985 §6.2 step 4).
		c.dsackRound, c.dsackRoundSet = c.sndMax, true
		if c.reoWndMult < 16 {
			c.reoWndMult++
		}
		c.reoWndPersist = 16
	}
	return true
}

// everRetransmitted reports whether we may have retransmitted data in
// [l, r) (a D-SACK for data we sent once was duplicated by the network).
// Segments still on the scoreboard know; for acknowledged ones (the usual
// case: the original arrived, then the retransmission) the answer is "it
// lies below the highest byte ever retransmitted", an upper bound.
func (c *Conn) everRetransmitted(l, r craft.Seq) bool {
	q := &c.txq
	for i := q.search(l); i < q.len() && q.at(i).start.LessThan(r); i++ {
		if q.at(i).is(segEverRtx) {
			return true
		}
	}
	return c.rtxEver && l.LessThan(c.lastRtxEnd)
}

// rackDelivered is RFC 8985 §6.2 steps 2 and 3 for one segment newly
// delivered (cumulatively or selectively acknowledged): the most recently
// sent delivered segment and its RTT, and reordering detection.
func (c *Conn) rackDelivered(s *txSeg, tsEcr uint32, hasTS bool, now time.Time) {
	rtt := c.clock(now) - s.sent
	if s.is(segEverRtx) {
		// Step 2: an ACK for the original transmission would make the
		// sample too small; ignore ambiguous ones.
		if hasTS && tsBefore(tsEcr, c.tsOffset+uint32(s.sent/time.Millisecond)) {
			return
		}
		if c.minRTT > 0 && rtt < c.minRTT {
			return
		}
	} else if rtt >= 0 && (c.minRTT == 0 || rtt < c.minRTT) {
		c.minRTT = max(rtt, time.Microsecond)
	}
	c.rackRTT = rtt
	if !c.rackOK || sentAfter(s.sent, s.end, c.rackXmit, c.rackEnd) {
		c.rackXmit, c.rackEnd, c.rackOK = s.sent, s.end, true
		c.rackMoved = true
	}
	// Step 3: a segment sent once and delivered below the highest
	// delivered sequence number was reordered. How far it was overtaken
	// raises the DupThresh that IsLost uses (RFC 6675 §2 leaves room for
	// an adaptive DupThresh, e.g. RFC 4653; Linux measures it this way).
	if s.end.GreaterThan(c.rackFack) {
		c.rackFack = s.end
	} else if s.end.LessThan(c.rackFack) && !s.is(segEverRtx) {
		c.reorderSeen = true
		mss := uint32(c.sndMSS)
		if degree := int((s.start.Size(c.rackFack) + mss - 1) / mss); degree > c.reordering {
			c.reordering = min(degree, maxReordering)
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
	if !c.reorderSeen && (c.recovery != recoveryNone || c.sackedBytes >= uint32(c.reordering*c.sndMSS)) {
		return 0
	}
	w := time.Duration(c.reoWndMult) * c.minRTT / 4
	if c.srtt > 0 && w > c.srtt {
		w = c.srtt
	}
	return w
}

// detectLosses marks the segments the scoreboard says are lost. It runs
// after every ACK and when the RACK reordering timer fires.
func (c *Conn) detectLosses(newlySACKed uint32, now time.Time) {
	if c.txq.len() == 0 {
		return
	}
	if !c.sackOK {
		// RFC 5681 §3.2 / RFC 6582 §3.2 step 2: the third duplicate ACK
		// means the segment at SND.UNA is lost (unless a recovery
		// already covers it).
		if c.recovery == recoveryNone && c.dupAcks >= dupThresh {
			c.markLost(c.txq.at(0))
		}
		return
	}
	if newlySACKed > 0 {
		c.isLostScan()
	}
	if c.rackMoved {
		// Only a more recently sent delivered segment can make other
		// segments lost; otherwise the reordering timer will tell.
		c.rackMoved = false
		c.rackDetect(now)
	}
}

// isLostScan is RFC 6675 §4 IsLost() applied to the scoreboard: a
// segment not SACKed is lost when DupThresh discontiguous SACKed ranges,
// or more than (DupThresh-1)*SMSS SACKed bytes, lie above it. DupThresh
// is 3 until reordering is seen, then the reordering measured (see
// rackDelivered). Walking
// down from the highest SACKed segment, the point where that first holds
// is found; every un-SACKed segment below it is lost. lostBelow remembers
// how far down that was already done.
func (c *Conn) isLostScan() {
	q := &c.txq
	i := q.search(c.rackFack.Add(^uint32(0)))
	if i >= q.len() {
		i = q.len() - 1
	}
	var bytes uint32
	runs := 0
	inRun := false
	point := -1
	for ; i >= 0; i-- {
		s := q.at(i)
		if s.start.LessThan(c.lostBelow) {
			break
		}
		if s.is(segSACKed) {
			bytes += s.size()
			if !inRun {
				runs++
				inRun = true
			}
			if runs >= c.reordering || bytes > uint32((c.reordering-1)*c.sndMSS) {
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
		if s.start.LessThan(c.lostBelow) {
			break
		}
		if !s.is(segSACKed) && !s.is(segLost) {
			c.markLost(s)
		}
	}
	c.lostBelow = q.at(point).start
}

// rackDetect is RACK_detect_loss of RFC 8985 §6.2 step 5: a segment sent
// before the most recently sent delivered one is lost once it is older
// than that segment's RTT plus the reordering window; for the others the
// reordering timer is set to when they would be.
func (c *Conn) rackDetect(now time.Time) {
	c.rackAt = time.Time{}
	if !c.rackOK {
		return
	}
	wait := c.rackRTT + c.reoWnd()
	t := c.clock(now)
	var next time.Duration
	first := true
	defer func() {
		if !first {
			c.rackAt = c.clockBase.Add(next)
		}
	}()
	q := &c.txq
	for i := 0; i < q.len(); i++ {
		s := q.at(i)
		// Same send time: segments went out in sequence order, except
		// that retransmissions go before new data in one burst, and they
		// are the lower ones: the tie-break holds either way.
		if !sentAfter(c.rackXmit, c.rackEnd, s.sent, s.end) {
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
func (c *Conn) onACKRecovery(acked, newlySACKed uint32, dupACK bool, pipeBefore uint32, now time.Time) {
	mss := uint32(c.sndMSS)
	if acked > 0 {
		c.dupAcks = 0
		c.ltBytes = 0
		if c.renoDups > 0 {
			// Without SACK the duplicate ACKs stood for segments that
			// had arrived; the cumulative ACK now covers them.
			c.renoDups -= min(c.renoDups, (acked+mss-1)/mss)
		}
	} else if dupACK {
		c.dupAcks++
		if !c.sackOK {
			// A duplicate ACK means one more segment left the network
			// (RFC 5681 §3.2 step 4; limited transmit, RFC 3042, for
			// the first two).
			if out := c.sndUna.Size(c.sndMax) / mss; c.renoDups+1 < out {
				c.renoDups++
			}
		}
	}
	if c.tlpOut && !c.sndUna.LessThan(c.tlpHigh) {
		// RFC 8985 §7.4: the probe has been answered. If it was a
		// retransmission and no D-SACK said the original had arrived,
		// the original was lost: respond to the congestion once.
		c.tlpOut = false
		if c.tlpRtx && c.tlpRespond && c.recovery == recoveryNone {
			c.cc.OnLoss(c.sndUna.Size(c.sndMax), now)
			c.cc.OnRecoveryEnd(now)
		}
	}
	if acked > 0 || newlySACKed > 0 {
		// Progress: the ACK clock runs; a new probe may be scheduled.
		c.tlpOut = false
		c.tlpCount = 0
	}
	if c.recovery != recoveryNone && c.sndUna.GreaterThanEq(c.recoveryPoint) {
		// RFC 6582 §3.2 step 3 / RFC 6675 §5: a full acknowledgment ends
		// the recovery.
		if c.recovery == recoveryFast {
			c.cc.OnRecoveryEnd(now)
		}
		c.recovery = recoveryNone
		c.renoDups = 0
		// The D-SACKs that may show the recovery spurious come within
		// about a round trip: listen for them until what is in flight
		// now is acknowledged.
		c.undoLimit = c.sndMax
		if c.reoWndPersist > 0 {
			c.reoWndPersist--
			if c.reoWndPersist == 0 {
				c.reoWndMult = 1
			}
		}
	}
	if c.undoActive && c.recovery == recoveryNone && c.sndUna.GreaterThan(c.undoLimit) {
		c.undoActive = false
	}
	if c.recovery == recoveryFast && acked > 0 && !c.sackOK && c.sndUna.LessThan(c.recoveryPoint) && c.txq.len() > 0 {
		// RFC 6582 §3.2 step 3, partial acknowledgment: the segment now
		// at SND.UNA was lost too; retransmit it.
		c.markLost(c.txq.at(0))
		c.forceRtx = true
		c.partialACK = true
	}
	c.detectLosses(newlySACKed, now)
	c.maybeEnterRecovery(now)
	if acked > 0 && c.recovery != recoveryFast {
		// The ACK that ends a fast recovery has set cwnd to ssthresh
		// (RFC 6582 §3.2 step 3) and then counts like any other in
		// congestion avoidance, as in Linux: at high loss rates, where
		// windows are a few segments and recoveries frequent, not
		// counting it halves the throughput.
		limited := pipeBefore+mss > c.cc.Cwnd() || (c.cwndLimited && c.cwndLimitedTo.GreaterThan(c.sndUna.Add(-acked)))
		c.cc.OnAck(acked, limited, c.srtt, now)
	}
}

// maybeEnterRecovery starts fast recovery when loss detection found a
// segment lost outside any recovery (RFC 6675 §5 step 4, RFC 5681 §3.2
// step 2): the window falls once for the whole episode and the first lost
// segment goes out at once, whatever pipe says.
func (c *Conn) maybeEnterRecovery(now time.Time) {
	if c.recovery != recoveryNone || c.lostBytes <= c.rtxBytes {
		return
	}
	c.recovery = recoveryFast
	c.recoveryPoint = c.sndMax
	// RFC 5681 §3.2 step 2: data sent by limited transmit is not part of
	// the FlightSize that sets ssthresh.
	c.cc.OnLoss(c.sndUna.Size(c.sndMax)-min(c.ltBytes, c.sndUna.Size(c.sndMax)), now)
	c.ltBytes = 0
	c.forceRtx = true
	c.fastRtx = true
	c.tlpOut = false
	c.stats.FastRecoveries++
	c.undoActive, c.undoFrom, c.undoTo, c.undoBytes = true, c.sndUna, c.sndMax, 0
}

// undoRecovery takes back a fast recovery that D-SACKs showed spurious:
// the congestion window comes back (RFC 4015 §2.2), the segments still
// marked lost are not (they were only reordered), and if the recovery is
// still going on it ends.
func (c *Conn) undoRecovery(now time.Time) {
	c.undoActive = false
	c.cc.Undo(now)
	c.stats.Undos++
	c.reorderSeen = true
	q := &c.txq
	for i := 0; i < q.len(); i++ {
		q.at(i).flags &^= segLost | segRtx
	}
	c.lostBytes, c.rtxBytes = 0, 0
	if c.recovery == recoveryFast {
		c.recovery = recoveryNone
	}
	c.forceRtx, c.fastRtx, c.partialACK = false, false, false
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
	c.tlpAt = time.Time{}
	if c.sndUna == c.sndMax || !c.synAcked || c.tlpCount >= maxLossProbes {
		return
	}
	c.tlpRespond = c.recovery == recoveryNone && !c.tlpOut
	dataEnd := c.dataEnd()
	sent := false
	if c.sndMax.LessThan(dataEnd) && c.sndMax.LessThan(c.sndUna.Add(c.sndWnd)) {
		n := min(int(c.sndMax.Size(dataEnd)), c.sndMSS, int(c.sndMax.Size(c.sndUna.Add(c.sndWnd))))
		fin := c.finQueued && c.sndMax.Add(uint32(n)) == dataEnd && c.sndMax.Add(uint32(n)).LessThan(c.sndUna.Add(c.sndWnd))
		c.emitData(c.sndMax, n, fin, dataEnd, now)
		c.tlpRtx = false
		sent = true
	} else {
		for i := c.txq.len() - 1; i >= 0; i-- {
			s := c.txq.at(i)
			if s.is(segSACKed) {
				continue
			}
			if s = c.fitWindow(s); s == nil {
				break
			}
			c.tlpRtxSeq = s.start
			c.retransmit(s, now, CauseTailLossProbe)
			c.tlpRtx = true
			sent = true
			break
		}
	}
	if !sent {
		return
	}
	c.stats.LossProbes++
	c.tlpOut = true
	c.tlpCount++
	c.tlpHigh = c.sndMax
	// RFC 8985 §7.3: the RTO timer restarts after the probe.
	c.rtoAt = now.Add(c.rto)
}

// armLossProbe schedules the tail loss probe (RFC 8985 §7.2): PTO =
// 2*SRTT (plus the peer's worst-case delayed ACK when one segment is in
// flight), never later than the RTO. Only with SACK (the probe's answer
// must say what arrived), one probe until the ACKs make progress again.
func (c *Conn) armLossProbe(now time.Time) {
	if !c.sackOK || !c.synAcked || c.sndUna == c.sndMax || c.tlpCount >= maxLossProbes || !c.hasRTT || !c.tlpAt.IsZero() {
		return
	}
	pto := 2 * c.srtt << c.tlpCount
	if c.sndUna.Size(c.sndMax) <= uint32(c.sndMSS) {
		pto += wcDelAck
	} else {
		pto += tlpMinTimeout
	}
	at := now.Add(pto)
	if !c.rtoAt.IsZero() && at.After(c.rtoAt) {
		// Never later than the RTO: then the probe goes instead of the
		// timeout's collapse of the window (as Linux does).
		at = c.rtoAt
	}
	c.tlpAt = at
}

// timeoutScoreboard is RFC 6675 §5.1 (and RFC 5681 §3.1) on a
// retransmission timeout: everything not SACKed is lost and goes again
// from SND.UNA; recovery lasts until what was sent before the timeout is
// acknowledged. SACK information is kept (the peer may renege, RFC 2018
// §8: after a second timeout of the same segment it is discarded).
func (c *Conn) timeoutScoreboard(forgetSACK bool) {
	c.lostBytes, c.rtxBytes = 0, 0
	if forgetSACK {
		c.sackedBytes = 0
	}
	q := &c.txq
	for i := 0; i < q.len(); i++ {
		s := q.at(i)
		if forgetSACK {
			s.flags &^= segSACKed
		}
		if s.is(segSACKed) {
			continue
		}
		s.flags = s.flags&^segRtx | segLost
		c.lostBytes += s.size()
	}
	c.rtxHint = c.sndUna
	c.lostBelow = c.sndUna
	c.recovery = recoveryRTO
	c.recoveryPoint = c.sndMax
	c.dupAcks, c.renoDups, c.ltBytes = 0, 0, 0
	c.tlpOut, c.tlpAt, c.rackAt, c.tlpCount = false, time.Time{}, time.Time{}, 0
	c.forceRtx = false
	c.undoActive = false // a timeout is not undone (no F-RTO, RFC 5682)
}

// fitWindow returns s, or its first part that lies within the peer's
// window (the rest becomes a segment of its own, RFC 9293 §3.8.6: nothing
// beyond SND.UNA+SND.WND, even again), or nil if none of it does.
func (c *Conn) fitWindow(s *txSeg) *txSeg {
	edge := c.sndUna.Add(c.sndWnd)
	if !s.start.LessThan(edge) {
		return nil
	}
	if s.end.GreaterThan(edge) {
		return c.txq.split(c.txq.search(s.start), edge)
	}
	return s
}

// retransmit sends s again.
func (c *Conn) retransmit(s *txSeg, now time.Time, cause Cause) {
	dataEnd := c.dataEnd()
	end := s.end
	fin := false
	if c.finQueued && end == dataEnd.Add(1) {
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
	c.lastDataSent = now
	c.stats.BytesSent += uint64(n)
	c.stats.BytesRetransmitted += uint64(n)
	if s.is(segLost) && !s.is(segRtx) {
		s.flags |= segRtx
		c.rtxBytes += s.size()
	}
	s.flags |= segEverRtx
	s.sent = c.clock(now)
	if c.undoActive {
		c.undoBytes += int64(s.size())
	}
	c.rtxEver = true
	if s.end.GreaterThan(c.lastRtxEnd) {
		c.lastRtxEnd = s.end
	}
	// Karn's rule (RFC 6298 §3): no RTT sample from this round.
	c.rttTiming = false
	c.noteRetransmit(s.start, s.size(), cause)
}
