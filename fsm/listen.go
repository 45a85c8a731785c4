package fsm

import (
	"errors"
	"fmt"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// A Listener is the LISTEN state of one port (RFC 9293 §3.10.7.2) for the
// segments that reach it from peers no connection knows: it judges each
// one, and for an acceptable SYN that the queue has room for it opens a
// connection (a Conn in SYN-RECEIVED, its SYN-ACK queued). It keeps nothing
// per peer, so a driver holds one per listening port and feeds it every
// segment to the port for which it has no Conn; segments of a 4-tuple it
// has a Conn for go to that Conn, segments to a port nobody listens on get
// ResetFor's answer. Like a Conn it is not safe for concurrent use.
//
// Where RFC 9293 and Linux differ, the Listener does what Linux does
// (tcp_v4_rcv and tcp_rcv_state_process, LISTEN), so that tcpcraft looks
// like a kernel listener to a peer or a scanner:
//
//   - a SYN that also carries FIN is dropped: RFC 9293 §3.10.7.2 would
//     open a connection and process the FIN once established, Linux
//     treats SYN+FIN as a scanner's probe;
//   - a segment with an ACK is answered <SEQ=SEG.ACK><CTL=RST> (both),
//     and one with RST, or with neither SYN nor ACK (FIN, NULL, Xmas, ...),
//     is dropped without an answer (both: RFC 9293 §3.10.7.2 first and
//     fourth), so that a FIN, NULL or Xmas scan finds the port
//     "open|filtered", as it does a kernel's;
//   - the third check of §3.10.7.2, the security/compartment of the
//     segment (the IP security option, RFC 1108), is skipped: tcpcraft,
//     like Linux, keeps no security or compartment for a connection.
//
// Whether a SYN is taken is one decision (admit). SYN cookies (RFC 4987, as
// Linux computes them) would live here: instead of dropping a SYN that the
// full queue has no room for, answer it with a SYN-ACK whose ISS encodes
// the connection (a ListenReply), and open the Conn (ListenOpen) when an
// ACK from a 4-tuple without a Conn carries the cookie back.
type Listener struct {
	cfg     Config
	backlog int
}

// NewListener validates cfg, the template of every connection the Listener
// opens (cfg.LocalPort is the listening port; RemotePort is set from each
// SYN), and returns a Listener that keeps at most backlog connections
// half-open or waiting to be accepted.
func NewListener(cfg Config, backlog int) (*Listener, error) {
	if backlog <= 0 {
		return nil, fmt.Errorf("fsm: listener: backlog %d must be positive", backlog)
	}
	if cfg.LocalPort == 0 {
		return nil, errors.New("fsm: listener: local port must not be 0")
	}
	check := cfg
	check.RemotePort = 1 // set per SYN
	if _, err := check.withDefaults(); err != nil {
		return nil, fmt.Errorf("fsm: listener: %w", err)
	}
	return &Listener{cfg: cfg, backlog: backlog}, nil
}

// Port returns the listening port.
func (l *Listener) Port() uint16 { return l.cfg.LocalPort }

// ListenVerdict says what the driver does with a segment a Listener judged.
type ListenVerdict uint8

const (
	// ListenDrop: discard the segment; nothing goes back.
	ListenDrop ListenVerdict = iota
	// ListenReply: send ListenResult.Reply (ports set, no options).
	ListenReply
	// ListenOpen: ListenResult.Conn is a new connection for the
	// segment's 4-tuple, which has taken the segment: drive it from
	// now on (its SYN-ACK and events wait in it).
	ListenOpen
)

// String names the verdict.
func (v ListenVerdict) String() string {
	switch v {
	case ListenDrop:
		return "drop"
	case ListenReply:
		return "reply"
	case ListenOpen:
		return "open"
	}
	return "ListenVerdict(" + itoa(int(v)) + ")"
}

// ListenResult is a Listener's judgement of one segment.
type ListenResult struct {
	Verdict ListenVerdict
	// Cause says why: what was wrong with a segment dropped or answered,
	// CauseRcvdSYN for a connection opened.
	Cause Cause
	Reply craft.TCP // ListenReply
	Conn  *Conn     // ListenOpen
}

// Event is the event a driver reports for a segment the Listener dropped
// or answered (one no Conn saw); ok is false for ListenOpen, whose Conn
// reports its own.
func (r ListenResult) Event() (ev Event, ok bool) {
	if r.Verdict == ListenOpen {
		return Event{}, false
	}
	return Event{Kind: SegmentDropped, Cause: r.Cause}, true
}

// Input judges seg, which arrived at now at the listening port from a
// 4-tuple the driver has no connection for. queued is how many connections
// the driver holds for this Listener that are half-open or wait to be
// accepted. seg is only read. The error reports a connection that could
// not be made (the random source failed); the segment is then dropped.
func (l *Listener) Input(seg *craft.TCP, queued int, now time.Time) (ListenResult, error) {
	if seg.DstPort != l.cfg.LocalPort {
		return ListenResult{Verdict: ListenDrop, Cause: CausePortMismatch}, nil
	}
	v, cause := judgeListen(seg)
	switch v {
	case ListenReply:
		rst, _ := ResetFor(seg) // no RST reaches here: judgeListen drops them
		return ListenResult{Verdict: ListenReply, Cause: cause, Reply: rst}, nil
	case ListenOpen:
		if !l.admit(queued) {
			return ListenResult{Verdict: ListenDrop, Cause: CauseListenQueueFull}, nil
		}
		cfg := l.cfg
		cfg.RemotePort = seg.SrcPort
		c, err := NewConn(cfg)
		if err != nil {
			return ListenResult{Verdict: ListenDrop, Cause: cause}, err
		}
		_ = c.Listen() // a new Conn is CLOSED: it cannot fail
		c.Input(seg, now)
		return ListenResult{Verdict: ListenOpen, Cause: cause, Conn: c}, nil
	}
	return ListenResult{Verdict: ListenDrop, Cause: cause}, nil
}

// admit decides whether a SYN may open a connection: while fewer than
// backlog connections are half-open or wait to be accepted. Beyond that
// Linux (net.ipv4.tcp_abort_on_overflow = 0, no SYN cookies) drops the SYN
// unanswered, and the client sends it again after its RTO.
func (l *Listener) admit(queued int) bool { return queued < l.backlog }

// judgeListen is the LISTEN state's rule for one segment (RFC 9293
// §3.10.7.2, with Linux's departures listed on Listener): whether to drop
// it, answer it with ResetFor's RST, or take it as a SYN that opens a
// connection. Conn.Input in LISTEN applies the same rule.
func judgeListen(seg *craft.TCP) (ListenVerdict, Cause) {
	switch f := seg.Flags; {
	case f&craft.FlagRST != 0:
		// First: "An incoming RST should be ignored."
		return ListenDrop, CauseRSTInListen
	case f&craft.FlagACK != 0:
		// Second: "Any acknowledgment is bad": <SEQ=SEG.ACK><CTL=RST>.
		return ListenReply, CauseACKInListen
	case f&craft.FlagSYN == 0:
		// Fourth: "Any other control or text-bearing segment (not
		// containing SYN) must have an ACK and thus would have been
		// discarded by the ACK processing": drop.
		return ListenDrop, CauseNoSYNInListen
	case f&craft.FlagFIN != 0:
		// Linux drops SYN+FIN (tcp_rcv_state_process); RFC 9293 would
		// take the SYN.
		return ListenDrop, CauseSYNFINInListen
	}
	// Third: a SYN (its security check skipped, see Listener).
	return ListenOpen, CauseRcvdSYN
}
