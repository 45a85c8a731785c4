package replay

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/probe"
)

// Config says how to write a script.
type Config struct {
	// Side is the end whose role the kernel under test plays.
	Side flow.Side
	// Source names the capture in the script's comments (a file name).
	Source string
}

// Script is a generated script and what went into it.
type Script struct {
	// Text is the script, in packetdrill's language.
	Text []byte
	// Inbound and Outbound count the packet lines ("<" and ">"), Syscalls
	// the system call lines.
	Inbound, Outbound, Syscalls int
	// Left lists the capture's packet numbers of the other end's segments
	// the script leaves out because the kernel's end never received them.
	Left []int
}

// Errors of Script for connections that cannot be replayed.
var (
	ErrNoHandshake = errors.New("the capture does not show the connection's handshake (both SYNs); a replay starts from the SYN")
	ErrIPv6        = errors.New("an IPv6 connection: decode --pkt writes scripts for IPv4 connections only (probe itself runs IPv6 scripts with --ip_version=ipv6)")
)

// Script writes the packetdrill script that replays connection c (one of
// r.Conns()) with the kernel under test in cfg.Side's role.
func (r *Reader) Script(c *flow.Conn, cfg Config) (*Script, error) {
	x := r.extra[c]
	if x == nil || len(x.opts) != len(c.Segments) {
		return nil, errors.New("replay: the connection was not read by this Reader")
	}
	if x.ipv6 {
		return nil, ErrIPv6
	}
	if _, ok := c.ISN(flow.Client); !ok || c.Partial {
		return nil, ErrNoHandshake
	}
	if _, ok := c.ISN(flow.Server); !ok && !onlyResets(c, flow.Server) {
		return nil, ErrNoHandshake
	}
	if cfg.Side != flow.Client && cfg.Side != flow.Server {
		return nil, fmt.Errorf("replay: side %d is neither client nor server", cfg.Side)
	}
	g := &gen{a: analyse(c, x, cfg.Side), cfg: cfg, s: &Script{}}
	for i := range c.Segments {
		if err := g.check(i); err != nil {
			return nil, err
		}
	}
	g.write()
	return g.s, nil
}

// onlyResets reports whether side sent nothing but RSTs (a server that
// refused the connection): its ISN is then not needed.
func onlyResets(c *flow.Conn, side flow.Side) bool {
	for i := range c.Segments {
		if s := &c.Segments[i]; s.From == side && !s.Flags.Has(craft.FlagRST) {
			return false
		}
	}
	return true
}

// gen writes one script.
type gen struct {
	a   *analysis
	cfg Config
	s   *Script

	body    bytes.Buffer
	started bool
	prev    time.Time // capture time of the previous event

	fd        int  // the connection's descriptor in the script
	open      bool // the application holds fd (accepted or connected, not closed)
	accepted  bool
	reading   bool // the application may still read (not closed, not shut down for reading)
	eof       bool // it has read the end of the stream
	rcvNxt    int64
	readUpTo  int64 // the stream offset the application has read up to
	lastWnd   int64 // the window the kernel last advertised, in bytes
	ooo       []flow.Range
	finOff    int64 // the other end's FIN, or -1
	connected bool  // a kernel client's connect() has completed
}

// check refuses a segment a script cannot write: one whose relative
// sequence numbers wrap (it lies before its sender's ISN: start:end must
// not decrease), or with options the replay does not write.
func (g *gen) check(i int) error {
	s := g.a.seg(i)
	isn, _ := g.a.c.ISN(s.From)
	if rel := uint32(s.Seq - isn); uint64(rel)+uint64(s.Len) > math.MaxUint32 {
		return fmt.Errorf("packet #%d: its data lies before its sender's initial sequence number, which a script cannot write", s.N)
	}
	for _, o := range g.a.x.opts[i] {
		switch o.Kind {
		case craft.OptEOL, craft.OptNOP, craft.OptMSS, craft.OptWindowScale, craft.OptSACKPermitted, craft.OptSACK, craft.OptTimestamps:
			if o.Data != nil {
				return fmt.Errorf("packet #%d: a malformed %s option, which a script cannot write", g.a.seg(i).N, o.Kind)
			}
		default:
			return fmt.Errorf("packet #%d: TCP option %s, which the replay does not write (only mss, wscale, sackOK, sack, TS, nop, eol)", g.a.seg(i).N, o.Kind)
		}
	}
	return nil
}

