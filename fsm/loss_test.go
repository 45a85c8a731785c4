package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Loss recovery scenarios with a scripted peer: fast retransmit and fast
// recovery (RFC 5681 §3.2), limited transmit (RFC 3042), NewReno partial
// ACKs (RFC 6582), SACK recovery (RFC 6675), RACK and tail loss probes
// (RFC 8985), D-SACK (RFC 2883), and the congestion window through all of
// them. The peer announces an MSS of 1000, so segment i of the data covers
// [seg(i), seg(i+1)).

// seg is the first sequence number of data segment i (0-based).
func seg(i int) craft.Seq { return lISS + 1 + craft.Seq(1000*i) }

// blk is a SACK block covering data segments i..j.
func blk(i, j int) craft.SACKBlock { return craft.SACKBlock{Left: seg(i), Right: seg(j + 1)} }

// sackACK is an ACK of n carrying SACK blocks.
func sackACK(n craft.Seq, blocks ...craft.SACKBlock) craft.TCP {
	a := ack(n, 64000)
	if len(blocks) > 0 {
		a.Options = []craft.Option{{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptSACK, Blocks: blocks}}
	}
	return a
}

// lossHarness is an established connection (plain options, plus SACK if
// sack) to a peer with MSS 1000 and a 64000-byte window, using the
// congestion control cc, with a large send buffer.
func lossHarness(t *testing.T, sack bool, cc string) *harness {
	t.Helper()
	cfg := plainConfig()
	cfg.SACK = sack
	cfg.Congestion = cc
	cfg.SendBufferSize = 1 << 20
	h := newHarness(t, cfg)
	if err := h.c.Connect(h.now); err != nil {
		t.Fatal(err)
	}
	h.output()
	opts := []craft.Option{{Kind: craft.OptMSS, MSS: 1000}}
	if sack {
		opts = append(opts, craft.Option{Kind: craft.OptSACKPermitted})
	}
	// A 10 ms round trip: SRTT 10 ms, so loss probes wait 22 ms or more.
	h.now = h.now.Add(10 * time.Millisecond)
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000, Options: opts})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: anyWin})
	h.expectState(Established)
	h.c.Events()
	return h
}

// sentSeqs returns the first sequence numbers of the data segments in out.
func sentSeqs(out []craft.TCP) []craft.Seq {
	var s []craft.Seq
	for _, o := range out {
		if len(o.Payload) > 0 {
			s = append(s, o.Seq)
		}
	}
	return s
}

func seqsString(s []craft.Seq) string {
	var b strings.Builder
	for i, q := range s {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(itoa(int(q.Diff(lISS+1)) / 1000))
	}
	return "[" + b.String() + "]"
}

// expectSegs checks that exactly the data segments with the given indices
// went out, in this order.
func (h *harness) expectSegs(what string, idx ...int) {
	h.t.Helper()
	got := sentSeqs(h.output())
	want := make([]craft.Seq, len(idx))
	for i, x := range idx {
		want[i] = seg(x)
	}
	if len(got) != len(want) {
		h.t.Fatalf("%s: sent segments %s, want %s", what, seqsString(got), seqsString(want))
	}
	for i := range got {
		if got[i] != want[i] {
			h.t.Fatalf("%s: sent segments %s, want %s", what, seqsString(got), seqsString(want))
		}
	}
}

// retransmitCauses drains the events and returns the causes of the
// retransmissions among them.
func (h *harness) retransmitCauses() []Cause {
	var r []Cause
	for _, e := range h.events(Retransmit) {
		r = append(r, e.Cause)
	}
	return r
}

func (h *harness) expectCwnd(what string, cwnd, ssthresh uint32) {
	h.t.Helper()
	st := h.c.Stats()
	if st.Cwnd != cwnd || st.Ssthresh != ssthresh {
		h.t.Fatalf("%s: cwnd %d ssthresh %d, want %d and %d", what, st.Cwnd, st.Ssthresh, cwnd, ssthresh)
	}
}

