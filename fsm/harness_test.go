package fsm

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Segment-by-segment test harness in the manner of smoltcp's socket tests:
// the test plays the peer, sends segments with send and checks what the
// Conn emits with expect, using templates with "don't care" fields.

const (
	lPort = 49152           // the Conn's port
	rPort = 80              // the scripted peer's port
	lISS  = craft.Seq(1000) // the Conn's ISS
	rISS  = craft.Seq(5000) // the peer's ISS
	lTS   = uint32(100)     // the Conn's timestamp offset
)

const (
	fS = craft.FlagSYN
	fA = craft.FlagACK
	fF = craft.FlagFIN
	fR = craft.FlagRST
	fP = craft.FlagPSH
)

// anyWin in a pattern means "don't care about the window".
const anyWin = -1

// pat is an expected segment. Zero-valued Seq/Ack are compared like any
// other value; Window anyWin and Opts nil are "don't care"; AnySeq skips the
// sequence number.
type pat struct {
	Flags   craft.Flags
	Seq     craft.Seq
	Ack     craft.Seq
	Window  int
	Payload string
	Opts    []craft.Option
	AnySeq  bool
	AnyData bool // payload not compared (only for bulk checks)
}

func flagString(f craft.Flags) string {
	var b strings.Builder
	for _, x := range []struct {
		f craft.Flags
		s string
	}{{fS, "S"}, {fF, "F"}, {fR, "R"}, {fP, "P"}, {fA, "."}} {
		if f&x.f != 0 {
			b.WriteString(x.s)
		}
	}
	return "[" + b.String() + "]"
}

func segString(s *craft.TCP) string {
	return fmt.Sprintf("%s seq=%d ack=%d win=%d len=%d opts=%v", flagString(s.Flags), s.Seq, s.Ack, s.Window, len(s.Payload), s.Options)
}

func (p pat) String() string {
	return fmt.Sprintf("%s seq=%d ack=%d win=%d len=%d opts=%v", flagString(p.Flags), p.Seq, p.Ack, p.Window, len(p.Payload), p.Opts)
}

// match reports how got differs from p, or "".
func (p pat) match(got *craft.TCP) string {
	var diffs []string
	if got.SrcPort != lPort || got.DstPort != rPort {
		diffs = append(diffs, fmt.Sprintf("ports %d→%d", got.SrcPort, got.DstPort))
	}
	if got.Flags != p.Flags {
		diffs = append(diffs, "flags "+flagString(got.Flags))
	}
	if !p.AnySeq && got.Seq != p.Seq {
		diffs = append(diffs, fmt.Sprintf("seq %d", got.Seq))
	}
	if got.Ack != p.Ack {
		diffs = append(diffs, fmt.Sprintf("ack %d", got.Ack))
	}
	if p.Window != anyWin && int(got.Window) != p.Window {
		diffs = append(diffs, fmt.Sprintf("window %d", got.Window))
	}
	if !p.AnyData && !bytes.Equal(got.Payload, []byte(p.Payload)) {
		diffs = append(diffs, fmt.Sprintf("payload %q", got.Payload))
	}
	if p.Opts != nil && !optsEqual(got.Options, p.Opts) {
		diffs = append(diffs, fmt.Sprintf("options %+v", got.Options))
	}
	return strings.Join(diffs, ", ")
}

func optsEqual(a, b []craft.Option) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Kind != y.Kind || x.MSS != y.MSS || x.Shift != y.Shift || x.TSVal != y.TSVal || x.TSEcr != y.TSEcr || len(x.Blocks) != len(y.Blocks) {
			return false
		}
		for j := range x.Blocks {
			if x.Blocks[j] != y.Blocks[j] {
				return false
			}
		}
	}
	return true
}

type harness struct {
	t   *testing.T
	c   *Conn
	now time.Time
	// tsPeer is the peer's timestamp clock, advanced by the tests.
	tsPeer uint32
}

