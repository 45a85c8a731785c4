package cmd

import (
	"fmt"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/stack"
)

// BenchmarkTraceLine: what one segment line of the default text trace
// costs: formatting a data segment with timestamps into the trace's
// buffer (traceBuffer over io.Discard, so the write(2) of each 64 KiB is
// not counted), per line, and its allocations.
func BenchmarkTraceLine(b *testing.B) {
	ip := craft.IPv4{TTL: 64, ID: 1, DontFragment: true, Protocol: craft.ProtocolTCP,
		Src: netip.MustParseAddr("10.0.2.21"), Dst: netip.MustParseAddr("10.0.2.20")}
	seg := craft.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 2000, Flags: craft.FlagACK | craft.FlagPSH, Window: 502,
		Options: []craft.Option{{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: 123456, TSEcr: 654321}},
		Payload: make([]byte, 1448)}
	raw, err := craft.BuildIPv4TCP(ip, &seg)
	if err != nil {
		b.Fatal(err)
	}
	var p craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, raw, &p, craft.PacketOptions{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	tr := newTracer(newTraceBuffer(io.Discard), traceNormal, false, nil, start)
	at := start.Add(time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tr.Segment(stack.Out, at, &p, raw, nil)
	}
}

// appendRel is fmt's %9.6f.
func TestAppendRel(t *testing.T) {
	for _, v := range []float64{0, 0.0000004, 0.069575, 1.5, 12.3456789, 123.000001, 12345.5} {
		if got, want := string(appendRel([]byte("x"), v)), "x"+fmt.Sprintf("%9.6f", v); got != want {
			t.Errorf("appendRel(%v) = %q, want %q", v, got, want)
		}
	}
}
