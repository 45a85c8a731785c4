package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
)

// discardLink counts what the stack sends and drops it.
type discardLink struct {
	pkts, supers, bytes int
	gso                 bool
}

func (l *discardLink) ReadFrame(ctx context.Context) (capture.Frame, error) {
	<-ctx.Done()
	return capture.Frame{}, ctx.Err()
}
func (l *discardLink) Send(pkt []byte) error { l.pkts++; l.bytes += len(pkt); return nil }

type discardGSOLink struct{ discardLink }

func (l *discardGSOLink) SendGSO(hdr []byte, payload [][]byte, mss int) error {
	l.supers++
	l.bytes += len(hdr)
	for _, p := range payload {
		l.bytes += len(p)
	}
	return nil
}

// The benchmark must measure the GSO path: a signature that drifts from the
// interface would silently make it measure the per-segment one.
var _ GSOLink = (*discardGSOLink)(nil)

// benchFlush sends one flush of 44 MSS-sized data segments (what one
// ACK-clocked flush of a bulk sender looks like) through link, b.N times.
func benchFlush(b *testing.B, link Link, counts *discardLink) {
	s, err := New(link, Config{Local: netip.MustParseAddr("10.0.2.21")})
	if err != nil {
		b.Fatal(err)
	}
	c := &Conn{s: s, local: netip.MustParseAddrPort("10.0.2.21:40000"), remote: netip.MustParseAddrPort("10.0.2.20:80")}
	payload := make([]byte, 1448)
	ts := []craft.Option{{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: 1, TSEcr: 2}}
	segs := make([]craft.TCP, 44)
	for i := range segs {
		segs[i] = craft.TCP{SrcPort: 40000, DstPort: 80, Seq: craft.Seq(1000 + i*1448), Ack: 5, Flags: craft.FlagACK, Window: 1000, Options: ts, Payload: payload}
	}
	b.SetBytes(int64(len(segs) * len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.segBuf = append(s.segBuf[:0], segs...)
		s.sendSegments(c, time.Time{})
	}
	b.StopTimer()
	if counts.bytes < b.N*len(segs)*len(payload) {
		b.Fatalf("sent %d bytes, want at least %d", counts.bytes, b.N*len(segs)*len(payload))
	}
	b.ReportMetric(float64(counts.pkts+counts.supers)/float64(b.N), "sends/flush")
}

// BenchmarkFlushPerSegment is the stack's send path over a plain Link: one
// packet built and sent per segment.
func BenchmarkFlushPerSegment(b *testing.B) {
	l := &discardLink{}
	benchFlush(b, l, l)
}

// BenchmarkFlushGSO is the same flush over a GSOLink: coalesced into
// super-segments.
func BenchmarkFlushGSO(b *testing.B) {
	l := &discardGSOLink{}
	benchFlush(b, l, &l.discardLink)
}
