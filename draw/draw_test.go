package draw

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/fsm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// Fixtures (see scripts/make-docs-images.sh and cmd/testdata):
//   linux-http.pcap  Ethernet; curl and python's http.server (12 segments), a
//                    refused SYN, and an IPv6 exchange with a half-close
//   demo.pcap        raw IP; tcpcraft connect fetching / from a kernel HTTP server
//   loss5.pcap       raw IP; tcpcraft uploading 300 KB while the server's
//                    firewall drops 5% of its segments (payloads zeroed)

// loadConns reads a capture with the flow package.
func loadConns(t *testing.T, name string) []*flow.Conn {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var b flow.Builder
	var p craft.Packet
	for n := 1; ; n++ {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := craft.ParsePacket(craft.LinkType(r.LinkType()), data, &p, craft.PacketOptions{}); err != nil {
			t.Fatalf("%s packet %d: %v", name, n, err)
		}
		b.Add(n, ci.Timestamp, &p)
	}
	return b.Conns()
}

// golden compares got with testdata/golden/name (rewritten with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./draw -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s differs from the golden file at line %d:\n got %s\nwant %s", name, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s differs from the golden file: %d lines, golden %d", name, len(gl), len(wl))
	}
}

// svgNode is an element of a parsed SVG document.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []svgNode  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n *svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *svgNode) num(t *testing.T, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(n.attr(name), 64)
	if err != nil {
		t.Fatalf("<%s> attribute %s=%q: %v", n.XMLName.Local, name, n.attr(name), err)
	}
	return v
}

func (n *svgNode) hasClass(c string) bool {
	for _, f := range strings.Fields(n.attr("class")) {
		if f == c {
			return true
		}
	}
	return false
}

// all returns every element (depth first, document order) with the given
// tag ("" any) that has every class in classes.
func (n *svgNode) all(tag string, classes ...string) []*svgNode {
	var out []*svgNode
	var walk func(*svgNode)
	walk = func(m *svgNode) {
		ok := tag == "" || m.XMLName.Local == tag
		for _, c := range classes {
			ok = ok && m.hasClass(c)
		}
		if ok {
			out = append(out, m)
		}
		for i := range m.Children {
			walk(&m.Children[i])
		}
	}
	walk(n)
	return out
}

// text returns the text of the first <text> under n with class c.
func (n *svgNode) text(c string) string {
	for _, m := range n.all("text", c) {
		return strings.TrimSpace(m.Text)
	}
	return ""
}

// parseSVG renders cv, parses it back and checks the root element.
func parseSVG(t *testing.T, cv *Canvas) (*svgNode, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := cv.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	var root svgNode
	if err := xml.Unmarshal(buf.Bytes(), &root); err != nil {
		t.Fatalf("the SVG does not parse: %v", err)
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element %v", root.XMLName)
	}
	w, h := root.num(t, "width"), root.num(t, "height")
	if w != cv.W || h != cv.H || root.attr("viewBox") != fmt.Sprintf("0 0 %s %s", num(w), num(h)) {
		t.Errorf("size %vx%v viewBox %q, canvas %vx%v", w, h, root.attr("viewBox"), cv.W, cv.H)
	}
	// Every coordinate lies on the canvas.
	for _, e := range root.all("") {
		for _, a := range []string{"x", "y"} {
			if s := e.attr(a); s != "" {
				v, err := strconv.ParseFloat(s, 64)
				lim := w
				if a == "y" {
					lim = h
				}
				if err != nil || v < 0 || v > lim {
					t.Errorf("<%s class=%q> %s=%q is off the canvas", e.XMLName.Local, e.attr("class"), a, s)
				}
			}
		}
	}
	return &root, buf.Bytes()
}