// secs renders a duration in seconds, to the microsecond, without
// trailing zeros ("0", "0.000412", "1.2").
func secs(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Round(time.Microsecond).Microseconds())/1e6, 'f', -1, 64)
}

// event writes one script line happening at capture time at.
func (g *gen) event(at time.Time, text, comment string) {
	t := "0"
	if g.started {
		t = "+" + secs(max(at.Sub(g.prev), 0))
	}
	g.started, g.prev = true, at
	line := fmt.Sprintf("%-10s %s", t, text)
	if comment != "" {
		line += "  // " + comment
	}
	g.body.WriteString(line + "\n")
}

// syscall writes a system call line.
func (g *gen) syscall(at time.Time, text, comment string) {
	g.s.Syscalls++
	g.event(at, text, comment)
}

// note writes a comment line.
func (g *gen) note(format string, args ...any) {
	g.body.WriteString("// " + fmt.Sprintf(format, args...) + "\n")
}

// packet turns segment i into a script packet: sequence numbers relative to
// each end's ISN, written as 0 (packetdrill's SYNs are absolute, so an ISN
// of 0 makes both readings agree); SACK blocks relative to the ISN of the
// end whose data they name; the kernel's window checked only on its SYN
// (later ones follow its memory accounting, which a replay does not
// reproduce byte for byte).
func (g *gen) packet(i int) *probe.Packet {
	s := g.a.seg(i)
	c := g.a.c
	from, to := s.From, s.From.Other()
	isnFrom, _ := c.ISN(from)
	isnTo, _ := c.ISN(to)
	p := &probe.Packet{Dir: probe.Inbound, Flags: s.Flags, Seq: uint32(s.Seq - isnFrom), Len: s.Len,
		Window: int32(s.Window), Urgent: g.a.x.urgent[i]}
	if from == g.a.k {
		p.Dir = probe.Outbound
		if !s.Flags.Has(craft.FlagSYN) {
			p.Window = -1
		}
	}
	if s.Flags.Has(craft.FlagACK) {
		p.Ack = uint32(s.Ack - isnTo)
	}
	if !s.Flags.Has(craft.FlagURG) {
		p.Urgent = 0
	}
	p.Options = make([]craft.Option, len(g.a.x.opts[i]))
	for j, o := range g.a.x.opts[i] {
		o = o.Clone()
		for b := range o.Blocks {
			o.Blocks[b].Left -= isnTo
			o.Blocks[b].Right -= isnTo
		}
		p.Options[j] = o
	}
	return p
}

