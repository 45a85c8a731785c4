package fsm

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// patterned is n bytes that differ from their neighbours, so that a byte
// sent from the wrong place shows.
func patterned(n, seed int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i/251 + seed)
	}
	return p
}

// payloadFrom joins the payloads of segs, checking that they follow each
// other from seq on.
func payloadFrom(t *testing.T, seq craft.Seq, segs []craft.TCP) []byte {
	t.Helper()
	var got []byte
	for _, s := range segs {
		if len(s.Payload) == 0 {
			continue
		}
		if want := seq.Add(craft.Size(len(got))); s.Seq != want {
			t.Fatalf("segment at %d, want %d", s.Seq, want)
		}
		got = append(got, s.Payload...)
	}
	return got
}

// ExtendSendSpace grows a loan by the free bytes that follow it, across the
// end of the ring; the parts are committed in order from the loan's front,
// so the peer gets the bytes in the order they were lent, and the loan
// ends with its last byte.
func TestExtendSendSpaceGrowsTheLoanAcrossTheWrap(t *testing.T) {
	cfg := plainConfig()
	cfg.SendBufferSize = 10000
	h := newHarness(t, cfg)
	h.establishedWith(1000, 64000)

	// The ring grows to its full size, and empties.
	if n, err := h.c.Write(patterned(10000, 0), h.now); n != 10000 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	h.output()
	h.send(ack(lISS+10001, 64000))
	h.output()
	// 7000 bytes written, 6000 acknowledged: the ring's head is at 6000,
	// 1000 bytes are queued, and the free space runs from 7000 to the end
	// and on from the start.
	queued := patterned(7000, 1)
	if n, err := h.c.Write(queued, h.now); n != 7000 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	h.output()
	h.send(ack(lISS+16001, 64000))
	h.output()

	first, err := h.c.SendSpace(1 << 30)
	if err != nil || len(first) != 3000 {
		t.Fatalf("SendSpace: %d bytes, %v; want the 3000 up to the ring's end", len(first), err)
	}
	if _, err := h.c.SendSpace(10); !errors.Is(err, ErrLent) {
		t.Fatalf("SendSpace during a loan: %v, want ErrLent", err)
	}
	second, err := h.c.ExtendSendSpace(1 << 30)
	if err != nil || len(second) != 6000 {
		t.Fatalf("ExtendSendSpace: %d bytes, %v; want the 6000 from the ring's start", len(second), err)
	}
	if h.c.Lent() != 9000 {
		t.Fatalf("Lent %d, want 9000", h.c.Lent())
	}
	if more, err := h.c.ExtendSendSpace(1); err != nil || len(more) != 0 {
		t.Fatalf("ExtendSendSpace with the buffer full: %d bytes, %v", len(more), err)
	}
	lent := patterned(9000, 2)
	copy(first, lent)
	copy(second, lent[3000:])

	// Parts that straddle the two slices.
	for _, part := range []int{2500, 4000, 2500} {
		if n, err := h.c.CommitSendPart(part, h.now); n != part || err != nil {
			t.Fatalf("CommitSendPart(%d): %d, %v", part, n, err)
		}
	}
	if h.c.Lent() != 0 {
		t.Fatalf("Lent %d after committing all of it, want 0", h.c.Lent())
	}
	// The window allows it all once the cwnd has room: ACK as it goes.
	var sent []craft.TCP
	for range 10 {
		out := h.output()
		if len(out) == 0 {
			break
		}
		sent = append(sent, out...)
		h.send(ack(out[len(out)-1].Seq.Add(craft.Size(len(out[len(out)-1].Payload))), 64000))
	}
	if got := payloadFrom(t, lISS+17001, sent); !bytes.Equal(got, lent) {
		t.Fatalf("sent %d bytes after the queued ones, want the 9000 lent in order", len(got))
	}
	if n, err := h.c.Write([]byte("after"), h.now); n != 5 || err != nil {
		t.Fatalf("Write after the loan: %d, %v", n, err)
	}
}