// pathPoints parses the "M x y L x y ..." data of a path into subpaths.
func pathPoints(t *testing.T, d string) [][]Point {
	t.Helper()
	var out [][]Point
	f := strings.Fields(d)
	for i := 0; i < len(f); {
		cmd := f[i]
		if cmd == "Z" {
			i++
			continue
		}
		if len(cmd) < 2 || (cmd[0] != 'M' && cmd[0] != 'L') || i+1 >= len(f) {
			t.Fatalf("path data %q: bad token %q", d, cmd)
		}
		x, err1 := strconv.ParseFloat(cmd[1:], 64)
		y, err2 := strconv.ParseFloat(f[i+1], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("path data %q: bad numbers at %d", d, i)
		}
		if cmd[0] == 'M' {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], Point{x, y})
		i += 2
	}
	return out
}

func TestLadderSVG(t *testing.T) {
	conns := loadConns(t, "linux-http.pcap")
	c := conns[0]
	root, raw := parseSVG(t, Ladder(c, LadderOptions{}))
	golden(t, "linux-http.ladder.svg", raw)
	if root.attr("class") != "tcpcraft-ladder" {
		t.Errorf("root class %q", root.attr("class"))
	}
	segs := root.all("g", "segment")
	if len(segs) != 12 {
		t.Fatalf("%d segment groups, want 12", len(segs))
	}
	wantFlags := []string{"S", "S.", ".", "P.", ".", "P.", ".", "P.", ".", "F.", "F.", "."}
	lastY := 0.0
	for i, g := range segs {
		if g.attr("data-n") != strconv.Itoa(i+1) || g.attr("data-flags") != wantFlags[i] {
			t.Errorf("segment %d: data-n %s flags %q, want %d %q", i, g.attr("data-n"), g.attr("data-flags"), i+1, wantFlags[i])
		}
		arrows := g.all("path", "arrow")
		if len(arrows) != 1 || len(g.all("path", "head")) != 1 {
			t.Fatalf("segment %d: %d arrows", i, len(arrows))
		}
		pts := pathPoints(t, arrows[0].attr("d"))[0]
		a, b := pts[0], pts[1]
		c2s := g.hasClass("c2s")
		if c2s && !(a.X < b.X) || !c2s && !(a.X > b.X) {
			t.Errorf("segment %d (%s): arrow from x=%v to x=%v goes the wrong way", i+1, g.attr("class"), a.X, b.X)
		}
		if !(b.Y > a.Y) || a.Y <= lastY {
			t.Errorf("segment %d: arrow y %v..%v after %v: rows must go down the page", i+1, a.Y, b.Y, lastY)
		}
		lastY = a.Y
	}
	clientSends := map[int]bool{1: true, 3: true, 4: true, 7: true, 9: true, 11: true}
	for i, g := range segs {
		if g.hasClass("c2s") != clientSends[i+1] || g.hasClass("s2c") == clientSends[i+1] {
			t.Errorf("segment %d: class %q", i+1, g.attr("class"))
		}
	}
	if l := segs[3].text("label"); l != "P. seq 1:84(83) ack 1 win 64512" {
		t.Errorf("request label %q", l)
	}
	if l := segs[0].text("label"); l != "S seq 0 win 64240 <mss 1460,sack,ts,ws 10>" {
		t.Errorf("SYN label %q", l)
	}
	// The states beside each lifeline, top to bottom, are the paths.
	for side, want := range c.Paths {
		var got []string
		lastY := 0.0
		for _, g := range root.all("g", "state", flow.Side(side).String()) {
			got = append(got, g.attr("data-state"))
			y := g.all("rect")[0].num(t, "y")
			if y <= lastY {
				t.Errorf("%v state %s at y=%v, not below %v", flow.Side(side), g.attr("data-state"), y, lastY)
			}
			lastY = y
		}
		var wantNames []string
		for _, s := range want {
			wantNames = append(wantNames, s.String())
		}
		if strings.Join(got, " ") != strings.Join(wantNames, " ") {
			t.Errorf("%v states on the ladder %q, path %q", flow.Side(side), got, wantNames)
		}
	}
	if got := root.all("text", "address"); len(got) != 2 || strings.TrimSpace(got[0].Text) != "10.0.2.21:53888" || strings.TrimSpace(got[1].Text) != "10.0.2.20:80" {
		t.Errorf("endpoint addresses %v", got)
	}

	// --count: the first N segments only.
	root, _ = parseSVG(t, Ladder(c, LadderOptions{Count: 5}))
	if n := len(root.all("g", "segment")); n != 5 {
		t.Errorf("Count 5: %d segments", n)
	}
	if !strings.Contains(root.all("title")[0].Text, "5 of 12 segments") {
		t.Errorf("title %q", root.all("title")[0].Text)
	}
	// Absolute numbers.
	root, _ = parseSVG(t, Ladder(c, LadderOptions{Label: LabelOptions{Absolute: true}}))
	if l := root.all("g", "segment")[3].text("label"); l != "P. seq 2619426934:2619427017(83) ack 2716094144 win 64512" {
		t.Errorf("absolute label %q", l)
	}
}

