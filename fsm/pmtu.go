package fsm

import (
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// PathMTUExceeded takes an ICMP "fragmentation needed" (RFC 1191) or
// ICMPv6 "packet too big" (RFC 8201) that quotes one of this connection's
// segments, whose sequence number is seq: the path carries no packet
// larger than the MTU it names, so no segment of more than mss bytes (the
// MTU less the IP and TCP headers, as the driver computes it for the
// family) gets through. The driver finds the connection from the quoted
// addresses and ports; the machine judges the rest.
//
// An ICMP error is easy to forge, and one that shrinks the MSS at will
// would cripple the connection (RFC 5927 §5.2), so it is believed only if
// it quotes a sequence number in flight: SND.UNA <= seq < SND.NXT (RFC
// 5927 §4.1, as Linux's tcp_v4_err and tcp_v6_err check), and only if it
// lowers the MSS. Then the send MSS falls to mss and every segment in
// flight that is larger, which the router dropped, is cut to the new size
// and sent again at once without waiting for a timeout (RFC 1191 §6.4,
// RFC 8201 §5.4; Linux's tcp_simple_retransmit), and without the
// congestion response of a loss: the network did not drop them for
// congestion. It reports whether the error was taken; either way a
// PathMTU event says what became of it.
func (c *Conn) PathMTUExceeded(mss int, seq craft.Seq, now time.Time) bool {
	if !c.state.synchronized() || !c.snd.synAcked {
		c.events = append(c.events, Event{Kind: PathMTU, Cause: CauseICMPOutOfWindow})
		return false
	}
	if seq.LessThan(c.snd.una) || !seq.LessThan(c.snd.max) {
		c.events = append(c.events, Event{Kind: PathMTU, Cause: CauseICMPOutOfWindow, Seq: seq})
		return false
	}
	mss = max(mss, minPeerMSS)
	cur := min(int(c.snd.peerMSS), int(c.cfg.MSS))
	if c.snd.pathMSS != 0 {
		cur = min(cur, int(c.snd.pathMSS))
	}
	if mss >= cur {
		c.events = append(c.events, Event{Kind: PathMTU, Cause: CauseICMPNotSmaller, Bytes: mss})
		return false
	}
	c.snd.pathMSS = uint16(mss)
	c.snd.mss = c.effectiveMSS()
	c.stats.SndMSS = c.snd.mss
	c.events = append(c.events, Event{Kind: PathMTU, Cause: CausePacketTooBig, Bytes: mss, Seq: seq})

	// Cut what is in flight and larger than the new MSS into segments
	// of the new size, and mark them lost: sendData sends them again
	// first (RFC 6675 NextSeg rule 1). They are out of the pipe then,
	// so the congestion window, unchanged, has room for them.
	q := &c.sb.q
	size := craft.Size(c.snd.mss)
	marked := false
	for i := 0; i < q.len(); i++ {
		s := q.at(i)
		if s.is(segSACKed) || s.size() <= size {
			continue
		}
		if s.is(segLost) || s.is(segRtx) {
			// Take it out of the totals whole; its pieces are
			// counted back as each is marked.
			c.sb.forget(s, s.size())
			s.flags &^= segLost | segRtx
		}
		for s.size() > size {
			s = q.split(i, s.start.Add(size))
			c.markLost(s)
			i++
			s = q.at(i)
		}
		c.markLost(s)
		marked = true
	}
	if marked {
		c.rtt.timing = false // Karn's rule: these are retransmissions
		c.rec.forceRtx = true
		c.transmit(now)
	}
	return true
}
