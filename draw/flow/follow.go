package flow

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Chunk is a piece of one direction's byte stream, in the order the capture
// delivered it: Data starts at stream offset Offset (0 is the first byte
// after the SYN). Missing > 0 marks a gap instead: bytes the capture never
// saw, so that what follows is not silently glued to what came before.
type Chunk struct {
	From    Side
	Offset  int64
	Data    []byte
	Missing int64
}

// Follow returns the reassembled conversation: both directions, each byte
// once and in sequence order (retransmissions and overlaps dropped, the
// first copy seen kept, as Wireshark does), chunks in the order the bytes
// became deliverable, consecutive chunks of one direction merged. Bytes
// held back behind a hole the capture never filled come last, after a
// Missing chunk. It needs a Builder with KeepPayload.
func (c *Conn) Follow() []Chunk {
	out := append([]Chunk(nil), c.chunks...)
	for _, side := range []Side{Client, Server} {
		d := &c.st[side]
		pend := append([]pendingData(nil), d.pending...)
		sort.Slice(pend, func(i, j int) bool { return pend[i].off < pend[j].off })
		next := d.delivered
		for _, p := range pend {
			end := p.off + int64(len(p.data))
			if end <= next {
				continue
			}
			if p.off > next {
				out = appendChunk(out, Chunk{From: side, Offset: next, Missing: p.off - next})
				next = p.off
			}
			out = appendChunk(out, Chunk{From: side, Offset: next, Data: p.data[next-p.off:]})
			next = end
		}
	}
	return out
}

// Stream returns one direction's bytes, reassembled as in Follow, and the
// number of bytes missing from it.
func (c *Conn) Stream(side Side) (data []byte, missing int64) {
	for _, ch := range c.Follow() {
		if ch.From == side {
			data = append(data, ch.Data...)
			missing += ch.Missing
		}
	}
	return data, missing
}

// appendChunk adds ch, merging it into the last chunk when that one is of
// the same direction, the same kind and ends where ch starts.
func appendChunk(out []Chunk, ch Chunk) []Chunk {
	if n := len(out); n > 0 {
		last := &out[n-1]
		if last.From == ch.From && ch.Missing == 0 && last.Missing == 0 && last.Offset+int64(len(last.Data)) == ch.Offset {
			last.Data = append(last.Data, ch.Data...)
			return out
		}
	}
	if ch.Missing == 0 {
		ch.Data = append([]byte(nil), ch.Data...)
	}
	return append(out, ch)
}

// reassemble takes a payload of side at sequence offset seqOff and delivers
// what is new and in order. Where copies overlap, the one captured first
// wins, delivered or still held behind a hole.
func (c *Conn) reassemble(side Side, seqOff int64, payload []byte, syn bool) {
	d := &c.st[side]
	off := seqOff - 1 // stream offset 0 is sequence offset 1
	if syn {
		off++
	}
	if !d.haveDeliv {
		d.haveDeliv = true
		if d.synSeen {
			d.delivered = 0
		} else {
			d.delivered = off // joined mid-stream: start where we came in
		}
	}
	if off+int64(len(payload)) <= d.delivered {
		return // all delivered before: a retransmission
	}
	d.arrivals++
	d.pending = append(d.pending, pendingData{off: off, data: payload, order: d.arrivals})
	for {
		// The earliest-captured piece that covers the next offset...
		var best *pendingData
		for i := range d.pending {
			p := &d.pending[i]
			if p.off <= d.delivered && d.delivered < p.off+int64(len(p.data)) && (best == nil || p.order < best.order) {
				best = p
			}
		}
		if best == nil {
			break
		}
		// ...up to where an earlier-captured piece takes over.
		limit := best.off + int64(len(best.data))
		for _, q := range d.pending {
			if q.order < best.order && q.off > d.delivered && q.off < limit {
				limit = q.off
			}
		}
		c.chunks = appendChunk(c.chunks, Chunk{From: side, Offset: d.delivered, Data: best.data[d.delivered-best.off : limit-best.off]})
		d.delivered = limit
	}
	kept := d.pending[:0]
	for _, p := range d.pending {
		if p.off+int64(len(p.data)) > d.delivered {
			kept = append(kept, p)
		}
	}
	d.pending = kept
}

// Find picks a connection by spec: its index ("0", "#2"), or an address of
// one end or both ("10.0.2.20:80", "10.0.2.21:40000-10.0.2.20:80", also with
// ">" or "," between them). The empty spec picks the first connection that
// has a handshake, else the first one.
func Find(conns []*Conn, spec string) (*Conn, error) {
	if len(conns) == 0 {
		return nil, fmt.Errorf("no TCP connection in the capture")
	}
	spec = strings.TrimSpace(spec)
	if spec == "" {
		for _, c := range conns {
			if !c.Partial {
				return c, nil
			}
		}
		return conns[0], nil
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(spec, "#")); err == nil {
		if n < 0 || n >= len(conns) {
			return nil, fmt.Errorf("connection %d: the capture has %d (0 to %d)", n, len(conns), len(conns)-1)
		}
		return conns[n], nil
	}
	parts := strings.FieldsFunc(spec, func(r rune) bool { return r == '>' || r == ',' || r == '-' || r == ' ' || r == '<' })
	if len(parts) == 0 || len(parts) > 2 {
		return nil, fmt.Errorf("connection %q: want an index or ADDR:PORT[-ADDR:PORT]", spec)
	}
	var want []netip.AddrPort
	for _, p := range parts {
		ap, err := netip.ParseAddrPort(p)
		if err != nil {
			return nil, fmt.Errorf("connection %q: %q is not ADDR:PORT", spec, p)
		}
		want = append(want, ap)
	}
	for _, c := range conns {
		ok := true
		for _, w := range want {
			if _, has := c.SideOf(w); !has {
				ok = false
			}
		}
		if ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no connection in the capture matches %q", spec)
}