// independentCounts reads a capture with gopacket (not craft, not flow) and
// counts, for the segments src sent: those that occupy sequence space, those
// that resend space already sent, and the SACK blocks the other end sent.
func independentCounts(t *testing.T, name string, src netip.Addr) (data, retrans, sackBlocks int) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var isn uint32
	var high int64 = -1
	for {
		pkt, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("%s: a packet gopacket cannot read", name)
		}
		if ip.SrcIP.String() != src.String() {
			for _, o := range tcp.Options {
				if o.OptionType == layers.TCPOptionKindSACK {
					sackBlocks += len(o.OptionData) / 8
				}
			}
			continue
		}
		if tcp.SYN {
			isn = tcp.Seq
		}
		n := int64(len(tcp.Payload))
		if tcp.SYN {
			n++
		}
		if tcp.FIN {
			n++
		}
		if n == 0 {
			continue
		}
		data++
		start := int64(tcp.Seq - isn) // under 4 GiB: no wrap to undo
		if start < high {
			retrans++
		}
		high = max(high, start+n)
	}
	return data, retrans, sackBlocks
}

func TestTimeSequenceSVG(t *testing.T) {
	conns := loadConns(t, "loss5.pcap")
	if len(conns) != 1 {
		t.Fatalf("%d connections", len(conns))
	}
	c := conns[0]
	if BusierSide(c) != flow.Client {
		t.Fatalf("the uploading client should be the busier side")
	}
	cv := TimeSequence(c, TSGOptions{Sender: flow.Client})
	cvH := cv.H
	root, raw := parseSVG(t, cv)
	golden(t, "loss5.tsg.svg", raw)
	wantData, wantRetrans, wantSACK := independentCounts(t, "loss5.pcap", c.Client().Addr())
	if wantRetrans == 0 {
		t.Fatalf("the fixture has no retransmission")
	}
	bars := root.all("path", "data")
	retrans := root.all("path", "data", "retransmit")
	if len(bars) != wantData || len(retrans) != wantRetrans {
		t.Errorf("%d data bars (%d red), the capture has %d segments with data (%d resent)", len(bars), len(retrans), wantData, wantRetrans)
	}
	if n := len(root.all("path", "retransmit-marker")); n != wantRetrans {
		t.Errorf("%d retransmission markers, want %d", n, wantRetrans)
	}
	if n := len(root.all("path", "sack")); n != wantSACK {
		t.Errorf("%d SACK bars, the server sent %d SACK blocks", n, wantSACK)
	}
	// Bars: vertical, their height the segment's sequence length, in time
	// order; retransmissions red.
	lastX := -1.0
	var scale float64
	for i, b := range bars {
		sp := pathPoints(t, b.attr("d"))
		if len(sp) != 3 || sp[0][0].X != sp[0][1].X {
			t.Fatalf("bar %d: %q is not a capped vertical bar", i, b.attr("d"))
		}
		x, ylo, yhi := sp[0][0].X, sp[0][0].Y, sp[0][1].Y
		if x < lastX {
			t.Errorf("bar %d at x=%v left of the previous one (%v)", i, x, lastX)
		}
		lastX = x
		start, _ := strconv.ParseInt(b.attr("data-start"), 10, 64)
		end, _ := strconv.ParseInt(b.attr("data-end"), 10, 64)
		if end-start > 100 {
			s := (ylo - yhi) / float64(end-start)
			if scale == 0 {
				scale = s
			} else if d := s/scale - 1; ylo-yhi > 3 && (d > 0.02 || d < -0.02) {
				t.Errorf("bar %d: %v px for %d bytes; others %v px per byte", i, ylo-yhi, end-start, scale)
			}
		}
		if b.hasClass("retransmit") != (b.attr("stroke") == colRetransmit.svg()) {
			t.Errorf("bar %d: class %q stroke %s", i, b.attr("class"), b.attr("stroke"))
		}
	}
	// The ACK line is a staircase that never goes down (up the page = lower y).
	acks := root.all("path", "ack-line")
	if len(acks) != 1 {
		t.Fatalf("%d ACK lines", len(acks))
	}
	pts := pathPoints(t, acks[0].attr("d"))[0]
	for i := 1; i < len(pts); i++ {
		if pts[i].X < pts[i-1].X || pts[i].Y > pts[i-1].Y || (pts[i].X != pts[i-1].X && pts[i].Y != pts[i-1].Y) {
			t.Fatalf("ACK line step %d: %v -> %v is not a rising staircase", i, pts[i-1], pts[i])
		}
	}
	// It ends at the top of the data (the FIN acknowledged): the height of
	// the highest bar's top.
	top := cvH
	for _, b := range bars {
		top = min(top, pathPoints(t, b.attr("d"))[0][1].Y)
	}
	if d := pts[len(pts)-1].Y - top; d > 1.01 || d < -0.01 {
		t.Errorf("final ACK at y=%v, the data ends at y=%v", pts[len(pts)-1].Y, top)
	}
	if len(root.all("path", "window-line")) != 1 {
		t.Errorf("no window line")
	}
	// Tick labels rise with the axes.
	var prev float64 = -1
	for _, tk := range root.all("text", "tick", "x") {
		v, err := strconv.ParseFloat(strings.TrimSpace(tk.Text), 64)
		if err != nil || v <= prev {
			t.Errorf("x tick %q after %v", tk.Text, prev)
		}
		prev = v
	}
	if s := root.text("subtitle"); !strings.Contains(s, fmt.Sprintf("%d retransmitted", wantRetrans)) || !strings.HasPrefix(s, "300000 bytes") {
		t.Errorf("subtitle %q", s)
	}

	// The other direction: the server sent no data, only its SYN-ACK and FIN.
	root, _ = parseSVG(t, TimeSequence(c, TSGOptions{Sender: flow.Server}))
	if n := len(root.all("path", "data")); n != 2 {
		t.Errorf("server data bars %d, want 2 (SYN, FIN)", n)
	}
	if got := root.all("text", "marker"); len(got) != 2 || strings.TrimSpace(got[0].Text) != "SYN" || strings.TrimSpace(got[1].Text) != "FIN" {
		t.Errorf("markers %v", got)
	}
}

