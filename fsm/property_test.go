package fsm

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// The property and fuzz tests run "programs": byte strings read as a
// sequence of operations on one Conn (segments in, writes, reads, closes,
// time passing). Segment fields are chosen relative to the Conn's own
// sequence variables, so random bytes reach deep states instead of being
// rejected at the first check. After every operation the invariants below
// must hold; no operation may panic.

type program struct {
	b []byte
	i int
}

func (p *program) next() byte {
	if p.i >= len(p.b) {
		return 0
	}
	v := p.b[p.i]
	p.i++
	return v
}

func (p *program) done() bool { return p.i >= len(p.b) }

func (p *program) u16() uint16 { return uint16(p.next())<<8 | uint16(p.next()) }

// delta is a small signed offset, sometimes a large one.
func (p *program) delta() craft.Size {
	v := p.next()
	switch {
	case v < 200:
		return craft.Size(int32(int8(v)))
	case v < 240:
		return craft.Size(int32(int16(p.u16())))
	default:
		return craft.Size(p.u16())<<16 | craft.Size(p.u16())
	}
}

var progFlags = [...]craft.Flags{
	fA, fA, fA | fP, fA | fP, fA | fF, fS, fS | fA, fR, fR | fA, 0, fF, fS | fF, fA | fR | fS,
	fA | craft.FlagURG, fA | craft.FlagECE | craft.FlagCWR,
}

// checker keeps what the invariants need across calls.
type checker struct {
	t       testing.TB
	c       *Conn
	rightOK bool
	right   craft.Seq // right edge of the window we advertised
	segs    int
}

// check verifies the invariants after one call and the segments it made.
func (k *checker) check(out []craft.TCP, what string) {
	c := k.c
	fail := func(format string, args ...any) {
		k.t.Helper()
		k.t.Fatalf("after %s (state %v): %s", what, c.State(), fmt.Sprintf(format, args...))
	}
	// Each part's own invariants (sendside.go, recvside.go, rtt.go,
	// recovery.go).
	if err := c.snd.check(); err != nil {
		fail("send side: %v", err)
	}
	if err := c.rcv.check(); err != nil {
		fail("receive side: %v", err)
	}
	if err := c.rtt.check(); err != nil {
		fail("RTT estimator: %v", err)
	}
	if err := c.sb.check(c.snd.una, c.snd.max); err != nil {
		fail("scoreboard: %v", err)
	}
	// Bounded memory.
	if c.snd.buf.n > c.cfg.SendBufferSize || len(c.snd.buf.buf) > c.cfg.SendBufferSize {
		fail("send buffer %d/%d over its limit %d", c.snd.buf.n, len(c.snd.buf.buf), c.cfg.SendBufferSize)
	}
	if c.rcv.buf.n > c.cfg.RecvBufferSize || len(c.rcv.buf.buf) > c.rcv.buf.max || c.rcv.buf.max > c.cfg.RecvBufferSize {
		fail("receive buffer %d/%d over its limit", c.rcv.buf.n, len(c.rcv.buf.buf))
	}
	// The scoreboard covers [SND.UNA, SND.MAX) once data flows.
	q := &c.sb.q
	if q.len() > 0 && (q.at(0).start != c.snd.una || q.at(q.len()-1).end != c.snd.max) {
		fail("scoreboard covers [%d, %d), outstanding [%d, %d)", q.at(0).start, q.at(q.len()-1).end, c.snd.una, c.snd.max)
	}
	if c.snd.synAcked && c.snd.una != c.snd.max && q.len() == 0 {
		fail("%d bytes outstanding and nothing on the scoreboard", c.snd.outstanding())
	}
	for i := range out {
		s := &out[i]
		k.segs++
		if s.SrcPort != c.cfg.LocalPort || s.DstPort != c.cfg.RemotePort {
			fail("segment with ports %d→%d", s.SrcPort, s.DstPort)
		}
		if s.Flags&craft.FlagRST != 0 {
			continue
		}
		// Never beyond SND.UNA+SND.WND (a zero-window probe carries no
		// data and sits below SND.UNA).
		if s.Flags&craft.FlagSYN == 0 && c.snd.synAcked {
			n := craft.Size(len(s.Payload))
			if s.Flags&craft.FlagFIN != 0 {
				n++
			}
			if n > 0 {
				edge := c.snd.una.Add(c.snd.wnd)
				if s.Seq.Add(n).GreaterThan(edge) {
					fail("segment seq %d len %d beyond SND.UNA %d + SND.WND %d", s.Seq, n, c.snd.una, c.snd.wnd)
				}
				if len(s.Payload) > c.snd.mss {
					fail("segment of %d bytes above the send MSS %d", len(s.Payload), c.snd.mss)
				}
			}
		}
		// Our advertised right edge never moves back (RFC 9293
		// §3.8.6.2.2), except by less than one unit of the window scale:
		// the scaled field cannot express every edge, and RFC 7323 §2.4
		// says such an apparent retraction happens and senders must
		// handle it. The furthest edge is what must not be lost.
		if s.Flags&craft.FlagSYN != 0 {
			k.rightOK = false // a new synchronization (e.g. after LISTEN again)
		}
		if s.Flags&craft.FlagACK != 0 && s.Flags&craft.FlagSYN == 0 {
			r := s.Ack.Add(craft.Size(s.Window) << c.rcv.shift)
			if k.rightOK && r.Add(craft.Size(1)<<c.rcv.shift).LessThanEq(k.right) {
				fail("advertised right edge moved back from %d to %d, a full unit of 2^%d or more", k.right, r, c.rcv.shift)
			}
			if !k.rightOK || r.GreaterThan(k.right) {
				k.right = r
			}
			k.rightOK = true
		}
	}
}

