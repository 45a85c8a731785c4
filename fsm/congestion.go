package fsm

import (
	"fmt"
	"math"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Congestion control: how much a connection may have in flight. The
// algorithm sits behind CongestionControl; the connection owns loss
// detection and recovery (recovery.go) and tells the algorithm what
// happened: data acknowledged, a loss detected by duplicate ACKs or SACK
// (a fast retransmit), a retransmission timeout, the end of a recovery, an
// idle period. Two algorithms are built in, chosen by Config.Congestion:
// NewReno (RFC 5681) and CUBIC (RFC 9438, the default, as in Linux).

// CongestionControl is a congestion control algorithm. All windows are in
// bytes; mss is the sender's maximum segment size (SMSS).
type CongestionControl interface {
	// Name is the algorithm's name as Config.Congestion spells it.
	Name() string
	// Cwnd and Ssthresh are the congestion window and the slow-start
	// threshold.
	Cwnd() uint32
	Ssthresh() uint32
	// OnAck is called for an ACK that acknowledges acked new bytes while
	// no loss recovery is in progress. cwndLimited says the sender was
	// using its window (RFC 7661: a window the sender does not use must
	// not grow); srtt is the smoothed round-trip time (0 if unknown).
	OnAck(acked uint32, cwndLimited bool, srtt time.Duration, now time.Time)
	// OnLoss is called once per loss episode detected by duplicate ACKs
	// or SACK, as fast recovery starts: it sets ssthresh and the window to
	// use during recovery. flight is the FlightSize (RFC 5681 §2).
	OnLoss(flight uint32, now time.Time)
	// OnRecoveryEnd is called when the cumulative ACK passes the
	// recovery point (RFC 6582 §3.2 step 3, RFC 6675 §5).
	OnRecoveryEnd(now time.Time)
	// OnRTO is called on a retransmission timeout: first is true for the
	// first timeout of the segment at SND.UNA (RFC 5681 §3.1: ssthresh is
	// reduced only then); the window becomes the loss window of one
	// segment.
	OnRTO(flight uint32, first bool, now time.Time)
	// Restart limits the window to rw after an idle period (RFC 5681
	// §4.1).
	Restart(rw uint32, now time.Time)
	// Undo takes back the reduction of the last OnLoss: the loss was not
	// one (D-SACKs reported every retransmission as a duplicate, RFC 2883
	// §5; the response of RFC 4015 §2).
	Undo(now time.Time)
}

// Names of the built-in algorithms (Config.Congestion).
const (
	CongestionReno  = "reno"
	CongestionCubic = "cubic"
)

// newCongestionControl makes the algorithm called name with the initial
// window of RFC 6928 (ten segments, as Linux).
func newCongestionControl(name string, mss int) (CongestionControl, error) {
	switch name {
	case "", CongestionCubic:
		return NewCubic(mss), nil
	case CongestionReno:
		return NewReno(mss), nil
	}
	return nil, fmt.Errorf("congestion control %q: want %s or %s", name, CongestionReno, CongestionCubic)
}

// cwnd is the congestion window in sequence space (the algorithms count
// in plain bytes).
func (c *Conn) cwnd() craft.Size { return craft.Size(c.cc.Cwnd()) }

// initialWindow is IW of RFC 6928 §2: ten segments (Linux uses ten
// regardless of the MSS).
func initialWindow(mss uint32) uint32 { return 10 * mss }

// slowStartIncrease is how much an ACK of acked new bytes opens the window
// in slow start: all of them. RFC 5681 §3.1 recommends at most one SMSS per
// ACK (equation 2) and RFC 3465 §2.3 at most L = 2 SMSS, which assume an
// ACK for every one or two segments; a Linux receiver with GRO, or one fed
// 64 KB segments by TSO, acknowledges tens of segments at once, and capping
// each such stretch ACK at one SMSS leaves the window growing by a segment
// per 40 or so sent: on a veth the slow start of a bulk transfer then lasts
// the whole transfer, hundreds of megabytes with the window under 2 MB.
// Linux counts every acknowledged segment (tcp_slow_start,
// since 3.19's stretch-ACK fixes); so does tcpcraft. The window still at
// most doubles per round trip, which is what slow start is.
func slowStartIncrease(acked uint32) uint32 { return acked }

// maxCwnd bounds every window (the largest receive window RFC 7323 §2.3
// can express, 2^30 bytes).
const maxCwnd = 1 << 30

// Reno is NewReno congestion control (RFC 5681 §3.1 with the fast
// recovery window of RFC 6582 and RFC 6675): slow start below ssthresh,
// one segment per window's worth of ACKed bytes above it (the byte
// counting of RFC 3465), ssthresh = max(FlightSize/2,
// 2*SMSS) on loss.
type Reno struct {
	mss, cwnd, ssthresh uint32
	acked               uint32 // bytes acknowledged towards the next increase in CA
	priorCwnd, priorSS  uint32 // before the last OnLoss, for Undo
}

// NewReno returns NewReno congestion control for segments of mss bytes.
func NewReno(mss int) *Reno {
	m := uint32(max(mss, 1))
	return &Reno{mss: m, cwnd: initialWindow(m), ssthresh: maxCwnd}
}

// Name implements CongestionControl.
func (r *Reno) Name() string { return CongestionReno }

// Cwnd implements CongestionControl.
func (r *Reno) Cwnd() uint32 { return r.cwnd }

// Ssthresh implements CongestionControl.
func (r *Reno) Ssthresh() uint32 { return r.ssthresh }

// OnAck implements CongestionControl: RFC 5681 §3.1 slow start (by the
// bytes acknowledged, see slowStartIncrease, not equation 2's SMSS cap) and
// congestion avoidance (about one SMSS per RTT, equation 3, counted in
// bytes acknowledged).
func (r *Reno) OnAck(acked uint32, cwndLimited bool, _ time.Duration, _ time.Time) {
	if !cwndLimited || acked == 0 {
		return
	}
	if r.cwnd < r.ssthresh {
		r.cwnd = min(r.cwnd+slowStartIncrease(acked), r.ssthresh)
		r.acked = 0
	} else {
		r.acked += acked
		if r.acked >= r.cwnd {
			r.acked -= r.cwnd
			r.cwnd += r.mss
		}
	}
	r.cwnd = min(r.cwnd, maxCwnd)
}

// OnLoss implements CongestionControl: RFC 5681 §3.2 step 2, equation 4
// (ssthresh = max(FlightSize/2, 2*SMSS)); the recovery window is ssthresh
// (RFC 6675 §5 step 4.2; the inflation of RFC 5681 is replaced by pipe).
func (r *Reno) OnLoss(flight uint32, _ time.Time) {
	r.priorCwnd, r.priorSS = r.cwnd, r.ssthresh
	r.ssthresh = max(flight/2, 2*r.mss)
	r.cwnd = r.ssthresh
	r.acked = 0
}

// OnRecoveryEnd implements CongestionControl: "set cwnd to ssthresh"
// (RFC 6582 §3.2 step 3, full acknowledgment).
func (r *Reno) OnRecoveryEnd(time.Time) { r.cwnd = r.ssthresh }

// OnRTO implements CongestionControl: RFC 5681 §3.1 equation 4 on the
// first timeout, and the loss window of one segment.
func (r *Reno) OnRTO(flight uint32, first bool, _ time.Time) {
	if first {
		r.ssthresh = max(flight/2, 2*r.mss)
	}
	r.cwnd = r.mss
	r.acked = 0
}

// Restart implements CongestionControl (RFC 5681 §4.1: cwnd = min(RW,
// cwnd)).
func (r *Reno) Restart(rw uint32, _ time.Time) { r.cwnd = min(r.cwnd, rw) }

// Undo implements CongestionControl (RFC 4015 §2.2: restore the window
// and ssthresh; like Linux, never below what they are now).
func (r *Reno) Undo(time.Time) {
	if r.priorCwnd == 0 {
		return
	}
	r.cwnd = max(r.cwnd, r.priorCwnd)
	r.ssthresh = max(r.ssthresh, r.priorSS)
	r.priorCwnd = 0
}

// CUBIC constants (RFC 9438 §4.2, §4.6).
const (
	cubicC    = 0.4 // segments / second^3
	cubicBeta = 0.7 // multiplicative decrease factor
)

// Cubic is CUBIC congestion control (RFC 9438), computed in segments like
// the RFC's equations: the window follows W_cubic(t) = C*(t-K)^3 + W_max
// (§4.2) from the start of each congestion avoidance epoch, never below the
// Reno-friendly estimate W_est (§4.3); a loss sets ssthresh and the window
// to beta = 0.7 times the window (§4.6) and remembers W_max, lowered by
// fast convergence (§4.7) when the window had not regained the previous
// W_max. Slow start below ssthresh is Reno's (§4.10).
type Cubic struct {
	mss      uint32
	cwnd     float64 // segments
	ssthresh float64 // segments

	wMax       float64   // window before the last reduction (segments)
	cwndPrior  float64   // window when ssthresh was last set (§4.3)
	epochStart time.Time // start of the current CA epoch; zero: none yet
	k          float64   // seconds for W_cubic to regain wMax (§4.2 eq. 2)
	cwndEpoch  float64   // window at the start of the epoch
	wEst       float64   // Reno-friendly estimate (§4.3)
	afterRTO   bool      // the next epoch follows a timeout (§4.8)

	prior *Cubic // the state before the last OnLoss, for Undo
}

// NewCubic returns CUBIC congestion control for segments of mss bytes.
func NewCubic(mss int) *Cubic {
	m := uint32(max(mss, 1))
	return &Cubic{mss: m, cwnd: float64(initialWindow(m) / m), ssthresh: maxCwnd}
}

// Name implements CongestionControl.
func (c *Cubic) Name() string { return CongestionCubic }

func (c *Cubic) bytes(segs float64) uint32 {
	b := segs * float64(c.mss)
	if b >= maxCwnd {
		return maxCwnd
	}
	return uint32(b)
}

// Cwnd implements CongestionControl.
func (c *Cubic) Cwnd() uint32 { return c.bytes(c.cwnd) }

// Ssthresh implements CongestionControl.
func (c *Cubic) Ssthresh() uint32 { return c.bytes(c.ssthresh) }

// WMax and K expose W_max (bytes) and K of RFC 9438 §4.2 for tests and
// traces.
func (c *Cubic) WMax() uint32     { return c.bytes(c.wMax) }
func (c *Cubic) K() time.Duration { return time.Duration(c.k * float64(time.Second)) }

// wCubic is RFC 9438 §4.2 equation 1, t in seconds since the epoch.
func (c *Cubic) wCubic(t float64) float64 {
	d := t - c.k
	return cubicC*d*d*d + c.wMax
}

// OnAck implements CongestionControl (RFC 9438 §4.2-4.5, §4.10).
func (c *Cubic) OnAck(acked uint32, cwndLimited bool, srtt time.Duration, now time.Time) {
	if !cwndLimited || acked == 0 {
		return
	}
	segs := float64(acked) / float64(c.mss)
	if c.cwnd < c.ssthresh {
		// Slow start (§4.10, RFC 5681 §3.1) by the bytes acknowledged
		// (slowStartIncrease), up to ssthresh, where congestion
		// avoidance takes over.
		c.cwnd = math.Min(c.cwnd+float64(slowStartIncrease(acked))/float64(c.mss), c.ssthresh)
		c.clamp()
		return
	}
	if c.epochStart.IsZero() {
		// A new congestion avoidance epoch (§4.2).
		c.epochStart = now
		c.cwndEpoch = c.cwnd
		c.wEst = c.cwnd
		if c.afterRTO || c.wMax <= c.cwnd {
			// §4.8: after a timeout (and whenever the window is at
			// or above W_max) K = 0 and W_max is the window now.
			c.k = 0
			c.wMax = c.cwnd
		} else {
			c.k = math.Cbrt((c.wMax - c.cwndEpoch) / cubicC)
		}
		c.afterRTO = false
	}
	t := now.Sub(c.epochStart).Seconds()
	// §4.3: the Reno-friendly estimate grows by alpha per window, alpha
	// = 3(1-beta)/(1+beta) until it reaches the window of the last
	// reduction, then 1.
	alpha := 3 * (1 - cubicBeta) / (1 + cubicBeta)
	if c.wEst >= c.cwndPrior {
		alpha = 1
	}
	c.wEst += alpha * segs / c.cwnd
	if w := c.wCubic(t); w < c.wEst {
		// §4.3: the Reno-friendly region.
		c.cwnd = c.wEst
	} else {
		// §4.4, §4.5: concave and convex regions, towards
		// W_cubic(t+RTT) clamped to [cwnd, 1.5*cwnd].
		target := c.wCubic(t + srtt.Seconds())
		target = math.Max(c.cwnd, math.Min(target, 1.5*c.cwnd))
		c.cwnd += (target - c.cwnd) / c.cwnd * segs
	}
	c.clamp()
}

func (c *Cubic) clamp() {
	if lim := float64(maxCwnd / c.mss); c.cwnd > lim {
		c.cwnd = lim
	}
}

// reduce is the multiplicative decrease of §4.6 with the fast
// convergence of §4.7.
func (c *Cubic) reduce() {
	if c.cwnd < c.wMax {
		c.wMax = c.cwnd * (1 + cubicBeta) / 2
	} else {
		c.wMax = c.cwnd
	}
	c.cwndPrior = c.cwnd
	c.ssthresh = math.Max(c.cwnd*cubicBeta, 2)
	c.epochStart = time.Time{}
}

// OnLoss implements CongestionControl (RFC 9438 §4.6: ssthresh = cwnd *
// beta, cwnd = max(ssthresh, 2 segments); the RFC allows cwnd in place of
// FlightSize, as Linux does, since OnAck grows the window only while it
// is used).
func (c *Cubic) OnLoss(_ uint32, _ time.Time) {
	saved := *c
	saved.prior = nil
	c.prior = &saved
	c.reduce()
	c.cwnd = c.ssthresh
}

// OnRecoveryEnd implements CongestionControl.
func (c *Cubic) OnRecoveryEnd(time.Time) { c.cwnd = c.ssthresh }

// OnRTO implements CongestionControl (RFC 9438 §4.8: ssthresh as in §4.6
// on the first timeout, the loss window of one segment, and the next
// epoch starts with K = 0).
func (c *Cubic) OnRTO(_ uint32, first bool, _ time.Time) {
	if first {
		c.reduce()
	}
	c.cwnd = 1
	c.epochStart = time.Time{}
	c.afterRTO = true
}

// Undo implements CongestionControl: the state before the last OnLoss
// comes back (the window never falls by it).
func (c *Cubic) Undo(time.Time) {
	if c.prior == nil {
		return
	}
	cwnd := c.cwnd
	*c = *c.prior
	c.cwnd = math.Max(c.cwnd, cwnd)
	c.epochStart = time.Time{}
}

// Restart implements CongestionControl (RFC 5681 §4.1); the CA epoch
// restarts too, so the idle time does not count as growth time.
func (c *Cubic) Restart(rw uint32, _ time.Time) {
	c.cwnd = math.Min(c.cwnd, float64(rw)/float64(c.mss))
	c.epochStart = time.Time{}
}
