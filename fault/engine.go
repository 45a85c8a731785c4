package fault

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// reorderWait is how long reorder holds a segment for the next one to
// overtake it; when none comes (the sender had nothing more), the held
// one goes alone.
const reorderWait = 200 * time.Millisecond

// Note is one thing a fault did, for the trace.
type Note struct {
	// Tuple is the connection, our end as Src.
	Tuple craft.FourTuple
	// Fault is the fault as written (Spec.String).
	Fault string
	What  string
}

// Trigger asks the connection's owner to act on the connection: abort it
// (rst) or close our sending side (fin).
type Trigger struct {
	Tuple craft.FourTuple
	Abort bool // else CloseWrite
	Fault string
}

// Output is what the engine wants done: packets to put on the wire now,
// in order, notes for the trace, and triggers for the connection's owner.
type Output struct {
	Send     [][]byte
	Notes    []Note
	Triggers []Trigger
}

func (o *Output) reset() {
	o.Send, o.Notes, o.Triggers = o.Send[:0], o.Notes[:0], o.Triggers[:0]
}

// Engine applies faults to the packets of many connections. It is
// sans-I/O: packets and the time come in as arguments, packets to send
// come out; it never sleeps, and Tick at NextDeadline releases what it
// holds. Not safe for concurrent use.
type Engine struct {
	specs []Spec
	names []string
	rngs  []*rand.Rand // per spec; set for drop:p
	conns map[craft.FourTuple]*conn
	pkt   craft.Packet
	out   Output
	off   bool
}

// timed is a packet the engine holds until at.
type timed struct {
	at  time.Time
	pkt []byte
	// note, if any, is reported when it goes.
	note string
	spec int
}

// conn is what the engine knows of one connection.
type conn struct {
	tuple            craft.FourTuple // our end as Src
	ourISN, peerISN  craft.Seq
	haveOur, haveISN bool
	sndHigh, rcvHigh craft.Seq // the end of the sequence space seen each way
	sent, received   int64     // data bytes, each counted once
	segs             int       // our data segments so far (first sendings)
	finOut, finIn    bool
	// wireHigh is the end of our data that went on the wire; resetting
	// is set once rst fired: no more of our data goes, and our RST
	// names wireHigh, the sequence number the peer expects (RFC 9293
	// §3.10.7.3, RFC 5961 §3.2).
	wireHigh  craft.Seq
	haveWire  bool
	resetting bool
	// last is a copy of our last packet with an ACK (for a window
	// update), realWin its true window.
	last    []byte
	realWin uint16
	// Per spec: when it started acting (zero: not yet), and whether it is
	// over.
	started []time.Time
	over    []bool
	// Held packets: delayed ACKs and a reordered segment, in time order.
	held     []timed
	reorder  int // index in held of the segment reorder holds, or -1
	reopenAt []time.Time
}

// NewEngine returns an engine for specs (none: every packet passes).
func NewEngine(specs []Spec) *Engine {
	e := &Engine{specs: slices.Clone(specs), conns: map[craft.FourTuple]*conn{}}
	for _, s := range specs {
		e.names = append(e.names, s.String())
		var r *rand.Rand
		if s.Kind == Drop && s.P > 0 {
			r = rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15))
		}
		e.rngs = append(e.rngs, r)
	}
	return e
}

// Release stops every fault: from now on packets pass untouched and held
// ones are due at once (tcpcraft's exit, which resets its connections so
// that no peer is left half-open, goes through).
func (e *Engine) Release(now time.Time) {
	e.off = true
	for _, c := range e.conns {
		for i := range c.held {
			c.held[i].at = now
		}
		c.reorder = -1
	}
}

// conn returns what the engine knows of connection t. A connection is
// created by its SYN; for any other packet of a connection it does not
// know (forgotten once both FINs are done and no fault waits, see release)
// it returns nil and the packet passes untouched: a late retransmitted FIN
// must not start a connection's faults again from the beginning.
func (e *Engine) conn(t craft.FourTuple, syn bool) *conn {
	c := e.conns[t]
	if c == nil && !syn {
		return nil
	}
	if c == nil {
		c = &conn{tuple: t, reorder: -1, started: make([]time.Time, len(e.specs)), over: make([]bool, len(e.specs)),
			reopenAt: make([]time.Time, len(e.specs))}
		e.conns[t] = c
	}
	return c
}

