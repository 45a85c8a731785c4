package fsm

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

var (
	peerIP = netip.MustParseAddr("10.0.2.21")
	ourIP  = netip.MustParseAddr("10.0.2.20")
)

// cookieConfig is the template of a listener that offers everything
// (timestamps, SACK, window scale 7); each gets a secret of its own.
func cookieConfig() Config {
	cfg := DefaultConfig()
	cfg.LocalPort = lPort
	cfg.DelayedACK = 0
	return cfg
}

func newCookieListener(t *testing.T, backlog int, mode SYNCookies) *Listener {
	t.Helper()
	cfg := cookieConfig()
	l, err := NewListener(cfg, ListenConfig{Backlog: backlog, SYNCookies: mode})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// peerSYN is a SYN as a peer offering mss, window scale ws (-1: none),
// SACK and timestamps (tsval; 0: none) sends it.
func peerSYN(mss uint16, ws int, sack bool, tsval uint32) craft.TCP {
	syn := craft.TCP{SrcPort: rPort, DstPort: lPort, Seq: rISS, Flags: fS, Window: 64240}
	if mss != 0 {
		syn.Options = append(syn.Options, craft.Option{Kind: craft.OptMSS, MSS: mss})
	}
	if sack {
		syn.Options = append(syn.Options, craft.Option{Kind: craft.OptSACKPermitted})
	}
	if tsval != 0 {
		syn.Options = append(syn.Options, craft.Option{Kind: craft.OptTimestamps, TSVal: tsval})
	}
	if ws >= 0 {
		syn.Options = append(syn.Options, craft.Option{Kind: craft.OptWindowScale, Shift: uint8(ws)})
	}
	return syn
}

// ackOf is the peer's ACK of the SYN-ACK synack (echoing its timestamp
// when it has one), carrying data.
func ackOf(synack *craft.TCP, tsval uint32, data string) craft.TCP {
	ack := craft.TCP{SrcPort: rPort, DstPort: lPort, Seq: synack.Ack, Ack: synack.Seq.Add(1), Flags: fA, Window: 502, Payload: []byte(data)}
	if o, ok := findTimestamps(synack); ok && tsval != 0 {
		ack.Options = []craft.Option{{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: tsval, TSEcr: o.TSVal}}
	}
	return ack
}

// cookieSYNACK sends syn to l (in a mode that answers it with a cookie)
// and returns the cookie SYN-ACK, its options copied out.
func cookieSYNACK(t *testing.T, l *Listener, syn *craft.TCP, q ListenQueue, now time.Time) craft.TCP {
	t.Helper()
	res, err := l.Input(syn, peerIP, ourIP, q, now)
	if err != nil || res.Verdict != ListenReply || !res.Cookie {
		t.Fatalf("SYN: %v cookie=%v (%v) %v, want a cookie", res.Verdict, res.Cookie, res.Cause, err)
	}
	if ev, ok := res.Event(); !ok || ev.Kind != SYNCookie || ev.Cause != res.Cause {
		t.Fatalf("SYN: event %+v", ev)
	}
	r := res.Reply
	r.Options = append([]craft.Option(nil), r.Options...)
	return r
}

// A cookie round trip: the SYN-ACK looks like the one a half-open Conn
// would send (but for its ISS and timestamp); the ACK that carries the
// cookie back opens an ESTABLISHED connection with the options the SYN
// asked for, which takes the ACK's data and whose sequence numbers and
// timestamps go on from the SYN-ACK's.
func TestCookieRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := cookieConfig()
	cfg.RemotePort = 0
	l, err := NewListener(cfg, ListenConfig{Backlog: 4, SYNCookies: SYNCookiesAlways})
	if err != nil {
		t.Fatal(err)
	}
	syn := peerSYN(1460, 7, true, 12345)
	synack := cookieSYNACK(t, l, &syn, ListenQueue{}, now)

	// The SYN-ACK of a Conn opened by the same SYN: the same but for
	// its ISS and timestamp value.
	plain, err := NewListener(cfg, ListenConfig{Backlog: 4, SYNCookies: SYNCookiesNever})
	if err != nil {
		t.Fatal(err)
	}
	res, err := plain.Input(&syn, peerIP, ourIP, ListenQueue{}, now)
	if err != nil || res.Verdict != ListenOpen {
		t.Fatal(res.Verdict, err)
	}
	normal := res.Conn.Output()[0]
	if synack.Flags != normal.Flags || synack.Ack != normal.Ack || synack.Window != normal.Window || len(synack.Options) != len(normal.Options) {
		t.Fatalf("cookie SYN-ACK %s\nConn's SYN-ACK  %s", segString(&synack), segString(&normal))
	}
	for i, o := range synack.Options {
		n := normal.Options[i]
		if o.Kind == craft.OptTimestamps {
			if o.TSEcr != 12345 {
				t.Errorf("cookie TSecr %d, want the SYN's 12345", o.TSEcr)
			}
			o.TSVal, n.TSVal = 0, 0
		}
		if o.Kind != n.Kind || o.MSS != n.MSS || o.Shift != n.Shift || o.TSEcr != n.TSEcr {
			t.Errorf("option %d: %+v, Conn's %+v", i, o, n)
		}
	}
	ts, _ := findTimestamps(&synack)
	if got := ts.TSVal & (1<<tsOptBits - 1); got != 7|tsOptSACK {
		t.Errorf("options in the timestamp %#x, want wscale 7 + SACK", got)
	}

	now = now.Add(30 * time.Millisecond)
	ack := ackOf(&synack, 12400, "hello")
	res, err = l.Input(&ack, peerIP, ourIP, ListenQueue{}, now)
	if err != nil || res.Verdict != ListenOpen || res.Cause != CauseSYNCookie {
		t.Fatalf("ACK with the cookie: %v (%v) %v", res.Verdict, res.Cause, err)
	}
	c := res.Conn
	if c.State() != Established || c.ISS() != synack.Seq || c.IRS() != rISS {
		t.Fatalf("state %v ISS %d IRS %d, want ESTABLISHED %d %d", c.State(), c.ISS(), c.IRS(), synack.Seq, rISS)
	}
	var causes []Cause
	for _, e := range c.Events() {
		if e.Kind == StateChange {
			causes = append(causes, e.Cause)
		}
	}
	if len(causes) != 3 || causes[1] != CauseSYNCookie || causes[2] != CauseRcvdACKOfSYN {
		t.Errorf("state change causes %v", causes)
	}
	if !c.opt.ws || c.snd.shift != 7 || c.rcv.shift != 7 || !c.opt.sack || !c.opt.ts {
		t.Errorf("agreed ws=%v (%d/%d) sack=%v ts=%v, want all, shift 7", c.opt.ws, c.snd.shift, c.rcv.shift, c.opt.sack, c.opt.ts)
	}
	if st := c.Stats(); st.SndMSS != 1460-12 || st.SndWnd != 502<<7 || st.RTTSamples != 0 {
		t.Errorf("send MSS %d window %d RTT samples %d; want 1448, %d, none (no sample from a cookie)", st.SndMSS, st.SndWnd, st.RTTSamples, 502<<7)
	}
	buf := make([]byte, 10)
	if n, _ := c.Read(buf, now); string(buf[:n]) != "hello" {
		t.Errorf("read %q, want the ACK's data", buf[:n])
	}
	out := c.Output()
	if len(out) != 1 || out[0].Flags != fA || out[0].Seq != synack.Seq+1 || out[0].Ack != rISS+6 {
		t.Fatalf("answer to the ACK's data: %v", out)
	}
	if o, ok := findTimestamps(&out[0]); !ok || tsBefore(o.TSVal, ts.TSVal) || o.TSVal-ts.TSVal > 30+64 || o.TSEcr != 12400 {
		t.Errorf("first timestamp %+v after the cookie's %d: must go on from it (30 ms later)", o, ts.TSVal)
	}
	if _, err := c.Write([]byte("world"), now); err != nil {
		t.Fatal(err)
	}
	if out := c.Output(); len(out) != 1 || out[0].Seq != synack.Seq+1 || string(out[0].Payload) != "world" {
		t.Errorf("data: %v", out)
	}
	if st := l.Stats(); st.CookiesSent != 1 || st.CookiesRecv != 1 || st.CookiesFailed != 0 {
		t.Errorf("listener stats %+v", st)
	}
}

