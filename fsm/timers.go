package fsm

import (
	"fmt"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// clockGranularity is G of RFC 6298 §2: the caller's clock has nanosecond
// resolution, but an RTO within a millisecond of SRTT would fire on jitter.
const clockGranularity = time.Millisecond

// tsRecentMaxIdle is the 24 days after which TS.Recent is no longer trusted
// (RFC 7323 §5.5).
const tsRecentMaxIdle = 24 * 24 * time.Hour

// corkTimeout is the longest a cork (CommitSendMore) holds a segment short
// of a full MSS: Linux's TCP_CORK ceiling (tcp(7): 200 milliseconds), so
// that input which stops right after a full read still goes out.
const corkTimeout = 200 * time.Millisecond

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// timers holds every deadline of a connection (the zero time: not
// running) and the counts of what their expiries sent. Tick fires the
// due ones; next is the earliest, which the driver waits for.
type timers struct {
	rtoAt       time.Time // retransmission (RFC 6298 §5)
	persistAt   time.Time // zero-window probe (RFC 9293 §3.8.6.1)
	delackAt    time.Time // delayed ACK (RFC 9293 §3.8.6.3)
	timeWaitAt  time.Time // end of TIME-WAIT (RFC 9293 §3.10.8)
	keepaliveAt time.Time // keep-alive probe (RFC 9293 §3.8.4)
	rackAt      time.Time // RACK's reordering window (RFC 8985 §6.3)
	tlpAt       time.Time // tail loss probe (RFC 8985 §7)
	corkAt      time.Time // the end of a cork (CommitSendMore)

	// The TIME-WAIT probe (Config.TimeWaitProbe) and whether timeWaitAt
	// is its short hold rather than the full TimeWait.
	twProbe twProbeState
	twShort bool

	retries         int // retransmissions of the segment at SND.UNA
	persistShift    int // the backoff of the persist timer
	persistProbes   int // zero-window probes unanswered
	keepaliveProbes int // keep-alive probes unanswered
	lastRecv        time.Time
}

// twProbeState is where the TIME-WAIT probe is (Config.TimeWaitProbe).
type twProbeState uint8

const (
	twProbeNone     twProbeState = iota // not used: TIME-WAIT lasts TimeWait
	twProbeDue                          // to go out after the ACK of the peer's FIN
	twProbeSent                         // out, unanswered
	twProbeAnswered                     // the peer answered with an ACK: it was in LAST-ACK
)

// next returns the earliest deadline, and false when no timer runs.
func (t *timers) next() (time.Time, bool) {
	d := earliest(t.timeWaitAt, t.rtoAt)
	d = earliest(d, t.persistAt)
	d = earliest(d, t.delackAt)
	d = earliest(d, t.keepaliveAt)
	d = earliest(d, t.rackAt)
	d = earliest(d, t.tlpAt)
	d = earliest(d, t.corkAt)
	return d, !d.IsZero()
}

// stop stops the timers of a connection that ends or goes back to LISTEN
// (the cork's with the cork, see Conn.uncork).
func (t *timers) stop() {
	t.rtoAt, t.persistAt, t.delackAt, t.timeWaitAt, t.keepaliveAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
}

// Tick fires the timers that are due at now: TIME-WAIT expiry, the
// retransmission timer, the persist timer, the delayed ACK, a cork's
// limit and keep-alive.
func (c *Conn) Tick(now time.Time) {
	c.touch(now)
	if due(c.tmr.timeWaitAt, now) {
		// RFC 9293 §3.10.8: "If the time-wait timeout expires on a
		// connection, delete the TCB, enter the CLOSED state".
		cause := CauseTimeWaitDone
		if c.tmr.twShort {
			cause = CauseTimeWaitFINsDone
		}
		c.stopTimers()
		c.setState(Closed, cause)
		return
	}
	if due(c.tmr.rackAt, now) {
		// RFC 8985 §6.3: the reordering window of a suspect segment
		// has passed.
		c.tmr.rackAt = time.Time{}
		c.detectLossesOnTimer(now)
	}
	if due(c.tmr.tlpAt, now) && (c.tmr.rtoAt.IsZero() || !c.tmr.rtoAt.Before(c.tmr.tlpAt)) {
		// The loss probe (RFC 8985 §7.3); it restarts the RTO timer.
		c.lossProbe(now)
	}
	if due(c.tmr.rtoAt, now) {
		c.onRTO(now)
		if c.state == Closed {
			return
		}
	}
	if due(c.tmr.persistAt, now) {
		c.onPersist(now)
		if c.state == Closed {
			return
		}
	}
	if due(c.tmr.delackAt, now) {
		// RFC 9293 §3.8.6.3: the delayed ACK is due.
		c.tmr.delackAt = time.Time{}
		c.rcv.ackNow = true
	}
	if due(c.tmr.corkAt, now) {
		// The data a cork held waited long enough for more.
		c.uncork()
	}
	if due(c.tmr.keepaliveAt, now) {
		c.onKeepalive(now)
		if c.state == Closed {
			return
		}
	}
	c.transmit(now)
}

// NextDeadline returns the earliest time at which Tick has work to do, and
// false when no timer is running.
func (c *Conn) NextDeadline() (time.Time, bool) { return c.tmr.next() }

// earliest returns the earlier of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if b.IsZero() || (!a.IsZero() && !b.Before(a)) {
		return a
	}
	return b
}