func (e *Engine) note(c *conn, i int, format string, args ...any) {
	e.out.Notes = append(e.out.Notes, Note{Tuple: c.tuple, Fault: e.names[i], What: fmt.Sprintf(format, args...)})
}

func (c *conn) crossed() int64 { return c.sent + c.received }

// rel writes a sequence range relative to our ISN, as the trace does.
func (c *conn) rel(seq craft.Seq, n int) string {
	s := uint32(seq - c.ourISN)
	return fmt.Sprintf("%d:%d", s, s+uint32(n))
}

// active reports whether spec i acts now on c: its after= has been
// crossed and its for= has not run out. It notes when it starts and ends.
func (e *Engine) active(c *conn, i int, now time.Time) bool {
	s := &e.specs[i]
	if c.over[i] || c.crossed() < s.After || (s.AfterFIN && !c.finIn) {
		return false
	}
	if c.started[i].IsZero() {
		c.started[i] = now
		switch s.Kind {
		case DelayACK, DropACK, Dead, ZeroWindow:
			what := map[Kind]string{DelayACK: "holding each of our ACKs for " + s.D.String(), DropACK: "withholding our ACKs",
				Dead: "playing dead: nothing goes out, nothing is heard", ZeroWindow: "advertising a zero window"}[s.Kind]
			if s.For > 0 {
				what += " for " + s.For.String()
			}
			switch {
			case s.AfterFIN:
				what += " (after the peer's FIN)"
			case s.After > 0:
				what += fmt.Sprintf(" (after %d bytes)", c.crossed())
			}
			e.note(c, i, "%s", what)
		}
		if s.Kind == ZeroWindow {
			c.reopenAt[i] = now.Add(s.For)
		}
	}
	if s.For > 0 && s.Kind != ZeroWindow && now.Sub(c.started[i]) >= s.For {
		c.over[i] = true
		e.note(c, i, "over after %s", s.For)
		return false
	}
	return true
}

