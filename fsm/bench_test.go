package fsm

import (
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// benchConn returns an ESTABLISHED Conn with default options (timestamps,
// SACK, window scale) after a handshake with a scripted peer whose window
// is large.
func benchConn(b *testing.B) (*Conn, time.Time) {
	cfg := DefaultConfig()
	cfg.LocalPort, cfg.RemotePort = lPort, rPort
	cfg.FixedISS, cfg.ISS = true, lISS
	cfg.FixedTSOffset = true
	cfg.SendBufferSize = 1 << 20
	cfg.RecvBufferSize = 1 << 20
	c, err := NewConn(cfg)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	c.Connect(now)
	c.Output()
	c.Input(&craft.TCP{SrcPort: rPort, DstPort: lPort, Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 65535,
		Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptSACKPermitted},
			{Kind: craft.OptTimestamps, TSVal: 1, TSEcr: 0}, {Kind: craft.OptWindowScale, Shift: 7}}}, now)
	c.Output()
	c.Events()
	if c.State() != Established {
		b.Fatalf("state %v", c.State())
	}
	return c, now
}

// BenchmarkBulkSend: the application writes, segments go out, the peer
// acknowledges every second segment.
func BenchmarkBulkSend(b *testing.B) {
	c, now := benchConn(b)
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	var out []craft.TCP
	var evs []Event
	peerTS := uint32(1)
	ackSeg := craft.TCP{SrcPort: rPort, DstPort: lPort, Flags: fA, Seq: rISS + 1, Window: 8192,
		Options: []craft.Option{{Kind: craft.OptTimestamps}}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := 0
		for off < len(chunk) {
			n, _ := c.Write(chunk[off:], now)
			off += n
			out = c.AppendOutput(out[:0])
			for j := 1; j < len(out); j += 2 {
				s := &out[j]
				peerTS++
				ackSeg.Ack = s.Seq.Add(uint32(len(s.Payload)))
				ackSeg.Options[0].TSVal = peerTS
				c.Input(&ackSeg, now)
			}
			if len(out)%2 == 1 {
				s := &out[len(out)-1]
				ackSeg.Ack = s.Seq.Add(uint32(len(s.Payload)))
				c.Input(&ackSeg, now)
			}
			now = now.Add(100 * time.Microsecond)
			evs = c.AppendEvents(evs[:0])
		}
	}
}

// BenchmarkBulkReceive: full-sized in-order segments arrive, the
// application reads them, ACKs go out.
func BenchmarkBulkReceive(b *testing.B) {
	c, now := benchConn(b)
	const mss = 1448
	payload := make([]byte, mss)
	buf := make([]byte, 64<<10)
	seg := craft.TCP{SrcPort: rPort, DstPort: lPort, Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 8192,
		Options: []craft.Option{{Kind: craft.OptTimestamps, TSVal: 1}}, Payload: payload}
	b.SetBytes(45 * mss)
	b.ReportAllocs()
	var out []craft.TCP
	var evs []Event
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := 0; k < 45; k++ {
			seg.Options[0].TSVal++
			c.Input(&seg, now)
			seg.Seq = seg.Seq.Add(mss)
		}
		for {
			n, _ := c.Read(buf, now)
			if n == 0 {
				break
			}
		}
		out = c.AppendOutput(out[:0])
		evs = c.AppendEvents(evs[:0])
		now = now.Add(100 * time.Microsecond)
	}
}

// BenchmarkPairTransfer: 4 MB from one Conn to another over a lossless
// in-memory link (both ends' work per byte).
func BenchmarkPairTransfer(b *testing.B) {
	data := testData(9, 4<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		runSim(b, uint64(i), linkParams{delay: time.Millisecond}, simConfig(40000, 80, 1), simConfig(80, 40000, 1), data, nil)
	}
}
