package fsm

import (
	"math"
	"strings"
	"testing"
	"time"
)

// NewReno arithmetic (RFC 5681 §3.1): slow start adds the bytes acked,
// stretch ACKs included (slowStartIncrease), up to ssthresh; congestion avoidance one SMSS per window of acknowledged bytes;
// a loss sets ssthresh = max(FlightSize/2, 2*SMSS); a timeout the loss
// window of one segment; an unused window does not grow (RFC 7661).
func TestRenoArithmetic(t *testing.T) {
	r := NewReno(1000)
	if r.Cwnd() != 10000 || r.Name() != "reno" {
		t.Fatalf("initial window %d (RFC 6928: 10 segments)", r.Cwnd())
	}
	now := time.Unix(0, 0)
	r.OnAck(3000, true, 0, now) // a stretch ACK counts in full
	if r.Cwnd() != 13000 {
		t.Fatalf("slow start after a 3000-byte ACK: %d, want 13000", r.Cwnd())
	}
	r.OnAck(1000, false, 0, now)
	if r.Cwnd() != 13000 {
		t.Fatalf("grew while not cwnd-limited: %d", r.Cwnd())
	}
	r.OnLoss(20000, now)
	if r.Cwnd() != 10000 || r.Ssthresh() != 10000 {
		t.Fatalf("after a loss with 20000 in flight: cwnd %d ssthresh %d, want 10000 and 10000", r.Cwnd(), r.Ssthresh())
	}
	// Congestion avoidance: 10 ACKs of 1000 make one window: +1 SMSS.
	for i := 0; i < 9; i++ {
		r.OnAck(1000, true, 0, now)
	}
	if r.Cwnd() != 10000 {
		t.Fatalf("CA grew before a window was acknowledged: %d", r.Cwnd())
	}
	r.OnAck(1000, true, 0, now)
	if r.Cwnd() != 11000 {
		t.Fatalf("CA after a window: %d, want 11000", r.Cwnd())
	}
	r.OnLoss(1000, now)
	if r.Ssthresh() != 2000 {
		t.Fatalf("ssthresh floor: %d, want 2*SMSS", r.Ssthresh())
	}
	r.Undo(now)
	if r.Cwnd() != 11000 || r.Ssthresh() != 10000 {
		t.Fatalf("undo: cwnd %d ssthresh %d, want 11000 and 10000", r.Cwnd(), r.Ssthresh())
	}
	r.OnRTO(30000, true, now)
	if r.Cwnd() != 1000 || r.Ssthresh() != 15000 {
		t.Fatalf("after an RTO: cwnd %d ssthresh %d, want 1000 and 15000", r.Cwnd(), r.Ssthresh())
	}
	r.OnRTO(30000, false, now) // a second timeout of the same data
	if r.Ssthresh() != 15000 {
		t.Fatalf("ssthresh changed on a repeated timeout: %d", r.Ssthresh())
	}
	for i := 0; i < 20; i++ {
		r.OnAck(1000, true, 0, now)
	}
	r.Restart(10000, now)
	if r.Cwnd() != 10000 {
		t.Fatalf("restart window: %d", r.Cwnd())
	}
}