// Out takes one packet we are about to send and returns what to put on
// the wire instead (or as well). The packet is only read; what Output
// holds is valid until the next call.
func (e *Engine) Out(now time.Time, pkt []byte) *Output {
	e.out.reset()
	if e.off || len(e.specs) == 0 || craft.ParsePacket(craft.LinkRaw, pkt, &e.pkt, craft.PacketOptions{}) != nil {
		e.out.Send = append(e.out.Send, pkt)
		return &e.out
	}
	p := &e.pkt
	t := &p.TCP
	c := e.conn(p.Tuple(), t.Flags.Has(craft.FlagSYN))
	if c == nil {
		e.out.Send = append(e.out.Send, pkt)
		return &e.out
	}
	// What the packet is, counted before the faults look at it: the
	// data segment's number, and the bytes crossed before it.
	syn, fin, rst := t.Flags.Has(craft.FlagSYN), t.Flags.Has(craft.FlagFIN), t.Flags.Has(craft.FlagRST)
	if syn && !c.haveOur {
		c.haveOur, c.ourISN, c.sndHigh = true, t.Seq, t.Seq.Add(1)
	}
	seg := 0
	if len(t.Payload) > 0 && c.haveOur {
		start := t.Seq
		if syn {
			start = start.Add(1)
		}
		end := start.Add(craft.Size(len(t.Payload)))
		if end.GreaterThan(c.sndHigh) {
			if start.GreaterThanEq(c.sndHigh) {
				c.segs++
				seg = c.segs
			}
			c.sent += int64(c.sndHigh.Size(end))
			c.sndHigh = end
		}
	}
	pureACK := t.Flags == craft.FlagACK && len(t.Payload) == 0
	data := len(t.Payload) > 0
	var drop, bad, dup, hold, zero bool
	var rstSeq craft.Seq
	rewriteSeq := false
	if c.resetting {
		switch {
		case data && (!c.haveWire || t.Seq.Add(craft.Size(len(t.Payload))).GreaterThan(c.wireHigh)):
			e.note(c, e.indexOf(Reset), "did not send our data (seq %s): the connection is being reset", c.rel(t.Seq, len(t.Payload)))
			e.release(c, now, false)
			return &e.out
		case rst && c.haveWire && t.Seq != c.wireHigh:
			rstSeq, rewriteSeq = c.wireHigh, true
			e.note(c, e.indexOf(Reset), "our RST names seq %d, the end of the data that went out", uint32(c.wireHigh-c.ourISN))
		}
	}
	var delay time.Duration
	mss := -1
	for i := range e.specs {
		s := &e.specs[i]
		switch s.Kind {
		case Drop:
			switch {
			case s.Seg > 0 && seg == s.Seg:
				drop = true
				e.note(c, i, "dropped our data segment %d (seq %s, %d bytes)", seg, c.rel(t.Seq, len(t.Payload)), len(t.Payload))
			case s.Every > 0 && seg > 0 && seg%s.Every == 0 && e.active(c, i, now):
				drop = true
				e.note(c, i, "dropped our data segment %d (seq %s, %d bytes)", seg, c.rel(t.Seq, len(t.Payload)), len(t.Payload))
			case s.P > 0 && data && e.active(c, i, now) && e.rngs[i].Float64() < s.P:
				drop = true
				e.note(c, i, "dropped our data segment (seq %s, %d bytes)", c.rel(t.Seq, len(t.Payload)), len(t.Payload))
			}
		case Corrupt:
			if seg == s.Seg {
				bad = true
				e.note(c, i, "sent our data segment %d (seq %s) with a wrong TCP checksum", seg, c.rel(t.Seq, len(t.Payload)))
			}
		case Dup:
			if seg == s.Seg {
				dup = true
				e.note(c, i, "sent our data segment %d (seq %s) twice", seg, c.rel(t.Seq, len(t.Payload)))
			}
		case Reorder:
			if seg == s.Seg {
				hold = true
				e.note(c, i, "holding our data segment %d (seq %s) until the next one has gone", seg, c.rel(t.Seq, len(t.Payload)))
			}
		case DelayACK:
			if pureACK && e.active(c, i, now) {
				delay = max(delay, s.D)
			}
		case DropACK:
			if pureACK && e.active(c, i, now) {
				drop = true
				e.note(c, i, "withheld our ACK (ack %d)", uint32(t.Ack-c.peerISN))
			}
		case ZeroWindow:
			if !syn && !rst && !c.over[i] && e.active(c, i, now) {
				zero = true
			}
		case MSS:
			if syn {
				mss = s.Value
				e.note(c, i, "advertised MSS %d", s.Value)
			}
		case Dead:
			if e.active(c, i, now) {
				drop = true
				e.note(c, i, "did not send %s", describe(t, c))
			}
		}
	}
	if t.Flags.Has(craft.FlagACK) && !rst {
		c.realWin = t.Window
		c.last = append(c.last[:0], pkt...)
	}
	if fin {
		c.finOut = true
	}
	e.triggers(c, now)
	if drop {
		e.release(c, now, false)
		return &e.out
	}
	out := pkt
	if zero || bad || mss >= 0 || rewriteSeq {
		if zero {
			t.Window = 0
		}
		if rewriteSeq {
			t.Seq = rstSeq
		}
		if mss >= 0 {
			setMSS(t, uint16(mss))
		}
		var err error
		if out, err = rebuild(p, bad); err != nil {
			out = pkt // cannot happen for a packet that parsed; send it as it was
		}
	}
	switch {
	case delay > 0:
		c.held = append(c.held, timed{at: now.Add(delay), pkt: slices.Clone(out), spec: e.indexOf(DelayACK)})
		e.note(c, e.indexOf(DelayACK), "holding our ACK (ack %d) for %s", uint32(t.Ack-c.peerISN), delay)
	case hold:
		c.reorder = len(c.held)
		c.held = append(c.held, timed{at: now.Add(reorderWait), pkt: slices.Clone(out), note: "sent the held segment alone: nothing came to overtake it", spec: e.indexOf(Reorder)})
	default:
		e.out.Send = append(e.out.Send, out)
		if end := t.Seq.Add(craft.Size(len(t.Payload))); data && (!c.haveWire || end.GreaterThan(c.wireHigh)) {
			c.haveWire, c.wireHigh = true, end
		}
		if dup {
			e.out.Send = append(e.out.Send, out)
		}
		if seg > 0 && c.reorder >= 0 {
			// The segment after the held one has gone: the held one
			// follows it.
			h := c.held[c.reorder]
			c.held = slices.Delete(c.held, c.reorder, c.reorder+1)
			c.reorder = -1
			e.out.Send = append(e.out.Send, h.pkt)
			e.note(c, h.spec, "sent the held segment after our data segment %d", seg)
		}
	}
	e.release(c, now, false)
	return &e.out
}

