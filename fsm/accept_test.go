package fsm

import (
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// The four cases of RFC 9293 §3.10.7.4 (Table 6), edges included, and
// across the 2^32 wrap.
func TestAcceptableTable(t *testing.T) {
	for _, base := range []craft.Seq{1000, 0xffffff00, 0xfffffffe} {
		cases := []struct {
			seq  craft.Seq
			len  craft.Size
			wnd  craft.Size
			want bool
		}{
			// len 0, wnd 0: only SEG.SEQ = RCV.NXT.
			{base, 0, 0, true},
			{base.Add(1), 0, 0, false},
			{base.Sub(1), 0, 0, false},
			// len 0, wnd > 0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND.
			{base, 0, 100, true},
			{base.Add(99), 0, 100, true},
			{base.Add(100), 0, 100, false},
			{base.Sub(1), 0, 100, false},
			// len > 0, wnd 0: never.
			{base, 1, 0, false},
			{base, 10, 0, false},
			// len > 0, wnd > 0: either end inside the window.
			{base, 10, 100, true},
			{base.Add(99), 10, 100, true},   // starts inside
			{base.Add(100), 10, 100, false}, // starts at the edge
			{base.Sub(5), 10, 100, true},    // starts 5 before, ends inside
			{base.Sub(10), 10, 100, false},  // ends just before RCV.NXT
			{base.Sub(11), 11, 100, false},
			{base.Sub(11), 12, 100, true},
		}
		for i, tc := range cases {
			if got := acceptable(tc.seq, tc.len, base, tc.wnd); got != tc.want {
				t.Errorf("base %d case %d: acceptable(seq %d, len %d, wnd %d) = %v, want %v", base, i, tc.seq, tc.len, tc.wnd, got, tc.want)
			}
		}
	}
}

// The four cases through a live connection.
func TestAcceptabilityInConn(t *testing.T) {
	cfg := plainConfig()
	cfg.RecvBufferSize = 1000
	h := newHarness(t, cfg)
	h.established() // window 1000

	// len>0, wnd>0: a segment straddling RCV.NXT is trimmed to its new
	// part; an old one draws an ACK.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: []byte("0123456789")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 11, Window: 990})
	h.send(craft.TCP{Flags: fA, Seq: rISS + 6, Ack: lISS + 1, Window: 64000, Payload: []byte("56789abcde")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 16, Window: 985})
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: []byte("0123456789")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 16, Window: 985})
	if got := h.read(); got != "0123456789abcde" {
		t.Fatalf("read %q", got)
	}
	// len>0, beyond the right edge: unacceptable, ACK.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 16 + 985, Ack: lISS + 1, Window: 64000, Payload: []byte("x")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 16, Window: anyWin})
	// len 0, wnd>0: inside is fine (no reply), at the right edge it is not.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 16 + 984, Ack: lISS + 1, Window: 64000})
	h.expectNothing()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 16 + 985, Ack: lISS + 1, Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 16, Window: anyWin})

	// Fill the window: len>0, wnd 0 is unacceptable, but its ACK counts.
	h2 := newHarness(t, cfg)
	h2.established()
	h2.write("ping")
	h2.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 1, Window: 1000, Payload: "ping"})
	h2.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: []byte(strings.Repeat("z", 1000))})
	h2.expect(pat{Flags: fA, Seq: lISS + 5, Ack: rISS + 1001, Window: 0})
	h2.send(craft.TCP{Flags: fA, Seq: rISS + 1001, Ack: lISS + 5, Window: 64000, Payload: []byte("y")})
	h2.expect(pat{Flags: fA, Seq: lISS + 5, Ack: rISS + 1001, Window: 0})
	if h2.c.Stats().BytesAcked != 4 {
		t.Fatalf("ACK on a zero-window segment not processed: acked %d", h2.c.Stats().BytesAcked)
	}
	if h2.c.Readable() != 1000 {
		t.Fatalf("readable %d, want 1000", h2.c.Readable())
	}
	// len 0, wnd 0: only SEG.SEQ = RCV.NXT.
	h2.send(craft.TCP{Flags: fA, Seq: rISS + 1001, Ack: lISS + 5, Window: 64000})
	h2.expectNothing()
	h2.send(craft.TCP{Flags: fA, Seq: rISS + 1002, Ack: lISS + 5, Window: 64000})
	h2.expect(pat{Flags: fA, Seq: lISS + 5, Ack: rISS + 1001, Window: 0})
	// Reading opens the window and sends an update at once.
	buf := make([]byte, 2000)
	if n, _ := h2.c.Read(buf, h2.now); n != 1000 {
		t.Fatalf("read %d", n)
	}
	h2.expect(pat{Flags: fA, Seq: lISS + 5, Ack: rISS + 1001, Window: 1000})
}

