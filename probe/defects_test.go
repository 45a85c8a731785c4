package probe

// Tests of issue 19's defects: a leftover part of a split segment is an
// unexpected packet, reported where the kernel's segment first departed
// from the script; an event is not early only because the one before it
// was late.

import (
	"strings"
	"testing"
	"time"
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
// previous one actually happened, for its latest time, and from the
// previous one's script time, for its earliest: when the previous event
// was (or was seen) 30 ms late, the next may come up to 30 ms before its
// scheduled time without being early.
func TestNotEarlyBecausePreviousLate(t *testing.T) {
	r := &runner{lastT: 100 * time.Millisecond, lastAnchor: 130 * time.Millisecond}
	t0, _, _ := r.schedule(&Event{Time: EventTime{Kind: TimeRelative}})
	if t0 != 130*time.Millisecond || r.slack != 30*time.Millisecond {
		t.Errorf("t = %v, slack = %v; want 130ms, 30ms", t0, r.slack)
	}
	t0, _, _ = r.schedule(&Event{Time: EventTime{Kind: TimeAbsolute, Start: 200 * time.Millisecond}})
	if t0 != 200*time.Millisecond || r.slack != 0 {
		t.Errorf("absolute: t = %v, slack = %v; want 200ms, 0", t0, r.slack)
	}
	// Two inbound packets: counted from the previous one's script time.
	in := &Event{Time: EventTime{Kind: TimeRelative, Start: 10 * time.Millisecond}, Packet: &Packet{Dir: Inbound}}
	r.lastEv = in
	t0, _, _ = r.schedule(in)
	if t0 != 110*time.Millisecond || r.slack != 0 {
		t.Errorf("inbound after inbound: t = %v, slack = %v; want 110ms, 0", t0, r.slack)
	}
}
