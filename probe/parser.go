package probe

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Parse parses a script. path is used in error messages. Any error is a
// *SyntaxError naming the line and column and what was expected there.
func Parse(path string, src []byte) (*Script, error) {
	return ParseDefines(path, src, nil)
}

// ParseDefines is Parse with packetdrill's -D NAME=VALUE definitions: a
// word NAME in the script reads as VALUE — a number, a "string", a
// `command` or another word (packetdrill's lexer does the same).
func ParseDefines(path string, src []byte, defines map[string]string) (*Script, error) {
	lx := newLexer(path, src)
	lx.defines = defines
	p := &parser{lx: lx, file: path}
	s, err := p.script()
	if err != nil {
		return nil, err
	}
	s.Path = path
	return s, nil
}

// parser is a recursive-descent parser with one token of lookahead, which
// the grammar (packetdrill's, free-form like its yacc grammar) needs: every
// event starts with a time, so an event ends where a time begins.
type parser struct {
	lx   *lexer
	file string
	tok  token
	// unsupported is the first construct the grammar accepts but tcpcraft
	// cannot run; it becomes Script.Unsupported.
	unsupported *ScriptError
}

// errSyntax is panicked with inside the parser and recovered in script,
// which keeps the many small parse functions free of error plumbing.
type errSyntax struct{ err *SyntaxError }

func (p *parser) advance() {
	p.tok = p.lx.next()
	if p.lx.err != nil {
		panic(errSyntax{p.lx.err})
	}
}

func (p *parser) failAt(pos Pos, format string, args ...any) {
	panic(errSyntax{&SyntaxError{File: p.file, Pos: pos, Msg: fmt.Sprintf(format, args...)}})
}

// expected reports "expected WHAT, found <current token>".
func (p *parser) expected(what string) {
	p.failAt(p.tok.pos, "expected %s, found %s", what, p.tok.describe())
}

func (p *parser) isPunct(s string) bool { return p.tok.kind == tokPunct && p.tok.text == s }
func (p *parser) isWord(s string) bool  { return p.tok.kind == tokWord && p.tok.text == s }

func (p *parser) expectPunct(s, what string) Pos {
	if !p.isPunct(s) {
		p.expected(what)
	}
	pos := p.tok.pos
	p.advance()
	return pos
}

// integer reads an integer token in [lo, hi], naming what it is.
func (p *parser) integer(what string, lo, hi int64) int64 {
	if p.tok.kind != tokInt {
		p.expected(what)
	}
	v := p.tok.num
	if v < lo || v > hi {
		p.failAt(p.tok.pos, "%s %s out of range (%d to %d)", what, p.tok.text, lo, hi)
	}
	p.advance()
	return v
}

func (p *parser) script() (s *Script, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(errSyntax)
			if !ok {
				panic(r)
			}
			s, err = nil, e.err
		}
	}()
	p.advance()
	s = &Script{}
	for p.tok.kind == tokOption {
		s.Options = append(s.Options, p.option())
	}
	if p.tok.kind == tokCommand {
		// packetdrill's init command: a backquoted line before the first
		// event, without a time, run before the script's clock starts.
		s.Init = &Shell{Pos: p.tok.pos, Command: p.tok.text}
		p.advance()
	}
	for p.tok.kind != tokEOF {
		if p.tok.kind == tokOption {
			p.failAt(p.tok.pos, "option %s must come before the first event", p.tok.text)
		}
		if p.tok.kind == tokCommand && len(s.Events) > 0 {
			// The cleanup command: a backquoted line after the last
			// event, without a time; it runs even when the script fails.
			s.Cleanup = &Shell{Pos: p.tok.pos, Command: p.tok.text}
			p.advance()
			if p.tok.kind != tokEOF {
				p.failAt(s.Cleanup.Pos, "a backquoted command without a time must be the first or the last line (init or cleanup command); give it a time (e.g. +0) to run it as an event")
			}
			break
		}
		s.Events = append(s.Events, p.event())
	}
	if len(s.Events) == 0 {
		p.expected("an event (a time such as 0 or +.1, then a packet, system call or `command`)")
	}
	if p.unsupported != nil {
		s.Unsupported = &ScriptError{Path: p.file, Pos: p.unsupported.Pos, Msg: p.unsupported.Msg}
	}
	if first := s.Events[0]; first.Time.Start != 0 || (first.Time.Kind != TimeAbsolute && first.Time.Kind != TimeRelative) {
		p.failAt(first.Pos, "the first event must be at time 0, not %s", first.Time)
	}
	return s, nil
}

