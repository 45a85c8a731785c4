package fsm

import (
	"bytes"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// windowScaledConfig is plainConfig with a 256 KiB receive buffer offered
// with window scaling and a 40 ms delayed ACK, like the CLI's defaults.
func windowScaledConfig() Config {
	cfg := plainConfig()
	cfg.RecvBufferSize = 256 << 10
	cfg.WindowScale = 7
	cfg.DelayedACK = 40 * time.Millisecond
	return cfg
}

// After a passive open the SYN-ACK could offer only 65535 bytes (RFC 7323
// §2.2: the window of a SYN is not scaled), so the first read opens a 256
// KiB buffer's window by a lot. The peer still has 64 KiB of window: the
// update waits like a delayed ACK and rides on the answer, one segment
// instead of a pure window update followed by the answer.
func TestWindowUpdateRidesOnTheAnswer(t *testing.T) {
	h := newHarness(t, windowScaledConfig())
	if err := h.c.Listen(); err != nil {
		t.Fatal(err)
	}
	wsOpts := []craft.Option{{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptWindowScale, Shift: 7}}
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 64000, Options: wsOpts})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 65535})
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 500})
	h.expectNothing()
	h.send(craft.TCP{Flags: fA | fP, Seq: rISS + 1, Ack: lISS + 1, Window: 500, Payload: []byte("q")})
	h.expectNothing() // delayed ACK
	if got := h.read(); got != "q" {
		t.Fatalf("read %q", got)
	}
	h.expectNothing() // the window update waits: the peer has 64 KiB left
	h.write("a")
	full := uint16((256<<10 - 127) >> 7) // the buffer, less 2^7-1 held back, scaled
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 2, Window: int(full), Payload: "a"})

	// Without an answer the update still goes, with the delayed ACK.
	h.send(craft.TCP{Flags: fA | fP, Seq: rISS + 2, Ack: lISS + 2, Window: 500, Payload: []byte("r")})
	h.read()
	h.expectNothing()
	h.advance(40 * time.Millisecond)
	got := h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 3, Window: anyWin})
	// The right edge moves by whole segments only (receiver SWS
	// avoidance), so the field may be one unit short of the buffer.
	if got[0].Window < full-1 {
		t.Fatalf("delayed window update offers %d, want about %d", got[0].Window, full)
	}
}

// A peer short of window (less than windowUpdateRoom segments left) is
// told at once when a read opens it.
func TestWindowUpdateAtOnceWhenThePeerIsShort(t *testing.T) {
	cfg := windowScaledConfig()
	cfg.RecvBufferSize = 64000
	cfg.WindowScale = -1
	h := newHarness(t, cfg)
	h.established()
	// 60000 bytes fill all but 4000 of the window (under 8 segments).
	data := bytes.Repeat([]byte("w"), 1460)
	for off := 0; off+1460 <= 60000; off += 1460 {
		h.send(craft.TCP{Flags: fA, Seq: rISS + 1 + craft.Seq(off), Ack: lISS + 1, Window: 64000, Payload: data})
	}
	h.output() // the ACKs of every second segment
	left := 64000 - 41*1460
	buf := make([]byte, 64000)
	if n, err := h.c.Read(buf, h.now); n != 41*1460 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	got := h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1 + 41*1460, Window: anyWin})
	if int(got[0].Window) <= left {
		t.Fatalf("window update offers %d, no more than the %d left before the read", got[0].Window, left)
	}
}

// Without window scaling the field carries at most 65535 bytes (RFC 7323
// §2.2): a read that frees buffer beyond that cannot open the window the
// peer sees, so it sends no window update (Linux compares with its
// window_clamp, tcp_cleanup_rbuf). A useless one went out 40 ms after
// every read of a connection whose peer did not scale its window.
func TestNoWindowUpdateBeyondTheUnscaledField(t *testing.T) {
	h := newHarness(t, windowScaledConfig()) // 256 KiB buffer
	if err := h.c.Listen(); err != nil {
		t.Fatal(err)
	}
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 64000, Options: synOptsPlain}) // no window scale
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 65535})
	h.send(craft.TCP{Flags: fA | fP, Seq: rISS + 1, Ack: lISS + 1, Window: 500, Payload: []byte("q")})
	h.expectNothing()
	h.advance(40 * time.Millisecond)
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 2, Window: 65535}) // the delayed ACK
	if got := h.read(); got != "q" {
		t.Fatalf("read %q", got)
	}
	h.expectNothing()
	h.advance(40 * time.Millisecond)
	h.expectNothing()
	if _, ok := h.c.NextDeadline(); ok {
		t.Fatal("a timer runs with nothing to send")
	}
}
