package fsm

import (
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Unit tests of the parts a Conn is made of (sendside.go, recvside.go,
// rtt.go, timers.go, recovery.go), each against its own invariants. The
// property tests check the same invariants after every step of random
// programs (checker.check).

func TestSendSide(t *testing.T) {
	s := sendSide{iss: 1000, una: 1000, nxt: 1000, max: 1000, bufSeq: 1001}
	s.buf.max = 100
	if err := s.check(); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	s.buf.n = 10
	if s.dataEnd() != 1011 || !s.pending() || s.finSent() || s.finAcked() {
		t.Fatalf("10 bytes queued: end %d pending %v", s.dataEnd(), s.pending())
	}
	// SYN and the 10 bytes sent, the SYN acknowledged.
	s.nxt, s.max, s.una, s.synAcked = 1011, 1011, 1001, true
	if s.pending() || s.outstanding() != 10 || !s.acceptableACK(1011) || s.acceptableACK(1001) || s.acceptableACK(1012) {
		t.Fatalf("sent: pending %v outstanding %d", s.pending(), s.outstanding())
	}
	s.wnd, s.maxWnd = 500, 500
	if s.edge() != 1501 {
		t.Fatalf("edge %d", s.edge())
	}
	if err := s.check(); err != nil {
		t.Fatalf("sent: %v", err)
	}
	// The FIN queued, sent and acknowledged: the buffer may stay one
	// behind SND.UNA.
	s.finQueued = true
	if !s.pending() {
		t.Fatal("FIN queued, nothing pending")
	}
	s.nxt, s.max = 1012, 1012
	if !s.finSent() || s.pending() {
		t.Fatal("FIN sent")
	}
	s.buf.n, s.bufSeq, s.una = 0, 1011, 1012
	if !s.finAcked() {
		t.Fatal("FIN acknowledged")
	}
	if err := s.check(); err != nil {
		t.Fatalf("FIN acknowledged: %v", err)
	}
	for name, broken := range map[string]func(*sendSide){
		"UNA after NXT":     func(s *sendSide) { s.una = s.nxt + 1 },
		"NXT after MAX":     func(s *sendSide) { s.nxt = s.max + 1 },
		"UNA before ISS":    func(s *sendSide) { s.una, s.nxt, s.max = s.iss-1, s.iss-1, s.iss-1 },
		"MAX beyond data":   func(s *sendSide) { s.max += 5; s.nxt = s.max },
		"buffer misplaced":  func(s *sendSide) { s.bufSeq -= 3 },
		"buffer overfull":   func(s *sendSide) { s.buf.lent = s.buf.max + 1 },
		"window over max":   func(s *sendSide) { s.wnd = s.maxWnd + 1 },
		"SYN unacked moved": func(s *sendSide) { s.synAcked = false },
	} {
		b := s
		broken(&b)
		if err := b.check(); err == nil {
			t.Errorf("%s: check passed", name)
		}
	}
}

func TestRecvSide(t *testing.T) {
	r := recvSide{irs: 5000, nxt: 5001, adv: 5001 + 1000}
	r.buf.max = 1000
	if r.window() != 1000 {
		t.Fatalf("window %d", r.window())
	}
	// The window may be passed (a FIN at its edge, a shrinking buffer):
	// what is left is then zero, never a wrapped 4 GB.
	r2 := r
	r2.nxt = r.adv + 1
	if r2.window() != 0 {
		t.Fatalf("window past the edge %d", r2.window())
	}
	for _, x := range []seqRange{{5100, 5200}, {5300, 5400}, {5199, 5301}, {5050, 5060}} {
		if !r.insertOOO(x) {
			t.Fatalf("insert %v refused", x)
		}
	}
	if len(r.ooo) != 2 || r.ooo[0] != (seqRange{5050, 5060}) || r.ooo[1] != (seqRange{5100, 5400}) {
		t.Fatalf("ranges %v", r.ooo)
	}
	if r.oooIndex(5250) != 1 || r.oooIndex(5060) != -1 || r.oooIndex(5050) != 0 {
		t.Fatal("oooIndex")
	}
	if err := r.check(); err != nil {
		t.Fatal(err)
	}
	// The limit on ranges.
	full := recvSide{nxt: 0, adv: 1 << 20}
	full.buf.max = 1 << 20
	for i := 0; i < maxOOORanges; i++ {
		if !full.insertOOO(seqRange{craft.Seq(10 + 10*i), craft.Seq(15 + 10*i)}) {
			t.Fatalf("range %d refused", i)
		}
	}
	if full.insertOOO(seqRange{5000, 5001}) || !full.insertOOO(seqRange{15, 20}) {
		t.Fatal("a range beyond the limit taken, or a merge refused")
	}
	for name, broken := range map[string]func(*recvSide){
		"edge before RCV.NXT":   func(r *recvSide) { r.nxt = r.adv + 5 },
		"range at RCV.NXT":      func(r *recvSide) { r.ooo[0].start = r.nxt },
		"range past the edge":   func(r *recvSide) { r.ooo[1].end = r.adv + 1 },
		"ranges touch":          func(r *recvSide) { r.ooo[0].end = r.ooo[1].start },
		"empty range":           func(r *recvSide) { r.ooo[0].end = r.ooo[0].start },
		"buffer overfull":       func(r *recvSide) { r.buf.n = r.buf.max + 1 },
		"range past the buffer": func(r *recvSide) { r.buf.n = 900 },
	} {
		b := r
		b.ooo = append([]seqRange(nil), r.ooo...)
		broken(&b)
		if err := b.check(); err == nil {
			t.Errorf("%s: check passed", name)
		}
	}
}

func TestRTTEstimator(t *testing.T) {
	cfg := DefaultConfig() // initial 1 s, bounds 200 ms .. 120 s
	e := newRTTEstimator(&cfg)
	if e.rto != time.Second || e.compute() != time.Second {
		t.Fatalf("initial RTO %v", e.rto)
	}
	e.backoff()
	if e.rto != 2*time.Second {
		t.Fatalf("backed off %v", e.rto)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	// RFC 6298 §2.2: the first sample R gives SRTT = R, RTTVAR = R/2.
	e.sample(100 * time.Millisecond)
	if e.srtt != 100*time.Millisecond || e.rttvar != 50*time.Millisecond || e.rto != 300*time.Millisecond {
		t.Fatalf("first sample: srtt %v rttvar %v rto %v", e.srtt, e.rttvar, e.rto)
	}
	// §2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|, SRTT = 7/8 SRTT + 1/8 R'.
	e.sample(200 * time.Millisecond)
	if e.rttvar != 62500*time.Microsecond || e.srtt != 112500*time.Microsecond || e.rto != 362500*time.Microsecond {
		t.Fatalf("second sample: srtt %v rttvar %v rto %v", e.srtt, e.rttvar, e.rto)
	}
	// §2.4: at least min; §2.5: at most max; G when RTTVAR is 0.
	for i := 0; i < 50; i++ {
		e.sample(time.Millisecond)
	}
	if e.rto != cfg.MinRTO {
		t.Fatalf("fast path RTO %v, want the minimum", e.rto)
	}
	for i := 0; i < 40; i++ {
		e.backoff()
	}
	if e.rto != cfg.MaxRTO {
		t.Fatalf("backed off to %v, want the maximum", e.rto)
	}
	e.reset()
	if e.rto != cfg.MinRTO {
		t.Fatalf("reset to %v", e.rto)
	}
	slow := newRTTEstimator(&cfg)
	slow.sample(200 * time.Second)
	if slow.rto != cfg.MaxRTO {
		t.Fatalf("a 200 s sample: RTO %v, want the maximum", slow.rto)
	}
	small := rttEstimator{min: 0, max: time.Hour, initial: time.Second}
	small.sample(0)
	if small.rto != clockGranularity {
		t.Fatalf("zero RTT: RTO %v, want G", small.rto)
	}
	if e.sample(-time.Millisecond) {
		t.Fatal("a negative sample taken")
	}
	// Karn: one segment timed at a time; only an ACK beyond it ends it.
	now := time.Unix(1000, 0)
	e.start(100, now)
	e.start(200, now.Add(time.Second)) // already timing: ignored
	if _, ok := e.acked(100, now.Add(time.Millisecond)); ok {
		t.Fatal("an ACK of the timed segment's first byte gave a sample")
	}
	if r, ok := e.acked(101, now.Add(7*time.Millisecond)); !ok || r != 7*time.Millisecond {
		t.Fatalf("sample %v %v", r, ok)
	}
	if _, ok := e.acked(300, now.Add(time.Second)); ok {
		t.Fatal("two samples of one timing")
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	e.rto = cfg.MaxRTO + 1
	if e.check() == nil {
		t.Fatal("RTO above the maximum passed")
	}
}

func TestTimers(t *testing.T) {
	var tm timers
	if _, ok := tm.next(); ok {
		t.Fatal("a deadline with no timer")
	}
	base := time.Unix(1000, 0)
	at := func(d int) time.Time { return base.Add(time.Duration(d) * time.Millisecond) }
	fields := []*time.Time{&tm.rtoAt, &tm.persistAt, &tm.delackAt, &tm.timeWaitAt, &tm.keepaliveAt, &tm.rackAt, &tm.tlpAt, &tm.corkAt}
	for i, f := range fields {
		*f = at(100 + i)
	}
	for i, f := range fields {
		// Each timer in turn is the earliest.
		*f = at(1)
		if d, ok := tm.next(); !ok || !d.Equal(at(1)) {
			t.Fatalf("timer %d earliest: next %v %v", i, d, ok)
		}
		*f = at(100 + i)
	}
	tm.stop()
	d, ok := tm.next()
	if !ok || !d.Equal(at(105)) {
		// stop leaves RACK's, the loss probe's and the cork's (the
		// cork ends with Conn.uncork; the others with armTimers).
		t.Fatalf("after stop: next %v %v", d, ok)
	}
}

func TestScoreboard(t *testing.T) {
	var sb scoreboard
	for i := 0; i < 5; i++ {
		sb.q.push(txSeg{start: craft.Seq(100 * i), end: craft.Seq(100 * (i + 1))})
	}
	check := func(what string) {
		t.Helper()
		if err := sb.check(0, 500); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("sent")
	sb.markSACKed(sb.q.at(2))
	if sb.markLost(sb.q.at(2)) || sb.q.at(2).is(segLost) {
		t.Fatal("a SACKed segment marked lost")
	}
	sb.rtxHint = 500
	if sb.markLost(sb.q.at(0)) || sb.lost != 100 || sb.rtxHint != 0 {
		t.Fatalf("lost %d, hint %d", sb.lost, sb.rtxHint)
	}
	sb.markLost(sb.q.at(1))
	check("two lost")
	if s := sb.nextLost(500); s == nil || s.start != 0 {
		t.Fatalf("next lost %v", s)
	}
	// Retransmit segment 0, as Conn.retransmit records it.
	s0 := sb.q.at(0)
	s0.flags |= segRtx | segEverRtx
	sb.rtx += s0.size()
	check("one retransmitted")
	if s := sb.nextLost(500); s == nil || s.start != 100 {
		t.Fatalf("next lost after a retransmission %v", s)
	}
	// Its retransmission is lost in turn.
	if !sb.markLost(s0) || sb.rtx != 0 || sb.lost != 200 {
		t.Fatalf("lost retransmission: rtx %d lost %d", sb.rtx, sb.lost)
	}
	check("retransmission lost")
	// A cumulative ACK of 150 bytes.
	sb.forget(sb.q.at(0), 100)
	sb.q.popFront()
	sb.forget(sb.q.at(0), 50)
	sb.q.at(0).start = 150
	if err := sb.check(150, 500); err != nil {
		t.Fatal(err)
	}
	if sb.lost != 50 || sb.sacked != 100 {
		t.Fatalf("after the ACK: lost %d sacked %d", sb.lost, sb.sacked)
	}
	for name, broken := range map[string]func(*scoreboard){
		"totals": func(sb *scoreboard) { sb.lost++ },
		"gap":    func(sb *scoreboard) { sb.q.at(1).start++ },
		"SACKed and lost": func(sb *scoreboard) {
			sb.q.at(1).flags |= segLost
			sb.lost += sb.q.at(1).size()
		},
		"rtx not lost": func(sb *scoreboard) {
			sb.q.at(2).flags |= segRtx
			sb.rtx += sb.q.at(2).size()
		},
	} {
		b := scoreboard{sacked: sb.sacked, lost: sb.lost, rtx: sb.rtx}
		for i := 0; i < sb.q.len(); i++ {
			b.q.push(*sb.q.at(i))
		}
		broken(&b)
		if err := b.check(150, 500); err == nil {
			t.Errorf("%s: check passed", name)
		}
	}
}