// Every combination of what a SYN may offer comes back from the cookie:
// the MSS rounded down to the table, window scale and SACK through the
// timestamp; without timestamps neither (as Linux).
func TestCookieRecoversOptions(t *testing.T) {
	cfg := cookieConfig()
	cfg.RemotePort = 0
	l, err := NewListener(cfg, ListenConfig{Backlog: 1, SYNCookies: SYNCookiesAlways})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	mssWant := map[uint16]uint16{0: 536, 100: 536, 536: 536, 1299: 536, 1300: 1300, 1439: 1300, 1440: 1440, 1459: 1440, 1460: 1460, 9000: 1460}
	for mss, want := range mssWant {
		for _, ws := range []int{-1, 0, 1, 7, 14} {
			for _, sack := range []bool{false, true} {
				for _, tsval := range []uint32{0, 1, 0xfffffff0} {
					syn := peerSYN(mss, ws, sack, tsval)
					synack := cookieSYNACK(t, l, &syn, ListenQueue{}, now)
					ack := ackOf(&synack, tsval+1, "")
					res, err := l.Input(&ack, peerIP, ourIP, ListenQueue{}, now.Add(time.Second))
					if err != nil || res.Verdict != ListenOpen {
						t.Fatalf("mss %d ws %d sack %v ts %d: %v (%v) %v", mss, ws, sack, tsval, res.Verdict, res.Cause, err)
					}
					c := res.Conn
					hasTS := tsval != 0
					wantWS := ws >= 0 && hasTS
					if c.snd.peerMSS != want || c.opt.ts != hasTS || c.opt.ws != wantWS || c.opt.sack != (sack && hasTS) {
						t.Errorf("mss %d ws %d sack %v ts %v: got mss %d ts %v ws %v sack %v", mss, ws, sack, hasTS, c.snd.peerMSS, c.opt.ts, c.opt.ws, c.opt.sack)
					}
					if wantWS && c.snd.shift != uint8(ws) {
						t.Errorf("ws %d: shift %d", ws, c.snd.shift)
					}
					// The SYN-ACK offered only what the cookie can bring
					// back.
					var offered []craft.OptionKind
					for _, o := range synack.Options {
						if o.Kind != craft.OptNOP {
							offered = append(offered, o.Kind)
						}
					}
					wantN := 1
					if hasTS {
						wantN++
						if sack {
							wantN++
						}
						if ws >= 0 {
							wantN++
						}
					}
					if len(offered) != wantN {
						t.Errorf("mss %d ws %d sack %v ts %v: SYN-ACK offers %v", mss, ws, sack, hasTS, offered)
					}
				}
			}
		}
	}
}

