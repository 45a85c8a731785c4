package fsm

import (
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// twProbeHarness is a timestamped connection with Config.TimeWaitProbe,
// closed by us first and brought to TIME-WAIT by the peer's FIN: our ACK
// of it, then the probe at our FIN's sequence number.
func twProbeHarness(t *testing.T, probe, ts bool) *harness {
	t.Helper()
	cfg := plainConfig()
	cfg.Timestamps, cfg.TimeWaitProbe = ts, probe
	cfg.TimeWait = 60 * time.Second
	h := newHarness(t, cfg)
	var opts []craft.Option
	if ts {
		opts = []craft.Option{{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptNOP}, {Kind: craft.OptNOP}, {Kind: craft.OptTimestamps, TSVal: 7000, TSEcr: lTS}}
	} else {
		opts = synOptsPlain
	}
	if err := h.c.Connect(h.now); err != nil {
		t.Fatal(err)
	}
	h.output()
	h.advance(time.Millisecond)
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000, Options: opts})
	h.output()
	h.expectState(Established)
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	h.expect(pat{Flags: fF | fA, Seq: lISS + 1, Ack: rISS + 1, Window: anyWin})
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000, Options: h.peerTS(ts)})
	h.expectState(TimeWait)
	return h
}

func (h *harness) peerTS(ts bool) []craft.Option {
	if !ts {
		return nil
	}
	h.tsPeer++
	return h.ts(0)
}

// The peer got our ACK and closed: it resets the probe, which ends
// TIME-WAIT at once with a cause that says so.
func TestTimeWaitProbeReset(t *testing.T) {
	h := twProbeHarness(t, true, true)
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: anyWin},
		pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 2, Window: anyWin})
	h.c.Events()
	h.advance(time.Millisecond)
	// Linux answers an ACK without a connection with <SEQ=SEG.ACK><CTL=RST>.
	h.send(craft.TCP{Flags: fR, Seq: rISS + 2})
	h.expectState(Closed)
	h.expectTransition(TimeWait, Closed, CauseTimeWaitPeerGone)
	h.expectNothing()
	if err := h.c.Err(); err != nil {
		t.Fatalf("clean close ended with %v", err)
	}
}

// Our ACK of the peer's FIN was lost: the peer, in LAST-ACK, answers the
// probe with an ACK, and we send our ACK again; its retransmitted FIN is
// still ACKed later; without a reset TIME-WAIT ends after the short hold
// (2 × (MinRTO + SRTT)), restarted by the retransmitted FIN, not after
// TimeWait.
func TestTimeWaitProbeLastAck(t *testing.T) {
	h := twProbeHarness(t, true, true)
	h.output()
	h.c.Events()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 2, Ack: lISS + 2, Window: 64000, Options: h.peerTS(true)})
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: anyWin})
	// A second ACK is not an answer to the probe any more.
	h.send(craft.TCP{Flags: fA, Seq: rISS + 2, Ack: lISS + 2, Window: 64000, Options: h.peerTS(true)})
	h.expectNothing()
	h.advance(300 * time.Millisecond)
	h.expectState(TimeWait)
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000, Options: h.peerTS(true)})
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: anyWin})
	hold := 2 * (h.c.Config().MinRTO + time.Millisecond) // SRTT is the handshake's 1 ms
	h.advance(hold - time.Millisecond)
	h.expectState(TimeWait)
	h.advance(time.Millisecond)
	h.expectState(Closed)
	h.expectTransition(TimeWait, Closed, CauseTimeWaitFINsDone)
}

// Without timestamps (RFC 6191 cannot tell an old duplicate from a new
// incarnation) or without TimeWaitProbe, no probe goes out, and
// TIME-WAIT lasts TimeWait; an RST then ends it as plain "rcvd RST".
func TestTimeWaitProbeNeedsTimestamps(t *testing.T) {
	for _, c := range []struct {
		name      string
		probe, ts bool
	}{{"no timestamps", true, false}, {"no probe", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			h := twProbeHarness(t, c.probe, c.ts)
			h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: anyWin})
			h.advance(h.c.Config().TimeWait - time.Millisecond)
			h.expectState(TimeWait)
			h.send(craft.TCP{Flags: fR, Seq: rISS + 2})
			h.expectTransition(TimeWait, Closed, CauseRcvdRST)
		})
	}
}
