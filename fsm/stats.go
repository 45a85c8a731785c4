package fsm

import "time"

// Stats are the counters and estimates of one connection.
type Stats struct {
	SegsSent, SegsReceived, SegsDropped uint64
	// BytesSent counts payload bytes put on the wire, retransmissions
	// included; BytesRetransmitted only those sent again.
	BytesSent, BytesRetransmitted uint64
	// BytesAcked counts our data bytes the peer acknowledged;
	// BytesReceived the peer's bytes delivered in order.
	BytesAcked, BytesReceived uint64
	// Retransmits counts retransmitted segments, Timeouts RTO expiries.
	// Retransmits = TimeoutRetransmits + RecoveryRetransmits: those sent
	// because the retransmission timer ran out (RFC 6298 §5; the SYN's
	// too), and those loss recovery sent without a timeout (fast
	// retransmit, RFC 5681 §3.2; SACK recovery, RFC 6675; NewReno partial
	// ACKs, RFC 6582; tail loss probes, RFC 8985 §7). WindowProbes counts
	// zero-window probes (RFC 9293 §3.8.6.1), which are not among them.
	Retransmits, Timeouts                   uint64
	TimeoutRetransmits, RecoveryRetransmits uint64
	WindowProbes                            uint64
	ChallengeACKs                           uint64
	// DupACKs counts duplicate ACKs (RFC 5681 §2) received.
	DupACKs uint64
	// FastRecoveries counts loss episodes found by duplicate ACKs, SACK
	// or RACK and repaired by fast recovery (RFC 5681 §3.2, RFC 6675 §5,
	// RFC 8985), as opposed to Timeouts. LossProbes counts tail loss
	// probes (RFC 8985 §7). LostRetransmits counts retransmissions found
	// lost in their turn (RACK). DSACKs counts D-SACK blocks received
	// (RFC 2883); SpuriousRetransmits those that reported data we had
	// retransmitted (see everRetransmitted: an upper bound).
	FastRecoveries, LossProbes, LostRetransmits uint64
	DSACKs, SpuriousRetransmits                 uint64
	// Undos counts fast recoveries taken back because D-SACKs showed
	// every retransmission in them was spurious (RFC 2883 §5, RFC 4015).
	Undos uint64
	// SACKBlocksSent counts SACK blocks on our ACKs, DSACKsSent the
	// D-SACK blocks among them (RFC 2018 §4, RFC 2883 §4).
	SACKBlocksSent, DSACKsSent uint64

	// RTT samples (RFC 6298, Karn's rule): count, minimum, mean, maximum.
	RTTSamples             int
	RTTMin, RTTAvg, RTTMax time.Duration
	rttSum                 time.Duration
	// SRTT, RTTVAR and RTO as in RFC 6298 §2.
	SRTT, RTTVAR, RTO time.Duration

	// Current windows: congestion window and slow-start threshold (RFC
	// 5681), the peer's window, our advertised window, bytes outstanding
	// (SND.MAX - SND.UNA), and pipe (RFC 6675 §4: outstanding bytes not
	// SACKed nor deemed lost, plus retransmissions in flight).
	Cwnd, Ssthresh, SndWnd, RcvWnd, InFlight, Pipe uint32
	// SACKedBytes and LostBytes are the scoreboard's current totals.
	SACKedBytes, LostBytes uint32
	// Congestion is the congestion control algorithm ("cubic", "reno").
	Congestion string
	// InRecovery is true during fast recovery or recovery after an RTO.
	InRecovery bool
	// SndMSS is the payload size of a full segment we send.
	SndMSS int
}

// Stats returns a snapshot of the counters and estimates.
func (c *Conn) Stats() Stats {
	s := c.stats
	if s.RTTSamples > 0 {
		s.RTTAvg = s.rttSum / time.Duration(s.RTTSamples)
	}
	s.SRTT, s.RTTVAR, s.RTO = c.rtt.srtt, c.rtt.rttvar, c.rtt.rto
	s.SndWnd = uint32(c.snd.wnd)
	s.Congestion = c.cfg.Congestion
	if c.cc != nil {
		s.Cwnd, s.Ssthresh = c.cc.Cwnd(), c.cc.Ssthresh()
		s.Pipe = uint32(c.pipe())
	}
	if c.state.synchronized() {
		s.RcvWnd = uint32(c.rcv.window())
		s.InFlight = uint32(c.snd.outstanding())
	}
	s.SACKedBytes, s.LostBytes = uint32(c.sb.sacked), uint32(c.sb.lost)
	s.InRecovery = c.rec.phase != recoveryNone
	s.SndMSS = c.snd.mss
	return s
}