// A cookie is good for at least one minute and at most two (Linux's
// MAX_SYNCOOKIE_AGE), then the ACK is answered as any ACK in LISTEN is:
// with an RST.
func TestCookieExpires(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		after time.Duration
		ok    bool
	}{
		{0, true},
		{59 * time.Second, true},
		{60 * time.Second, true},
		{119 * time.Second, true},
		{120 * time.Second, false},
		{10 * time.Minute, false},
		{255 * time.Minute, false},
		{256 * time.Minute, false}, // the count wraps in 8 bits: still refused
	} {
		l := newCookieListener(t, 1, SYNCookiesAlways)
		syn := peerSYN(1460, -1, false, 0)
		synack := cookieSYNACK(t, l, &syn, ListenQueue{}, start)
		ack := ackOf(&synack, 0, "")
		res, err := l.Input(&ack, peerIP, ourIP, ListenQueue{}, start.Add(c.after))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Verdict == ListenOpen; got != c.ok {
			t.Errorf("ACK %v after the SYN: opened %v, want %v (%v)", c.after, got, c.ok, res.Cause)
		}
		if !c.ok && (res.Verdict != ListenReply || res.Cookie || res.Reply.Flags != fR || res.Reply.Seq != ack.Ack || res.Cause != CauseBadSYNCookie) {
			t.Errorf("expired cookie after %v: %v %s (%v), want <SEQ=SEG.ACK><CTL=RST>", c.after, res.Verdict, segString(&res.Reply), res.Cause)
		}
		if !c.ok && l.Stats().CookiesFailed != 1 {
			t.Errorf("after %v: stats %+v", c.after, l.Stats())
		}
	}
	// The minute counter starts at the listener's first segment: a
	// cookie made at the end of a minute is still good in the next.
	l := newCookieListener(t, 1, SYNCookiesAlways)
	syn := peerSYN(1460, -1, false, 0)
	cookieSYNACK(t, l, &syn, ListenQueue{}, start)
	synack := cookieSYNACK(t, l, &syn, ListenQueue{}, start.Add(59*time.Second))
	ack := ackOf(&synack, 0, "")
	if res, _ := l.Input(&ack, peerIP, ourIP, ListenQueue{}, start.Add(61*time.Second)); res.Verdict != ListenOpen {
		t.Errorf("cookie of 2 s ago across a minute: %v (%v)", res.Verdict, res.Cause)
	}
}

