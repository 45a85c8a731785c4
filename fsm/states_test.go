package fsm

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// One test per state and transition of the RFC 9293 §3.3.2 diagram.

// Helpers that bring a plainConfig Conn into each state. The numbers follow
// established(): our next byte is lISS+1, the peer's rISS+1.

func (h *harness) toSynSent() {
	h.t.Helper()
	if err := h.c.Connect(h.now); err != nil {
		h.t.Fatal(err)
	}
	h.expect(pat{Flags: fS, Seq: lISS, Window: 64000, Opts: synOptsPlain})
	h.expectState(SynSent)
}

func (h *harness) toSynReceived() {
	h.t.Helper()
	if err := h.c.Listen(); err != nil {
		h.t.Fatal(err)
	}
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 64000, Options: synOptsPlain})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 64000, Opts: synOptsPlain})
	h.expectState(SynReceived)
}

func (h *harness) toFinWait1() {
	h.t.Helper()
	h.established()
	if err := h.c.Close(h.now); err != nil {
		h.t.Fatal(err)
	}
	h.expect(pat{Flags: fF | fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	h.expectState(FinWait1)
}

func (h *harness) toFinWait2() {
	h.t.Helper()
	h.toFinWait1()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000})
	h.expectNothing()
	h.expectState(FinWait2)
}

func (h *harness) toCloseWait() {
	h.t.Helper()
	h.established()
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000})
	// The FIN takes a sequence number, not buffer space: the right edge
	// stays where it was, so the window reads one less.
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 2, Window: 63999})
	h.expectState(CloseWait)
}

func (h *harness) toClosing() {
	h.t.Helper()
	h.toFinWait1()
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: 63999})
	h.expectState(Closing)
}

func (h *harness) toLastAck() {
	h.t.Helper()
	h.toCloseWait()
	if err := h.c.Close(h.now); err != nil {
		h.t.Fatal(err)
	}
	h.expect(pat{Flags: fF | fA, Seq: lISS + 1, Ack: rISS + 2, Window: 63999})
	h.expectState(LastAck)
}

func (h *harness) toTimeWait() {
	h.t.Helper()
	h.toFinWait2()
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: 63999})
	h.expectState(TimeWait)
}

func TestStateNames(t *testing.T) {
	want := []string{"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
		"FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT"}
	for i, w := range want {
		if got := State(i).String(); got != w {
			t.Errorf("State(%d) = %q, want %q", i, got, w)
		}
	}
	if got := State(42).String(); got != "State(42)" {
		t.Errorf("State(42) = %q", got)
	}
}

func TestNewConnValidates(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.LocalPort = 0 },
		func(c *Config) { c.RemotePort = 0 },
		func(c *Config) { c.MSS = 10 },
		func(c *Config) { c.WindowScale = 15 },
		func(c *Config) { c.WindowScale = -2 },
		func(c *Config) { c.RecvBufferSize = -1 },
		func(c *Config) { c.SendBufferSize = 1 << 31 },
		func(c *Config) { c.DelayedACK = time.Second },
		func(c *Config) { c.MinRTO, c.MaxRTO = time.Second, time.Millisecond },
		func(c *Config) { c.MaxRetries = -1 },
		func(c *Config) { c.Keepalive = -time.Second },
		func(c *Config) { c.ChallengeACKLimit = -1 },
	}
	for i, f := range bad {
		cfg := plainConfig()
		f(&cfg)
		if _, err := NewConn(cfg); err == nil {
			t.Errorf("case %d: NewConn accepted a bad config", i)
		}
	}
	c, err := NewConn(plainConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c.State() != Closed {
		t.Fatalf("new conn in %v", c.State())
	}
	// Random ISS by default: two conns from crypto/rand differ (2^-32
	// chance of a false failure).
	cfg := plainConfig()
	cfg.FixedISS = false
	a, _ := NewConn(cfg)
	b, _ := NewConn(cfg)
	if a.ISS() == b.ISS() {
		t.Fatalf("two random ISS are equal: %d", a.ISS())
	}
}

// CLOSED → SYN-SENT: active OPEN sends a SYN (RFC 9293 §3.10.1).
func TestActiveOpenSendsSYN(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	h.expectTransition(Closed, SynSent, CauseConnect)
	if err := h.c.Connect(h.now); !errors.Is(err, ErrExists) {
		t.Fatalf("second connect: %v", err)
	}
}

