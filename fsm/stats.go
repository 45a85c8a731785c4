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
	Retransmits, Timeouts uint64
	ChallengeACKs         uint64
	// DupACKs counts duplicate ACKs (RFC 5681 §2) received.
	DupACKs uint64

	// RTT samples (RFC 6298, Karn's rule): count, minimum, mean, maximum.
	RTTSamples             int
	RTTMin, RTTAvg, RTTMax time.Duration
	rttSum                 time.Duration
	// SRTT, RTTVAR and RTO as in RFC 6298 §2.
	SRTT, RTTVAR, RTO time.Duration

	// Current windows: congestion window and slow-start threshold (RFC
	// 5681), the peer's window, our advertised window, bytes in flight.
	Cwnd, Ssthresh, SndWnd, RcvWnd, InFlight uint32
	// SndMSS is the payload size of a full segment we send.
	SndMSS int
}

// Stats returns a snapshot of the counters and estimates.
func (c *Conn) Stats() Stats {
	s := c.stats
	if s.RTTSamples > 0 {
		s.RTTAvg = s.rttSum / time.Duration(s.RTTSamples)
	}
	s.SRTT, s.RTTVAR, s.RTO = c.srtt, c.rttvar, c.rto
	s.Cwnd, s.Ssthresh, s.SndWnd = c.cwnd, c.ssthresh, c.sndWnd
	if c.state.synchronized() {
		s.RcvWnd = c.rcvNxt.Size(c.rcvAdv)
		s.InFlight = c.sndUna.Size(c.sndMax)
	}
	s.SndMSS = c.sndMSS
	return s
}
