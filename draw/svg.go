package draw

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// fontFamily is the SVG font stack: monospaced, so that text widths match
// the layout's charWidth in any browser.
const fontFamily = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace"

// WriteSVG writes the canvas as a standalone SVG 1.1 document.
func (c *Canvas) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%s" height="%s" viewBox="0 0 %s %s" class="tcpcraft-%s" font-family="%s">`+"\n",
		num(c.W), num(c.H), num(c.W), num(c.H), esc(c.Kind), esc(fontFamily))
	if c.Title != "" {
		fmt.Fprintf(bw, "<title>%s</title>\n", esc(c.Title))
	}
	if c.Background.A != 0 {
		fmt.Fprintf(bw, `<rect class="background" x="0" y="0" width="%s" height="%s" fill="%s"/>`+"\n", num(c.W), num(c.H), c.Background.svg())
	}
	for _, it := range c.Items {
		writeItem(bw, it, "")
	}
	bw.WriteString("</svg>\n")
	return bw.Flush()
}

func writeItem(w *bufio.Writer, it Item, indent string) {
	switch it := it.(type) {
	case *Group:
		fmt.Fprintf(w, "%s<g%s%s>\n", indent, classAttr(it.Class), attrs(it.Attrs))
		for _, sub := range it.Items {
			writeItem(w, sub, indent+"  ")
		}
		fmt.Fprintf(w, "%s</g>\n", indent)
	case *Path:
		var d strings.Builder
		for _, sp := range it.Subpaths {
			for i, p := range sp {
				if i == 0 {
					d.WriteString("M")
				} else {
					d.WriteString(" L")
				}
				d.WriteString(num(p.X) + " " + num(p.Y))
			}
			if it.Fill.A != 0 {
				d.WriteString(" Z")
			}
			d.WriteString(" ")
		}
		fmt.Fprintf(w, `%s<path%s%s d="%s" fill="%s"%s%s/>`+"\n", indent, classAttr(it.Class), attrs(it.Attrs),
			strings.TrimSpace(d.String()), it.Fill.svg(), opacity("fill-opacity", it.Fill), stroke(it.Stroke, it.Width, it.Dash))
	case *Rect:
		rx := ""
		if it.Radius > 0 {
			rx = fmt.Sprintf(` rx="%s"`, num(it.Radius))
		}
		fmt.Fprintf(w, `%s<rect%s%s x="%s" y="%s" width="%s" height="%s"%s fill="%s"%s%s/>`+"\n", indent, classAttr(it.Class), attrs(it.Attrs),
			num(it.X), num(it.Y), num(it.W), num(it.H), rx, it.Fill.svg(), opacity("fill-opacity", it.Fill), stroke(it.Stroke, it.Width, it.Dash))
	case *Text:
		anchor := ""
		switch it.Anchor {
		case Middle:
			anchor = ` text-anchor="middle"`
		case End:
			anchor = ` text-anchor="end"`
		}
		weight := ""
		if it.Bold {
			weight = ` font-weight="bold"`
		}
		fmt.Fprintf(w, `%s<text%s%s x="%s" y="%s" font-size="%s"%s%s fill="%s" xml:space="preserve">%s</text>`+"\n", indent, classAttr(it.Class), attrs(it.Attrs),
			num(it.X), num(it.Y), num(it.Size), anchor, weight, it.Color.svg(), esc(it.S))
	}
}

func stroke(c Color, width float64, dash []float64) string {
	if c.A == 0 || width <= 0 {
		return ` stroke="none"`
	}
	s := fmt.Sprintf(` stroke="%s" stroke-width="%s"%s`, c.svg(), num(width), opacity("stroke-opacity", c))
	if len(dash) > 0 {
		var parts []string
		for _, d := range dash {
			parts = append(parts, num(d))
		}
		s += fmt.Sprintf(` stroke-dasharray="%s"`, strings.Join(parts, " "))
	}
	return s
}

func opacity(name string, c Color) string {
	if c.A == 0 || c.A == 255 {
		return ""
	}
	return fmt.Sprintf(` %s="%s"`, name, num(float64(c.A)/255))
}

func classAttr(class string) string {
	if class == "" {
		return ""
	}
	return ` class="` + esc(class) + `"`
}

func attrs(as []Attr) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(" " + a.Name + `="` + esc(a.Value) + `"`)
	}
	return b.String()
}

// num formats a coordinate with at most two decimals and no trailing zeros.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
