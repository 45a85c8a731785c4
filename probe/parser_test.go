package probe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

func mustParse(t *testing.T, src string) *Script {
	t.Helper()
	s, err := Parse("t.pkt", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v\nscript:\n%s", err, src)
	}
	return s
}

func TestParseOwnScripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.pkt")
	if err != nil || len(paths) < 6 {
		t.Fatalf("want the project's scripts in testdata, found %v (%v)", paths, err)
	}
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(path, src)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if err := Validate(s, false); err != nil {
			t.Errorf("%s: Validate: %v", path, err)
		}
		if len(s.Events) < 2 {
			t.Errorf("%s: %d events", path, len(s.Events))
		}
	}
}

func TestParseTimes(t *testing.T) {
	s := mustParse(t, `
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+.1 close(3) = 0
0.25 > S 0:0(0) <...>
* > . 1:1(0) ack 1
0.1~0.2 > . 1:1(0) ack 1
+.004~+.008 > . 1:1(0) ack 1
+.01...0.011 connect(3, ..., ...) = 0
`)
	want := []EventTime{
		{Kind: TimeAbsolute},
		{Kind: TimeRelative, Start: 100 * time.Millisecond},
		{Kind: TimeAbsolute, Start: 250 * time.Millisecond},
		{Kind: TimeAny},
		{Kind: TimeAbsoluteRange, Start: 100 * time.Millisecond, End: 200 * time.Millisecond},
		{Kind: TimeRelativeRange, Start: 4 * time.Millisecond, End: 8 * time.Millisecond},
		{Kind: TimeRelative, Start: 10 * time.Millisecond},
	}
	if len(s.Events) != len(want) {
		t.Fatalf("%d events, want %d", len(s.Events), len(want))
	}
	for i, w := range want {
		if got := s.Events[i].Time; got != w {
			t.Errorf("event %d: time %+v, want %+v", i, got, w)
		}
	}
	sc := s.Events[6].Syscall
	if !sc.Blocking || sc.End.Start != 11*time.Millisecond || sc.Name != "connect" {
		t.Errorf("blocking connect: %+v", sc)
	}
	if s.Events[2].Pos != (Pos{4, 1}) {
		t.Errorf("event position %v, want 4:1", s.Events[2].Pos)
	}
}

func TestParsePacket(t *testing.T) {
	s := mustParse(t, `0 < S. 100:100(0) ack 5 win 5792 <mss 1460,sackOK,TS val 10 ecr 0,nop,wscale 7,sack 1:2 3:4,eol>
+0 > P. 1:1001(1000) ack 1 urg 3
+0 > F 1:1(0) <...>
+0 < - 7:7(0) win 0
+0 < R 7:7(0) win 0
+0 > SEW 0:0(0) <mss 536>
`)
	p := s.Events[0].Packet
	if p.Dir != Inbound || p.Flags != craft.FlagSYN|craft.FlagACK || p.Seq != 100 || p.Len != 0 || p.Ack != 5 || p.Window != 5792 {
		t.Errorf("packet 0: %+v", p)
	}
	wantOpts := []craft.Option{
		{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptSACKPermitted},
		{Kind: craft.OptTimestamps, TSVal: 10}, {Kind: craft.OptNOP},
		{Kind: craft.OptWindowScale, Shift: 7},
		{Kind: craft.OptSACK, Blocks: []craft.SACKBlock{{Left: 1, Right: 2}, {Left: 3, Right: 4}}},
		{Kind: craft.OptEOL},
	}
	if len(p.Options) != len(wantOpts) {
		t.Fatalf("options %v", p.Options)
	}
	for i := range wantOpts {
		if !p.Options[i].Equal(&wantOpts[i]) {
			t.Errorf("option %d: %v, want %v", i, p.Options[i], wantOpts[i])
		}
	}
	if got := p.String(); got != "< S. 100:100(0) ack 5 win 5792 <mss 1460,sackOK,TS val 10 ecr 0,nop,wscale 7,sack 1:2 3:4,eol>" {
		t.Errorf("String() = %q", got)
	}
	p = s.Events[1].Packet
	if p.Dir != Outbound || p.Flags != craft.FlagPSH|craft.FlagACK || p.Seq != 1 || p.Len != 1000 || p.Window != -1 || p.Urgent != 3 || p.Options != nil || p.AnyOptions {
		t.Errorf("packet 1: %+v", p)
	}
	if p := s.Events[2].Packet; !p.AnyOptions || p.Flags != craft.FlagFIN {
		t.Errorf("packet 2: %+v", p)
	}
	if p := s.Events[3].Packet; p.Flags != 0 || p.Window != 0 {
		t.Errorf("packet 3 (no flags): %+v", p)
	}
	if p := s.Events[5].Packet; p.Flags != craft.FlagSYN|craft.FlagECE|craft.FlagCWR {
		t.Errorf("packet 5: flags %v", p.Flags)
	}
}

