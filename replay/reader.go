package replay

import (
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// Reader collects a capture's packets into connections (with draw/flow)
// and keeps, for each segment, what a script needs and flow does not keep:
// the options in full, in order, and the urgent pointer. The zero Reader
// is ready to use.
type Reader struct {
	b     flow.Builder
	extra map[*flow.Conn]*connExtra
}

// connExtra is what Reader keeps beside a flow.Conn: one entry per
// segment, in the same order as Conn.Segments.
type connExtra struct {
	opts   [][]craft.Option
	urgent []uint16
	ipv6   bool
}

// Add records one packet captured at time t; n is its number in the
// capture (1-based), which the script's comments cite. The packet is only
// read.
func (r *Reader) Add(n int, t time.Time, p *craft.Packet) {
	c, _ := r.b.Add(n, t, p)
	if r.extra == nil {
		r.extra = make(map[*flow.Conn]*connExtra)
	}
	x := r.extra[c]
	if x == nil {
		x = &connExtra{}
		r.extra[c] = x
	}
	opts := make([]craft.Option, len(p.TCP.Options))
	for i := range p.TCP.Options {
		opts[i] = p.TCP.Options[i].Clone()
	}
	x.opts = append(x.opts, opts)
	x.urgent = append(x.urgent, p.TCP.Urgent)
	x.ipv6 = x.ipv6 || p.IPVersion == 6
}

// Conns returns the connections seen, in order of appearance.
func (r *Reader) Conns() []*flow.Conn { return r.b.Conns() }