// Timestamps: the Conn echoes TS.Recent, updates it only from segments
// that cover Last.ACK.sent (RFC 7323 §4.3), and rejects old timestamps
// with an ACK (PAWS, §5.3).
func TestTimestampsAndPAWS(t *testing.T) {
	cfg := plainConfig()
	cfg.Timestamps = true
	h := newHarness(t, cfg)
	if err := h.c.Connect(h.now); err != nil {
		t.Fatal(err)
	}
	h.expect(pat{Flags: fS, Seq: lISS, Window: 64000, Opts: []craft.Option{{Kind: craft.OptMSS, MSS: 1460},
		{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: lTS}}})
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000, Options: []craft.Option{
		{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: 7000, TSEcr: lTS}}})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Opts: []craft.Option{
		{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: lTS, TSEcr: 7000}}})
	if m := h.c.Stats().SndMSS; m != 1448 {
		t.Fatalf("send MSS %d, want 1460-12", m)
	}
	tsOpt := func(val, ecr uint32) []craft.Option {
		return []craft.Option{{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: val, TSEcr: ecr}}
	}
	// 10 ms later the clock has ticked 10.
	h.advance(10 * time.Millisecond)
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: []byte("a"), Options: tsOpt(7010, lTS)})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 2, Window: 63999, Opts: tsOpt(lTS+10, 7010)})
	// PAWS: an older TSval is rejected with an ACK; the data is not taken.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 2, Ack: lISS + 1, Window: 64000, Payload: []byte("b"), Options: tsOpt(7009, lTS)})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 2, Window: 63999, Opts: tsOpt(lTS+10, 7010)})
	if h.c.Readable() != 1 {
		t.Fatalf("PAWS let data through: readable %d", h.c.Readable())
	}
	// Across the 2^32 wrap of the peer's clock, "older" is modular.
	// A segment out of order (beyond Last.ACK.sent) does not update
	// TS.Recent even with a newer TSval.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 5, Ack: lISS + 1, Window: 64000, Payload: []byte("e"), Options: tsOpt(7050, lTS)})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 2, Window: 63999, Opts: tsOpt(lTS+10, 7010)})
	// An in-order one does.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 2, Ack: lISS + 1, Window: 64000, Payload: []byte("bcd"), Options: tsOpt(7060, lTS)})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 6, Window: 63995, Opts: tsOpt(lTS+10, 7060)})
	if got := h.read(); got != "abcde" {
		t.Fatalf("read %q", got)
	}
	// Without the option, once agreed, a segment is dropped silently
	// (RFC 7323 §3.2).
	h.send(craft.TCP{Flags: fA, Seq: rISS + 6, Ack: lISS + 1, Window: 64000, Payload: []byte("f")})
	h.expectNothing()
	if h.c.Readable() != 0 {
		t.Fatal("segment without timestamps accepted")
	}
	// An RST is not subject to PAWS (R1 excludes it): old TSval, exact
	// sequence number, connection reset.
	h.send(craft.TCP{Flags: fR, Seq: rISS + 6, Options: tsOpt(1, 0)})
	h.expectState(Closed)
}
