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

// Tick fires the timers that are due at now: TIME-WAIT expiry, the
// retransmission timer, the persist timer, the delayed ACK, a cork's
// limit and keep-alive.
func (c *Conn) Tick(now time.Time) {
	c.touch(now)
	if due(c.timeWaitAt, now) {
		// RFC 9293 §3.10.8: "If the time-wait timeout expires on a
		// connection, delete the TCB, enter the CLOSED state".
		c.stopTimers()
		c.setState(Closed, CauseTimeWaitDone)
		return
	}
	if due(c.rackAt, now) {
		// RFC 8985 §6.3: the reordering window of a suspect segment
		// has passed.
		c.rackAt = time.Time{}
		c.detectLossesOnTimer(now)
	}
	if due(c.tlpAt, now) && (c.rtoAt.IsZero() || !c.rtoAt.Before(c.tlpAt)) {
		// The loss probe (RFC 8985 §7.3); it restarts the RTO timer.
		c.lossProbe(now)
	}
	if due(c.rtoAt, now) {
		c.onRTO(now)
		if c.state == Closed {
			return
		}
	}
	if due(c.persistAt, now) {
		c.onPersist(now)
		if c.state == Closed {
			return
		}
	}
	if due(c.delackAt, now) {
		// RFC 9293 §3.8.6.3: the delayed ACK is due.
		c.delackAt = time.Time{}
		c.ackNow = true
	}
	if due(c.corkAt, now) {
		// The data a cork held waited long enough for more.
		c.uncork()
	}
	if due(c.keepaliveAt, now) {
		c.onKeepalive(now)
		if c.state == Closed {
			return
		}
	}
	c.transmit(now)
}

// NextDeadline returns the earliest time at which Tick has work to do, and
// false when no timer is running.
func (c *Conn) NextDeadline() (time.Time, bool) {
	d := earliest(c.timeWaitAt, c.rtoAt)
	d = earliest(d, c.persistAt)
	d = earliest(d, c.delackAt)
	d = earliest(d, c.keepaliveAt)
	d = earliest(d, c.rackAt)
	d = earliest(d, c.tlpAt)
	d = earliest(d, c.corkAt)
	return d, !d.IsZero()
}

// earliest returns the earlier of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if b.IsZero() || (!a.IsZero() && !b.Before(a)) {
		return a
	}
	return b
}

// pending reports whether data or a FIN waits to be sent for the first time.
func (c *Conn) pending() bool {
	de := c.dataEnd()
	if c.sndMax.LessThan(de) {
		return true
	}
	return c.finQueued && !c.finSent()
}

// armTimers starts or stops the retransmission, persist and keep-alive
// timers to match what is outstanding.
func (c *Conn) armTimers(now time.Time) {
	switch c.state {
	case Closed, Listen, TimeWait:
		c.rtoAt, c.persistAt, c.keepaliveAt = time.Time{}, time.Time{}, time.Time{}
		c.rackAt, c.tlpAt = time.Time{}, time.Time{}
		return
	}
	if c.sndUna != c.sndMax {
		// RFC 6298 §5.1: run the timer while data is outstanding.
		if c.rtoAt.IsZero() {
			c.rtoAt = now.Add(c.rto)
		}
		c.armLossProbe(now)
		c.persistAt = time.Time{}
		c.persistShift = 0
	} else {
		// RFC 6298 §5.2: all acknowledged, stop the timer.
		c.rtoAt, c.rackAt, c.tlpAt = time.Time{}, time.Time{}, time.Time{}
		if c.synAcked && c.sndWnd == 0 && c.pending() {
			// RFC 9293 §3.8.6.1: the peer's window is shut and we have
			// something to say: probe it.
			if c.persistAt.IsZero() {
				c.persistAt = now.Add(c.persistInterval())
			}
		} else {
			c.persistAt = time.Time{}
			c.persistShift = 0
		}
	}
	if c.cfg.Keepalive > 0 && c.synAcked && (c.state == Established || c.state == CloseWait) &&
		c.sndUna == c.sndMax {
		if c.keepaliveAt.IsZero() {
			c.keepaliveAt = c.lastRecv.Add(c.cfg.Keepalive)
			if !c.keepaliveAt.After(now) {
				c.keepaliveAt = now.Add(c.cfg.Keepalive)
			}
		}
	} else {
		c.keepaliveAt = time.Time{}
	}
}

