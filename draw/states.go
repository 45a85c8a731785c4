package draw

import (
	"fmt"
	"strings"

	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// node is a box of the state diagram. CLOSED appears twice, as in RFC 9293
// Figure 5: where a connection starts (top) and where it ends (bottom).
type node int

const (
	nClosed node = iota
	nListen
	nSynRcvd
	nSynSent
	nEstab
	nFinWait1
	nCloseWait
	nFinWait2
	nClosing
	nLastAck
	nTimeWait
	nClosedEnd
	nodeCount
)

var nodeState = [nodeCount]fsm.State{
	fsm.Closed, fsm.Listen, fsm.SynReceived, fsm.SynSent, fsm.Established, fsm.FinWait1,
	fsm.CloseWait, fsm.FinWait2, fsm.Closing, fsm.LastAck, fsm.TimeWait, fsm.Closed,
}

// nodePos is the centre of each box: the layout of RFC 9293 Figure 5, the
// opening at the top, the closing below, the active closer's states on the
// left and the passive closer's on the right.
var nodePos = [nodeCount]Point{
	nClosed:    {470, 70},
	nListen:    {470, 170},
	nSynRcvd:   {200, 290},
	nSynSent:   {740, 290},
	nEstab:     {470, 410},
	nFinWait1:  {200, 530},
	nClosing:   {470, 530},
	nCloseWait: {740, 530},
	nFinWait2:  {200, 650},
	nTimeWait:  {470, 650},
	nLastAck:   {740, 650},
	nClosedEnd: {605, 770},
}

const boxW, boxH = 150.0, 38.0

// edge is a transition of RFC 9293 Figure 5 (plus FIN-WAIT-1 straight to
// TIME-WAIT on a FIN that acknowledges ours, and RST, which the figure
// leaves out), with its "event / action" label.
type edge struct {
	from, to node
	label    string
	// offset shifts the line sideways so that two edges between the same
	// boxes do not overlap; labelAt is where along it (0..1) the label sits.
	offset, labelAt float64
	// labelDX/DY nudge the label off the line; the sign of labelDX picks
	// the anchor (right of the point, left of it, or centred).
	labelDX, labelDY float64
}

var figure5 = []edge{
	{from: nClosed, to: nListen, label: "passive OPEN", labelAt: 0.5, labelDX: -12, labelDY: 4},
	{from: nClosed, to: nSynSent, label: "active OPEN / snd SYN", labelAt: 0.45, labelDX: 12},
	{from: nListen, to: nSynRcvd, label: "rcv SYN / snd SYN,ACK", labelAt: 0.45, offset: -6, labelDX: -14, labelDY: -8},
	{from: nSynRcvd, to: nListen, label: "rcv RST", labelAt: 0.85, offset: -6, labelDX: -10, labelDY: -10},
	{from: nListen, to: nSynSent, label: "SEND / snd SYN", labelAt: 0.6, labelDX: -8, labelDY: 18},
	{from: nSynSent, to: nSynRcvd, label: "rcv SYN / snd ACK", labelAt: 0.5, labelDY: 16},
	{from: nSynRcvd, to: nEstab, label: "rcv ACK of SYN", labelAt: 0.5, labelDX: -14, labelDY: 14},
	{from: nSynSent, to: nEstab, label: "rcv SYN,ACK / snd ACK", labelAt: 0.5, labelDX: 14, labelDY: 14},
	{from: nSynRcvd, to: nFinWait1, label: "CLOSE / snd FIN", labelAt: 0.35, labelDX: -10},
	{from: nEstab, to: nFinWait1, label: "CLOSE / snd FIN", labelAt: 0.5, labelDX: -14, labelDY: -8},
	{from: nEstab, to: nCloseWait, label: "rcv FIN / snd ACK", labelAt: 0.5, labelDX: 14, labelDY: -8},
	{from: nFinWait1, to: nClosing, label: "rcv FIN / snd ACK", labelAt: 0.5, labelDY: -7},
	{from: nFinWait1, to: nFinWait2, label: "rcv ACK of FIN", labelAt: 0.5, labelDX: -16, labelDY: 4},
	{from: nFinWait1, to: nTimeWait, label: "rcv FIN,ACK of FIN", labelAt: 0.5, labelDX: -4, labelDY: 22},
	{from: nClosing, to: nTimeWait, label: "rcv ACK of FIN", labelAt: 0.5, labelDX: 16, labelDY: 4},
	{from: nFinWait2, to: nTimeWait, label: "rcv FIN / snd ACK", labelAt: 0.5, labelDY: 18},
	{from: nCloseWait, to: nLastAck, label: "CLOSE / snd FIN", labelAt: 0.5, labelDX: 16, labelDY: 4},
	{from: nTimeWait, to: nClosedEnd, label: "timeout 2MSL", labelAt: 0.5, labelDX: -12, labelDY: 8},
	{from: nLastAck, to: nClosedEnd, label: "rcv ACK of FIN", labelAt: 0.5, labelDX: 12, labelDY: 8},
}

// nodeFor maps a state to its box; CLOSED is the start box when it is the
// first state of a path, the end box otherwise.
func nodeFor(s fsm.State, first bool) node {
	if s == fsm.Closed && !first {
		return nClosedEnd
	}
	for n, ns := range nodeState {
		if ns == s {
			return node(n)
		}
	}
	return nClosed
}

// States draws the RFC 9293 state diagram (Figure 5) with the paths the two
// ends of c took highlighted: the client's in blue, the server's in green,
// each transition taken numbered in order along its edge. Transitions the
// figure does not have (a RST, say) are added as dashed edges.
func States(c *flow.Conn) *Canvas {
	const width, height = 980.0, 900.0
	cv := &Canvas{W: width, H: height, Background: colWhite, Kind: "states",
		Title: fmt.Sprintf("RFC 9293 state diagram with the paths of %s", c)}
	cv.add(&Text{Class: "title", X: 24, Y: 30, Size: 15, Bold: true, Color: colText, S: "TCP states (RFC 9293, Figure 5)"})

	taken := map[[2]node][]pathStep{}
	visited := [nodeCount][2]bool{}
	var extra []edge
	for side := range c.Paths {
		path := c.Paths[side]
		if len(path) == 0 {
			continue
		}
		prev := nodeFor(path[0], true)
		visited[prev][side] = true
		for i, s := range path[1:] {
			n := nodeFor(s, false)
			if s == fsm.Listen || (s == fsm.Closed && prev == nListen) {
				n = nodeFor(s, true) // back to the top (RST in SYN-RCVD, CLOSE in LISTEN)
			}
			key := [2]node{prev, n}
			taken[key] = append(taken[key], pathStep{flow.Side(side), i + 1})
			if !inFigure(key) && !inEdges(extra, key) {
				extra = append(extra, edge{from: prev, to: n, label: "", labelAt: 0.5})
			}
			visited[n][side] = true
			prev = n
		}
	}

	margins := map[bool]int{} // routed edges so far, by side (true: right)
	drawEdge := func(e edge, dashed bool) {
		a, b := clipToBox(nodePos[e.from], nodePos[e.to]), clipToBox(nodePos[e.to], nodePos[e.from])
		if e.offset != 0 {
			dx, dy := b.X-a.X, b.Y-a.Y
			l := hypot(dx, dy)
			nx, ny := -dy/l*e.offset, dx/l*e.offset
			a, b = Point{a.X + nx, a.Y + ny}, Point{b.X + nx, b.Y + ny}
		}
		route := []Point{a, b}
		lp := Point{a.X + (b.X-a.X)*e.labelAt + e.labelDX, a.Y + (b.Y-a.Y)*e.labelAt + e.labelDY}
		anchor := Middle
		if e.labelDX > 0 {
			anchor = Start
		} else if e.labelDX < 0 {
			anchor = End
		}
		mp := Point{a.X + (b.X-a.X)*0.5, a.Y + (b.Y-a.Y)*0.5}
		if r, right, ok := marginRoute(e, margins); ok && dashed {
			// Around the diagram, not through it: out of the side of the
			// box, along the margin, into CLOSED from its side.
			route = r
			mp = Point{r[1].X, (r[1].Y + r[2].Y) / 2}
			lp, anchor = Point{r[2].X + 8, r[2].Y - 6}, Start
			if right {
				lp, anchor = Point{r[2].X - 8, r[2].Y - 6}, End
			}
			margins[right]++
		}
		steps := taken[[2]node{e.from, e.to}]
		col, w := colLifeline, 1.2
		class := "edge"
		var sides []string
		for _, s := range steps {
			sides = append(sides, s.side.String())
		}
		switch {
		case containsSide(steps, flow.Client) && containsSide(steps, flow.Server):
			col, w, class = rgb(0x00838f), 3, "edge taken client server"
		case containsSide(steps, flow.Client):
			col, w, class = colClientData, 3, "edge taken client"
		case containsSide(steps, flow.Server):
			col, w, class = colServerData, 3, "edge taken server"
		}
		var dash []float64
		if dashed {
			dash = []float64{6, 4}
		}
		label := e.label
		if label == "" {
			label = transitionWhy(c, e)
		}
		n := len(route)
		drawn := append(append([]Point(nil), route[:n-1]...), shorten(route[n-2], route[n-1], 9))
		items := []Item{
			&Path{Class: "line", Subpaths: [][]Point{drawn}, Stroke: col, Width: w, Dash: dash},
			arrowHead("head", route[n-2], route[n-1], 11, col),
		}
		lcol := colMuted
		if len(steps) > 0 {
			lcol = col
		}
		items = append(items, &Text{Class: "edge-label", X: lp.X, Y: lp.Y, S: label, Size: 11, Color: lcol, Anchor: anchor})
		// Step numbers: which move of which end this was.
		var nums []string
		for _, s := range steps {
			nums = append(nums, fmt.Sprintf("%c%d", strings.ToUpper(s.side.String())[0], s.index))
		}
		if len(nums) > 0 {
			tag := strings.Join(nums, " ")
			tw := textWidth(tag, 10) + 8
			items = append(items,
				&Rect{Class: "step", X: mp.X - tw/2, Y: mp.Y - 8, W: tw, H: 15, Radius: 7, Fill: col},
				&Text{Class: "step", X: mp.X, Y: mp.Y + 3.5, S: tag, Size: 10, Color: colWhite, Anchor: Middle, Bold: true})
		}
		cv.add(&Group{Class: class, Attrs: []Attr{
			{"data-from", nodeState[e.from].String()}, {"data-to", nodeState[e.to].String()},
			{"data-sides", strings.Join(sides, " ")}, {"data-steps", strings.Join(nums, " ")},
		}, Items: items})
	}
	for _, e := range figure5 {
		drawEdge(e, false)
	}
	for _, e := range extra {
		drawEdge(e, true)
	}

	for n := node(0); n < nodeCount; n++ {
		p := nodePos[n]
		fill, stroke, w := rgb(0xf5f5f5), colLifeline, 1.2
		class := "node"
		v := visited[n]
		switch {
		case v[0] && v[1]:
			fill, stroke, w, class = rgb(0xe0f2f1), rgb(0x00838f), 2.5, "node visited client server"
		case v[0]:
			fill, stroke, w, class = rgb(0xe3ecfa), colClientData, 2.5, "node visited client"
		case v[1]:
			fill, stroke, w, class = rgb(0xe8f5e9), colServerData, 2.5, "node visited server"
		}
		cv.add(&Group{Class: class, Attrs: []Attr{{"data-state", nodeState[n].String()}}, Items: []Item{
			&Rect{X: p.X - boxW/2, Y: p.Y - boxH/2, W: boxW, H: boxH, Radius: 8, Fill: fill, Stroke: stroke, Width: w},
			&Text{X: p.X, Y: p.Y + 5, S: nodeState[n].String(), Size: 13, Bold: v[0] || v[1], Color: colText, Anchor: Middle},
		}})
	}

	// The paths in words, under the diagram.
	y := height - 80.0
	for side, col := range [2]Color{colClientData, colServerData} {
		sd := flow.Side(side)
		cv.add(&Text{Class: "path " + sd.String(), X: 24, Y: y, Size: 12, Color: col, Bold: true,
			S: fmt.Sprintf("%s %s: %s", sd, c.Addr[side], PathString(c.Paths[side], " → "))})
		y += 20
	}
	note := "steps: C1, C2… are the client's moves in order, S1, S2… the server's; inferred from the captured segments"
	if c.Partial {
		note = "the capture starts mid-connection: both ends are taken to start ESTABLISHED; " + note
	}
	cv.add(&Text{Class: "note", X: 24, Y: y + 6, Size: 11, Color: colMuted, S: note})
	return cv
}

// pathStep is one move of one end: its index along the end's path.
type pathStep struct {
	side  flow.Side
	index int
}

func containsSide(steps []pathStep, s flow.Side) bool {
	for _, st := range steps {
		if st.side == s {
			return true
		}
	}
	return false
}

// marginRoute routes an edge that is not in Figure 5 and ends in the
// bottom CLOSED (a RST) around the diagram: from a box of the left column
// along the left margin, from the others along the right one. k counts the
// edges already routed on each side, which are kept apart.
func marginRoute(e edge, k map[bool]int) (route []Point, right, ok bool) {
	if e.to != nClosedEnd {
		return nil, false, false
	}
	from, to := nodePos[e.from], nodePos[nClosedEnd]
	switch e.from {
	case nSynRcvd, nFinWait1, nFinWait2:
		x := 60 - 10*float64(k[false])
		return []Point{{from.X - boxW/2, from.Y}, {x, from.Y}, {x, to.Y}, {to.X - boxW/2, to.Y}}, false, true
	case nSynSent, nEstab, nCloseWait, nLastAck:
		x := 900 + 10*float64(k[true])
		return []Point{{from.X + boxW/2, from.Y}, {x, from.Y}, {x, to.Y}, {to.X + boxW/2, to.Y}}, true, true
	}
	return nil, false, false
}

func inFigure(k [2]node) bool { return inEdges(figure5, k) }

func inEdges(es []edge, k [2]node) bool {
	for _, e := range es {
		if e.from == k[0] && e.to == k[1] {
			return true
		}
	}
	return false
}

// transitionWhy finds the reason the flow recorded for a transition that is
// not in the figure ("snd RST", "rcv RST").
func transitionWhy(c *flow.Conn, e edge) string {
	for i := range c.Segments {
		for _, ch := range c.Segments[i].Changes {
			if ch.From == nodeState[e.from] && ch.To == nodeState[e.to] {
				return ch.Why
			}
		}
	}
	return ""
}

// clipToBox returns where the line from the centre a towards b leaves a's
// box.
func clipToBox(a, b Point) Point {
	dx, dy := b.X-a.X, b.Y-a.Y
	if dx == 0 && dy == 0 {
		return a
	}
	tx, ty := 1e9, 1e9
	if dx != 0 {
		tx = (boxW / 2) / abs(dx)
	}
	if dy != 0 {
		ty = (boxH / 2) / abs(dy)
	}
	t := min(tx, ty)
	return Point{a.X + dx*t, a.Y + dy*t}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
