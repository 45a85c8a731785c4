package fsm

import "time"

// Congestion control (RFC 5681) lives here. For now it is the simplest
// sender that is safe on a real network: an initial window of ten segments
// (RFC 6928), slow start, congestion avoidance, and the loss window after a
// retransmission timeout, so that recovery after an RTO does not blast a
// whole receive window at once. Fast retransmit / fast recovery (RFC 5681
// §3.2, RFC 6582) and SACK-based loss recovery (RFC 6675) belong here too:
// the duplicate-ACK count they start from is already kept (isDupACK in
// input.go, Stats.DupACKs), and the sender reads only cwnd.

// initialWindow is IW of RFC 6928 (ten segments, as Linux).
func (c *Conn) initialWindow() uint32 { return 10 * uint32(c.sndMSS) }

// cwndOnTimeout applies RFC 5681 §3.1 equation (4) on the first timeout of
// a segment (ssthresh = max(FlightSize/2, 2*SMSS)) and sets the loss window
// of one segment on every timeout.
func (c *Conn) cwndOnTimeout(first bool) {
	if first {
		flight := c.sndUna.Size(c.sndMax)
		c.ssthresh = flight / 2
		if floor := 2 * uint32(c.sndMSS); c.ssthresh < floor {
			c.ssthresh = floor
		}
	}
	c.cwnd = uint32(c.sndMSS)
	c.caAcked = 0
}

// growCwnd opens the congestion window for acked new bytes (RFC 5681 §3.1):
// slow start below ssthresh, one segment per window above it.
func (c *Conn) growCwnd(acked uint32) {
	mss := uint32(c.sndMSS)
	if c.cwnd < c.ssthresh {
		if acked > mss {
			acked = mss
		}
		c.cwnd += acked
	} else {
		c.caAcked += acked
		if c.caAcked >= c.cwnd {
			c.caAcked -= c.cwnd
			c.cwnd += mss
		}
	}
	if c.cwnd > maxRecvBuffer {
		c.cwnd = maxRecvBuffer
	}
}

// cwndAfterIdle applies the restart window of RFC 5681 §4.1: after sending
// nothing for more than an RTO, cwnd falls back to at most the initial
// window, so an idle connection does not burst a stale window.
func (c *Conn) cwndAfterIdle(now time.Time) {
	if c.lastDataSent.IsZero() || now.Sub(c.lastDataSent) <= c.rto {
		return
	}
	if iw := c.initialWindow(); c.cwnd > iw {
		c.cwnd = iw
	}
}