// TestWindowLeavesThePlot: on the server's graph of the HTTP capture the
// client's window (64 KiB) is far above the 218 bytes of data: its line is
// cut at the top of the plot, and an arrow with the edge's offset marks
// where it leaves.
func TestWindowLeavesThePlot(t *testing.T) {
	c := loadConns(t, "linux-http.pcap")[0]
	root, _ := parseSVG(t, TimeSequence(c, TSGOptions{Sender: flow.Server}))
	axes := pathPoints(t, root.all("path", "axes")[0].attr("d"))[0]
	plotTop := axes[0].Y
	for _, w := range root.all("path", "window-line") {
		for _, sp := range pathPoints(t, w.attr("d")) {
			for _, p := range sp {
				if p.Y < plotTop-0.01 {
					t.Errorf("window line at y=%v, above the plot (top %v)", p.Y, plotTop)
				}
			}
		}
	}
	marks := root.all("path", "window-off-plot")
	if len(marks) == 0 {
		t.Fatal("the window edge leaves the plot unmarked")
	}
	// The first mark is at the first ACK of the client's, with its edge.
	var first *flow.Segment
	for i := range c.Segments {
		if s := &c.Segments[i]; s.From == flow.Client && s.Flags.Has(craft.FlagACK) {
			first = s
			break
		}
	}
	if got, want := marks[0].attr("data-n"), strconv.Itoa(first.N); got != want {
		t.Errorf("first mark at segment %s, want %s", got, want)
	}
	edge := first.AckOff + int64(first.WindowBytes)
	if got := marks[0].attr("data-edge"); got != strconv.FormatInt(edge, 10) {
		t.Errorf("mark's edge %s, want %d", got, edge)
	}
	labels := root.all("text", "window-off-plot-label")
	if len(labels) == 0 || !strings.Contains(labels[0].Text, byteLabel(float64(edge))) {
		t.Errorf("labels %v, want the first to say %s", labels, byteLabel(float64(edge)))
	}
	mark := pathPoints(t, marks[0].attr("d"))[0]
	if tip := mark[2]; tip.Y > plotTop || mark[0].Y <= plotTop {
		t.Errorf("mark %v does not straddle the plot's top edge %v", mark, plotTop)
	}
}