// write writes the whole script.
func (g *gen) write() {
	a := g.a
	c := a.c
	g.finOff = -1
	g.rcvNxt, g.readUpTo = 1, 1
	var head bytes.Buffer
	g.header(&head)

	// The kernel server's listener, or the kernel client's connect().
	first := c.Segments[0].Time
	g.fd = 3
	if a.k == flow.Server {
		if a.listens() {
			g.syscall(first, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", "")
			g.syscall(first, "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0", "")
			if a.nodelay {
				g.syscall(first, "setsockopt(3, SOL_TCP, TCP_NODELAY, [1], 4) = 0", "small segments went out back to back: no Nagle")
			}
			g.syscall(first, "bind(3, ..., ...) = 0", "")
			g.syscall(first, "listen(3, 1) = 0", "")
		} else {
			g.note("The server answered the SYN with RST: nothing listened; the script opens no socket either.")
		}
		g.fd = 4
	} else {
		g.syscall(first, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", "")
		if a.nodelay {
			g.syscall(first, "setsockopt(3, SOL_TCP, TCP_NODELAY, [1], 4) = 0", "small segments went out back to back: no Nagle")
		}
		g.syscall(first, "fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0", "non-blocking for the connect: the handshake runs on the script's clock")
		g.syscall(first, "connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)", "")
		g.open, g.reading = true, true
	}

	for k := 0; k < len(a.order); {
		i := a.order[k]
		if !a.fromKernel(i) {
			last := g.groupOther(k)
			g.otherSegments(a.order[k : last+1])
			k = last + 1
			continue
		}
		last := g.group(k)
		g.kernelSegments(a.order[k : last+1])
		k = last + 1
	}

	out := head.Bytes()
	out = append(out, g.body.Bytes()...)
	g.s.Text = out
}

// listens reports whether a kernel server had a listener: it answered a
// SYN with SYN-ACK rather than RST.
func (a *analysis) listens() bool {
	for i := range a.c.Segments {
		s := a.seg(i)
		if s.From == a.k && s.Flags.Has(craft.FlagSYN) {
			return true
		}
	}
	return false
}

// mergeGap bounds how far apart the pieces of one expected line may have
// been captured.
const mergeGap = 2 * time.Millisecond

// maxLineLen is the longest payload a packet line may name (the
// language's start:end(len) is 16 bits).
const maxLineLen = 65535

// group returns the position in a.order of the last of the kernel's
// segments from position k on that go into one expected line: new data
// sent back to back, contiguous, with the same acknowledgment and nothing
// of the other end's in between. The runner gathers live segments into
// one expectation by byte range, so a kernel that cuts the same data into
// other pieces (segmentation offload and pacing decide that at run time)
// still matches; PSH and FIN are checked on the last piece.
func (g *gen) group(k int) int {
	a := g.a
	first := a.seg(a.order[k])
	last := k
	for last+1 < len(a.order) && a.fromKernel(a.order[last+1]) {
		j := a.order[last]
		p, q := a.seg(j), a.seg(a.order[last+1])
		if p.Len == 0 || q.Len == 0 || p.Retransmit || q.Retransmit || p.Ack != q.Ack ||
			p.SeqOff+int64(p.Len) != q.SeqOff || q.Time.Sub(first.Time) > mergeGap ||
			q.SeqOff+int64(q.Len)-first.SeqOff > maxLineLen ||
			p.Flags&^craft.FlagPSH != q.Flags&^(craft.FlagPSH|craft.FlagFIN) ||
			p.Flags.Has(craft.FlagSYN) || p.Flags.Has(craft.FlagURG) || a.lingerAt == a.order[last+1] ||
			!sameOptionKinds(a.x.opts[j], a.x.opts[a.order[last+1]]) {
			break
		}
		last++
	}
	return last
}

func sameOptionKinds(a, b []craft.Option) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Kind != b[i].Kind || len(a[i].Blocks) != len(b[i].Blocks) {
			return false
		}
	}
	return true
}

// kernelSegments writes what the application did before the kernel's
// segments idx (indexes into the connection's segments), then one
// expected line for them.
func (g *gen) kernelSegments(idx []int) {
	a := g.a
	i, j := idx[0], idx[len(idx)-1]
	first := a.seg(i)
	// What the kernel acknowledges with a window that did not shrink, its
	// application had read: Linux's window shrinks as unread data fills
	// the receive buffer and grows back as it is read (tcp_select_window).
	// Before writing or closing, an application reads what it was sent
	// (a server reads the request before it answers).
	if first.Flags.Has(craft.FlagACK) && !first.Flags.Has(craft.FlagRST) && !first.Flags.Has(craft.FlagSYN) {
		acts := false
		for _, k := range idx {
			acts = acts || a.writes[k] > 0 || a.closeAt == k || a.lingerAt == k
		}
		if int64(first.WindowBytes) >= g.lastWnd || acts {
			g.read(first.Time, first.AckOff)
		}
		g.lastWnd = int64(a.seg(j).WindowBytes)
	}
	for _, k := range idx {
		s := a.seg(k)
		if a.lingerAt == k && g.open {
			g.syscall(s.Time, fmt.Sprintf("setsockopt(%d, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0", g.fd),
				fmt.Sprintf("#%d is a RST nothing provoked: an abortive close", s.N))
			g.syscall(s.Time, fmt.Sprintf("close(%d) = 0", g.fd), "")
			g.open, g.reading = false, false
		}
		n := a.writes[k]
		if n > 0 && g.open {
			if a.closeAt == k && a.finWithData() {
				g.syscall(s.Time, fmt.Sprintf("setsockopt(%d, SOL_TCP, TCP_CORK, [1], 4) = 0", g.fd),
					"the FIN rode on this data: hold the last piece until the close, which the runner makes a little later")
			}
			g.syscall(s.Time, fmt.Sprintf("write(%d, ..., %d) = %d", g.fd, n, n), fmt.Sprintf("the data from #%d on", s.N))
		}
		if a.closeAt == k && g.open {
			if a.shutdown {
				g.syscall(s.Time, fmt.Sprintf("shutdown(%d, SHUT_WR) = 0", g.fd), "its FIN, and it went on receiving")
			} else {
				g.syscall(s.Time, fmt.Sprintf("close(%d) = 0", g.fd), "its FIN")
				g.open, g.reading = false, false
			}
		}
	}
	p := g.packet(i)
	last := a.seg(j)
	if j > i {
		p.Len = int(last.SeqOff + int64(last.Len) - first.SeqOff)
		p.Flags = first.Flags&^(craft.FlagPSH|craft.FlagFIN) | last.Flags&(craft.FlagPSH|craft.FlagFIN)
	}
	g.s.Outbound++
	g.event(first.Time, p.String(), g.kernelComment(i, j))

	// A kernel client's connect() completes with its ACK of the SYN-ACK.
	if a.k == flow.Client && !g.connected && g.open && last.Flags.Has(craft.FlagACK) && !last.Flags.Has(craft.FlagSYN) && !last.Flags.Has(craft.FlagRST) {
		g.completeConnect(last.Time)
	}
}