// The default SYN carries MSS, SACK-permitted, timestamps, NOP, window
// scale, in Linux's order, and an unscaled window (RFC 7323 §2.2).
func TestDefaultSYNOptions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LocalPort, cfg.RemotePort = lPort, rPort
	cfg.FixedISS, cfg.ISS = true, lISS
	cfg.FixedTSOffset, cfg.TSOffset = true, lTS
	h := newHarness(t, cfg)
	if err := h.c.Connect(h.now); err != nil {
		t.Fatal(err)
	}
	h.expect(pat{Flags: fS, Seq: lISS, Window: 65535, Opts: []craft.Option{
		{Kind: craft.OptMSS, MSS: 1460},
		{Kind: craft.OptSACKPermitted},
		{Kind: craft.OptTimestamps, TSVal: lTS, TSEcr: 0},
		{Kind: craft.OptNOP},
		{Kind: craft.OptWindowScale, Shift: 7},
	}})
}

// SYN-SENT → ESTABLISHED on a SYN-ACK; the ACK goes out at once
// (RFC 9293 §3.10.7.3 fourth).
func TestSynSentToEstablished(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	h.c.Events()
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 30000, Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1000}}})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	h.expectState(Established)
	h.expectTransition(SynSent, Established, CauseRcvdSYNACK)
	st := h.c.Stats()
	if st.SndMSS != 1000 || st.SndWnd != 30000 {
		t.Fatalf("send MSS %d window %d, want 1000 and 30000", st.SndMSS, st.SndWnd)
	}
}

// SYN-SENT: an ACK that does not acknowledge our SYN draws
// <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.3 first); then, as in Linux,
// the SYN goes again 2 ms later instead of after the RTO, once: a
// retransmitted SYN waits for its timer as usual.
func TestSynSentBadACK(t *testing.T) {
	syn := pat{Flags: fS, Seq: lISS, Window: 64000, Opts: synOptsPlain}
	for _, ack := range []craft.Seq{lISS, lISS + 2, lISS - 100} {
		h := newHarness(t, plainConfig())
		h.toSynSent()
		h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: ack, Window: 1000})
		h.expect(pat{Flags: fR, Seq: ack, Window: anyWin})
		h.expectState(SynSent)
		h.advance(synAgainAfter)
		h.expect(syn)
		// An RST with a bad ACK is dropped without reply, and the SYN,
		// retransmitted already, waits for its timer (doubled: 2 s).
		h.send(craft.TCP{Flags: fR | fA, Seq: rISS, Ack: ack})
		h.expectNothing()
		h.expectState(SynSent)
		h.advance(1999 * time.Millisecond)
		h.expectNothing()
		h.advance(time.Millisecond)
		h.expect(syn)
	}
	// An RST with a bad ACK before any retransmission: the SYN at once.
	h := newHarness(t, plainConfig())
	h.toSynSent()
	h.send(craft.TCP{Flags: fR | fA, Seq: rISS, Ack: lISS + 5})
	h.expectNothing()
	h.advance(synAgainAfter)
	h.expect(syn)
}

// SYN-SENT: a segment with neither SYN nor RST is dropped (§3.10.7.3 fifth).
func TestSynSentNoSYN(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	h.send(craft.TCP{Flags: fA, Seq: rISS, Ack: lISS + 1, Window: 1000})
	h.expectNothing()
	h.expectState(SynSent)
}

// SYN-SENT → CLOSED on CLOSE (RFC 9293 §3.10.4).
func TestCloseInSynSent(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	h.expectNothing()
	h.expectState(Closed)
	if _, ok := h.c.NextDeadline(); ok {
		t.Fatal("timer still running in CLOSED")
	}
}

// SYN-SENT → SYN-RECEIVED → ESTABLISHED: simultaneous open, scripted
// (RFC 9293 §3.5 Figure 7).
func TestSimultaneousOpenScripted(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	h.c.Events()
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 64000, Options: synOptsPlain})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 64000, Opts: synOptsPlain})
	h.expectState(SynReceived)
	h.expectTransition(SynSent, SynReceived, CauseRcvdSYNSimultaneous)
	// The peer's SYN-ACK completes it.
	h.send(craft.TCP{Flags: fS | fA, Seq: rISS, Ack: lISS + 1, Window: 64000, Options: synOptsPlain})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	h.expectState(Established)
	h.write("hi")
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: "hi"})
}

