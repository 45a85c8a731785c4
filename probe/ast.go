package probe

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// SyntaxError is a script that does not parse: where and what was expected.
type SyntaxError struct {
	File string
	Pos  Pos
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Pos.Line, e.Pos.Col, e.Msg)
}

// Script is a parsed script.
type Script struct {
	Path    string
	Options []ScriptOption
	// Init is a backquoted command before the first event (run before the
	// clock starts) and Cleanup one after the last (run even when the
	// script fails), as in packetdrill; nil when absent.
	Init, Cleanup *Shell
	Events        []*Event
	// Unsupported is the first construct that parsed but cannot run
	// (a TCP Fast Open option, IP header fields); Validate reports it.
	Unsupported *ScriptError
}

// ScriptOption is a "--name=value" line at the top of a script (packetdrill
// command-line options given in the script itself).
type ScriptOption struct {
	Pos   Pos
	Name  string // without the leading "--"
	Value string
}

// TimeKind says how an event's time is written.
type TimeKind int

const (
	TimeAbsolute      TimeKind = iota // 0.1: since the script's start
	TimeRelative                      // +0.1: since the previous event
	TimeAny                           // *: whenever (outbound packets only)
	TimeAbsoluteRange                 // 0.1~0.2
	TimeRelativeRange                 // +0.1~+0.2
)

// EventTime is the time written before an event.
type EventTime struct {
	Kind       TimeKind
	Start, End time.Duration // End only for the range kinds
}

func (t EventTime) String() string {
	s := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }
	switch t.Kind {
	case TimeRelative:
		return "+" + s(t.Start)
	case TimeAny:
		return "*"
	case TimeAbsoluteRange:
		return s(t.Start) + "~" + s(t.End)
	case TimeRelativeRange:
		return "+" + s(t.Start) + "~+" + s(t.End)
	}
	return s(t.Start)
}

// Event is one line of the script: exactly one of Packet, Syscall, Shell
// and Code is set.
type Event struct {
	Pos     Pos // where the event's time starts
	Time    EventTime
	Packet  *Packet
	Syscall *Syscall
	Shell   *Shell
	Code    *Code
}

// Code is a packetdrill %{ python }% block: assertions over the socket under
// test's TCP_INFO (see codeblock.go).
type Code struct {
	Text string
}

// Direction says who sends a packet.
type Direction int

const (
	// Inbound ("<"): tcpcraft sends the packet to the kernel under test.
	Inbound Direction = iota
	// Outbound (">"): the kernel under test sends it; tcpcraft checks it.
	Outbound
)

// Packet is a packet line.
type Packet struct {
	Pos       Pos
	Dir       Direction
	FlagsText string // as written, e.g. "S." or "P."
	Flags     craft.Flags
	// Seq is the start sequence number as written and Len the payload
	// length ("start:end(len)").
	Seq uint32
	Len int
	// Ack is the acknowledgement number ("ack N"); it is used when the
	// ACK flag (".") is set.
	Ack uint32
	// Window is "win N", or -1 when absent (an outbound packet's window
	// is then not checked).
	Window int32
	Urgent uint16
	// Options are the options as written; AnyOptions is "<...>" (not
	// checked). No options written means "no options".
	Options    []craft.Option
	AnyOptions bool
	// SrcPort and DstPort are the optional "SRC>DST" ports written before
	// the flags; zero means the connection's ports.
	SrcPort, DstPort uint16
	// IP are the IP header fields written in ( ) or [ ] after the
	// direction: "[ect0]", "(tos 0x10)", "[ttl 1]", "(flowlabel 0x12345)".
	IP IPFields
	// ICMP is set for an ICMP line, "< icmp unreachable frag_needed mtu
	// 1200 [1:1001(1000)]"; the TCP fields above are then unused.
	ICMP *ICMPSpec
}

// ECN is an IP line's check (outbound) or value (inbound) of the ECN bits.
type ECN int

const (
	ECNUnset ECN = iota // not written
	ECNNone             // [noecn]: 00
	ECNECT1             // [ect1]: 01
	ECNECT0             // [ect0]: 10
	ECNCE               // [ce]: 11
	ECNECT01            // [ect01]: 01 or 10 (outbound only)
)

// IPFields are packetdrill's ip_info: TOS or ECN, TTL (hop limit), flow
// label (IPv6).
type IPFields struct {
	ECN          ECN
	HasTOS       bool
	TOS          uint8
	TTL          uint8 // 0: not written
	HasFlowLabel bool
	FlowLabel    uint32
}