func TestStatesSVG(t *testing.T) {
	conns := loadConns(t, "linux-http.pcap")
	for i, c := range conns {
		root, raw := parseSVG(t, States(c))
		golden(t, fmt.Sprintf("linux-http.states%d.svg", i), raw)
		if n := len(root.all("g", "node")); n != 12 {
			t.Errorf("conn %d: %d state boxes, want 12 (CLOSED twice)", i, n)
		}
		for side := range c.Paths {
			sd := flow.Side(side)
			// Visited boxes: exactly the states of the path.
			want := map[string]bool{}
			for _, s := range c.Paths[side] {
				want[s.String()] = true
			}
			got := map[string]bool{}
			for _, g := range root.all("g", "node", "visited", sd.String()) {
				got[g.attr("data-state")] = true
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("conn %d %v: visited %v, path %v", i, sd, got, c.Paths[side])
			}
			// Taken edges: one per move, numbered in order.
			tag := strings.ToUpper(sd.String()[:1])
			for k := 1; k < len(c.Paths[side]); k++ {
				step := fmt.Sprintf("%s%d", tag, k)
				found := 0
				for _, g := range root.all("g", "edge", "taken", sd.String()) {
					for _, s := range strings.Fields(g.attr("data-steps")) {
						if s == step {
							found++
							if g.attr("data-from") != c.Paths[side][k-1].String() || g.attr("data-to") != c.Paths[side][k].String() {
								t.Errorf("conn %d step %s on edge %s -> %s, path says %v -> %v", i, step,
									g.attr("data-from"), g.attr("data-to"), c.Paths[side][k-1], c.Paths[side][k])
							}
						}
					}
				}
				if found != 1 {
					t.Errorf("conn %d: step %s drawn %d times", i, step, found)
				}
			}
		}
	}
	// The refused connection's RST is not in Figure 5: a dashed extra edge.
	root, _ := parseSVG(t, States(conns[1]))
	var rst *svgNode
	for _, g := range root.all("g", "edge", "taken", "client") {
		if g.attr("data-from") == "SYN-SENT" && g.attr("data-to") == "CLOSED" {
			rst = g
		}
	}
	if rst == nil || rst.all("path", "line")[0].attr("stroke-dasharray") == "" || rst.text("edge-label") != "rcv RST" {
		t.Errorf("refused connection: no dashed SYN-SENT -> CLOSED edge labelled rcv RST")
	}
}