// TestParsePacketdrillFlagsAndOptions: the spellings packetdrill has and
// tcpcraft's CLI does not (A is AE, a digit is the ACE field, FO cookies
// as words or numbers, comments and line breaks inside an option list).
func TestParsePacketdrillFlagsAndOptions(t *testing.T) {
	s := mustParse(t, `0 < SA 0:0(0) win 1
+0 > S.5 0:0(0) ack 1
+0 > .2 1:1(0) ack 1
+0 < SEWA. 1:1(0) ack 1 win 1
+0 > S 0:0(0) <mss 1460, /* the cookie */ FO 0123abcd,
   sack 1 : 2 3:4>
`)
	for i, want := range []craft.Flags{
		craft.FlagSYN | craft.FlagNS,
		craft.FlagSYN | craft.FlagACK | craft.FlagECE | craft.FlagNS,
		craft.FlagACK | craft.FlagCWR,
		craft.FlagSYN | craft.FlagECE | craft.FlagCWR | craft.FlagNS | craft.FlagACK,
	} {
		if got := s.Events[i].Packet.Flags; got != want {
			t.Errorf("packet %d: flags %#x, want %#x", i, uint16(got), uint16(want))
		}
	}
	if got := s.Events[0].Packet.String(); got != "< SA 0:0(0) win 1" {
		t.Errorf("String() = %q", got)
	}
	opts := s.Events[4].Packet.Options
	want := []craft.Option{craft.MSSOption(1460), {Kind: craft.OptFastOpen, Data: []byte{1, 0x23, 0xab, 0xcd}},
		craft.SACKOption(craft.SACKBlock{Left: 1, Right: 2}, craft.SACKBlock{Left: 3, Right: 4})}
	if len(opts) != len(want) {
		t.Fatalf("options %v", opts)
	}
	for i := range want {
		if !opts[i].Equal(&want[i]) {
			t.Errorf("option %d: %+v, want %+v", i, opts[i], want[i])
		}
	}
	if s.Unsupported != nil {
		t.Errorf("FO marked unsupported: %v", s.Unsupported)
	}
}

