package fsm

import (
	"testing"

	"github.com/tcpcraft/tcpcraft/craft"
)

// A packet-too-big quoting a segment in flight lowers the send MSS and
// sends what was in flight again at once, cut to the new size, with no
// congestion response; later data goes out at the new size; the ACKs
// complete the transfer with the scoreboard consistent.
func TestPathMTUExceeded(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	cwndBefore := h.c.cwnd()
	data := make([]byte, 4*1460)
	h.write(string(data))
	sent := h.output()
	if len(sent) != 4 || len(sent[0].Payload) != 1460 {
		t.Fatalf("sent %d segments of %d bytes, want 4 of 1460", len(sent), len(sent[0].Payload))
	}
	// The ICMP error quotes the second segment: 1280-byte path (IPv6:
	// 1280 - 40 - 20 = 1220).
	if !h.c.PathMTUExceeded(1220, sent[1].Seq, h.now) {
		t.Fatal("a valid packet-too-big was refused")
	}
	ev := h.events(PathMTU)
	if len(ev) != 1 || ev[0].Cause != CausePacketTooBig || ev[0].Bytes != 1220 {
		t.Fatalf("events %+v", ev)
	}
	out := h.output()
	total := 0
	for i, s := range out {
		if len(s.Payload) > 1220 {
			t.Errorf("retransmission %d: %d bytes, above the new MSS", i, len(s.Payload))
		}
		if s.Seq != lISS+1+craft.Seq(total) {
			t.Errorf("retransmission %d at %d, want %d", i, s.Seq, lISS+1+craft.Seq(total))
		}
		total += len(s.Payload)
	}
	if total != len(data) {
		t.Fatalf("retransmitted %d bytes in %d segments, want all %d in flight", total, len(out), len(data))
	}
	if st := h.c.Stats(); st.SndMSS != 1220 || h.c.cwnd() < cwndBefore {
		t.Errorf("send MSS %d, cwnd %d (was %d): want 1220 and no congestion response", st.SndMSS, h.c.cwnd(), cwndBefore)
	}
	if err := h.c.sb.check(h.c.snd.una, h.c.snd.max); err != nil {
		t.Fatal(err)
	}
	// New data at the new size; the ACK of everything empties the
	// scoreboard.
	h.write(string(make([]byte, 3000)))
	for _, s := range h.output() {
		if len(s.Payload) > 1220 {
			t.Errorf("new data in a %d-byte segment", len(s.Payload))
		}
	}
	for i := 0; h.c.snd.una != h.c.snd.max && i < 10; i++ {
		h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: h.c.snd.max, Window: 64000})
		for _, s := range h.output() {
			if len(s.Payload) > 1220 {
				t.Errorf("new data in a %d-byte segment", len(s.Payload))
			}
		}
	}
	if err := h.c.sb.check(h.c.snd.una, h.c.snd.max); err != nil || h.c.sb.q.len() != 0 || h.c.sb.lost != 0 {
		t.Fatalf("after the final ACK: %v, %d segments, %d lost", err, h.c.sb.q.len(), h.c.sb.lost)
	}
}

// RFC 5927 §4.1: an ICMP error quoting a sequence number not in flight is
// forged or stale: it changes nothing. One that would not lower the MSS
// changes nothing either; an absurdly small one is floored.
func TestPathMTUValidation(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	if h.c.PathMTUExceeded(500, lISS+1, h.now) {
		t.Error("taken with nothing in flight")
	}
	h.write(string(make([]byte, 2000)))
	sent := h.output()
	for _, seq := range []craft.Seq{lISS, lISS + 2001, lISS + 100000, craft.Seq(0).Sub(5000)} {
		if h.c.PathMTUExceeded(500, seq, h.now) {
			t.Errorf("seq %d outside [SND.UNA, SND.NXT) taken", seq)
		}
	}
	if ev := h.events(PathMTU); len(ev) != 5 || ev[0].Cause != CauseICMPOutOfWindow {
		t.Errorf("events %+v", ev)
	}
	if h.c.PathMTUExceeded(1460, sent[0].Seq, h.now) {
		t.Error("an MTU that lowers nothing was taken")
	}
	if st := h.c.Stats(); st.SndMSS != 1460 {
		t.Fatalf("send MSS %d after refused errors", st.SndMSS)
	}
	h.expectNothing()
	if !h.c.PathMTUExceeded(8, sent[0].Seq, h.now) {
		t.Fatal("a tiny MTU inside the window was refused")
	}
	if st := h.c.Stats(); st.SndMSS != minPeerMSS {
		t.Errorf("send MSS %d, want the floor %d", st.SndMSS, minPeerMSS)
	}
}
