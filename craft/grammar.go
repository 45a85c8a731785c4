package craft

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// This file is the one grammar of TCP flags and options in text. The
// trace (Formatter), `tcpcraft send --flags/--opt` and the probe script
// parser all read and write flags and options through it, so a line the
// trace prints can be typed back, and a probe script means what it means
// to packetdrill.
//
// There are two notations. They agree on almost everything (packetdrill's
// option syntax was taken from tcpdump's), and differ where the tools they
// come from differ:
//
//   - NotationTcpdump is what the trace prints (tcpdump -nn's wording).
//     Parsing in this notation also takes packetdrill's spellings and the
//     aliases users of hping3, nmap and scapy type, case-insensitively:
//     `--flags SA`, `--flags syn,ack`, `--opt mss=1460`, `--opt ts=1:0`,
//     `--opt sack=1-100`.
//   - NotationPacketdrill is exactly packetdrill's script syntax (its
//     lexer.l and parser.y): case-sensitive names, decimal numbers, and
//     flag letters where "A" is the AE bit, not ACK.
//
// The tables (also in the README):
//
//	flag  tcpdump  packetdrill  also accepted (tcpdump notation)
//	FIN   F        F            f, fin
//	SYN   S        S            s, syn
//	RST   R        R            r, rst
//	PSH   P        P            p, psh
//	ACK   .        .            A, a, ack
//	URG   U        U            u, urg
//	ECE   E        E            e, ece
//	CWR   W        W            C, c, w, cwr
//	AE    ", ae"   A            N, n; ae, ns in a list (AE was NS, RFC 3540)
//	none  none     -            "", -, [none]
//
// Letters may be combined ("SA", "FPU") and are case-insensitive in the
// tcpdump notation; a trace's "[S.]" is taken with its brackets. Names
// are joined with ",", "+" or "|" ("syn,ack", "fin+psh+urg"). A lone
// three-letter name ("SYN") is a name, so "ECE" and "CWR" are those flags,
// not letters; a lone "ae" or "ns" is two letters. In packetdrill notation
// a letter may repeat (as there), and a digit 0-7 instead of E, W, A sets
// the three ECN bits as AccECN's ACE counter ("S.5").
//
//	option           tcpdump (trace)      packetdrill        also accepted
//	nop              nop                  nop
//	eol              eol                  eol
//	MSS              mss 1460             mss 1460           mss=1460, 0x hex numbers
//	window scale     wscale 7             wscale 7           ws=7, wscale=7
//	SACK permitted   sackOK               sackOK             sackok, sack_perm, sack-permitted
//	SACK             sack 2 {1:2}{5:9}    sack 1:2 5:9       sack=1-2,5-9, sack=1:2 5:9
//	timestamps       TS val 1 ecr 0       TS val 1 ecr 0     ts=1:0, timestamp=1:0
//	TCP MD5          unknown-19 0x…       md5 HEX            md5=HEX
//	Fast Open        unknown-34 0x…       FO [HEX]           fo=HEX, tfo=HEX
//	Fast Open (exp)  unknown-254 0xf989…  FOEXP [HEX]        foexp=HEX
//	any kind K       unknown-K 0xHEX                         raw=K:HEX
//	known kind, raw  mss 0x05b4ff[len 5]                     (the trace's form)
//	Linux's SYN set                                          linux (mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7)
//
// A list separates options with ",". SACK blocks count from the sequence
// numbers as given (the trace prints them relative unless -S/Absolute).

// Notation selects one of the grammar's two spellings; see the table
// above.
type Notation uint8

const (
	// NotationTcpdump is the trace's spelling; parsing in it also takes
	// packetdrill's spellings and the command line's aliases.
	NotationTcpdump Notation = iota
	// NotationPacketdrill is packetdrill's script syntax, exactly.
	NotationPacketdrill
)

// String returns "tcpdump" or "packetdrill".
func (n Notation) String() string {
	if n == NotationPacketdrill {
		return "packetdrill"
	}
	return "tcpdump"
}