// Forged ACKs open nothing: guessed cookies, a cookie for another 4-tuple
// or another peer ISN, one of another listener (another secret), one whose
// timestamp names options never offered, and any cookie at all while none
// is in use (auto, nothing sent for two minutes).
func TestCookieForgedACKRejected(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	l := newCookieListener(t, 1, SYNCookiesAlways)
	other := newCookieListener(t, 1, SYNCookiesAlways)
	syn := peerSYN(1460, 7, true, 777)
	synack := cookieSYNACK(t, l, &syn, ListenQueue{}, start)
	good := ackOf(&synack, 778, "")

	rng := rand.New(rand.NewPCG(1, 2))
	opened := 0
	for range 20000 {
		ack := good
		ack.Ack = craft.Seq(rng.Uint32())
		if res, _ := l.Input(&ack, peerIP, ourIP, ListenQueue{}, start); res.Verdict == ListenOpen {
			opened++
		}
	}
	// A guess passes when its low 24 bits give an index below 4 for
	// the right count: about 4/2^24 per try (1 in 4 million).
	if opened > 0 {
		t.Errorf("%d of 20000 random cookies opened a connection", opened)
	}

	// The cookie refuses whatever differs from the SYN it was made for.
	for _, c := range []struct {
		name     string
		mutate   func(*craft.TCP)
		src, dst netip.Addr
	}{
		// (A peer ISN a little lower or higher shifts the MSS index,
		// which passes while it stays below 4, as in Linux: the MSS
		// index is not authenticated apart. Four away never passes.)
		{"peer ISN + 4", func(a *craft.TCP) { a.Seq += 4 }, peerIP, ourIP},
		{"cookie + 1 (index 3 + 1)", func(a *craft.TCP) { a.Ack++ }, peerIP, ourIP},
		{"cookie + 2^24", func(a *craft.TCP) { a.Ack += 1 << 24 }, peerIP, ourIP},
		{"other source port", func(a *craft.TCP) { a.SrcPort++ }, peerIP, ourIP},
		{"other source address", func(*craft.TCP) {}, netip.MustParseAddr("10.0.2.22"), ourIP},
		{"other destination address", func(*craft.TCP) {}, peerIP, netip.MustParseAddr("10.0.2.1")},
	} {
		ack := good
		c.mutate(&ack)
		res, _ := l.Input(&ack, c.src, c.dst, ListenQueue{}, start)
		if res.Verdict == ListenOpen || res.Cause != CauseBadSYNCookie {
			t.Errorf("%s: %v (%v), want an RST for a bad cookie", c.name, res.Verdict, res.Cause)
		}
	}
	if res, _ := other.Input(&good, peerIP, ourIP, ListenQueue{}, start); res.Verdict == ListenOpen {
		t.Error("another listener's secret took the cookie")
	}
	// Options the SYN-ACK never offered: ECN, and SACK to a listener
	// without SACK.
	ecn := good
	sts, _ := findTimestamps(&synack)
	ecn.Options = []craft.Option{{Kind: craft.OptTimestamps, TSVal: 778, TSEcr: sts.TSVal | tsOptECN}}
	if res, _ := l.Input(&ecn, peerIP, ourIP, ListenQueue{}, start); res.Verdict == ListenOpen {
		t.Error("a timestamp naming ECN opened a connection")
	}
	noSACK := plainConfig()
	noSACK.RemotePort, noSACK.Timestamps = 0, true
	ln, err := NewListener(noSACK, ListenConfig{Backlog: 1, SYNCookies: SYNCookiesAlways})
	if err != nil {
		t.Fatal(err)
	}
	synack = cookieSYNACK(t, ln, &syn, ListenQueue{}, start)
	forged := ackOf(&synack, 778, "")
	forged.Options[2].TSEcr |= tsOptSACK
	if res, _ := ln.Input(&forged, peerIP, ourIP, ListenQueue{}, start); res.Verdict == ListenOpen {
		t.Error("a timestamp naming SACK opened a connection on a listener without SACK")
	}
	if res, _ := ln.Input(&good, peerIP, ourIP, ListenQueue{}, start); res.Verdict == ListenOpen {
		t.Error("sanity: a cookie of another listener")
	}

	// auto: a cookie is checked only within two minutes of the last one
	// sent; before any, and after, an ACK is just an ACK in LISTEN.
	auto := newCookieListener(t, 1, SYNCookiesAuto)
	ack := good
	if res, _ := auto.Input(&ack, peerIP, ourIP, ListenQueue{}, start); res.Cause != CauseACKInListen || auto.Stats().CookiesFailed != 0 {
		t.Errorf("auto, no cookie sent: %v (%v), %+v", res.Verdict, res.Cause, auto.Stats())
	}
	synack = cookieSYNACK(t, auto, &syn, ListenQueue{HalfOpen: 1}, start)
	good = ackOf(&synack, 778, "")
	if res, _ := auto.Input(&good, peerIP, ourIP, ListenQueue{}, start.Add(time.Minute)); res.Verdict != ListenOpen {
		t.Errorf("auto, cookie in use: %v (%v)", res.Verdict, res.Cause)
	}
	if res, _ := auto.Input(&good, peerIP, ourIP, ListenQueue{}, start.Add(2*time.Minute)); res.Cause != CauseACKInListen {
		t.Errorf("auto, two minutes after the last cookie: %v (%v), want an ACK in LISTEN", res.Verdict, res.Cause)
	}
	// never: no cookies, no checks.
	never := newCookieListener(t, 1, SYNCookiesNever)
	if res, _ := never.Input(&syn, peerIP, ourIP, ListenQueue{HalfOpen: 1}, start); res.Verdict != ListenDrop || res.Cause != CauseSYNQueueFull {
		t.Errorf("never, queue full: %v (%v)", res.Verdict, res.Cause)
	}
}

