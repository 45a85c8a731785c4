package draw

import (
	"fmt"
	"strconv"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// LadderOptions choose what a ladder shows.
type LadderOptions struct {
	// Count is how many segments to draw from the start (0: all).
	Count int
	// Label says how segments are labelled.
	Label LabelOptions
}

// rowKind says what one row of a ladder holds.
type rowKind int

const (
	rowArrow rowKind = iota // one segment
	rowState                // state changes of one end or both
)

// ladderRow is one row of a ladder, shared by the SVG and text renderings.
type ladderRow struct {
	kind  rowKind
	seg   *flow.Segment
	at    time.Duration // since the connection's first segment
	state [2]string     // rowState: the new state of each side ("" unchanged)
}

// ladderRows lays out the first count segments of c: each segment's arrow,
// the sender's state changes just before it and the receiver's just after
// (RFC 9293 Figure 5's "rcv X / snd Y" read along the arrow). State rows of
// different ends that follow each other share a row.
func ladderRows(c *flow.Conn, count int) []ladderRow {
	segs := c.Segments
	if count > 0 && count < len(segs) {
		segs = segs[:count]
	}
	var rows []ladderRow
	addState := func(at time.Duration, side flow.Side, name string) {
		if n := len(rows); n > 0 && rows[n-1].kind == rowState && rows[n-1].state[side] == "" {
			rows[n-1].state[side] = name
			return
		}
		r := ladderRow{kind: rowState, at: at}
		r.state[side] = name
		rows = append(rows, r)
	}
	for i := range segs {
		s := &segs[i]
		at := s.Time.Sub(c.First)
		for _, ch := range s.Changes {
			if ch.Side == s.From {
				addState(at, ch.Side, ch.To.String())
			}
		}
		rows = append(rows, ladderRow{kind: rowArrow, seg: s, at: at})
		for _, ch := range s.Changes {
			if ch.Side != s.From {
				addState(at, ch.Side, ch.To.String())
			}
		}
	}
	return rows
}

// Colours of the drawings.
var (
	colClientData = rgb(0x1f5fbf) // client to server
	colServerData = rgb(0x2e7d32) // server to client
	colRetransmit = rgb(0xc62828)
	colReset      = rgb(0x6a1b9a)
	colText       = rgb(0x222222)
	colMuted      = rgb(0x777777)
	colGrid       = rgb(0xdddddd)
	colLifeline   = rgb(0x9e9e9e)
	colStateFill  = rgb(0xfff8e1)
	colStateLine  = rgb(0xb08800)
	colWhite      = rgb(0xffffff)
)

// segmentColor picks the colour of a segment's arrow.
func segmentColor(s *flow.Segment) Color {
	switch {
	case s.Retransmit:
		return colRetransmit
	case s.Flags.Has(craft.FlagRST):
		return colReset
	case s.From == flow.Client:
		return colClientData
	}
	return colServerData
}

// segmentClass is the class attribute of a segment's group: "segment",
// its direction ("c2s"/"s2c") and "retransmit" or "rst" when it is one.
func segmentClass(s *flow.Segment) string {
	class := "segment c2s"
	if s.From == flow.Server {
		class = "segment s2c"
	}
	if s.Retransmit {
		class += " retransmit"
	}
	if s.Flags.Has(craft.FlagRST) {
		class += " rst"
	}
	return class
}

// formatRel formats a time since the start as seconds with microseconds.
func formatRel(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 6, 64)
}