func (p *parser) option() ScriptOption {
	t := p.tok
	name, value, hasValue := strings.Cut(strings.TrimPrefix(t.text, "--"), "=")
	if hasValue && value == "" {
		p.failAt(t.pos, "expected a value after %s", t.text)
	}
	p.advance()
	return ScriptOption{Pos: t.pos, Name: name, Value: value}
}

func (p *parser) event() *Event {
	ev := &Event{Pos: p.tok.pos}
	ev.Time = p.eventTime()
	switch {
	case p.isPunct("<") || p.isPunct(">"):
		ev.Packet = p.packet()
	case p.tok.kind == tokCommand:
		ev.Shell = &Shell{Pos: p.tok.pos, Command: p.tok.text}
		p.advance()
	case p.tok.kind == tokEllipsis || p.tok.kind == tokWord:
		ev.Syscall = p.syscall()
	case p.tok.kind == tokCode:
		// Run at its time over the socket under test's TCP_INFO.
		ev.Code = &Code{Text: strings.TrimSuffix(strings.TrimPrefix(p.tok.text, "%{"), "}%")}
		p.advance()
	default:
		p.expected("a packet (< or >), a system call or a `command`")
	}
	rangeOrAny := ev.Time.Kind == TimeAny || ev.Time.Kind == TimeAbsoluteRange || ev.Time.Kind == TimeRelativeRange
	if rangeOrAny && (ev.Packet == nil || ev.Packet.Dir != Outbound) {
		what := "a time range"
		if ev.Time.Kind == TimeAny {
			what = "time *"
		}
		p.failAt(ev.Pos, "%s can only be used with outbound (>) packets", what)
	}
	return ev
}

// eventTime reads 0.1, +0.1, *, 0.1~0.2 or +0.1~+0.2.
func (p *parser) eventTime() EventTime {
	const what = "an event time (such as 0, +.1, 0.1~0.2 or *)"
	switch {
	case p.isPunct("*"):
		p.advance()
		return EventTime{Kind: TimeAny}
	case p.isPunct("+"):
		p.advance()
		start := p.time(what)
		if !p.isPunct("~") {
			return EventTime{Kind: TimeRelative, Start: start}
		}
		tildePos := p.tok.pos
		p.advance()
		p.expectPunct("+", `"+" after "~" in a relative time range (+a~+b)`)
		end := p.time("the end of the time range")
		if end < start {
			p.failAt(tildePos, "time range is backwards")
		}
		return EventTime{Kind: TimeRelativeRange, Start: start, End: end}
	case p.tok.kind == tokInt || p.tok.kind == tokFloat:
		start := p.time(what)
		if !p.isPunct("~") {
			return EventTime{Kind: TimeAbsolute, Start: start}
		}
		tildePos := p.tok.pos
		p.advance()
		end := p.time("the end of the time range")
		if end < start {
			p.failAt(tildePos, "time range is backwards")
		}
		return EventTime{Kind: TimeAbsoluteRange, Start: start, End: end}
	}
	p.expected(what)
	return EventTime{}
}

// time reads a non-negative number of seconds.
func (p *parser) time(what string) time.Duration {
	if p.tok.kind != tokInt && p.tok.kind != tokFloat {
		p.expected(what)
	}
	v, err := strconv.ParseFloat(p.tok.text, 64)
	if err != nil || math.IsNaN(v) {
		p.failAt(p.tok.pos, "bad time %s", p.tok.text)
	}
	if v < 0 {
		p.failAt(p.tok.pos, "negative time %s", p.tok.text)
	}
	if v > 1e6 {
		p.failAt(p.tok.pos, "time %s is more than 10^6 seconds", p.tok.text)
	}
	p.advance()
	return time.Duration(math.Round(v*1e6)) * time.Microsecond
}

