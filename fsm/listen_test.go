package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

const (
	fU = craft.FlagURG
	fE = craft.FlagECE
	fW = craft.FlagCWR
)

// allFlagCombos returns every combination of the eight classic flags.
func allFlagCombos() []craft.Flags {
	var fs []craft.Flags
	for f := craft.Flags(0); f < 0x100; f++ {
		fs = append(fs, f)
	}
	return fs
}

// listenerAnswer is what a Linux listener does with a segment from a new
// 4-tuple (tcp_v4_rcv and tcp_rcv_state_process, LISTEN), written out
// from the kernel's order of checks: ACK first (an RST for it, but never
// for an RST), then RST, then SYN without FIN. "drop", "rst" or "synack".
func listenerAnswer(f craft.Flags) string {
	switch {
	case f&fA != 0 && f&fR == 0:
		return "rst"
	case f&fA != 0, f&fR != 0:
		return "drop"
	case f&fS != 0 && f&fF == 0:
		return "synack"
	}
	return "drop"
}

func newTestListener(t *testing.T, backlog int) *Listener {
	t.Helper()
	cfg := plainConfig()
	cfg.RemotePort = 0 // set per SYN
	l, err := NewListener(cfg, ListenConfig{Backlog: backlog})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Every flag combination to a listening port, through a Listener and
// through a Conn in LISTEN: both answer as Linux does (an RST with
// <SEQ=SEG.ACK> to an ACK, a SYN-ACK to a SYN without FIN, nothing to the
// rest, FIN/NULL/Xmas scans included).
func TestListenerEveryFlagCombination(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, f := range allFlagCombos() {
		seg := craft.TCP{SrcPort: rPort, DstPort: lPort, Seq: rISS, Ack: 777, Flags: f, Window: 64000, Options: synOptsPlain}
		want := listenerAnswer(f)

		l := newTestListener(t, 8)
		res, err := l.Input(&seg, peerIP, ourIP, ListenQueue{}, now)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		switch res.Verdict {
		case ListenDrop:
			got = "drop"
		case ListenReply:
			got = "rst"
			if r := res.Reply; r.Flags != fR || r.Seq != 777 || r.SrcPort != lPort || r.DstPort != rPort || len(r.Options) != 0 {
				t.Errorf("%s: reply %s, want [R] seq=777", f, segString(&r))
			}
		case ListenOpen:
			got = "synack"
			out := res.Conn.Output()
			if res.Conn.State() != SynReceived || len(out) != 1 || out[0].Flags != fS|fA || out[0].Ack != rISS+1 {
				t.Errorf("%s: opened a connection in %v sending %d segments", f, res.Conn.State(), len(out))
			}
		}
		if got != want {
			t.Errorf("listener, %s: %s, want %s (cause %v)", f, got, want, res.Cause)
		}
		if ev, ok := res.Event(); ok != (res.Verdict != ListenOpen) || ok && (ev.Kind != SegmentDropped || ev.Cause != res.Cause) {
			t.Errorf("%s: event %+v %v", f, ev, ok)
		}

		h := newHarness(t, plainConfig())
		if err := h.c.Listen(); err != nil {
			t.Fatal(err)
		}
		h.c.Events()
		h.c.Input(&seg, h.now)
		out := h.output()
		got = "drop"
		switch {
		case len(out) == 1 && out[0].Flags == fR && out[0].Seq == 777:
			got = "rst"
		case len(out) == 1 && out[0].Flags == fS|fA && out[0].Ack == rISS+1:
			got = "synack"
		case len(out) != 0:
			got = "other: " + segString(&out[0])
		}
		if got != want {
			t.Errorf("conn in LISTEN, %s: %s, want %s", f, got, want)
		}
		if st := h.c.Stats(); got == "synack" && st.SegsDropped != 0 || got != "synack" && st.SegsDropped != 1 {
			t.Errorf("conn in LISTEN, %s: %d segments dropped", f, st.SegsDropped)
		}
	}
}

// The named scans of the issue: FIN, NULL, Xmas and friends draw nothing,
// SYN+FIN no SYN-ACK, a bare ACK an RST.
func TestListenerScans(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		flags craft.Flags
		data  string
		want  ListenVerdict
		cause Cause
	}{
		{fF, "", ListenDrop, CauseNoSYNInListen},
		{fF | fP, "", ListenDrop, CauseNoSYNInListen},
		{0, "", ListenDrop, CauseNoSYNInListen},
		{fU, "", ListenDrop, CauseNoSYNInListen},
		{fP, "data", ListenDrop, CauseNoSYNInListen},
		{fF | fP | fU, "", ListenDrop, CauseNoSYNInListen},
		{fS | fF, "", ListenDrop, CauseSYNFINInListen},
		{fS | fR, "", ListenDrop, CauseRSTInListen},
		{fR | fA, "", ListenDrop, CauseRSTInListen},
		{fA, "", ListenReply, CauseACKInListen},
		{fS | fA, "", ListenReply, CauseACKInListen},
		{fS | fE | fW, "", ListenOpen, CauseRcvdSYN},
		{fS, "data on the SYN", ListenOpen, CauseRcvdSYN},
	} {
		l := newTestListener(t, 8)
		seg := craft.TCP{SrcPort: rPort, DstPort: lPort, Seq: rISS, Ack: 99, Flags: c.flags, Window: 1000, Payload: []byte(c.data)}
		res, err := l.Input(&seg, peerIP, ourIP, ListenQueue{}, now)
		if err != nil || res.Verdict != c.want || res.Cause != c.cause {
			t.Errorf("%s %q: %v (%v) %v, want %v (%v)", c.flags, c.data, res.Verdict, res.Cause, err, c.want, c.cause)
		}
		if res.Verdict == ListenOpen {
			// Data on a SYN is not acknowledged (no TCP Fast Open).
			if out := res.Conn.Output(); len(out) != 1 || out[0].Ack != rISS+1 {
				t.Errorf("%s %q: SYN-ACK %v", c.flags, c.data, out)
			}
		}
	}
}

