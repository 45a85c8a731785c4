package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// establishedMSS is established() with the peer announcing mss and window.
func (h *harness) establishedWith(mss uint16, window uint16) {
	h.t.Helper()
	if err := h.c.Connect(h.now); err != nil {
		h.t.Fatal(err)
	}
	h.expect(pat{Flags: fS, Seq: lISS, Window: anyWin, Opts: nil})
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: window, Options: []craft.Option{{Kind: craft.OptMSS, MSS: mss}}})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: anyWin})
	h.c.Events()
}

func ack(n craft.Seq, win uint16) craft.TCP {
	return craft.TCP{Flags: fA, Seq: rISS + 1, Ack: n, Window: win}
}

// Segmentation by the effective MSS, PSH on the last segment of a write,
// and the peer's window honoured (RFC 9293 §3.8.6, §3.9.1).
func TestSegmentationAndSendWindow(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.establishedWith(1000, 1500)
	data := strings.Repeat("0123456789", 250) // 2500 bytes
	h.write(data)
	// 1000 bytes fill a segment; the 500 the window still allows wait:
	// less than half the largest window while data is outstanding (sender
	// silly window avoidance, RFC 9293 §3.8.6.2.1).
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: data[:1000]})
	h.send(ack(lISS+1001, 1500))
	// A full segment; the last 500 bytes wait for the ACK (Nagle).
	h.expect(pat{Flags: fA, Seq: lISS + 1001, Ack: rISS + 1, Window: 64000, Payload: data[1000:2000]})
	h.send(ack(lISS+2001, 400))
	// Window-limited with nothing outstanding: what fits goes.
	h.expect(pat{Flags: fA, Seq: lISS + 2001, Ack: rISS + 1, Window: 64000, Payload: data[2000:2400]})
	h.send(ack(lISS+2401, 1500))
	h.expect(pat{Flags: fA | fP, Seq: lISS + 2401, Ack: rISS + 1, Window: 64000, Payload: data[2400:]})
	h.send(ack(lISS+2501, 1500))
	h.expectNothing()
	if w := h.c.Writable(); w != 64000 {
		t.Fatalf("writable %d after everything acknowledged", w)
	}
}

// The send buffer is bounded: Write takes what fits.
func TestSendBufferFull(t *testing.T) {
	cfg := plainConfig()
	cfg.SendBufferSize = 3000
	h := newHarness(t, cfg)
	h.establishedWith(1000, 0) // zero window: nothing leaves
	n, err := h.c.Write(make([]byte, 5000), h.now)
	if err != nil || n != 3000 {
		t.Fatalf("write: %d, %v; want 3000", n, err)
	}
	if w := h.c.Writable(); w != 0 {
		t.Fatalf("writable %d", w)
	}
	n, err = h.c.Write([]byte("x"), h.now)
	if err != nil || n != 0 {
		t.Fatalf("write to a full buffer: %d, %v", n, err)
	}
}

// Nagle (RFC 9293 §3.7.4): a small segment waits while data is
// unacknowledged; NoDelay sends at once.
func TestNagle(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	h.write("a")
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: "a"})
	h.write("b")
	h.write("c")
	h.expectNothing()
	h.send(ack(lISS+2, 64000))
	h.expect(pat{Flags: fA | fP, Seq: lISS + 2, Ack: rISS + 1, Window: 64000, Payload: "bc"})

	cfg := plainConfig()
	cfg.NoDelay = true
	h = newHarness(t, cfg)
	h.established()
	h.write("a")
	h.write("b")
	h.expect(
		pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: "a"},
		pat{Flags: fA | fP, Seq: lISS + 2, Ack: rISS + 1, Window: 64000, Payload: "b"},
	)
}