// packet reads "< FLAGS start:end(len) [ack N] [win N] [urg N] [<options>]".
func (p *parser) packet() *Packet {
	pk := &Packet{Pos: p.tok.pos, Window: -1}
	if p.tok.text == ">" {
		pk.Dir = Outbound
	}
	p.advance()
	if p.isPunct("(") || p.isPunct("[") {
		pk.IP = p.ipFields(pk)
	}
	if p.isWord("icmp") {
		p.icmp(pk)
		return pk
	}
	if p.tok.kind == tokWord && (p.tok.text == "udp" || p.tok.text == "GREv0" || p.tok.text == "gre" || p.tok.text == "mpls" || p.tok.text == "encap" || p.tok.text == "ipv4" || p.tok.text == "ipv6") {
		// Well-formed packetdrill that tcpcraft cannot play: refused by
		// Validate (a FAIL, exit 1), not a syntax error.
		if p.unsupported == nil {
			p.unsupported = &ScriptError{Path: p.file, Pos: p.tok.pos, Msg: fmt.Sprintf("%s packets are not supported (TCP and ICMP only)", p.tok.text)}
		}
		p.skipEvent(pk.Pos.Line)
		return pk
	}
	if p.tok.kind == tokInt {
		pk.SrcPort = uint16(p.integer("a source port", 1, 65535))
		p.expectPunct(">", `">" between the ports (SRC>DST)`)
		pk.DstPort = uint16(p.integer("a destination port", 1, 65535))
	}
	pk.Flags, pk.FlagsText = p.flags()

	// start:end(len)
	start := p.integer("the start sequence number (start:end(len))", 0, math.MaxUint32)
	p.expectPunct(":", `":" in start:end(len)`)
	endPos := p.tok.pos
	end := p.integer("the end sequence number (start:end(len))", 0, math.MaxUint32)
	p.expectPunct("(", `"(" in start:end(len)`)
	lenPos := p.tok.pos
	n := p.integer("the payload length (start:end(len))", 0, math.MaxUint16)
	p.expectPunct(")", `")" in start:end(len)`)
	if end != start+n {
		if end < start {
			p.failAt(endPos, "end sequence number %d is before start %d", end, start)
		}
		p.failAt(lenPos, "inconsistent sequence numbers and payload length: %d:%d is %d bytes, not %d", start, end, end-start, n)
	}
	pk.Seq, pk.Len = uint32(start), int(n)

	seen := map[string]bool{}
	for p.tok.kind == tokWord && (p.tok.text == "ack" || p.tok.text == "win" || p.tok.text == "urg") {
		kw := p.tok.text
		if seen[kw] {
			p.failAt(p.tok.pos, "%q given twice", kw)
		}
		seen[kw] = true
		p.advance()
		switch kw {
		case "ack":
			pk.Ack = uint32(p.integer("the acknowledgement number after ack", 0, math.MaxUint32))
		case "win":
			pk.Window = int32(p.integer("the window after win", 0, math.MaxUint16))
		case "urg":
			pk.Urgent = uint16(p.integer("the urgent pointer after urg", 0, math.MaxUint16))
		}
	}
	if p.isPunct("<") {
		p.options(pk)
	}
	if pk.Dir == Inbound && pk.Window < 0 {
		// packetdrill's rule too: tcpcraft builds the packet and needs a
		// value for every field it sends.
		p.failAt(pk.Pos, "an inbound (<) packet needs a window (win N)")
	}
	return pk
}

// ipFields reads packetdrill's ip_info in ( ) or [ ]: a TOS spec (noecn,
// ect0, ect1, ce, ect01 or tos 0xNN), a flow label (flowlabel 0xNNNNN),
// a TOS spec and a flow label, or ttl N.
func (p *parser) ipFields(pk *Packet) IPFields {
	closer := ")"
	if p.tok.text == "[" {
		closer = "]"
	}
	p.advance()
	var f IPFields
	const what = "IP fields (noecn, ect0, ect1, ce, ect01, tos 0xNN, flowlabel 0xNNNNN or ttl N)"
	for first := true; ; first = false {
		if !first {
			if !p.isPunct(",") {
				break
			}
			p.advance()
		}
		if p.tok.kind != tokWord {
			p.expected(what)
		}
		pos := p.tok.pos
		switch w := p.tok.text; w {
		case "noecn", "ect0", "ect1", "ce", "ect01":
			f.ECN = map[string]ECN{"noecn": ECNNone, "ect0": ECNECT0, "ect1": ECNECT1, "ce": ECNCE, "ect01": ECNECT01}[w]
			if f.ECN == ECNECT01 && pk.Dir == Inbound {
				p.failAt(pos, "[ect01] can only be used with outbound packets")
			}
			p.advance()
		case "tos":
			p.advance()
			f.HasTOS, f.TOS = true, uint8(p.integer("the TOS byte after tos", 0, 255))
		case "flowlabel":
			p.advance()
			f.HasFlowLabel, f.FlowLabel = true, uint32(p.integer("the flow label after flowlabel", 0, 1<<20-1))
		case "ttl":
			p.advance()
			f.TTL = uint8(p.integer("the TTL after ttl", 1, 255))
		default:
			p.expected(what)
		}
	}
	p.expectPunct(closer, fmt.Sprintf("%q after the IP fields", closer))
	return f
}