// persistInterval backs off like the RTO, bounded by MinRTO and MaxRTO.
func (c *Conn) persistInterval() time.Duration {
	d := c.rto
	for i := 0; i < c.persistShift && d < c.cfg.MaxRTO; i++ {
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
	c.rtoAt = time.Time{}
	if c.sndUna == c.sndMax {
		return
	}
	if !c.synAcked {
		// Our SYN (or SYN-ACK) again, from ISS.
		if c.retries >= c.cfg.MaxSYNRetries {
			c.fail(fmt.Errorf("%w after %d SYN retransmissions", ErrTimeout, c.retries), CauseSYNRetriesDone)
			return
		}
		c.retries++
		c.stats.Timeouts++
		c.backoff()
		c.sndNxt = c.sndUna
		c.rttTiming = false // Karn's rule
		c.rtoAt = now.Add(c.rto)
		c.transmit(now)
		return
	}
	zeroWindow := c.sndWnd == 0 && now.Sub(c.lastRecv) <= c.rto
	if c.retries >= c.cfg.MaxRetries && !zeroWindow {
		c.fail(fmt.Errorf("%w after %d retransmissions", ErrTimeout, c.retries), CauseRetriesDone)
		return
	}
	if !zeroWindow {
		// A peer that shrank its window to zero and answered within
		// the last RTO is alive: what goes now is a window probe, not
		// a retry (Linux likewise keeps probing a zero window that is
		// answered).
		c.retries++
	}
	c.stats.Timeouts++
	c.backoff()
	// RFC 5681 §3.1: ssthresh falls on the first timeout only; a timeout
	// during a recovery keeps the ssthresh that recovery set (as Linux).
	first := c.recovery == recoveryNone
	c.cc.OnRTO(c.sndUna.Size(c.sndMax), first, now)
	// RFC 6675 §5.1: everything not SACKed is lost; after a second
	// timeout of the same data the SACK information goes too (the peer
	// may have discarded what it SACKed, RFC 2018 §8).
	c.timeoutScoreboard(c.retries >= 2)
	c.rttTiming = false // Karn's rule
	c.rtoAt = now.Add(c.rto)
	if c.sndWnd == 0 {
		// Nothing fits in a zero window: probe it like the persist
		// timer does, so that the peer's answer brings its window.
		c.emitWindowProbe(now)
	}
	c.transmit(now)
}

// backoff doubles the RTO (RFC 6298 §5.5), up to MaxRTO.
func (c *Conn) backoff() {
	c.rto *= 2
	if c.rto > c.cfg.MaxRTO {
		c.rto = c.cfg.MaxRTO
	}
}

// detectLossesOnTimer runs RACK when its reordering timer fires and sends
// what it finds lost (RFC 8985 §6.3).
func (c *Conn) detectLossesOnTimer(now time.Time) {
	if !c.synAcked || c.cc == nil {
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
	if c.lastDataSent.IsZero() || now.Sub(c.lastDataSent) <= c.rto {
		return
	}
	c.cc.Restart(initialWindow(uint32(c.sndMSS)), now)
}

// onPersist sends a zero-window probe: like Linux, an ACK with the
// sequence number SND.UNA-1, which the peer must answer with an ACK that
// carries its current window (RFC 9293 §3.8.6.1 requires probing; the
// receiver's §3.10.7.4 rule for an unacceptable segment produces the
// answer). It never sends bytes beyond the window.
func (c *Conn) onPersist(now time.Time) {
	c.persistAt = time.Time{}
	if c.persistProbes >= c.cfg.MaxRetries {
		c.fail(fmt.Errorf("%w: %d zero-window probes unanswered", ErrTimeout, c.persistProbes), CauseWindowProbesDone)
		return
	}
	c.persistProbes++
	if c.persistShift < 16 {
		c.persistShift++
	}
	c.emitWindowProbe(now)
	c.persistAt = now.Add(c.persistInterval())
}

// onKeepalive sends a keep-alive probe (RFC 9293 §3.8.4: SEG.SEQ =
// SND.NXT-1, no data) or gives up after KeepaliveProbes unanswered ones.
func (c *Conn) onKeepalive(now time.Time) {
	c.keepaliveAt = time.Time{}
	if c.keepaliveProbes >= c.cfg.KeepaliveProbes {
		c.fail(fmt.Errorf("%w: %d keep-alive probes unanswered", ErrTimeout, c.keepaliveProbes), CauseKeepaliveDone)
		return
	}
	c.keepaliveProbes++
	c.emitProbe(now)
	c.keepaliveAt = now.Add(c.cfg.KeepaliveInterval)
}

// emitWindowProbe probes a zero window with emitProbe, and counts and
// reports it.
func (c *Conn) emitWindowProbe(now time.Time) {
	c.emitProbe(now)
	c.stats.WindowProbes++
	c.events = append(c.events, Event{Kind: Retransmit, Seq: c.sndUna.Add(^uint32(0)), Cause: CauseZeroWindowProbe})
}

// emitProbe sends <SEQ=SND.UNA-1><ACK=RCV.NXT><CTL=ACK>.
func (c *Conn) emitProbe(now time.Time) {
	c.emit(c.sndUna.Add(^uint32(0)), craft.FlagACK, nil, now)
}

// rttSample folds one measurement into SRTT/RTTVAR/RTO (RFC 6298 §2.2-2.4).
func (c *Conn) rttSample(r time.Duration) {
	if r < 0 {
		return
	}
	if !c.hasRTT {
		c.srtt = r
		c.rttvar = r / 2
		c.hasRTT = true
	} else {
		delta := c.srtt - r
		if delta < 0 {
			delta = -delta
		}
		c.rttvar = (3*c.rttvar + delta) / 4
		c.srtt = (7*c.srtt + r) / 8
	}
	c.rto = c.computeRTO()
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

// computeRTO is RTO = SRTT + max(G, 4*RTTVAR), within [MinRTO, MaxRTO]
// (RFC 6298 §2.3, §2.4-2.5).
func (c *Conn) computeRTO() time.Duration {
	if !c.hasRTT {
		return c.cfg.InitialRTO
	}
	v := 4 * c.rttvar
	if v < clockGranularity {
		v = clockGranularity
	}
	r := c.srtt + v
	if r < c.cfg.MinRTO {
		r = c.cfg.MinRTO
	}
	if r > c.cfg.MaxRTO {
		r = c.cfg.MaxRTO
	}
	return r
}