// A good cookie's ACK while the accept queue is full is dropped (the peer
// sends it again), and the next one, with room, opens the connection.
func TestCookieACKWithFullAcceptQueue(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newCookieListener(t, 2, SYNCookiesAuto)
	syn := peerSYN(1460, -1, false, 0)
	synack := cookieSYNACK(t, l, &syn, ListenQueue{HalfOpen: 2}, now)
	ack := ackOf(&synack, 0, "")
	if res, _ := l.Input(&ack, peerIP, ourIP, ListenQueue{HalfOpen: 2, Accept: 2}, now); res.Verdict != ListenDrop || res.Cause != CauseListenQueueFull {
		t.Errorf("full accept queue: %v (%v)", res.Verdict, res.Cause)
	}
	if res, _ := l.Input(&ack, peerIP, ourIP, ListenQueue{HalfOpen: 2, Accept: 1}, now); res.Verdict != ListenOpen {
		t.Errorf("room again: %v (%v)", res.Verdict, res.Cause)
	}
}

// The cookie codec alone: every MSS index and every option set survives
// make and check, for counts across the 8-bit wrap.
func TestCookieCodec(t *testing.T) {
	j, err := newCookieJar(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_700_000_000, 0)
	j.start(start)
	tp := cookieTuple{src: peerIP, dst: ourIP, srcPort: 40000, dstPort: 7}
	for minute := range 300 {
		now := start.Add(time.Duration(minute) * time.Minute)
		for idx := range uint32(4) {
			isn := craft.Seq(uint32(minute) * 0x9e3779b9)
			iss := j.make(tp, isn, idx, now)
			for _, later := range []time.Duration{0, 119 * time.Second} {
				got, err := j.check(tp, iss, isn, now.Add(later))
				if err != nil || got != idx {
					t.Fatalf("minute %d index %d, checked %v later: %d %v", minute, idx, later, got, err)
				}
			}
			if _, err := j.check(tp, iss, isn, now.Add(120*time.Second)); err == nil {
				t.Fatalf("minute %d: good after 120 s", minute)
			}
		}
	}
	if _, err := newCookieJar(bytes.NewReader(nil)); err == nil {
		t.Error("an empty random source gave a secret")
	}
	for ws := -1; ws <= 14; ws++ {
		for _, sack := range []bool{false, true} {
			for _, ecn := range []bool{false, true} {
				o := cookieOpts{wscale: ws, sack: sack, ecn: ecn}
				for _, clock := range []uint32{0, 63, 64, 1 << 31, 0xffffffff} {
					ts := cookieTS(clock, o)
					if got := cookieOptsOf(ts); got != o {
						t.Errorf("%+v at clock %d: decoded %+v", o, clock, got)
					}
					if tsBefore(clock, ts) || clock-ts >= 1<<tsOptBits {
						t.Errorf("%+v at clock %d: timestamp %d not within 64 below the clock", o, clock, ts)
					}
				}
			}
		}
	}
}