// Simultaneous open with a bare ACK instead of the SYN-ACK also works.
func TestSimultaneousOpenBareACK(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 64000, Options: synOptsPlain})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 64000, Opts: synOptsPlain})
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 64000})
	h.expectNothing()
	h.expectState(Established)
}

// Two Conns opening towards each other at the same time.
func TestSimultaneousOpenPair(t *testing.T) {
	ca := plainConfig()
	cb := plainConfig()
	cb.LocalPort, cb.RemotePort = rPort, lPort
	cb.ISS = rISS
	a, _ := NewConn(ca)
	b, _ := NewConn(cb)
	now := time.Unix(1_700_000_000, 0)
	if err := a.Connect(now); err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(now); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.Output(), b.Output()
	for round := 0; round < 5 && (len(sa) > 0 || len(sb) > 0); round++ {
		for i := range sa {
			b.Input(&sa[i], now)
		}
		for i := range sb {
			a.Input(&sb[i], now)
		}
		sa, sb = a.Output(), b.Output()
	}
	if a.State() != Established || b.State() != Established {
		t.Fatalf("states %v %v, want both ESTABLISHED", a.State(), b.State())
	}
}

// CLOSED → LISTEN on passive OPEN; LISTEN → SYN-RECEIVED on a SYN
// (RFC 9293 §3.10.7.2 third).
func TestListenToSynReceived(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynReceived()
	h.expectTransition(Listen, SynReceived, CauseRcvdSYN)
	if err := h.c.Listen(); !errors.Is(err, ErrExists) {
		t.Fatalf("listen twice: %v", err)
	}
}

// LISTEN: RST ignored, ACK answered with RST, other segments dropped
// (RFC 9293 §3.10.7.2).
func TestListenRules(t *testing.T) {
	h := newHarness(t, plainConfig())
	if err := h.c.Listen(); err != nil {
		t.Fatal(err)
	}
	h.send(craft.TCP{Flags: fR, Seq: rISS})
	h.expectNothing()
	h.send(craft.TCP{Flags: fA, Seq: rISS, Ack: 777})
	h.expect(pat{Flags: fR, Seq: 777, Window: anyWin})
	h.send(craft.TCP{Flags: fF, Seq: rISS})
	h.expectNothing()
	h.expectState(Listen)
	// SEND in LISTEN is not supported: an error, not a transition.
	if _, err := h.c.Write([]byte("x"), h.now); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("write in LISTEN: %v", err)
	}
	// LISTEN → CLOSED on CLOSE.
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	h.expectState(Closed)
}

// The SYN-ACK mirrors the options the peer offered (RFC 7323 §2.2, §3.2;
// RFC 2018 §2) and its window is never scaled.
func TestSynAckMirrorsOptions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LocalPort, cfg.RemotePort = lPort, rPort
	cfg.FixedISS, cfg.ISS = true, lISS
	cfg.FixedTSOffset, cfg.TSOffset = true, lTS
	// Peer offers only MSS and window scale.
	h := newHarness(t, cfg)
	h.c.Listen()
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 65535, Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1400}, {Kind: craft.OptNOP}, {Kind: craft.OptWindowScale, Shift: 9}}})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 65535, Opts: []craft.Option{
		{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptNOP}, {Kind: craft.OptWindowScale, Shift: 7}}})
	// Peer offers nothing: MSS only back; its MSS is taken as 536.
	h = newHarness(t, cfg)
	h.c.Listen()
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 65535})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 65535, Opts: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}})
	if m := h.c.Stats().SndMSS; m != 536 {
		t.Fatalf("send MSS %d without the option, want 536", m)
	}
	// Peer offers everything: everything back, TSecr echoes its TSval.
	h = newHarness(t, cfg)
	h.c.Listen()
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 65535, Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460},
		{Kind: craft.OptSACKPermitted}, {Kind: craft.OptTimestamps, TSVal: 4242}, {Kind: craft.OptNOP}, {Kind: craft.OptWindowScale, Shift: 7}}})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 65535, Opts: []craft.Option{
		{Kind: craft.OptMSS, MSS: 1460}, {Kind: craft.OptSACKPermitted}, {Kind: craft.OptTimestamps, TSVal: lTS, TSEcr: 4242},
		{Kind: craft.OptNOP}, {Kind: craft.OptWindowScale, Shift: 7}}})
	if m := h.c.Stats().SndMSS; m != 1448 {
		t.Fatalf("send MSS %d with timestamps, want 1448", m)
	}
}

