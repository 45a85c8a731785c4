package draw

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// TSGOptions choose what a time-sequence graph shows.
type TSGOptions struct {
	// Sender is the end whose data is plotted; its peer's ACKs, windows
	// and SACK blocks are drawn against it.
	Sender flow.Side
}

// BusierSide returns the end that sent more payload: the natural subject of
// a time-sequence graph.
func BusierSide(c *flow.Conn) flow.Side {
	if c.Stats[flow.Server].Bytes > c.Stats[flow.Client].Bytes {
		return flow.Server
	}
	return flow.Client
}

// More colours of the time-sequence graph.
var (
	colData   = rgb(0x1a1a1a)
	colAck    = rgb(0x2e7d32)
	colWindow = rgb(0xd4a000)
	colSACK   = rgb(0x8e24aa)
	colAxis   = rgb(0x444444)
)

// TimeSequence draws the time-sequence graph of one direction of c, in the
// manner of Stevens (TCP/IP Illustrated) and tcptrace: time runs right,
// sequence offsets (bytes from the sender's ISN) up. Each data segment is a
// vertical bar from its first to its last byte with short caps at both
// ends — black when sent the first time, red when retransmitted. The green
// step line is the peer's cumulative ACK, the yellow one the right edge of
// the window it advertised (ACK + window), and purple bars are the SACK
// blocks the peer reported (RFC 2018). The sequence axis stops a little
// above the data: a window edge beyond it is cut where it leaves the plot,
// and an arrow at the top edge marks the spot, with the offset it went to.
func TimeSequence(c *flow.Conn, o TSGOptions) *Canvas {
	const (
		width, height = 1100.0, 720.0
		x0, x1        = 96.0, 1070.0
		y0, y1        = 92.0, 640.0 // top, bottom of the plot
	)
	snd := o.Sender
	type bar struct {
		seg    *flow.Segment
		t      float64
		lo, hi int64
	}
	type ackPt struct {
		seg     *flow.Segment
		t       float64
		ack, rw int64
	}
	var bars []bar
	var acks []ackPt
	tmax := c.Duration().Seconds()
	var smin, smax int64 = math.MaxInt64, math.MinInt64
	for i := range c.Segments {
		s := &c.Segments[i]
		t := s.Time.Sub(c.First).Seconds()
		if s.From == snd && s.SeqLen() > 0 {
			lo := s.SeqOff
			hi := lo + s.SeqLen()
			bars = append(bars, bar{s, t, lo, hi})
			smin, smax = min(smin, lo), max(smax, hi)
		}
		if s.From != snd && s.Flags.Has(craft.FlagACK) && !s.Flags.Has(craft.FlagRST) {
			a := ackPt{s, t, s.AckOff, s.AckOff + int64(s.WindowBytes)}
			acks = append(acks, a)
			smin, smax = min(smin, a.ack), max(smax, a.ack)
		}
	}
	if smin > smax { // nothing at all: an empty plot of one unit
		smin, smax = 0, 1
	}
	if smax == smin {
		smax = smin + 1
	}
	// Room above the data for the window line to show its lead.
	top := smax + (smax-smin)/8 + 1
	for _, a := range acks {
		if a.rw > smax && a.rw <= smax+(smax-smin)/4 {
			top = max(top, a.rw)
		}
	}
	if tmax <= 0 {
		tmax = 1e-3
	}
	xOf := func(t float64) float64 { return x0 + (x1-x0)*t/tmax }
	yOf := func(off int64) float64 {
		if off > top {
			off = top
		}
		if off < smin {
			off = smin
		}
		return y1 - (y1-y0)*float64(off-smin)/float64(top-smin)
	}

	cv := &Canvas{W: width, H: height, Background: colWhite, Kind: "tsg",
		Title: fmt.Sprintf("time-sequence graph of %s %s's data to %s", c, snd, snd.Other())}
	st := c.Stats[snd]
	cv.add(&Text{Class: "title", X: x0, Y: 28, Size: 15, Bold: true, Color: colText,
		S: fmt.Sprintf("%s %s  →  %s %s", snd, c.Addr[snd], snd.Other(), c.Addr[snd.Other()])})
	cv.add(&Text{Class: "subtitle", X: x0, Y: 48, Size: 12, Color: colMuted,
		S: fmt.Sprintf("%d bytes in %d data segments, %d retransmitted (%d fast, %d after a timeout), over %s",
			st.Bytes, len(bars), st.Retransmits, st.Fast, st.Timeout, formatDuration(c.Duration()))})

	// Axes, grid and ticks.
	xs, xunit, xscale := timeTicks(tmax)
	for _, v := range xs {
		x := xOf(v)
		cv.add(line("grid", Point{x, y0}, Point{x, y1}, colGrid, 1))
		cv.add(&Text{Class: "tick x", X: x, Y: y1 + 18, S: trimFloat(v*xscale, 6), Size: 11, Color: colAxis, Anchor: Middle})
	}
	for _, v := range niceTicks(float64(smin), float64(top), 8) {
		y := yOf(int64(v))
		cv.add(line("grid", Point{x0, y}, Point{x1, y}, colGrid, 1))
		cv.add(&Text{Class: "tick y", X: x0 - 8, Y: y + 4, S: byteLabel(v), Size: 11, Color: colAxis, Anchor: End})
	}
	cv.add(&Path{Class: "axes", Subpaths: [][]Point{{{x0, y0}, {x0, y1}, {x1, y1}}}, Stroke: colAxis, Width: 1.2})
	cv.add(&Text{Class: "axis-label x", X: (x0 + x1) / 2, Y: y1 + 40, S: "time since the first segment (" + xunit + ")", Size: 12, Color: colText, Anchor: Middle})
	cv.add(&Text{Class: "axis-label y", X: 12, Y: y0 - 14, S: "sequence offset (bytes)", Size: 12, Color: colText})

	// The window's right edge and the ACK line, as steps: each value holds
	// until the next ACK changes it.
	if len(acks) > 0 {
		var win, ackLine []Point
		hi := acks[0].ack
		for i, a := range acks {
			x := xOf(a.t)
			if i > 0 {
				win = append(win, Point{x, win[len(win)-1].Y})
				ackLine = append(ackLine, Point{x, ackLine[len(ackLine)-1].Y})
			}
			hi = max(hi, a.ack) // a reordered old ACK moves nothing
			win = append(win, Point{x, yOf(a.rw)})
			ackLine = append(ackLine, Point{x, yOf(hi)})
		}
		end := xOf(tmax)
		win = append(win, Point{end, win[len(win)-1].Y})
		ackLine = append(ackLine, Point{end, ackLine[len(ackLine)-1].Y})
		cv.add(&Path{Class: "window-line", Subpaths: clipAbove(win, y0), Stroke: colWindow, Width: 1.5})
		cv.add(&Path{Class: "ack-line", Subpaths: [][]Point{ackLine}, Stroke: colAck, Width: 1.5})
		// Where the window's edge leaves the plot (the axis stops a little
		// above the data), an arrow at the top edge says so, labelled with
		// the offset it went to, where labels do not crowd each other.
		above, lastLabel := false, math.Inf(-1)
		for _, a := range acks {
			out := a.rw > top
			if out && !above {
				x := xOf(a.t)
				cv.add(&Path{Class: "window-off-plot", Attrs: []Attr{{"data-n", strconv.Itoa(a.seg.N)}, {"data-edge", strconv.FormatInt(a.rw, 10)}},
					Fill: colWindow, Subpaths: [][]Point{{{x - 4, y0 + 7}, {x + 4, y0 + 7}, {x, y0 - 1}}}})
				if x-lastLabel >= 70 {
					cv.add(&Text{Class: "window-off-plot-label", X: x + 6, Y: y0 + 6, S: "window to " + byteLabel(float64(a.rw)), Size: 10, Color: colWindow})
					lastLabel = x
				}
			}
			above = out
		}
	}
	// SACK blocks, just right of the ACK that carried them.
	for _, a := range acks {
		for _, r := range a.seg.SACK {
			x := xOf(a.t) + 2
			cv.add(&Path{Class: "sack", Attrs: []Attr{{"data-n", strconv.Itoa(a.seg.N)}, {"data-start", strconv.FormatInt(r.Start, 10)}, {"data-end", strconv.FormatInt(r.End, 10)}},
				Subpaths: [][]Point{{{x, yOf(r.Start)}, {x, yOf(r.End)}}}, Stroke: colSACK, Width: 1.5})
		}
	}
	// Data segments.
	for _, b := range bars {
		x := xOf(b.t)
		ylo, yhi := yOf(b.lo), yOf(b.hi)
		if ylo-yhi < 1 { // at least a pixel tall
			yhi = ylo - 1
		}
		col, class, width := colData, "data", 1.3
		if b.seg.Retransmit {
			col, class, width = colRetransmit, "data retransmit "+b.seg.Kind.String(), 2.4
		}
		cv.add(&Path{Class: class, Attrs: []Attr{
			{"data-n", strconv.Itoa(b.seg.N)}, {"data-t", strconv.FormatFloat(b.t, 'f', 6, 64)},
			{"data-start", strconv.FormatInt(b.lo, 10)}, {"data-end", strconv.FormatInt(b.hi, 10)},
		}, Subpaths: [][]Point{
			{{x, ylo}, {x, yhi}},
			{{x - 3, ylo}, {x + 3, ylo}},
			{{x - 3, yhi}, {x + 3, yhi}},
		}, Stroke: col, Width: width})
		if b.seg.Retransmit {
			// A marker left of the bar, visible where bars crowd.
			ym := (ylo + yhi) / 2
			cv.add(&Path{Class: "retransmit-marker", Fill: col, Subpaths: [][]Point{{{x - 4, ym}, {x - 11, ym - 4}, {x - 11, ym + 4}}}})
		}
		var mark string
		switch {
		case b.seg.Flags.Has(craft.FlagSYN):
			mark = "SYN"
		case b.seg.Flags.Has(craft.FlagFIN):
			mark = "FIN"
		}
		if mark != "" {
			cv.add(&Text{Class: "marker", X: x + 5, Y: yhi - 3, S: mark, Size: 10, Color: col})
		}
	}

	// Legend.
	lx, ly := x1-250.0, 26.0
	cv.add(&Rect{Class: "legend", X: lx - 10, Y: ly - 16, W: 260, H: 58, Fill: Color{255, 255, 255, 230}, Stroke: colGrid, Width: 1})
	legend := []struct {
		c    Color
		text string
	}{{colData, "data sent"}, {colRetransmit, "retransmission"}, {colAck, "ACK"}, {colWindow, "ACK + window"}, {colSACK, "SACK block"}}
	for i, e := range legend {
		x := lx + float64(i%2)*130
		y := ly + float64(i/2)*17
		cv.add(line("legend", Point{x, y - 4}, Point{x + 16, y - 4}, e.c, 3))
		cv.add(&Text{Class: "legend", X: x + 22, Y: y, S: e.text, Size: 11, Color: colText})
	}
	return cv
}

