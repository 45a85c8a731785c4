package cmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/xml"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// svgElem is an element of a parsed SVG document.
type svgElem struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []svgElem  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (e *svgElem) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// find returns the elements of tag ("" any) whose class has every word of
// classes, in document order.
func (e *svgElem) find(tag string, classes ...string) []*svgElem {
	var out []*svgElem
	var walk func(*svgElem)
	walk = func(m *svgElem) {
		ok := tag == "" || m.XMLName.Local == tag
		have := " " + m.attr("class") + " "
		for _, c := range classes {
			ok = ok && strings.Contains(have, " "+c+" ")
		}
		if ok {
			out = append(out, m)
		}
		for i := range m.Children {
			walk(&m.Children[i])
		}
	}
	walk(e)
	return out
}

// parseSVGDoc parses an SVG document and checks its root.
func parseSVGDoc(t *testing.T, data []byte) *svgElem {
	t.Helper()
	var root svgElem
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatalf("not well-formed SVG (%d bytes): %v", len(data), err)
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element %v", root.XMLName)
	}
	return &root
}

func TestDrawCommandOutputs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pcap := filepath.Join("testdata", "linux-http.pcap")

	// Flags after the file, as in the usage line; -o decides the format.
	svgPath := filepath.Join(dir, "ladder.svg")
	if r := runApp(t, ctx, "draw", pcap, "-o", svgPath); r.code != 0 || r.stdout != "" {
		t.Fatalf("draw -o svg: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	data, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	root := parseSVGDoc(t, data)
	if root.attr("class") != "tcpcraft-ladder" || len(root.find("g", "segment")) != 12 {
		t.Errorf("ladder: class %q, %d segments (want 12)", root.attr("class"), len(root.find("g", "segment")))
	}

	// --states of a connection picked by address, SVG on stdout.
	r := runApp(t, ctx, "draw", "--states", "--conn", "10.0.2.20:81", pcap)
	if r.code != 0 {
		t.Fatalf("draw --states: exit %d, stderr %q", r.code, r.stderr)
	}
	root = parseSVGDoc(t, []byte(r.stdout))
	if root.attr("class") != "tcpcraft-states" {
		t.Errorf("states: class %q", root.attr("class"))
	}
	if paths := root.find("text", "path", "client"); len(paths) != 1 || !strings.Contains(paths[0].Text, "10.0.2.21:45732: CLOSED → SYN-SENT → CLOSED") {
		t.Errorf("states of the refused connection: %v", paths)
	}

	// --tsg as PNG at scale 1.
	pngPath := filepath.Join(dir, "tsg.png")
	if r := runApp(t, ctx, "draw", "--tsg", "--scale", "1", pcap, "--conn=0", "-o", pngPath); r.code != 0 {
		t.Fatalf("draw --tsg png: exit %d, stderr %q", r.code, r.stderr)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1100 || b.Dy() != 720 {
		t.Errorf("PNG %v, want 1100x720", b)
	}

	// The terminal ladder as text, first 3 segments.
	r = runApp(t, ctx, "draw", "--format", "txt", "--count", "3", "--width", "80", pcap)
	if r.code != 0 {
		t.Fatalf("draw txt: exit %d, stderr %q", r.code, r.stderr)
	}
	goldenFile(t, "linux-http.ladder3.txt", []byte(r.stdout))
	if n := strings.Count(r.stdout, "->|") + strings.Count(r.stdout, "|<-"); n != 3 {
		t.Errorf("%d arrows in the text ladder, want 3:\n%s", n, r.stdout)
	}

	// --ladder said outright, Unicode, absolute numbers, into a .txt file
	// that ends with a newline like any text file.
	txtPath := filepath.Join(dir, "ladder.txt")
	if r := runApp(t, ctx, "draw", pcap, "--ladder", "--unicode", "-S", "-n", "1", "-o", txtPath); r.code != 0 {
		t.Fatalf("draw --ladder --unicode -S: exit %d, stderr %q", r.code, r.stderr)
	}
	txt, err := os.ReadFile(txtPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(txt), "│") || !strings.Contains(string(txt), "►") || !strings.Contains(string(txt), "seq 2619426933") || !strings.HasSuffix(string(txt), "\n") {
		t.Errorf("Unicode ladder with absolute numbers ending in a newline:\n%q", txt)
	}
}

// TestDrawOtherFramings: pcapng and Linux cooked captures draw the same
// ladder as the Ethernet pcap.
func TestDrawOtherFramings(t *testing.T) {
	ctx := context.Background()
	want := runApp(t, ctx, "draw", "testdata/linux-http.pcap")
	if want.code != 0 {
		t.Fatalf("exit %d: %s", want.code, want.stderr)
	}
	frames, cis := pcapFrames(t, "linux-http.pcap")
	var ng bytes.Buffer
	w, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WritePacket(cis[i], f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var sll [][]byte
	for _, f := range frames {
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[14:], binary.BigEndian.Uint16(f[12:14]))
		sll = append(sll, append(h, f[14:]...))
	}
	for name, data := range map[string][]byte{
		"pcapng":   ng.Bytes(),
		"sll.pcap": writePcap(t, layers.LinkTypeLinuxSLL, sll),
	} {
		r := runApp(t, ctx, "draw", writeTemp(t, "c."+name, data))
		if r.code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", name, r.code, r.stderr)
		}
		got := parseSVGDoc(t, []byte(r.stdout))
		var labels, wantLabels []string
		for _, g := range got.find("text", "label") {
			labels = append(labels, g.Text)
		}
		for _, g := range parseSVGDoc(t, []byte(want.stdout)).find("text", "label") {
			wantLabels = append(wantLabels, g.Text)
		}
		if strings.Join(labels, "|") != strings.Join(wantLabels, "|") || len(labels) != 12 {
			t.Errorf("%s: labels %q, want %q", name, labels, wantLabels)
		}
	}
}

func TestDrawErrors(t *testing.T) {
	ctx := context.Background()
	pcap := filepath.Join("testdata", "linux-http.pcap")
	frames, _ := pcapFrames(t, "linux-http.pcap")
	udp := append([]byte{}, frames[0]...)
	udp[14+9] = 17
	udpOnly := writeTemp(t, "udp.pcap", writePcap(t, layers.LinkTypeEthernet, [][]byte{udp}))
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"draw"}, 2, "want exactly one capture file"},
		{[]string{"draw", pcap, pcap}, 2, "want exactly one capture file"},
		{[]string{"draw", "--tsg", "--states", pcap}, 2, "one of --ladder, --tsg, --states"},
		{[]string{"draw", "--format", "gif", pcap}, 2, "--format gif: want svg, png or txt"},
		{[]string{"draw", "--tsg", pcap, "-o", "x.txt"}, 2, "text format draws ladders only"},
		{[]string{"draw", "--side", "middle", pcap}, 2, "--side middle: want auto, client or server"},
		{[]string{"draw", "--count", "-1", pcap}, 2, "--count -1: must be 0 or more"},
		{[]string{"draw", pcap, "--bogus"}, 2, "unknown flag --bogus"},
		{[]string{"draw", pcap, "-o"}, 2, "-o needs a value"},
		{[]string{"draw", pcap, "--count", "many"}, 2, "--count many: not a whole number"},
		{[]string{"draw", filepath.Join(t.TempDir(), "missing.pcap")}, 1, "no such file"},
		{[]string{"draw", udpOnly}, 1, "none of 1 packets could be decoded"},
		{[]string{"draw", "--conn", "7", pcap}, 1, "connection 7: the capture has 3"},
		{[]string{"draw", "--conn", "1.2.3.4:5", pcap}, 1, "no connection in the capture matches"},
	} {
		r := runApp(t, ctx, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d saying %q", tc.args, r.code, r.stderr, tc.code, tc.says)
		}
	}
	// A failed write leaves no file.
	out := filepath.Join(t.TempDir(), "no", "such", "dir.svg")
	if r := runApp(t, ctx, "draw", pcap, "-o", out); r.code != 1 {
		t.Errorf("unwritable -o: exit %d", r.code)
	}
}

// An IPv6 connection of a capture, chosen by its number or its address in
// brackets, is drawn with its addresses as [ADDR]:PORT.
func TestDrawIPv6(t *testing.T) {
	ctx := context.Background()
	for _, conn := range []string{"2", "[fd00:2::21]:58208", "[fd00:2::20]:8080-[fd00:2::21]:58208"} {
		r := runApp(t, ctx, "draw", "testdata/linux-http.pcap", "--conn", conn, "--format", "txt")
		if r.code != 0 {
			t.Fatalf("--conn %s: exit %d: %s", conn, r.code, r.stderr)
		}
		head, _, _ := strings.Cut(r.stdout, "\n")
		if !strings.Contains(head, "client [fd00:2::21]:58208") || !strings.Contains(head, "server [fd00:2::20]:8080") {
			t.Errorf("--conn %s: header %q", conn, head)
		}
		if !strings.Contains(r.stdout, "S seq 0 win 64800 <mss 1440,") {
			t.Errorf("--conn %s: no SYN in the ladder:\n%s", conn, r.stdout)
		}
	}
}
