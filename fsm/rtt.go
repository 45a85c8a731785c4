package fsm

import (
	"fmt"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// rttEstimator is the round-trip time estimator of RFC 6298: SRTT, RTTVAR
// and the retransmission timeout they give, its exponential backoff, and
// the one segment timed at a time (Karn's rule: never a retransmitted
// one, RFC 6298 §3).
//
// Its invariants (check): once sampled, RTO lies within [min, max] (before,
// it is the initial RTO, backed off at most to max); SRTT and RTTVAR are
// not negative.
type rttEstimator struct {
	srtt, rttvar time.Duration
	rto          time.Duration
	has          bool // a sample was taken: SRTT and RTTVAR are set

	initial, min, max time.Duration // Config.InitialRTO, MinRTO, MaxRTO

	// The segment being timed: its first sequence number and when it
	// was sent. An ACK beyond seq gives the sample.
	timing bool
	seq    craft.Seq
	sent   time.Time
}

// newRTTEstimator starts with the initial RTO of cfg (RFC 6298 §2.1).
func newRTTEstimator(cfg *Config) rttEstimator {
	return rttEstimator{rto: cfg.InitialRTO, initial: cfg.InitialRTO, min: cfg.MinRTO, max: cfg.MaxRTO}
}

// sample folds one measurement r into SRTT and RTTVAR and recomputes the
// RTO (RFC 6298 §2.2, §2.3), which ends any backoff. A negative r (a
// clock that stepped back) is ignored: it reports false.
func (e *rttEstimator) sample(r time.Duration) bool {
	if r < 0 {
		return false
	}
	if !e.has {
		e.srtt = r
		e.rttvar = r / 2
		e.has = true
	} else {
		delta := e.srtt - r
		if delta < 0 {
			delta = -delta
		}
		e.rttvar = (3*e.rttvar + delta) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.rto = e.compute()
	return true
}

// compute is RTO = SRTT + max(G, 4*RTTVAR), within [min, max] (RFC 6298
// §2.3-2.5); before any sample, the initial RTO.
func (e *rttEstimator) compute() time.Duration {
	if !e.has {
		return e.initial
	}
	v := max(4*e.rttvar, clockGranularity)
	return min(max(e.srtt+v, e.min), e.max)
}

// reset ends a backoff: new data was acknowledged (RFC 6298 §5.3, §5.7).
func (e *rttEstimator) reset() { e.rto = e.compute() }

// backoff doubles the RTO after a timeout (RFC 6298 §5.5), up to max.
func (e *rttEstimator) backoff() { e.rto = min(2*e.rto, e.max) }

// start times the segment from seq sent at now, unless one is timed.
func (e *rttEstimator) start(seq craft.Seq, now time.Time) {
	if !e.timing {
		e.timing, e.seq, e.sent = true, seq, now
	}
}

// acked ends the timing when ack covers the timed segment and returns its
// round-trip time.
func (e *rttEstimator) acked(ack craft.Seq, now time.Time) (time.Duration, bool) {
	if !e.timing || !ack.GreaterThan(e.seq) {
		return 0, false
	}
	e.timing = false
	return now.Sub(e.sent), true
}

// check reports the first invariant that does not hold.
func (e *rttEstimator) check() error {
	switch {
	case e.srtt < 0 || e.rttvar < 0:
		return fmt.Errorf("SRTT %v, RTTVAR %v", e.srtt, e.rttvar)
	case e.has && (e.rto < e.min || e.rto > e.max):
		return fmt.Errorf("RTO %v outside [%v, %v]", e.rto, e.min, e.max)
	case !e.has && (e.rto < min(e.initial, e.max) || e.rto > max(e.initial, e.max)):
		return fmt.Errorf("RTO %v before any sample, initial %v, max %v", e.rto, e.initial, e.max)
	}
	return nil
}
