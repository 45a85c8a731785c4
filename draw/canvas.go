// Package draw renders TCP connections read from a capture (package
// draw/flow) as pictures: a ladder (sequence) diagram of the segments
// between the two ends, a time-sequence graph in the style of Stevens and
// tcptrace, and the RFC 9293 state diagram with the paths both ends took.
// Each drawing is built once as a small scene of lines, boxes and text (a
// Canvas) and written either as SVG or, rasterised in pure Go, as PNG. The
// terminal ladder of connect/listen --ladder is here too (TextLadder), so
// that the live view and a drawing of a capture look alike.
//
// It is a package of its own because drawing is a concern apart from
// capturing, protocol logic and command-line handling, with its own
// dependency (golang.org/x/image for rasterising) that nothing else needs.
//
// What it must not do: open files, read clocks, keep global mutable state or
// use cgo; it writes to the io.Writer it is given, and only reads the
// connection it is asked to draw.
package draw

import (
	"fmt"
	"math"
)

// Color is an sRGB colour with alpha (255 opaque, 0 none).
type Color struct{ R, G, B, A uint8 }

// None is the absent colour: no fill, no stroke.
var None = Color{}

// rgb returns an opaque colour from 0xRRGGBB.
func rgb(v uint32) Color { return Color{uint8(v >> 16), uint8(v >> 8), uint8(v), 255} }

func (c Color) svg() string {
	if c.A == 0 {
		return "none"
	}
	return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B)
}

// Point is a position in canvas units (SVG user units = PNG pixels at scale 1).
type Point struct{ X, Y float64 }

// Attr is an extra attribute written on an SVG element (data-*, class...):
// it carries meaning for readers and tests, not looks.
type Attr struct{ Name, Value string }

// Item is one element of a Canvas.
type Item interface{ isItem() }

// Path is a set of polylines, stroked and optionally filled (each subpath
// closed when filled).
type Path struct {
	Class    string
	Attrs    []Attr
	Subpaths [][]Point
	Stroke   Color
	Width    float64
	Dash     []float64
	Fill     Color
}

// Rect is a box with optionally rounded corners.
type Rect struct {
	Class      string
	Attrs      []Attr
	X, Y, W, H float64
	Radius     float64
	Fill       Color
	Stroke     Color
	Width      float64
	Dash       []float64
}

// Anchor is where a Text's X is: at its start, middle or end.
type Anchor int

const (
	Start Anchor = iota
	Middle
	End
)

// Text is one line of text with its baseline at Y.
type Text struct {
	Class  string
	Attrs  []Attr
	X, Y   float64
	S      string
	Size   float64
	Color  Color
	Anchor Anchor
	Bold   bool
}

// Group gathers items that belong together (one segment's arrow and
// label), so a reader of the SVG finds them as one element.
type Group struct {
	Class string
	Attrs []Attr
	Items []Item
}

func (*Path) isItem()  {}
func (*Rect) isItem()  {}
func (*Text) isItem()  {}
func (*Group) isItem() {}

// Canvas is a drawing: a size, a background, a title and items painted in
// order.
type Canvas struct {
	W, H       float64
	Background Color
	// Title is the SVG <title> (shown as a tooltip) and its description.
	Title string
	// Kind names the drawing ("ladder", "tsg", "states") on the root element.
	Kind  string
	Items []Item
}

func (c *Canvas) add(items ...Item) { c.Items = append(c.Items, items...) }

// charWidth is the advance of one character of the monospaced font, in
// units of the font size (Go Mono and DejaVu Sans Mono: 0.6 em). Every
// layout decision that depends on text width uses it, so SVG and PNG agree.
const charWidth = 0.6

// textWidth is the width of s at size.
func textWidth(s string, size float64) float64 {
	return float64(len([]rune(s))) * charWidth * size
}

// line is a one-segment Path.
func line(class string, a, b Point, stroke Color, width float64, dash ...float64) *Path {
	return &Path{Class: class, Subpaths: [][]Point{{a, b}}, Stroke: stroke, Width: width, Dash: dash}
}

// arrowHead returns the filled triangle at the tip b of a line from a to b.
func arrowHead(class string, a, b Point, size float64, fill Color) *Path {
	dx, dy := b.X-a.X, b.Y-a.Y
	l := hypot(dx, dy)
	if l == 0 {
		return &Path{Class: class}
	}
	ux, uy := dx/l, dy/l
	base := Point{b.X - ux*size, b.Y - uy*size}
	w := size * 0.45
	return &Path{Class: class, Fill: fill, Subpaths: [][]Point{{
		b, {base.X - uy*w, base.Y + ux*w}, {base.X + uy*w, base.Y - ux*w},
	}}}
}

func hypot(x, y float64) float64 { return math.Hypot(x, y) }