func (e *Engine) indexOf(k Kind) int {
	for i := range e.specs {
		if e.specs[i].Kind == k {
			return i
		}
	}
	return 0
}

// In takes one packet that arrived and reports whether the stack may see
// it (dead ignores it).
func (e *Engine) In(now time.Time, pkt []byte, partialChecksum bool) (bool, *Output) {
	e.out.reset()
	if e.off || len(e.specs) == 0 || craft.ParsePacket(craft.LinkRaw, pkt, &e.pkt, craft.PacketOptions{PartialChecksum: partialChecksum}) != nil {
		return true, &e.out
	}
	p := &e.pkt
	t := &p.TCP
	c := e.conn(p.Tuple().Reverse(), t.Flags.Has(craft.FlagSYN))
	if c == nil {
		return true, &e.out
	}
	for i := range e.specs {
		if e.specs[i].Kind == Dead && e.active(c, i, now) {
			e.note(c, i, "ignored %s", describe(t, c))
			return false, &e.out
		}
	}
	if t.Flags.Has(craft.FlagSYN) && !c.haveISN {
		c.haveISN, c.peerISN, c.rcvHigh = true, t.Seq, t.Seq.Add(1)
	}
	if len(t.Payload) > 0 && c.haveISN {
		start := t.Seq
		if t.Flags.Has(craft.FlagSYN) {
			start = start.Add(1)
		}
		end := start.Add(craft.Size(len(t.Payload)))
		if end.GreaterThan(c.rcvHigh) && start.LessThanEq(c.rcvHigh) {
			c.received += int64(c.rcvHigh.Size(end))
			c.rcvHigh = end
		}
	}
	if t.Flags.Has(craft.FlagFIN) {
		c.finIn = true
	}
	e.triggers(c, now)
	// Some faults start on what arrives (after= crossed by the peer's
	// data): let them note it now rather than at our next packet.
	for i := range e.specs {
		switch e.specs[i].Kind {
		case DelayACK, DropACK, Dead, ZeroWindow:
			e.active(c, i, now)
		}
	}
	return true, &e.out
}

// triggers fires rst and fin once their bytes have crossed.
func (e *Engine) triggers(c *conn, now time.Time) {
	for i := range e.specs {
		s := &e.specs[i]
		if (s.Kind != Reset && s.Kind != Fin) || c.over[i] || c.crossed() < s.After || (s.AfterFIN && !c.finIn) {
			continue
		}
		c.over[i] = true
		if s.Kind == Reset && s.AfterFIN {
			c.resetting = true
			e.note(c, i, "the peer's FIN has arrived: resetting the connection")
		} else if s.Kind == Reset {
			c.resetting = true
			e.note(c, i, "%d bytes have crossed: resetting the connection", c.crossed())
		} else {
			e.note(c, i, "%d bytes have crossed: closing our side (FIN)", c.crossed())
		}
		e.out.Triggers = append(e.out.Triggers, Trigger{Tuple: c.tuple, Abort: s.Kind == Reset, Fault: e.names[i]})
	}
}

// Tick releases what is due at now: held ACKs, a held segment whose wait
// ran out, the window update of a zero window that reopens.
func (e *Engine) Tick(now time.Time) *Output {
	e.out.reset()
	for _, c := range e.conns {
		e.release(c, now, true)
	}
	return &e.out
}

// release sends c's held packets that are due, and reopens its window when
// the time has come. tick is set when called by Tick (so it also
// forgets connections that are over).
func (e *Engine) release(c *conn, now time.Time, tick bool) {
	for len(c.held) > 0 && !c.held[0].at.After(now) {
		h := c.held[0]
		c.held = c.held[1:]
		if c.reorder == 0 {
			c.reorder = -1
		} else if c.reorder > 0 {
			c.reorder--
		}
		e.out.Send = append(e.out.Send, h.pkt)
		if h.note != "" {
			e.note(c, h.spec, "%s", h.note)
		}
	}
	for i := range e.specs {
		if e.specs[i].Kind != ZeroWindow || c.over[i] || c.reopenAt[i].IsZero() || c.reopenAt[i].After(now) {
			continue
		}
		c.over[i] = true
		if upd, ok := c.windowUpdate(); ok {
			e.out.Send = append(e.out.Send, upd)
			e.note(c, i, "reopened our window: sent a window update (win %d)", c.realWin)
		} else {
			e.note(c, i, "reopened our window")
		}
	}
	if tick && len(c.held) == 0 && c.finIn && c.finOut && !e.pending(c, now) {
		delete(e.conns, c.tuple)
	}
}