// admit, as Linux's tcp_conn_request: a SYN opens a connection while the
// SYN queue has room; beyond it, a cookie (auto, always) or nothing
// (never); with the accept queue full, nothing in any mode.
func TestListenerBacklog(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	syn := craft.TCP{SrcPort: rPort, DstPort: lPort, Seq: rISS, Flags: fS, Window: 1000}
	type want struct {
		v      ListenVerdict
		cookie bool
		cause  Cause
	}
	open := want{ListenOpen, false, CauseRcvdSYN}
	for _, c := range []struct {
		mode SYNCookies
		q    ListenQueue
		want want
	}{
		{SYNCookiesAuto, ListenQueue{0, 0}, open},
		{SYNCookiesAuto, ListenQueue{1, 1}, open},
		{SYNCookiesAuto, ListenQueue{2, 0}, want{ListenReply, true, CauseSYNQueueFull}},
		{SYNCookiesAuto, ListenQueue{2, 1}, want{ListenReply, true, CauseSYNQueueFull}},
		{SYNCookiesAuto, ListenQueue{0, 2}, want{ListenDrop, false, CauseListenQueueFull}},
		{SYNCookiesAuto, ListenQueue{2, 2}, want{ListenDrop, false, CauseListenQueueFull}},
		{SYNCookiesNever, ListenQueue{1, 1}, open},
		{SYNCookiesNever, ListenQueue{2, 0}, want{ListenDrop, false, CauseSYNQueueFull}},
		{SYNCookiesNever, ListenQueue{3, 0}, want{ListenDrop, false, CauseSYNQueueFull}},
		{SYNCookiesNever, ListenQueue{0, 2}, want{ListenDrop, false, CauseListenQueueFull}},
		{SYNCookiesAlways, ListenQueue{0, 0}, want{ListenReply, true, CauseSYNCookiesAlways}},
		{SYNCookiesAlways, ListenQueue{0, 2}, want{ListenDrop, false, CauseListenQueueFull}},
	} {
		l := newCookieListener(t, 2, c.mode)
		res, err := l.Input(&syn, peerIP, ourIP, c.q, now)
		if err != nil {
			t.Fatal(err)
		}
		got := want{res.Verdict, res.Cookie, res.Cause}
		if got != c.want {
			t.Errorf("%v, %+v: %+v, want %+v", c.mode, c.q, got, c.want)
		}
		if got.cookie && (res.Reply.Flags != fS|fA || res.Reply.Ack != rISS+1) {
			t.Errorf("%v, %+v: cookie reply %s", c.mode, c.q, segString(&res.Reply))
		}
		st := l.Stats()
		if st.SYNs != 1 || (st.CookiesSent == 1) != got.cookie || (st.QueueDrops == 1) != (got.v == ListenDrop) {
			t.Errorf("%v, %+v: stats %+v", c.mode, c.q, st)
		}
	}
}