// Segment 0 of ten is lost. The first two duplicate ACKs each release one
// new segment (limited transmit, RFC 3042); the third retransmits segment
// 0 at once (fast retransmit, RFC 5681 §3.2 step 3) and halves the window
// (Reno: ssthresh = FlightSize/2 without the limited-transmit data);
// further duplicate ACKs let new data out as the pipe drains, and the ACK
// of everything ends the recovery with cwnd = ssthresh. No timeout.
func TestFastRetransmitAndRecoveryNoSACK(t *testing.T) {
	h := lossHarness(t, false, CongestionReno)
	h.write(strings.Repeat("x", 30000))
	h.expectSegs("initial window", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	h.expectCwnd("initial window", 10000, maxCwnd)

	h.send(ack(seg(0), 64000)) // segment 1 arrived
	h.expectSegs("first duplicate ACK", 10)
	h.send(ack(seg(0), 64000)) // segment 2
	h.expectSegs("second duplicate ACK", 11)
	if r := h.retransmitCauses(); len(r) != 0 {
		t.Fatalf("retransmissions before the third duplicate ACK: %q", r)
	}
	h.send(ack(seg(0), 64000)) // segment 3
	h.expectSegs("third duplicate ACK", 0)
	if r := h.retransmitCauses(); len(r) != 1 || r[0] != CauseFastRetransmit {
		t.Fatalf("retransmissions %q, want one fast retransmit", r)
	}
	h.expectCwnd("fast retransmit", 5000, 5000)
	if st := h.c.Stats(); !st.InRecovery || st.FastRecoveries != 1 {
		t.Fatalf("in recovery %v, fast recoveries %d", st.InRecovery, st.FastRecoveries)
	}
	if st := h.c.Stats(); st.RecoveryRetransmits != 1 || st.TimeoutRetransmits != 0 {
		t.Fatalf("retransmits by recovery %d, after a timeout %d; want 1, 0", st.RecoveryRetransmits, st.TimeoutRetransmits)
	}
	// Segments 4..11 arrive: eight more duplicate ACKs. Pipe (12 segments
	// out, minus those the duplicate ACKs stand for, minus the lost one,
	// plus its retransmission) falls below cwnd after the sixth.
	var sent []craft.Seq
	for i := 4; i <= 11; i++ {
		h.send(ack(seg(0), 64000))
		sent = append(sent, sentSeqs(h.output())...)
	}
	if got := seqsString(sent); got != "[12 13 14 15]" {
		t.Fatalf("new data during recovery: %s, want [12 13 14 15]", got)
	}
	// The retransmission arrives: everything up to segment 11 is
	// acknowledged, which covers the recovery point: recovery ends with
	// cwnd = ssthresh, and the ACK counts in congestion avoidance (one
	// segment: it acknowledges more than a window).
	h.send(ack(seg(12), 64000))
	st := h.c.Stats()
	if st.InRecovery || st.Cwnd != 6000 || st.Ssthresh != 5000 || st.Timeouts != 0 || st.Retransmits != 1 {
		t.Fatalf("after the full ACK: in recovery %v, cwnd %d, timeouts %d, retransmits %d", st.InRecovery, st.Cwnd, st.Timeouts, st.Retransmits)
	}
}

// Duplicate ACKs are counted by RFC 5681 §2: an ACK that updates the
// window or carries data is not one, so three such ACKs start nothing.
func TestNoFastRetransmitOnWindowUpdatesOrData(t *testing.T) {
	h := lossHarness(t, false, CongestionReno)
	h.write(strings.Repeat("x", 10000))
	h.output()
	h.send(ack(seg(0), 64000))
	h.send(ack(seg(0), 63000))                                                                        // window update
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: seg(0), Window: 63000, Payload: []byte("data")})  // data
	h.send(craft.TCP{Flags: fA, Seq: rISS + 5, Ack: seg(0), Window: 62000, Payload: []byte("more!")}) // data, window
	h.output()
	st := h.c.Stats()
	if st.Retransmits != 0 || st.FastRecoveries != 0 || st.DupACKs != 1 {
		t.Fatalf("retransmits %d, fast recoveries %d, duplicate ACKs %d; want 0, 0, 1", st.Retransmits, st.FastRecoveries, st.DupACKs)
	}
}