// SYN-RECEIVED → ESTABLISHED on the ACK of our SYN (§3.10.7.4 fifth).
func TestSynReceivedToEstablished(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynReceived()
	h.c.Events()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 5000})
	h.expectNothing()
	h.expectState(Established)
	h.expectTransition(SynReceived, Established, CauseRcvdACKOfSYN)
	if w := h.c.Stats().SndWnd; w != 5000 {
		t.Fatalf("send window %d, want 5000", w)
	}
}

// SYN-RECEIVED: an ACK of something else draws <SEQ=SEG.ACK><CTL=RST>.
func TestSynReceivedBadACK(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynReceived()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 50, Window: 5000})
	h.expect(pat{Flags: fR, Seq: lISS + 50, Window: anyWin})
	h.expectState(SynReceived)
}

// SYN-RECEIVED: the peer's retransmitted SYN gets the SYN-ACK again.
func TestSynReceivedRetransmittedSYN(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynReceived()
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 64000, Options: synOptsPlain})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 64000, Opts: synOptsPlain})
	h.expectState(SynReceived)
}

// SYN-RECEIVED → LISTEN on RST when opened passively (§3.10.7.4 second).
func TestSynReceivedRSTBackToListen(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynReceived()
	h.c.Events()
	h.send(craft.TCP{Flags: fR, Seq: rISS + 1})
	h.expectNothing()
	h.expectState(Listen)
	h.expectTransition(SynReceived, Listen, CauseNone)
	// And a new SYN is accepted again.
	h.send(craft.TCP{Flags: fS, Seq: rISS + 100, Window: 64000, Options: synOptsPlain})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 101, Window: 64000, Opts: synOptsPlain})
}

// SYN-RECEIVED → CLOSED with "refused" on RST after a simultaneous open.
func TestSynReceivedRSTActive(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	h.send(craft.TCP{Flags: fS, Seq: rISS, Window: 64000})
	h.expect(pat{Flags: fS | fA, Seq: lISS, Ack: rISS + 1, Window: 64000, Opts: synOptsPlain})
	h.send(craft.TCP{Flags: fR, Seq: rISS + 1})
	h.expectState(Closed)
	if !errors.Is(h.c.Err(), ErrRefused) {
		t.Fatalf("err %v, want refused", h.c.Err())
	}
}

// SYN-RECEIVED → FIN-WAIT-1 on CLOSE; the FIN follows once the SYN is
// acknowledged.
func TestCloseInSynReceived(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynReceived()
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	h.expectState(FinWait1)
	h.expectNothing()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 1, Window: 5000})
	h.expect(pat{Flags: fF | fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	h.expectState(FinWait1)
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 2, Window: 5000})
	h.expectState(FinWait2)
}

// ESTABLISHED → FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED: the active
// close (RFC 9293 §3.6 Figure 12, left side).
func TestActiveClose(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toFinWait1()
	h.expectTransition(Established, FinWait1, CauseClose)
	if _, err := h.c.Write([]byte("x"), h.now); !errors.Is(err, ErrClosing) {
		t.Fatalf("write after close: %v", err)
	}
	if err := h.c.Close(h.now); !errors.Is(err, ErrClosing) {
		t.Fatalf("close twice: %v", err)
	}
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000})
	h.expectState(FinWait2)
	h.expectTransition(FinWait1, FinWait2, CauseRcvdACKOfFIN)
	// Half-close: we still receive in FIN-WAIT-2.
	h.send(craft.TCP{Flags: fA | fP, Seq: rISS + 1, Ack: lISS + 2, Window: 64000, Payload: []byte("late")})
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 5, Window: 64000 - 4})
	if got := h.read(); got != "late" {
		t.Fatalf("read %q", got)
	}
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 5, Ack: lISS + 2, Window: 64000})
	// Reading 4 bytes does not move the right edge (receiver SWS
	// avoidance, RFC 9293 §3.8.6.2.2); the FIN takes one more.
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 6, Window: 63995})
	h.expectState(TimeWait)
	h.expectTransition(FinWait2, TimeWait, CauseRcvdFIN)
	if _, err := h.c.Read(make([]byte, 10), h.now); err != io.EOF {
		t.Fatalf("read after FIN: %v, want EOF", err)
	}
	// TIME-WAIT → CLOSED after 2 MSL.
	h.advance(h.c.Config().TimeWait - time.Millisecond)
	h.expectState(TimeWait)
	h.advance(time.Millisecond)
	h.expectState(Closed)
	h.expectTransition(TimeWait, Closed, CauseTimeWaitDone)
	if h.c.Err() != nil {
		t.Fatalf("clean close ended with %v", h.c.Err())
	}
}

