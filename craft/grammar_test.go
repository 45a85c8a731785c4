package craft

import (
	"bytes"
	"errors"
	"math/rand"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    Notation
		want Flags
	}{
		{"S", NotationTcpdump, FlagSYN},
		{"SA", NotationTcpdump, FlagSYN | FlagACK},
		{"S.", NotationTcpdump, FlagSYN | FlagACK},
		{"sa", NotationTcpdump, FlagSYN | FlagACK},
		{"[S.]", NotationTcpdump, FlagSYN | FlagACK},
		{"FSRP.UEW", NotationTcpdump, 0xff},
		{"FPU", NotationTcpdump, FlagFIN | FlagPSH | FlagURG},
		{"SEC", NotationTcpdump, FlagSYN | FlagECE | FlagCWR},
		{"N", NotationTcpdump, FlagNS},
		{"none", NotationTcpdump, 0},
		{"[none]", NotationTcpdump, 0},
		{"-", NotationTcpdump, 0},
		{"", NotationTcpdump, 0},
		{"syn,ack", NotationTcpdump, FlagSYN | FlagACK},
		{"SYN+ACK", NotationTcpdump, FlagSYN | FlagACK},
		{"fin|psh|urg", NotationTcpdump, FlagFIN | FlagPSH | FlagURG},
		{"syn, ae", NotationTcpdump, FlagSYN | FlagNS},
		{"S,A", NotationTcpdump, FlagSYN | FlagACK},
		{"SYN", NotationTcpdump, FlagSYN},
		{"ECE", NotationTcpdump, FlagECE},
		{"cwr", NotationTcpdump, FlagCWR},
		{"S", NotationPacketdrill, FlagSYN},
		{"S.", NotationPacketdrill, FlagSYN | FlagACK},
		{".", NotationPacketdrill, FlagACK},
		{"-", NotationPacketdrill, 0},
		{"SEW", NotationPacketdrill, FlagSYN | FlagECE | FlagCWR},
		{"SA", NotationPacketdrill, FlagSYN | FlagNS},
		{"SS", NotationPacketdrill, FlagSYN},
		{"S.5", NotationPacketdrill, FlagSYN | FlagACK | FlagECE | FlagNS},
		{".2", NotationPacketdrill, FlagACK | FlagCWR},
		{"FSRPU.", NotationPacketdrill, FlagFIN | FlagSYN | FlagRST | FlagPSH | FlagURG | FlagACK},
	} {
		got, err := ParseFlags(tc.in, tc.n)
		if err != nil || got != tc.want {
			t.Errorf("ParseFlags(%q, %v) = %v (%#x), %v; want %v (%#x)", tc.in, tc.n, got, uint16(got), err, tc.want, uint16(tc.want))
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    Notation
		want string
		off  int
	}{
		{"SX", NotationTcpdump, `SX: unknown flag letter 'X' (letters: F S R P A or . U E W or C N, names: syn,ack..., or none)`, 1},
		{" SQ", NotationTcpdump, `SQ: unknown flag letter 'Q'`, 2},
		{"syn,foo", NotationTcpdump, `syn,foo: unknown flag name "foo"`, 4},
		{"s", NotationPacketdrill, `s: invalid TCP flag 's'`, 0},
		{"SC", NotationPacketdrill, `SC: invalid TCP flag 'C'`, 1},
		{"E5", NotationPacketdrill, `E5: conflicting TCP flag '5'`, 1},
		{"5W", NotationPacketdrill, `5W: conflicting TCP flag 'W'`, 1},
		{"", NotationPacketdrill, `no TCP flags (write - for none)`, 0},
	} {
		_, err := ParseFlags(tc.in, tc.n)
		var ge *GrammarError
		if !errors.As(err, &ge) || !strings.HasPrefix(err.Error(), tc.want) || ge.Offset != tc.off {
			t.Errorf("ParseFlags(%q, %v) error %v (offset %v), want prefix %q at %d", tc.in, tc.n, err, ge, tc.want, tc.off)
		}
	}
}