func TestTextLadderGolden(t *testing.T) {
	c := loadConns(t, "linux-http.pcap")[0]
	for _, tc := range []struct {
		name string
		tl   TextLadder
	}{
		{"linux-http.ladder.ascii.txt", TextLadder{Width: 80}},
		{"linux-http.ladder.unicode.txt", TextLadder{Width: 100, Unicode: true}},
	} {
		text := LadderText(c, LadderOptions{}, tc.tl)
		golden(t, tc.name, []byte(text))
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		arrows := 0
		rail := "|"
		if tc.tl.Unicode {
			rail = "│"
		}
		for i, l := range lines {
			if !tc.tl.Unicode && strings.IndexFunc(l, func(r rune) bool { return r > 127 }) >= 0 {
				t.Errorf("%s line %d is not ASCII: %q", tc.name, i+1, l)
			}
			if i == 0 {
				continue
			}
			// The rails stay in their columns on every row.
			r := []rune(l)
			left := timeCols + stateCols + 1
			right := left + 1 + tc.tl.span()
			if len(r) <= right-1 || string(r[left]) != rail || string(r[right]) != rail {
				t.Errorf("%s line %d: rails not at columns %d and %d: %q", tc.name, i+1, left, right, l)
			}
			if strings.ContainsAny(l, ">►") && strings.Contains(l, "seq") || strings.Contains(l, "ack") {
				arrows++
			}
		}
		if arrows != 12 {
			t.Errorf("%s: %d arrow rows, want 12", tc.name, arrows)
		}
	}
}

func TestPNG(t *testing.T) {
	c := loadConns(t, "linux-http.pcap")[0]
	cv := Ladder(c, LadderOptions{})
	img, err := cv.Rasterize(1)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != int(cv.W) || b.Dy() != int(cv.H) {
		t.Fatalf("image %v, canvas %vx%v", b, cv.W, cv.H)
	}
	if got := img.RGBAAt(2, 2); got != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("background %v", got)
	}
	// The client's lifeline (x=250) is grey half-way down.
	if got := img.RGBAAt(250, int(cv.H/2)); got.R > 200 || got.R != got.G {
		t.Errorf("lifeline pixel %v", got)
	}
	// Blue (client to server) and green arrows are painted.
	var blue, green int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			p := img.RGBAAt(x, y)
			if p == (color.RGBA{colClientData.R, colClientData.G, colClientData.B, 255}) {
				blue++
			}
			if p == (color.RGBA{colServerData.R, colServerData.G, colServerData.B, 255}) {
				green++
			}
		}
	}
	if blue < 500 || green < 500 {
		t.Errorf("%d blue and %d green pixels: arrows missing", blue, green)
	}
	var buf bytes.Buffer
	if err := cv.WritePNG(&buf, 2); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("not a PNG")
	}
	if _, err := cv.Rasterize(0); err == nil {
		t.Errorf("scale 0: no error")
	}
	if _, err := (&Canvas{W: 1e6, H: 1e6}).Rasterize(1); err == nil {
		t.Errorf("a huge canvas: no error")
	}
}

func TestDashedAndClip(t *testing.T) {
	segs := dashed([][2]Point{{{0, 0}, {10, 0}}, {{10, 0}, {10, 10}}}, []float64{4, 2})
	// On 0-4, 6-10 | 12-16 (=10,2..10,6), 18-20 (10,8..10,10).
	want := [][2]Point{{{0, 0}, {4, 0}}, {{6, 0}, {10, 0}}, {{10, 2}, {10, 6}}, {{10, 8}, {10, 10}}}
	if fmt.Sprint(segs) != fmt.Sprint(want) {
		t.Errorf("dashes %v, want %v", segs, want)
	}
	pts := []Point{{0, 50}, {10, 50}, {10, 5}, {20, 5}, {20, 40}, {30, 40}}
	got := clipAbove(pts, 10)
	if fmt.Sprint(got) != fmt.Sprint([][]Point{{{0, 50}, {10, 50}, {10, 10}}, {{20, 10}, {20, 40}, {30, 40}}}) {
		t.Errorf("clipAbove %v", got)
	}
	if ticks := niceTicks(0, 1000, 5); fmt.Sprint(ticks) != "[0 200 400 600 800 1000]" {
		t.Errorf("ticks %v", ticks)
	}
}

