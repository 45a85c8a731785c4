package replay

import (
	"os"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// FuzzScript feeds arbitrary connections — segments of either end with any
// flags, sequence and acknowledgment numbers, lengths, gaps and options —
// to the generator: it must never panic, and whatever script it writes
// must parse and validate with probe's parser. Each 6 bytes of input are
// one segment: sender and flags, sequence and acknowledgment numbers
// (steps from the sender's last ones, negative allowed), payload length,
// time gap, options.
func FuzzScript(f *testing.F) {
	for _, name := range []string{"testdata/curl-get.pcap", "testdata/curl-loss.pcap"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fuzzFromPcap(f, b))
	}
	f.Add([]byte{0x02, 0, 0, 0, 0, 1, 0x92, 0, 1, 0, 1, 1, 0x10, 1, 1, 0, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := newConv(t)
		var seq, ack [2]uint32
		for len(in) >= 6 && c.n < 200 {
			b := in[:6]
			in = in[6:]
			from, side := "c", 0
			if b[0]&1 != 0 {
				from, side = "s", 1
			}
			flags := craft.Flags(b[0]>>1) & 0x3f // FIN SYN RST PSH ACK URG
			seq[side] += uint32(int32(int8(b[1])) * 100)
			ack[side] += uint32(int32(int8(b[2])) * 100)
			n := int(b[3]) * 8
			var opts []craft.Option
			switch b[5] % 4 {
			case 1:
				opts = craft.LinuxSYNOptions(1460, 7, uint32(c.n), 0)
			case 2:
				opts = []craft.Option{craft.NOPOption(), craft.NOPOption(), craft.TimestampsOption(uint32(c.n), 1)}
			case 3:
				opts = []craft.Option{craft.NOPOption(), craft.NOPOption(), craft.SACKOption(craft.SACKBlock{Left: craft.Seq(ack[side] + 100), Right: craft.Seq(ack[side] + 200)})}
			}
			c.seg(time.Duration(b[4])*time.Millisecond, from, flags, seq[side], ack[side], n, opts...)
		}
		for _, conn := range c.r.Conns() {
			for _, s := range []flow.Side{flow.Client, flow.Server} {
				out, err := c.r.Script(conn, Config{Side: s})
				if err != nil {
					continue
				}
				mustParse(t, out)
			}
		}
	})
}

// fuzzFromPcap turns the first connection of a capture into the fuzz
// input's form, so that the corpus starts from real conversations.
func fuzzFromPcap(t testing.TB, b []byte) []byte {
	r := readPcapBytes(t, b)
	c := r.Conns()[0]
	var out []byte
	var last [2]craft.Seq
	var lastAck [2]craft.Seq
	var prev time.Time
	for i := range c.Segments {
		s := &c.Segments[i]
		side := int(s.From)
		isn, _ := c.ISN(s.From)
		peer, _ := c.ISN(s.From.Other())
		if i == 0 {
			last[side], lastAck[side] = isn, peer
		}
		dseq := int32(s.Seq-isn) - int32(last[side]-isn)
		dack := int32(s.Ack-peer) - int32(lastAck[side]-peer)
		last[side], lastAck[side] = s.Seq, s.Ack
		opt := byte(2)
		if s.Flags.Has(craft.FlagSYN) {
			opt = 1
		}
		gap := byte(0)
		if !prev.IsZero() {
			gap = byte(min(s.Time.Sub(prev)/time.Millisecond, 255))
		}
		prev = s.Time
		out = append(out, byte(side)|byte(s.Flags&0x3f)<<1, byte(clamp8(dseq/100)), byte(clamp8(dack/100)),
			byte(min(s.Len/8, 255)), gap, opt)
	}
	return out
}

func clamp8(v int32) int8 { return int8(max(-128, min(127, v))) }