// Delayed ACK (RFC 9293 §3.8.6.3): a lone segment is acknowledged after
// DelayedACK; every second full-sized segment at once.
func TestDelayedACK(t *testing.T) {
	cfg := plainConfig()
	cfg.DelayedACK = 40 * time.Millisecond
	h := newHarness(t, cfg)
	h.established()
	h.send(craft.TCP{Flags: fA | fP, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: []byte("hello")})
	h.expectNothing()
	d, ok := h.c.NextDeadline()
	if !ok || d.Sub(h.now) != 40*time.Millisecond {
		t.Fatalf("deadline %v in %v, want the delayed ACK in 40ms", ok, d.Sub(h.now))
	}
	h.advance(39 * time.Millisecond)
	h.expectNothing()
	h.advance(time.Millisecond)
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 6, Window: 63995})

	full := bytes.Repeat([]byte{'x'}, 1460)
	h.send(craft.TCP{Flags: fA, Seq: rISS + 6, Ack: lISS + 1, Window: 64000, Payload: full})
	h.expectNothing()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 6 + 1460, Ack: lISS + 1, Window: 64000, Payload: full})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 6 + 2920, Window: anyWin})
	// Data we send carries the ACK: no separate ACK follows.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 6 + 2920, Ack: lISS + 1, Window: 64000, Payload: []byte("q")})
	h.expectNothing()
	h.write("r")
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 6 + 2921, Window: anyWin, Payload: "r"})
	h.advance(time.Second)
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 6 + 2921, Window: anyWin, Payload: "r"}) // RTO, not a delayed ACK
}

// TestFINAckRidesOnOurFIN: with delayed ACKs, the ACK of the peer's FIN in
// ESTABLISHED waits like a delayed ACK, so an application that closes on
// end of stream sends one FIN+ACK instead of an ACK then a FIN (as Linux
// does); if the application does not close, the ACK goes out when the
// delayed-ACK timer fires; in FIN-WAIT-2 the FIN is acknowledged at once.
func TestFINAckRidesOnOurFIN(t *testing.T) {
	cfg := plainConfig()
	cfg.DelayedACK = 40 * time.Millisecond
	h := newHarness(t, cfg)
	h.established()
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000})
	h.expectState(CloseWait)
	h.expectNothing()
	h.advance(5 * time.Millisecond)
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	h.expect(pat{Flags: fF | fA, Seq: lISS + 1, Ack: rISS + 2, Window: anyWin})
	h.expectState(LastAck)
	h.advance(40 * time.Millisecond)
	h.expectNothing() // the delayed ACK was sent with the FIN

	h = newHarness(t, cfg)
	h.established()
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000})
	h.expectNothing()
	h.advance(39 * time.Millisecond)
	h.expectNothing()
	h.advance(time.Millisecond)
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 2, Window: anyWin})
	h.expectState(CloseWait)

	h = newHarness(t, cfg)
	h.established()
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	h.expect(pat{Flags: fF | fA, Seq: lISS + 1, Ack: rISS + 1, Window: anyWin})
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000})
	h.expectState(FinWait2)
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: anyWin})
	h.expectState(TimeWait)
}

// Out-of-order data is held and acknowledged at once with SACK blocks;
// the segment filling the hole is acknowledged at once too (RFC 5681 §4.2,
// RFC 2018 §4).
func TestOutOfOrderAndSACK(t *testing.T) {
	cfg := plainConfig()
	cfg.SACK = true
	cfg.DelayedACK = 40 * time.Millisecond
	h := newHarness(t, cfg)
	if err := h.c.Connect(h.now); err != nil {
		t.Fatal(err)
	}
	h.expect(pat{Flags: fS, Seq: lISS, Window: 64000, Opts: []craft.Option{{Kind: craft.OptMSS, MSS: 1460},
		{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptSACKPermitted}}})
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000, Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptSACKPermitted}}})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	sack := func(blocks ...craft.SACKBlock) []craft.Option {
		return []craft.Option{{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptSACK, Blocks: blocks}}
	}
	seg := func(off int, s string) craft.TCP {
		return craft.TCP{Flags: fA, Seq: rISS + 1 + craft.Seq(off), Ack: lISS + 1, Window: 64000, Payload: []byte(s)}
	}
	h.send(seg(10, "klmno"))
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Opts: sack(craft.SACKBlock{Left: rISS + 11, Right: rISS + 16})})
	h.send(seg(20, "uvwxy"))
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Opts: sack(
		craft.SACKBlock{Left: rISS + 21, Right: rISS + 26}, craft.SACKBlock{Left: rISS + 11, Right: rISS + 16})})
	// Overlapping and duplicate out-of-order data merge.
	h.send(seg(12, "mnopqrst"))
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Opts: sack(craft.SACKBlock{Left: rISS + 11, Right: rISS + 26})})
	if h.c.Readable() != 0 {
		t.Fatal("out-of-order data readable")
	}
	// The hole is filled: immediate ACK of everything, no SACK left.
	h.send(seg(0, "abcdefghij"))
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 26, Window: 64000 - 25, Opts: []craft.Option{}})
	if got := h.read(); got != "abcdefghijklmnopqrstuvwxy" {
		t.Fatalf("reassembled %q", got)
	}
}