// TestDrawingsNeverPanic draws every kind for random connections: any
// flags, numbers and payloads must give a well-formed SVG and a PNG.
func TestDrawingsNeverPanic(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	cli := netip.MustParseAddr("10.0.2.21")
	srv := netip.MustParseAddr("10.0.2.20")
	for round := 0; round < 30; round++ {
		var b flow.Builder
		var p craft.Packet
		now := time.Unix(1700000000, 0)
		for i := 0; i < 1+rng.Intn(40); i++ {
			src, dst := cli, srv
			sp, dp := uint16(40000), uint16(80)
			if rng.Intn(2) == 0 {
				src, dst, sp, dp = dst, src, dp, sp
			}
			var opts []craft.Option
			if rng.Intn(4) == 0 {
				opts = append(opts, craft.SACKOption(craft.SACKBlock{Left: craft.Seq(rng.Uint32()), Right: craft.Seq(rng.Uint32())}))
			}
			tcp := craft.TCP{SrcPort: sp, DstPort: dp, Seq: craft.Seq(rng.Uint32() % 5000), Ack: craft.Seq(rng.Uint32() % 5000),
				Flags: craft.Flags(rng.Intn(256)), Window: uint16(rng.Intn(65536)), Options: opts, Payload: make([]byte, rng.Intn(100))}
			raw, err := craft.BuildIPv4TCP(craft.IPv4{TTL: 64, Src: src, Dst: dst}, &tcp)
			if err != nil {
				t.Fatal(err)
			}
			if err := craft.ParsePacket(craft.LinkRaw, raw, &p, craft.PacketOptions{}); err != nil {
				t.Fatal(err)
			}
			now = now.Add(time.Duration(rng.Intn(3)) * time.Millisecond) // equal times too
			b.Add(i+1, now, &p)
		}
		for _, c := range b.Conns() {
			for _, cv := range []*Canvas{Ladder(c, LadderOptions{}), TimeSequence(c, TSGOptions{Sender: flow.Client}),
				TimeSequence(c, TSGOptions{Sender: flow.Server}), States(c)} {
				parseSVG(t, cv)
				if _, err := cv.Rasterize(0.5); err != nil {
					t.Fatal(err)
				}
			}
			_ = LadderText(c, LadderOptions{}, TextLadder{Width: 64, Unicode: true})
		}
	}
}

func TestLabels(t *testing.T) {
	s := flow.Segment{Flags: craft.FlagACK | craft.FlagFIN, SeqOff: 218, AckOff: 84, WindowBytes: 65536, MSS: -1, WScale: -1,
		SACK: []flow.Range{{Start: 300, End: 400}, {Start: 500, End: 600}}}
	if got := SegmentLabel(&s, LabelOptions{}); got != "F. seq 218 ack 84 win 65536 sack 300-400,500-600" {
		t.Errorf("label %q", got)
	}
	if got := SegmentLabel(&s, LabelOptions{NoWindow: true}); got != "F. seq 218 ack 84 sack 300-400,500-600" {
		t.Errorf("label %q", got)
	}
	rst := flow.Segment{Flags: craft.FlagRST, SeqOff: 1, Seq: 77, MSS: -1, WScale: -1}
	if got := SegmentLabel(&rst, LabelOptions{Absolute: true}); got != "R seq 77" {
		t.Errorf("RST label %q", got)
	}
	if got := PathString([]fsm.State{fsm.Closed, fsm.SynSent, fsm.Established}, ">"); got != "CLOSED>SYN-SENT>ESTAB" {
		t.Errorf("path %q", got)
	}
}
