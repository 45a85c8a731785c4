package prober

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Each kind of probe reads answers as nmap does: a SYN scan, an ACK scan
// (and probes with RST or SYN+ACK), and FIN/NULL/Xmas scans.
func TestVerdicts(t *testing.T) {
	f := func(s string) craft.Flags {
		fl, err := craft.ParseFlags(s, craft.NotationTcpdump)
		if err != nil {
			t.Fatal(err)
		}
		return fl
	}
	for _, c := range []struct {
		probe, answer string // "" answer: none
		state         State
		reason        string
	}{
		{"S", "S.", Open, ReasonSYNACK},
		{"S", "R.", Closed, ReasonRST},
		{"S", ".", Filtered, ReasonNoResponse}, // a bare ACK says nothing
		{"S", "", Filtered, ReasonNoResponse},
		{"SEC", "S.", Open, ReasonSYNACK}, // ECN setup SYN
		{".", "R", Unfiltered, ReasonRST},
		{".", "", Filtered, ReasonNoResponse},
		{"S.", "R", Unfiltered, ReasonRST},
		{"R", "", Filtered, ReasonNoResponse},
		{"F", "R.", Closed, ReasonRST},
		{"F", "", OpenFiltered, ReasonNoResponse},
		{"none", "", OpenFiltered, ReasonNoResponse},
		{"FPU", "R.", Closed, ReasonRST},
		{"FPU", "", OpenFiltered, ReasonNoResponse},
	} {
		var ts tstate
		k := kindOf(f(c.probe))
		if c.answer != "" {
			ts.verdict = verdictOf(k, f(c.answer))
		}
		state, reason := stateOf(&ts, k)
		if state != c.state || reason != c.reason {
			t.Errorf("probe %s, answer %q: %s (%s), want %s (%s)", c.probe, c.answer, state, reason, c.state, c.reason)
		}
	}
	// An ICMP error settles a filtered verdict with the code's name.
	for _, c := range []struct {
		version, typ, code uint8
		reason             string
	}{
		{4, 3, 3, "icmp-unreach-port-unreachable"},
		{4, 3, 13, "icmp-unreach-admin-prohibited"},
		{4, 3, 4, "icmp-unreach-frag-needed"},
		{4, 11, 0, "icmp-ttl-exceeded"},
		{6, 1, 1, "icmp-unreach-admin-prohibited"},
		{6, 1, 4, "icmp-unreach-port-unreachable"},
		{6, 2, 0, "icmp-packet-too-big"},
		{6, 3, 0, "icmp-hop-limit-exceeded"},
		{4, 3, 99, "icmp-unreach-unreachable-code-99"},
	} {
		ts := tstate{verdict: filteredICMP, icmpVer: c.version, icmpType: c.typ, icmpCode: c.code}
		if state, reason := stateOf(&ts, kindSYN); state != Filtered || reason != c.reason {
			t.Errorf("ICMPv%d %d/%d: %s (%s), want filtered (%s)", c.version, c.typ, c.code, state, reason, c.reason)
		}
	}
}

func results() []TargetResult {
	a := netip.MustParseAddr("10.0.2.20")
	var out []TargetResult
	for p := uint16(1); p <= 40; p++ {
		out = append(out, TargetResult{Target: Target{a, p}, State: Closed, Reason: ReasonRST, RTT: 50 * time.Microsecond, Probes: 1, Answered: 1, Responded: true})
	}
	out[21] = TargetResult{Target: Target{a, 22}, State: Open, Reason: ReasonSYNACK, RTT: 81 * time.Microsecond, ReplyTTL: 64, Probes: 1, Answered: 1, Responded: true}
	out[29] = TargetResult{Target: Target{a, 30}, State: Filtered, Reason: ReasonNoResponse, Probes: 2}
	out[30] = TargetResult{Target: Target{a, 31}, State: Filtered, Reason: "icmp-unreach-admin-prohibited", RTT: 92 * time.Microsecond, From: netip.MustParseAddr("10.0.2.1"), Probes: 1, Answered: 1}
	return out
}

// A long table leaves out the most common state and says how many; the
// rest are aligned, with the RTT or "-", and an ICMP error's reporter.
func TestAppendTable(t *testing.T) {
	got := string(AppendTable(nil, results(), false))
	want := "Not shown: 37 closed (37 rst)\n" +
		"TARGET        STATE     REASON                         RTT\n" +
		"10.0.2.20:22  open      syn-ack                        0.081 ms\n" +
		"10.0.2.20:30  filtered  no-response                    -\n" +
		"10.0.2.20:31  filtered  icmp-unreach-admin-prohibited  0.092 ms from 10.0.2.1\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if all := string(AppendTable(nil, results(), true)); strings.Contains(all, "Not shown") || strings.Count(all, "\n") != 41 {
		t.Errorf("all rows: %d lines\n%s", strings.Count(all, "\n"), all)
	}
	few := results()[:3]
	if got := string(AppendTable(nil, few, false)); strings.Contains(got, "Not shown") || strings.Count(got, "\n") != 4 {
		t.Errorf("a short table hides nothing:\n%s", got)
	}
}