// A FIN that arrives ahead of a hole is held until the hole is filled.
func TestOutOfOrderFIN(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	h.send(craft.TCP{Flags: fA | fF, Seq: rISS + 4, Ack: lISS + 1, Window: 64000, Payload: []byte("def")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	h.expectState(Established)
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000, Payload: []byte("abc")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 8, Window: 63993})
	h.expectState(CloseWait)
	if got := h.read(); got != "abcdef" {
		t.Fatalf("read %q", got)
	}
}

// A segment larger than the MSS (a TSO/GRO kernel peer) is accepted.
func TestLargeSegmentAccepted(t *testing.T) {
	cfg := plainConfig()
	cfg.RecvBufferSize = 256 << 10
	cfg.WindowScale = 7
	h := newHarness(t, cfg)
	if err := h.c.Connect(h.now); err != nil {
		t.Fatal(err)
	}
	h.output()
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 65535, Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptWindowScale, Shift: 7}}})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: (256<<10 - 127) >> 7})
	big := bytes.Repeat([]byte("tso!"), 16000) // 64000 bytes
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 512, Payload: big})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1 + 64000, Window: anyWin})
	buf := make([]byte, 100000)
	n, err := h.c.Read(buf, h.now)
	if err != nil || !bytes.Equal(buf[:n], big) {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	// The peer's window field is scaled by its shift: 512<<7.
	if w := h.c.Stats().SndWnd; w != 512<<7 {
		t.Fatalf("send window %d, want %d", w, 512<<7)
	}
}

// Retransmission timeout (RFC 6298): first after InitialRTO, then doubling;
// an RTT sample after a clean ACK; the limit ends with ErrTimeout.
func TestRetransmissionTimeout(t *testing.T) {
	cfg := plainConfig()
	cfg.MaxRetries = 3
	h := newHarness(t, cfg)
	h.established()
	h.write("abc")
	want := pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: "abc"}
	h.expect(want)
	// The handshake took no time: SRTT 0, RTO at its 200 ms minimum.
	if rto := h.c.Stats().RTO; rto != 200*time.Millisecond {
		t.Fatalf("RTO %v, want 200ms after a zero RTT sample", rto)
	}
	h.advance(199 * time.Millisecond)
	h.expectNothing()
	h.advance(time.Millisecond)
	h.expect(want)
	if evs := h.events(Retransmit); len(evs) != 1 || evs[0].Seq != lISS+1 || evs[0].Bytes != 3 {
		t.Fatalf("retransmit events %+v", evs)
	}
	h.advance(399 * time.Millisecond)
	h.expectNothing()
	h.advance(time.Millisecond)
	h.expect(want)
	h.advance(800 * time.Millisecond)
	h.expect(want)
	h.advance(1600 * time.Millisecond)
	h.expectNothing()
	h.expectState(Closed)
	if !errors.Is(h.c.Err(), ErrTimeout) || h.c.Err().Error() != "connection timed out after 3 retransmissions" {
		t.Fatalf("err %v", h.c.Err())
	}
	if _, err := h.c.Write([]byte("x"), h.now); !errors.Is(err, ErrTimeout) {
		t.Fatalf("write after timeout: %v", err)
	}
	if st := h.c.Stats(); st.Retransmits != 3 || st.TimeoutRetransmits != 3 || st.RecoveryRetransmits != 0 || st.Timeouts != 3 {
		t.Fatalf("retransmits %d (%d after a timeout, %d by recovery), timeouts %d; want 3 (3, 0), 3",
			st.Retransmits, st.TimeoutRetransmits, st.RecoveryRetransmits, st.Timeouts)
	}
}