// plainConfig is a configuration without options that change segment
// shapes (no timestamps, SACK or window scaling, immediate ACKs), so
// scenario tests can spell out every field.
func plainConfig() Config {
	cfg := DefaultConfig()
	cfg.LocalPort, cfg.RemotePort = lPort, rPort
	cfg.FixedISS, cfg.ISS = true, lISS
	cfg.FixedTSOffset, cfg.TSOffset = true, lTS
	cfg.Timestamps, cfg.SACK, cfg.WindowScale = false, false, -1
	cfg.DelayedACK = 0
	cfg.RecvBufferSize = 64000
	cfg.SendBufferSize = 64000
	cfg.MSS = 1460
	return cfg
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	c, err := NewConn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, c: c, now: time.Unix(1_700_000_000, 0), tsPeer: 7000}
}

// send delivers seg (ports filled in) to the Conn.
func (h *harness) send(seg craft.TCP) {
	h.t.Helper()
	if seg.SrcPort == 0 {
		seg.SrcPort = rPort
	}
	if seg.DstPort == 0 {
		seg.DstPort = lPort
	}
	h.c.Input(&seg, h.now)
}

// ts returns a timestamps option from the peer echoing ecr.
func (h *harness) ts(ecr uint32) []craft.Option {
	return []craft.Option{{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: h.tsPeer, TSEcr: ecr}}
}

// output drains the Conn's segments.
func (h *harness) output() []craft.TCP { return h.c.Output() }

// expect checks that the Conn sent exactly the segments ps, in order.
func (h *harness) expect(ps ...pat) []craft.TCP {
	h.t.Helper()
	got := h.output()
	if len(got) != len(ps) {
		var b strings.Builder
		for i := range got {
			b.WriteString("\n  " + segString(&got[i]))
		}
		h.t.Fatalf("got %d segments, want %d:%s\nwant first: %v", len(got), len(ps), b.String(), ps)
	}
	for i, p := range ps {
		if d := p.match(&got[i]); d != "" {
			h.t.Fatalf("segment %d: got %s\nwant %v\ndiffers in: %s", i, segString(&got[i]), p, d)
		}
	}
	return got
}

func (h *harness) expectNothing() {
	h.t.Helper()
	h.expect()
}

func (h *harness) expectState(s State) {
	h.t.Helper()
	if h.c.State() != s {
		h.t.Fatalf("state %v, want %v", h.c.State(), s)
	}
}

// advance moves the clock by d and fires due timers.
func (h *harness) advance(d time.Duration) {
	h.now = h.now.Add(d)
	if dl, ok := h.c.NextDeadline(); ok && !dl.After(h.now) {
		h.c.Tick(h.now)
	}
}

// events drains the events and returns those of kind k.
func (h *harness) events(k EventKind) []Event {
	var r []Event
	for _, e := range h.c.Events() {
		if e.Kind == k {
			r = append(r, e)
		}
	}
	return r
}

// expectTransition checks that the drained events contain the state change
// from → to with the given cause (CauseNone: any).
func (h *harness) expectTransition(from, to State, cause Cause) {
	h.t.Helper()
	evs := h.events(StateChange)
	for _, e := range evs {
		if e.From == from && e.To == to && (cause == CauseNone || e.Cause == cause) {
			return
		}
	}
	h.t.Fatalf("no transition %v → %v (%v) among %+v", from, to, cause, evs)
}

func (h *harness) write(s string) {
	h.t.Helper()
	n, err := h.c.Write([]byte(s), h.now)
	if err != nil || n != len(s) {
		h.t.Fatalf("write %q: n=%d err=%v", s, n, err)
	}
}

func (h *harness) read() string {
	h.t.Helper()
	buf := make([]byte, 1<<20)
	n, err := h.c.Read(buf, h.now)
	if err != nil {
		h.t.Fatalf("read: %v", err)
	}
	return string(buf[:n])
}

// Templates for the plain configuration.
var (
	synOptsPlain = []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}
)

// established drives a plainConfig Conn through an active open: it returns
// in ESTABLISHED with lISS+1 / rISS+1 as the next sequence numbers.
func (h *harness) established() {
	h.t.Helper()
	if err := h.c.Connect(h.now); err != nil {
		h.t.Fatal(err)
	}
	h.expect(pat{Flags: fS, Seq: lISS, Window: anyWin})
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000,
		Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: anyWin})
	h.expectState(Established)
	h.c.Events()
}