// armTimers starts or stops the retransmission, persist and keep-alive
// timers to match what is outstanding.
func (c *Conn) armTimers(now time.Time) {
	switch c.state {
	case Closed, Listen, TimeWait:
		c.tmr.rtoAt, c.tmr.persistAt, c.tmr.keepaliveAt = time.Time{}, time.Time{}, time.Time{}
		c.tmr.rackAt, c.tmr.tlpAt = time.Time{}, time.Time{}
		return
	}
	if c.snd.una != c.snd.max {
		// RFC 6298 §5.1: run the timer while data is outstanding.
		if c.tmr.rtoAt.IsZero() {
			c.tmr.rtoAt = now.Add(c.rtt.rto)
		}
		c.armLossProbe(now)
		c.tmr.persistAt = time.Time{}
		c.tmr.persistShift = 0
	} else {
		// RFC 6298 §5.2: all acknowledged, stop the timer.
		c.tmr.rtoAt, c.tmr.rackAt, c.tmr.tlpAt = time.Time{}, time.Time{}, time.Time{}
		if c.snd.synAcked && c.snd.wnd == 0 && c.snd.pending() {
			// RFC 9293 §3.8.6.1: the peer's window is shut and we have
			// something to say: probe it.
			if c.tmr.persistAt.IsZero() {
				c.tmr.persistAt = now.Add(c.persistInterval())
			}
		} else {
			c.tmr.persistAt = time.Time{}
			c.tmr.persistShift = 0
		}
	}
	if c.cfg.Keepalive > 0 && c.snd.synAcked && (c.state == Established || c.state == CloseWait) &&
		c.snd.una == c.snd.max {
		if c.tmr.keepaliveAt.IsZero() {
			c.tmr.keepaliveAt = c.tmr.lastRecv.Add(c.cfg.Keepalive)
			if !c.tmr.keepaliveAt.After(now) {
				c.tmr.keepaliveAt = now.Add(c.cfg.Keepalive)
			}
		}
	} else {
		c.tmr.keepaliveAt = time.Time{}
	}
}

// persistInterval backs off like the RTO, bounded by MinRTO and MaxRTO.
func (c *Conn) persistInterval() time.Duration {
	d := c.rtt.rto
	for i := 0; i < c.tmr.persistShift && d < c.cfg.MaxRTO; i++ {
		d *= 2
	}
	if d < c.cfg.MinRTO {
		d = c.cfg.MinRTO
	}
	if d > c.cfg.MaxRTO {
		d = c.cfg.MaxRTO
	}
	return d
}

// onRTO handles the expiry of the retransmission timer (RFC 6298
// §5.4-5.6, RFC 5681 §3.1, RFC 6675 §5.1).
func (c *Conn) onRTO(now time.Time) {
	c.tmr.rtoAt = time.Time{}
	if c.snd.una == c.snd.max {
		return
	}
	if !c.snd.synAcked {
		// Our SYN (or SYN-ACK) again, from ISS.
		if c.tmr.retries >= c.cfg.MaxSYNRetries {
			c.fail(fmt.Errorf("%w after %d SYN retransmissions", ErrTimeout, c.tmr.retries), CauseSYNRetriesDone)
			return
		}
		c.tmr.retries++
		c.stats.Timeouts++
		c.rtt.backoff()
		c.snd.nxt = c.snd.una
		c.rtt.timing = false // Karn's rule
		c.tmr.rtoAt = now.Add(c.rtt.rto)
		c.transmit(now)
		return
	}
	zeroWindow := c.snd.wnd == 0 && now.Sub(c.tmr.lastRecv) <= c.rtt.rto
	if c.tmr.retries >= c.cfg.MaxRetries && !zeroWindow {
		c.fail(fmt.Errorf("%w after %d retransmissions", ErrTimeout, c.tmr.retries), CauseRetriesDone)
		return
	}
	if !zeroWindow {
		// A peer that shrank its window to zero and answered within
		// the last RTO is alive: what goes now is a window probe, not
		// a retry (Linux likewise keeps probing a zero window that is
		// answered).
		c.tmr.retries++
	}
	c.stats.Timeouts++
	c.rtt.backoff()
	// RFC 5681 §3.1: ssthresh falls on the first timeout only; a timeout
	// during a recovery keeps the ssthresh that recovery set (as Linux).
	first := c.rec.phase == recoveryNone
	c.cc.OnRTO(uint32(c.snd.outstanding()), first, now)
	// RFC 6675 §5.1: everything not SACKed is lost; after a second
	// timeout of the same data the SACK information goes too (the peer
	// may have discarded what it SACKed, RFC 2018 §8).
	c.timeoutScoreboard(c.tmr.retries >= 2)
	c.rtt.timing = false // Karn's rule
	c.tmr.rtoAt = now.Add(c.rtt.rto)
	if c.snd.wnd == 0 {
		// Nothing fits in a zero window: probe it like the persist
		// timer does, so that the peer's answer brings its window.
		c.emitWindowProbe(now)
	}
	c.transmit(now)
}