// pending reports whether a fault of c still waits for a time to come, or
// still acts: a window of delay-ack, drop-ack or dead that has started and
// not run out (forgetting c then would let the ACK of the peer's FIN, made
// right after the FIN, pass a window that the FIN itself opened).
func (e *Engine) pending(c *conn, now time.Time) bool {
	for i, s := range e.specs {
		switch s.Kind {
		case ZeroWindow:
			if !c.over[i] && !c.reopenAt[i].IsZero() {
				return true
			}
		case DelayACK, DropACK, Dead:
			if !c.over[i] && !c.started[i].IsZero() && (s.For == 0 || now.Sub(c.started[i]) < s.For) {
				return true
			}
		}
	}
	return false
}

// NextDeadline returns when Tick must next be called.
func (e *Engine) NextDeadline() (time.Time, bool) {
	var next time.Time
	for _, c := range e.conns {
		if len(c.held) > 0 && (next.IsZero() || c.held[0].at.Before(next)) {
			next = c.held[0].at
		}
		for i := range e.specs {
			if at := c.reopenAt[i]; e.specs[i].Kind == ZeroWindow && !c.over[i] && !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
	}
	return next, !next.IsZero()
}

// windowUpdate is our last ACK again, with no data and the true window
// (RFC 9293 §3.8.6.2.2: a window update is an ACK like any other).
func (c *conn) windowUpdate() ([]byte, bool) {
	var p craft.Packet
	if len(c.last) == 0 || craft.ParsePacket(craft.LinkRaw, c.last, &p, craft.PacketOptions{}) != nil {
		return nil, false
	}
	t := &p.TCP
	t.Seq = c.sndHigh
	if c.finOut {
		t.Seq = c.sndHigh.Add(1)
	}
	t.Flags, t.Payload, t.Window = craft.FlagACK, nil, c.realWin
	var opts []craft.Option
	for _, o := range t.Options {
		if o.Kind == craft.OptTimestamps {
			opts = append(opts, craft.NOPOption(), craft.NOPOption(), o)
		}
	}
	t.Options = opts
	b, err := rebuild(&p, false)
	return b, err == nil
}

// describe names a packet briefly for a note.
func describe(t *craft.TCP, c *conn) string {
	flags := string(craft.AppendFlags(nil, t.Flags))
	if len(t.Payload) > 0 {
		return fmt.Sprintf("[%s] with %d bytes", flags, len(t.Payload))
	}
	return "[" + flags + "]"
}

// setMSS sets the MSS option of a SYN, adding one first if it has none.
func setMSS(t *craft.TCP, v uint16) {
	for i := range t.Options {
		if t.Options[i].Kind == craft.OptMSS {
			opts := slices.Clone(t.Options)
			opts[i].MSS, opts[i].Data = v, nil
			t.Options = opts
			return
		}
	}
	t.Options = append([]craft.Option{craft.MSSOption(v)}, t.Options...)
}

// rebuild writes a parsed packet again, lengths and checksums computed
// (the TCP checksum made wrong on purpose when bad).
func rebuild(p *craft.Packet, bad bool) ([]byte, error) {
	tcp := p.TCP
	tcp.DataOffset, tcp.Checksum = 0, 0
	opts := craft.BuildOptions{BadTCPChecksum: bad}
	if p.IPVersion == 6 {
		ip := p.IPv6
		ip.PayloadLength = 0
		return craft.AppendIPv6TCP(nil, &ip, &tcp, opts)
	}
	ip := p.IPv4
	ip.IHL, ip.TotalLength, ip.Checksum = 0, 0, 0
	return craft.AppendIPv4TCP(nil, &ip, &tcp, opts)
}
