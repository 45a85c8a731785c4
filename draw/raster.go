package draw

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// WritePNG rasterises the canvas at scale (1: one pixel per unit; 2 for
// sharper images) and writes it as PNG. Everything is drawn in pure Go:
// anti-aliased polygons with golang.org/x/image/vector, text with the Go
// Mono fonts.
func (c *Canvas) WritePNG(w io.Writer, scale float64) error {
	img, err := c.Rasterize(scale)
	if err != nil {
		return err
	}
	return png.Encode(w, img)
}

// Rasterize paints the canvas into an image.
func (c *Canvas) Rasterize(scale float64) (*image.RGBA, error) {
	if scale <= 0 || scale > 8 {
		return nil, fmt.Errorf("scale %v: want a value above 0 and at most 8", scale)
	}
	wpx, hpx := int(math.Ceil(c.W*scale)), int(math.Ceil(c.H*scale))
	if wpx <= 0 || hpx <= 0 || wpx*hpx > 100<<20 {
		return nil, fmt.Errorf("canvas %vx%v at scale %v: too large or empty an image", c.W, c.H, scale)
	}
	r := &rasterizer{
		img:   image.NewRGBA(image.Rect(0, 0, wpx, hpx)),
		scale: scale,
		faces: map[faceKey]font.Face{},
	}
	bg := c.Background
	if bg.A == 0 {
		bg = rgb(0xffffff)
	}
	draw.Draw(r.img, r.img.Bounds(), image.NewUniform(nrgba(bg)), image.Point{}, draw.Src)
	for _, it := range c.Items {
		if err := r.item(it); err != nil {
			return nil, err
		}
	}
	for _, f := range r.faces {
		f.Close()
	}
	return r.img, nil
}

type faceKey struct {
	size float64
	bold bool
}

type rasterizer struct {
	img   *image.RGBA
	scale float64
	vr    vector.Rasterizer
	faces map[faceKey]font.Face
}

func nrgba(c Color) color.NRGBA { return color.NRGBA{c.R, c.G, c.B, c.A} }

func (r *rasterizer) item(it Item) error {
	switch it := it.(type) {
	case *Group:
		for _, sub := range it.Items {
			if err := r.item(sub); err != nil {
				return err
			}
		}
	case *Path:
		if it.Fill.A != 0 {
			r.fill(it.Subpaths, it.Fill)
		}
		if it.Stroke.A != 0 && it.Width > 0 {
			for _, sp := range it.Subpaths {
				pts := sp
				if it.Fill.A != 0 && len(sp) > 2 {
					pts = append(append([]Point(nil), sp...), sp[0])
				}
				r.stroke(pts, it.Width, it.Dash, it.Stroke)
			}
		}
	case *Rect:
		outline := roundedRect(it.X, it.Y, it.W, it.H, it.Radius)
		if it.Fill.A != 0 {
			r.fill([][]Point{outline}, it.Fill)
		}
		if it.Stroke.A != 0 && it.Width > 0 {
			r.stroke(append(outline, outline[0]), it.Width, it.Dash, it.Stroke)
		}
	case *Text:
		return r.text(it)
	}
	return nil
}

// roundedRect returns the outline of a box, corners approximated by short
// arcs.
func roundedRect(x, y, w, h, rad float64) []Point {
	rad = math.Min(rad, math.Min(w, h)/2)
	if rad <= 0 {
		return []Point{{x, y}, {x + w, y}, {x + w, y + h}, {x, y + h}}
	}
	var pts []Point
	corner := func(cx, cy, from float64) {
		for i := 0; i <= 4; i++ {
			a := from + float64(i)*math.Pi/8
			pts = append(pts, Point{cx + rad*math.Cos(a), cy + rad*math.Sin(a)})
		}
	}
	corner(x+w-rad, y+rad, -math.Pi/2)
	corner(x+w-rad, y+h-rad, 0)
	corner(x+rad, y+h-rad, math.Pi/2)
	corner(x+rad, y+rad, math.Pi)
	return pts
}

// fill paints polygons with the non-zero rule of x/image/vector (which
// accumulates signed area; polygons of one call must not cancel out, so
// each is oriented the same way).
func (r *rasterizer) fill(polys [][]Point, c Color) {
	// Rasterise within the polygons' bounding box only: the accumulation
	// buffer and the compositing cost scale with its area.
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, poly := range polys {
		if len(poly) < 3 {
			continue
		}
		for _, p := range poly {
			minX, maxX = math.Min(minX, p.X*r.scale), math.Max(maxX, p.X*r.scale)
			minY, maxY = math.Min(minY, p.Y*r.scale), math.Max(maxY, p.Y*r.scale)
		}
	}
	box := image.Rect(int(math.Floor(minX))-1, int(math.Floor(minY))-1, int(math.Ceil(maxX))+1, int(math.Ceil(maxY))+1).Intersect(r.img.Bounds())
	if box.Empty() {
		return
	}
	r.vr.Reset(box.Dx(), box.Dy())
	r.vr.DrawOp = draw.Over
	ox, oy := float64(box.Min.X), float64(box.Min.Y)
	for _, poly := range polys {
		if len(poly) < 3 {
			continue
		}
		if signedArea(poly) < 0 {
			poly = reversed(poly)
		}
		r.vr.MoveTo(float32(poly[0].X*r.scale-ox), float32(poly[0].Y*r.scale-oy))
		for _, p := range poly[1:] {
			r.vr.LineTo(float32(p.X*r.scale-ox), float32(p.Y*r.scale-oy))
		}
		r.vr.ClosePath()
	}
	r.vr.Draw(r.img, box, image.NewUniform(nrgba(c)), image.Point{})
}