// icmp reads the rest of an ICMP line: "icmp TYPE [CODE] [mtu N] [id N]
// [[start:end(len)] | [udp (N)] | [raw (N)]]".
func (p *parser) icmp(pk *Packet) {
	p.advance()
	if p.tok.kind != tokWord {
		p.expected("an ICMP type (unreachable, time_exceeded, packet_too_big, ...)")
	}
	c := &ICMPSpec{Type: p.tok.text, MTU: -1}
	pk.ICMP = c
	p.advance()
	if p.tok.kind == tokWord && p.tok.text != "mtu" && p.tok.text != "id" {
		c.Code = p.tok.text
		p.advance()
	}
	if p.isWord("mtu") {
		p.advance()
		c.MTU = p.integer("the MTU after mtu", 0, 65535)
	}
	if p.isWord("id") {
		p.advance()
		p.integer("the echo id after id", 0, 65535)
	}
	if !p.isPunct("[") {
		return
	}
	p.advance()
	switch {
	case p.isWord("udp") || p.isWord("raw"):
		c.Quoted = p.tok.text
		p.advance()
		p.expectPunct("(", `"(" and the length`)
		c.Len = int(p.integer("the quoted length", 0, math.MaxUint16))
		p.expectPunct(")", `")" after the length`)
	default:
		c.Quoted = "tcp"
		start := p.integer("the quoted segment (start:end(len))", 0, math.MaxUint32)
		p.expectPunct(":", `":" in start:end(len)`)
		end := p.integer("the end sequence number (start:end(len))", 0, math.MaxUint32)
		p.expectPunct("(", `"(" in start:end(len)`)
		lenPos := p.tok.pos
		n := p.integer("the payload length (start:end(len))", 0, math.MaxUint16)
		p.expectPunct(")", `")" in start:end(len)`)
		if end != start+n {
			p.failAt(lenPos, "inconsistent sequence numbers and payload length: %d:%d is %d bytes, not %d", start, end, end-start, n)
		}
		c.Seq, c.Len = uint32(start), int(n)
	}
	p.expectPunct("]", `"]" after the quoted segment`)
}

// skipEvent skips the rest of an event that started on line: tokens up to
// the first one on a later line that can start an event (a time, a
// backquoted command) or the end.
func (p *parser) skipEvent(line int) {
	for p.tok.kind != tokEOF {
		if p.tok.pos.Line > line && (p.tok.kind == tokInt || p.tok.kind == tokFloat || p.isPunct("+") || p.isPunct("*") || p.tok.kind == tokCommand) {
			return
		}
		p.advance()
	}
}

// flags reads the packet flags as packetdrill's grammar has them: a word
// of flag letters optionally followed by "." (ACK) or by ".N" (ACK and an
// AccECN ACE value), a lone "." or ".N", or "-" (no flags). The letters
// themselves are craft's packetdrill notation.
func (p *parser) flags() (craft.Flags, string) {
	const what = `TCP flags (S, F, R, P, U, E, W, A and . for ACK, or - for none)`
	var parts []token
	switch {
	case p.isPunct(".") || p.isPunct("-"):
		parts = append(parts, p.tok)
		p.advance()
	case p.tok.kind == tokFloat && strings.HasPrefix(p.tok.text, "."):
		parts = append(parts, p.tok)
		p.advance()
	case p.tok.kind == tokWord:
		parts = append(parts, p.tok)
		p.advance()
		// "S." (a start sequence number always follows, so a "." here
		// is ACK), or "S.1" (ACK and the ACE field).
		if p.isPunct(".") || (p.tok.kind == tokFloat && strings.HasPrefix(p.tok.text, ".")) {
			parts = append(parts, p.tok)
			p.advance()
		}
	default:
		p.expected(what)
	}
	text, at := joinTokens(parts, true)
	f, err := craft.ParseFlags(text, craft.NotationPacketdrill)
	if err != nil {
		var ge *craft.GrammarError
		if errors.As(err, &ge) {
			p.failAt(at(ge.Offset, p.tok.pos), "%v", err)
		}
		p.failAt(parts[0].pos, "%v", err)
	}
	return f, text
}