// The JSON forms carry what the issue promises: "type":"port" with addr,
// port, state, reason and rtt_us (absent without an answer), "from" for
// ICMP; "type":"hop" with ttl, addr, rtt_us; a summary with the counts.
func TestJSONForms(t *testing.T) {
	rs := results()
	check := func(v any, want string) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("got  %s\nwant %s", b, want)
		}
	}
	// AppendJSON writes what encoding/json makes of JSON().
	for i := range rs {
		want, _ := json.Marshal(rs[i].JSON())
		if got := rs[i].AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON %s\n  want     %s", got, want)
		}
	}
	check(rs[21].JSON(), `{"type":"port","addr":"10.0.2.20","port":22,"state":"open","reason":"syn-ack","rtt_us":81,"ttl":64,"probes":1,"answered":1}`)
	check(rs[29].JSON(), `{"type":"port","addr":"10.0.2.20","port":30,"state":"filtered","reason":"no-response","probes":2,"answered":0}`)
	check(rs[30].JSON(), `{"type":"port","addr":"10.0.2.20","port":31,"state":"filtered","reason":"icmp-unreach-admin-prohibited","rtt_us":92,"from":"10.0.2.1","probes":1,"answered":1}`)
	hop := Hop{TTL: 1, Addr: netip.MustParseAddr("10.0.2.1"), RTT: 52 * time.Microsecond, ICMP: "ttl-exceeded"}
	check(hop.JSON(), `{"type":"hop","ttl":1,"addr":"10.0.2.1","rtt_us":52,"icmp":"ttl-exceeded"}`)
	check((&Hop{TTL: 2}).JSON(), `{"type":"hop","ttl":2}`)
	last := Hop{TTL: 3, Addr: netip.MustParseAddr("10.9.2.20"), RTT: 90 * time.Microsecond, Final: true, State: Open, Reason: ReasonSYNACK}
	check(last.JSON(), `{"type":"hop","ttl":3,"addr":"10.9.2.20","rtt_us":90,"final":true,"state":"open","reason":"syn-ack"}`)
	if got := string(last.AppendText(nil)); got != " 3  10.9.2.20  0.090 ms  open (syn-ack)" {
		t.Errorf("hop text %q", got)
	}
	if got := string((&Hop{TTL: 2}).AppendText(nil)); got != " 2  *" {
		t.Errorf("silent hop text %q", got)
	}
	res := Result{Targets: rs, Stats: Stats{Probes: 41, Retransmitted: 1, Answered: 39, Resets: 1, Elapsed: 2 * time.Second}}
	s := res.SummaryJSON()
	if s.Targets != 40 || s.Open != 1 || s.Closed != 37 || s.Filtered != 2 || s.Sent != 41 || s.Received != 39 || s.Rate != 20.5 {
		t.Errorf("summary %+v", s)
	}
	if got := res.Summary(); got != "40 targets: 1 open, 37 closed, 2 filtered; 41 probes (1 retransmitted) in 2.000 s (20/s), 39 answered; 1 reset sent; 0 ring drops" {
		t.Errorf("summary line %q", got)
	}
	if !res.AnyResponded() || (&Result{Targets: rs[29:31]}).AnyResponded() {
		t.Error("AnyResponded: want true with TCP answers, false with only ICMP and silence")
	}
}

// The adaptive wait starts at a second and follows RFC 6298's SRTT +
// 4*RTTVAR, never below MinWait nor above InitialWait; a fixed wait wins.
func TestAdaptiveWait(t *testing.T) {
	r := &run{cfg: &Config{}}
	if w := r.waitFor(); w != InitialWait {
		t.Errorf("before any sample: %v", w)
	}
	r.sample(50 * time.Microsecond)
	if w := r.waitFor(); w != MinWait {
		t.Errorf("after a 50 µs sample: %v, want the floor %v", w, MinWait)
	}
	for range 20 {
		r.sample(300 * time.Millisecond)
	}
	if w := r.waitFor(); w < 300*time.Millisecond || w > InitialWait {
		t.Errorf("after 300 ms samples: %v", w)
	}
	r.sample(5 * time.Second)
	if w := r.waitFor(); w != InitialWait {
		t.Errorf("after a 5 s sample: %v, want the ceiling", w)
	}
	r.cfg.Wait = 7 * time.Millisecond
	if w := r.waitFor(); w != 7*time.Millisecond {
		t.Errorf("fixed wait: %v", w)
	}
}

// The pacer lets the first probe go at once and then rate per second,
// caught up after a stall one batch at a time.
func TestPacing(t *testing.T) {
	r := &run{rate: 1000}
	t0 := time.Unix(100, 0)
	if n := r.due(t0); n != 1 {
		t.Fatalf("at the start: %d", n)
	}
	r.paced = 1
	if n := r.due(t0.Add(500 * time.Microsecond)); n != 0 {
		t.Errorf("half a slot later: %d", n)
	}
	if n := r.due(t0.Add(10 * time.Millisecond)); n != 10 {
		t.Errorf("10 ms later: %d, want 10", n)
	}
	if n := r.due(t0.Add(5 * time.Second)); n != batchMax {
		t.Errorf("after a stall: %d, want a batch (%d)", n, batchMax)
	}
	if next := r.nextWake(t0); !next.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("next slot %v, want 1 ms after the start", next.Sub(t0))
	}
	flood := &run{}
	if n := flood.due(t0); n != batchMax {
		t.Errorf("flood: %d", n)
	}
}
