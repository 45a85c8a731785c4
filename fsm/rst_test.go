package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// syncState describes how to reach a synchronized state with plainConfig
// and the numbers that hold there.
type syncState struct {
	state  State
	reach  func(*harness)
	rcvNxt craft.Seq // the peer's next sequence number as we expect it
	sndNxt craft.Seq // our SND.NXT
	win    int       // the window we advertise
	err    error     // error after an exact RST
}

func syncStates() []syncState {
	return []syncState{
		{Established, (*harness).established, rISS + 1, lISS + 1, 64000, ErrReset},
		{FinWait1, (*harness).toFinWait1, rISS + 1, lISS + 2, 64000, ErrReset},
		{FinWait2, (*harness).toFinWait2, rISS + 1, lISS + 2, 64000, ErrReset},
		{CloseWait, (*harness).toCloseWait, rISS + 2, lISS + 1, 63999, ErrReset},
		{Closing, (*harness).toClosing, rISS + 2, lISS + 2, 63999, nil},
		{LastAck, (*harness).toLastAck, rISS + 2, lISS + 2, 63999, nil},
		{TimeWait, (*harness).toTimeWait, rISS + 2, lISS + 2, 63999, nil},
	}
}

// RST in every synchronized state: exactly at RCV.NXT it resets (RFC 9293
// §3.10.7.4 second, RFC 5961 §3.2); elsewhere in the window it draws a
// challenge ACK; outside the window it is dropped silently.
func TestRSTInSynchronizedStates(t *testing.T) {
	for _, ss := range syncStates() {
		t.Run(ss.state.String(), func(t *testing.T) {
			h := newHarness(t, plainConfig())
			ss.reach(h)
			h.expectState(ss.state)
			h.c.Events()

			h.send(craft.TCP{Flags: fR, Seq: ss.rcvNxt + 100})
			h.expect(pat{Flags: fA, Seq: ss.sndNxt, Ack: ss.rcvNxt, Window: ss.win})
			h.expectState(ss.state)
			if n := h.c.Stats().ChallengeACKs; n != 1 {
				t.Fatalf("challenge ACKs %d, want 1", n)
			}

			h.send(craft.TCP{Flags: fR, Seq: ss.rcvNxt + 100000})
			h.expectNothing()
			h.send(craft.TCP{Flags: fR, Seq: ss.rcvNxt - 1})
			h.expectNothing()
			h.expectState(ss.state)

			h.send(craft.TCP{Flags: fR | fA, Seq: ss.rcvNxt, Ack: ss.sndNxt})
			h.expectNothing()
			h.expectState(Closed)
			h.expectTransition(ss.state, Closed, CauseRcvdRST)
			if !errors.Is(h.c.Err(), ss.err) || (ss.err == nil && h.c.Err() != nil) {
				t.Fatalf("error %v, want %v", h.c.Err(), ss.err)
			}
			if ss.err != nil {
				if _, err := h.c.Read(make([]byte, 1), h.now); !errors.Is(err, ss.err) {
					t.Fatalf("read after reset: %v", err)
				}
			}
			if _, ok := h.c.NextDeadline(); ok {
				t.Fatal("timer left running")
			}
		})
	}
}

// RST in the unsynchronized states.
func TestRSTInSynSent(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.toSynSent()
	// Without ACK: dropped (RFC 9293 §3.10.7.3 second).
	h.send(craft.TCP{Flags: fR, Seq: rISS})
	h.expectNothing()
	h.expectState(SynSent)
	// With an ACK of our SYN: connection refused.
	h.c.Events()
	h.send(craft.TCP{Flags: fR | fA, Seq: 0, Ack: lISS + 1})
	h.expectNothing()
	h.expectState(Closed)
	if !errors.Is(h.c.Err(), ErrRefused) {
		t.Fatalf("err %v", h.c.Err())
	}
	evs := h.events(Error)
	if len(evs) != 1 || !errors.Is(evs[0].Err, ErrRefused) || evs[0].Err.Error() != "connection refused" {
		t.Fatalf("error events %+v", evs)
	}
}

// A SYN in a synchronized state draws a challenge ACK whatever its sequence
// number (RFC 5961 §4.2).
func TestSYNInSynchronizedStates(t *testing.T) {
	for _, ss := range syncStates() {
		t.Run(ss.state.String(), func(t *testing.T) {
			for _, seq := range []craft.Seq{ss.rcvNxt, ss.rcvNxt + 10, rISS, rISS + 1<<31} {
				h := newHarness(t, plainConfig())
				ss.reach(h)
				h.send(craft.TCP{Flags: fS, Seq: seq, Window: 1000})
				h.expect(pat{Flags: fA, Seq: ss.sndNxt, Ack: ss.rcvNxt, Window: ss.win})
				h.expectState(ss.state)
			}
		})
	}
}

// Challenge ACKs are rate limited when asked (RFC 5961 §7).
func TestChallengeACKRateLimit(t *testing.T) {
	cfg := plainConfig()
	cfg.ChallengeACKLimit = 2
	h := newHarness(t, cfg)
	h.established()
	for i := 0; i < 2; i++ {
		h.send(craft.TCP{Flags: fR, Seq: rISS + 50})
		h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	}
	h.send(craft.TCP{Flags: fR, Seq: rISS + 50})
	h.expectNothing()
	h.advance(time.Second)
	h.send(craft.TCP{Flags: fS, Seq: rISS + 50})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
}

// An ACK far older than the window (RFC 5961 §5.2) or of unsent data
// (RFC 9293 §3.10.7.4 fifth) is answered with an ACK and dropped, data and
// all.
func TestUnacceptableACKValues(t *testing.T) {
	h := newHarness(t, plainConfig())
	h.established()
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS + 500, Window: 64000, Payload: []byte("abc")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	if h.c.Readable() != 0 {
		t.Fatal("data of a segment with a bad ACK was accepted")
	}
	h.send(craft.TCP{Flags: fA, Seq: rISS + 1, Ack: lISS.Sub(200000), Window: 64000, Payload: []byte("abc")})
	h.expect(pat{Flags: fA, Seq: lISS + 1, Ack: rISS + 1, Window: 64000})
	if h.c.Readable() != 0 {
		t.Fatal("data of a segment with an old ACK was accepted")
	}
	// A segment without ACK is dropped in a synchronized state.
	h.send(craft.TCP{Seq: rISS + 1, Window: 64000, Payload: []byte("abc")})
	h.expectNothing()
	if h.c.Readable() != 0 {
		t.Fatal("data without ACK accepted")
	}
}
