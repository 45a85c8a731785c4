package prober

import (
	"net/netip"
	"slices"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventSent: a probe went out (each fragment of it is one event).
	EventSent EventKind = iota
	// EventReply: a TCP segment from a target answered a probe.
	EventReply
	// EventICMP: an ICMP or ICMPv6 error quoted a probe.
	EventICMP
	// EventReset: the RST that answers a target's SYN-ACK went out.
	EventReset
	// EventTimeout: a probe drew nothing within its wait (Retry: it is
	// sent again).
	EventTimeout
	// EventHop: a traceroute finished a TTL.
	EventHop
)

// EventMask selects event kinds: 1<<EventSent | 1<<EventReply, ...
type EventMask uint32

// AllEvents selects every kind.
const AllEvents EventMask = 1<<(EventHop+1) - 1

// Has reports whether m selects k.
func (m EventMask) Has(k EventKind) bool { return m&(1<<k) != 0 }

// Event is one thing that happened in a run. Pointers and slices in it
// are valid only during the Handler call.
type Event struct {
	Kind EventKind
	// Time is when the packet was sent (just before the system call) or
	// captured (the kernel's time), or when a wait ended.
	Time time.Time
	// Target is the target the event is about.
	Target Target
	// Probe is the probe's number for its target (1 is the first; a
	// retransmission counts on), 0 when an answer could not be tied to
	// one probe (a fixed sequence number, an old probe).
	Probe int
	// Packet is the sent or received TCP packet (EventSent, EventReply,
	// EventReset; for a fragment other than the first, only the IP
	// header fields are set) and Raw its bytes from the IP header on.
	Packet *craft.Packet
	Raw    []byte
	// ICMP is the error (EventICMP).
	ICMP *craft.ICMPError
	// RTT is the time from the probe to the answer (0: unknown).
	RTT time.Duration
	// Retry: after EventTimeout, the probe is sent again.
	Retry bool
	// Hop is the finished TTL (EventHop).
	Hop *Hop
}

// Handler hears about a run as it goes. Event is called from the run's
// goroutine, one event at a time; a slow handler slows the run.
type Handler interface {
	Event(e *Event)
}

// State is a target's verdict, in nmap's words.
type State string

const (
	// Open: a SYN drew a SYN-ACK.
	Open State = "open"
	// Closed: a SYN (or a FIN/NULL/Xmas probe) drew an RST.
	Closed State = "closed"
	// Filtered: nothing came back after the retransmission, or an ICMP
	// error did.
	Filtered State = "filtered"
	// Unfiltered: an ACK probe (or one with RST or SYN+ACK) drew an RST:
	// something answers, whether the port is open or not.
	Unfiltered State = "unfiltered"
	// OpenFiltered: a FIN/NULL/Xmas probe drew nothing: an open port
	// keeps silent (RFC 9293 §3.10.7.4), and so does a filter.
	OpenFiltered State = "open|filtered"
)

// Reasons, besides "icmp-unreach-<code name>" and "icmp-<name>" for the
// other ICMP errors.
const (
	ReasonSYNACK     = "syn-ack"
	ReasonRST        = "rst"
	ReasonNoResponse = "no-response"
)

// TargetResult is what a run found out about one target.
type TargetResult struct {
	Target
	State  State
	Reason string
	// RTT is the round-trip time of the answer that settled the state
	// (0: none).
	RTT time.Duration
	// From is who sent an ICMP error (a router, or the target).
	From netip.Addr
	// ReplyTTL is the TTL or hop limit of that answer.
	ReplyTTL uint8
	// Probes is how many probes went to the target, retransmissions
	// included; Answered how many of them drew an answer.
	Probes, Answered int
	// Responded: the target itself answered with TCP.
	Responded bool
}

// Hop is one TTL of a traceroute.
type Hop struct {
	TTL uint8
	// Addr is who answered (invalid: nobody, "*").
	Addr netip.Addr
	RTT  time.Duration
	// ICMP is the error's code name ("ttl-exceeded", "port-unreachable",
	// ...), or "" for a TCP answer.
	ICMP string
	// Final: the target was reached, or an unreachable error ended the
	// path; State and Reason then hold the target's verdict.
	Final  bool
	State  State
	Reason string
}

// Stats are a run's counters.
type Stats struct {
	// Probes sent (fragments of one count once), of which
	// Retransmitted were sent again for want of an answer; Packets on
	// the wire (each fragment counts).
	Probes, Retransmitted, Packets int
	// Answered probes; Replies the TCP answers and ICMP the errors
	// matched to probes; Late the answers that came after the probe's
	// wait; Unmatched the captured frames no probe explains.
	Answered, Replies, ICMP, Late, Unmatched int
	// Resets sent in answer to SYN-ACKs.
	Resets int
	// SendDrops are packets the device refused (ENOBUFS); RingDrops the
	// frames the kernel dropped because the capture ring was full.
	SendDrops int
	RingDrops uint64
	// Elapsed is the run's time from the first probe to the end.
	Elapsed time.Duration
	// RTT figures over the probes' first answers.
	RTTMin, RTTAvg, RTTMedian, RTTMax time.Duration
	// WireTimed counts the RTTs above timed from the probe's transmit
	// timestamp (the kernel's, when the device's driver took it), wire
	// to wire as the answer's capture time; the rest are timed from just
	// before the probe's send.
	WireTimed int
	// RTTUserMin and RTTUserMedian are the same answers timed from just
	// before the probe's send to when tcpcraft read the answer: what a
	// program timing connect(2) from user space sees of a handshake.
	RTTUserMin, RTTUserMedian time.Duration
	// Source is the source address of the first target's probes and
	// PortLow-PortHigh the block of source ports the run used.
	Source            netip.Addr
	PortLow, PortHigh uint16
	// Interface is the interface of the first target's route.
	Interface string
}

// Result is the outcome of a run.
type Result struct {
	Targets []TargetResult
	Hops    []Hop
	Stats   Stats
}

// AnyResponded reports whether a target answered with TCP (or, in a
// traceroute, whether the target was reached).
func (r *Result) AnyResponded() bool {
	for _, t := range r.Targets {
		if t.Responded {
			return true
		}
	}
	return false
}

// Counts returns how many targets are in each state.
func (r *Result) Counts() map[State]int {
	m := map[State]int{}
	for _, t := range r.Targets {
		m[t.State]++
	}
	return m
}

// rttStats keeps round-trip times: all of the first maxRTTSamples (for
// the median), and exact min, max and mean over all.
type rttStats struct {
	samples  []time.Duration
	min, max time.Duration
	sum      time.Duration
	n        int
}

const maxRTTSamples = 1 << 20

func (s *rttStats) add(d time.Duration) {
	if s.n == 0 || d < s.min {
		s.min = d
	}
	if d > s.max {
		s.max = d
	}
	s.sum += d
	s.n++
	if len(s.samples) < maxRTTSamples {
		s.samples = append(s.samples, d)
	}
}

func (s *rttStats) fill(st *Stats) {
	if s.n == 0 {
		return
	}
	st.RTTMin, st.RTTMax, st.RTTAvg = s.min, s.max, s.sum/time.Duration(s.n)
	st.RTTMedian = s.median()
}

// median is the median of the samples kept (0: none).
func (s *rttStats) median() time.Duration {
	if len(s.samples) == 0 {
		return 0
	}
	sorted := slices.Clone(s.samples)
	slices.Sort(sorted)
	if len(sorted)%2 == 0 {
		return (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return sorted[len(sorted)/2]
}