// FIN-WAIT-1 → TIME-WAIT when the FIN and the ACK of ours come together.
func TestFinWait1ToTimeWait(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toFinWait1()
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: 63999})
	h.expectState(TimeWait)
}

// FIN-WAIT-1 → CLOSING → TIME-WAIT: simultaneous close (Figure 13).
func TestSimultaneousCloseScripted(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toClosing()
	h.expectTransition(FinWait1, Closing, CauseRcvdFIN)
	h.send(craft.TCP{Flags: fA, Seq: rISS + 2, Ack: lISS + 2, Window: 64000})
	h.expectNothing()
	h.expectState(TimeWait)
	h.expectTransition(Closing, TimeWait, CauseRcvdACKOfFIN)
}

// Two Conns closing at the same time both pass CLOSING and TIME-WAIT.
func TestSimultaneousClosePair(t *testing.T) {
	ca := plainConfig()
	cb := plainConfig()
	cb.LocalPort, cb.RemotePort, cb.ISS = rPort, lPort, rISS
	a, _ := NewConn(ca)
	b, _ := NewConn(cb)
	now := time.Unix(1_700_000_000, 0)
	b.Listen()
	a.Connect(now)
	exchange := func() {
		for round := 0; round < 10; round++ {
			sa, sb := a.Output(), b.Output()
			if len(sa) == 0 && len(sb) == 0 {
				return
			}
			for i := range sa {
				b.Input(&sa[i], now)
			}
			for i := range sb {
				a.Input(&sb[i], now)
			}
		}
	}
	exchange()
	if a.State() != Established || b.State() != Established {
		t.Fatalf("states %v %v", a.State(), b.State())
	}
	a.Events()
	b.Events()
	a.Close(now)
	b.Close(now)
	exchange()
	for _, c := range []*Conn{a, b} {
		if c.State() != TimeWait {
			t.Fatalf("state %v, want TIME-WAIT", c.State())
		}
		var path []State
		for _, e := range c.Events() {
			if e.Kind == StateChange {
				path = append(path, e.To)
			}
		}
		if len(path) != 3 || path[0] != FinWait1 || path[1] != Closing || path[2] != TimeWait {
			t.Fatalf("path %v, want FIN-WAIT-1 CLOSING TIME-WAIT", path)
		}
	}
}

// ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED: the passive close.
func TestPassiveClose(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toCloseWait()
	h.expectTransition(Established, CloseWait, CauseRcvdFIN)
	if _, err := h.c.Read(make([]byte, 10), h.now); err != io.EOF {
		t.Fatalf("read in CLOSE-WAIT: %v, want EOF", err)
	}
	// Half-close the other way: we may still send.
	h.write("bye")
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 2, Window: 63999, Payload: "bye"})
	if err := h.c.Close(h.now); err != nil {
		t.Fatal(err)
	}
	h.expect(pat{Flags: fF | fA, Seq: lISS + 4, Ack: rISS + 2, Window: 63999})
	h.expectState(LastAck)
	h.expectTransition(CloseWait, LastAck, CauseClose)
	h.send(craft.TCP{Flags: fA, Seq: rISS + 2, Ack: lISS + 5, Window: 64000})
	h.expectNothing()
	h.expectState(Closed)
	h.expectTransition(LastAck, Closed, CauseRcvdACKOfFIN)
	if h.c.Err() != nil {
		t.Fatal(h.c.Err())
	}
	// CLOSED answers further segments with RST (§3.10.7.1).
	h.send(craft.TCP{Flags: fA, Seq: rISS + 2, Ack: lISS + 5, Window: 64000})
	h.expect(pat{Flags: fR, Seq: lISS + 5, Window: anyWin})
}

// TIME-WAIT: a retransmitted FIN is acknowledged and restarts 2 MSL
// (RFC 9293 §3.10.7.4 eighth).
func TestTimeWaitRetransmittedFIN(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toTimeWait()
	tw := h.c.Config().TimeWait
	h.advance(tw / 2)
	h.send(craft.TCP{Flags: fF | fA, Seq: rISS + 1, Ack: lISS + 2, Window: 64000})
	h.expect(pat{Flags: fA, Seq: lISS + 2, Ack: rISS + 2, Window: 63999})
	h.advance(tw/2 + time.Millisecond)
	h.expectState(TimeWait)
	h.advance(tw / 2)
	h.expectState(Closed)
}