// Every one of the 4096 flag values formats and parses back to itself, less
// what a notation cannot spell: tcpdump's letters have neither AE nor the
// reserved bits (the trace shows them as ", ae" and ", reserved 0xN"),
// packetdrill has no reserved bits.
func TestFlagsRoundTrip(t *testing.T) {
	for f := Flags(0); f <= FlagsMask; f++ {
		for _, tc := range []struct {
			n    Notation
			mask Flags
		}{{NotationTcpdump, 0xff}, {NotationPacketdrill, 0x1ff}} {
			text := string(AppendFlagsText(nil, f, tc.n))
			got, err := ParseFlags(text, tc.n)
			if err != nil || got != f&tc.mask {
				t.Fatalf("%v: %#x -> %q -> %#x, %v", tc.n, uint16(f), text, uint16(got), err)
			}
		}
	}
	if got := string(AppendFlagsText(nil, FlagSYN|FlagACK|FlagECE|FlagCWR|FlagNS, NotationPacketdrill)); got != "SEWA." {
		t.Errorf("packetdrill text %q, want SEWA.", got)
	}
	if got := string(AppendFlagsText(nil, 0, NotationPacketdrill)); got != "-" {
		t.Errorf("packetdrill text of no flags %q, want -", got)
	}
}

func TestParseOptions(t *testing.T) {
	blocks := func(b ...uint32) []SACKBlock {
		var out []SACKBlock
		for i := 0; i < len(b); i += 2 {
			out = append(out, SACKBlock{Left: Seq(b[i]), Right: Seq(b[i+1])})
		}
		return out
	}
	linux := LinuxSYNOptions(1460, 7, 1, 0)
	for _, tc := range []struct {
		in   string
		n    Notation
		want []Option
	}{
		// The trace's own wording.
		{"mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7", NotationTcpdump, linux},
		{"nop,nop,sack 2 {5:9}{100:200}", NotationTcpdump, []Option{NOPOption(), NOPOption(), SACKOption(blocks(5, 9, 100, 200)...)}},
		{"unknown-99 0xabcd", NotationTcpdump, []Option{{Kind: 99, Data: []byte{0xab, 0xcd}}}},
		{"unknown-99", NotationTcpdump, []Option{{Kind: 99, Data: []byte{}}}},
		{"mss 0x05b4ff[len 5]", NotationTcpdump, []Option{{Kind: OptMSS, Data: []byte{5, 0xb4, 0xff}}}},
		{"sack[len 2]", NotationTcpdump, []Option{{Kind: OptSACK, Data: []byte{}}}},
		{"eol", NotationTcpdump, []Option{{Kind: OptEOL}}},
		// The command line's aliases.
		{"mss=1460", NotationTcpdump, []Option{MSSOption(1460)}},
		{"MSS=0x5b4", NotationTcpdump, []Option{MSSOption(1460)}},
		{"ws=14", NotationTcpdump, []Option{WindowScaleOption(14)}},
		{"wscale=7", NotationTcpdump, []Option{WindowScaleOption(7)}},
		{"sackok", NotationTcpdump, []Option{SACKPermittedOption()}},
		{"sack_perm", NotationTcpdump, []Option{SACKPermittedOption()}},
		{"sack-permitted", NotationTcpdump, []Option{SACKPermittedOption()}},
		{"ts=5:0", NotationTcpdump, []Option{TimestampsOption(5, 0)}},
		{"timestamp=5:7", NotationTcpdump, []Option{TimestampsOption(5, 7)}},
		{"sack=1-2", NotationTcpdump, []Option{SACKOption(blocks(1, 2)...)}},
		{"sack=1-2,3-4,nop", NotationTcpdump, []Option{SACKOption(blocks(1, 2, 3, 4)...), NOPOption()}},
		{"sack=1:2 3:4", NotationTcpdump, []Option{SACKOption(blocks(1, 2, 3, 4)...)}},
		{"raw=254:0102", NotationTcpdump, []Option{{Kind: 254, Data: []byte{1, 2}}}},
		{"raw=30", NotationTcpdump, []Option{{Kind: 30, Data: []byte{}}}},
		{"raw=1", NotationTcpdump, []Option{NOPOption()}},
		{"linux", NotationTcpdump, linux},
		{"linux,nop", NotationTcpdump, append(append([]Option{}, linux...), NOPOption())},
		{"fo=abcd1234", NotationTcpdump, []Option{{Kind: OptFastOpen, Data: []byte{0xab, 0xcd, 0x12, 0x34}}}},
		{"md5=0011", NotationTcpdump, []Option{{Kind: OptMD5, Data: []byte{0, 0x11}}}},
		// packetdrill's syntax, also read in the tcpdump notation.
		{"mss 1460, sackOK, sack 1:2 3:4", NotationTcpdump, []Option{MSSOption(1460), SACKPermittedOption(), SACKOption(blocks(1, 2, 3, 4)...)}},
		{"mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7", NotationPacketdrill, linux},
		{"sack 1:2 3 : 4", NotationPacketdrill, []Option{SACKOption(blocks(1, 2, 3, 4)...)}},
		{"TS val 4294967295 ecr 0", NotationPacketdrill, []Option{TimestampsOption(4294967295, 0)}},
		{"FO", NotationPacketdrill, []Option{{Kind: OptFastOpen, Data: []byte{}}}},
		{"FO abcd1234,nop", NotationPacketdrill, []Option{{Kind: OptFastOpen, Data: []byte{0xab, 0xcd, 0x12, 0x34}}, NOPOption()}},
		{"FOEXP 0011", NotationPacketdrill, []Option{{Kind: OptExperimental, Data: []byte{0xf9, 0x89, 0, 0x11}}}},
		{"md5 00112233", NotationPacketdrill, []Option{{Kind: OptMD5, Data: []byte{0, 0x11, 0x22, 0x33}}}},
		{"eol", NotationPacketdrill, []Option{{Kind: OptEOL}}},
	} {
		got, err := ParseOptions(tc.in, tc.n)
		if err != nil {
			t.Errorf("ParseOptions(%q, %v): %v", tc.in, tc.n, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("ParseOptions(%q, %v) = %v, want %v", tc.in, tc.n, got, tc.want)
			continue
		}
		for i := range got {
			if !got[i].Equal(&tc.want[i]) || (got[i].Data == nil) != (tc.want[i].Data == nil) {
				t.Errorf("ParseOptions(%q, %v)[%d] = %+v, want %+v", tc.in, tc.n, i, got[i], tc.want[i])
			}
		}
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    Notation
		want string
		off  int
	}{
		{"mss=99999", NotationTcpdump, "mss=99999: MSS must be 0-65535", 4},
		{"mss", NotationTcpdump, "mss: MSS missing (want 0-65535)", 3},
		{"mss=abc", NotationTcpdump, `mss=abc: MSS "abc" is not a number (want 0-65535)`, 4},
		{"mss=-1", NotationTcpdump, "mss=-1: MSS must be 0-65535", 4},
		{"wscale=300", NotationTcpdump, "wscale=300: window scale shift must be 0-255", 7},
		{"ts=1", NotationTcpdump, `ts=1: expected ":" between the two timestamps (ts=VAL:ECR), found the end`, 4},
		{"ts=1:99999999999", NotationTcpdump, "ts=1:99999999999: TS ecr must be 0-4294967295", 5},
		{"sack=1-2,3-4,5-6,7-8,9-10", NotationTcpdump, "sack=1-2,3-4,5-6,7-8,9-10: more than 4 SACK blocks (RFC 2018 §3)", 21},
		{"sack", NotationTcpdump, "sack: sack needs at least one block", 4},
		{"sack=5", NotationTcpdump, `sack=5: expected ':' between a SACK block's edges (LEFT:RIGHT), found the end`, 6},
		{"sack 2 {1:2}", NotationTcpdump, "sack 2 {1:2}: sack count 2 but 1 blocks", 5},
		{"raw=300:ab", NotationTcpdump, "raw=300:ab: option kind must be 0-255", 4},
		{"raw=30:abc", NotationTcpdump, `raw=30:abc: raw data "abc" has an odd number of hex digits`, 7},
		{"raw=30:" + strings.Repeat("00", 39), NotationTcpdump, "raw data of 39 bytes is longer than 38 bytes", 7},
		{"raw=1:00", NotationTcpdump, "raw=1:00: kind 1 (nop) is one byte and carries no data", 0},
		{"unknown-300", NotationTcpdump, `unknown-300: option kind "300" must be 0-255`, 0},
		{"mss 0x05b4[len 5]", NotationTcpdump, "mss 0x05b4[len 5]: length 5 does not match the 2 data bytes (want 4)", 15},
		{"frob=1", NotationTcpdump, `frob=1: unknown option "frob" (want mss N, wscale N, sackOK`, 0},
		{"nop,,nop", NotationTcpdump, "empty option", 4},
		{"nop nop", NotationTcpdump, `nop nop: expected "," or the end after the option, found 'n'`, 4},
		{"md5", NotationTcpdump, "md5: md5 needs the digest in hex (md5 HEX)", 3},
		{"FO 123", NotationPacketdrill, `FO 123: fast open cookie "123" has an odd number of hex digits`, 3},
		{"FO " + strings.Repeat("ab", 39), NotationPacketdrill, "fast open cookie of 39 bytes is longer than 38 bytes", 3},
		{"FOEXP " + strings.Repeat("ab", 37), NotationPacketdrill, "fast open cookie of 37 bytes is longer than 36 bytes", 6},
		// packetdrill's own rules.
		{"mss 0x5b4", NotationPacketdrill, `mss 0x5b4: MSS "0x5b4" is not a number (want 0-65535)`, 4},
		{"mss=1460", NotationPacketdrill, `mss=1460: MSS "=" is not a number`, 3},
		{"sackok", NotationPacketdrill, `sackok: unknown option "sackok" (want mss N, wscale N, sackOK`, 0},
		{"ts val 1 ecr 2", NotationPacketdrill, `unknown option "ts"`, 0},
		{"TS 1:2", NotationPacketdrill, `TS 1:2: expected "val" after TS (TS val N ecr N)`, 3},
		{"sack 2 {1:2}", NotationPacketdrill, `sack 2 {1:2}: expected ':' between a SACK block's edges`, 7},
		{"unknown-99", NotationPacketdrill, `unknown option "unknown-99"`, 0},
		{"linux", NotationPacketdrill, `unknown option "linux"`, 0},
		{"mss 1460,mptcp capable", NotationPacketdrill, `mptcp capable: TCP option "mptcp" is not supported`, 9},
	} {
		_, err := ParseOptions(tc.in, tc.n)
		var ge *GrammarError
		if !errors.As(err, &ge) {
			t.Errorf("ParseOptions(%q, %v) = %v, want a *GrammarError", tc.in, tc.n, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || ge.Offset != tc.off {
			t.Errorf("ParseOptions(%q, %v):\n got %v (offset %d)\nwant %q (offset %d)", tc.in, tc.n, err, ge.Offset, tc.want, tc.off)
		}
		if strings.Contains(err.Error(), "strconv") || strings.Contains(err.Error(), "invalid syntax") {
			t.Errorf("raw strconv message: %v", err)
		}
	}
	_, err := ParseOptions("exp 1", NotationPacketdrill)
	if ge := (*GrammarError)(nil); !errors.As(err, &ge) || !ge.Unsupported {
		t.Errorf("exp in packetdrill notation: %v, want an Unsupported *GrammarError", err)
	}
	if _, err := ParseOptions("ECN e0b 1", NotationTcpdump); err == nil {
		t.Error("ECN in the tcpdump notation parsed")
	}
}

// optionsBytes returns the wire bytes of opts with the padding a header
// would add.
func optionsBytes(t *testing.T, opts []Option) []byte {
	t.Helper()
	b, err := AppendOptions(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// withoutEOLData returns opts with the bytes after EOL cleared: the trace
// (like tcpdump) prints "eol" and not the padding after it, and the
// builder pads with zeros.
func withoutEOLData(opts []Option) []Option {
	out := make([]Option, len(opts))
	for i, o := range opts {
		if o.Kind == OptEOL {
			o.Data = nil
		}
		out[i] = o
	}
	return out
}

// TestOptionsRoundTrip: random option lists of every kind written in each
// notation read back to the same wire bytes.
func TestOptionsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 5000; i++ {
		opts := withoutEOLData(randomOptions(rng))
		if len(opts) == 0 {
			continue
		}
		want := optionsBytes(t, opts)
		text := string(AppendOptionsText(nil, opts, NotationTcpdump))
		got, err := ParseOptions(text, NotationTcpdump)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if b := optionsBytes(t, got); !bytes.Equal(b, want) {
			t.Fatalf("tcpdump notation %q:\n got % x\nwant % x", text, b, want)
		}
		// packetdrill can spell the kinds it knows.
		known := true
		for _, o := range opts {
			if o.Data != nil && o.Kind != OptEOL {
				known = false
			}
		}
		if !known {
			continue
		}
		text = string(AppendOptionsText(nil, opts, NotationPacketdrill))
		got, err = ParseOptions(text, NotationPacketdrill)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if b := optionsBytes(t, got); !bytes.Equal(b, want) {
			t.Fatalf("packetdrill notation %q:\n got % x\nwant % x", text, b, want)
		}
	}
	fo := []Option{{Kind: OptFastOpen, Data: []byte{1, 2, 3, 4}}, {Kind: OptExperimental, Data: []byte{0xf9, 0x89, 9, 9}}, {Kind: OptMD5, Data: make([]byte, 16)}}
	if got := string(AppendOptionsText(nil, fo, NotationPacketdrill)); got != "FO 01020304,FOEXP 0909,md5 00000000000000000000000000000000" {
		t.Errorf("packetdrill text %q", got)
	}
}

var (
	lineFlags   = regexp.MustCompile(`Flags \[([^\]]*)\](, ae)?(, reserved 0x([0-7]))?`)
	lineOptions = regexp.MustCompile(`, options \[(.*)\], length`)
)

// TestTraceLineRoundTrip: the flags and options of the trace's line for a
// random segment (format) read back (parse) to the segment's flags and
// option bytes.
func TestTraceLineRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	for i := 0; i < 3000; i++ {
		tcp := randomTCP(rng)
		tcp.Options = withoutEOLData(tcp.Options)
		p := Packet{IPVersion: 4, IPv4: IPv4{Src: netip.MustParseAddr("10.0.2.21"), Dst: netip.MustParseAddr("10.0.2.20")}, TCP: tcp}
		f := Formatter{Absolute: true}
		line := f.Format(&p)
		m := lineFlags.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no flags in %q", line)
		}
		flags, err := ParseFlags(m[1], NotationTcpdump)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if m[2] != "" {
			flags |= FlagNS
		}
		if m[4] != "" {
			flags |= Flags(m[4][0]-'0') << 9
		}
		if flags != tcp.Flags {
			t.Fatalf("%q: flags %#x, want %#x", line, uint16(flags), uint16(tcp.Flags))
		}
		om := lineOptions.FindStringSubmatch(line)
		if len(tcp.Options) == 0 {
			if om != nil {
				t.Fatalf("options in %q", line)
			}
			continue
		}
		opts, err := ParseOptions(om[1], NotationTcpdump)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		// The trace stops at EOL, as tcpdump does.
		want := tcp.Options
		for j := range want {
			if want[j].Kind == OptEOL {
				want = want[:j+1]
				break
			}
		}
		if g, w := optionsBytes(t, opts), optionsBytes(t, want); !bytes.Equal(g, w) {
			t.Fatalf("%q:\n got % x\nwant % x", line, g, w)
		}
	}
}

// FuzzParseFlags: any text parses or gives a *GrammarError pointing into
// it; what parses formats and parses back to the same flags.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"S", "SA", "S.", "[S.]", "none", "-", "syn,ack", "SYN", "FPU", "SEWA.", "S.5", "Q"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, packetdrill bool) {
		n, mask := NotationTcpdump, Flags(0xff)
		if packetdrill {
			n, mask = NotationPacketdrill, 0x1ff
		}
		fl, err := ParseFlags(s, n)
		if err != nil {
			checkGrammarError(t, s, err)
			return
		}
		if fl&^FlagsMask != 0 {
			t.Fatalf("%q: bits outside the flags: %#x", s, uint16(fl))
		}
		text := string(AppendFlagsText(nil, fl, n))
		again, err := ParseFlags(text, n)
		if err != nil || again != fl&mask {
			t.Fatalf("%q -> %#x -> %q -> %#x, %v", s, uint16(fl), text, uint16(again), err)
		}
	})
}

