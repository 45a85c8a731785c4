package cmd

// The live ladder of connect/listen --ladder: every segment as an arrow
// between the client's rail (left) and the server's (right), the state each
// end enters beside its rail. tcpcraft's own states come from its state
// machine; the peer's are inferred from the segments (draw/flow), as a
// capture would show them.

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw"
	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/stack"
)

// ladderFlags are --ladder and its look.
func ladderFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "ladder", Usage: "draw the trace as a ladder diagram: client left, server right, state changes beside each end"},
		&choiceFlag{Name: "ladder-chars", Value: "auto", Usage: "ladder characters: ascii, unicode, or auto (Unicode when standard error is a UTF-8 terminal)",
			Config: choices{values: []string{"auto", "ascii", "unicode"}, aliases: map[string]string{"utf8": "unicode", "utf-8": "unicode"}}},
		&intFlag{Name: "ladder-width", Usage: "ladder width in `COLUMNS`", DefaultText: "the terminal's, else 80", Config: intRange{min: 64, max: 1000}},
	}
}

// ladderHoldBack is how long rows of sent segments wait for a state change
// of the same moment: the stack reports a change after the segments the
// same step sent, but on a ladder the new state belongs before them.
const ladderHoldBack = 25 * time.Millisecond

// ladderTracer draws the live ladder. It implements stack.Tracer; its
// methods may also be called by a tracer that wraps it (cmd/trace.go).
// Another command (probe) can make one with newLadderTracer and hand it to
// its stack.
type ladderTracer struct {
	mu       sync.Mutex
	w        io.Writer
	tl       draw.TextLadder
	start    time.Time
	label    draw.LabelOptions
	localIsC bool // tcpcraft is the client (connect) or the server (listen)

	flows flow.Builder
	conns map[connKey]*ladderConn
	seen  int // connections drawn so far

	held   []string // rows of sent segments, waiting (see ladderHoldBack)
	heldAt time.Time
	timer  *time.Timer
}

// ladderConn is one connection on the ladder.
type ladderConn struct {
	index int
	flow  *flow.Conn
	local flow.Side
	shown [2]fsm.State // the states the rails show, left and right
}

// newLadderTracer returns a ladder writing to w; localIsClient puts
// tcpcraft's end on the left.
func newLadderTracer(w io.Writer, tl draw.TextLadder, localIsClient bool, start time.Time, label draw.LabelOptions) *ladderTracer {
	return &ladderTracer{w: w, tl: tl, start: start, label: label, localIsC: localIsClient, conns: map[connKey]*ladderConn{},
		flows: flow.Builder{LatestOnly: true}}
}

// ladderFromFlags builds the ladder connect/listen asked for, or nil.
func ladderFromFlags(c *cli.Command, localIsClient bool, start time.Time) (*ladderTracer, error) {
	if !flagBool(c, "ladder") {
		if flagIsSet(c, "ladder-chars") || flagIsSet(c, "ladder-width") {
			return nil, usagef("--ladder-chars and --ladder-width need --ladder")
		}
		return nil, nil
	}
	if flagBool(c, "json") || flagBool(c, "quiet") {
		return nil, usagef("--ladder is a trace of its own: not with --json or -q")
	}
	tl, err := textLadderFor(stderr(c), flagString(c, "ladder-chars"), flagInt(c, "ladder-width"), os.Getenv)
	if err != nil {
		return nil, err
	}
	return newLadderTracer(stderr(c), tl, localIsClient, start, draw.LabelOptions{Absolute: flagBool(c, "absolute")}), nil
}

// textLadderFor decides the ladder's characters and width for w: Unicode
// only when asked, or (auto) when w is a terminal and the locale is UTF-8;
// the width given, else the terminal's, else 80 columns.
func textLadderFor(w io.Writer, chars string, width int, getenv func(string) string) (draw.TextLadder, error) {
	tl := draw.TextLadder{Width: 80}
	fd := -1
	if f, ok := w.(*os.File); ok {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			fd = int(f.Fd())
		}
	}
	switch strings.ToLower(chars) {
	case "ascii":
	case "unicode", "utf8", "utf-8":
		tl.Unicode = true
	case "auto", "":
		tl.Unicode = fd >= 0 && utf8Locale(getenv)
	default:
		return tl, usagef("--ladder-chars %q: want ascii, unicode or auto", chars)
	}
	switch {
	case width < 0 || width > 0 && width < 64 || width > 1000:
		return tl, usagef("--ladder-width %d: want 64 to 1000 columns", width)
	case width > 0:
		tl.Width = width
	case fd >= 0:
		if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil && ws.Col >= 64 {
			tl.Width = min(int(ws.Col), 160)
		}
	}
	return tl, nil
}

