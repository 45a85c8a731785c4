package fsm

// Cause says why an Event happened: why the state changed, why an arriving
// segment was dropped, why a segment was sent again, why a challenge ACK
// went out, why the connection failed. Code that needs to tell causes apart
// compares Causes (or reads the counters of Stats), never their text;
// String is for people (the trace).
type Cause uint8

// Causes. The comment after each is its String.
const (
	CauseNone Cause = iota // ""

	// Calls of the application (RFC 9293 §3.10.1-§3.10.5).

	CauseConnect      // "connect() called"
	CauseListen       // "listen() called"
	CauseClose        // "close() called"
	CauseCloseEarlier // "close() called earlier": CLOSE in SYN-RECEIVED takes effect once established
	CauseAbort        // "abort() called"

	// Segments that move the state (RFC 9293 §3.10.7).

	CauseRcvdSYN                // "rcvd SYN"
	CauseSYNCookie              // "rcvd ACK with a valid SYN cookie (RFC 4987 §3.6)"
	CauseRcvdSYNSimultaneous    // "rcvd SYN (simultaneous open)"
	CauseRcvdSYNACK             // "rcvd SYN-ACK"
	CauseRcvdSYNACKSimultaneous // "rcvd SYN-ACK (simultaneous open)"
	CauseRcvdACKOfSYN           // "rcvd ACK of SYN"
	CauseRcvdFIN                // "rcvd FIN"
	CauseRcvdACKOfFIN           // "rcvd ACK of FIN"
	CauseRcvdRST                // "rcvd RST"

	// Timers that end the connection.

	CauseTimeWaitDone     // "TIME-WAIT timeout" (RFC 9293 §3.10.8)
	CauseTimeWaitPeerGone // "peer reset our TIME-WAIT probe: it has closed, no FIN can follow"
	CauseTimeWaitFINsDone // "no retransmitted FIN within 2 peer RTOs"
	CauseSYNRetriesDone   // "SYN retransmission limit reached"
	CauseRetriesDone      // "retransmission limit reached"
	CauseWindowProbesDone // "zero-window probes unanswered"
	CauseKeepaliveDone    // "keep-alive probes unanswered"

	// Segments dropped, and challenge ACKs (RFC 5961).

	CausePortMismatch      // "ports do not match this connection"
	CauseNoConnection      // "connection closed" (RFC 9293 §3.10.7.1)
	CauseRSTInListen       // "RST in LISTEN"
	CauseACKInListen       // "ACK in LISTEN"
	CauseSYNFINInListen    // "SYN with FIN in LISTEN"
	CauseNoSYNInListen     // "no SYN in LISTEN"
	CauseListenQueueFull   // "accept queue full"
	CauseSYNQueueFull      // "SYN queue full"
	CauseSYNCookiesAlways  // "SYN cookies always on"
	CauseBadSYNCookie      // "ACK without a valid SYN cookie"
	CauseBadACKInSynSent   // "unacceptable ACK in SYN-SENT"
	CauseRSTNoACKInSynSent // "RST without ACK in SYN-SENT"
	CauseNoSYNInSynSent    // "no SYN in SYN-SENT"
	CauseNoControl         // "none of SYN, RST, ACK"
	CauseTimestampMissing  // "timestamps agreed but missing (RFC 7323 §3.2)"
	CausePAWS              // "PAWS: timestamp older than TS.Recent (RFC 7323 §5.3)"
	CauseRSTOutOfWindow    // "RST out of window"
	CauseSYNAgain          // "retransmitted SYN"
	CauseNotAcceptable     // "segment not acceptable (RFC 9293 §3.10.7.4)"
	CauseRSTNotAtRcvNxt    // "RST in window but not at RCV.NXT (RFC 5961 §3.2)"
	CauseSYNInWindow       // "SYN in a synchronized state (RFC 5961 §4.2)"
	CauseSYNInSynReceived  // "SYN in SYN-RECEIVED"
	CauseNoACK             // "no ACK (RFC 9293 §3.10.7.4 fifth)"
	CauseBadACKInSynRcvd   // "unacceptable ACK in SYN-RECEIVED"
	CauseACKUnsent         // "ACK of data not yet sent"
	CauseACKTooOld         // "ACK too old (RFC 5961 §5.2)"
	CauseChallengeLimited  // "challenge ACK rate-limited (RFC 5961 §7)"
	CauseTooManyHoles      // "too many out-of-order ranges"

	// Retransmissions, and probes that resend a byte already sent.

	CauseSYNRetransmit   // "SYN retransmission"
	CauseRTO             // "retransmission timeout" (RFC 6298 §5)
	CauseFastRetransmit  // "fast retransmit" (RFC 5681 §3.2, RFC 6675 §5)
	CausePartialACK      // "NewReno partial ACK" (RFC 6582)
	CauseSACKRecovery    // "SACK recovery" (RFC 6675)
	CauseLossRecovery    // "loss recovery"
	CauseTailLossProbe   // "tail loss probe" (RFC 8985 §7)
	CauseZeroWindowProbe // "zero-window probe" (RFC 9293 §3.8.6.1)
	CauseTimeWaitProbe   // "TIME-WAIT probe: has the peer closed?" (Config.TimeWaitProbe)

	// ICMP errors about our segments (path MTU discovery).

	CausePacketTooBig    // "packet too big (path MTU discovery)" (RFC 1191, RFC 8201)
	CauseICMPOutOfWindow // "ICMP error quoting a sequence number not in flight (RFC 5927 §4.1)"
	CauseICMPNotSmaller  // "ICMP error naming a path MTU no smaller than ours"
	numCauses            // not a cause: the count
)

