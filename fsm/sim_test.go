package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// This file wires two Conns to each other through a simulated link that
// loses, duplicates, delays and reorders segments, driven by a seeded random
// source and a fake clock that jumps to the next delivery or deadline, so
// simulated minutes cost nothing.

type linkParams struct {
	loss, dup     float64       // probabilities per segment
	delay, jitter time.Duration // one-way delay: delay + uniform[0, jitter)
	// drop, if set, is asked about every segment before the random loss:
	// true drops it. from is the sender (0: the end that connects).
	drop func(from int, seg *craft.TCP) bool
	// observe, if set, sees every event of both ends, with its time.
	observe func(end int, now time.Time, ev Event)
}

type delivery struct {
	at  time.Time
	n   uint64 // tie-breaker: FIFO among equal times
	to  int
	seg craft.TCP
}

// deliveryHeap is a binary min-heap by (at, n), typed to avoid boxing.
type deliveryHeap []delivery

func (h deliveryHeap) less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].n < h[j].n
}

func (h *deliveryHeap) push(d delivery) {
	*h = append(*h, d)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *deliveryHeap) pop() delivery {
	s := *h
	d := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = delivery{}
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s.less(l, m) {
			m = l
		}
		if r < len(s) && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return d
}

// simEnd is one endpoint and its application: it writes src, then closes,
// and checks that what it reads equals want.
type simEnd struct {
	c       *Conn
	src     []byte
	sent    int
	closed  bool
	want    []byte
	rcvd    int
	eof     bool
	err     error
	bad     string
	readBuf []byte
	events  []Event
	out     []craft.TCP
	index   int
	observe func(end int, now time.Time, ev Event)
}

func (e *simEnd) app(now time.Time) {
	if e.bad != "" {
		return
	}
	for e.sent < len(e.src) && e.c.State() != Listen {
		n, err := e.c.Write(e.src[e.sent:], now)
		if err != nil {
			e.bad = fmt.Sprintf("write: %v", err)
			return
		}
		if n == 0 {
			break
		}
		e.sent += n
	}
	if st := e.c.State(); e.sent == len(e.src) && !e.closed && (st == Established || st == CloseWait) {
		e.closed = true
		if err := e.c.Close(now); err != nil {
			e.bad = fmt.Sprintf("close in %v: %v", e.c.State(), err)
			return
		}
	}
	for !e.eof {
		n, err := e.c.Read(e.readBuf, now)
		if n > 0 {
			if e.rcvd+n > len(e.want) || !bytes.Equal(e.readBuf[:n], e.want[e.rcvd:e.rcvd+n]) {
				e.bad = fmt.Sprintf("received bytes differ at offset %d", e.rcvd)
				return
			}
			e.rcvd += n
			continue
		}
		if err != nil {
			if err.Error() == "EOF" {
				e.eof = true
			} else {
				e.err = err
			}
		}
		break
	}
	e.events = e.c.AppendEvents(e.events[:0])
	for _, ev := range e.events {
		if e.observe != nil {
			e.observe(e.index, now, ev)
		}
		if ev.Kind == Error {
			e.bad = fmt.Sprintf("error event: %v (%s)", ev.Err, ev.Cause)
		}
	}
}

type simResult struct {
	elapsed      time.Duration // simulated
	steps        int
	segs         [2]uint64
	retransmits  [2]uint64
	finalStates  [2]State
	delivered    [2]int
	inputs       int
	maxHeapDepth int
	conns        [2]*Conn
}

// simConfig is the connection configuration used by the simulations.
func simConfig(local, remote uint16, seed uint64) Config {
	cfg := DefaultConfig()
	cfg.LocalPort, cfg.RemotePort = local, remote
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	key[2] = byte(local)
	cfg.Rand = rand.NewChaCha8(key)
	cfg.TimeWait = 500 * time.Millisecond
	return cfg
}