// runProgram interprets prog against a fresh Conn and returns the states
// the Conn passed through.
func runProgram(t testing.TB, prog []byte) (visited [TimeWait + 1]bool) {
	p := &program{b: prog}
	setup := p.next()
	cfg := DefaultConfig()
	cfg.LocalPort, cfg.RemotePort = lPort, rPort
	cfg.FixedISS, cfg.ISS = true, craft.Seq(uint32(p.next())<<24|0xfff000)
	cfg.FixedTSOffset, cfg.TSOffset = true, uint32(p.next())<<24
	cfg.Timestamps = setup&1 != 0
	cfg.SACK = setup&2 != 0
	if setup&4 != 0 {
		cfg.WindowScale = -1
	}
	if setup&8 != 0 {
		cfg.DelayedACK = 0
	}
	cfg.NoDelay = setup&16 != 0
	if setup&32 != 0 {
		cfg.RecvBufferSize, cfg.SendBufferSize = 3000, 5000
		cfg.MSS = 536
	}
	cfg.Keepalive = time.Duration(setup>>7) * 30 * time.Second
	cfg.ChallengeACKLimit = 0
	c, err := NewConn(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	k := &checker{t: t, c: c}
	if setup&64 != 0 {
		c.Listen()
	} else {
		c.Connect(now)
	}
	var out []craft.TCP
	k.check(c.AppendOutput(out[:0]), "open")
	payload := make([]byte, 70000)
	for i := range payload {
		payload[i] = byte(i)
	}
	readBuf := make([]byte, 4096)
	peerTS := uint32(5000)
	for op := 0; !p.done() && op < 2000; op++ {
		var what string
		switch p.next() % 12 {
		case 0, 1, 2, 3, 4, 5:
			seg := craft.TCP{SrcPort: rPort, DstPort: lPort}
			seg.Flags = progFlags[int(p.next())%len(progFlags)]
			switch p.next() % 4 {
			case 0, 1:
				seg.Seq = c.rcv.nxt.Add(p.delta())
			case 2:
				seg.Seq = c.rcv.irs.Add(p.delta())
			default:
				seg.Seq = craft.Seq(uint32(p.u16())<<16 | uint32(p.u16()))
			}
			switch p.next() % 5 {
			case 0, 1:
				seg.Ack = c.snd.max.Add(p.delta())
			case 2:
				seg.Ack = c.snd.una.Add(p.delta())
			case 3:
				seg.Ack = c.snd.iss.Add(p.delta())
			default:
				seg.Ack = craft.Seq(uint32(p.u16())<<16 | uint32(p.u16()))
			}
			seg.Window = p.u16()
			if n := int(p.next()); n > 0 {
				size := n * 7
				if n > 250 {
					size = 60000 + n
				}
				off := int(p.next()) * 13
				seg.Payload = payload[off : off+size]
			}
			o := p.next()
			if o&1 != 0 {
				peerTS += uint32(p.delta())
				seg.Options = append(seg.Options, craft.Option{Kind: craft.OptTimestamps, TSVal: peerTS, TSEcr: c.tsNow(now) - uint32(p.next())})
			}
			if o&2 != 0 {
				seg.Options = append(seg.Options, craft.Option{Kind: craft.OptMSS, MSS: p.u16()})
			}
			if o&4 != 0 {
				seg.Options = append(seg.Options, craft.Option{Kind: craft.OptWindowScale, Shift: p.next() % 20})
			}
			if o&8 != 0 {
				seg.Options = append(seg.Options, craft.Option{Kind: craft.OptSACKPermitted})
			}
			if o&16 != 0 {
				l := c.snd.una.Add(p.delta())
				seg.Options = append(seg.Options, craft.Option{Kind: craft.OptSACK, Blocks: []craft.SACKBlock{{Left: l, Right: l.Add(p.delta())}}})
			}
			if o&32 != 0 {
				seg.SrcPort++ // a stray segment for another connection
			}
			c.Input(&seg, now)
			what = "input " + segString(&seg)
		case 6:
			n := int(p.next()) * 100
			c.Write(payload[:n], now)
			what = fmt.Sprintf("write %d", n)
		case 7:
			c.Read(readBuf[:int(p.next())*16], now)
			what = "read"
		case 8:
			d := time.Duration(p.next()) * time.Duration(p.next()) * time.Millisecond
			now = now.Add(d)
			c.Tick(now)
			what = "tick +" + d.String()
		case 9:
			if dl, ok := c.NextDeadline(); ok {
				if dl.After(now) {
					now = dl
				}
				c.Tick(now)
			}
			what = "tick to deadline"
		case 10:
			c.Close(now)
			what = "close"
		case 11:
			if p.next() == 0 {
				c.Abort(now)
				what = "abort"
			} else {
				c.Connect(now)
				c.Listen()
				what = "reopen attempt"
			}
		}
		out = c.AppendOutput(out[:0])
		k.check(out, what)
		for _, e := range c.Events() {
			if e.Kind == StateChange {
				visited[e.To] = true
			}
		}
	}
	return visited
}

func checkVisited(t *testing.T, all [TimeWait + 1]bool) {
	t.Helper()
	for s, ok := range all {
		if !ok {
			t.Errorf("no program reached %v: the generator needs work", State(s))
		}
	}
}

// TestPropertyRandomInputs runs many seeded random programs.
func TestPropertyRandomInputs(t *testing.T) {
	const iters = 3000
	rng := rand.New(rand.NewPCG(42, 4242))
	prog := make([]byte, 4000)
	var all [TimeWait + 1]bool
	for i := 0; i < iters; i++ {
		n := 50 + rng.IntN(len(prog)-50)
		for j := range prog[:n] {
			prog[j] = byte(rng.Uint32())
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("iteration %d: panic %v\nprogram %x", i, r, prog[:n])
				}
			}()
			for s, ok := range runProgram(t, prog[:n]) {
				all[s] = all[s] || ok
			}
		}()
	}
	checkVisited(t, all)
}