func TestParseSyscalls(t *testing.T) {
	s := mustParse(t, `--tolerance_usecs=10000
--ip_version=ipv4
`+"`echo init`"+`
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0
+0 bind(3, {sa_family=AF_INET, sin_port=htons(8080),
            sin_addr=inet_addr("192.168.0.1")}, 16) = 0
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0 write(3, "abc" "def"..., 6) = 6 // a comment
/* a
   block comment */
+0 `+"`sysctl -q net.ipv4.tcp_sack=1`"+`
`+"`echo cleanup`")
	if len(s.Options) != 2 || s.Options[0].Name != "tolerance_usecs" || s.Options[0].Value != "10000" || s.Options[1].Value != "ipv4" {
		t.Errorf("options %+v", s.Options)
	}
	if s.Init == nil || s.Init.Command != "echo init" || s.Cleanup == nil || s.Cleanup.Command != "echo cleanup" {
		t.Errorf("init %+v cleanup %+v", s.Init, s.Cleanup)
	}
	if len(s.Events) != 8 {
		t.Fatalf("%d events", len(s.Events))
	}
	bind := s.Events[2].Syscall
	if got := joinExprs(bind.Args); got != `3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("192.168.0.1")}, 16` {
		t.Errorf("bind args %s", got)
	}
	conn := s.Events[4].Syscall
	if conn.Result.String() != "-1" || conn.Errno != "EINPROGRESS" || conn.Note != "Operation now in progress" {
		t.Errorf("connect result %v %q %q", conn.Result, conn.Errno, conn.Note)
	}
	if s.Events[3].Syscall.Args[2].String() != "O_RDWR|O_NONBLOCK" {
		t.Errorf("fcntl args %v", s.Events[3].Syscall.Args)
	}
	if w := s.Events[6].Syscall.Args[1].(*StringExpr); w.Value != "abcdef" || !w.Ellipsis {
		t.Errorf("write buffer %+v", w)
	}
	if sh := s.Events[7].Shell; sh == nil || sh.Command != "sysctl -q net.ipv4.tcp_sack=1" {
		t.Errorf("shell event %+v", s.Events[7])
	}
	if err := Validate(s, false); err != nil {
		t.Errorf("Validate: %v", err)
	}
	var se *ScriptError
	if err := Validate(s, true); !errors.As(err, &se) || !se.ModeForbids {
		t.Errorf("Validate(packetsOnly) = %v, want a ModeForbids ScriptError", err)
	}
}

func TestSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", "t.pkt:1:1: expected an event (a time such as 0 or +.1, then a packet, system call or `command`), found end of file"},
		{"0 < Q 0:0(0) win 1", `t.pkt:1:5: Q: invalid TCP flag 'Q' (packetdrill's flags: S F R P U E W A and . for ACK, a digit 0-7 for ACE, or - for none)`},
		{"0 < SQ. 0:0(0) win 1", `t.pkt:1:6: SQ.: invalid TCP flag 'Q' (packetdrill's flags: S F R P U E W A and . for ACK, a digit 0-7 for ACE, or - for none)`},
		{"0 < SE.1 0:0(0) win 1", `t.pkt:1:8: SE.1: conflicting TCP flag '1': one ACE digit, and not with E, W or A`},
		{"0 < S 0:0(0) win 1 <mss 0x10>", `t.pkt:1:25: mss 0x10: MSS "0x10" is not a number (want 0-65535)`},
		{"0 < S 0:0(0) win 1 <nop, sack 1:2 3 /* c */ 4>", `t.pkt:1:45: sack 1:2 3 4: expected ':' between a SACK block's edges (LEFT:RIGHT), found '4'`},
		{"0 < S 0:0(0) win 1 <nop,,nop>", `t.pkt:1:25: empty option (want mss N, wscale N, sackOK, sack L:R, TS val N ecr N, nop, eol, md5 HEX, FO [HEX], FOEXP [HEX])`},
		{"0 < S 0:0(0) win 1 <mss=1>", `t.pkt:1:24: mss: MSS missing (want 0-65535)`},
		{"0 < S 0:0(0) win 1 <FO abc>", `t.pkt:1:24: FO abc: fast open cookie "abc" has an odd number of hex digits`},
		{"0 < S 0:0(0)\n+0 > S. 0:0(0) ack 1 <mss>", "t.pkt:1:3: an inbound (<) packet needs a window (win N)"},
		{"0 > S. 0:0(0) ack 1 <mss>", "t.pkt:1:25: mss: MSS missing (want 0-65535)"},
		{"0 > S 0:5(0)", "t.pkt:1:11: inconsistent sequence numbers and payload length: 0:5 is 5 bytes, not 0"},
		{"0 > S 0:0(0)\n+.1 > . 1:1(0) ack 4294967296", "t.pkt:2:20: the acknowledgement number after ack 4294967296 out of range (0 to 4294967295)"},
		{"0 socket(..., SOCK_STREAM, IPPROTO_TCP) 3", `t.pkt:1:41: expected "=" and the expected result, found number 3`},
		{"0 close(3) = 0\n  +0 frobnicate", `t.pkt:2:16: expected "(" after the system call name, found end of file`},
		{"0 close(3) = 0\n+0 < S 0:0(0) win 1 <mss 1460,wscale>", "t.pkt:2:37: wscale: window scale shift missing (want 0-255)"},
		{"0.5 close(3) = 0", "t.pkt:1:1: the first event must be at time 0, not 0.5"},
		{"0 close(3) = 0 /* unterminated", "t.pkt:1:16: unterminated /* comment"},
		{"0 write(3, \"abc, 3) = 3", "t.pkt:1:12: unterminated string"},
		{"0 close(3) = 0\n+0 `ls", "t.pkt:2:4: unterminated backquoted command"},
		{"0 close(3) = 0\n* close(3) = 0", "t.pkt:2:1: time * can only be used with outbound (>) packets"},
		{"0 close(3) = 0\n+.2~+.1 > S 0:0(0)", `t.pkt:2:4: time range is backwards`},
		{"0 close(3) = 0\n+0 < S 0:0(0) win 1 <...>", "t.pkt:2:22: <...> (options not checked) is only meaningful for outbound (>) packets; write the options tcpcraft should send"},
		{"0 close(3) = 0\n--tolerance_usecs=5", "t.pkt:2:1: option --tolerance_usecs=5 must come before the first event"},
		{"0 close(3) = 0\n`a`\n+0 close(3) = 0", "t.pkt:2:1: a backquoted command without a time must be the first or the last line (init or cleanup command); give it a time (e.g. +0) to run it as an event"},
		{"0 close(3) = 0 ECONNREFUSED (no closing paren\n+0 close(3) = 0", `t.pkt:1:29: unterminated note: "(" without ")" on the same line`},
		{"0 close(3) = 0\n+0 \x01", `t.pkt:2:4: unexpected character '\x01'`},
	} {
		_, err := Parse("t.pkt", []byte(tc.src))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a *SyntaxError", tc.src, err)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got %s\nwant %s", tc.src, err, tc.want)
		}
	}
}