// runSim transfers a→b data and b→a data at the same time over the link
// and returns once both ends are CLOSED (or a limit is hit).
func runSim(t testing.TB, seed uint64, lp linkParams, cfgA, cfgB Config, dataA, dataB []byte) simResult {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	ca, err := NewConn(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := NewConn(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_700_000_000, 0)
	now := start
	ends := [2]*simEnd{
		{c: ca, src: dataA, want: dataB, readBuf: make([]byte, 64<<10), index: 0, observe: lp.observe},
		{c: cb, src: dataB, want: dataA, readBuf: make([]byte, 64<<10), index: 1, observe: lp.observe},
	}
	if err := cb.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := ca.Connect(now); err != nil {
		t.Fatal(err)
	}
	var h deliveryHeap
	var n uint64
	var res simResult
	send := func(from int) {
		e := ends[from]
		e.out = e.c.AppendOutput(e.out[:0])
		for i := range e.out {
			s := &e.out[i]
			if lp.drop != nil && lp.drop(from, s) {
				continue
			}
			if rng.Float64() < lp.loss {
				continue
			}
			copies := 1
			if lp.dup > 0 && rng.Float64() < lp.dup {
				copies = 2
			}
			for k := 0; k < copies; k++ {
				d := lp.delay
				if lp.jitter > 0 {
					d += time.Duration(rng.Int64N(int64(lp.jitter)))
				}
				n++
				seg := *s
				if e.c.cfg.ReuseOutput {
					// The segment's memory is the machine's until
					// its next call: take a copy now, as a driver
					// that writes it to the wire does.
					seg = s.Clone()
				}
				h.push(delivery{at: now.Add(d), n: n, to: 1 - from, seg: seg})
			}
		}
		clear(e.out)
	}
	const maxSteps = 50_000_000
	for step := 0; step < maxSteps; step++ {
		for i, e := range ends {
			e.app(now)
			if e.bad != "" {
				t.Fatalf("seed %d: end %d: %s (state %v, sim time %v)", seed, i, e.bad, e.c.State(), now.Sub(start))
			}
			send(i)
		}
		if ca.State() == Closed && cb.State() == Closed {
			res.steps = step
			break
		}
		// The next thing to happen.
		var next time.Time
		if len(h) > 0 {
			next = h[0].at
		}
		for _, e := range ends {
			if d, ok := e.c.NextDeadline(); ok && (next.IsZero() || d.Before(next)) {
				next = d
			}
		}
		if next.IsZero() {
			t.Fatalf("seed %d: stalled in %v / %v at sim time %v (a sent %d rcvd %d, b sent %d rcvd %d)",
				seed, ca.State(), cb.State(), now.Sub(start), ends[0].sent, ends[0].rcvd, ends[1].sent, ends[1].rcvd)
		}
		if next.After(now) {
			now = next
		}
		if len(h) > res.maxHeapDepth {
			res.maxHeapDepth = len(h)
		}
		for len(h) > 0 && !h[0].at.After(now) {
			d := h.pop()
			ends[d.to].c.Input(&d.seg, now)
			res.inputs++
			send(d.to)
		}
		for i, e := range ends {
			if d, ok := e.c.NextDeadline(); ok && !d.After(now) {
				e.c.Tick(now)
				send(i)
			}
		}
	}
	res.elapsed = now.Sub(start)
	for i, e := range ends {
		if e.err != nil {
			t.Fatalf("seed %d: end %d: read error %v", seed, i, e.err)
		}
		if e.rcvd != len(e.want) || !e.eof {
			t.Fatalf("seed %d: end %d received %d of %d bytes (eof %v), state %v", seed, i, e.rcvd, len(e.want), e.eof, e.c.State())
		}
		if e.c.State() != Closed {
			t.Fatalf("seed %d: end %d ended in %v", seed, i, e.c.State())
		}
		if e.c.Err() != nil {
			t.Fatalf("seed %d: end %d: %v", seed, i, e.c.Err())
		}
		st := e.c.Stats()
		res.segs[i] = st.SegsSent
		res.retransmits[i] = st.Retransmits
		res.finalStates[i] = e.c.State()
		res.delivered[i] = e.rcvd
		res.conns[i] = e.c
	}
	return res
}

func testData(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 0xda, 0x7a})
	r.Read(b)
	return b
}

func TestPairLossless(t *testing.T) {
	a, b := testData(1, 1<<20), testData(2, 300_000)
	res := runSim(t, 1, linkParams{delay: 5 * time.Millisecond}, simConfig(40000, 80, 1), simConfig(80, 40000, 1), a, b)
	t.Logf("%+v", res)
}

