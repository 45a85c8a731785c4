package fsm

import (
	"testing"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Data written in SYN-SENT waits for the handshake and then rides on the
// first ACK (RFC 9293 §3.10.2: SEND in SYN-SENT queues the data).
func TestWriteBeforeEstablished(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	h.write("early")
	h.expectNothing()
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000, Options: synOptsPlain})
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: "early"})
}

// A segment for another 4-tuple is dropped without reply.
func TestWrongPortsDropped(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	h.send(craft.TCP{SrcPort: rPort + 1, Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: []byte("x")})
	h.expectNothing()
	if h.c.Readable() != 0 {
		t.Fatal("data for another connection accepted")
	}
	if evs := h.events(SegmentDropped); len(evs) != 1 {
		t.Fatalf("dropped events %+v", evs)
	}
}

// Window scaling only when both sides sent the option (RFC 7323 §2.2):
// without it in the SYN-ACK our windows are unscaled and capped at 65535.
func TestNoWindowScaleWithoutPeerOption(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LocalPort, cfg.RemotePort = lPort, rPort
	cfg.FixedISS, cfg.ISS = true, lISS
	cfg.Timestamps, cfg.SACK = false, false
	h := newHarness(t, cfg)
	if err := h.c.Connect(h.now); err != nil {
		t.Fatal(err)
	}
	h.output()
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 1000, Options: synOptsPlain})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 65535})
	// The peer's window is not scaled either.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 3000})
	if w := h.c.Stats().SndWnd; w != 3000 {
		t.Fatalf("send window %d, want 3000", w)
	}
}

// Data on a SYN in LISTEN is not acknowledged (no TCP Fast Open): the peer
// sends it again after the handshake.
func TestDataOnSYNNotAcked(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.c.Listen()
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 64000, Payload: []byte("tfo?"), Options: synOptsPlain})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 64000, Opts: synOptsPlain})
	h.send(craft.TCP{Flags: fA | fP, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: []byte("tfo?")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 5, Window: 63996})
	if got := h.read(); got != "tfo?" {
		t.Fatalf("read %q", got)
	}
}

// Out-of-order bookkeeping is bounded: a segment that would open one hole
// too many is dropped (and acknowledged so the peer learns where we are).
func TestOutOfOrderRangeLimit(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	for i := 0; i < maxOOORanges; i++ {
		h.send(craft.TCP{Flags: fA, Seq: rISS + 1 + craft.Seq(2*i+1), Ack: lISS + 1, Window: 64000, Payload: []byte("x")})
	}
	h.output()
	if len(h.c.rcv.ooo) != maxOOORanges {
		t.Fatalf("%d ranges", len(h.c.rcv.ooo))
	}
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1 + 1000, Ack: lISS + 1, Window: 64000, Payload: []byte("y")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	if len(h.c.rcv.ooo) != maxOOORanges {
		t.Fatalf("%d ranges after the limit", len(h.c.rcv.ooo))
	}
	// Filling the holes one by one delivers everything that was kept.
	for i := 0; i < maxOOORanges; i++ {
		h.send(craft.TCP{Flags: fA, Seq: rISS + 1 + craft.Seq(2*i), Ack: lISS + 1, Window: 64000, Payload: []byte("o")})
	}
	h.output()
	if got := h.read(); len(got) != 2*maxOOORanges || got[:4] != "oxox" {
		t.Fatalf("read %d bytes %q...", len(got), got[:8])
	}
}

// A peer that offers a tiny MSS is held to a floor (like Linux's
// tcp_min_snd_mss), and an MSS option of 0 means the 536 default.
func TestPeerMSSFloor(t *testing.T) {
	for _, tc := range []struct{ mss, want uint16 }{{1, minPeerMSS}, {0, 536}, {9000, 1460}} {
		h := newHarness(t, plainConfig())
		h.toSynSent()
		h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000, Options: []craft.Option{{Kind: craft.OptMSS, MSS: tc.mss}}})
		if got := h.c.Stats().SndMSS; got != int(tc.want) {
			t.Errorf("peer MSS %d: send MSS %d, want %d", tc.mss, got, tc.want)
		}
	}
}

// Duplicate ACKs (RFC 5681 §2) are counted; an ACK that moves the window
// or carries data is not one.
func TestDupACKCount(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	h.write("abc")
	h.output()
	for i := 0; i < 3; i++ {
		h.send(ack(lISS+1, 64000))
	}
	h.send(ack(lISS+1, 63000))                                                                      // window update
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 63000, Payload: []byte("d")}) // data
	if n := h.c.Stats().DupACKs; n != 3 {
		t.Fatalf("dup ACKs %d, want 3", n)
	}
}
