package fsm

import (
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// synAgainAfter is how soon a SYN goes again after an unacceptable ACK in
// SYN-SENT: Linux's TCP_TIMEOUT_MIN (two jiffies, 2 ms at HZ=1000).
const synAgainAfter = 2 * time.Millisecond

// segKind classifies an arriving segment by its control bits, in the order
// RFC 9293 §3.10.7 examines them.
type segKind int

const (
	kindRST    segKind = iota // RST set (whatever else is)
	kindSYN                   // SYN without ACK
	kindSYNACK                // SYN and ACK
	kindACK                   // ACK without SYN or RST
	kindBare                  // none of SYN, RST, ACK
)

func kindOf(seg *craft.TCP) segKind {
	switch f := seg.Flags; {
	case f&craft.FlagRST != 0:
		return kindRST
	case f&craft.FlagSYN != 0 && f&craft.FlagACK != 0:
		return kindSYNACK
	case f&craft.FlagSYN != 0:
		return kindSYN
	case f&craft.FlagACK != 0:
		return kindACK
	}
	return kindBare
}

// segLen is SEG.LEN: payload plus one for SYN and one for FIN (RFC 9293
// §3.4).
func segLen(seg *craft.TCP) craft.Size {
	n := craft.Size(len(seg.Payload))
	if seg.Flags&craft.FlagSYN != 0 {
		n++
	}
	if seg.Flags&craft.FlagFIN != 0 {
		n++
	}
	return n
}

// Input processes one arriving segment (RFC 9293 §3.10.7 SEGMENT ARRIVES).
// The driver has already matched it to this connection's 4-tuple and
// checked the checksum; seg is only read, never kept or modified, so the
// caller may reuse it (and its payload) after the call.
func (c *Conn) Input(seg *craft.TCP, now time.Time) {
	c.touch(now)
	c.stats.SegsReceived++
	if seg.DstPort != c.cfg.LocalPort || seg.SrcPort != c.cfg.RemotePort {
		c.drop(CausePortMismatch)
		return
	}
	if c.state != Closed && c.state != Listen {
		c.tmr.lastRecv = now
		c.tmr.keepaliveProbes = 0
		c.tmr.keepaliveAt = time.Time{}
	}
	k := kindOf(seg)
	ackOK := seg.Flags&craft.FlagACK != 0 && c.snd.acceptableACK(seg.Ack)

	switch {
	// §3.10.7.1 CLOSED: an RST is discarded; anything else gets the RST of
	// ResetFor (<SEQ=SEG.ACK><CTL=RST>, or <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
	// <CTL=RST,ACK> when the ACK bit is off).
	case c.state == Closed:
		c.drop(CauseNoConnection)
		if rst, ok := ResetFor(seg); ok {
			c.out = append(c.out, rst)
			c.stats.SegsSent++
		}
		return

	// §3.10.7.2 LISTEN, with Linux's departures (judgeListen, the one
	// rule a Listener applies too): an RST, a segment with neither SYN
	// nor ACK, and a SYN with FIN are dropped; any ACK is answered with
	// <SEQ=SEG.ACK><CTL=RST>.
	case c.state == Listen:
		switch v, cause := judgeListen(seg); v {
		case ListenReply:
			c.drop(cause)
			c.sendRST(seg.Ack, 0, false, now)
		case ListenOpen:
			// Third: a SYN. Take the peer's ISN and options, send
			// <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, enter
			// SYN-RECEIVED. Data on the SYN is not acknowledged (the
			// peer sends it again), as Linux does without TCP Fast
			// Open.
			c.rcv.irs = seg.Seq
			c.rcv.nxt = seg.Seq.Add(1)
			c.negotiate(seg, now)
			c.snd.wnd = craft.Size(seg.Window) // RFC 7323 §2.2: never scaled on a SYN
			c.snd.maxWnd = c.snd.wnd
			c.snd.wl1 = seg.Seq
			c.snd.nxt = c.snd.iss
			c.setState(SynReceived, cause)
		default:
			c.drop(cause)
		}

	// §3.10.7.3 SYN-SENT, first: an ACK outside (ISS, SND.NXT] gets
	// <SEQ=SEG.ACK><CTL=RST> unless it is itself an RST; drop. Then, as
	// Linux does (tcp_rcv_synsent_state_process), the SYN goes again at
	// once if it has not been retransmitted yet: the peer answered from
	// an old connection, which the RST (ours, or the one it sent) clears,
	// and waiting a whole RTO for the new one helps nobody.
	case c.state == SynSent && seg.Flags&craft.FlagACK != 0 && !ackOK:
		c.drop(CauseBadACKInSynSent)
		if k != kindRST {
			c.sendRST(seg.Ack, 0, false, now)
		}
		if c.tmr.retries == 0 {
			c.tmr.rtoAt = now.Add(synAgainAfter)
		}

	// §3.10.7.3 SYN-SENT, second: an RST with an acceptable ACK refuses the
	// connection (RFC 5961 §3.2 agrees); without an ACK it is dropped.
	case c.state == SynSent && k == kindRST:
		if !ackOK {
			c.drop(CauseRSTNoACKInSynSent)
			break
		}
		c.fail(ErrRefused, CauseRcvdRST)

	// §3.10.7.3 SYN-SENT, fourth: SYN-ACK acknowledging our SYN. Record
	// IRS, SND.UNA, the window (unscaled) and the options; enter
	// ESTABLISHED and acknowledge, with data if any is queued.
	case c.state == SynSent && k == kindSYNACK:
		c.rcv.irs = seg.Seq
		c.rcv.nxt = seg.Seq.Add(1)
		c.rcv.adv = c.rcv.nxt.Add(c.rcv.synWnd)
		c.negotiate(seg, now)
		c.snd.wnd = craft.Size(seg.Window)
		c.snd.maxWnd = c.snd.wnd
		c.snd.wl1, c.snd.wl2 = seg.Seq, seg.Ack
		c.ackAdvance(seg.Ack, now)
		c.setState(Established, CauseRcvdSYNACK)
		c.rcv.ackNow = true
		c.receive(seg, now)

	// §3.10.7.3 SYN-SENT, fourth, "otherwise": a SYN without ACK is a
	// simultaneous open. Enter SYN-RECEIVED and send
	// <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
	case c.state == SynSent && k == kindSYN:
		c.rcv.irs = seg.Seq
		c.rcv.nxt = seg.Seq.Add(1)
		c.negotiate(seg, now)
		c.snd.wnd = craft.Size(seg.Window)
		c.snd.maxWnd = c.snd.wnd
		c.snd.wl1 = seg.Seq
		c.snd.nxt = c.snd.iss // the SYN goes again, now as SYN-ACK
		c.rtt.timing = false
		c.setState(SynReceived, CauseRcvdSYNSimultaneous)

	// §3.10.7.3 SYN-SENT, fifth: neither SYN nor RST: drop.
	case c.state == SynSent:
		c.drop(CauseNoSYNInSynSent)

	// §3.10.7.4: the synchronized states (and SYN-RECEIVED).
	default:
		c.inputSynchronized(seg, k, now)
	}
	c.transmit(now)
}

// inputSynchronized follows the checks of RFC 9293 §3.10.7.4 in order, with
// RFC 7323 (PAWS) and RFC 5961 (challenge ACKs) folded in. The third check
// (security/compartment) is skipped, as Linux does: a connection has none.
//
// Where Linux departs from the order of the checks, so does tcpcraft, so
// that a peer gets the same answers from both:
//
//   - a segment with none of SYN, RST and ACK is dropped before any
//     check (tcp_rcv_state_process, tcp_rcv_established), where RFC 9293
//     would answer one outside the window with an ACK; except in a
//     SYN-RECEIVED entered from LISTEN, where Linux's request socket
//     (tcp_check_req) checks the sequence number first, like the RFC;
//   - in a SYN-RECEIVED entered from LISTEN, an ACK that does not
//     acknowledge our SYN is answered <SEQ=SEG.ACK><CTL=RST> before the
//     sequence number is checked (tcp_check_req; RFC 9293 §3.10.7.4 has
//     the ACK check fifth), and a SYN in the window is answered with
//     ResetFor's RST (tcp_check_req's embryonic reset; RFC 9293 fourth
//     returns to LISTEN silently). The connection returns to LISTEN.
func (c *Conn) inputSynchronized(seg *craft.TCP, k segKind, now time.Time) {
	halfOpen := c.state == SynReceived && c.passive
	if k == kindBare && !halfOpen {
		c.drop(CauseNoControl)
		return
	}
	if halfOpen && seg.Flags&craft.FlagACK != 0 && !c.snd.acceptableACK(seg.Ack) {
		// §3.10.7.4 fifth, SYN-RECEIVED, checked first (see above): an
		// unacceptable ACK gets <SEQ=SEG.ACK><CTL=RST>, unless it is
		// itself an RST.
		c.drop(CauseBadACKInSynRcvd)
		if k != kindRST {
			c.sendRST(seg.Ack, 0, false, now)
		}
		return
	}
	ts, hasTS := findTimestamps(seg)
	slen := segLen(seg)

	// Simultaneous open: the peer's SYN-ACK acknowledges our SYN and
	// repeats its SYN, which we hold already. Accept it as the ACK of our
	// SYN (what Linux does; a strict reading would drop it and rely on
	// the bare ACK exchange). A passive open has had no SYN of ours
	// crossing the peer's: there, as in Linux's tcp_check_req, such a
	// segment lies before the window and gets an ACK.
	if c.state == SynReceived && !c.passive && k == kindSYNACK && seg.Seq.Add(1) == c.rcv.nxt && seg.Ack == c.snd.max && c.snd.max == c.snd.iss.Add(1) {
		c.ackAdvance(seg.Ack, now)
		c.snd.wnd = craft.Size(seg.Window) // a SYN's window is never scaled
		c.snd.maxWnd = max(c.snd.maxWnd, c.snd.wnd)
		c.snd.wl1, c.snd.wl2 = seg.Seq, seg.Ack
		c.setState(Established, CauseRcvdSYNACKSimultaneous)
		c.rcv.ackNow = true
		return
	}

	// RFC 7323 §3.2: once timestamps are agreed, a non-RST segment without
	// them SHOULD be dropped silently.
	if c.opt.ts && !hasTS && k != kindRST {
		c.drop(CauseTimestampMissing)
		return
	}

	// RFC 7323 §5.3 R1, PAWS: a segment whose TSval is older than
	// TS.Recent is a wrapped-around duplicate: ACK and drop it. After 24
	// days of idleness TS.Recent is no longer valid (§5.5).
	if c.opt.ts && hasTS && k != kindRST && c.opt.tsRecentValid && tsBefore(ts.TSVal, c.opt.tsRecent) {
		if now.Sub(c.opt.tsRecentAt) > tsRecentMaxIdle {
			c.opt.tsRecentValid = false
		} else {
			c.drop(CausePAWS)
			c.rcv.ackNow = true
			return
		}
	}

	// First: is the segment acceptable (§3.10.7.4, the four cases)?
	wnd := c.rcv.window()
	acceptable := acceptable(seg.Seq, slen, c.rcv.nxt, wnd)
	ctlOnly := false
	if !acceptable && wnd == 0 && seg.Seq == c.rcv.nxt {
		// "If the RCV.WND is zero, no segments will be acceptable, but
		// special allowance should be made to accept valid ACKs, URGs,
		// and RSTs": process the control part, drop the text.
		acceptable, ctlOnly = true, true
	}
	if !acceptable {
		switch {
		case k == kindRST:
			// §3.10.7.4 first: an unacceptable RST is dropped silently.
			c.drop(CauseRSTOutOfWindow)
		case c.state == SynReceived && k == kindSYN && seg.Seq == c.rcv.irs:
			// The peer did not get our SYN-ACK and sent its SYN again:
			// answer with the SYN-ACK (as Linux does).
			c.drop(CauseSYNAgain)
			c.snd.nxt = c.snd.iss
		default:
			// §3.10.7.4 first: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, drop.
			c.drop(CauseNotAcceptable)
			c.rcv.ackNow = true
			if n := craft.Size(len(seg.Payload)); n > 0 && seg.Flags&craft.FlagSYN == 0 && seg.Seq.Add(n).LessThanEq(c.rcv.nxt) {
				// Data we had already: report the duplicate (RFC 2883
				// §4, D-SACK), so a sender can tell a spurious
				// retransmission from a loss.
				c.noteDSACK(seg.Seq, seg.Seq.Add(n))
			}
			if c.state == TimeWait && seg.Flags&craft.FlagFIN != 0 {
				// §3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN
				// restarts the 2 MSL timeout (or the short hold of
				// Config.TimeWaitProbe: our ACK may be lost again).
				c.armTimeWait(now)
			}
		}
		return
	}

	// RFC 7323 §4.3 (R3): record TS.Recent from an acceptable segment that
	// covers Last.ACK.sent.
	if hasTS && k != kindRST && !tsBefore(ts.TSVal, c.opt.tsRecent) && seg.Seq.LessThanEq(c.rcv.lastAckSent) {
		c.opt.tsRecent, c.opt.tsRecentValid, c.opt.tsRecentAt = ts.TSVal, true, now
	}

	// Second: the RST bit (RFC 5961 §3.2: only an RST at exactly RCV.NXT
	// resets; one elsewhere in the window draws a challenge ACK).
	if k == kindRST {
		if seg.Seq != c.rcv.nxt {
			c.challengeACK(CauseRSTNotAtRcvNxt, now)
			return
		}
		switch c.state {
		case SynReceived:
			// §3.10.7.4 second, SYN-RECEIVED: from a passive OPEN, back
			// to LISTEN; from an active one (simultaneous open), refused.
			if c.passive {
				c.backToListen(CauseRcvdRST)
				return
			}
			c.fail(ErrRefused, CauseRcvdRST)
		case Established, FinWait1, FinWait2, CloseWait:
			// §3.10.7.4 second: outstanding calls get "reset", CLOSED.
			c.fail(ErrReset, CauseRcvdRST)
		case TimeWait:
			// §3.10.7.4 second, TIME-WAIT: CLOSED (RFC 1337 would
			// ignore the RST; Linux by default, tcp_rfc1337=0, does
			// as §3.10.7.4 says).
			cause := CauseRcvdRST
			if c.tmr.twProbe >= twProbeSent {
				// The answer to our probe: the peer has no connection
				// left, so no FIN of its can come again.
				cause = CauseTimeWaitPeerGone
			}
			c.stopTimers()
			c.setState(Closed, cause)
		default:
			// §3.10.7.4 second, CLOSING, LAST-ACK: CLOSED.
			c.stopTimers()
			c.setState(Closed, CauseRcvdRST)
		}
		return
	}

	// Third: the security/compartment check (the IP security option, RFC
	// 1108) is skipped: tcpcraft, like Linux, keeps no security or
	// compartment for a connection, so nothing can mismatch.

	// Fourth: the SYN bit (RFC 5961 §4.2 / RFC 9293 §3.10.7.4 fourth).
	if seg.Flags&craft.FlagSYN != 0 {
		if halfOpen {
			// §3.10.7.4 fourth, SYN-RECEIVED from a passive OPEN: return
			// to LISTEN, after the RST Linux sends (see above).
			c.drop(CauseSYNInSynReceived)
			if rst, ok := ResetFor(seg); ok {
				c.out = append(c.out, rst)
				c.stats.SegsSent++
			}
			c.backToListen(CauseSYNInSynReceived)
			return
		}
		c.challengeACK(CauseSYNInWindow, now)
		return
	}

	// Fifth: the ACK field. Without it the segment is dropped.
	if seg.Flags&craft.FlagACK == 0 {
		c.drop(CauseNoACK)
		return
	}
	if c.state == SynReceived {
		// §3.10.7.4 fifth, SYN-RECEIVED: an ACK of our SYN establishes the
		// connection; any other ACK gets <SEQ=SEG.ACK><CTL=RST> (checked
		// first in a passive open, see above).
		if !c.snd.acceptableACK(seg.Ack) {
			c.drop(CauseBadACKInSynRcvd)
			c.sendRST(seg.Ack, 0, false, now)
			return
		}
		c.snd.wnd = craft.Size(seg.Window) << c.snd.shift
		if c.snd.wnd > c.snd.maxWnd {
			c.snd.maxWnd = c.snd.wnd
		}
		c.snd.wl1, c.snd.wl2 = seg.Seq, seg.Ack
		c.setState(Established, CauseRcvdACKOfSYN)
		if c.snd.finQueued {
			// Close was called in SYN-RECEIVED: the FIN is queued.
			c.setState(FinWait1, CauseCloseEarlier)
		}
	}
	// RFC 5961 §5.2: acceptable ACKs lie in
	// [SND.UNA - MAX.SND.WND, SND.NXT]; others are answered with an ACK
	// and dropped (an ACK of unsent data per RFC 9293 §3.10.7.4 fifth).
	if seg.Ack.GreaterThan(c.snd.max) {
		c.drop(CauseACKUnsent)
		c.rcv.ackNow = true
		return
	}
	if seg.Ack.LessThan(c.snd.una.Sub(c.snd.maxWnd)) {
		c.challengeACK(CauseACKTooOld, now)
		return
	}
	c.processACK(seg, now)

	switch c.state {
	case FinWait1:
		// §3.10.7.4 fifth, FIN-WAIT-1: once our FIN is acknowledged,
		// enter FIN-WAIT-2.
		if c.snd.finAcked() {
			c.setState(FinWait2, CauseRcvdACKOfFIN)
		}
	case Closing:
		// §3.10.7.4 fifth, CLOSING: ACK of our FIN → TIME-WAIT.
		if c.snd.finAcked() {
			c.enterTimeWait(now, CauseRcvdACKOfFIN)
		}
	case LastAck:
		// §3.10.7.4 fifth, LAST-ACK: ACK of our FIN → CLOSED.
		if c.snd.finAcked() {
			c.stopTimers()
			c.setState(Closed, CauseRcvdACKOfFIN)
			return
		}
	}

	if c.state == TimeWait && c.tmr.twProbe == twProbeSent && len(seg.Payload) == 0 && seg.Flags&craft.FlagFIN == 0 {
		// The peer answered the TIME-WAIT probe with an ACK: it is still
		// in LAST-ACK, so our ACK of its FIN was lost. Send it again;
		// TIME-WAIT goes on in case that one is lost too.
		c.tmr.twProbe = twProbeAnswered
		c.rcv.ackNow = true
	}

	// Sixth: URG. RFC 6093 recommends against urgent data; the urgent
	// pointer is ignored and the bytes are delivered in line.

	// Seventh and eighth: the text and the FIN.
	if ctlOnly {
		if len(seg.Payload) > 0 || seg.Flags&craft.FlagFIN != 0 {
			c.rcv.ackNow = true // the window is zero: tell the peer so again
		}
		return
	}
	c.receive(seg, now)
}

// acceptable is the test of RFC 9293 §3.10.7.4 (first), Table 6:
//
//	len 0, wnd 0: SEG.SEQ = RCV.NXT
//	len 0, wnd>0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
//	len>0, wnd 0: not acceptable
//	len>0, wnd>0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND or
//	              RCV.NXT =< SEG.SEQ+SEG.LEN-1 < RCV.NXT+RCV.WND
func acceptable(seq craft.Seq, slen craft.Size, rcvNxt craft.Seq, wnd craft.Size) bool {
	switch {
	case slen == 0 && wnd == 0:
		return seq == rcvNxt
	case slen == 0:
		return seq.InWindow(rcvNxt, wnd)
	case wnd == 0:
		return false
	default:
		return seq.InWindow(rcvNxt, wnd) || seq.Add(slen-1).InWindow(rcvNxt, wnd)
	}
}

// backToListen returns a passively opened connection to LISTEN (RFC 9293
// §3.10.7.4, SYN-RECEIVED on RST or SYN), forgetting the peer.
func (c *Conn) backToListen(cause Cause) {
	c.stopTimers()
	c.snd.nxt, c.snd.max, c.snd.una = c.snd.iss, c.snd.iss, c.snd.iss
	c.rcv.irs, c.rcv.nxt, c.rcv.adv = 0, 0, 0
	c.opt.ws, c.opt.sack, c.opt.ts, c.opt.tsRecentValid = false, false, false, false
	c.snd.shift, c.rcv.shift = 0, 0
	c.tmr.retries = 0
	c.rtt.timing = false
	c.snd.finQueued = false
	c.rcv.ooo = c.rcv.ooo[:0]
	c.rcv.sackRecent, c.rcv.dsackSet = c.rcv.sackRecent[:0], false
	c.rcv.finSeen, c.rcv.closed = false, false
	c.setState(Listen, cause)
}

// enterTimeWait starts the 2 MSL timer (RFC 9293 §3.10.7.4), and with
// Config.TimeWaitProbe and timestamps (RFC 6191) queues the probe that
// can end it early.
func (c *Conn) enterTimeWait(now time.Time, cause Cause) {
	c.tmr.rtoAt, c.tmr.persistAt, c.tmr.keepaliveAt = time.Time{}, time.Time{}, time.Time{}
	if c.cfg.TimeWaitProbe && c.opt.ts {
		c.tmr.twProbe = twProbeDue
	}
	c.armTimeWait(now)
	c.setState(TimeWait, cause)
}

// armTimeWait (re)starts TIME-WAIT's timer: TimeWait, or, while the probe
// is in use, as long as the peer's next FIN retransmission may take
// (Config.TimeWaitProbe) when that is shorter.
func (c *Conn) armTimeWait(now time.Time) {
	c.tmr.timeWaitAt, c.tmr.twShort = now.Add(c.cfg.TimeWait), false
	if c.tmr.twProbe != twProbeNone {
		if hold := 2 * (c.cfg.MinRTO + c.rtt.srtt); hold < c.cfg.TimeWait {
			c.tmr.timeWaitAt, c.tmr.twShort = now.Add(hold), true
		}
	}
}

// challengeACK drops a suspicious segment and queues an ACK in reply
// (RFC 5961 §3.2, §4.2, §5.2), within the rate limit of §7: over the
// limit the segment is only dropped.
func (c *Conn) challengeACK(cause Cause, now time.Time) {
	if lim := c.cfg.ChallengeACKLimit; lim > 0 {
		if now.Sub(c.chal.window) >= time.Second {
			c.chal.window, c.chal.count = now, 0
		}
		if c.chal.count >= lim {
			c.drop(CauseChallengeLimited)
			return
		}
		c.chal.count++
	}
	c.stats.ChallengeACKs++
	c.events = append(c.events, Event{Kind: ChallengeACK, Cause: cause})
	c.drop(cause)
	c.rcv.ackNow = true
}

// processACK applies an acceptable ACK (RFC 9293 §3.10.7.4 fifth,
// ESTABLISHED): update the scoreboard from its SACK blocks, advance
// SND.UNA, run loss detection and recovery, and update the send window.
func (c *Conn) processACK(seg *craft.TCP, now time.Time) {
	prevUna := c.snd.una
	wasSynAcked := c.snd.synAcked
	var newlySACKed, pipeBefore craft.Size
	var tsEcr uint32
	ts, hasTS := findTimestamps(seg)
	if hasTS {
		tsEcr = ts.TSEcr
	}
	if c.snd.synAcked {
		pipeBefore = c.pipe()
		if c.opt.sack {
			newlySACKed = c.processSACK(seg, tsEcr, hasTS, now)
		}
	}
	dup := false
	if seg.Ack.GreaterThan(c.snd.una) {
		c.ackAdvance(seg.Ack, now)
		c.dropFront(seg.Ack, tsEcr, hasTS, now)
	} else if c.isDupACK(seg) {
		c.stats.DupACKs++
		dup = true
	}
	if wasSynAcked {
		c.onACKRecovery(prevUna.Size(c.snd.una), newlySACKed, dup, pipeBefore, now)
	}
	// Update the window when the segment is newer than the last one that
	// did (SND.WL1 < SEG.SEQ or, equal, SND.WL2 =< SEG.ACK), provided the
	// ACK is not old.
	if !seg.Ack.LessThan(c.snd.una) &&
		(c.snd.wl1.LessThan(seg.Seq) || (c.snd.wl1 == seg.Seq && c.snd.wl2.LessThanEq(seg.Ack))) {
		c.snd.wnd = craft.Size(seg.Window) << c.snd.shift
		if c.snd.wnd > c.snd.maxWnd {
			c.snd.maxWnd = c.snd.wnd
		}
		c.snd.wl1, c.snd.wl2 = seg.Seq, seg.Ack
		if c.snd.wnd > 0 {
			c.tmr.persistShift = 0
		}
	}
	c.tmr.persistProbes = 0
}

// isDupACK is the "duplicate acknowledgment" of RFC 5681 §2: data
// outstanding, no data or SYN/FIN in the segment, the same ACK and the same
// window as before (a window update is not a duplicate).
func (c *Conn) isDupACK(seg *craft.TCP) bool {
	return c.snd.una != c.snd.max && seg.Ack == c.snd.una && len(seg.Payload) == 0 &&
		seg.Flags&(craft.FlagSYN|craft.FlagFIN) == 0 && craft.Size(seg.Window)<<c.snd.shift == c.snd.wnd
}

// ackAdvance moves SND.UNA to ack, releasing acknowledged bytes, taking an
// RTT sample and restarting the retransmission timer.
func (c *Conn) ackAdvance(ack craft.Seq, now time.Time) {
	if !c.snd.synAcked && ack.GreaterThan(c.snd.iss) {
		c.snd.synAcked = true
		// The congestion controller starts with the initial window of
		// RFC 6928 now that the send MSS is known. The name was
		// validated by NewConn.
		c.cc, _ = newCongestionControl(c.cfg.Congestion, c.snd.mss)
		c.sb.rtxHint, c.sb.lostBelow, c.rack.fack = ack, ack, ack
	}
	// Data bytes acknowledged: from snd.bufSeq up to ack (the FIN and the
	// SYN take sequence numbers but no buffer space).
	if ack.GreaterThan(c.snd.bufSeq) {
		end := ack
		if de := c.snd.dataEnd(); end.GreaterThan(de) {
			end = de
		}
		d := c.snd.bufSeq.Size(end)
		if d > 0 {
			c.snd.buf.discard(int(d))
			c.snd.bufSeq = end
			c.stats.BytesAcked += uint64(d)
			c.events = append(c.events, Event{Kind: BytesAcked, Bytes: int(d)})
		}
	}
	c.snd.una = ack
	if c.snd.nxt.LessThan(ack) {
		c.snd.nxt = ack
	}
	if r, ok := c.rtt.acked(ack, now); ok {
		c.rttSample(r)
	}
	// RFC 6298 §5.3: new data acknowledged, restart the timer; the backoff
	// ends (the RTO is recomputed from SRTT). RFC 8985 §7.2: so does the
	// loss probe timer.
	c.tmr.retries = 0
	c.rtt.reset()
	c.tmr.rtoAt = time.Time{}
	c.tmr.tlpAt = time.Time{}
}

// receive handles the segment text and FIN (RFC 9293 §3.10.7.4 seventh and
// eighth) once the control bits have been dealt with: trims what lies
// outside the window, places the bytes in the receive buffer (in order, or
// out of order for reassembly), decides when to acknowledge, and consumes
// the FIN when every byte before it has arrived.
func (c *Conn) receive(seg *craft.TCP, now time.Time) {
	switch c.state {
	case Established, FinWait1, FinWait2:
	default:
		// §3.10.7.4 seventh: CLOSE-WAIT, CLOSING, LAST-ACK and TIME-WAIT
		// "should not occur, since a FIN has been received": ignore.
		return
	}
	seq := seg.Seq
	if seg.Flags&craft.FlagSYN != 0 {
		seq = seq.Add(1)
	}
	data := seg.Payload
	fin := seg.Flags&craft.FlagFIN != 0
	if c.rcv.closed {
		return
	}
	// Trim the part before RCV.NXT: "only the new parts are processed".
	if seq.LessThan(c.rcv.nxt) {
		d := seq.Size(c.rcv.nxt)
		if d > craft.Size(len(data)) {
			// Even the FIN is old.
			c.noteDSACK(seq, seq.Add(craft.Size(len(data))))
			data, fin = nil, false
		} else {
			c.noteDSACK(seq, c.rcv.nxt)
			data = data[d:]
		}
		seq = c.rcv.nxt
		c.rcv.ackNow = true // a duplicate: tell the peer where we are
	}
	// Trim what lies beyond the window (and the FIN with it).
	limit := min(c.rcv.window(), craft.Size(c.rcv.buf.max-c.rcv.buf.n))
	off := c.rcv.nxt.Size(seq)
	if off+craft.Size(len(data)) > limit {
		if off >= limit {
			data = nil
		} else {
			data = data[:limit-off]
		}
		fin = false
		c.rcv.ackNow = true
	}
	if c.rcv.finSeen && seq.Add(craft.Size(len(data))).GreaterThan(c.rcv.finSeq) {
		// Nothing exists past the FIN we already saw.
		if seq.GreaterThanEq(c.rcv.finSeq) {
			data = nil
		} else {
			data = data[:seq.Size(c.rcv.finSeq)]
		}
	}
	if len(data) > 0 {
		if len(data) > c.rcv.mssGuess {
			c.rcv.mssGuess = min(len(data), int(c.cfg.MSS))
		}
		if seq == c.rcv.nxt {
			c.receiveInOrder(data, now)
		} else {
			c.receiveOutOfOrder(seq, data)
		}
	}
	if fin && !c.rcv.finSeen {
		c.rcv.finSeen = true
		c.rcv.finSeq = seq.Add(craft.Size(len(data)))
	}
	if c.rcv.finSeen && c.rcv.nxt == c.rcv.finSeq {
		c.consumeFIN(now)
	}
}

// receiveInOrder appends bytes at RCV.NXT and pulls in any out-of-order
// bytes they make contiguous.
func (c *Conn) receiveInOrder(data []byte, now time.Time) {
	c.rcv.buf.reserve(c.rcv.buf.n + len(data))
	c.rcv.buf.writeAt(c.rcv.buf.n, data)
	c.rcv.buf.n += len(data)
	c.rcv.nxt = c.rcv.nxt.Add(craft.Size(len(data)))
	got := len(data)
	filled := false
	for len(c.rcv.ooo) > 0 && c.rcv.ooo[0].start.LessThanEq(c.rcv.nxt) {
		r := c.rcv.ooo[0]
		if r.end.GreaterThan(c.rcv.nxt) {
			k := c.rcv.nxt.Size(r.end)
			c.rcv.buf.n += int(k)
			got += int(k)
			c.rcv.nxt = r.end
		}
		c.rcv.ooo = c.rcv.ooo[1:]
		filled = true
	}
	if len(c.rcv.ooo) == 0 {
		c.rcv.ooo = c.rcv.ooo[:0:cap(c.rcv.ooo)]
	}
	c.stats.BytesReceived += uint64(got)
	c.events = append(c.events, Event{Kind: DataReadable, Bytes: got})
	switch {
	case filled:
		// RFC 5681 §4.2 / RFC 9293 §3.8.6.3: a segment that fills (part
		// of) a hole is acknowledged at once.
		c.rcv.ackNow = true
	case c.cfg.DelayedACK == 0:
		c.rcv.ackNow = true
	default:
		c.rcv.unacked += len(data)
		if c.rcv.unacked >= 2*c.rcv.mssGuess {
			// RFC 9293 §3.8.6.3: ACK at least every second full-sized
			// segment.
			c.rcv.ackNow = true
		} else if c.tmr.delackAt.IsZero() {
			c.tmr.delackAt = now.Add(c.cfg.DelayedACK)
		}
	}
}

// receiveOutOfOrder stores bytes beyond a hole and records their range
// (reassembly, RFC 9293 §3.10.7.4 seventh: "segments with higher beginning
// sequence numbers ... may be held for later processing").
func (c *Conn) receiveOutOfOrder(seq craft.Seq, data []byte) {
	r := seqRange{seq, seq.Add(craft.Size(len(data)))}
	for _, o := range c.rcv.ooo {
		if o.start.LessThanEq(r.start) && r.end.LessThanEq(o.end) {
			// All of it is held already: a duplicate (RFC 2883 §4: the
			// D-SACK block first, then the block that holds it).
			c.noteDSACK(r.start, r.end)
			c.noteSACKRecent(seq)
			c.rcv.ackNow = true
			return
		}
	}
	if !c.rcv.insertOOO(r) {
		c.drop(CauseTooManyHoles)
		c.rcv.ackNow = true
		return
	}
	off := c.rcv.buf.n + int(c.rcv.nxt.Size(seq))
	c.rcv.buf.reserve(off + len(data))
	c.rcv.buf.writeAt(off, data)
	c.noteSACKRecent(seq)
	// RFC 5681 §4.2: an out-of-order segment is acknowledged at once
	// (the duplicate ACK tells the sender about the hole).
	c.rcv.ackNow = true
}

// consumeFIN advances RCV.NXT over the peer's FIN and changes state (RFC
// 9293 §3.10.7.4 eighth).
func (c *Conn) consumeFIN(now time.Time) {
	c.rcv.nxt = c.rcv.nxt.Add(1)
	c.rcv.closed = true
	c.events = append(c.events, Event{Kind: PeerClosed})
	switch c.state {
	case SynReceived, Established:
		// §3.10.7.4 eighth: enter CLOSE-WAIT. The FIN's ACK may wait
		// like any delayed ACK (§3.8.6.3): an application that closes
		// when it reads the end of the stream (an echo server, a
		// request-response peer) then sends it on its own FIN, one
		// segment instead of two, as Linux does (tcp_fin in ping-pong
		// mode).
		if c.cfg.DelayedACK > 0 && c.tmr.delackAt.IsZero() {
			c.tmr.delackAt = now.Add(c.cfg.DelayedACK)
		} else if c.cfg.DelayedACK == 0 {
			c.rcv.ackNow = true
		}
		c.setState(CloseWait, CauseRcvdFIN)
	default:
		// In the closing states the FIN is acknowledged at once: we
		// have nothing left to send it with.
		c.rcv.ackNow = true
	}
	switch c.state {
	case FinWait1:
		// §3.10.7.4 eighth, FIN-WAIT-1: if our FIN is acknowledged, enter
		// TIME-WAIT, otherwise CLOSING.
		if c.snd.finAcked() {
			c.enterTimeWait(now, CauseRcvdFIN)
		} else {
			c.setState(Closing, CauseRcvdFIN)
		}
	case FinWait2:
		// §3.10.7.4 eighth, FIN-WAIT-2: enter TIME-WAIT.
		c.enterTimeWait(now, CauseRcvdFIN)
	}
}

// negotiate reads the options of the peer's SYN (RFC 9293 §3.7.1, RFC 7323
// §2-3, RFC 2018 §2) and agrees on what both sides support.
func (c *Conn) negotiate(seg *craft.TCP, now time.Time) {
	var (
		mss          uint16
		wsSeen, sack bool
		shift        uint8
		tsSeen       bool
		tsVal        uint32
	)
	for i := range seg.Options {
		o := &seg.Options[i]
		switch o.Kind {
		case craft.OptMSS:
			mss = o.MSS
		case craft.OptWindowScale:
			wsSeen, shift = true, o.Shift
		case craft.OptSACKPermitted:
			sack = true
		case craft.OptTimestamps:
			tsSeen, tsVal = true, o.TSVal
		}
	}
	switch {
	case mss == 0:
		mss = defaultSendMSS(c.cfg.IPv6)
	case mss < minPeerMSS:
		// A tiny MSS would make us send a segment per byte or two; like
		// Linux (tcp_min_snd_mss) we do not go below a floor.
		mss = minPeerMSS
	}
	c.snd.peerMSS = mss
	// RFC 7323 §2.2: scaling only when both sides sent the option; a
	// shift above 14 is taken as 14 (§2.3).
	c.opt.ws = c.rcv.offShift >= 0 && wsSeen
	if c.opt.ws {
		if shift > 14 {
			shift = 14
		}
		c.snd.shift = shift
		c.rcv.shift = uint8(c.rcv.offShift)
	} else {
		c.snd.shift, c.rcv.shift = 0, 0
	}
	c.opt.sack = c.cfg.SACK && sack
	// RFC 7323 §3.2: timestamps when both sides sent them.
	c.opt.ts = c.cfg.Timestamps && tsSeen
	if c.opt.ts {
		c.opt.tsRecent, c.opt.tsRecentValid, c.opt.tsRecentAt = tsVal, true, now
	}
	c.snd.mss = c.effectiveMSS()
	if c.rcv.mssGuess == 0 {
		c.rcv.mssGuess = min(536, int(c.cfg.MSS))
	}
}

// defaultSendMSS is the send MSS assumed when the peer's SYN names none
// (RFC 9293 §3.7.1): 536 for IPv4, 1220 for IPv6 (its minimum MTU of
// 1280, RFC 8200 §5, less the 60 bytes of the IPv6 and TCP headers).
func defaultSendMSS(ipv6 bool) uint16 {
	if ipv6 {
		return 1220
	}
	return 536
}

// minPeerMSS is the smallest peer MSS we honour.
const minPeerMSS = 64

// findTimestamps returns the timestamps option of seg, if any.
func findTimestamps(seg *craft.TCP) (craft.Option, bool) {
	for i := range seg.Options {
		if seg.Options[i].Kind == craft.OptTimestamps {
			return seg.Options[i], true
		}
	}
	return craft.Option{}, false
}

// tsBefore compares timestamps modulo 2^32 (RFC 7323 §5.2).
func tsBefore(a, b uint32) bool { return int32(a-b) < 0 }