// clipAbove cuts a polyline where it runs above yTop (where the plot's
// values were clamped), keeping the parts inside as separate subpaths.
func clipAbove(pts []Point, yTop float64) [][]Point {
	var out [][]Point
	var cur []Point
	for i, p := range pts {
		inside := p.Y > yTop+0.01
		if inside {
			if len(cur) == 0 && i > 0 && pts[i-1].Y <= yTop+0.01 && pts[i-1].X == p.X {
				cur = append(cur, Point{p.X, yTop}) // the rise into view
			}
			cur = append(cur, p)
			continue
		}
		if len(cur) > 0 {
			if cur[len(cur)-1].X == p.X {
				cur = append(cur, Point{p.X, yTop}) // the rise out of view
			}
			out = append(out, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// niceTicks returns round values between lo and hi, about n of them.
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		return []float64{lo}
	}
	step := niceStep((hi - lo) / float64(n))
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// timeTicks picks ticks for a time axis of tmax seconds, and the unit to
// label them in.
func timeTicks(tmax float64) (ticks []float64, unit string, scale float64) {
	ticks = niceTicks(0, tmax, 10)
	switch {
	case tmax < 0.002:
		return ticks, "µs", 1e6
	case tmax < 2:
		return ticks, "ms", 1e3
	}
	return ticks, "s", 1
}

// trimFloat formats v with at most prec decimals, trailing zeros cut.
func trimFloat(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if i := len(s); i > 0 && containsDot(s) {
		for s[len(s)-1] == '0' {
			s = s[:len(s)-1]
		}
		if s[len(s)-1] == '.' {
			s = s[:len(s)-1]
		}
	}
	return s
}

func containsDot(s string) bool {
	for i := range s {
		if s[i] == '.' {
			return true
		}
	}
	return false
}

// byteLabel writes a byte offset compactly: 1500, 64k, 1.5M.
func byteLabel(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trimFloat(v/1e6, 2) + "M"
	case a >= 1e4:
		return trimFloat(v/1e3, 1) + "k"
	}
	return trimFloat(v, 0)
}

// formatDuration writes a duration with three significant decimals.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1e3)
	}
	return fmt.Sprintf("%.3f s", d.Seconds())
}
