package draw

import (
	"fmt"
	"strings"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// LabelOptions say what a segment label shows.
type LabelOptions struct {
	// Absolute prints the header's sequence numbers instead of offsets from
	// each side's ISN (tcpdump -S).
	Absolute bool
	// NoWindow leaves the window out (narrow terminals).
	NoWindow bool
}

// SegmentLabel is the text written along a segment's arrow, e.g.
// "P. seq 1:84(83) ack 1 win 64512" or "S seq 0 win 64240 <mss 1460,sack,ts,ws 7>":
// tcpdump's flag letters, the sequence range and length (or the sequence
// number of a SYN, FIN or RST), the acknowledgment, the window in bytes,
// the options of a SYN and any SACK blocks.
func SegmentLabel(s *flow.Segment, o LabelOptions) string {
	var b strings.Builder
	b.WriteString(flagLetters(s.Flags))
	seq := func(off int64, abs craft.Seq) string {
		if o.Absolute {
			return fmt.Sprint(uint32(abs))
		}
		return fmt.Sprint(off)
	}
	switch {
	case s.Len > 0:
		start := s.SeqOff
		abs := s.Seq
		if s.Flags.Has(craft.FlagSYN) {
			start++
			abs = abs.Add(1)
		}
		if o.Absolute {
			fmt.Fprintf(&b, " seq %d:%d(%d)", uint32(abs), uint32(abs.Add(craft.Size(s.Len))), s.Len)
		} else {
			fmt.Fprintf(&b, " seq %d:%d(%d)", start, start+int64(s.Len), s.Len)
		}
	case s.Flags&(craft.FlagSYN|craft.FlagFIN|craft.FlagRST) != 0:
		b.WriteString(" seq " + seq(s.SeqOff, s.Seq))
	}
	if s.Flags.Has(craft.FlagACK) {
		b.WriteString(" ack " + seq(s.AckOff, s.Ack))
	}
	if !o.NoWindow && !s.Flags.Has(craft.FlagRST) {
		fmt.Fprintf(&b, " win %d", s.WindowBytes)
	}
	if s.Flags.Has(craft.FlagSYN) {
		var opts []string
		if s.MSS >= 0 {
			opts = append(opts, fmt.Sprintf("mss %d", s.MSS))
		}
		if s.SACKPermitted {
			opts = append(opts, "sack")
		}
		if s.TSOption {
			opts = append(opts, "ts")
		}
		if s.WScale >= 0 {
			opts = append(opts, fmt.Sprintf("ws %d", s.WScale))
		}
		if len(opts) > 0 {
			b.WriteString(" <" + strings.Join(opts, ",") + ">")
		}
	}
	if len(s.SACK) > 0 && !o.Absolute {
		var blocks []string
		for _, r := range s.SACK {
			blocks = append(blocks, fmt.Sprintf("%d-%d", r.Start, r.End))
		}
		b.WriteString(" sack " + strings.Join(blocks, ","))
	}
	return b.String()
}

// flagLetters is tcpdump's flag notation without brackets: "S", "S.", "P.",
// "F.", "R", "." for a bare ACK.
func flagLetters(f craft.Flags) string {
	return string(craft.AppendFlags(nil, f&(craft.FlagFIN|craft.FlagSYN|craft.FlagRST|craft.FlagPSH|craft.FlagACK|craft.FlagURG|craft.FlagECE|craft.FlagCWR)))
}

// StateName is the short name of a state as RFC 9293's Figure 5 prints it
// where room is tight ("ESTAB", "SYN-RCVD"), the full name otherwise.
func StateName(s fsm.State, short bool) string {
	if !short {
		return s.String()
	}
	switch s {
	case fsm.Established:
		return "ESTAB"
	case fsm.SynReceived:
		return "SYN-RCVD"
	}
	return s.String()
}

// PathString joins a state path with arrows: "CLOSED>SYN-SENT>ESTAB".
func PathString(path []fsm.State, sep string) string {
	var parts []string
	for _, s := range path {
		parts = append(parts, StateName(s, true))
	}
	return strings.Join(parts, sep)
}

// endpointLabel names one end for headings: "client 10.0.2.21:40000".
func endpointLabel(c *flow.Conn, side flow.Side) string {
	return fmt.Sprintf("%s %s", side, c.Addr[side])
}