var causeText = [numCauses]string{
	CauseNone:                   "",
	CauseConnect:                "connect() called",
	CauseListen:                 "listen() called",
	CauseClose:                  "close() called",
	CauseCloseEarlier:           "close() called earlier",
	CauseAbort:                  "abort() called",
	CauseRcvdSYN:                "rcvd SYN",
	CauseSYNCookie:              "rcvd ACK with a valid SYN cookie (RFC 4987 §3.6)",
	CauseRcvdSYNSimultaneous:    "rcvd SYN (simultaneous open)",
	CauseRcvdSYNACK:             "rcvd SYN-ACK",
	CauseRcvdSYNACKSimultaneous: "rcvd SYN-ACK (simultaneous open)",
	CauseRcvdACKOfSYN:           "rcvd ACK of SYN",
	CauseRcvdFIN:                "rcvd FIN",
	CauseRcvdACKOfFIN:           "rcvd ACK of FIN",
	CauseRcvdRST:                "rcvd RST",
	CauseTimeWaitDone:           "TIME-WAIT timeout",
	CauseTimeWaitPeerGone:       "peer reset our TIME-WAIT probe: it has closed, no FIN can follow",
	CauseTimeWaitFINsDone:       "no retransmitted FIN within 2 peer RTOs",
	CauseSYNRetriesDone:         "SYN retransmission limit reached",
	CauseRetriesDone:            "retransmission limit reached",
	CauseWindowProbesDone:       "zero-window probes unanswered",
	CauseKeepaliveDone:          "keep-alive probes unanswered",
	CausePortMismatch:           "ports do not match this connection",
	CauseNoConnection:           "connection closed",
	CauseRSTInListen:            "RST in LISTEN",
	CauseACKInListen:            "ACK in LISTEN",
	CauseSYNFINInListen:         "SYN with FIN in LISTEN",
	CauseNoSYNInListen:          "no SYN in LISTEN",
	CauseListenQueueFull:        "accept queue full",
	CauseSYNQueueFull:           "SYN queue full",
	CauseSYNCookiesAlways:       "SYN cookies always on",
	CauseBadSYNCookie:           "ACK without a valid SYN cookie (RFC 4987 §3.6)",
	CauseBadACKInSynSent:        "unacceptable ACK in SYN-SENT",
	CauseRSTNoACKInSynSent:      "RST without ACK in SYN-SENT",
	CauseNoSYNInSynSent:         "no SYN in SYN-SENT",
	CauseNoControl:              "none of SYN, RST, ACK",
	CauseTimestampMissing:       "timestamps agreed but missing (RFC 7323 §3.2)",
	CausePAWS:                   "PAWS: timestamp older than TS.Recent (RFC 7323 §5.3)",
	CauseRSTOutOfWindow:         "RST out of window",
	CauseSYNAgain:               "retransmitted SYN",
	CauseNotAcceptable:          "segment not acceptable (RFC 9293 §3.10.7.4)",
	CauseRSTNotAtRcvNxt:         "RST in window but not at RCV.NXT (RFC 5961 §3.2)",
	CauseSYNInWindow:            "SYN in a synchronized state (RFC 5961 §4.2)",
	CauseSYNInSynReceived:       "SYN in SYN-RECEIVED",
	CauseNoACK:                  "no ACK (RFC 9293 §3.10.7.4 fifth)",
	CauseBadACKInSynRcvd:        "unacceptable ACK in SYN-RECEIVED",
	CauseACKUnsent:              "ACK of data not yet sent",
	CauseACKTooOld:              "ACK too old (RFC 5961 §5.2)",
	CauseChallengeLimited:       "challenge ACK rate-limited (RFC 5961 §7)",
	CauseTooManyHoles:           "too many out-of-order ranges",
	CauseSYNRetransmit:          "SYN retransmission",
	CauseRTO:                    "retransmission timeout",
	CauseFastRetransmit:         "fast retransmit",
	CausePartialACK:             "NewReno partial ACK",
	CauseSACKRecovery:           "SACK recovery",
	CauseLossRecovery:           "loss recovery",
	CauseTimeWaitProbe:          "TIME-WAIT probe: has the peer closed?",
	CauseTailLossProbe:          "tail loss probe",
	CauseZeroWindowProbe:        "zero-window probe",
	CausePacketTooBig:           "packet too big (path MTU discovery)",
	CauseICMPOutOfWindow:        "ICMP error quoting a sequence number not in flight (RFC 5927 §4.1)",
	CauseICMPNotSmaller:         "ICMP error naming a path MTU no smaller than ours",
}

// String is the cause as the trace shows it, e.g. "rcvd SYN-ACK".
func (c Cause) String() string {
	if c < numCauses {
		return causeText[c]
	}
	return "Cause(" + itoa(int(c)) + ")"
}

// afterTimeout reports whether a retransmission with this cause was sent
// because a timer ran out (the RTO of RFC 6298 §5, the SYN's included)
// rather than found lost by the ACKs (RFC 5681 §3.2, RFC 6675, RFC 8985).
func (c Cause) afterTimeout() bool { return c == CauseRTO || c == CauseSYNRetransmit }
