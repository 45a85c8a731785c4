package cmd

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/stack"
)

var updateGolden = flag.Bool("update-draw", false, "rewrite the golden files in testdata/draw")

// goldenFile compares got with testdata/draw/name (rewritten with
// -update-draw).
func goldenFile(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "draw", name)
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd -run %s -update-draw creates it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// lockedBuffer is a bytes.Buffer safe for the ladder's flush timer.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// session replays what a stack reports for one connection to a tracer.
type replay struct {
	t       *testing.T
	tr      *tracer
	local   netip.AddrPort
	remote  netip.AddrPort
	start   time.Time
	pkt     craft.Packet
	ourSeq  uint32
	peerSeq uint32
}

func (r *replay) at(ms int) time.Time { return r.start.Add(time.Duration(ms) * 100 * time.Microsecond) }

// seg traces one segment: out (from us) or in, at ms tenths of a millisecond.
func (r *replay) seg(dir stack.Direction, ms int, flags craft.Flags, seq, ack uint32, payload string, opts ...craft.Option) {
	r.t.Helper()
	src, dst := r.local, r.remote
	if dir == stack.In {
		src, dst = dst, src
	}
	tcp := craft.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: craft.Seq(seq), Ack: craft.Seq(ack), Flags: flags, Window: 1024, Options: opts, Payload: []byte(payload)}
	raw, err := craft.BuildIPv4TCP(craft.IPv4{TTL: 64, Src: src.Addr(), Dst: dst.Addr()}, &tcp)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := craft.ParsePacket(craft.LinkRaw, raw, &r.pkt, craft.PacketOptions{}); err != nil {
		r.t.Fatal(err)
	}
	r.tr.Segment(dir, r.at(ms), &r.pkt, raw, nil)
}

func (r *replay) state(ms int, from, to fsm.State) {
	r.tr.Event(r.at(ms), r.local, r.remote, fsm.Event{Kind: fsm.StateChange, From: from, To: to})
}

// replayConnect plays a connect session as the stack reports it: the
// segments a step sends first, then that step's events (same time), and
// received segments at their capture time, before the step that handles
// them. Segment 3 of our data is lost and retransmitted.
func replayConnect(t *testing.T, unicode bool) string {
	var out lockedBuffer
	start := time.Unix(1700000000, 0)
	tr := newTracer(&out, traceNormal, false, nil, start)
	tr.attach(newLadderTracer(&out, draw.TextLadder{Width: 80, Unicode: unicode}, true, time.Time{}, draw.LabelOptions{}), nil)
	r := &replay{t: t, tr: tr, start: start,
		local: netip.MustParseAddrPort("10.0.2.21:40000"), remote: netip.MustParseAddrPort("10.0.2.20:80")}
	const (
		S, A, P, F = craft.FlagSYN, craft.FlagACK, craft.FlagPSH, craft.FlagFIN
	)
	tr.note("connecting %v -> %v", r.local, r.remote)
	r.seg(stack.Out, 1, S, 1000, 0, "", craft.MSSOption(1460), craft.SACKPermittedOption(), craft.WindowScaleOption(7))
	r.state(1, fsm.Closed, fsm.SynSent)
	r.seg(stack.In, 5, S|A, 5000, 1001, "", craft.MSSOption(1460), craft.SACKPermittedOption(), craft.WindowScaleOption(7))
	r.seg(stack.Out, 6, A, 1001, 5001, "")
	r.state(6, fsm.SynSent, fsm.Established)
	r.seg(stack.Out, 8, P|A, 1001, 5001, "GET / HTTP/1.0\r\n\r\n")
	r.seg(stack.In, 12, A, 5001, 1019, "")
	r.seg(stack.Out, 13, P|A, 1019, 5001, "more")
	r.seg(stack.Out, 40, P|A, 1019, 5001, "more") // retransmitted
	r.seg(stack.In, 44, P|A, 5001, 1023, "HTTP/1.0 200 OK\r\n\r\nhi\n")
	r.seg(stack.Out, 45, A, 1023, 5024, "")
	r.seg(stack.Out, 47, F|A, 1023, 5024, "")
	r.state(47, fsm.Established, fsm.FinWait1)
	r.seg(stack.In, 50, A, 5024, 1024, "")
	r.state(51, fsm.FinWait1, fsm.FinWait2)
	r.seg(stack.In, 52, F|A, 5024, 1024, "")
	r.seg(stack.Out, 53, A, 1024, 5025, "")
	r.state(53, fsm.FinWait2, fsm.TimeWait)
	tr.Segment(stack.In, r.at(60), nil, []byte{0x45}, errors.New("ipv4: truncated"))
	r.state(200, fsm.TimeWait, fsm.Closed)
	tr.note("done")
	return out.String()
}