// The FIN is retransmitted like data (RFC 9293 §3.8.1).
func TestFINRetransmitted(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toFinWait1()
	h.advance(time.Second)
	h.expect(pat{Flags: fF | fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	h.advance(2 * time.Second)
	h.expect(pat{Flags: fF | fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
}

// CLOSED: RST for anything but an RST, in both forms (§3.10.7.1).
func TestClosedAnswersRST(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.send(craft.TCP{Flags: fS, Seq: 300, Payload: []byte("ab")})
	h.expect(pat{Flags: fR | fA, Seq: 0, Ack: 303, Window: anyWin})
	h.send(craft.TCP{Flags: fA, Seq: 300, Ack: 4444})
	h.expect(pat{Flags: fR, Seq: 4444, Window: anyWin})
	h.send(craft.TCP{Flags: fR, Seq: 300})
	h.expectNothing()
	if err := h.c.Close(h.now); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("close in CLOSED: %v", err)
	}
}

func TestResetFor(t *testing.T) {
	cases := []struct {
		in   craft.TCP
		ok   bool
		want craft.TCP
	}{
		{craft.TCP{SrcPort: 1, DstPort: 2, Flags: fS, Seq: 10}, true, craft.TCP{SrcPort: 2, DstPort: 1, Flags: fR | fA, Ack: 11}},
		{craft.TCP{SrcPort: 1, DstPort: 2, Flags: fS | fF, Seq: 10, Payload: []byte("xyz")}, true, craft.TCP{SrcPort: 2, DstPort: 1, Flags: fR | fA, Ack: 15}},
		{craft.TCP{SrcPort: 1, DstPort: 2, Flags: fA, Seq: 10, Ack: 99}, true, craft.TCP{SrcPort: 2, DstPort: 1, Flags: fR, Seq: 99}},
		{craft.TCP{SrcPort: 1, DstPort: 2, Flags: fA | fP, Seq: 0xffffffff, Ack: 99, Payload: []byte("q")}, true, craft.TCP{SrcPort: 2, DstPort: 1, Flags: fR, Seq: 99}},
		{craft.TCP{SrcPort: 1, DstPort: 2, Flags: 0, Seq: 0xffffffff, Payload: []byte("qq")}, true, craft.TCP{SrcPort: 2, DstPort: 1, Flags: fR | fA, Ack: 1}},
		{craft.TCP{SrcPort: 1, DstPort: 2, Flags: fR | fA, Seq: 10, Ack: 99}, false, craft.TCP{}},
	}
	for i, tc := range cases {
		got, ok := ResetFor(&tc.in)
		if ok != tc.ok || got.SrcPort != tc.want.SrcPort || got.DstPort != tc.want.DstPort || got.Flags != tc.want.Flags ||
			got.Seq != tc.want.Seq || got.Ack != tc.want.Ack || len(got.Payload) != 0 || len(got.Options) != 0 {
			t.Errorf("case %d: ResetFor = %+v, %v; want %+v, %v", i, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := ResetFor(nil); ok {
		t.Error("ResetFor(nil) wants a reply")
	}
}

// ABORT sends <SEQ=SND.NXT><CTL=RST> from a synchronized state and goes to
// CLOSED (RFC 9293 §3.10.5).
func TestAbort(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	h.write("data")
	h.expect(pat{Flags: fA | fP, Seq: lISS + 1, Ack: rISS + 1, Window: 64000, Payload: "data"})
	h.c.Abort(h.now)
	h.expect(pat{Flags: fR, Seq: lISS + 5, Window: anyWin})
	h.expectState(Closed)
	h.expectTransition(Established, Closed, CauseAbort)
	if _, err := h.c.Write([]byte("x"), h.now); !errors.Is(err, ErrAborted) {
		t.Fatalf("write after abort: %v", err)
	}
	if _, ok := h.c.NextDeadline(); ok {
		t.Fatal("timers still running after abort")
	}
	// From SYN-SENT: no RST (nothing synchronized), just CLOSED.
	h = newHarness(t, plainConfig())
	h.toSynSent()
	h.c.Abort(h.now)
	h.expectNothing()
	h.expectState(Closed)
	// From TIME-WAIT: no RST either.
	h = newHarness(t, plainConfig())
	h.toTimeWait()
	h.c.Abort(h.now)
	h.expectNothing()
	h.expectState(Closed)
}