// RTT samples follow Karn's rule and feed SRTT/RTTVAR (RFC 6298 §2).
func TestRTTSamples(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	h.write("abc")
	h.output()
	h.advance(50 * time.Millisecond)
	h.send(ack(lISS+4, 64000))
	evs := h.events(RTTSample)
	if len(evs) != 1 || evs[0].RTT != 50*time.Millisecond {
		t.Fatalf("RTT events %+v", evs)
	}
	// The handshake sample was 0, so SRTT = 7/8*0 + 1/8*50ms.
	st := h.c.Stats()
	if st.SRTT != 50*time.Millisecond/8 || st.RTTMax != 50*time.Millisecond || st.RTTSamples != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A retransmitted segment gives no sample (Karn).
	h.write("def")
	h.output()
	h.advance(st.RTO)
	h.output()
	h.advance(10 * time.Millisecond)
	h.send(ack(lISS+7, 64000))
	if evs := h.events(RTTSample); len(evs) != 0 {
		t.Fatalf("sample from a retransmission: %+v", evs)
	}
}

// SYN retransmission and the SYN retry limit.
func TestSYNRetransmission(t *testing.T) {
	cfg := plainConfig()
	cfg.MaxSYNRetries = 2
	h := newHarness(t, cfg)
	h.toSynSent()
	h.advance(time.Second)
	h.expect(pat{Flags: fS, Seq: lISS, Window: 64000, Opts: synOptsPlain})
	h.advance(2 * time.Second)
	h.expect(pat{Flags: fS, Seq: lISS, Window: 64000, Opts: synOptsPlain})
	h.advance(4 * time.Second)
	h.expectNothing()
	h.expectState(Closed)
	if !errors.Is(h.c.Err(), ErrTimeout) {
		t.Fatalf("err %v", h.c.Err())
	}
	if st := h.c.Stats(); st.Retransmits != 2 || st.TimeoutRetransmits != 2 {
		t.Fatalf("retransmits %d, %d of them after a timeout; want 2, 2", st.Retransmits, st.TimeoutRetransmits)
	}
	// The SYN-ACK is retransmitted as well.
	h = newHarness(t, plainConfig())
	h.toSynReceived()
	h.advance(time.Second)
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 64000, Opts: synOptsPlain})
}

// After an RTO the congestion window is one segment (RFC 5681 §3.1), so
// only the first segment goes again; ACKs grow it back.
func TestCongestionWindowAfterRTO(t *testing.T) {
	cfg := plainConfig()
	cfg.Congestion = CongestionReno
	h := newHarness(t, cfg)
	h.establishedWith(1000, 64000)
	data := bytes.Repeat([]byte("z"), 5000)
	if _, err := h.c.Write(data, h.now); err != nil {
		t.Fatal(err)
	}
	if got := len(h.output()); got != 5 {
		t.Fatalf("initial flight %d segments, want 5 (IW10 allows it)", got)
	}
	h.advance(200 * time.Millisecond)
	got := h.output()
	if len(got) != 1 || got[0].Seq != lISS+1 || len(got[0].Payload) != 1000 {
		t.Fatalf("after RTO sent %d segments", len(got))
	}
	if st := h.c.Stats(); st.Cwnd != 1000 || st.Ssthresh != 2500 {
		t.Fatalf("cwnd %d ssthresh %d, want 1000 and 2500", st.Cwnd, st.Ssthresh)
	}
	h.send(ack(lISS+1001, 64000))
	if got := h.output(); len(got) != 2 || got[0].Seq != lISS+1001 || got[1].Seq != lISS+2001 {
		t.Fatalf("after one ACK: %d segments", len(got))
	}
	// A cumulative ACK beyond sndNxt (the peer had the rest) skips ahead.
	h.send(ack(lISS+4001, 64000))
	got = h.output()
	if len(got) != 1 || got[0].Seq != lISS+4001 {
		t.Fatalf("after the jump: %+v", got)
	}
}

// Zero window: the persist timer probes with <SEQ=SND.UNA-1> (never data
// beyond the window) and backs off; an opening window restarts the flow.
func TestZeroWindowProbe(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.establishedWith(1000, 1000)
	h.write(strings.Repeat("a", 1500))
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: strings.Repeat("a", 1000)})
	h.send(ack(lISS+1001, 0))
	h.expectNothing()
	d, ok := h.c.NextDeadline()
	if !ok {
		t.Fatal("no persist timer")
	}
	first := d.Sub(h.now)
	h.advance(first)
	probe := pat{Flags: fA, Seq: lISS + 1000, Ack: rISS + 1, Window: 64000}
	h.expect(probe)
	h.send(ack(lISS+1001, 0))
	d, _ = h.c.NextDeadline()
	if second := d.Sub(h.now); second != 2*first {
		t.Fatalf("persist backoff %v then %v", first, second)
	}
	h.advance(d.Sub(h.now))
	h.expect(probe)
	if st := h.c.Stats(); st.WindowProbes != 2 || st.Retransmits != 0 {
		t.Fatalf("window probes %d, retransmits %d; want 2, 0", st.WindowProbes, st.Retransmits)
	}
	h.send(ack(lISS+1001, 1000))
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1001, Ack: rISS + 1, Window: 64000, Payload: strings.Repeat("a", 500)})
}