// A connection the Listener opens is a passive one: it reports its way
// from CLOSED through LISTEN, and an RST takes it back to LISTEN.
func TestListenerOpensPassiveConn(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newTestListener(t, 8)
	res, err := l.Input(&craft.TCP{SrcPort: rPort, DstPort: lPort, Seq: rISS, Flags: fS, Window: 1000, Options: synOptsPlain}, peerIP, ourIP, ListenQueue{}, now)
	if err != nil || res.Verdict != ListenOpen {
		t.Fatalf("%v %v", res.Verdict, err)
	}
	c := res.Conn
	if cfg := c.Config(); cfg.LocalPort != lPort || cfg.RemotePort != rPort {
		t.Fatalf("ports %d, %d", cfg.LocalPort, cfg.RemotePort)
	}
	var states []string
	for _, e := range c.Events() {
		if e.Kind == StateChange {
			states = append(states, e.From.String()+">"+e.To.String()+"("+e.Cause.String()+")")
		}
	}
	if got := strings.Join(states, " "); got != "CLOSED>LISTEN(listen() called) LISTEN>SYN-RECEIVED(rcvd SYN)" {
		t.Fatalf("transitions %s", got)
	}
	c.Output()
	c.Input(&craft.TCP{SrcPort: rPort, DstPort: lPort, Seq: rISS + 1, Flags: fR}, now)
	if c.State() != Listen {
		t.Fatalf("state %v after RST, want LISTEN", c.State())
	}
}

func TestNewListenerValidates(t *testing.T) {
	cfg := plainConfig()
	if _, err := NewListener(cfg, ListenConfig{}); err == nil {
		t.Error("backlog 0 accepted")
	}
	cfg.LocalPort = 0
	if _, err := NewListener(cfg, ListenConfig{Backlog: 1}); err == nil {
		t.Error("port 0 accepted")
	}
	cfg = plainConfig()
	cfg.MSS = 10
	if _, err := NewListener(cfg, ListenConfig{Backlog: 1}); err == nil {
		t.Error("MSS 10 accepted")
	}
	l := newTestListener(t, 1)
	res, err := l.Input(&craft.TCP{SrcPort: rPort, DstPort: lPort + 1, Flags: fS}, peerIP, ourIP, ListenQueue{}, time.Now())
	if err != nil || res.Verdict != ListenDrop || res.Cause != CausePortMismatch {
		t.Errorf("segment to another port: %v (%v) %v", res.Verdict, res.Cause, err)
	}
	if errors.Is(err, ErrExists) {
		t.Error("unexpected")
	}
}

// A half-open connection (SYN-RECEIVED from LISTEN) answers as Linux's
// request socket does (tcp_check_req): a SYN in the window draws the RST a
// closed port would send and the connection returns to LISTEN; an ACK of
// something else draws <SEQ=SEG.ACK><CTL=RST> whatever the sequence
// number, and an RST with such an ACK is ignored.
func TestHalfOpenAnswersLikeLinux(t *testing.T) {
	for _, c := range []struct {
		name  string
		seg   craft.TCP
		want  []pat
		state State
	}{
		{"SYN in window", craft.TCP{Flags: fS, Seq: rISS + 1, Window: 1000},
			[]pat{{Flags: fR | fA, Seq: 0, Ack: rISS + 2}}, Listen},
		{"SYN-ACK in window", craft.TCP{Flags: fS | fA, Seq: rISS + 1, Ack: lISS + 1, Window: 1000},
			[]pat{{Flags: fR, Seq: lISS + 1}}, Listen},
		{"SYN+FIN in window", craft.TCP{Flags: fS | fF, Seq: rISS + 1, Window: 1000},
			[]pat{{Flags: fR | fA, Seq: 0, Ack: rISS + 3}}, Listen},
		{"bad ACK out of window", craft.TCP{Flags: fA, Seq: rISS.Sub(100000), Ack: lISS + 1000, Window: 1000},
			[]pat{{Flags: fR, Seq: lISS + 1000}}, SynReceived},
		{"RST with bad ACK", craft.TCP{Flags: fR | fA, Seq: rISS + 1, Ack: lISS + 1000},
			nil, SynReceived},
		{"FIN out of window", craft.TCP{Flags: fF, Seq: rISS.Sub(100000), Window: 1000},
			[]pat{{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000}}, SynReceived},
		{"FIN in window", craft.TCP{Flags: fF, Seq: rISS + 1, Window: 1000},
			nil, SynReceived},
		{"SYN-ACK at the peer's ISN", craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 1000},
			[]pat{{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000}}, SynReceived},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, plainConfig())
			h.toSynReceived()
			h.send(c.seg)
			for i := range c.want {
				if c.want[i].Window == 0 {
					c.want[i].Window = anyWin
				}
			}
			h.expect(c.want...)
			h.expectState(c.state)
			if st := h.c.Stats(); st.SegsDropped != 1 {
				t.Fatalf("%d segments dropped, want 1", st.SegsDropped)
			}
		})
	}
}