// CUBIC (RFC 9438): beta 0.7 on loss (§4.6), K = cbrt(W_max*(1-beta)/C)
// (§4.2), the window regains W_max after K seconds and probes beyond it,
// fast convergence lowers W_max when the window had not regained it
// (§4.7), and the Reno-friendly region (§4.3) takes over when CUBIC would
// be slower than Reno.
func TestCubicArithmetic(t *testing.T) {
	c := NewCubic(1000)
	now := time.Unix(1000, 0)
	if c.Cwnd() != 10000 || c.Name() != "cubic" {
		t.Fatalf("initial window %d", c.Cwnd())
	}
	for i := 0; i < 90; i++ { // slow start to 100 segments
		c.OnAck(1000, true, 0, now)
	}
	if c.Cwnd() != 100000 {
		t.Fatalf("slow start: %d", c.Cwnd())
	}
	c.OnLoss(100000, now)
	if c.Cwnd() != 70000 || c.Ssthresh() != 70000 || c.WMax() != 100000 {
		t.Fatalf("after a loss at 100 segments: cwnd %d ssthresh %d W_max %d, want 70000 70000 100000", c.Cwnd(), c.Ssthresh(), c.WMax())
	}
	// The first ACK in congestion avoidance starts the epoch: K =
	// cbrt((100-70)/0.4) = cbrt(75) s.
	rtt := 100 * time.Millisecond
	c.OnAck(1000, true, rtt, now)
	wantK := math.Cbrt(75)
	if k := c.K().Seconds(); math.Abs(k-wantK) > 1e-6 {
		t.Fatalf("K = %v s, want %v", k, wantK)
	}
	// Drive it a window per RTT for K seconds: the window comes back to
	// about W_max (concave region), then grows beyond (convex).
	at := now
	ackRound := func() {
		at = at.Add(rtt)
		n := int(c.Cwnd() / 1000)
		for i := 0; i < n; i++ {
			c.OnAck(1000, true, rtt, at)
		}
	}
	for at.Sub(now) < time.Duration(wantK*float64(time.Second)) {
		ackRound()
		if c.Cwnd() > 101000 {
			t.Fatalf("window %d passed W_max before K (t = %v)", c.Cwnd(), at.Sub(now))
		}
	}
	if cw := c.Cwnd(); cw < 97000 || cw > 101000 {
		t.Fatalf("window %d at t = K, want about W_max = 100000", cw)
	}
	for i := 0; i < 20; i++ {
		ackRound()
	}
	if cw := c.Cwnd(); cw < 103000 {
		t.Fatalf("window %d two seconds after K, want growth beyond W_max", cw)
	}
	// Fast convergence: a loss before regaining the previous W_max.
	c = NewCubic(1000)
	for i := 0; i < 90; i++ {
		c.OnAck(1000, true, 0, now)
	}
	c.OnLoss(0, now) // W_max 100, cwnd 70
	c.OnLoss(0, now) // at 70 < 100: W_max = 70 * 1.7 / 2 = 59.5
	if w := c.WMax(); w != 59500 {
		t.Fatalf("fast convergence: W_max %d, want 59500", w)
	}
	if c.Cwnd() != 49000 {
		t.Fatalf("second reduction: cwnd %d, want 49000", c.Cwnd())
	}
	// A timeout: one segment; the next epoch starts with K = 0.
	c.OnRTO(0, true, now)
	if c.Cwnd() != 1000 || c.Ssthresh() != 34300 {
		t.Fatalf("after an RTO: cwnd %d ssthresh %d, want 1000 and 34300", c.Cwnd(), c.Ssthresh())
	}
	// Reno-friendly region: on a very short RTT with many ACKs per
	// second, W_cubic barely moves; W_est (alpha = 0.53 per window) leads.
	c = NewCubic(1000)
	for i := 0; i < 90; i++ {
		c.OnAck(1000, true, 0, now)
	}
	c.OnLoss(0, now)
	at = now
	for r := 0; r < 100; r++ {
		at = at.Add(100 * time.Microsecond)
		n := int(c.Cwnd() / 1000)
		for i := 0; i < n; i++ {
			c.OnAck(1000, true, 100*time.Microsecond, at)
		}
	}
	// alpha = 3(1-0.7)/(1+0.7) = 0.53 per window until W_est reaches
	// the window before the loss (100 segments, after 57 windows), then
	// 1: about 143 segments after 100 windows, while W_cubic after 10 ms
	// is still about 70.
	if cw := c.Cwnd(); cw < 138000 || cw > 147000 {
		t.Fatalf("Reno-friendly region: window %d after 100 windows from 70 segments, want about 143000", cw)
	}
	c.Undo(now)
	if c.Cwnd() < 100000 {
		t.Fatalf("undo: %d", c.Cwnd())
	}
}

// The congestion control is chosen in Config and validated.
func TestCongestionConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LocalPort, cfg.RemotePort = 1, 2
	if cfg.Congestion != CongestionCubic {
		t.Fatalf("default %q, want cubic like Linux", cfg.Congestion)
	}
	for _, name := range []string{"", "cubic", "reno"} {
		cfg.Congestion = name
		c, err := NewConn(cfg)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		want := name
		if want == "" {
			want = "cubic"
		}
		if got := c.Stats().Congestion; got != want {
			t.Fatalf("%q: stats say %q", name, got)
		}
	}
	cfg.Congestion = "bbr"
	if _, err := NewConn(cfg); err == nil || !strings.Contains(err.Error(), `congestion control "bbr": want reno or cubic`) {
		t.Fatalf("unknown algorithm: %v", err)
	}
}

// TestSlowStartCountsStretchACKs: in slow start an ACK for many segments
// at once (a GRO receiver's stretch ACK) opens the window by all the bytes
// it acknowledges, as Linux's tcp_slow_start does, but never past
// ssthresh.
func TestSlowStartCountsStretchACKs(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, cc := range []CongestionControl{NewReno(1000), NewCubic(1000)} {
		cc.OnAck(20000, true, time.Millisecond, now)
		if cc.Cwnd() != 30000 {
			t.Errorf("%s: a 20-segment ACK from a 10-segment window: cwnd %d, want 30000", cc.Name(), cc.Cwnd())
		}
		cc.OnRTO(40000, true, now) // ssthresh 20000 (Reno) or 21000 (CUBIC), cwnd one segment
		if cc.Cwnd() != 1000 || cc.Ssthresh() > 21000 {
			t.Fatalf("%s: after an RTO cwnd %d ssthresh %d", cc.Name(), cc.Cwnd(), cc.Ssthresh())
		}
		cc.OnAck(64000, true, time.Millisecond, now)
		if cc.Cwnd() != cc.Ssthresh() {
			t.Errorf("%s: slow start past ssthresh: cwnd %d, ssthresh %d", cc.Name(), cc.Cwnd(), cc.Ssthresh())
		}
	}
}