// NewReno (RFC 6582): segments 0 and 4 are lost. The fast retransmit
// repairs 0; the ACK that follows covers up to segment 4 only (a partial
// ACK), so segment 4 is retransmitted at once, in the same recovery and
// without another window reduction.
func TestNewRenoPartialACK(t *testing.T) {
	h := lossHarness(t, false, CongestionReno)
	h.write(strings.Repeat("x", 10000))
	h.expectSegs("initial window", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	for i := 0; i < 3; i++ {
		h.send(ack(seg(0), 64000))
	}
	h.expectSegs("third duplicate ACK", 0)
	h.expectCwnd("fast retransmit", 5000, 5000)
	h.retransmitCauses()
	for i := 0; i < 5; i++ { // segments 5..9 arrive
		h.send(ack(seg(0), 64000))
	}
	h.output()
	// The retransmitted segment 0 arrives: segments 0-3 are acknowledged.
	h.send(ack(seg(4), 64000))
	got := sentSeqs(h.output())
	if len(got) == 0 || got[0] != seg(4) {
		t.Fatalf("after the partial ACK: sent %s, want segment 4 first", seqsString(got))
	}
	if r := h.retransmitCauses(); len(r) != 1 || r[0] != CausePartialACK {
		t.Fatalf("retransmissions %q, want one NewReno partial ACK", r)
	}
	st := h.c.Stats()
	if !st.InRecovery || st.FastRecoveries != 1 || st.Ssthresh != 5000 {
		t.Fatalf("in recovery %v, fast recoveries %d, ssthresh %d", st.InRecovery, st.FastRecoveries, st.Ssthresh)
	}
	h.send(ack(seg(10), 64000))
	if st := h.c.Stats(); st.InRecovery || st.Timeouts != 0 || st.Retransmits != 2 {
		t.Fatalf("after the full ACK: in recovery %v, timeouts %d, retransmits %d", st.InRecovery, st.Timeouts, st.Retransmits)
	}
}

// SACK (RFC 6675): segments 1, 4 and 7 of the first ten are lost. A
// model receiver acknowledges every arrival with SACK blocks (the block
// holding the new segment first); segments the Conn sends meanwhile arrive
// after the first flight, in order. Each hole is retransmitted once it has
// DupThresh SACKed segments above it and the pipe allows; all three go
// before the first retransmission could have been acknowledged (within
// one round trip), none twice, and no timeout is needed.
func TestSACKRecoversThreeHolesInOneRoundTrip(t *testing.T) {
	for _, cc := range []string{CongestionReno, CongestionCubic} {
		h := lossHarness(t, true, cc)
		h.write(strings.Repeat("x", 40000))
		var queue []int // segments in flight to the receiver, in order
		for _, s := range sentSeqs(h.output()) {
			if i := int(s.Diff(seg(0))) / 1000; i != 1 && i != 4 && i != 7 {
				queue = append(queue, i)
			}
		}
		got := map[int]bool{}
		var rtxOrder []int
		firstRtxDelivered := -1
		for step := 0; len(queue) > 0 && step < 200; step++ {
			i := queue[0]
			queue = queue[1:]
			h.now = h.now.Add(50 * time.Microsecond) // (no timer is due this early)
			if (i == 1 || i == 4 || i == 7) && firstRtxDelivered < 0 {
				firstRtxDelivered = len(rtxOrder)
			}
			got[i] = true
			cum := 0
			for got[cum] {
				cum++
			}
			// SACK blocks: the one holding i first, then the others
			// from the highest, at most three.
			var blocks []craft.SACKBlock
			var others []craft.SACKBlock
			for j := 40; j > cum; j-- {
				if !got[j] || got[j+1] {
					continue
				}
				k := j
				for k-1 > cum && got[k-1] {
					k--
				}
				b := blk(k, j)
				if i >= k && i <= j {
					blocks = append(blocks, b)
				} else {
					others = append(others, b)
				}
			}
			blocks = append(blocks, others...)
			if len(blocks) > 3 {
				blocks = blocks[:3]
			}
			h.send(sackACK(seg(cum), blocks...))
			for _, s := range h.output() {
				if len(s.Payload) == 0 {
					continue
				}
				j := int(s.Seq.Diff(seg(0))) / 1000
				if j < 10 {
					rtxOrder = append(rtxOrder, j)
				}
				queue = append(queue, j)
			}
		}
		if len(rtxOrder) != 3 || rtxOrder[0] != 1 || rtxOrder[1] != 4 || rtxOrder[2] != 7 {
			t.Fatalf("%s: retransmitted %v, want [1 4 7]", cc, rtxOrder)
		}
		if firstRtxDelivered != 3 {
			t.Fatalf("%s: only %d holes were retransmitted before the first retransmission arrived, want all 3", cc, firstRtxDelivered)
		}
		st := h.c.Stats()
		if st.Timeouts != 0 || st.FastRecoveries != 1 || st.Retransmits != 3 || st.InRecovery || st.BytesAcked == 0 {
			t.Fatalf("%s: timeouts %d, fast recoveries %d, retransmits %d, in recovery %v; want 0, 1, 3, false",
				cc, st.Timeouts, st.FastRecoveries, st.Retransmits, st.InRecovery)
		}
	}
}

// With SACK, a duplicate ACK without new SACK information releases no new
// data (RFC 5681 §3.2 step 1).
func TestSACKDupACKWithoutNewInformationSendsNothing(t *testing.T) {
	h := lossHarness(t, true, CongestionReno)
	h.write(strings.Repeat("x", 20000))
	h.output()
	h.send(sackACK(seg(0), blk(1, 1)))
	h.expectSegs("new SACK information", 10)
	h.send(sackACK(seg(0), blk(1, 1)))
	h.expectSegs("the same SACK again")
}

// RACK (RFC 8985 §6): a fast retransmission is itself lost. Segments sent
// after it are SACKed, so once their round trip has passed the
// retransmission is deemed lost and sent again, without waiting for the
// RTO.
func TestRACKFindsLostRetransmission(t *testing.T) {
	h := lossHarness(t, true, CongestionReno)
	h.write(strings.Repeat("x", 40000))
	h.expectSegs("initial window", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	h.advance(10 * time.Millisecond)
	h.send(sackACK(seg(0), blk(1, 3)))
	h.expectSegs("fast retransmit", 0)
	// The retransmission of 0 is lost. Segments 4-9 arrive; new data
	// goes out after the retransmission as the pipe drains.
	h.advance(10 * time.Millisecond)
	h.send(sackACK(seg(0), blk(1, 9)))
	after := sentSeqs(h.output())
	if len(after) == 0 || after[0] != seg(10) {
		t.Fatalf("sent %s, want new data from segment 10", seqsString(after))
	}
	if h.c.Stats().LostRetransmits != 0 {
		t.Fatal("retransmission deemed lost before anything sent after it was delivered")
	}
	// Segment 10, sent after the retransmission, arrives 10 ms later:
	// the retransmission (sent 10 ms before it) is lost.
	h.advance(10 * time.Millisecond)
	h.send(sackACK(seg(0), blk(1, 10)))
	got := sentSeqs(h.output())
	if len(got) == 0 || got[0] != seg(0) {
		t.Fatalf("sent %s, want segment 0 again first", seqsString(got))
	}
	st := h.c.Stats()
	if st.Timeouts != 0 || st.LostRetransmits != 1 || st.Retransmits != 2 {
		t.Fatalf("timeouts %d, lost retransmissions %d, retransmits %d; want 0, 1, 2", st.Timeouts, st.LostRetransmits, st.Retransmits)
	}
}

// Tail loss probe (RFC 8985 §7): the last segment of a transfer is lost.
// Nothing follows it to draw duplicate ACKs or SACKs. With one segment
// left the probe timeout, 2*SRTT plus the peer's worst-case delayed ACK,
// is later than the RTO, so the probe goes at the RTO's time instead of
// the RTO (which would collapse the window).
func TestTailLossProbe(t *testing.T) {
	h := lossHarness(t, true, CongestionCubic)
	h.write(strings.Repeat("x", 5000))
	h.expectSegs("all data", 0, 1, 2, 3, 4)
	h.advance(10 * time.Millisecond)
	h.send(sackACK(seg(4))) // 0-3 arrived, 4 lost
	h.expectNothing()
	st := h.c.Stats()
	d, ok := h.c.NextDeadline()
	if !ok || d.Sub(h.now) > st.RTO {
		t.Fatalf("next deadline in %v, want the loss probe no later than the RTO (%v)", d.Sub(h.now), st.RTO)
	}
	h.advance(d.Sub(h.now))
	h.expectSegs("loss probe", 4)
	if r := h.retransmitCauses(); len(r) != 1 || r[0] != CauseTailLossProbe {
		t.Fatalf("retransmissions %q, want a tail loss probe", r)
	}
	cwnd := h.c.Stats().Cwnd
	h.send(sackACK(seg(5)))
	if st := h.c.Stats(); st.Timeouts != 0 || st.LossProbes != 1 || st.InFlight != 0 || st.Cwnd < cwnd/2 {
		t.Fatalf("timeouts %d, loss probes %d, in flight %d, cwnd %d (was %d)", st.Timeouts, st.LossProbes, st.InFlight, st.Cwnd, cwnd)
	}
	// A probe that repaired a loss leads to one reduction (RFC 8985
	// §7.4), not to the loss window of an RTO.
	if st := h.c.Stats(); st.Cwnd != 7000 {
		t.Fatalf("cwnd %d after the probe repaired a loss, want 7000 (CUBIC's 0.7 of 10 segments)", st.Cwnd)
	}
}

// With more than one segment outstanding and the ACKs gone, the probe
// comes 2*SRTT + 2 ms after the last transmission and sends new data if
// there is some.
func TestLossProbeSendsNewData(t *testing.T) {
	h := lossHarness(t, true, CongestionCubic)
	h.write(strings.Repeat("x", 12000))
	h.expectSegs("initial window", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	srtt := h.c.Stats().SRTT
	h.advance(2*srtt + tlpMinTimeout - time.Millisecond)
	h.expectNothing()
	h.advance(time.Millisecond)
	h.expectSegs("loss probe", 10)
	if st := h.c.Stats(); st.LossProbes != 1 || st.Retransmits != 0 {
		t.Fatalf("loss probes %d, retransmits %d", st.LossProbes, st.Retransmits)
	}
}

// D-SACK (RFC 2883) and undo: segment 0 was only delayed, not lost. The
// fast retransmission reduces the window; when the peer reports the
// retransmission as a duplicate, the reduction is taken back.
func TestDSACKUndoesSpuriousRecovery(t *testing.T) {
	h := lossHarness(t, true, CongestionReno)
	h.write(strings.Repeat("x", 20000))
	h.output()
	h.send(sackACK(seg(0), blk(1, 3)))
	h.expectCwnd("fast retransmit", 5000, 5000)
	h.output()
	h.send(sackACK(seg(10))) // the delayed original arrived
	// Then the retransmission arrives: a duplicate of segment 0.
	h.send(sackACK(seg(10), blk(0, 0)))
	st := h.c.Stats()
	if st.DSACKs != 1 || st.Undos != 1 || st.Cwnd < 10000 {
		t.Fatalf("D-SACKs %d, undos %d, cwnd %d: want 1, 1 and the window back (>= 10000)", st.DSACKs, st.Undos, st.Cwnd)
	}
}

// The receiver side of SACK (RFC 2018 §4): the first block holds the most
// recently received segment, the others repeat the most recently reported
// blocks; three blocks fit with timestamps, four without. A duplicate is
// reported once in a D-SACK block first (RFC 2883 §4).
func TestSACKBlocksGenerated(t *testing.T) {
	for _, ts := range []bool{false, true} {
		cfg := plainConfig()
		cfg.SACK, cfg.Timestamps = true, ts
		h := newHarness(t, cfg)
		if err := h.c.Connect(h.now); err != nil {
			t.Fatal(err)
		}
		h.output()
		synOpts := []craft.Option{{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptSACKPermitted}}
		var tsv []craft.Option
		if ts {
			synOpts = append(synOpts, craft.Option{Kind: craft.OptTimestamps, TSVal: h.tsPeer})
			tsv = h.ts(lTS)
		}
		h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000, Options: synOpts})
		h.output()
		at := func(off int, n int) craft.TCP {
			return craft.TCP{Flags: fA, Seq: rISS + 1 + craft.Seq(off), Ack: lISS + 1, Window: 64000,
				Payload: bytes.Repeat([]byte{'d'}, n), Options: tsv}
		}
		r := func(a, b int) craft.SACKBlock {
			return craft.SACKBlock{Left: rISS + 1 + craft.Seq(a), Right: rISS + 1 + craft.Seq(b)}
		}
		blocksOf := func() []craft.SACKBlock {
			t.Helper()
			out := h.output()
			if len(out) != 1 {
				t.Fatalf("timestamps %v: %d segments, want one ACK", ts, len(out))
			}
			return findSACK(&out[0])
		}
		same := func(got []craft.SACKBlock, want ...craft.SACKBlock) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("timestamps %v: SACK blocks %v, want %v", ts, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("timestamps %v: SACK blocks %v, want %v", ts, got, want)
				}
			}
		}
		h.send(at(100, 10))
		same(blocksOf(), r(100, 110))
		h.send(at(300, 10))
		same(blocksOf(), r(300, 310), r(100, 110))
		h.send(at(200, 10))
		same(blocksOf(), r(200, 210), r(300, 310), r(100, 110))
		h.send(at(400, 10))
		if ts {
			// Three blocks fit next to timestamps: the oldest report
			// (100-110) drops out, not the lowest range.
			same(blocksOf(), r(400, 410), r(200, 210), r(300, 310))
		} else {
			same(blocksOf(), r(400, 410), r(200, 210), r(300, 310), r(100, 110))
		}
		// A segment extending a block makes it the first one.
		h.send(at(110, 10))
		if ts {
			same(blocksOf(), r(100, 120), r(400, 410), r(200, 210))
		} else {
			same(blocksOf(), r(100, 120), r(400, 410), r(200, 210), r(300, 310))
		}
		// A duplicate of held out-of-order data: D-SACK first, then the
		// block holding it (RFC 2883 §4), once.
		h.send(at(300, 10))
		got := blocksOf()
		if len(got) < 2 || got[0] != r(300, 310) || got[1] != r(300, 310) {
			t.Fatalf("timestamps %v: after a duplicate: %v, want D-SACK 300-310 then its block", ts, got)
		}
		h.send(at(500, 10))
		if got := blocksOf(); got[0] != r(500, 510) {
			t.Fatalf("timestamps %v: the D-SACK was repeated: %v", ts, got)
		}
		// A duplicate below RCV.NXT: the D-SACK block lies below the ACK.
		h.send(at(0, 100))
		h.output()
		h.send(at(50, 20))
		got = blocksOf()
		if len(got) == 0 || got[0] != r(50, 70) {
			t.Fatalf("timestamps %v: duplicate below RCV.NXT: %v, want D-SACK 50-70 first", ts, got)
		}
		if st := h.c.Stats(); st.DSACKsSent != 2 {
			t.Fatalf("timestamps %v: %d D-SACKs sent, want 2", ts, st.DSACKsSent)
		}
	}
}