// In the synchronized states a segment with none of SYN, RST and ACK is
// dropped before its sequence number is looked at, as Linux does: no ACK
// for one outside the window (RFC 9293 §3.10.7.4 would send one).
func TestNoControlDroppedInSynchronizedStates(t *testing.T) {
	for _, ss := range syncStates() {
		t.Run(ss.state.String(), func(t *testing.T) {
			for _, f := range []craft.Flags{0, fF, fP, fU, fF | fP | fU} {
				for _, seq := range []craft.Seq{ss.rcvNxt, ss.rcvNxt.Sub(100000), ss.rcvNxt + 1<<30} {
					h := newHarness(t, plainConfig())
					ss.reach(h)
					h.c.Events()
					h.send(craft.TCP{Flags: f, Seq: seq, Window: 1000, Payload: []byte("xyz")})
					h.expectNothing()
					h.expectState(ss.state)
					evs := h.events(SegmentDropped)
					if len(evs) != 1 || evs[0].Cause != CauseNoControl || h.c.Readable() != 0 {
						t.Fatalf("%s seq %d: drop events %+v, readable %d", f, seq, evs, h.c.Readable())
					}
				}
			}
		})
	}
}

// An ACK too old (RFC 5961 §5.2) is one dropped segment and one challenge
// ACK: one SegmentDropped event, SegsDropped up by one. (It was dropped
// twice: once before the challenge ACK and once in it.)
func TestTooOldACKDroppedOnce(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	before := h.c.Stats()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS.Sub(200000), Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	evs := h.c.Events()
	var drops, challenges int
	for _, e := range evs {
		switch e.Kind {
		case SegmentDropped:
			drops++
			if e.Cause != CauseACKTooOld {
				t.Errorf("drop cause %v", e.Cause)
			}
		case ChallengeACK:
			challenges++
		}
	}
	st := h.c.Stats()
	if drops != 1 || challenges != 1 || st.SegsDropped-before.SegsDropped != 1 || st.ChallengeACKs-before.ChallengeACKs != 1 {
		t.Fatalf("%d drop events, %d challenge ACK events, SegsDropped +%d, ChallengeACKs +%d; want 1 each",
			drops, challenges, st.SegsDropped-before.SegsDropped, st.ChallengeACKs-before.ChallengeACKs)
	}
}

// Whatever arrives, in whatever state, one segment is dropped at most
// once: SegsDropped grows by at most one per Input, and by as much as the
// SegmentDropped events say.
func TestEachSegmentDroppedAtMostOnce(t *testing.T) {
	reach := []struct {
		name string
		fn   func(*harness)
	}{
		{"SYN-SENT", (*harness).toSynSent},
		{"SYN-RECEIVED", (*harness).toSynReceived},
	}
	for _, ss := range syncStates() {
		reach = append(reach, struct {
			name string
			fn   func(*harness)
		}{ss.state.String(), ss.reach})
	}
	for _, r := range reach {
		for _, f := range allFlagCombos() {
			for _, d := range []struct{ seq, ack int32 }{{1, 1}, {50, 1}, {-200000, 1}, {1, -200000}, {1, 5000}, {0, 0}} {
				h := newHarness(t, plainConfig())
				h.c.cfg.ChallengeACKLimit = 0
				r.fn(h)
				h.c.Events()
				before := h.c.Stats().SegsDropped
				h.send(craft.TCP{Flags: f, Seq: rISS.Add(craft.Size(d.seq)), Ack: lISS.Add(craft.Size(d.ack)), Window: 1000, Payload: []byte("ab")})
				n := h.c.Stats().SegsDropped - before
				if ev := len(h.events(SegmentDropped)); n > 1 || uint64(ev) != n {
					t.Fatalf("%s, %s seq%+d ack%+d: SegsDropped +%d, %d drop events", r.name, f, d.seq, d.ack, n, ev)
				}
			}
		}
	}
}

// Every cause has its text, and String never panics.
func TestCauseStrings(t *testing.T) {
	seen := map[string]Cause{}
	for c := CauseNone + 1; c < numCauses; c++ {
		s := c.String()
		if s == "" {
			t.Errorf("cause %d has no text", c)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("causes %d and %d both read %q", prev, c, s)
		}
		seen[s] = c
	}
	if CauseNone.String() != "" || numCauses.String() != "Cause("+itoa(int(numCauses))+")" {
		t.Errorf("%q %q", CauseNone.String(), numCauses.String())
	}
}
