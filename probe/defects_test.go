package probe

// Tests of issue 19's defects: a leftover part of a split segment is an
// unexpected packet, reported where the kernel's segment first departed
// from the script; an event is not early only because the one before it
// was late.

import (
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// TestLeftoverIsUnexpected: the kernel sends 2000 bytes where the script's
// last line expects 1000; the runner splits the segment to match the line,
// and the 1000 bytes left over fail the script at that line, in
// packetdrill's words (packetdrill never splits, so it fails there too).
func TestLeftoverIsUnexpected(t *testing.T) {
	link := newFakeLink(t, dataResponder([]int{2000}))
	f := failureOf(t, runFake(t, dataHandshake+`
+0   > . 1:1001(1000) ack 1 win 500
`, link, Config{}))
	if f.Line != 6 || f.Msg != "error handling packet: live packet payload: expected 1000 bytes vs actual 2000 bytes" {
		t.Errorf("failure %v", f)
	}
	if len(f.Details) != 3 || !strings.Contains(f.Details[2], "the rest (1000 bytes, 1001:2001) matched no later line") {
		t.Errorf("details %q", f.Details)
	}
	// The same with the rest expected: a pass.
	link = newFakeLink(t, dataResponder([]int{2000}))
	if err := runFake(t, dataHandshake+`
+0   > . 1:1001(1000) ack 1 win 500
+0   > P. 1001:2001(1000) ack 1 win 500
`, link, Config{}); err != nil {
		t.Errorf("the rest expected by the next line: %v", err)
	}
}

// TestLeftoverDepartureLine: a 3000-byte segment split for line 6; the
// part line 8 expects is wrong, so the failure names line 6, where the
// kernel's segment first departed from the script, and says what line 8
// found.
func TestLeftoverDepartureLine(t *testing.T) {
	link := newFakeLink(t, dataResponder([]int{3000}))
	f := failureOf(t, runFake(t, dataHandshake+`
+0   > . 1:1001(1000) ack 1 win 500
+0   > . 1001:2001(1000) ack 1 win 500
+0   > . 2001:3001(1000) ack 1 win 500
`, link, Config{}))
	if f.Line != 6 || f.Msg != "error handling packet: live packet payload: expected 1000 bytes vs actual 3000 bytes" {
		t.Errorf("failure %v", f)
	}
	if len(f.Details) != 3 || !strings.Contains(f.Details[2], "the rest then departed from line 8: live packet field tcp_psh") {
		t.Errorf("details %q", f.Details)
	}
}

// TestNotEarlyBecausePreviousLate: a relative event counts from when the
// previous one actually happened, for its latest time; its earliest time
// is less what tcpcraft's own events since the kernel's last packet were
// late by (a chain of +0 system calls, each answered a little late on a
// busy machine, makes the last one late by the sum, while the kernel's
// packet may have left during the first).
func TestNotEarlyBecausePreviousLate(t *testing.T) {
	r := &runner{lastT: 100 * time.Millisecond, lastAnchor: 130 * time.Millisecond, chainSlack: 45 * time.Millisecond}
	t0, _, _ := r.schedule(&Event{Time: EventTime{Kind: TimeRelative}})
	if t0 != 130*time.Millisecond || r.slack != 45*time.Millisecond {
		t.Errorf("t = %v, slack = %v; want 130ms, 45ms", t0, r.slack)
	}
	t0, _, _ = r.schedule(&Event{Time: EventTime{Kind: TimeAbsolute, Start: 200 * time.Millisecond}})
	if t0 != 200*time.Millisecond || r.slack != 0 {
		t.Errorf("absolute: t = %v, slack = %v; want 200ms, 0", t0, r.slack)
	}
	// Two inbound packets: counted from the previous one's script time.
	in := &Event{Time: EventTime{Kind: TimeRelative, Start: 10 * time.Millisecond}, Packet: &Packet{Dir: Inbound}}
	r.lastEv = in
	t0, _, _ = r.schedule(in)
	if t0 != 110*time.Millisecond {
		t.Errorf("inbound after inbound: t = %v; want 110ms", t0)
	}
}

// TestEarlyKernelStillFails: the slack is only what tcpcraft's own
// events were late by. The fake kernel answers the SYN 40 ms after it,
// where the script expects the SYN-ACK 500 ms after: early, a failure,
// whatever the machine's load (the SYN went out on time or late, and the
// SYN-ACK's time counts from when it did).
func TestEarlyKernelStillFails(t *testing.T) {
	answer := func(in craft.TCP) []reply {
		if in.Flags == craft.FlagSYN {
			return []reply{{delay: 40 * time.Millisecond, tcp: craft.TCP{Seq: kernelISN, Ack: in.Seq + 1, Flags: craft.FlagSYN | craft.FlagACK, Window: 100}}}
		}
		return nil
	}
	f := failureOf(t, runFake(t, "0 < S 0:0(0) win 65535\n+.5 > S. 0:0(0) ack 1\n", newFakeLink(t, answer), Config{}))
	if !strings.Contains(f.Msg, "timing error: expected outbound packet at 0.5") {
		t.Errorf("a SYN-ACK 460 ms early: %v", f)
	}
}

// TestParseIPFieldsAndICMP: IP fields and ICMP lines parse to what they
// say and render back; a UDP line is well-formed packetdrill that tcpcraft
// cannot play: a *ScriptError from Validate (exit 1), not a syntax error.
func TestParseIPFieldsAndICMP(t *testing.T) {
	for _, tc := range []struct {
		line string
		ip   IPFields
		icmp *ICMPSpec
	}{
		{"< [ect0] S 0:0(0) win 1000", IPFields{ECN: ECNECT0}, nil},
		{"> [noecn] . 1:1(0) ack 1", IPFields{ECN: ECNNone}, nil},
		{"> [ect01] P. 1:2(1) ack 1", IPFields{ECN: ECNECT01}, nil},
		{"< [ce,flowlabel 0x12345] . 1:1(0) ack 1 win 10", IPFields{ECN: ECNCE, HasFlowLabel: true, FlowLabel: 0x12345}, nil},
		{"< [tos 0x10] . 1:1(0) ack 1 win 10", IPFields{HasTOS: true, TOS: 0x10}, nil},
		{"> [ttl 64] . 1:1(0) ack 1", IPFields{TTL: 64}, nil},
		{"< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]", IPFields{}, &ICMPSpec{Type: "unreachable", Code: "frag_needed", MTU: 1200, Quoted: "tcp", Seq: 1, Len: 1460}},
		{"< icmp packet_too_big mtu 1280 [0:1440(1440)]", IPFields{}, &ICMPSpec{Type: "packet_too_big", MTU: 1280, Quoted: "tcp", Len: 1440}},
		{"< icmp unreachable host_unreachable", IPFields{}, &ICMPSpec{Type: "unreachable", Code: "host_unreachable", MTU: -1}},
		{"< [ttl 3] icmp time_exceeded [udp (8)]", IPFields{TTL: 3}, &ICMPSpec{Type: "time_exceeded", MTU: -1, Quoted: "udp", Len: 8}},
	} {
		s := mustParse(t, "0 "+tc.line)
		pk := s.Events[0].Packet
		if pk.IP != tc.ip {
			t.Errorf("%s: IP %+v, want %+v", tc.line, pk.IP, tc.ip)
		}
		if (pk.ICMP == nil) != (tc.icmp == nil) || (pk.ICMP != nil && *pk.ICMP != *tc.icmp) {
			t.Errorf("%s: ICMP %+v, want %+v", tc.line, pk.ICMP, tc.icmp)
		}
		if got := pk.String(); got != tc.line {
			t.Errorf("String() = %q, want %q", got, tc.line)
		}
		if err := Validate(s, false); err != nil {
			t.Errorf("%s: %v", tc.line, err)
		}
	}
	for _, bad := range []string{"0 < [ect01] S 0:0(0) win 1", "0 < [tos 0x100] S 0:0(0) win 1", "0 < [bogus] S 0:0(0) win 1", "0 < icmp"} {
		if _, err := Parse("t.pkt", []byte(bad)); !IsSyntaxError(err) {
			t.Errorf("%q: %v, want a syntax error", bad, err)
		}
	}
	s := mustParse(t, "0 < udp (100)\n+0 > icmp unreachable\n+1 < S 0:0(0) win 1")
	if len(s.Events) != 3 {
		t.Fatalf("%d events, want 3 (the UDP line skipped as one)", len(s.Events))
	}
	if err := Validate(s, false); err == nil || !strings.Contains(err.Error(), "t.pkt:1:5: udp packets are not supported") {
		t.Errorf("Validate = %v", err)
	}
}

// TestVerifyIP: outbound IP fields are checked in packetdrill's words.
func TestVerifyIP(t *testing.T) {
	seg := segment{tos: 0x02 | 0x10, ttl: 64} // ECT(0), DSCP 4
	for _, tc := range []struct {
		f    IPFields
		want string
	}{
		{IPFields{ECN: ECNECT0}, ""},
		{IPFields{ECN: ECNECT01}, ""},
		{IPFields{HasTOS: true, TOS: 0x12}, ""},
		{IPFields{TTL: 64}, ""},
		{IPFields{ECN: ECNNone}, "live packet field ip_ecn: expected: 0 (0x0) vs actual: 2 (0x2)"},
		{IPFields{ECN: ECNCE}, "live packet field ip_ecn: expected: 3 (0x3) vs actual: 2 (0x2)"},
		{IPFields{HasTOS: true, TOS: 0x10}, "live packet field tos: expected: 16 (0x10) vs actual: 18 (0x12)"},
		{IPFields{TTL: 1}, "live packet field ttl: expected: 1 (0x1) vs actual: 64 (0x40)"},
	} {
		if got := verifyIP(tc.f, seg); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
	if got := verifyIP(IPFields{ECN: ECNECT01}, segment{}); got != "live packet field ip_ecn: expected: 0x1 or 0x2 vs actual: 0x0" {
		t.Errorf("ect01 on not-ECT: %q", got)
	}
}

// TestLeftoverAfterGathering: the kernel's 1000+1000+2000 bytes where the
// last line expects 3000 (issue 19's prr-ss-30pkt-lost1_4: 8000 sent, 7000
// expected): the line gathers 3000 and splits the last segment; the 1000
// left over fail the line, which is reported with all 4000 bytes the
// kernel sent for it.
func TestLeftoverAfterGathering(t *testing.T) {
	link := newFakeLink(t, dataResponder([]int{1000, 1000, 2000}))
	f := failureOf(t, runFake(t, dataHandshake+`
+0   > P. 1:3001(3000) ack 1 win 500
`, link, Config{}))
	if f.Line != 6 || f.Msg != "error handling packet: live packet payload: expected 3000 bytes vs actual 4000 bytes" {
		t.Errorf("failure %v", f)
	}
	if len(f.Details) != 3 || !strings.Contains(f.Details[1], " 1:4001(4000) ") || !strings.Contains(f.Details[2], "the first 3000 bytes: live packet field tcp_psh") {
		t.Errorf("details %q", f.Details)
	}
}