func TestLiveLadderGolden(t *testing.T) {
	ascii := replayConnect(t, false)
	goldenFile(t, "live-ladder.ascii.txt", []byte(ascii))
	uni := replayConnect(t, true)
	goldenFile(t, "live-ladder.unicode.txt", []byte(uni))

	if strings.IndexFunc(ascii, func(r rune) bool { return r > 127 }) >= 0 {
		t.Errorf("the ASCII ladder has non-ASCII characters")
	}
	// The Unicode ladder is the ASCII one with other characters.
	toASCII := strings.NewReplacer("│", "|", "─", "-", "╌", "~", "►", ">", "◄", "<", "…", "..")
	if toASCII.Replace(uni) != ascii {
		t.Errorf("the Unicode ladder differs from the ASCII one beyond its characters")
	}
	// Our states (left) appear before the segments of the step that made
	// them; the peer's (right, inferred) before what it sends and after
	// what it receives.
	var order []string
	for _, l := range strings.Split(ascii, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[1] == "|" && f[2] == "|":
			order = append(order, "L:"+f[0])
		case len(f) == 3 && f[0] == "|" && f[1] == "|":
			order = append(order, "R:"+f[2])
		case strings.Contains(l, ">|"):
			order = append(order, ">"+f[2])
		case strings.Contains(l, "|<"):
			order = append(order, "<"+f[2])
		}
	}
	want := "L:SYN-SENT >S R:SYN-RECEIVED <S. L:ESTABLISHED >. R:ESTABLISHED >P. <. >P. >retx <P. >. " +
		"L:FIN-WAIT-1 >F. R:CLOSE-WAIT <. L:FIN-WAIT-2 R:LAST-ACK <F. L:TIME-WAIT >. R:CLOSED L:CLOSED"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("row order:\n got %s\nwant %s", got, want)
	}
	if !strings.HasPrefix(ascii, "tcpcraft: connecting 10.0.2.21:40000 -> 10.0.2.20:80\n") || !strings.HasSuffix(ascii, "tcpcraft: done\n") {
		t.Errorf("notes are not around the ladder:\n%s", ascii)
	}
}

// TestLadderFlushesHeldRows: a sent segment with no state change of its
// moment shows up on its own after a short wait.
func TestLadderFlushesHeldRows(t *testing.T) {
	var out lockedBuffer
	start := time.Unix(1700000000, 0)
	l := newLadderTracer(&out, draw.TextLadder{Width: 80}, true, start, draw.LabelOptions{})
	r := &replay{t: t, tr: newTracer(&out, traceNormal, false, nil, start), start: start,
		local: netip.MustParseAddrPort("10.0.2.21:40000"), remote: netip.MustParseAddrPort("10.0.2.20:80")}
	r.tr.attach(l, nil)
	r.seg(stack.Out, 1, craft.FlagSYN, 1, 0, "")
	if strings.Contains(out.String(), "S seq 0") {
		t.Fatalf("the SYN was written before its moment's events could come")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "S seq 0") {
		if time.Now().After(deadline) {
			t.Fatalf("the held SYN row was never written:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTextLadderFor(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for i, tc := range []struct {
		env  func(string) string
		want bool
	}{
		{env("LANG", "en_US.UTF-8"), true},
		{env("LANG", "C.utf8"), true},
		{env("LC_ALL", "C", "LANG", "en_US.UTF-8"), false}, // LC_ALL wins
		{env("LC_CTYPE", "de_DE.UTF-8", "LANG", "C"), true},
		{env("LANG", "en_US.UTF-8", "TERM", "dumb"), false},
		{env(), false},
	} {
		if got := utf8Locale(tc.env); got != tc.want {
			t.Errorf("case %d: utf8Locale = %v", i, got)
		}
	}
	var buf bytes.Buffer // not a terminal: auto means ASCII, 80 columns
	utf := env("LANG", "en_US.UTF-8")
	if tl, err := textLadderFor(&buf, "auto", 0, utf); err != nil || tl.Unicode || tl.Width != 80 {
		t.Errorf("auto on a buffer: %+v %v", tl, err)
	}
	if tl, err := textLadderFor(&buf, "unicode", 120, env()); err != nil || !tl.Unicode || tl.Width != 120 {
		t.Errorf("unicode forced: %+v %v", tl, err)
	}
	if tl, err := textLadderFor(&buf, "ascii", 0, utf); err != nil || tl.Unicode {
		t.Errorf("ascii forced: %+v %v", tl, err)
	}
	for _, bad := range []struct {
		chars string
		width int
	}{{"ebcdic", 0}, {"auto", 20}, {"auto", -1}, {"auto", 5000}} {
		if _, err := textLadderFor(&buf, bad.chars, bad.width, utf); err == nil || exitCode(err) != codeUsage {
			t.Errorf("%+v: %v, want a usage error", bad, err)
		}
	}
}
