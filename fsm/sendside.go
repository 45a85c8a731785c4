package fsm

import (
	"fmt"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// sendSide is the sending half of a connection: the send sequence
// variables of RFC 9293 §3.3.1, the peer's window, and the bytes the
// application queued, from the oldest unacknowledged one on.
//
// Its invariants (check):
//   - ISS <= SND.UNA <= SND.NXT <= SND.MAX: SND.MAX is the highest
//     sequence number sent plus one, which RFC 9293 calls SND.NXT when it
//     validates acknowledgments; SND.NXT is where the next segment
//     starts, back at SND.UNA after a timeout (go-back-N);
//   - SND.MAX <= the end of the queued data, plus one for our FIN once
//     Close queued it (and plus one for the SYN, before any data);
//   - the buffer starts at bufSeq, ISS+1 until the SYN is acknowledged,
//     then SND.UNA (or SND.UNA-1 once the FIN is acknowledged too).
type sendSide struct {
	iss      craft.Seq
	una      craft.Seq
	nxt      craft.Seq
	max      craft.Seq
	wnd      craft.Size // the peer's window in bytes (scaled)
	maxWnd   craft.Size // the largest window the peer offered (RFC 5961 §5.2)
	wl1, wl2 craft.Seq  // SND.WL1, SND.WL2: the segment that last set wnd
	shift    uint8      // the peer's window scale (RFC 7323 §2.3)
	mss      int        // payload bytes per segment we send
	peerMSS  uint16
	// pathMSS bounds the MSS by the path MTU an ICMP error reported
	// (PathMTUExceeded); 0 means no report yet.
	pathMSS uint16

	buf       sendBuffer
	bufSeq    craft.Seq // the sequence number of buf's offset 0
	finQueued bool      // Close called: FIN follows the queued data
	// corked: the driver said more data follows at once
	// (CommitSendMore): a last segment short of a full MSS waits for
	// it, until timers.corkAt.
	corked   bool
	synAcked bool // our SYN has been acknowledged

	lastDataSent  time.Time // for the restart window after idle (RFC 5681 §4.1)
	cwndLimited   bool      // sending stopped at cwnd since cwndLimitedTo was sent
	cwndLimitedTo craft.Seq // SND.MAX when sending last stopped at cwnd
}

// dataEnd is the sequence number just past the last queued byte; it is
// also where our FIN goes once Close is called.
func (s *sendSide) dataEnd() craft.Seq { return s.bufSeq.Add(craft.Size(s.buf.n)) }

// finSent reports whether our FIN has been sent (maybe not acknowledged).
func (s *sendSide) finSent() bool { return s.finQueued && s.max.GreaterThan(s.dataEnd()) }

// finAcked reports whether the peer acknowledged our FIN.
func (s *sendSide) finAcked() bool { return s.finQueued && s.una.GreaterThan(s.dataEnd()) }

// pending reports whether data or a FIN waits to be sent for the first
// time.
func (s *sendSide) pending() bool {
	return s.max.LessThan(s.dataEnd()) || s.finQueued && !s.finSent()
}

// outstanding is the sequence space sent and not yet acknowledged
// (SND.MAX - SND.UNA): the FlightSize of RFC 5681 before losses.
func (s *sendSide) outstanding() craft.Size { return s.una.Size(s.max) }

// acceptableACK reports whether ack acknowledges something new that was
// sent: SND.UNA < SEG.ACK =< SND.NXT (RFC 9293 §3.10.7.4 fifth, with
// SND.MAX for SND.NXT).
func (s *sendSide) acceptableACK(ack craft.Seq) bool {
	return s.una.LessThan(ack) && ack.LessThanEq(s.max)
}

// edge is the right edge of the peer's window, SND.UNA + SND.WND.
func (s *sendSide) edge() craft.Seq { return s.una.Add(s.wnd) }

// check reports the first invariant that does not hold.
func (s *sendSide) check() error {
	switch {
	case s.una.LessThan(s.iss):
		return fmt.Errorf("SND.UNA %d before ISS %d", s.una, s.iss)
	case s.nxt.LessThan(s.una):
		return fmt.Errorf("SND.NXT %d before SND.UNA %d", s.nxt, s.una)
	case s.max.LessThan(s.nxt):
		return fmt.Errorf("SND.MAX %d before SND.NXT %d", s.max, s.nxt)
	}
	end := s.dataEnd()
	if s.finQueued {
		end = end.Add(1)
	}
	if s.max.GreaterThan(end) {
		return fmt.Errorf("SND.MAX %d beyond what was queued (%d)", s.max, end)
	}
	switch {
	case !s.synAcked && (s.bufSeq != s.iss.Add(1) || s.una != s.iss):
		return fmt.Errorf("SYN unacknowledged, yet SND.UNA %d, buffer at %d (ISS %d)", s.una, s.bufSeq, s.iss)
	case s.synAcked && s.bufSeq != s.una && !(s.finAcked() && s.bufSeq.Add(1) == s.una):
		return fmt.Errorf("buffer at %d, SND.UNA %d", s.bufSeq, s.una)
	case s.buf.n < 0 || s.buf.lent < 0 || s.buf.n+s.buf.lent > s.buf.max:
		return fmt.Errorf("buffer holds %d and lends %d of %d", s.buf.n, s.buf.lent, s.buf.max)
	case s.maxWnd < s.wnd:
		return fmt.Errorf("largest window %d below the window %d", s.maxWnd, s.wnd)
	}
	return nil
}