// GrammarError is a flags or options text that does not follow the
// grammar. Its message names the item as written and what is wrong, e.g.
// "mss=99999: MSS must be 0-65535".
type GrammarError struct {
	// Input is the whole text given to the parser.
	Input string
	// Item is the flag word or option, as written, that is wrong.
	Item string
	// Offset is where in Input the error is (a byte offset; len(Input)
	// when the text ends too early).
	Offset int
	Msg    string
	// Unsupported marks an option that packetdrill's forks know (AccECN's
	// "ECN", "mptcp", "exp") but tcpcraft cannot build: valid syntax, not
	// a typing error.
	Unsupported bool
}

// Error returns "ITEM: MESSAGE", or MESSAGE when the item is empty.
func (e *GrammarError) Error() string {
	if e.Item == "" {
		return e.Msg
	}
	return e.Item + ": " + e.Msg
}

// flag names and letters of the tcpdump notation (parsing).
var flagNames = map[string]Flags{
	"fin": FlagFIN, "syn": FlagSYN, "rst": FlagRST, "psh": FlagPSH,
	"ack": FlagACK, "urg": FlagURG, "ece": FlagECE, "cwr": FlagCWR,
	"ae": FlagNS, "ns": FlagNS,
}

func tcpdumpFlagLetter(c byte) Flags {
	switch c {
	case 'F', 'f':
		return FlagFIN
	case 'S', 's':
		return FlagSYN
	case 'R', 'r':
		return FlagRST
	case 'P', 'p':
		return FlagPSH
	case '.', 'A', 'a':
		return FlagACK
	case 'U', 'u':
		return FlagURG
	case 'E', 'e':
		return FlagECE
	case 'W', 'w', 'C', 'c':
		return FlagCWR
	case 'N', 'n':
		return FlagNS
	}
	return 0
}

// ParseFlags reads TCP flags written in notation n; see the table at the
// top of this file. The error is a *GrammarError.
func ParseFlags(s string, n Notation) (Flags, error) {
	if n == NotationPacketdrill {
		return parsePacketdrillFlags(s)
	}
	word := strings.TrimSpace(s)
	off := strings.Index(s, word)
	// A pasted "[S.]" from a trace line.
	if len(word) >= 2 && word[0] == '[' && word[len(word)-1] == ']' {
		word = word[1 : len(word)-1]
		off++
	}
	switch strings.ToLower(word) {
	case "", "none", "-":
		return 0, nil
	}
	if strings.ContainsAny(word, ",+| ") {
		var f Flags
		pos := off
		for _, name := range strings.FieldsFunc(word, func(r rune) bool { return strings.ContainsRune(",+| ", r) }) {
			i := strings.Index(s[pos:], name) + pos
			bit, ok := flagNames[strings.ToLower(name)]
			if !ok && len(name) == 1 {
				bit, ok = tcpdumpFlagLetter(name[0]), tcpdumpFlagLetter(name[0]) != 0
			}
			if !ok {
				return 0, &GrammarError{Input: s, Item: word, Offset: i, Msg: fmt.Sprintf("unknown flag name %q (names: fin syn rst psh ack urg ece cwr ae)", name)}
			}
			f |= bit
			pos = i + len(name)
		}
		return f, nil
	}
	if bit, ok := flagNames[strings.ToLower(word)]; ok && len(word) == 3 {
		return bit, nil
	}
	var f Flags
	for i := 0; i < len(word); i++ {
		bit := tcpdumpFlagLetter(word[i])
		if bit == 0 {
			return 0, &GrammarError{Input: s, Item: word, Offset: off + i, Msg: fmt.Sprintf("unknown flag letter %q (letters: F S R P A or . U E W or C N, names: syn,ack..., or none)", word[i])}
		}
		f |= bit
	}
	return f, nil
}

