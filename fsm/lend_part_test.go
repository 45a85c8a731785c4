package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tcpcraft/tcpcraft/craft"
)

// CommitSendPart queues the filled front of a loan and keeps the rest lent:
// what goes out is exactly what was written, in order; Write stays refused
// until the whole loan is committed; and an ACK that empties the buffer
// meanwhile does not move the lent rest (the ring's head stays put).
func TestCommitSendPartKeepsTheRestLent(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.establishedWith(1000, 64000)
	pattern := make([]byte, 5000)
	for i := range pattern {
		pattern[i] = byte(i*7 + i/251)
	}
	loan, err := h.c.SendSpace(5000)
	if err != nil || len(loan) != 5000 {
		t.Fatalf("SendSpace(5000): %d bytes, %v", len(loan), err)
	}
	copy(loan, pattern)

	if n, err := h.c.CommitSendPart(2000, h.now); n != 2000 || err != nil {
		t.Fatalf("CommitSendPart(2000): %d, %v", n, err)
	}
	var sent []byte
	for _, s := range h.output() {
		sent = append(sent, s.Payload...)
	}
	if !bytes.Equal(sent, pattern[:2000]) {
		t.Fatalf("after the first part: sent %d bytes, want the first 2000 of the loan", len(sent))
	}
	if w := h.c.Writable(); w != 64000-2000-3000 {
		t.Fatalf("Writable %d with 2000 queued and 3000 still lent, want %d", w, 64000-5000)
	}
	if _, err := h.c.Write([]byte("x"), h.now); !errors.Is(err, ErrLent) {
		t.Fatalf("Write with part of a loan out: %v, want ErrLent", err)
	}
	if _, err := h.c.SendSpace(10); !errors.Is(err, ErrLent) {
		t.Fatalf("SendSpace with part of a loan out: %v, want ErrLent", err)
	}

	// Everything queued is acknowledged: the buffer holds nothing, but
	// the rest of the loan must stay where it is.
	h.send(ack(lISS+2001, 64000))
	h.output()
	if n, err := h.c.CommitSendPart(3000, h.now); n != 3000 || err != nil {
		t.Fatalf("CommitSendPart(3000): %d, %v", n, err)
	}
	sent = sent[:0]
	for _, s := range h.output() {
		if s.Seq != lISS+1+craft.Seq(2000+len(sent)) {
			t.Fatalf("segment at %d, want %d", s.Seq, lISS+1+craft.Seq(2000+len(sent)))
		}
		sent = append(sent, s.Payload...)
	}
	if !bytes.Equal(sent, pattern[2000:]) {
		t.Fatalf("after the second part: sent %d bytes that differ from the rest of the loan", len(sent))
	}
	// The loan ended with its last byte: Write works again.
	if n, err := h.c.Write([]byte("tail"), h.now); n != 4 || err != nil {
		t.Fatalf("Write after the whole loan was committed: %d, %v", n, err)
	}
}

// A part larger than what is still lent is refused and ends the loan; a
// zero part keeps it; CommitSend(0) returns it.
func TestCommitSendPartBounds(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.establishedWith(1000, 64000)
	if _, err := h.c.SendSpace(3000); err != nil {
		t.Fatal(err)
	}
	if n, err := h.c.CommitSendPart(0, h.now); n != 0 || err != nil {
		t.Fatalf("CommitSendPart(0): %d, %v", n, err)
	}
	if _, err := h.c.Write([]byte("x"), h.now); !errors.Is(err, ErrLent) {
		t.Fatalf("a zero part ended the loan: Write gave %v", err)
	}
	if _, err := h.c.CommitSendPart(1000, h.now); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.CommitSendPart(2001, h.now); err == nil {
		t.Fatal("CommitSendPart of 2001 bytes of a 2000-byte rest: no error")
	}
	h.output()
	if w := h.c.Writable(); w != 64000-1000 {
		t.Fatalf("Writable %d after a refused part, want %d (loan ended, 1000 queued)", w, 64000-1000)
	}
	if _, err := h.c.SendSpace(3000); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.CommitSend(0, h.now); err != nil {
		t.Fatal(err)
	}
	if n, err := h.c.Write([]byte("x"), h.now); n != 1 || err != nil {
		t.Fatalf("Write after CommitSend(0): %d, %v", n, err)
	}
}