func signedArea(poly []Point) float64 {
	a := 0.0
	for i := range poly {
		p, q := poly[i], poly[(i+1)%len(poly)]
		a += p.X*q.Y - q.X*p.Y
	}
	return a / 2
}

func reversed(poly []Point) []Point {
	out := make([]Point, len(poly))
	for i, p := range poly {
		out[len(poly)-1-i] = p
	}
	return out
}

// stroke paints a polyline of the given width: one quadrilateral per
// segment and a small polygon at each joint, all filled in one pass so that
// overlaps do not darken.
func (r *rasterizer) stroke(pts []Point, width float64, dash []float64, c Color) {
	if len(pts) < 2 {
		return
	}
	segs := [][2]Point{}
	for i := 1; i < len(pts); i++ {
		segs = append(segs, [2]Point{pts[i-1], pts[i]})
	}
	if len(dash) > 0 {
		segs = dashed(segs, dash)
	}
	hw := width / 2
	if hw*r.scale < 0.5 {
		hw = 0.5 / r.scale // thinner than a pixel disappears
	}
	var polys [][]Point
	for _, s := range segs {
		a, b := s[0], s[1]
		dx, dy := b.X-a.X, b.Y-a.Y
		l := math.Hypot(dx, dy)
		if l == 0 {
			continue
		}
		nx, ny := -dy/l*hw, dx/l*hw
		polys = append(polys, []Point{{a.X + nx, a.Y + ny}, {b.X + nx, b.Y + ny}, {b.X - nx, b.Y - ny}, {a.X - nx, a.Y - ny}})
	}
	if len(dash) == 0 && width*r.scale > 1.5 {
		// Round joins between segments.
		for _, p := range pts[1 : len(pts)-1] {
			var oct []Point
			for i := 0; i < 8; i++ {
				a := float64(i) * math.Pi / 4
				oct = append(oct, Point{p.X + hw*math.Cos(a), p.Y + hw*math.Sin(a)})
			}
			polys = append(polys, oct)
		}
	}
	r.fill(polys, c)
}

// dashed cuts segments into the "on" parts of a dash pattern that runs on
// across segment ends, as SVG's stroke-dasharray does.
func dashed(segs [][2]Point, pattern []float64) [][2]Point {
	total := 0.0
	for _, d := range pattern {
		total += d
	}
	if total <= 0 {
		return segs
	}
	var out [][2]Point
	idx, left, on := 0, pattern[0], true
	for _, s := range segs {
		a, b := s[0], s[1]
		l := math.Hypot(b.X-a.X, b.Y-a.Y)
		pos := 0.0
		for pos < l {
			step := math.Min(left, l-pos)
			if on && step > 0 {
				t0, t1 := pos/l, (pos+step)/l
				out = append(out, [2]Point{
					{a.X + (b.X-a.X)*t0, a.Y + (b.Y-a.Y)*t0},
					{a.X + (b.X-a.X)*t1, a.Y + (b.Y-a.Y)*t1},
				})
			}
			pos += step
			left -= step
			if left <= 1e-9 {
				idx = (idx + 1) % len(pattern)
				left, on = pattern[idx], !on
				if len(pattern)%2 == 1 && idx == 0 {
					on = true
				}
			}
		}
	}
	return out
}

func (r *rasterizer) face(size float64, bold bool) (font.Face, error) {
	k := faceKey{size * r.scale, bold}
	if f, ok := r.faces[k]; ok {
		return f, nil
	}
	ttf := gomono.TTF
	if bold {
		ttf = gomonobold.TTF
	}
	fnt, err := opentype.Parse(ttf)
	if err != nil {
		return nil, fmt.Errorf("parsing the Go Mono font: %w", err)
	}
	f, err := opentype.NewFace(fnt, &opentype.FaceOptions{Size: k.size, DPI: 72, Hinting: font.HintingNone})
	if err != nil {
		return nil, fmt.Errorf("Go Mono at %v px: %w", k.size, err)
	}
	r.faces[k] = f
	return f, nil
}

func (r *rasterizer) text(t *Text) error {
	if t.S == "" || t.Color.A == 0 || t.Size <= 0 {
		return nil
	}
	f, err := r.face(t.Size, t.Bold)
	if err != nil {
		return err
	}
	d := font.Drawer{Dst: r.img, Src: image.NewUniform(nrgba(t.Color)), Face: f}
	x := t.X * r.scale
	switch t.Anchor {
	case Middle:
		x -= float64(d.MeasureString(t.S)) / 64 / 2
	case End:
		x -= float64(d.MeasureString(t.S)) / 64
	}
	d.Dot = fixed.Point26_6{X: fixed.Int26_6(x * 64), Y: fixed.Int26_6(t.Y * r.scale * 64)}
	d.DrawString(t.S)
	return nil
}
