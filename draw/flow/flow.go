// Package flow reads a TCP conversation back out of captured segments: it
// splits a packet sequence into connections, names each end client or
// server, infers the RFC 9293 state path each end took from the segments
// alone, marks retransmissions (fast or after a timeout), unwraps sequence
// numbers into byte offsets, and reassembles each direction's byte stream
// the way Wireshark's "Follow TCP Stream" does.
//
// It is a package of its own, under draw/, because three consumers need the
// same reading of a capture: the drawings (ladder, time-sequence graph,
// state diagram), the live terminal ladder of connect/listen, and decode's
// --conns and --follow. Keeping it here, apart from fsm, says what it is: an
// observer's reconstruction, not the protocol.
//
// What it must not do: do I/O, read clocks or keep global state (packets
// and their times come in as arguments), or pretend to know what it cannot
// see — a state inferred from a capture taken at one end is a best guess,
// and a connection whose handshake was not captured is marked Partial.
package flow

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// Side names one end of a connection.
type Side int

const (
	// Client is the end that sent the first SYN (or, without a handshake in
	// the capture, the end with the higher port).
	Client Side = iota
	// Server is the other end.
	Server
)

// Other returns the opposite end.
func (s Side) Other() Side { return 1 - s }

func (s Side) String() string {
	if s == Client {
		return "client"
	}
	return "server"
}

// RetransmitKind says why a retransmission was (most likely) sent.
type RetransmitKind int

const (
	// NotRetransmit is an original transmission.
	NotRetransmit RetransmitKind = iota
	// Fast is a retransmission after three duplicate ACKs or a SACK hole
	// (RFC 5681 §3.2, RFC 6675): loss recovery without a timeout.
	Fast
	// Timeout is a retransmission with no duplicate-ACK evidence: the
	// retransmission timer must have expired (RFC 6298 §5).
	Timeout
)

func (k RetransmitKind) String() string {
	switch k {
	case Fast:
		return "fast"
	case Timeout:
		return "timeout"
	}
	return ""
}

// Change is one state change of one end, inferred from a segment.
type Change struct {
	Side     Side
	From, To fsm.State
	// Why names the event as RFC 9293's Figure 5 does ("rcv SYN,ACK").
	Why string
}

// Segment is one captured TCP segment of a connection.
type Segment struct {
	// N is the packet's number in the capture (1-based), or whatever the
	// caller passed.
	N    int
	Time time.Time
	From Side
	// Seq and Ack are the header's absolute numbers.
	Seq, Ack craft.Seq
	Flags    craft.Flags
	// Len is the payload length.
	Len int
	// Window is the header's window field; WindowBytes the window in bytes,
	// scaled by the sender's shift once both SYNs agreed on window scaling
	// (RFC 7323 §2.3; a SYN's window is never scaled).
	Window      uint16
	WindowBytes uint32
	// SeqOff is the sequence number as an unwrapped offset from the
	// sender's initial sequence number (its SYN is 0, its first data byte
	// 1), AckOff the acknowledgment as an offset in the receiver's space,
	// and SACK the SACK blocks in the receiver's space.
	SeqOff, AckOff int64
	SACK           []Range
	// Options of interest: MSS and window scale (-1: absent) on SYNs,
	// SACK-permitted and timestamps.
	MSS, WScale             int
	SACKPermitted, TSOption bool
	// Payload is a copy of the payload when the Builder keeps payloads.
	Payload []byte
	// Retransmit marks a segment that carries sequence space already seen
	// in its direction; Kind says why it was likely sent.
	Retransmit bool
	Kind       RetransmitKind
	// Changes are the state changes this segment caused, the sender's
	// (on sending) before the receiver's (on arrival).
	Changes []Change
}

// SeqLen is the sequence space the segment occupies: payload plus one for
// SYN and one for FIN (RFC 9293 §3.4).
func (s *Segment) SeqLen() int64 {
	n := int64(s.Len)
	if s.Flags.Has(craft.FlagSYN) {
		n++
	}
	if s.Flags.Has(craft.FlagFIN) {
		n++
	}
	return n
}