// TestLossyLink moves 10 MB in each direction at the same time between two
// Conns over a link that loses, duplicates and reorders segments, for 200
// seeds at 0%, 5% and 20% loss, and checks that every byte arrives intact
// and both ends close cleanly.
func TestLossyLink(t *testing.T) {
	const size = 10 << 20
	seeds := 200
	if testing.Short() {
		seeds = 10
	}
	// One 10 MB block per direction, shared read-only by all runs; the
	// seeds vary the link's losses, duplicates and delays and the ISNs.
	blockA, blockB := testData(1, size), testData(2, size)
	for _, loss := range []float64{0, 0.05, 0.20} {
		t.Run(fmt.Sprintf("loss=%v", loss), func(t *testing.T) {
			t.Parallel()
			for seed := 1; seed <= seeds; seed++ {
				seed := uint64(seed)
				t.Run(fmt.Sprint(seed), func(t *testing.T) {
					t.Parallel()
					lp := linkParams{loss: loss, dup: 0.01, delay: 5 * time.Millisecond, jitter: 3 * time.Millisecond}
					ca, cb := simConfig(40000, 80, seed), simConfig(80, 40000, seed)
					// With 20% loss each way a handshake segment fails
					// 36% of the time; six SYN retries would give up on
					// about one seed in a thousand. The test is about
					// data integrity, so the SYN may try longer.
					ca.MaxSYNRetries, cb.MaxSYNRetries = 20, 20
					ca.MaxRetries, cb.MaxRetries = 30, 30
					// runSim compares every byte read with the byte
					// sent, as it is read, and checks the counts and
					// the clean close at the end.
					res := runSim(t, seed, lp, ca, cb, blockA, blockB)
					if res.delivered[0] != size || res.delivered[1] != size {
						t.Fatalf("delivered %v bytes, want %d each way", res.delivered, size)
					}
				})
			}
		})
	}
}

// TestReuseOutputLossy runs the lossy simulation with Config.ReuseOutput on
// both ends: every segment is copied when it is drained (as stack sends it
// at once) and must still carry the right bytes, through retransmissions,
// SACK recovery and ring wrap-around, so a machine that lent memory it
// then overwrote fails the byte-by-byte comparison.
func TestReuseOutputLossy(t *testing.T) {
	for _, loss := range []float64{0, 0.05, 0.2} {
		for seed := uint64(1); seed <= 10; seed++ {
			a, b := testData(seed, 2<<20), testData(seed+1000, 2<<20)
			lp := linkParams{loss: loss, dup: 0.01, delay: 5 * time.Millisecond, jitter: 5 * time.Millisecond}
			ca, cb := simConfig(40000, 80, seed), simConfig(80, 40000, seed)
			ca.MaxSYNRetries, cb.MaxSYNRetries = 30, 30
			ca.MaxRetries, cb.MaxRetries = 30, 30
			ca.ReuseOutput, cb.ReuseOutput = true, true
			// An odd buffer size makes the ring wrap at every offset.
			ca.SendBufferSize, cb.SendBufferSize = 100_003, 77_777
			res := runSim(t, seed, lp, ca, cb, a, b)
			if res.delivered[0] != len(a) || res.delivered[1] != len(b) {
				t.Fatalf("loss %v seed %d: delivered %v bytes, want %d and %d", loss, seed, res.delivered, len(a), len(b))
			}
		}
	}
}

func TestPairLossyQuick(t *testing.T) {
	for _, loss := range []float64{0.05, 0.2} {
		for seed := uint64(1); seed <= 20; seed++ {
			a, b := testData(seed, 1<<20), testData(seed+1000, 1<<20)
			lp := linkParams{loss: loss, dup: 0.01, delay: 5 * time.Millisecond, jitter: 5 * time.Millisecond}
			ca, cb := simConfig(40000, 80, seed), simConfig(80, 40000, seed)
			ca.MaxSYNRetries, cb.MaxSYNRetries = 30, 30
			res := runSim(t, seed, lp, ca, cb, a, b)
			t.Logf("loss %v seed %d: %+v", loss, seed, res)
		}
	}
}