// detectLossesOnTimer runs RACK when its reordering timer fires and sends
// what it finds lost (RFC 8985 §6.3).
func (c *Conn) detectLossesOnTimer(now time.Time) {
	if !c.snd.synAcked || c.cc == nil {
		return
	}
	c.rackDetect(now)
	c.maybeEnterRecovery(now)
}

// cwndAfterIdle applies the restart window of RFC 5681 §4.1: after sending
// nothing for more than an RTO, cwnd falls back to at most the initial
// window (RW = min(IW, cwnd)), so an idle connection does not burst a
// stale window.
func (c *Conn) cwndAfterIdle(now time.Time) {
	if c.snd.lastDataSent.IsZero() || now.Sub(c.snd.lastDataSent) <= c.rtt.rto {
		return
	}
	c.cc.Restart(initialWindow(uint32(c.snd.mss)), now)
}

// onPersist sends a zero-window probe: like Linux, an ACK with the
// sequence number SND.UNA-1, which the peer must answer with an ACK that
// carries its current window (RFC 9293 §3.8.6.1 requires probing; the
// receiver's §3.10.7.4 rule for an unacceptable segment produces the
// answer). It never sends bytes beyond the window.
func (c *Conn) onPersist(now time.Time) {
	c.tmr.persistAt = time.Time{}
	if c.tmr.persistProbes >= c.cfg.MaxRetries {
		c.fail(fmt.Errorf("%w: %d zero-window probes unanswered", ErrTimeout, c.tmr.persistProbes), CauseWindowProbesDone)
		return
	}
	c.tmr.persistProbes++
	if c.tmr.persistShift < 16 {
		c.tmr.persistShift++
	}
	c.emitWindowProbe(now)
	c.tmr.persistAt = now.Add(c.persistInterval())
}

// onKeepalive sends a keep-alive probe (RFC 9293 §3.8.4: SEG.SEQ =
// SND.NXT-1, no data) or gives up after KeepaliveProbes unanswered ones.
func (c *Conn) onKeepalive(now time.Time) {
	c.tmr.keepaliveAt = time.Time{}
	if c.tmr.keepaliveProbes >= c.cfg.KeepaliveProbes {
		c.fail(fmt.Errorf("%w: %d keep-alive probes unanswered", ErrTimeout, c.tmr.keepaliveProbes), CauseKeepaliveDone)
		return
	}
	c.tmr.keepaliveProbes++
	c.emitProbe(now)
	c.tmr.keepaliveAt = now.Add(c.cfg.KeepaliveInterval)
}

// emitWindowProbe probes a zero window with emitProbe, and counts and
// reports it.
func (c *Conn) emitWindowProbe(now time.Time) {
	c.emitProbe(now)
	c.stats.WindowProbes++
	c.events = append(c.events, Event{Kind: Retransmit, Seq: c.snd.una.Sub(1), Cause: CauseZeroWindowProbe})
}

// emitProbe sends <SEQ=SND.UNA-1><ACK=RCV.NXT><CTL=ACK>.
func (c *Conn) emitProbe(now time.Time) {
	c.emit(c.snd.una.Sub(1), craft.FlagACK, nil, now)
}

// rttSample takes one measurement (RFC 6298 §2.2-2.4) and counts it.
func (c *Conn) rttSample(r time.Duration) {
	if !c.rtt.sample(r) {
		return
	}
	s := &c.stats
	if s.RTTSamples == 0 || r < s.RTTMin {
		s.RTTMin = r
	}
	if r > s.RTTMax {
		s.RTTMax = r
	}
	s.RTTSamples++
	s.rttSum += r
	c.events = append(c.events, Event{Kind: RTTSample, RTT: r})
}