// finWithData reports whether the kernel's FIN rides on a segment with
// data.
func (a *analysis) finWithData() bool {
	for i := range a.c.Segments {
		if s := a.seg(i); s.From == a.k && s.Flags.Has(craft.FlagFIN) && !s.Flags.Has(craft.FlagRST) {
			return s.Len > 0
		}
	}
	return false
}

// completeConnect checks a kernel client's connect() and makes the socket
// blocking again, as an application that waited for it to be writable.
func (g *gen) completeConnect(at time.Time) {
	g.connected = true
	g.syscall(at, "getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0", "connected")
	g.syscall(at, "fcntl(3, F_SETFL, O_RDWR) = 0", "blocking again")
}

// kernelComment says where a kernel segment comes from, and why when it is
// a retransmission.
func (g *gen) kernelComment(i, j int) string {
	s := g.a.seg(i)
	text := fmt.Sprintf("#%d", s.N)
	if j > i {
		text = fmt.Sprintf("#%d-#%d", s.N, g.a.seg(j).N)
	}
	if !s.Retransmit {
		return text
	}
	lo, hi := seqRange(s)
	var firstAt time.Time
	for j := range i {
		o := g.a.seg(j)
		if olo, ohi := seqRange(o); o.From == s.From && olo < hi && ohi > lo {
			firstAt = o.Time
			break
		}
	}
	since := ""
	if !firstAt.IsZero() {
		since = fmt.Sprintf(", %ss after the first copy", secs(s.Time.Sub(firstAt)))
	}
	switch s.Kind {
	case flow.Fast:
		return text + ": a retransmission in loss recovery (after duplicate ACKs or SACK blocks)" + since
	default:
		return text + ": a retransmission on the kernel's own timer (RTO or tail loss probe)" + since
	}
}

// backlogGap bounds how far apart two segments of the other end may have
// been captured to be replayed as one (see groupOther).
const backlogGap = 500 * time.Microsecond

