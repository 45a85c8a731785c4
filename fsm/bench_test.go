package fsm

import (
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// benchConn returns an ESTABLISHED Conn with default options (timestamps,
// SACK, window scale) after a handshake with a scripted peer whose window
// is large.
func benchConn(b testing.TB, reuse bool) (*Conn, time.Time) {
	cfg := DefaultConfig()
	cfg.ReuseOutput = reuse
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
func BenchmarkBulkSend(b *testing.B) { benchBulkSend(b, false) }

// BenchmarkBulkSendReuse is BenchmarkBulkSend with Config.ReuseOutput, as
// stack runs it: payloads borrowed from the send buffer, no allocation.
func BenchmarkBulkSendReuse(b *testing.B) { benchBulkSend(b, true) }

func benchBulkSend(b *testing.B, reuse bool) {
	bs := newBulkSender(b, reuse)
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	bs.run(b.N)
}

// TestBulkSendReuseAllocatesNothing: with Config.ReuseOutput the steady
// bulk path (write, segments out, ACKs in) allocates nothing, and without
// it the same path does allocate (the payload copies), so the measurement
// can see an allocation.
func TestBulkSendReuseAllocatesNothing(t *testing.T) {
	for _, reuse := range []bool{true, false} {
		bs := newBulkSender(t, reuse)
		bs.run(64) // warm up: buffers grow to their steady size
		n := testing.AllocsPerRun(50, func() { bs.run(1) })
		if reuse && n != 0 {
			t.Fatalf("ReuseOutput: %v allocations per 64 KiB written, want 0", n)
		}
		if !reuse && n == 0 {
			t.Fatalf("without ReuseOutput: no allocation measured; the test cannot see one")
		}
		if bs.c.State() != Established || bs.c.Stats().BytesAcked == 0 {
			t.Fatalf("reuse %v: state %v, %d bytes acked", reuse, bs.c.State(), bs.c.Stats().BytesAcked)
		}
	}
}

// bulkSender writes 64 KiB chunks to an ESTABLISHED Conn and plays the
// peer acknowledging every second segment.
type bulkSender struct {
	c      *Conn
	now    time.Time
	chunk  []byte
	out    []craft.TCP
	evs    []Event
	peerTS uint32
	ackSeg craft.TCP
}

func newBulkSender(tb testing.TB, reuse bool) *bulkSender {
	c, now := benchConn(tb, reuse)
	return &bulkSender{c: c, now: now, chunk: make([]byte, 64<<10), peerTS: 1,
		ackSeg: craft.TCP{SrcPort: rPort, DstPort: lPort, Flags: fA, Seq: rISS + 1, Window: 8192,
			Options: []craft.Option{{Kind: craft.OptTimestamps}}}}
}

func (bs *bulkSender) run(rounds int) {
	c := bs.c
	for i := 0; i < rounds; i++ {
		off := 0
		for off < len(bs.chunk) {
			n, _ := c.Write(bs.chunk[off:], bs.now)
			off += n
			bs.out = c.AppendOutput(bs.out[:0])
			// Only Seq and the payload's length are read after an
			// Input: the segment structs are copies in out; what
			// ReuseOutput lends (payload and option memory) is not
			// touched.
			last := len(bs.out) - 1
			for j := range bs.out {
				s := &bs.out[j]
				if j%2 == 1 || j == last {
					bs.ackAt(s.Seq.Add(craft.Size(len(s.Payload))))
				}
			}
			bs.now = bs.now.Add(100 * time.Microsecond)
			bs.evs = c.AppendEvents(bs.evs[:0])
		}
	}
}

func (bs *bulkSender) ackAt(ack craft.Seq) {
	bs.peerTS++
	bs.ackSeg.Ack = ack
	bs.ackSeg.Options[0].TSVal = bs.peerTS
	bs.c.Input(&bs.ackSeg, bs.now)
}

// BenchmarkBulkReceive: full-sized in-order segments arrive, the
// application reads them, ACKs go out.
func BenchmarkBulkReceive(b *testing.B) {
	c, now := benchConn(b, false)
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