// parsePacketdrillFlags reads packetdrill's flag word: letters from
// ".FSRPEWAU", "A" being AE, or a digit 0-7 for the ACE field in place of
// E, W and A (tcp_packet.c); "-" is no flag. Like packetdrill, a letter
// may repeat.
func parsePacketdrillFlags(s string) (Flags, error) {
	if s == "-" {
		return 0, nil
	}
	if s == "" {
		return 0, &GrammarError{Input: s, Offset: 0, Msg: "no TCP flags (write - for none)"}
	}
	var f Flags
	ecn, ace := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		var bit Flags
		switch c {
		case '.':
			bit = FlagACK
		case 'F':
			bit = FlagFIN
		case 'S':
			bit = FlagSYN
		case 'R':
			bit = FlagRST
		case 'P':
			bit = FlagPSH
		case 'U':
			bit = FlagURG
		case 'E':
			bit = FlagECE
		case 'W':
			bit = FlagCWR
		case 'A':
			bit = FlagNS
		case '0', '1', '2', '3', '4', '5', '6', '7':
			if ecn || ace {
				return 0, &GrammarError{Input: s, Item: s, Offset: i, Msg: fmt.Sprintf("conflicting TCP flag %q: one ACE digit, and not with E, W or A", c)}
			}
			ace = true
			v := c - '0'
			if v&1 != 0 {
				f |= FlagECE
			}
			if v&2 != 0 {
				f |= FlagCWR
			}
			if v&4 != 0 {
				f |= FlagNS
			}
			continue
		default:
			return 0, &GrammarError{Input: s, Item: s, Offset: i, Msg: fmt.Sprintf("invalid TCP flag %q (packetdrill's flags: S F R P U E W A and . for ACK, a digit 0-7 for ACE, or - for none)", c)}
		}
		if bit&(FlagECE|FlagCWR|FlagNS) != 0 {
			if ace {
				return 0, &GrammarError{Input: s, Item: s, Offset: i, Msg: fmt.Sprintf("conflicting TCP flag %q: E, W and A do not go with an ACE digit", c)}
			}
			ecn = true
		}
		f |= bit
	}
	return f, nil
}

// AppendFlagsText appends f in notation n: for NotationTcpdump the letters
// inside tcpdump's "Flags [...]" (see AppendFlags; AE and the reserved
// bits are not letters there), for NotationPacketdrill letters in the
// order S F R P U E W A, then "." for ACK, or "-" for none (the reserved
// bits have no spelling in packetdrill and are left out).
func AppendFlagsText(dst []byte, f Flags, n Notation) []byte {
	if n != NotationPacketdrill {
		return AppendFlags(dst, f)
	}
	start := len(dst)
	for _, fl := range [...]struct {
		f Flags
		c byte
	}{{FlagSYN, 'S'}, {FlagFIN, 'F'}, {FlagRST, 'R'}, {FlagPSH, 'P'}, {FlagURG, 'U'},
		{FlagECE, 'E'}, {FlagCWR, 'W'}, {FlagNS, 'A'}, {FlagACK, '.'}} {
		if f&fl.f != 0 {
			dst = append(dst, fl.c)
		}
	}
	if len(dst) == start {
		dst = append(dst, '-')
	}
	return dst
}

// AppendOptionsText appends opts in notation n, separated by ",", without
// brackets. SACK blocks are absolute. For NotationTcpdump each option is
// written as the trace writes it.
func AppendOptionsText(dst []byte, opts []Option, n Notation) []byte {
	for i := range opts {
		if i > 0 {
			dst = append(dst, ',')
		}
		if n == NotationPacketdrill {
			dst = appendPacketdrillOption(dst, &opts[i])
		} else {
			dst = appendOptionText(dst, &opts[i], 0)
		}
	}
	return dst
}

// Limits of the options packetdrill writes by name (its parser.y).
const (
	fastOpenMagic = 0xf989 // RFC 7413 §4.1.1, kind 254 (RFC 6994)
	// maxFastOpenCookie is what fits in the option space after kind and
	// length, packetdrill's limit: RFC 7413 §4.1.1 allows 4 to 16 bytes,
	// but scripts send longer cookies to see the kernel refuse them.
	maxFastOpenCookie     = TCPMaxOptionsLen - 2
	maxFastOpenExpCookie  = TCPMaxOptionsLen - 4
	maxMD5Digest          = 16
	maxRawOptionData      = TCPMaxOptionsLen - 2
	packetdrillOptionList = "mss N, wscale N, sackOK, sack L:R, TS val N ecr N, nop, eol, md5 HEX, FO [HEX], FOEXP [HEX]"
	tcpdumpOptionList     = "mss N, wscale N, sackOK, sack L:R, TS val N ecr N, nop, eol, md5 HEX, FO [HEX], unknown-K 0xHEX, raw=K:HEX, linux"
)