// groupOther returns the position in a.order of the last of the other
// end's segments from position k on that are replayed as one packet:
// data sent back to back, contiguous, within backlogGap, that the kernel
// acknowledged only together. Linux acknowledges at once a segment of more
// than one MSS; when it did not, the segments reached a socket its
// application held (they waited in the socket's backlog and were
// processed as one). A replay cannot hold the socket at that moment, but
// one packet with their data makes the kernel answer the same.
func (g *gen) groupOther(k int) int {
	a := g.a
	first := a.seg(a.order[k])
	last := k
	for last+1 < len(a.order) && !a.fromKernel(a.order[last+1]) {
		j, n := a.order[last], a.order[last+1]
		p, q := a.seg(j), a.seg(n)
		if a.lost[j] != "" || a.lost[n] != "" || p.Len == 0 || q.Len == 0 || p.Ack != q.Ack ||
			p.SeqOff+int64(p.Len) != q.SeqOff || q.Time.Sub(p.Time) > backlogGap ||
			q.SeqOff+int64(q.Len)-first.SeqOff > maxLineLen ||
			p.Flags&^craft.FlagPSH != q.Flags&^(craft.FlagPSH|craft.FlagFIN) ||
			p.Flags.Has(craft.FlagSYN) || p.Flags.Has(craft.FlagURG) || p.Flags.Has(craft.FlagRST) ||
			!sameOptionKinds(a.x.opts[j], a.x.opts[n]) || a.beyondWindow(j) || a.beyondWindow(n) {
			break
		}
		last++
	}
	if last == k {
		return k
	}
	// Only when the kernel's next segment acknowledges them all.
	end := a.seg(a.order[last])
	if last+1 >= len(a.order) {
		return k
	}
	if ack := a.seg(a.order[last+1]); !ack.Flags.Has(craft.FlagACK) || ack.AckOff < end.SeqOff+int64(end.Len) {
		return k
	}
	return last
}

// otherSegments writes the other end's segments idx (one, or several
// replayed as one packet) — as a packet tcpcraft sends, or as a comment
// when the kernel's end never received it — and what the kernel's
// application did about it: accept, and note what it can read.
func (g *gen) otherSegments(idx []int) {
	a := g.a
	i := idx[0]
	s := a.seg(i)
	if why := a.lost[i]; why != "" {
		g.s.Left = append(g.s.Left, s.N)
		g.note("#%d not replayed: %s  [%s]", s.N, why, g.packet(i).String())
		return
	}
	last := a.seg(idx[len(idx)-1])
	p := g.packet(idx[len(idx)-1])
	comment := fmt.Sprintf("#%d", s.N)
	if len(idx) > 1 {
		// The last piece's header and options, the data of all.
		p.Seq = g.packet(i).Seq
		p.Len = int(last.SeqOff + int64(last.Len) - s.SeqOff)
		comment = fmt.Sprintf("#%d-#%d, acknowledged together: as one", s.N, last.N)
	}
	g.s.Inbound++
	if s.Retransmit {
		comment += ": sent again by the capture's " + s.From.String()
	}
	g.event(last.Time, p.String(), comment)
	for _, i := range idx {
		g.received(i)
	}
}

// received updates what the kernel's end has after the other end's
// segment i arrived: a connection to accept, a connect() completed or
// refused, data and the FIN to read.
func (g *gen) received(i int) {
	a := g.a
	s := a.seg(i)
	if s.Flags.Has(craft.FlagRST) {
		if a.k == flow.Client && !g.connected && g.open {
			g.connected = true
			g.syscall(s.Time, "getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0", "refused")
		}
		g.reading = false
		return
	}

	// A kernel server's connection is accepted once its SYN-ACK is
	// acknowledged.
	if a.k == flow.Server && !g.accepted && s.Flags.Has(craft.FlagACK) && s.AckOff >= 1 && !s.Flags.Has(craft.FlagSYN) && a.listens() {
		g.accepted, g.open, g.reading = true, true, true
		g.syscall(s.Time, "accept(3, ..., ...) = 4", "")
	}
	// A kernel client whose ACK of the SYN-ACK is not in the capture.
	if a.k == flow.Client && s.Flags.Has(craft.FlagSYN) && s.Flags.Has(craft.FlagACK) && !g.connected && !g.kernelACKFollows(i) {
		g.completeConnect(s.Time)
	}

	// Data and FIN received in order become readable; they are read just
	// before the kernel acknowledges them.
	if !a.beyondWindow(i) {
		lo := s.SeqOff
		if s.Flags.Has(craft.FlagSYN) {
			lo++
		}
		hi := lo + int64(s.Len)
		if s.Len > 0 {
			g.addReceived(lo, hi)
		}
		if s.Flags.Has(craft.FlagFIN) {
			g.finOff = hi
		}
	}
}