// A retransmission timeout sets cwnd to one segment and ssthresh to half
// the flight (RFC 5681 §3.1); slow start then doubles the window every
// round trip up to ssthresh (RFC 5681 §3.1, one SMSS per ACK), and
// congestion avoidance adds one segment per round trip after that.
func TestCwndTraceRenoAfterRTO(t *testing.T) {
	h := lossHarness(t, false, CongestionReno)
	h.write(strings.Repeat("x", 500000))
	first := h.output()
	if len(first) != 10 {
		t.Fatalf("initial window %d segments", len(first))
	}
	// Grow to 40 segments: ACK rounds of the whole flight, one ACK per
	// segment, no loss: 10 -> 20 -> 40 in slow start.
	pending := first
	round := func() int {
		n := 0
		var next []craft.TCP
		for _, s := range pending {
			h.send(ack(s.Seq.Add(craft.Size(len(s.Payload))), 64000))
			o := h.output()
			n += len(o)
			next = append(next, o...)
		}
		pending = next
		return n
	}
	if n := round(); n != 20 {
		t.Fatalf("slow start round 1 sent %d segments, want 20", n)
	}
	h.expectCwnd("after round 1", 20000, maxCwnd)
	if n := round(); n != 40 {
		t.Fatalf("slow start round 2 sent %d segments, want 40", n)
	}
	h.expectCwnd("after round 2", 40000, maxCwnd)
	// The flight of 40 is lost entirely: RTO.
	h.advance(h.c.Stats().RTO)
	h.expectCwnd("after the RTO", 1000, 20000)
	if st := h.c.Stats(); st.Timeouts != 1 {
		t.Fatalf("timeouts %d", st.Timeouts)
	}
	pending = h.output()
	if len(pending) != 1 {
		t.Fatalf("after the RTO sent %d segments, want 1", len(pending))
	}
	// Slow start from one segment: 1, 2, 4, 8, 16, then capped at
	// ssthresh = 20 segments.
	for i, want := range []uint32{2000, 4000, 8000, 16000, 20000} {
		round()
		if cw := h.c.Stats().Cwnd; cw != want {
			t.Fatalf("slow start round %d after the RTO: cwnd %d, want %d", i+1, cw, want)
		}
	}
	// Congestion avoidance: one segment per round trip, a window's worth
	// of ACKed bytes for each (RFC 5681 §3.1, RFC 3465).
	for i := 0; i < 4; i++ {
		before := h.c.Stats().Cwnd
		round()
		if cw := h.c.Stats().Cwnd; cw != before+1000 {
			t.Fatalf("congestion avoidance round %d: cwnd %d -> %d, want +1000", i+1, before, cw)
		}
	}
	if cw := h.c.Stats().Cwnd; cw != 24000 {
		t.Fatalf("cwnd %d after four congestion avoidance rounds from 20000, want 24000 (+1 segment per round)", cw)
	}
}