// String renders the fields as written, "[ect0]" or "[tos 0x10,flowlabel
// 0x1]"; "" when none is.
func (f IPFields) String() string {
	var parts []string
	if name := map[ECN]string{ECNNone: "noecn", ECNECT1: "ect1", ECNECT0: "ect0", ECNCE: "ce", ECNECT01: "ect01"}[f.ECN]; name != "" {
		parts = append(parts, name)
	}
	if f.HasTOS {
		parts = append(parts, fmt.Sprintf("tos 0x%x", f.TOS))
	}
	if f.TTL != 0 {
		parts = append(parts, fmt.Sprintf("ttl %d", f.TTL))
	}
	if f.HasFlowLabel {
		parts = append(parts, fmt.Sprintf("flowlabel 0x%x", f.FlowLabel))
	}
	if len(parts) == 0 {
		return ""
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// ICMPSpec is an ICMP line: the type and code as named (packetdrill's
// names; resolved for the run's IP version when it runs), the MTU of
// frag_needed / packet_too_big (-1: none), and the quoted segment.
type ICMPSpec struct {
	Type, Code string
	MTU        int64
	// Quoted: "tcp" (a TCP segment of the connection: Seq, Len), "udp"
	// or "raw" (Len bytes), or "" (none written: a TCP segment at 0).
	Quoted string
	Seq    uint32
	Len    int
}

// Syscall is a system call line.
type Syscall struct {
	NamePos Pos
	Name    string
	Args    []Expr
	// Blocking is set for "...END name(...)": the call is expected to
	// block and to return at End (script time).
	Blocking bool
	End      EventTime
	Result   Expr
	Errno    string // "EINPROGRESS", or "" for none
	Note     string // the free text in parentheses after the result
}

// Shell is a `backquoted` command.
type Shell struct {
	Pos     Pos
	Command string
}

// Expr is an argument or result expression of a system call.
type Expr interface {
	ExprPos() Pos
	String() string
}

// Ellipsis is "...": a value tcpcraft fills in (an address, a buffer).
type Ellipsis struct{ P Pos }

// IntExpr is an integer literal.
type IntExpr struct {
	P     Pos
	Value int64
	Text  string
}

// WordExpr is a symbol such as AF_INET or SOCK_STREAM.
type WordExpr struct {
	P    Pos
	Name string
}

// StringExpr is a string literal; Ellipsis marks `"abc"...`.
type StringExpr struct {
	P        Pos
	Value    string
	Ellipsis bool
}

// ListExpr is "[a, b]" (Open '[') or "{a, b}" (Open '{').
type ListExpr struct {
	P     Pos
	Open  byte
	Elems []Expr
}

// BinaryExpr is "a|b" (bitwise or) or "name=value" (a struct field).
type BinaryExpr struct {
	P     Pos
	Op    string
	Left  Expr
	Right Expr
}

// CallExpr is "htons(8080)" or `inet_addr("10.0.2.20")`.
type CallExpr struct {
	P    Pos
	Name string
	Args []Expr
}

func (e *Ellipsis) ExprPos() Pos   { return e.P }
func (e *IntExpr) ExprPos() Pos    { return e.P }
func (e *WordExpr) ExprPos() Pos   { return e.P }
func (e *StringExpr) ExprPos() Pos { return e.P }
func (e *ListExpr) ExprPos() Pos   { return e.P }
func (e *BinaryExpr) ExprPos() Pos { return e.P }
func (e *CallExpr) ExprPos() Pos   { return e.P }

func (e *Ellipsis) String() string { return "..." }
func (e *IntExpr) String() string  { return e.Text }
func (e *WordExpr) String() string { return e.Name }
func (e *StringExpr) String() string {
	if e.Ellipsis {
		return strconv.Quote(e.Value) + "..."
	}
	return strconv.Quote(e.Value)
}
func (e *ListExpr) String() string {
	closer := "]"
	if e.Open == '{' {
		closer = "}"
	}
	return string(e.Open) + joinExprs(e.Elems) + closer
}
func (e *BinaryExpr) String() string { return e.Left.String() + e.Op + e.Right.String() }
func (e *CallExpr) String() string   { return e.Name + "(" + joinExprs(e.Args) + ")" }

func joinExprs(list []Expr) string {
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = e.String()
	}
	return strings.Join(parts, ", ")
}

// String renders a packet in script syntax, e.g. "> S. 0:0(0) ack 1 <mss 1460>".
func (p *Packet) String() string {
	var b strings.Builder
	if p.Dir == Inbound {
		b.WriteString("< ")
	} else {
		b.WriteString("> ")
	}
	if ip := p.IP.String(); ip != "" {
		b.WriteString(ip + " ")
	}
	if c := p.ICMP; c != nil {
		b.WriteString("icmp " + c.Type)
		if c.Code != "" {
			b.WriteString(" " + c.Code)
		}
		if c.MTU >= 0 {
			fmt.Fprintf(&b, " mtu %d", c.MTU)
		}
		switch c.Quoted {
		case "tcp":
			fmt.Fprintf(&b, " [%d:%d(%d)]", c.Seq, c.Seq+uint32(c.Len), c.Len)
		case "udp", "raw":
			fmt.Fprintf(&b, " [%s (%d)]", c.Quoted, c.Len)
		}
		return b.String()
	}
	if p.SrcPort != 0 || p.DstPort != 0 {
		fmt.Fprintf(&b, "%d>%d ", p.SrcPort, p.DstPort)
	}
	b.WriteString(scriptFlags(p.Flags))
	fmt.Fprintf(&b, " %d:%d(%d)", p.Seq, p.Seq+uint32(p.Len), p.Len)
	if p.Flags.Has(craft.FlagACK) {
		fmt.Fprintf(&b, " ack %d", p.Ack)
	}
	if p.Window >= 0 {
		fmt.Fprintf(&b, " win %d", p.Window)
	}
	if p.Urgent != 0 {
		fmt.Fprintf(&b, " urg %d", p.Urgent)
	}
	switch {
	case p.AnyOptions:
		b.WriteString(" <...>")
	case len(p.Options) > 0:
		b.WriteString(" " + scriptOptions(p.Options))
	}
	return b.String()
}

// scriptFlags renders flags as packetdrill writes them (craft's
// packetdrill notation): letters in the order S F R P U E W A, then "."
// for ACK; "-" for none.
func scriptFlags(f craft.Flags) string {
	return string(craft.AppendFlagsText(nil, f, craft.NotationPacketdrill))
}

// scriptOptions renders options in script syntax: "<mss 1460,sackOK,...>".
func scriptOptions(opts []craft.Option) string {
	return "<" + string(craft.AppendOptionsText(nil, opts, craft.NotationPacketdrill)) + ">"
}