// kernelACKFollows reports whether the kernel's next segment after the
// SYN-ACK i is its ACK of it.
func (g *gen) kernelACKFollows(i int) bool {
	for j := i + 1; j < len(g.a.c.Segments); j++ {
		if s := g.a.seg(j); s.From == g.a.k {
			return s.Flags.Has(craft.FlagACK) && !s.Flags.Has(craft.FlagSYN) && !s.Flags.Has(craft.FlagRST)
		}
	}
	return false
}

// addReceived records data [lo, hi) of the other end at the kernel.
func (g *gen) addReceived(lo, hi int64) {
	g.ooo = append(g.ooo, flow.Range{Start: lo, End: hi})
	for moved := true; moved; {
		moved = false
		rest := g.ooo[:0]
		for _, r := range g.ooo {
			switch {
			case r.End <= g.rcvNxt:
			case r.Start <= g.rcvNxt:
				g.rcvNxt, moved = r.End, true
			default:
				rest = append(rest, r)
			}
		}
		g.ooo = rest
	}
}

// read writes the reads of what the kernel's acknowledgment ack (an
// offset in the other end's sequence space) covers: the data received in
// order below it, and the end of the stream when it covers the FIN.
func (g *gen) read(at time.Time, ack int64) {
	if !g.open || !g.reading || g.eof {
		return
	}
	if g.a.k == flow.Client && !g.connected {
		return
	}
	if n := min(g.rcvNxt, ack) - g.readUpTo; n > 0 {
		g.syscall(at, fmt.Sprintf("read(%d, ..., %d) = %d", g.fd, n, n), "")
		g.readUpTo += n
	}
	if g.finOff >= 0 && g.rcvNxt >= g.finOff && ack > g.finOff && g.readUpTo == g.finOff {
		g.syscall(at, fmt.Sprintf("read(%d, ..., 1000) = 0", g.fd), "the end of the stream")
		g.eof = true
	}
}

// header writes the comment at the top of the script.
func (g *gen) header(b *bytes.Buffer) {
	a := g.a
	c := a.c
	src := g.cfg.Source
	if src == "" {
		src = "the capture"
	}
	role := "server"
	if a.k == flow.Client {
		role = "client"
	}
	fmt.Fprintf(b, "// Connection %d of %s (%s > %s, %d packets, %ss) replayed with the\n", c.Index, src, c.Client(), c.Server(), len(c.Segments), secs(c.Duration()))
	fmt.Fprintf(b, "// kernel under test as the %s. Made by tcpcraft decode --pkt --side %s.\n", role, role)
	b.WriteString(`//
// "<" lines are the ` + a.o.String() + `'s segments, which tcpcraft sends; ">" lines the
// ` + role + `'s, which the kernel must send back, each with the capture's packet
// number (#N). System calls are inferred: a write per burst of data the
// ` + role + ` sent (a burst ends with PSH), a read per piece of data it received
// in order, close or shutdown where it sent its FIN.
// Sequence numbers are relative to each side's ISN (written as 0); times
// are relative to the previous line, as captured; payloads are zeros. The
// kernel's address and port are the runner's, not the capture's.
// Checked as captured: flags, sequence and acknowledgment numbers, lengths,
// the kernel's options and its SYN's window. Not checked: its later
// windows, which follow its memory accounting, and its timestamp values,
// which the runner maps to live ones (a replay on a busy machine drifts by
// milliseconds; add --tcp_ts_tick_usecs=1000 to check them on a quiet one).
`)
	if mss := g.kernelMSS(); mss > 0 && mss != 1460 {
		fmt.Fprintf(b, "// The %s advertised MSS %d; the runner's path has an MTU of 1500 (MSS\n// 1460), so expect that line to fail unless the path is the same.\n", role, mss)
	}
	if a.nodelay {
		b.WriteString("// The " + role + " sent small segments back to back: its application had\n// set TCP_NODELAY, and so does the script.\n")
	}
	b.WriteString("\n")
}

// kernelMSS is the MSS option of the kernel's SYN, or -1.
func (g *gen) kernelMSS() int {
	for i := range g.a.c.Segments {
		if s := g.a.seg(i); s.From == g.a.k && s.Flags.Has(craft.FlagSYN) {
			return s.MSS
		}
	}
	return -1
}