// CUBIC's reduction on a fast retransmit is to 0.7 of the window (RFC
// 9438 §4.6), Reno's to half the flight.
func TestCwndReductionOnFastRetransmit(t *testing.T) {
	for _, tc := range []struct {
		cc   string
		want uint32
	}{{CongestionReno, 5000}, {CongestionCubic, 7000}} {
		h := lossHarness(t, true, tc.cc)
		h.write(strings.Repeat("x", 20000))
		h.output()
		h.send(sackACK(seg(0), blk(1, 3)))
		if st := h.c.Stats(); st.Cwnd != tc.want || st.Ssthresh != tc.want || st.Congestion != tc.cc {
			t.Errorf("%s: cwnd %d ssthresh %d after a fast retransmit from 10 segments, want %d", st.Congestion, st.Cwnd, st.Ssthresh, tc.want)
		}
	}
}

// The retransmission limit ends a dead connection with an error that says
// so (like Linux's tcp_retries2 = 15).
func TestRetransmissionLimitError(t *testing.T) {
	h := lossHarness(t, true, CongestionCubic)
	h.write("hello")
	h.output()
	for i := 0; i < 100 && h.c.State() != Closed; i++ {
		d, ok := h.c.NextDeadline()
		if !ok {
			t.Fatal("no timer running")
		}
		h.advance(d.Sub(h.now))
		h.output()
	}
	err := h.c.Err()
	if !errors.Is(err, ErrTimeout) || err.Error() != "connection timed out after 15 retransmissions" {
		t.Fatalf("err %v", err)
	}
	if st := h.c.Stats(); st.Timeouts != 15 {
		t.Fatalf("%d timeouts, want 15", st.Timeouts)
	}
}

