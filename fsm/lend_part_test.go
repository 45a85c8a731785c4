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