// Keep-alive (RFC 9293 §3.8.4): probes after idleness, answered probes
// keep the connection, unanswered ones end it.
func TestKeepalive(t *testing.T) {
	cfg := plainConfig()
	cfg.Keepalive = 10 * time.Second
	cfg.KeepaliveInterval = time.Second
	cfg.KeepaliveProbes = 2
	h := newHarness(t, cfg)
	h.established()
	h.advance(10 * time.Second)
	probe := pat{Flags: fA, Seq: lISS, Ack: rISS + 1, Window: 64000}
	h.expect(probe)
	h.send(ack(lISS+1, 64000))
	h.advance(9 * time.Second)
	h.expectNothing()
	h.advance(time.Second)
	h.expect(probe)
	h.advance(time.Second)
	h.expect(probe)
	h.advance(time.Second)
	h.expectState(Closed)
	if !errors.Is(h.c.Err(), ErrTimeout) {
		t.Fatalf("err %v", h.c.Err())
	}
}

// Events report readable data, acknowledged bytes and state changes.
func TestDataEvents(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	h.write("abcd")
	h.output()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 5, Window: 64000, Payload: []byte("xyz")})
	h.output()
	var readable, acked int
	for _, e := range h.c.Events() {
		switch e.Kind {
		case DataReadable:
			readable += e.Bytes
		case BytesAcked:
			acked += e.Bytes
		}
	}
	if readable != 3 || acked != 4 || h.c.Readable() != 3 {
		t.Fatalf("readable %d acked %d", readable, acked)
	}
	if n, err := h.c.Read(make([]byte, 10), h.now); n != 3 || err != nil {
		t.Fatalf("read %d %v", n, err)
	}
	if n, err := h.c.Read(make([]byte, 10), h.now); n != 0 || err != nil {
		t.Fatalf("read with nothing there: %d %v, want 0, nil", n, err)
	}
}

// After more than an RTO without sending, cwnd falls back to the initial
// window (RFC 5681 §4.1), so a long-idle connection does not burst.
func TestRestartWindowAfterIdle(t *testing.T) {
	cfg := plainConfig()
	cfg.SendBufferSize = 1 << 20
	h := newHarness(t, cfg)
	h.establishedWith(1000, 64000)
	// Grow cwnd: three windows' worth, each segment acknowledged in slow
	// start while the sender is limited by cwnd.
	h.write(strings.Repeat("x", 60000))
	for i := 0; i < 3; i++ {
		for _, s := range h.output() {
			h.send(ack(s.Seq.Add(craft.Size(len(s.Payload))), 64000))
		}
	}
	if cw := h.c.Stats().Cwnd; cw <= 10*1000 {
		t.Fatalf("cwnd %d did not grow past the initial window", cw)
	}
	h.advance(5 * time.Second)
	if _, err := h.c.Write(make([]byte, 60000), h.now); err != nil {
		t.Fatal(err)
	}
	if n := len(h.output()); n != 10 {
		t.Fatalf("sent %d segments after idling, want the initial window of 10", n)
	}
}

// A pure ACK carries SEQ = the right edge of the peer's window when
// SND.MAX lies beyond it (the peer shut its window with our data in
// flight), as Linux's tcp_acceptable_seq: an ACK at SND.MAX would be "not
// acceptable" to the shut window (RFC 9293 §3.10.7.4 first) and dropped
// unread, its acknowledgement with it. Full-duplex transfers stalled on
// that (the peer ignored every ACK of its data and went on RTOs).
func TestACKSeqWithinShutWindow(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.establishedWith(1000, 1000)
	h.write(strings.Repeat("a", 1000))
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: strings.Repeat("a", 1000)})
	// The peer shuts its window without acknowledging the data, then
	// sends data of its own, which we acknowledge.
	h.send(ack(lISS+1, 0))
	h.expectNothing()
	d := ack(lISS+1, 0)
	d.Payload = []byte("hello")
	h.send(d)
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 6, Window: anyWin})
}
