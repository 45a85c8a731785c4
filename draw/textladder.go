package draw

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// TextLadder draws a ladder diagram for a terminal, one line per row: the
// time, the left end's state, the left rail, the arrow with its label, the
// right rail, the right end's state. The client is on the left, the server
// on the right. Plain ASCII unless Unicode is set (box-drawing rails and
// arrows, for terminals that can show them).
type TextLadder struct {
	// Width is the line width in columns; below 64 counts as 64.
	Width   int
	Unicode bool
}

const (
	timeCols  = 10 // "%9.6f "
	stateCols = 12 // "SYN-RECEIVED"
	minWidth  = 64
)

type glyphs struct {
	rail, line, retx, right, left, ellipsis string
}

func (l TextLadder) glyphs() glyphs {
	if l.Unicode {
		return glyphs{rail: "│", line: "─", retx: "╌", right: "►", left: "◄", ellipsis: "…"}
	}
	return glyphs{rail: "|", line: "-", retx: "~", right: ">", left: "<", ellipsis: ".."}
}

// span is the number of columns between the rails.
func (l TextLadder) span() int {
	w := max(l.Width, minWidth)
	return w - timeCols - 2*stateCols - 4
}

// Header returns the two heading lines: the ends' names over their rails,
// then the rails with the states the ends start in.
func (l TextLadder) Header(left, right, leftState, rightState string) string {
	total := timeCols + 2*stateCols + 4 + l.span()
	// Names centred on their rails where they fit, kept on the line.
	leftRail := timeCols + stateCols + 1
	rightRail := leftRail + 1 + l.span()
	lstart := max(0, leftRail-utf8.RuneCountInString(left)/2)
	rstart := min(rightRail-utf8.RuneCountInString(right)/2, total-utf8.RuneCountInString(right))
	if rstart < lstart+utf8.RuneCountInString(left)+2 {
		rstart = lstart + utf8.RuneCountInString(left) + 2
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", lstart) + left)
	b.WriteString(strings.Repeat(" ", max(1, rstart-lstart-utf8.RuneCountInString(left))) + right)
	return strings.TrimRight(b.String(), " ") + "\n" + l.States("", leftState, rightState)
}

// States returns a row showing the states the ends enter ("" for an end
// that does not change).
func (l TextLadder) States(at, left, right string) string {
	g := l.glyphs()
	return strings.TrimRight(pad(at, timeCols)+padLeft(left, stateCols)+" "+g.rail+strings.Repeat(" ", l.span())+g.rail+" "+right, " ") + "\n"
}

// Arrow returns a row with an arrow from one rail to the other (toRight:
// from the left end) carrying label; a retransmission is drawn with a
// broken line.
func (l TextLadder) Arrow(at string, toRight bool, label string, retransmit bool) string {
	g := l.glyphs()
	dash := g.line
	if retransmit {
		dash = g.retx
	}
	span := l.span()
	room := span - 6 // two dashes and a space each side, the head
	if utf8.RuneCountInString(label) > room {
		label = string([]rune(label)[:room-utf8.RuneCountInString(g.ellipsis)]) + g.ellipsis
	}
	fill := span - utf8.RuneCountInString(label) - 3 // two spaces, the head
	lead := fill / 2
	trail := fill - lead
	var body string
	if toRight {
		body = strings.Repeat(dash, lead) + " " + label + " " + strings.Repeat(dash, trail) + g.right
	} else {
		body = g.left + strings.Repeat(dash, trail) + " " + label + " " + strings.Repeat(dash, lead)
	}
	return pad(at, timeCols) + strings.Repeat(" ", stateCols) + " " + g.rail + body + g.rail + "\n"
}

// LabelRoom is the widest label an arrow shows in full.
func (l TextLadder) LabelRoom() int { return l.span() - 6 }

// FitLabel is SegmentLabel made to fit room columns: without the window if
// that is what it takes (the arrow cuts what is still too long).
func FitLabel(s *flow.Segment, o LabelOptions, room int) string {
	label := SegmentLabel(s, o)
	if utf8.RuneCountInString(label) > room && !o.NoWindow {
		o.NoWindow = true
		label = SegmentLabel(s, o)
	}
	return label
}

// Note returns a row with text between the rails (errors, remarks).
func (l TextLadder) Note(at, text string) string {
	g := l.glyphs()
	span := l.span()
	if utf8.RuneCountInString(text) > span-2 {
		text = string([]rune(text)[:span-2-utf8.RuneCountInString(g.ellipsis)]) + g.ellipsis
	}
	inner := " " + text + strings.Repeat(" ", span-1-utf8.RuneCountInString(text))
	return pad(at, timeCols) + strings.Repeat(" ", stateCols) + " " + g.rail + inner + g.rail + "\n"
}

// pad left-aligns s in n columns.
func pad(s string, n int) string {
	if k := utf8.RuneCountInString(s); k < n {
		return s + strings.Repeat(" ", n-k)
	}
	return s + " "
}

// padLeft right-aligns s in n columns.
func padLeft(s string, n int) string {
	if k := utf8.RuneCountInString(s); k < n {
		return strings.Repeat(" ", n-k) + s
	}
	return s
}

// TimeColumn formats a time since the start for a row's time column:
// seconds with microseconds, like the text trace.
func TimeColumn(d time.Duration) string { return formatRel(d) }

// LadderText renders the first segments of c (o.Count, 0 for all) as a
// terminal ladder.
func LadderText(c *flow.Conn, o LadderOptions, l TextLadder) string {
	var b strings.Builder
	b.WriteString(l.Header(endpointLabel(c, flow.Client), endpointLabel(c, flow.Server),
		c.Paths[flow.Client][0].String(), c.Paths[flow.Server][0].String()))
	for _, r := range ladderRows(c, o.Count) {
		if r.kind == rowState {
			b.WriteString(l.States("", r.state[flow.Client], r.state[flow.Server]))
			continue
		}
		room := l.LabelRoom()
		if r.seg.Retransmit {
			room -= 5
		}
		label := FitLabel(r.seg, o.Label, room)
		if r.seg.Retransmit {
			label = "retx " + label
		}
		b.WriteString(l.Arrow(formatRel(r.at), r.seg.From == flow.Client, label, r.seg.Retransmit))
	}
	return b.String()
}