// TestPacketStringRoundTrip: a packet line rendered with String parses back
// to the same packet (the form FAIL messages show is valid script syntax).
func TestPacketStringRoundTrip(t *testing.T) {
	for _, line := range []string{
		"< S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>",
		"> P. 1:1001(1000) ack 1 win 502 <nop,nop,TS val 5 ecr 6>",
		"> R. 0:0(0) ack 1 win 0",
		"< F. 10:10(0) ack 20 win 100 urg 4",
		"> . 1:1(0) ack 1 <...>",
		"> SEW 0:0(0) <mss 536>",
	} {
		s := mustParse(t, "0 "+line)
		if got := s.Events[0].Packet.String(); got != line {
			t.Errorf("String() = %q, want %q", got, line)
		}
	}
}

// TestDefines: -D NAME=VALUE makes the word NAME read as VALUE, typed as
// packetdrill's lexer types it.
func TestDefines(t *testing.T) {
	src := "0 setsockopt(3, CMSG_LEVEL_IP, CMSG_TYPE_RECVERR, [ONE], 4) = 0\n+0 CMD\n+0 write(3, STR, 3) = 3\n"
	s, err := ParseDefines("t.pkt", []byte(src), map[string]string{
		"CMSG_LEVEL_IP": "SOL_IP", "CMSG_TYPE_RECVERR": "IP_RECVERR", "ONE": "0x1", "CMD": "`true`", "STR": `"abc"`})
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Events[0].Syscall
	if got := joinExprs(sc.Args); got != "3, SOL_IP, IP_RECVERR, [0x1], 4" {
		t.Errorf("args = %q", got)
	}
	if v := sc.Args[3].(*ListExpr).Elems[0].(*IntExpr).Value; v != 1 {
		t.Errorf("ONE = %d, want 1", v)
	}
	if s.Events[1].Shell == nil || s.Events[1].Shell.Command != "true" {
		t.Errorf("CMD = %+v, want the command true", s.Events[1])
	}
	if got := s.Events[2].Syscall.Args[1].(*StringExpr).Value; got != "abc" {
		t.Errorf("STR = %q", got)
	}
}