// halfOpenBytes bounds the memory a half-open connection takes (fsm's
// part: its Conn and what the SYN made it allocate).
const halfOpenBytes = 4 << 10

// A flood of SYNs costs a listener no more than halfOpenBytes per slot of
// its SYN queue, and nothing past it (cookies): data on a SYN is not
// kept, and no buffer is allocated before data arrives.
func TestHalfOpenMemoryBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := cookieConfig()
	cfg.RemotePort = 0
	cfg.RecvBufferSize, cfg.SendBufferSize = 6<<20, 4<<20 // cmd's defaults
	const n = 2000
	l, err := NewListener(cfg, ListenConfig{Backlog: n, SYNCookies: SYNCookiesAuto})
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*Conn, 0, n)
	payload := bytes.Repeat([]byte("x"), 1000)
	measure := func(f func()) uint64 {
		runtime.GC()
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.GC()
		runtime.ReadMemStats(&b)
		return b.HeapAlloc - min(a.HeapAlloc, b.HeapAlloc)
	}
	held := measure(func() {
		for i := range n {
			syn := peerSYN(1460, 7, true, 1)
			syn.SrcPort = uint16(1000 + i)
			syn.Payload = payload
			res, err := l.Input(&syn, peerIP, ourIP, ListenQueue{HalfOpen: len(conns)}, now)
			if err != nil || res.Verdict != ListenOpen {
				t.Fatalf("SYN %d: %v %v", i, res.Verdict, err)
			}
			res.Conn.Output()
			res.Conn.Events()
			conns = append(conns, res.Conn)
		}
	})
	t.Logf("a half-open connection holds %d bytes", held/n)
	if per := held / n; per > halfOpenBytes {
		t.Errorf("a half-open connection holds %d bytes, more than %d", per, halfOpenBytes)
	}
	// Past the SYN queue, cookies: nothing is kept.
	more := measure(func() {
		for i := range n {
			syn := peerSYN(1460, 7, true, 1)
			syn.SrcPort = uint16(20000 + i)
			if res, _ := l.Input(&syn, peerIP, ourIP, ListenQueue{HalfOpen: n}, now); !res.Cookie {
				t.Fatalf("SYN past the queue: %v", res.Verdict)
			}
		}
	})
	if more > 64<<10 {
		t.Errorf("%d cookies kept %d bytes", n, more)
	}
	runtime.KeepAlive(conns)
}