// A peer that shrinks its window to zero with data outstanding and keeps
// answering is alive: the RTO sends window probes (never data beyond the
// window), which do not count towards the retransmission limit.
func TestRTOIntoZeroWindowProbes(t *testing.T) {
	cfg := plainConfig()
	cfg.MaxRetries = 3
	cfg.MaxRTO = time.Second
	h := newHarness(t, cfg)
	h.establishedWith(1000, 64000)
	h.write(strings.Repeat("x", 3000))
	h.output()
	// The peer takes the first segment, then its window is zero.
	h.send(ack(lISS+1001, 0))
	for i := 0; i < 10; i++ {
		d, _ := h.c.NextDeadline()
		h.advance(d.Sub(h.now))
		out := h.output()
		if len(out) != 1 || len(out[0].Payload) != 0 || out[0].Seq != lISS+1000 {
			t.Fatalf("timeout %d: sent %d segments, want one zero-window probe", i+1, len(out))
		}
		h.send(ack(lISS+1001, 0)) // the probe's answer: still zero
	}
	if h.c.State() != Established {
		t.Fatalf("state %v after 10 answered probes (MaxRetries 3)", h.c.State())
	}
	if st := h.c.Stats(); st.WindowProbes != 10 || st.Retransmits != 0 || st.Timeouts != 10 {
		t.Fatalf("window probes %d, retransmits %d, timeouts %d; want 10, 0, 10", st.WindowProbes, st.Retransmits, st.Timeouts)
	}
	h.send(ack(lISS+1001, 64000))
	h.expectSegs("window open again", 1, 2)
}