// A loan stops where the ring wraps: with a 3000-byte buffer (the ring
// cannot grow past it), 2500 bytes queued and 2000 acknowledged, the free
// space runs from offset 2500 to the end (500 bytes) and on from the
// start; SendSpace lends the first stretch, then the second. The bytes on
// the wire across the wrap are the ones written.
func TestSendSpaceStopsWhereTheRingWraps(t *testing.T) {
	cfg := plainConfig()
	cfg.SendBufferSize = 3000
	h := newHarness(t, cfg)
	h.establishedWith(1000, 64000)
	fill := func(p []byte, from int) {
		for i := range p {
			p[i] = byte(from + i)
		}
	}
	// onWire keeps every byte sent, by stream offset.
	onWire := map[int]byte{}
	drain := func() {
		for _, s := range h.output() {
			for i, b := range s.Payload {
				onWire[int(s.Seq-(lISS+1))+i] = b
			}
		}
	}
	// lend borrows ask bytes, expects want, fills them with the stream
	// from offset from on and commits them.
	lend := func(ask, want, from int, where string) {
		t.Helper()
		loan, err := h.c.SendSpace(ask)
		if err != nil || len(loan) != want {
			t.Fatalf("SendSpace(%d) %s: %d bytes, %v; want %d", ask, where, len(loan), err, want)
		}
		fill(loan, from)
		if _, err := h.c.CommitSend(want, h.now); err != nil {
			t.Fatal(err)
		}
		drain()
	}
	lend(2500, 2500, 0, "on an empty buffer")
	h.send(ack(lISS+2001, 64000))
	drain()
	lend(3000, 500, 2500, "up to the ring's end")
	lend(3000, 2000, 3000, "after the wrap, up to the head")
	for acked, round := 2000, 0; acked < 5000; round++ {
		if round == 50 {
			t.Fatalf("the stream stalls at offset %d", acked)
		}
		drain()
		for acked < 5000 {
			if _, ok := onWire[acked]; !ok {
				break
			}
			acked++
		}
		h.send(ack(lISS+1+craft.Seq(acked), 64000))
	}
	for off := range 5000 {
		if b, ok := onWire[off]; !ok || b != byte(off) {
			t.Fatalf("stream offset %d: sent %#x (%v), want %#x", off, b, ok, byte(off))
		}
	}
}

// Space cannot be borrowed from a connection that cannot send, and a loan
// whose connection queued its FIN meanwhile is refused at commit: the
// bytes are dropped, only the FIN goes.
func TestSendSpaceAndClosing(t *testing.T) {
	h := newHarness(t, plainConfig())
	if _, err := h.c.SendSpace(100); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("SendSpace before Connect: %v, want ErrNotConnected", err)
	}
	h.establishedWith(1000, 64000)
	loan, err := h.c.SendSpace(100)
	if err != nil || len(loan) != 100 {
		t.Fatalf("SendSpace: %d, %v", len(loan), err)
	}
	copy(loan, "late")
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	h.expect(pat{Flags: fA | fF, Seq: lISS + 1, Ack: rISS + 1, Window: anyWin})
	if _, err := h.c.CommitSend(4, h.now); !errors.Is(err, ErrClosing) {
		t.Fatalf("CommitSend after Close: %v, want ErrClosing", err)
	}
	h.expectNothing()
	if _, err := h.c.SendSpace(100); !errors.Is(err, ErrClosing) {
		t.Fatalf("SendSpace after Close: %v, want ErrClosing", err)
	}
}

// CommitSendClose puts the FIN in the last data segment when the windows
// have room for it (one segment, FIN|PSH|ACK, as Linux sends a FIN on a
// segment still queued), and alone when the loan was empty; the state is
// FIN-WAIT-1 either way, and the loan has ended.
func TestCommitSendCloseSendsTheFINWithTheData(t *testing.T) {
	for _, c := range []struct {
		name    string
		payload string
	}{{"with data", "GET / HTTP/1.0\r\n\r\n"}, {"empty", ""}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, plainConfig())
			h.establishedWith(1000, 64000)
			loan, err := h.c.SendSpace(4096)
			if err != nil {
				t.Fatal(err)
			}
			n := copy(loan, c.payload)
			if got, err := h.c.CommitSendClose(n, h.now); got != n || err != nil {
				t.Fatalf("CommitSendClose(%d): %d, %v", n, got, err)
			}
			segs := h.output()
			if len(segs) != 1 {
				t.Fatalf("%d segments, want 1: %v", len(segs), segs)
			}
			s := segs[0]
			if s.Flags&fF == 0 || s.Flags&fA == 0 || string(s.Payload) != c.payload || s.Seq != lISS+1 {
				t.Fatalf("sent flags %v seq %d payload %q, want FIN|ACK at %d with %q", s.Flags, s.Seq, s.Payload, lISS+1, c.payload)
			}
			h.expectState(FinWait1)
			h.expectTransition(Established, FinWait1, CauseClose)
			if _, err := h.c.SendSpace(10); !errors.Is(err, ErrClosing) {
				t.Fatalf("SendSpace after CommitSendClose: %v, want ErrClosing", err)
			}
		})
	}
}

// With no room in the peer's window for the FIN as well, the data goes
// first and the FIN waits (it takes a sequence number of its own).
func TestCommitSendCloseFINWaitsForTheWindow(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.establishedWith(1000, 10)
	loan, err := h.c.SendSpace(10)
	if err != nil || len(loan) != 10 {
		t.Fatalf("SendSpace(10): %d bytes, %v", len(loan), err)
	}
	copy(loan, "0123456789")
	if _, err := h.c.CommitSendClose(10, h.now); err != nil {
		t.Fatal(err)
	}
	segs := h.output()
	if len(segs) != 1 || string(segs[0].Payload) != "0123456789" || segs[0].Flags&fF != 0 {
		t.Fatalf("into a 10-byte window: %v, want the 10 bytes without FIN", segs)
	}
	h.send(ack(lISS+11, 64000))
	segs = h.output()
	if len(segs) != 1 || segs[0].Flags&fF == 0 || segs[0].Seq != lISS+11 || len(segs[0].Payload) != 0 {
		t.Fatalf("after the window opened: %v, want the FIN alone at %d", segs, lISS+11)
	}
}