// Range is a half-open range [Start, End) of unwrapped sequence offsets.
type Range struct{ Start, End int64 }

// DirStats are the counters of one direction (segments sent by one end).
type DirStats struct {
	Packets int
	// Bytes counts payload bytes of original transmissions (each stream
	// byte once); RetransBytes the payload sent again.
	Bytes, RetransBytes int64
	// Retransmits counts retransmitted segments, split into Fast and
	// Timeout.
	Retransmits, Fast, Timeout int
	// DupACKs counts duplicate ACKs this end sent (RFC 5681 §2), SACKs the
	// ACKs carrying SACK blocks.
	DupACKs, SACKs int
}

// Conn is one TCP connection read from a capture.
type Conn struct {
	// Index counts connections in the order their first segment appeared,
	// from 0.
	Index int
	// Addr holds the two ends' addresses, by Side.
	Addr [2]netip.AddrPort
	// Partial reports a connection whose opening handshake was not seen:
	// its ends are taken to start ESTABLISHED.
	Partial bool
	// Segments in capture order.
	Segments []Segment
	// Paths are the states each end went through, in order, starting with
	// the state it was in when the capture first saw it.
	Paths [2][]fsm.State
	// Stats by the Side that sent the segments.
	Stats       [2]DirStats
	First, Last time.Time

	st        [2]dirState
	state     [2]fsm.State
	passive   [2]bool // the end entered SYN-RECEIVED from LISTEN
	wscaleOn  bool
	finished  bool
	chunks    []Chunk
	keepBytes bool
}

// dirState is the per-direction reconstruction state.
type dirState struct {
	haveBase bool
	base     craft.Seq // ISN (or first seq - 1 without a SYN)
	refSeq   craft.Seq // unwrap reference: refSeq is at offset refOff
	refOff   int64
	iss      craft.Seq
	synSeen  bool
	wscale   int // shift offered on the SYN, -1 none
	high     int64
	haveHigh bool
	seen     rangeSet // sequence space sent so far
	finSeen  bool
	finOff   int64 // offset of the FIN
	peerFIN  bool  // the peer's FIN is on its way to this end
	lastAck  int64 // the last ack this end sent (in the other end's space)
	haveAck  bool
	lastWin  uint16
	dupAcks  int
	lastSACK bool
	// Loss recovery of this end as a sender (RFC 6582's "recover").
	recovering bool
	recover    int64
	// Reassembly for Follow.
	delivered int64 // next stream offset to deliver
	haveDeliv bool
	pending   []pendingData
	arrivals  int
}

type pendingData struct {
	off   int64
	data  []byte
	order int // capture order
}

// Client and Server return the two ends' addresses.
func (c *Conn) Client() netip.AddrPort { return c.Addr[Client] }
func (c *Conn) Server() netip.AddrPort { return c.Addr[Server] }

// SideOf returns the side whose address is a, and false if neither is.
func (c *Conn) SideOf(a netip.AddrPort) (Side, bool) {
	switch a {
	case c.Addr[Client]:
		return Client, true
	case c.Addr[Server]:
		return Server, true
	}
	return Client, false
}

// Duration is the time between the first and the last segment.
func (c *Conn) Duration() time.Duration { return c.Last.Sub(c.First) }

// State returns the state the capture last left side in.
func (c *Conn) State(side Side) fsm.State { return c.state[side] }

// String names the connection "client > server".
func (c *Conn) String() string {
	return fmt.Sprintf("%s > %s", c.Addr[Client], c.Addr[Server])
}

// ISN returns a side's initial sequence number and whether its SYN was seen.
func (c *Conn) ISN(side Side) (craft.Seq, bool) { return c.st[side].iss, c.st[side].synSeen }

// WindowScaled reports whether both SYNs carried window scale options, so
// that WindowBytes are true byte counts.
func (c *Conn) WindowScaled() bool { return c.wscaleOn }