// FuzzParseOptions: any text parses or gives a *GrammarError pointing into
// it, without a raw strconv message; what parses emits (when it fits a
// header), formats, and parses back to the same bytes.
func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{
		"mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7", "sack 2 {1:2}{5:9}", "sack 1:2 3:4", "sack=1-2,3-4",
		"mss=1460", "ts=1:0", "raw=254:0102", "unknown-99 0xabcd", "mss 0x05b4ff[len 5]", "linux", "FO abcd",
		"FOEXP", "md5 0011", "mptcp capable", "mss=99999", "eol",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, packetdrill bool) {
		n := NotationTcpdump
		if packetdrill {
			n = NotationPacketdrill
		}
		opts, err := ParseOptions(s, n)
		if err != nil {
			checkGrammarError(t, s, err)
			return
		}
		if len(opts) == 0 {
			t.Fatalf("%q: no options and no error", s)
		}
		if _, err := OptionsLen(opts); err != nil {
			t.Fatalf("%q: parsed options do not emit: %v", s, err)
		}
		want := optionsBytes(t, opts)
		text := string(AppendOptionsText(nil, opts, n))
		again, err := ParseOptions(text, n)
		if err != nil {
			t.Fatalf("%q -> %q: %v", s, text, err)
		}
		if got := optionsBytes(t, again); !bytes.Equal(got, want) {
			t.Fatalf("%q -> %q:\n got % x\nwant % x", s, text, got, want)
		}
	})
}

func checkGrammarError(t *testing.T, s string, err error) {
	t.Helper()
	var ge *GrammarError
	if !errors.As(err, &ge) {
		t.Fatalf("%q: error %v is not a *GrammarError", s, err)
	}
	if ge.Offset < 0 || ge.Offset > len(s) || ge.Input != s || ge.Msg == "" {
		t.Fatalf("%q: bad error %+v", s, ge)
	}
	if m := err.Error(); strings.Contains(m, "strconv") || strings.Contains(m, "invalid syntax") {
		t.Fatalf("%q: raw strconv message: %v", s, err)
	}
}