// Ladder draws the sequence diagram of c: the client's lifeline on the
// left, the server's on the right, one slanted arrow per segment in capture
// order (rows evenly spaced, not to time scale; the time of each is written
// on the left) and the state each end enters beside its lifeline.
func Ladder(c *flow.Conn, o LadderOptions) *Canvas {
	rows := ladderRows(c, o.Count)
	const (
		width    = 980.0
		leftX    = 250.0
		rightX   = 830.0
		top      = 96.0
		arrowH   = 40.0
		stateH   = 26.0
		slant    = 14.0
		fontSize = 12.0
	)
	h := top + 40
	for _, r := range rows {
		if r.kind == rowArrow {
			h += arrowH
		} else {
			h += stateH
		}
	}
	h += 50
	shown := len(c.Segments)
	if o.Count > 0 && o.Count < shown {
		shown = o.Count
	}
	cv := &Canvas{W: width, H: h, Background: colWhite, Kind: "ladder",
		Title: fmt.Sprintf("ladder diagram of %s > %s: %d of %d segments", c.Client(), c.Server(), shown, len(c.Segments))}

	// Heading: the two ends.
	for side, x := range [2]float64{leftX, rightX} {
		sd := flow.Side(side)
		cv.add(&Group{Class: "endpoint " + sd.String(), Items: []Item{
			&Rect{X: x - 110, Y: 14, W: 220, H: 40, Radius: 6, Fill: rgb(0xeef3fb), Stroke: colLifeline, Width: 1},
			&Text{X: x, Y: 30, S: sd.String(), Size: 12, Color: colMuted, Anchor: Middle},
			&Text{Class: "address", X: x, Y: 47, S: c.Addr[side].String(), Size: 13, Color: colText, Anchor: Middle, Bold: true},
		}})
		cv.add(line("lifeline", Point{x, 54}, Point{x, h - 44}, colLifeline, 1.5))
	}
	cv.add(&Text{Class: "heading", X: 16, Y: 80, S: "time (s)", Size: 11, Color: colMuted})

	stateBox := func(side flow.Side, y float64, name string, initial bool) Item {
		w := textWidth(name, fontSize) + 14
		x := leftX - 10 - w
		if side == flow.Server {
			x = rightX + 10
		}
		class := "state " + side.String()
		if initial {
			class += " initial"
		}
		cx := leftX
		if side == flow.Server {
			cx = rightX
		}
		return &Group{Class: class, Attrs: []Attr{{"data-state", name}}, Items: []Item{
			&Path{Subpaths: [][]Point{{{cx - 3.5, y - 3.5}, {cx + 3.5, y - 3.5}, {cx + 3.5, y + 3.5}, {cx - 3.5, y + 3.5}}}, Fill: colStateLine},
			&Rect{X: x, Y: y - 10, W: w, H: 19, Radius: 4, Fill: colStateFill, Stroke: colStateLine, Width: 1},
			&Text{X: x + w/2, Y: y + 4, S: name, Size: fontSize, Color: colText, Anchor: Middle},
		}}
	}
	y := top
	if len(c.Paths[flow.Client]) > 0 {
		cv.add(stateBox(flow.Client, y, c.Paths[flow.Client][0].String(), true))
		cv.add(stateBox(flow.Server, y, c.Paths[flow.Server][0].String(), true))
	}
	y += 30
	for _, r := range rows {
		if r.kind == rowState {
			y += stateH / 2
			for side, name := range r.state {
				if name != "" {
					cv.add(stateBox(flow.Side(side), y, name, false))
				}
			}
			y += stateH / 2
			continue
		}
		s := r.seg
		col := segmentColor(s)
		from, to := leftX, rightX
		if s.From == flow.Server {
			from, to = rightX, leftX
		}
		y0 := y + 16
		a, b := Point{from, y0}, Point{to, y0 + slant}
		label := SegmentLabel(s, o.Label)
		if s.Retransmit {
			label = "retransmission (" + s.Kind.String() + "): " + label
		}
		spanW := rightX - leftX - 24
		maxChars := int(spanW / (charWidth * fontSize))
		if len([]rune(label)) > maxChars {
			label = string([]rune(label)[:maxChars-1]) + "…"
		}
		var dash []float64
		if s.Retransmit {
			dash = []float64{6, 4}
		}
		mid := Point{(a.X + b.X) / 2, (a.Y + b.Y) / 2}
		cv.add(&Group{Class: segmentClass(s), Attrs: []Attr{
			{"data-n", strconv.Itoa(s.N)}, {"data-flags", flagLetters(s.Flags)},
			{"data-seq", strconv.FormatInt(s.SeqOff, 10)}, {"data-len", strconv.Itoa(s.Len)},
		}, Items: []Item{
			&Text{Class: "time", X: 86, Y: y0 + 4, S: formatRel(r.at), Size: 11, Color: colMuted, Anchor: End},
			line("arrow", a, shorten(a, b, 8), col, 1.6, dash...),
			arrowHead("head", a, b, 10, col),
			&Text{Class: "label", X: mid.X, Y: min(a.Y, b.Y) - 5, S: label, Size: fontSize, Color: col, Anchor: Middle},
		}})
		y += arrowH
	}
	cv.add(&Text{Class: "legend", X: 16, Y: h - 18, Size: 11, Color: colMuted,
		S: "blue: client to server   green: server to client   red dashed: retransmission   rows in capture order, not to time scale"})
	return cv
}

// shorten returns the point d units before b on the line from a to b (where
// an arrow's line meets its head).
func shorten(a, b Point, d float64) Point {
	l := hypot(b.X-a.X, b.Y-a.Y)
	if l <= d {
		return a
	}
	return Point{b.X - (b.X-a.X)/l*d, b.Y - (b.Y-a.Y)/l*d}
}