// TestPropertyHandshakeThenRandom starts each program from an established
// connection with a well-formed handshake, so the random part spends its
// time in the data states.
func TestPropertyHandshakeThenRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 77))
	var all [TimeWait + 1]bool
	established := 0
	const iters = 2000
	for i := 0; i < iters; i++ {
		n := 100 + rng.IntN(3000)
		prog := make([]byte, n)
		for j := range prog {
			prog[j] = byte(rng.Uint32())
		}
		// setup: active open with all options; then a SYN-ACK at exactly
		// the right numbers (op 0, flags SYN|ACK, seq random, ack = sndMax).
		prog[0] &^= 64
		copy(prog[3:], []byte{0, 6, 3, 0x12, 0x34, 0x56, 0x78, 0, 0, 0xff, 0xff, 0, 0x0f, 0x05, 0xb4, 7})
		v := runProgram(t, prog)
		if v[Established] {
			established++
		}
		for s, ok := range v {
			all[s] = all[s] || ok
		}
	}
	// The prefix is a valid SYN-ACK, so (nearly) every program must get
	// there; only a random SYN option set may spoil it... never all.
	if established < iters*9/10 {
		t.Fatalf("only %d of %d programs reached ESTABLISHED", established, iters)
	}
	for _, s := range []State{Closed, Established, FinWait1, FinWait2, CloseWait, Closing, LastAck, TimeWait} {
		if !all[s] {
			t.Errorf("no program reached %v", s)
		}
	}
}

// FuzzConnInput: no program may panic or break an invariant.
func FuzzConnInput(f *testing.F) {
	f.Add([]byte{0x00})
	f.Add([]byte{0x03, 0x10, 0x20, 0, 6, 3, 0x12, 0x34, 0x56, 0x78, 0, 0, 0xff, 0xff, 0, 0x0f, 0x05, 0xb4, 7, 6, 50, 8, 200, 1, 9})
	f.Fuzz(func(t *testing.T, prog []byte) {
		runProgram(t, prog)
	})
}