func appendPacketdrillOption(dst []byte, o *Option) []byte {
	if o.Data == nil || o.Kind == OptEOL {
		switch o.Kind {
		case OptEOL:
			return append(dst, "eol"...)
		case OptNOP:
			return append(dst, "nop"...)
		case OptMSS:
			return strconv.AppendUint(append(dst, "mss "...), uint64(o.MSS), 10)
		case OptWindowScale:
			return strconv.AppendUint(append(dst, "wscale "...), uint64(o.Shift), 10)
		case OptSACKPermitted:
			return append(dst, "sackOK"...)
		case OptSACK:
			dst = append(dst, "sack"...)
			for _, b := range o.Blocks {
				dst = append(dst, ' ')
				dst = strconv.AppendUint(dst, uint64(uint32(b.Left)), 10)
				dst = append(dst, ':')
				dst = strconv.AppendUint(dst, uint64(uint32(b.Right)), 10)
			}
			return dst
		case OptTimestamps:
			dst = strconv.AppendUint(append(dst, "TS val "...), uint64(o.TSVal), 10)
			return strconv.AppendUint(append(dst, " ecr "...), uint64(o.TSEcr), 10)
		}
	}
	switch {
	case o.Kind == OptMD5 && len(o.Data) > 0 && len(o.Data) <= maxMD5Digest:
		return hex.AppendEncode(append(dst, "md5 "...), o.Data)
	case o.Kind == OptFastOpen && len(o.Data) <= maxFastOpenCookie:
		dst = append(dst, "FO"...)
		if len(o.Data) > 0 {
			dst = hex.AppendEncode(append(dst, ' '), o.Data)
		}
		return dst
	case o.Kind == OptExperimental && len(o.Data) >= 2 && len(o.Data) <= 2+maxFastOpenExpCookie &&
		o.Data[0] == fastOpenMagic>>8 && o.Data[1] == fastOpenMagic&0xff:
		dst = append(dst, "FOEXP"...)
		if len(o.Data) > 2 {
			dst = hex.AppendEncode(append(dst, ' '), o.Data[2:])
		}
		return dst
	}
	// packetdrill has no spelling for other kinds; this one at least reads
	// back in the tcpdump notation.
	return appendOptionText(dst, o, 0)
}

// ParseOptions reads a list of TCP options written in notation n,
// separated by ","; see the table at the top of this file. The options
// are checked one by one (values in range, at most four SACK blocks); that
// the list fits in a header is left to the builder (TCP.HeaderLen), so a
// tester may write any list. The error is a *GrammarError.
func ParseOptions(s string, n Notation) ([]Option, error) {
	p := optParser{s: s, n: n}
	var out []Option
	for {
		p.space()
		start := p.i
		opts, err := p.option()
		if err != nil {
			return nil, err
		}
		out = append(out, opts...)
		p.space()
		if p.i == len(p.s) {
			return out, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.errAt(start, p.i, "expected \",\" or the end after the option, found %q", p.s[p.i])
		}
		p.i++
	}
}

// optParser is a cursor over an options text.
type optParser struct {
	s    string
	i    int
	n    Notation
	item int // start of the option being parsed
}

func (p *optParser) lenient() bool { return p.n != NotationPacketdrill }