// Receiver-side silly window avoidance (RFC 9293 §3.8.6.2.2): when the
// application drains a full buffer slowly, the window stays shut until at
// least min(buffer/2, MSS) is free, then opens with a window update; the
// peer's zero-window probes are answered with the current window.
func TestZeroWindowReopensWithoutSillyWindows(t *testing.T) {
	cfg := plainConfig()
	cfg.RecvBufferSize = 4000
	h := newHarness(t, cfg)
	h.established()
	data := bytes.Repeat([]byte("z"), 4000)
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: data})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 4001, Window: 0})
	// A zero-window probe from the peer (SEQ = RCV.NXT - 1): answered
	// with the window, still zero.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 4000, Ack: lISS + 1, Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 4001, Window: 0})
	buf := make([]byte, 300)
	for i := 0; i < 3; i++ { // 900 bytes read: less than an MSS
		if n, err := h.c.Read(buf, h.now); n != 300 || err != nil {
			t.Fatalf("read %d %v", n, err)
		}
		h.expectNothing()
	}
	h.send(craft.TCP{Flags: fA, Seq: rISS + 4000, Ack: lISS + 1, Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 4001, Window: 0}) // still shut: 900 < 1460... but > buffer/2? no: 900 < 2000
	// 300 more: 1200 free, but below min(2000, 1460): still nothing.
	h.c.Read(buf, h.now)
	h.expectNothing()
	// 300 more: 1500 free >= 1460: the window opens.
	h.c.Read(buf, h.now)
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 4001, Window: 1500})
}

