package fsm

import (
	"errors"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Errors reported in Error events and returned by Read and Write once the
// connection has failed.
var (
	// ErrReset: the peer reset a synchronized connection (RFC 9293 §3.10.7.4).
	ErrReset = errors.New("connection reset by peer")
	// ErrRefused: RST in reply to our SYN (RFC 9293 §3.10.7.3).
	ErrRefused = errors.New("connection refused")
	// ErrTimeout: a segment was retransmitted the maximum number of times,
	// or keep-alive probes went unanswered.
	ErrTimeout = errors.New("connection timed out")
	// ErrClosing: Write or Close after Close (RFC 9293 §3.10.2, §3.10.4:
	// "connection closing").
	ErrClosing = errors.New("connection closing")
	// ErrNotConnected: the call needs a connection that does not exist.
	ErrNotConnected = errors.New("connection does not exist")
	// ErrExists: Connect or Listen on a connection already opened
	// (RFC 9293 §3.10.1 "connection already exists").
	ErrExists = errors.New("connection already exists")
	// ErrAborted: the local side aborted the connection.
	ErrAborted = errors.New("connection aborted")
	// ErrLent: Write was called while space of the send buffer is lent
	// (SendSpace without CommitSend).
	ErrLent = errors.New("send buffer space is lent")
)

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// StateChange: From → To, Cause says why (CauseRcvdSYNACK).
	StateChange EventKind = iota + 1
	// DataReadable: Bytes new in-order bytes can be Read.
	DataReadable
	// BytesAcked: the peer acknowledged Bytes new bytes of our data.
	BytesAcked
	// RTTSample: a round-trip time measurement (RTT) was taken.
	RTTSample
	// Error: the connection failed with Err; Cause says what ended it.
	Error
	// Retransmit: Bytes bytes (sequence space) from Seq were sent again;
	// Cause says why (CauseRTO, CauseFastRetransmit, ...). A zero-window
	// probe (CauseZeroWindowProbe) resends the byte before SND.UNA and
	// has Bytes 0, and so has the TIME-WAIT probe (CauseTimeWaitProbe),
	// which reuses our FIN's sequence number.
	Retransmit
	// ChallengeACK: a challenge ACK was sent (RFC 5961); Cause says why.
	ChallengeACK
	// SegmentDropped: an arriving segment was discarded; Cause says why.
	// Every arriving segment gives at most one.
	SegmentDropped
	// PeerClosed: the peer's FIN was consumed; Read returns io.EOF after
	// the buffered data.
	PeerClosed
	// SYNCookie: a Listener answered a SYN with a SYN cookie (RFC 4987
	// §3.6) and kept nothing; Cause says why (CauseSYNQueueFull,
	// CauseSYNCookiesAlways). A connection its ACK opens reports
	// CauseSYNCookie on its way to SYN-RECEIVED.
	SYNCookie
	// PathMTU: an ICMP "fragmentation needed" or "packet too big" about
	// one of our segments lowered the send MSS to Bytes (Cause
	// CausePacketTooBig), or was ignored (Cause says why: a forged or
	// stale one, RFC 5927 §4.1, or one that lowers nothing).
	PathMTU
)

// String names the event kind.
func (k EventKind) String() string {
	switch k {
	case StateChange:
		return "state"
	case DataReadable:
		return "readable"
	case BytesAcked:
		return "acked"
	case RTTSample:
		return "rtt"
	case Error:
		return "error"
	case Retransmit:
		return "retransmit"
	case ChallengeACK:
		return "challenge-ack"
	case SegmentDropped:
		return "dropped"
	case PeerClosed:
		return "peer-closed"
	case SYNCookie:
		return "syn-cookie"
	case PathMTU:
		return "path-mtu"
	}
	return "EventKind(" + itoa(int(k)) + ")"
}

// Event is something the application or the trace may want to know.
// Only the fields that belong to Kind are set.
type Event struct {
	Kind     EventKind
	From, To State
	Cause    Cause
	Bytes    int
	Seq      craft.Seq
	RTT      time.Duration
	Err      error
}