// utf8Locale reports whether the locale (LC_ALL, else LC_CTYPE, else LANG,
// as setlocale(3) looks them up) uses UTF-8, and the terminal is not "dumb".
func utf8Locale(getenv func(string) string) bool {
	if t := getenv("TERM"); t == "dumb" {
		return false
	}
	for _, name := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := getenv(name); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

// Segment draws one segment (stack.Tracer).
func (l *ladderTracer) Segment(dir stack.Direction, at time.Time, p *craft.Packet, _ []byte, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p == nil {
		l.flushLocked()
		l.write(l.tl.Note(l.timeCol(nil, at), fmt.Sprintf("%s: %v", dir, err)))
		return
	}
	fc, seg := l.flows.Add(0, at, p)
	src := netip.AddrPortFrom(p.Src(), p.TCP.SrcPort)
	dst := netip.AddrPortFrom(p.Dst(), p.TCP.DstPort)
	local, remote := src, dst
	if dir == stack.In {
		local, remote = dst, src
	}
	lc := l.conn(local, remote, fc)
	var rows []string
	// The peer's inferred changes: on sending before the arrow, on
	// receiving after it. Ours come from the state machine (Event).
	for _, ch := range seg.Changes {
		if ch.Side != lc.local && ch.Side == seg.From {
			rows = append(rows, l.stateRow(lc, ch.Side, ch.To))
		}
	}
	room := l.tl.LabelRoom()
	if seg.Retransmit {
		room -= len("retx ")
	}
	label := draw.FitLabel(seg, l.label, room)
	if err != nil {
		label += fmt.Sprintf(" [%v]", err)
	}
	if seg.Retransmit {
		label = "retx " + label
	}
	rows = append(rows, l.tl.Arrow(l.timeCol(lc, at), l.sideOf(lc, seg.From) == flow.Client, label, seg.Retransmit))
	for _, ch := range seg.Changes {
		if ch.Side != lc.local && ch.Side != seg.From {
			rows = append(rows, l.stateRow(lc, ch.Side, ch.To))
		}
	}
	if dir == stack.Out {
		if len(l.held) > 0 && !at.Equal(l.heldAt) {
			l.flushLocked()
		}
		l.held, l.heldAt = append(l.held, rows...), at
		l.armFlush()
		return
	}
	l.flushLocked()
	l.write(rows...)
}

// Event draws our own state changes and errors (stack.Tracer).
func (l *ladderTracer) Event(at time.Time, local, remote netip.AddrPort, ev fsm.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lc := l.conns[connKey{local, remote}]
	var row string
	switch ev.Kind {
	case fsm.StateChange:
		if lc == nil {
			lc = l.conn(local, remote, nil)
		}
		row = l.stateRow(lc, lc.local, ev.To)
		if ev.To == fsm.Closed {
			// Done: a listener serving for days must not keep them all.
			// (Its number stays taken, so rows keep telling them apart.)
			delete(l.conns, connKey{local, remote})
			if lc.flow != nil {
				l.flows.Forget(lc.flow)
			}
		}
	case fsm.Error:
		row = l.tl.Note(l.timeCol(lc, at), fmt.Sprintf("error: %v", ev.Err))
	default:
		return
	}
	if len(l.held) > 0 && at.Equal(l.heldAt) {
		// The change of the step that sent the held segments: it goes
		// first.
		l.held = append([]string{row}, l.held...)
		l.flushLocked()
		return
	}
	l.flushLocked()
	l.write(row)
}

// Print writes text (notes, the summary) after the rows held back.
func (l *ladderTracer) Print(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	l.write(text)
}

// Flush writes rows held back.
func (l *ladderTracer) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *ladderTracer) flushLocked() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	rows := l.held
	l.held = nil
	l.write(rows...)
}

func (l *ladderTracer) armFlush() {
	if l.timer == nil {
		l.timer = time.AfterFunc(ladderHoldBack, l.Flush)
	}
}

func (l *ladderTracer) write(rows ...string) {
	for _, r := range rows { // "" rows are changes already shown
		_, _ = io.WriteString(l.w, r)
	}
}

// conn finds or starts the ladder of a connection, writing its header.
func (l *ladderTracer) conn(local, remote netip.AddrPort, fc *flow.Conn) *ladderConn {
	k := connKey{local, remote}
	lc := l.conns[k]
	if lc == nil {
		lc = &ladderConn{index: l.seen, local: flow.Server, shown: [2]fsm.State{fsm.Closed, fsm.Listen}}
		l.seen++
		if l.localIsC {
			lc.local = flow.Client
		}
		l.conns[k] = lc
		client, server := local, remote
		clientTag, serverTag := " (tcpcraft)", ""
		if !l.localIsC {
			client, server = remote, local
			clientTag, serverTag = "", " (tcpcraft)"
		}
		left := fmt.Sprintf("client %s%s", client, clientTag)
		if l.seen > 1 {
			left = fmt.Sprintf("#%d %s", lc.index, left)
		}
		l.flushLocked()
		l.write(l.tl.Header(left, fmt.Sprintf("server %s%s", server, serverTag), fsm.Closed.String(), fsm.Listen.String()))
	}
	if fc != nil && lc.flow != fc {
		lc.flow = fc
		// The flow's sides follow the SYN; tcpcraft's end is ours.
		if s, ok := fc.SideOf(local); ok {
			lc.local = s
		}
	}
	return lc
}

// sideOf maps a flow side to the ladder's: left is the client, whichever
// end tcpcraft is.
func (l *ladderTracer) sideOf(lc *ladderConn, s flow.Side) flow.Side {
	ours := s == lc.local
	if ours == l.localIsC {
		return flow.Client
	}
	return flow.Server
}

// stateRow is the row showing that side s entered st, or "" when its rail
// already shows st.
func (l *ladderTracer) stateRow(lc *ladderConn, s flow.Side, st fsm.State) string {
	side := l.sideOf(lc, s)
	if lc.shown[side] == st {
		return ""
	}
	lc.shown[side] = st
	if side == flow.Client {
		return l.tl.States("", st.String(), "")
	}
	return l.tl.States("", "", st.String())
}

// timeCol is the time column: seconds since the session started, and the
// connection's number once there are several.
func (l *ladderTracer) timeCol(lc *ladderConn, at time.Time) string {
	d := at.Sub(l.start)
	if l.seen > 1 && lc != nil {
		return fmt.Sprintf("#%d %.4f", lc.index, d.Seconds())
	}
	return draw.TimeColumn(d)
}