// TestSettings: packetdrill's options, their checks and the defaults the
// addresses take.
func TestSettings(t *testing.T) {
	var s Settings
	for _, kv := range [][2]string{{"ip_version", "ipv6"}, {"mtu", "1520"}, {"remote_ip", "fd3d:fa7b:d17d::1"}, {"mss", "1000"}} {
		if err := s.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	local, remote, gw, err := s.Addrs()
	if err != nil || local.String() != "fd3d:a0b:17d6::1/48" || remote.String() != "fd3d:fa7b:d17d::1" || gw.String() != "fd3d:a0b:17d6:8888::1" {
		t.Errorf("Addrs() = %v %v %v %v", local, remote, gw, err)
	}
	if s.MTU != 1520 || s.MSS != 1000 || s.Family() != 6 {
		t.Errorf("settings = %+v", s)
	}
	for _, bad := range [][2]string{{"mtu", "100"}, {"bind_port", "0"}, {"netmask_ip", "255.0.255.0"}, {"tolerance_percent", "101"}, {"define", "=1"}} {
		if err := s.Set(bad[0], bad[1]); err == nil {
			t.Errorf("Set(%s, %s) = nil, want an error", bad[0], bad[1])
		}
	}
	var v4 Settings
	_ = v4.Set("remote_ip", "192.168.7.7")
	if _, _, _, err := v4.Addrs(); err == nil {
		t.Error("a remote_ip inside the local subnet was accepted")
	}
	_ = v4.Set("remote_ip", "fd00::1")
	if _, _, _, err := v4.Addrs(); err == nil {
		t.Error("an IPv6 remote_ip with ip_version ipv4 was accepted")
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"0 sendmmsg(3, {}, 0) = 0", "t.pkt:1:3: unsupported system call sendmmsg"},
		{"0 close(3, 4) = 0", "t.pkt:1:3: close takes 1 arguments, not 2"},
		{"--wire_client\n0 close(3) = 0", "t.pkt:1:1: option --wire_client is not supported"},
		{"--ip_version=ipv7\n0 close(3) = 0", "t.pkt:1:1: --ip_version=ipv7: want ipv4, ipv6 or ipv4-mapped-ipv6"},
		{"--mss\n0 close(3) = 0", "t.pkt:1:1: option --mss requires an argument"},
		{"--send_omit_free=1\n0 close(3) = 0", "t.pkt:1:1: option --send_omit_free forbids an argument"},
		{"--bogus=1\n0 close(3) = 0", "t.pkt:1:1: option --bogus unknown"},
		{"0 > S 0:0(0) <mss 1460,mptcp capable key=1,nop>", `t.pkt:1:24: TCP option "mptcp" is not supported`},
	} {
		s := mustParse(t, tc.src)
		err := Validate(s, false)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Validate(%q) = %v, want prefix %q", tc.src, err, tc.want)
		}
	}
}

// TestParseInboundMD5: an md5 option on an inbound packet is sent as
// written (kind 19, the digest's bytes).
func TestParseInboundMD5(t *testing.T) {
	s := mustParse(t, "0 < . 1:1(0) ack 1 win 514 <md5 000102030405060708090a0b0c0d0e0f,nop,nop>")
	if s.Unsupported != nil {
		t.Fatalf("inbound md5 refused: %v", s.Unsupported)
	}
	o := s.Events[0].Packet.Options[0]
	if o.Kind != craft.OptMD5 || len(o.Data) != 16 || o.Data[15] != 0x0f {
		t.Errorf("option %+v", o)
	}
}
