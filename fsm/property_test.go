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
func (p *program) delta() uint32 {
	v := p.next()
	switch {
	case v < 200:
		return uint32(int32(int8(v)))
	case v < 240:
		return uint32(int32(int16(p.u16())))
	default:
		return uint32(p.u16())<<16 | uint32(p.u16())
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
	// Sequence variables are ordered: SND.UNA =< SND.NXT =< SND.MAX.
	if c.sndNxt.LessThan(c.sndUna) || c.sndMax.LessThan(c.sndNxt) {
		fail("SND.UNA %d SND.NXT %d SND.MAX %d out of order", c.sndUna, c.sndNxt, c.sndMax)
	}
	// Nothing beyond what was queued (plus the FIN and SYN).
	end := c.dataEnd()
	if c.finQueued {
		end = end.Add(1)
	}
	if c.sndMax.GreaterThan(end) {
		fail("SND.MAX %d beyond the queued data %d", c.sndMax, end)
	}
	// Bounded memory.
	if c.send.n > c.cfg.SendBufferSize || len(c.send.buf) > c.cfg.SendBufferSize {
		fail("send buffer %d/%d over its limit %d", c.send.n, len(c.send.buf), c.cfg.SendBufferSize)
	}
	if c.recv.n > c.cfg.RecvBufferSize || len(c.recv.buf) > c.recv.max || c.recv.max > c.cfg.RecvBufferSize {
		fail("receive buffer %d/%d over its limit", c.recv.n, len(c.recv.buf))
	}
	if len(c.ooo) > maxOOORanges {
		fail("%d out-of-order ranges", len(c.ooo))
	}
	for i, r := range c.ooo {
		if !r.start.LessThan(r.end) || !c.rcvNxt.LessThan(r.start) || r.end.GreaterThan(c.rcvAdv) {
			fail("out-of-order range %d [%d,%d) outside (RCV.NXT %d, edge %d]", i, r.start, r.end, c.rcvNxt, c.rcvAdv)
		}
		if i > 0 && !c.ooo[i-1].end.LessThan(r.start) {
			fail("out-of-order ranges overlap or touch: %v", c.ooo)
		}
		if int(c.rcvNxt.Size(r.end))+c.recv.n > c.recv.max {
			fail("out-of-order data beyond the receive ring")
		}
	}
	// The scoreboard covers [SND.UNA, SND.MAX) without gaps or overlaps
	// once data flows, and its totals match its segments.
	var sacked, lost, rtx uint32
	q := &c.txq
	for i := 0; i < q.len(); i++ {
		s := q.at(i)
		if !s.start.LessThan(s.end) {
			fail("scoreboard segment %d [%d,%d) empty", i, s.start, s.end)
		}
		if i == 0 && s.start != c.sndUna {
			fail("scoreboard starts at %d, SND.UNA %d", s.start, c.sndUna)
		}
		if i > 0 && q.at(i-1).end != s.start {
			fail("scoreboard gap or overlap at segment %d: %d then %d", i, q.at(i-1).end, s.start)
		}
		if i == q.len()-1 && s.end != c.sndMax {
			fail("scoreboard ends at %d, SND.MAX %d", s.end, c.sndMax)
		}
		if s.is(segSACKed) {
			sacked += s.size()
			if s.is(segLost) || s.is(segRtx) {
				fail("segment %d SACKed and lost", i)
			}
		}
		if s.is(segLost) {
			lost += s.size()
		}
		if s.is(segRtx) {
			rtx += s.size()
			if !s.is(segLost) {
				fail("segment %d has a retransmission in flight but is not lost", i)
			}
		}
	}
	if c.synAcked && c.sndUna != c.sndMax && q.len() == 0 {
		fail("%d bytes outstanding and nothing on the scoreboard", c.sndUna.Size(c.sndMax))
	}
	if sacked != c.sackedBytes || lost != c.lostBytes || rtx != c.rtxBytes {
		fail("scoreboard totals: SACKed %d/%d, lost %d/%d, retransmitted %d/%d", c.sackedBytes, sacked, c.lostBytes, lost, c.rtxBytes, rtx)
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
		if s.Flags&craft.FlagSYN == 0 && c.synAcked {
			n := uint32(len(s.Payload))
			if s.Flags&craft.FlagFIN != 0 {
				n++
			}
			if n > 0 {
				edge := c.sndUna.Add(c.sndWnd)
				if s.Seq.Add(n).GreaterThan(edge) {
					fail("segment seq %d len %d beyond SND.UNA %d + SND.WND %d", s.Seq, n, c.sndUna, c.sndWnd)
				}
				if len(s.Payload) > c.sndMSS {
					fail("segment of %d bytes above the send MSS %d", len(s.Payload), c.sndMSS)
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
			r := s.Ack.Add(uint32(s.Window) << c.rcvShift)
			if k.rightOK && r.Add(uint32(1)<<c.rcvShift).LessThanEq(k.right) {
				fail("advertised right edge moved back from %d to %d, a full unit of 2^%d or more", k.right, r, c.rcvShift)
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
				seg.Seq = c.rcvNxt.Add(p.delta())
			case 2:
				seg.Seq = c.irs.Add(p.delta())
			default:
				seg.Seq = craft.Seq(uint32(p.u16())<<16 | uint32(p.u16()))
			}
			switch p.next() % 5 {
			case 0, 1:
				seg.Ack = c.sndMax.Add(p.delta())
			case 2:
				seg.Ack = c.sndUna.Add(p.delta())
			case 3:
				seg.Ack = c.iss.Add(p.delta())
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
				peerTS += p.delta()
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
				l := c.sndUna.Add(p.delta())
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