// A loan does not move, so ExtendSendSpace does not grow the ring under it:
// it lends only what the ring already has, and the rest once the loan has
// ended. With no loan out it is SendSpace.
func TestExtendSendSpaceDoesNotGrowTheRingUnderALoan(t *testing.T) {
	h := newHarness(t, plainConfig()) // 64000-byte buffer; the ring starts small
	h.establishedWith(1000, 64000)
	first, err := h.c.ExtendSendSpace(100)
	if err != nil || len(first) != 100 {
		t.Fatalf("ExtendSendSpace(100) with no loan: %d bytes, %v", len(first), err)
	}
	copy(first, patterned(100, 3))
	firstAt := &first[0]
	second, err := h.c.ExtendSendSpace(20000)
	if err != nil || len(second) == 0 || len(second) > initialRing-100 {
		t.Fatalf("ExtendSendSpace(20000) under a loan: %d bytes, %v; want at most the %d the first ring has", len(second), err, initialRing-100)
	}
	copy(second, patterned(len(second), 4))
	if third, err := h.c.ExtendSendSpace(20000); err != nil || len(third) != 0 {
		t.Fatalf("ExtendSendSpace with the first ring all lent: %d bytes, %v; want none", len(third), err)
	}
	if &first[0] != firstAt || !bytes.Equal(first, patterned(100, 3)) {
		t.Fatal("the first part of the loan moved or changed")
	}
	if _, err := h.c.CommitSend(100+len(second), h.now); err != nil {
		t.Fatal(err)
	}
	want := append(patterned(100, 3), patterned(len(second), 4)...)
	out := h.output()
	h.send(ack(lISS+1+craft.Seq(len(want)/1000*1000), 64000)) // Nagle held the short tail
	out = append(out, h.output()...)
	if got := payloadFrom(t, lISS+1, out); !bytes.Equal(got, want) {
		t.Fatalf("sent %d bytes, want the %d lent", len(got), len(want))
	}
	// The loan ended: a new one may grow the ring.
	big, err := h.c.ExtendSendSpace(20000)
	if err != nil || len(big) != 20000 {
		t.Fatalf("ExtendSendSpace(20000) with no loan: %d bytes, %v", len(big), err)
	}
}

// CommitSendMore holds back a last segment short of a full MSS for the next
// commit to fill; a commit without "more" (CommitSendPart, CommitSend), a
// Write or a Close lets it go; and the cork lets it go by itself after
// corkTimeout.
func TestCommitSendMoreHoldsTheShortTail(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.establishedWith(1000, 64000)
	data := patterned(20000, 5)
	off := 0
	commit := func(n int, how func(int, time.Time) (int, error)) {
		t.Helper()
		loan, err := h.c.ExtendSendSpace(n)
		if err != nil || len(loan) < n {
			t.Fatalf("ExtendSendSpace(%d): %d bytes, %v", n, len(loan), err)
		}
		copy(loan, data[off:off+n])
		off += n
		if _, err := how(n, h.now); err != nil {
			t.Fatal(err)
		}
	}
	sentTo := lISS + 1
	expectSent := func(what string, want int) {
		t.Helper()
		out := h.output()
		got := payloadFrom(t, sentTo, out)
		if len(got) != want {
			t.Fatalf("%s: sent %d bytes, want %d", what, len(got), want)
		}
		start := int(sentTo - (lISS + 1))
		if !bytes.Equal(got, data[start:start+want]) {
			t.Fatalf("%s: the bytes sent differ from the ones committed", what)
		}
		sentTo = sentTo.Add(craft.Size(want))
		if len(out) > 0 {
			h.send(ack(sentTo, 64000)) // room in the cwnd for what follows
			h.output()
		}
	}

	commit(2500, h.c.CommitSendMore)
	expectSent("2500 bytes committed with more to come", 2000)
	commit(1500, h.c.CommitSendMore)
	expectSent("1500 more", 2000) // the held 500 and the new 1500: two full segments
	commit(300, h.c.CommitSendMore)
	expectSent("300 more", 0)
	commit(0, h.c.CommitSendPart) // nothing more after all
	expectSent("a commit without more", 300)

	commit(700, h.c.CommitSendMore)
	expectSent("700 more", 0)
	if d, ok := h.c.NextDeadline(); !ok || d.After(h.now.Add(corkTimeout)) {
		t.Fatalf("deadline %v (%v), want the cork's limit within %v", d, ok, corkTimeout)
	}
	h.advance(corkTimeout - time.Millisecond)
	expectSent("just before the cork's limit", 0)
	h.advance(time.Millisecond)
	expectSent("at the cork's limit", 700)

	commit(1200, h.c.CommitSendMore)
	expectSent("1200 more", 1000)
	if _, err := h.c.CommitSend(0, h.now); err != nil { // ends the loan (it is empty)
		t.Fatal(err)
	}
	expectSent("CommitSend", 200)

	commit(400, h.c.CommitSendMore)
	expectSent("400 more", 0)
	if _, err := h.c.CommitSend(0, h.now); err != nil {
		t.Fatal(err)
	}
	expectSent("CommitSend after a corked commit", 400)

	// The whole loan was committed (it has ended), with more to come:
	// a Write lets the held bytes go with its own.
	commit(900, h.c.CommitSendMore)
	expectSent("900 more", 0)
	if h.c.Lent() != 0 {
		t.Fatalf("Lent %d after committing the whole loan", h.c.Lent())
	}
	copy(data[off:], "w")
	if n, err := h.c.Write([]byte("w"), h.now); n != 1 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	off++
	expectSent("a Write after a corked commit", 901)

	// And Close: the held bytes go, with the FIN.
	commit(600, h.c.CommitSendMore)
	expectSent("600 more", 0)
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	out := h.output()
	if got := payloadFrom(t, sentTo, out); !bytes.Equal(got, data[off-600:off]) {
		t.Fatalf("Close after a corked commit: sent %d bytes, want the 600 held", len(got))
	}
	if last := out[len(out)-1]; last.Flags&craft.FlagFIN == 0 {
		t.Fatalf("Close after a corked commit: the last segment has flags %v, want a FIN", last.Flags)
	}
}