// joinTokens rebuilds source text from tokens: one space where the source
// had white space or a comment between two tokens, none where they touch
// (so "1:2" and "0123abcd" come back whole). at maps an offset in the text
// back to a position in the script (end, the token after the last, for
// offsets past it).
func joinTokens(toks []token, touching bool) (string, func(off int, end Pos) Pos) {
	var b strings.Builder
	starts := make([]int, len(toks))
	for i, t := range toks {
		if i > 0 && !touching {
			prev := toks[i-1]
			if prev.pos.Line != t.pos.Line || prev.pos.Col+len(prev.text) != t.pos.Col {
				b.WriteByte(' ')
			}
		}
		starts[i] = b.Len()
		b.WriteString(t.text)
	}
	return b.String(), func(off int, end Pos) Pos {
		for i := len(toks) - 1; i >= 0; i-- {
			if off < starts[i] {
				continue
			}
			if d := off - starts[i]; d < len(toks[i].text) {
				return Pos{toks[i].pos.Line, toks[i].pos.Col + d}
			}
			if i+1 < len(toks) {
				return toks[i+1].pos
			}
			return end
		}
		if len(toks) > 0 {
			return toks[0].pos
		}
		return end
	}
}

// options reads "<...>" or "<opt, opt, ...>". The list is craft's
// packetdrill notation of the options grammar; this function only finds
// where the list ends and maps craft's error offsets to script positions.
func (p *parser) options(pk *Packet) {
	open := p.tok.pos
	p.advance()
	if p.tok.kind == tokEllipsis {
		if pk.Dir == Inbound {
			p.failAt(p.tok.pos, "<...> (options not checked) is only meaningful for outbound (>) packets; write the options tcpcraft should send")
		}
		p.advance()
		p.expectPunct(">", `">" after <...`)
		pk.AnyOptions = true
		return
	}
	// Option lists hold names, numbers, hex words, "," and ":".
	var toks []token
	for p.tok.kind == tokWord || p.tok.kind == tokInt || p.isPunct(",") || p.isPunct(":") {
		toks = append(toks, p.tok)
		p.advance()
	}
	text, at := joinTokens(toks, false)
	opts, err := craft.ParseOptions(text, craft.NotationPacketdrill)
	if err != nil {
		var ge *craft.GrammarError
		if !errors.As(err, &ge) {
			p.failAt(open, "bad TCP options: %v", err)
		}
		pos := at(ge.Offset, p.tok.pos)
		if !ge.Unsupported {
			p.failAt(pos, "%v", err)
		}
		// Valid in a packetdrill fork, not something tcpcraft can build
		// or check: skip to the end of the list and let Validate refuse
		// the script (a FAIL, not a syntax error).
		for p.tok.kind != tokEOF && !p.isPunct(">") {
			p.advance()
		}
		p.expectPunct(">", `">" to end the TCP option list`)
		if p.unsupported == nil {
			p.unsupported = &ScriptError{Path: p.file, Pos: pos, Msg: ge.Msg}
		}
		pk.Options = []craft.Option{{Kind: craft.OptNOP}}
		return
	}
	p.expectPunct(">", `"," or ">" in the TCP option list`)
	// md5 (RFC 2385) is sent as written and an expected one checked by
	// its length (the digest needs the socket's key); Fast Open options
	// (FO, FOEXP) are built and compared as written.
	pk.Options = opts
	if n, err := craft.OptionsLen(pk.Options); err != nil {
		p.failAt(open, "bad TCP options: %v", err)
	} else if (n+3)/4*4 > craft.TCPMaxOptionsLen {
		p.failAt(open, "TCP options take %d bytes, more than the %d a header holds", n, craft.TCPMaxOptionsLen)
	}
}