// A single loss with enough data after it is repaired by fast retransmit,
// never by a timeout, with and without SACK and with both congestion
// controls, over the simulated link.
func TestSimSingleLossNoTimeout(t *testing.T) {
	data := testData(5, 1<<20)
	for _, cc := range []string{CongestionReno, CongestionCubic} {
		for _, sack := range []bool{true, false} {
			var dataSegs int
			lp := linkParams{delay: 5 * time.Millisecond, drop: func(from int, s *craft.TCP) bool {
				if from != 0 || len(s.Payload) == 0 {
					return false
				}
				dataSegs++
				return dataSegs == 200
			}}
			ca, cb := simConfig(40000, 80, 1), simConfig(80, 40000, 1)
			ca.Congestion, ca.SACK, cb.SACK = cc, sack, sack
			res := runSim(t, 1, lp, ca, cb, data, nil)
			st := res.conns[0].Stats()
			if st.Timeouts != 0 || st.Retransmits != 1 || st.FastRecoveries != 1 {
				t.Errorf("%s, SACK %v: timeouts %d, retransmits %d, fast recoveries %d; want 0, 1, 1",
					cc, sack, st.Timeouts, st.Retransmits, st.FastRecoveries)
			}
		}
	}
}

// Three non-adjacent segments lost in one window are all retransmitted
// within about one round trip of the first, with no timeout (SACK, RFC
// 6675), over the simulated link.
func TestSimThreeHolesOneRoundTrip(t *testing.T) {
	data := testData(6, 1<<20)
	var dataSegs int
	var rtxAt []time.Time
	lp := linkParams{delay: 5 * time.Millisecond,
		drop: func(from int, s *craft.TCP) bool {
			if from != 0 || len(s.Payload) == 0 {
				return false
			}
			dataSegs++
			return dataSegs == 300 || dataSegs == 303 || dataSegs == 306
		},
		observe: func(end int, now time.Time, ev Event) {
			if end == 0 && ev.Kind == Retransmit {
				rtxAt = append(rtxAt, now)
			}
		}}
	ca, cb := simConfig(40000, 80, 1), simConfig(80, 40000, 1)
	res := runSim(t, 1, lp, ca, cb, data, nil)
	st := res.conns[0].Stats()
	if st.Timeouts != 0 || st.Retransmits != 3 || st.FastRecoveries != 1 {
		t.Fatalf("timeouts %d, retransmits %d, fast recoveries %d; want 0, 3, 1", st.Timeouts, st.Retransmits, st.FastRecoveries)
	}
	rtt := 10 * time.Millisecond
	if spread := rtxAt[2].Sub(rtxAt[0]); spread > rtt {
		t.Fatalf("the three retransmissions spread over %v, more than a round trip (%v)", spread, rtt)
	}
}