func (p *optParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

// itemText returns the option being parsed as written: from its start to
// the next "," at the top level or the end (for messages).
func (p *optParser) itemText() string {
	end := p.item
	for end < len(p.s) && p.s[end] != ',' {
		end++
	}
	// The lenient "sack=1-2,3-4" continues after commas.
	for end < len(p.s) && p.lenient() && p.s[end] == ',' {
		j := end + 1
		for j < len(p.s) && p.s[j] == ' ' {
			j++
		}
		if j == len(p.s) || !isDecimal(p.s[j]) {
			break
		}
		end = j
		for end < len(p.s) && p.s[end] != ',' {
			end++
		}
	}
	return strings.TrimSpace(p.s[p.item:end])
}

func (p *optParser) errAt(item, off int, format string, args ...any) *GrammarError {
	p.item = item
	return &GrammarError{Input: p.s, Item: p.itemText(), Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (p *optParser) fail(off int, format string, args ...any) *GrammarError {
	return p.errAt(p.item, off, format, args...)
}

func isDecimal(c byte) bool { return c >= '0' && c <= '9' }
func isHexDigit(c byte) bool {
	return isDecimal(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
func isNameChar(c byte) bool {
	return isDecimal(c) || c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// name reads an option name.
func (p *optParser) name() string {
	start := p.i
	if p.i < len(p.s) && (isDecimal(p.s[p.i]) || p.s[p.i] == '-') {
		return ""
	}
	for p.i < len(p.s) && isNameChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// value skips what separates a name from its value: white space, or "="
// in the tcpdump notation. It reports whether a separator was there.
func (p *optParser) value() bool {
	start := p.i
	p.space()
	if p.lenient() && p.i < len(p.s) && p.s[p.i] == '=' {
		p.i++
		p.space()
	}
	return p.i > start
}

// atEnd reports whether the option ends here (end of text or ",").
func (p *optParser) atEnd() bool {
	j := p.i
	for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t' || p.s[j] == '\n' || p.s[j] == '\r') {
		j++
	}
	return j == len(p.s) || p.s[j] == ','
}

// number reads an unsigned number of at most bits bits: decimal, or in the
// tcpdump notation also 0x hex. what names the value for messages, e.g.
// "MSS".
func (p *optParser) number(what string, bits int) (uint64, error) {
	start := p.i
	j := p.i
	if j < len(p.s) && p.s[j] == '-' {
		j++
	}
	hexNum := p.lenient() && j+1 < len(p.s) && p.s[j] == '0' && (p.s[j+1] == 'x' || p.s[j+1] == 'X')
	if hexNum {
		j += 2
		for j < len(p.s) && isHexDigit(p.s[j]) {
			j++
		}
	} else {
		for j < len(p.s) && isDecimal(p.s[j]) {
			j++
		}
	}
	text := p.s[start:j]
	max := uint64(1)<<bits - 1
	if text == "" || text == "-" || (hexNum && len(text) == 2) || (j < len(p.s) && isNameChar(p.s[j]) && p.s[j] != '-') {
		k := j
		for k < len(p.s) && isNameChar(p.s[k]) {
			k++
		}
		found := p.s[start:k]
		if found == "" {
			if start == len(p.s) || p.s[start] == ',' {
				return 0, p.fail(start, "%s missing (want %d-%d)", what, 0, max)
			}
			found = p.s[start : start+1]
		}
		return 0, p.fail(start, "%s %q is not a number (want %d-%d)", what, found, 0, max)
	}
	var v uint64
	var err error
	if hexNum {
		v, err = strconv.ParseUint(text[2:], 16, 64)
	} else if text[0] == '-' {
		err = strconv.ErrRange
	} else {
		v, err = strconv.ParseUint(text, 10, 64)
	}
	if err != nil || v > max {
		return 0, p.fail(start, "%s must be 0-%d", what, max)
	}
	p.i = j
	return v, nil
}

// keyword consumes word (exactly in packetdrill notation, any case in the
// tcpdump notation) followed by a non-name character.
func (p *optParser) keyword(word string) bool {
	end := p.i + len(word)
	if end > len(p.s) || (end < len(p.s) && isNameChar(p.s[end])) {
		return false
	}
	got := p.s[p.i:end]
	if got != word && !(p.lenient() && strings.EqualFold(got, word)) {
		return false
	}
	p.i = end
	return true
}

func (p *optParser) expect(c byte, what string) error {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return nil
	}
	found := "the end"
	if p.i < len(p.s) {
		found = strconv.QuoteRune(rune(p.s[p.i]))
	}
	return p.fail(p.i, "expected %s, found %s", what, found)
}

// hexBlob reads hex digits (packetdrill's hex_blob: a word or a number;
// in the tcpdump notation an optional 0x prefix is skipped) and decodes
// them; at most max bytes.
func (p *optParser) hexBlob(what string, max int) ([]byte, error) {
	start := p.i
	if p.lenient() && p.i+1 < len(p.s) && p.s[p.i] == '0' && (p.s[p.i+1] == 'x' || p.s[p.i+1] == 'X') {
		p.i += 2
	}
	digits := p.i
	for p.i < len(p.s) && isNameChar(p.s[p.i]) {
		p.i++
	}
	text := p.s[digits:p.i]
	for k := 0; k < len(text); k++ {
		if !isHexDigit(text[k]) {
			return nil, p.fail(digits+k, "%s %q is not hex digits", what, p.s[start:p.i])
		}
	}
	if len(text)%2 != 0 {
		return nil, p.fail(start, "%s %q has an odd number of hex digits", what, p.s[start:p.i])
	}
	if len(text)/2 > max {
		return nil, p.fail(start, "%s of %d bytes is longer than %d bytes", what, len(text)/2, max)
	}
	b, _ := hex.DecodeString(text)
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// option reads one option (or, for "linux", a preset list).
func (p *optParser) option() ([]Option, error) {
	p.item = p.i
	nameAt := p.i
	name := p.name()
	if name == "" {
		if p.i == len(p.s) || p.s[p.i] == ',' {
			return nil, p.fail(p.i, "empty option (want %s)", p.optionList())
		}
		return nil, p.fail(p.i, "expected an option name (%s), found %q", p.optionList(), p.s[p.i])
	}
	key := name
	if p.lenient() {
		key = strings.ToLower(name)
	}
	one := func(o Option, err error) ([]Option, error) {
		if err != nil {
			return nil, err
		}
		return []Option{o}, nil
	}
	switch {
	case key == "nop":
		return []Option{{Kind: OptNOP}}, nil
	case key == "eol":
		return []Option{{Kind: OptEOL}}, nil
	case key == "mss":
		if o, ok, err := p.rawForm(OptMSS); ok || err != nil {
			return one(o, err)
		}
		p.value()
		v, err := p.number("MSS", 16)
		return one(Option{Kind: OptMSS, MSS: uint16(v)}, err)
	case key == "wscale" || (p.lenient() && key == "ws"):
		if o, ok, err := p.rawForm(OptWindowScale); ok || err != nil {
			return one(o, err)
		}
		p.value()
		v, err := p.number("window scale shift", 8)
		return one(Option{Kind: OptWindowScale, Shift: uint8(v)}, err)
	case name == "sackOK" || (p.lenient() && (key == "sackok" || key == "sack_perm" || key == "sack-perm" ||
		key == "sackpermitted" || key == "sack-permitted" || key == "sack_permitted")):
		if o, ok, err := p.rawForm(OptSACKPermitted); ok || err != nil {
			return one(o, err)
		}
		return []Option{{Kind: OptSACKPermitted}}, nil
	case key == "sack":
		if o, ok, err := p.rawForm(OptSACK); ok || err != nil {
			return one(o, err)
		}
		return one(p.sack())
	case name == "TS" || (p.lenient() && (key == "ts" || key == "timestamp" || key == "timestamps")):
		if o, ok, err := p.rawForm(OptTimestamps); ok || err != nil {
			return one(o, err)
		}
		return one(p.timestamps())
	case key == "md5":
		if !p.value() || p.atEnd() {
			return nil, p.fail(p.i, "md5 needs the digest in hex (md5 HEX)")
		}
		b, err := p.hexBlob("md5 digest", maxMD5Digest)
		return one(Option{Kind: OptMD5, Data: b}, err)
	case name == "FO" || (p.lenient() && (key == "fo" || key == "tfo")):
		return one(p.fastOpen(false))
	case name == "FOEXP" || (p.lenient() && key == "foexp"):
		return one(p.fastOpen(true))
	case p.lenient() && strings.HasPrefix(key, "unknown-"):
		k, err := strconv.ParseUint(key[len("unknown-"):], 10, 8)
		if err != nil {
			return nil, p.fail(nameAt, "option kind %q must be 0-255", key[len("unknown-"):])
		}
		o := Option{Kind: OptionKind(k), Data: []byte{}}
		if p.value() && !p.atEnd() {
			if o.Data, err = p.hexBlob("option data", maxRawOptionData); err != nil {
				return nil, err
			}
		}
		if k <= uint64(OptNOP) {
			return nil, p.fail(nameAt, "kind %d is %s: write it by name", k, OptionKind(k))
		}
		return []Option{o}, nil
	case p.lenient() && key == "raw":
		return one(p.raw())
	case p.lenient() && (key == "linux" || key == "default"):
		return LinuxSYNOptions(1460, 7, 1, 0), nil
	case !p.lenient() && (name == "ECN" || name == "mptcp" || name == "exp"):
		// Options of packetdrill's forks (AccECN, MPTCP, experimental).
		e := p.fail(nameAt, "TCP option %q is not supported", name)
		e.Unsupported = true
		return nil, e
	}
	return nil, p.fail(nameAt, "unknown option %q (want %s)", name, p.optionList())
}

func (p *optParser) optionList() string {
	if p.lenient() {
		return tcpdumpOptionList
	}
	return packetdrillOptionList
}

// rawForm reads the trace's form of a known kind carried as raw data:
// "mss 0x05b4ff[len 5]" or "sack[len 2]" (tcpdump notation only). ok is
// false, and nothing is consumed, when the text is not in that form.
func (p *optParser) rawForm(kind OptionKind) (Option, bool, error) {
	if !p.lenient() {
		return Option{}, false, nil
	}
	save := p.i
	data := []byte{}
	if p.i+2 < len(p.s) && p.s[p.i] == ' ' && p.s[p.i+1] == '0' && (p.s[p.i+2] == 'x' || p.s[p.i+2] == 'X') {
		p.i++
		j := p.i + 2
		for j < len(p.s) && isHexDigit(p.s[j]) {
			j++
		}
		if j == len(p.s) || p.s[j] != '[' {
			p.i = save
			return Option{}, false, nil
		}
		var err error
		if data, err = p.hexBlob(kind.String()+" data", maxRawOptionData); err != nil {
			return Option{}, false, err
		}
	}
	if !strings.HasPrefix(p.s[p.i:], "[len ") {
		p.i = save
		return Option{}, false, nil
	}
	p.i += len("[len ")
	at := p.i
	n, err := p.number("option length", 8)
	if err != nil {
		return Option{}, false, err
	}
	if err := p.expect(']', `"]" after [len N`); err != nil {
		return Option{}, false, err
	}
	if int(n) != 2+len(data) {
		return Option{}, false, p.fail(at, "length %d does not match the %d data bytes (want %d)", n, len(data), 2+len(data))
	}
	return Option{Kind: kind, Data: data}, true, nil
}

// sack reads the blocks after "sack": packetdrill's "L:R L:R", tcpdump's
// "N {L:R}{L:R}", or the command line's "=L-R,L-R".
func (p *optParser) sack() (Option, error) {
	o := Option{Kind: OptSACK}
	p.value()
	if p.atEnd() {
		return o, p.fail(p.i, "sack needs at least one block (sack LEFT:RIGHT)")
	}
	// tcpdump: a count, then {L:R} blocks.
	if p.lenient() {
		save := p.i
		if cnt, err := p.number("SACK block count", 8); err == nil {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == '{' {
				for p.i < len(p.s) && p.s[p.i] == '{' {
					p.i++
					if err := p.sackBlock(&o, ':'); err != nil {
						return o, err
					}
					if err := p.expect('}', `"}" after a SACK block`); err != nil {
						return o, err
					}
				}
				if int(cnt) != len(o.Blocks) {
					return o, p.fail(save, "sack count %d but %d blocks", cnt, len(o.Blocks))
				}
				return o, nil
			}
		}
		p.i = save
	}
	for {
		sep := byte(':')
		if p.lenient() {
			// "L-R" or "L:R", whichever the first block uses.
			j := p.i
			for j < len(p.s) && (isHexDigit(p.s[j]) || p.s[j] == 'x' || p.s[j] == 'X') {
				j++
			}
			if j < len(p.s) && p.s[j] == '-' {
				sep = '-'
			}
		}
		if err := p.sackBlock(&o, sep); err != nil {
			return o, err
		}
		save := p.i
		p.space()
		if p.i < len(p.s) && isDecimal(p.s[p.i]) {
			continue
		}
		if p.lenient() && p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			p.space()
			if p.i < len(p.s) && isDecimal(p.s[p.i]) {
				continue
			}
		}
		p.i = save
		return o, nil
	}
}

func (p *optParser) sackBlock(o *Option, sep byte) error {
	at := p.i
	l, err := p.number("SACK left edge", 32)
	if err != nil {
		return err
	}
	p.space()
	if err := p.expect(sep, fmt.Sprintf("%q between a SACK block's edges (LEFT%cRIGHT)", sep, sep)); err != nil {
		return err
	}
	p.space()
	r, err := p.number("SACK right edge", 32)
	if err != nil {
		return err
	}
	if len(o.Blocks) == MaxSACKBlocks {
		return p.fail(at, "more than %d SACK blocks (RFC 2018 §3)", MaxSACKBlocks)
	}
	o.Blocks = append(o.Blocks, SACKBlock{Left: Seq(l), Right: Seq(r)})
	return nil
}

// timestamps reads "val N ecr N" or, in the tcpdump notation, "=VAL:ECR".
func (p *optParser) timestamps() (Option, error) {
	o := Option{Kind: OptTimestamps}
	p.value()
	if p.keyword("val") {
		p.space()
		v, err := p.number("TS val", 32)
		if err != nil {
			return o, err
		}
		p.space()
		if !p.keyword("ecr") {
			return o, p.fail(p.i, `expected "ecr" after TS val N`)
		}
		p.space()
		e, err := p.number("TS ecr", 32)
		o.TSVal, o.TSEcr = uint32(v), uint32(e)
		return o, err
	}
	if !p.lenient() {
		return o, p.fail(p.i, `expected "val" after TS (TS val N ecr N)`)
	}
	if p.atEnd() {
		return o, p.fail(p.i, "timestamps need two values (TS val N ecr N, or ts=VAL:ECR)")
	}
	v, err := p.number("TS val", 32)
	if err != nil {
		return o, err
	}
	if err := p.expect(':', `":" between the two timestamps (ts=VAL:ECR)`); err != nil {
		return o, err
	}
	e, err := p.number("TS ecr", 32)
	o.TSVal, o.TSEcr = uint32(v), uint32(e)
	return o, err
}

// fastOpen reads an optional cookie after FO or FOEXP (RFC 7413 §4.1.1;
// FOEXP is the experimental kind 254 with magic 0xF989, RFC 6994).
func (p *optParser) fastOpen(exp bool) (Option, error) {
	o := Option{Kind: OptFastOpen, Data: []byte{}}
	if exp {
		o = Option{Kind: OptExperimental, Data: []byte{fastOpenMagic >> 8, fastOpenMagic & 0xff}}
	}
	if p.value() && !p.atEnd() {
		limit := maxFastOpenCookie
		if exp {
			limit = maxFastOpenExpCookie
		}
		cookie, err := p.hexBlob("fast open cookie", limit)
		if err != nil {
			return o, err
		}
		o.Data = append(o.Data, cookie...)
	}
	return o, nil
}

// raw reads "raw=KIND[:HEX]".
func (p *optParser) raw() (Option, error) {
	if !p.value() || p.atEnd() {
		return Option{}, p.fail(p.i, "raw needs a kind (raw=KIND:HEX)")
	}
	k, err := p.number("option kind", 8)
	if err != nil {
		return Option{}, err
	}
	o := Option{Kind: OptionKind(k), Data: []byte{}}
	if p.i < len(p.s) && p.s[p.i] == ':' {
		p.i++
		if o.Data, err = p.hexBlob("raw data", maxRawOptionData); err != nil {
			return o, err
		}
	}
	if k <= uint64(OptNOP) {
		// EOL and NOP are one byte, without a length.
		if len(o.Data) > 0 {
			return o, p.fail(p.item, "kind %d (%s) is one byte and carries no data", k, OptionKind(k))
		}
		o.Data = nil
	}
	return o, nil
}