// syscall reads "[...END] name(args) = result [ERRNO] [(note)]".
func (p *parser) syscall() *Syscall {
	sc := &Syscall{}
	if p.tok.kind == tokEllipsis {
		p.advance()
		sc.Blocking = true
		sc.End = EventTime{Kind: TimeAbsolute, Start: p.time("the end time of a blocking call (...END)")}
	}
	if p.tok.kind != tokWord {
		p.expected("a system call name")
	}
	sc.Name, sc.NamePos = p.tok.text, p.tok.pos
	p.advance()
	p.expectPunct("(", `"(" after the system call name`)
	if !p.isPunct(")") {
		sc.Args = p.exprList(")")
	}
	p.expectPunct(")", `"," or ")" in the argument list`)
	p.expectPunct("=", `"=" and the expected result`)
	sc.Result = p.expr()
	if p.tok.kind == tokWord {
		if !strings.HasPrefix(p.tok.text, "E") {
			p.expected("an errno name (such as EINPROGRESS) or the next event")
		}
		sc.Errno = p.tok.text
		p.advance()
	}
	if p.isPunct("(") {
		start := p.tok.pos
		note, ok := p.lx.rawUntil('(', ')')
		if !ok {
			p.failAt(start, "unterminated note: \"(\" without \")\" on the same line")
		}
		sc.Note = strings.TrimSpace(note)
		p.advance()
	}
	return sc
}

func (p *parser) exprList(closer string) []Expr {
	var list []Expr
	for {
		list = append(list, p.expr())
		if !p.isPunct(",") {
			return list
		}
		p.advance()
	}
}

// expr reads an expression: primaries joined by "|".
func (p *parser) expr() Expr {
	left := p.primary()
	for p.isPunct("|") {
		pos := p.tok.pos
		p.advance()
		right := p.primary()
		left = &BinaryExpr{P: pos, Op: "|", Left: left, Right: right}
	}
	return left
}

func (p *parser) primary() Expr {
	const what = "an expression (a number, a name, \"string\", ..., [list] or {struct})"
	t := p.tok
	switch {
	case t.kind == tokEllipsis:
		p.advance()
		return &Ellipsis{P: t.pos}
	case t.kind == tokInt:
		p.advance()
		return &IntExpr{P: t.pos, Value: t.num, Text: t.text}
	case t.kind == tokString:
		var b strings.Builder
		for p.tok.kind == tokString {
			b.WriteString(p.tok.text)
			p.advance()
		}
		s := &StringExpr{P: t.pos, Value: b.String()}
		if p.tok.kind == tokEllipsis {
			s.Ellipsis = true
			p.advance()
		}
		return s
	case t.kind == tokWord:
		p.advance()
		if p.isPunct("(") {
			p.advance()
			var args []Expr
			if !p.isPunct(")") {
				args = p.exprList(")")
			}
			p.expectPunct(")", `"," or ")" after the arguments of `+t.text)
			call := &CallExpr{P: t.pos, Name: t.text, Args: args}
			if p.isPunct("=") { // packetdrill's msg_name(...)=... field form
				pos := p.tok.pos
				p.advance()
				return &BinaryExpr{P: pos, Op: "=", Left: call, Right: p.expr()}
			}
			return call
		}
		if p.isPunct("=") {
			pos := p.tok.pos
			p.advance()
			return &BinaryExpr{P: pos, Op: "=", Left: &WordExpr{P: t.pos, Name: t.text}, Right: p.expr()}
		}
		return &WordExpr{P: t.pos, Name: t.text}
	case p.isPunct("[") || p.isPunct("{"):
		open := t.text[0]
		closer := "]"
		if open == '{' {
			closer = "}"
		}
		p.advance()
		l := &ListExpr{P: t.pos, Open: open}
		if !p.isPunct(closer) {
			l.Elems = p.exprList(closer)
		}
		p.expectPunct(closer, fmt.Sprintf(`"," or %q`, closer))
		return l
	}
	p.expected(what)
	return nil
}

// IsSyntaxError reports whether err is (or wraps) a *SyntaxError.
func IsSyntaxError(err error) bool {
	var se *SyntaxError
	return errors.As(err, &se)
}
