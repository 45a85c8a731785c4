package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Defaults of Config.
const (
	// DefaultTolerance is how far an event may be from its script time.
	// packetdrill's default is 4 ms on an idle machine with a tun device;
	// tcpcraft crosses a helper process and Go's scheduler as well,
	// so it allows 10 ms — still far below any TCP timer (the SYN-ACK
	// retransmission is at 1 s, the next one 2 s later).
	DefaultTolerance = 10 * time.Millisecond
	// DefaultTolerancePercent widens the tolerance for events far apart:
	// a percentage of the time since the previous event (packetdrill's
	// --tolerance_percent, same default).
	DefaultTolerancePercent = 12.5
	// nonBlockingLimit is how long a call the script expects not to block
	// may take before the run fails (instead of hanging).
	nonBlockingLimit = 5 * time.Second
	// idleWait is how long a new system call waits for a blocking one still
	// in progress (packetdrill's await_idle_thread: 1 s).
	idleWait = time.Second
	// lateArrival is how long after an outbound packet's latest time the
	// runner still waits for it, so a late packet is reported as late
	// rather than missing (packetdrill waits 2 s too).
	lateArrival = 2 * time.Second
	// ownStartLate is how late tcpcraft may start what it does itself
	// (see checkLate), and see a blocking call return: it measures the
	// machine (how soon a thread of ours runs on a busy CPU), not the
	// kernel. Whatever the kernel does differently because of it (a
	// timer that fires first) still shows in the packets it sends.
	ownStartLate = 500 * time.Millisecond
	// spinAhead is how long before an event's time waitUntil stops
	// sleeping and spins: a timer's overshoot (up to 1 ms) and a
	// thread's wake-up.
	spinAhead = 1500 * time.Microsecond
	// anyTimeLimit bounds the wait for a packet expected at time "*".
	anyTimeLimit = 30 * time.Second
)

// Config tunes a run.
type Config struct {
	// Tolerance is the timing tolerance; 0 means DefaultTolerance.
	Tolerance time.Duration
	// TolerancePercent: see DefaultTolerancePercent; negative means 0,
	// 0 means the default.
	TolerancePercent float64
	// Verbose, when not nil, receives one line per packet, system call and
	// command as it happens.
	Verbose io.Writer
	// Args are packetdrill options from the command line; they override
	// the script's own option lines (ApplyScript).
	Args []SettingArg
}

// Failure is a script that ran and did not do what it said: the line, the
// message in packetdrill's wording where it has one, and detail lines
// (the script's and the actual packet).
type Failure struct {
	Path    string
	Line    int
	Msg     string
	Details []string
	// OwnLate is the latest tcpcraft started any of its own events (a
	// packet it sent, a system call, a command) before the failure: the
	// machine's doing (a busy CPU), not the kernel's. The kernel's timers
	// run on meanwhile, so with tcpcraft that late a kernel may do what
	// the script did not foresee (a tail loss probe before an ACK that
	// came late) and still be right.
	OwnLate time.Duration
}

func (f *Failure) Error() string { return fmt.Sprintf("%s:%d: %s", f.Path, f.Line, f.Msg) }

// segment is a captured TCP segment from the kernel under test.
type segment struct {
	tcp craft.TCP // owns its memory (cloned)
	src netip.AddrPort
	dst uint16 // tcpcraft's port it was sent to
	tos uint8  // the IPv4 TOS byte or IPv6 traffic class
	ttl uint8  // TTL or hop limit
	at  time.Time
	// origin is set on what is left of a captured segment after the
	// runner split it to match a line: where the split was made.
	origin *splitOrigin
}

// splitOrigin is the line a captured segment was split for, and the
// whole segment as the kernel sent it.
type splitOrigin struct {
	ev   *Event
	t    time.Duration
	full segment
}

// blockingCall is a blocking system call the script has moved past.
type blockingCall struct {
	ev    *Event
	call  *Call
	req   Request
	post  func(Reply) string
	start time.Duration // script time the call started
	end   time.Duration // script time it should return
	slack time.Duration // how early it may return (runner.slack)
}

// runner plays one script.
type runner struct {
	s    *Script
	env  *Env
	cfg  Config
	dir  string
	ctx  context.Context
	verb io.Writer

	tolerance  time.Duration
	percent    float64
	tsTick     time.Duration
	localAlias map[netip.Addr]netip.Addr // script address → live address
	set        Settings                  // the script's options and the command line's
	bindPort   uint16

	start      time.Time     // live time of script time 0 (wall clock)
	lastT      time.Duration // script time of the previous event
	lastAnchor time.Duration // when the previous event actually happened
	lastEv     *Event
	// slack is how early the current event may be (see schedule):
	// chainSlack is how late tcpcraft's own events (packets it sent,
	// calls, commands) happened, added up since the kernel's last packet;
	// ownDrift is the same over the whole run (the kernel's TS val clock
	// runs on through it).
	slack      time.Duration
	chainSlack time.Duration
	ownDrift   time.Duration
	// ownLate is how late tcpcraft started its latest own event (a
	// packet it sent, a call, a command): the kernel's answers may be as
	// late (see checkLate).
	ownLate time.Duration
	// ownLateMax is the most ownLate has been (Failure.OwnLate).
	ownLateMax time.Duration
	cur        *Event        // the event being played
	curT       time.Duration // and its script time

	segs    chan segment
	pending []segment // split leftovers, consumed before segs
	readErr chan error

	// Connection state, as packetdrill keeps it per socket.
	kernelPort     uint16
	remoteISN      uint32 // tcpcraft's ISN: script and live are the same
	scriptLocalISN uint32 // the kernel's ISN as the script wrote it
	liveLocalISN   uint32 // and as the kernel chose it
	tsMap          map[uint32]uint32
	haveFirstTS    bool
	firstScriptTS  uint32
	firstActualTS  uint32
	haveKernelTS   bool
	lastKernelTS   uint32
	ipID           uint16
	format         craft.Formatter

	fds      map[int64]int // script fd → live fd
	blocking *blockingCall

	// The socket under test (packetdrill's socket_under_test), whose
	// TCP_INFO code blocks read: the last socket created or accepted,
	// or -1 for a connection a SYN opened on a listener before accept.
	sut       int64
	haveSUT   bool
	listeners map[int64]bool // script fds that listen
	// awaitingSYN: a new socket became the socket under test and has
	// sent nothing yet; until its SYN, the kernel's segments belong to
	// other connections (see otherConnection).
	awaitingSYN bool
	// timeline pairs each event's time as written with when it happened,
	// to place script times the kernel reports (SCM_TIMESTAMPING).
	timeline []timePoint
	written  time.Duration
	codes    codeState

	// tcpcraft's port now (a fresh one per incoming connection when the
	// Env allows, as packetdrill's next_ephemeral_port), the port
	// connect(..., ...) reaches, whether the socket under test listens
	// (or there is none yet: a SYN then opens a new connection), and the
	// ports used so far.
	localPort   uint16
	connectPort uint16
	listening   bool
	usedPorts   map[uint16]bool
	conns       int
}

// local is tcpcraft's end now.
func (r *runner) local() netip.AddrPort { return netip.AddrPortFrom(r.env.Local.Addr(), r.localPort) }

// newConnection is an inbound SYN reaching a listening socket (or no
// socket at all): packetdrill makes a new socket under test for it, with a
// fresh remote port and mappings of its own.
func (r *runner) newConnection() {
	r.listening = false
	r.conns++
	if r.conns > 1 && r.env.AnyPort {
		for {
			p := uint16(1024 + mrand.IntN(65535-1024))
			if !r.usedPorts[p] && p != r.kernelPort {
				r.localPort = p
				break
			}
		}
	}
	r.usedPorts[r.localPort] = true
	r.liveLocalISN, r.scriptLocalISN = 0, 0
	r.tsMap = map[uint32]uint32{}
	r.haveFirstTS, r.haveKernelTS = false, false
}

// Run plays script s in env. It returns nil when every expectation was
// met, a *Failure when one was not, and another error when the run could
// not go on (ctx cancelled, the environment broke).
func Run(ctx context.Context, s *Script, env *Env, cfg Config) error {
	r := &runner{
		s: s, env: env, cfg: cfg, ctx: ctx, verb: cfg.Verbose,
		dir:        filepath.Dir(s.Path),
		tolerance:  cfg.Tolerance,
		percent:    cfg.TolerancePercent,
		kernelPort: env.PeerPort,
		bindPort:   env.PeerPort,
		tsMap:      map[uint32]uint32{},
		fds:        map[int64]int{},
		listeners:  map[int64]bool{},
		ipID:       uint16(mrand.Uint32()) | 1,
		localAlias: map[netip.Addr]netip.Addr{},
		localPort:  env.Local.Port(),
		listening:  true,
		usedPorts:  map[uint16]bool{},
	}
	r.format.Absolute = true
	if r.tolerance <= 0 {
		r.tolerance = DefaultTolerance
	}
	switch {
	case r.percent == 0:
		r.percent = DefaultTolerancePercent
	case r.percent < 0:
		r.percent = 0
	}
	if err := r.applyOptions(); err != nil {
		return err
	}
	if env.Link == nil {
		return errors.New("probe: no link to the kernel under test")
	}

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	r.segs = make(chan segment, 4096)
	r.readErr = make(chan error, 1)
	go r.readSegments(readCtx)

	if s.Init != nil {
		if err := r.shell(s.Init, "init command"); err != nil {
			return err
		}
	}
	err := r.events()
	if s.Cleanup != nil {
		if cerr := r.shell(s.Cleanup, "cleanup command"); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = r.finishCode(ctx)
	}
	r.showLeftovers()
	return err
}

func (r *runner) applyOptions() error {
	set, err := ApplyScript(r.s, r.cfg.Args)
	if err != nil {
		return err
	}
	r.set = set
	// packetdrill's default addresses and the ones the options name
	// stand for the live ones, so that scripts naming them in a sockaddr
	// work unchanged whatever addresses the environment has.
	local, remote, _, err := set.Addrs()
	if err != nil {
		return err
	}
	for _, a := range []netip.Addr{DefaultLocal4, DefaultLocal6, local.Addr()} {
		r.localAlias[a] = r.env.Peer
	}
	for _, a := range []netip.Addr{DefaultRemote4, DefaultRemote6, remote} {
		r.localAlias[a] = r.env.Local.Addr()
	}
	r.tolerance = max(r.tolerance, set.Tolerance)
	if set.HasPercent {
		r.percent = set.TolerancePercent
	}
	r.tsTick = set.TSTick
	if set.BindPort != 0 {
		r.bindPort = set.BindPort
	}
	r.connectPort = DefaultKernelPort
	if set.ConnectPort != 0 {
		r.connectPort = set.ConnectPort
	}
	return nil
}

// readSegments turns captured frames into segments until ctx ends.
func (r *runner) readSegments(ctx context.Context) {
	var p craft.Packet
	for {
		f, err := r.env.Link.ReadFrame(ctx)
		if err != nil {
			r.readErr <- err
			close(r.segs)
			return
		}
		if err := craft.ParsePacket(craft.LinkRaw, f.Data, &p, craft.PacketOptions{PartialChecksum: f.ChecksumNotReady}); err != nil {
			continue
		}
		src, tos, ttl := p.IPv4.Src, p.IPv4.DSCP<<2|p.IPv4.ECN, p.IPv4.TTL
		if p.IPVersion == 6 {
			src, tos, ttl = p.IPv6.Src, p.IPv6.TrafficClass, p.IPv6.HopLimit
		}
		if src != r.env.Peer {
			continue
		}
		seg := segment{tcp: p.TCP.Clone(), src: netip.AddrPortFrom(src, p.TCP.SrcPort), dst: p.TCP.DstPort, tos: tos, ttl: ttl, at: f.Time}
		select {
		case r.segs <- seg:
		case <-ctx.Done():
			close(r.segs)
			return
		}
	}
}

// buildTCP builds an IPv4 or IPv6 packet (by the addresses' family)
// carrying tcp, the way Linux would send it (DF, TTL/hop limit 64), with
// the IP fields the script wrote.
func buildTCP(src, dst netip.Addr, id uint16, f IPFields, tcp *craft.TCP) ([]byte, error) {
	ttl := uint8(craft.DefaultTTL)
	if f.TTL != 0 {
		ttl = f.TTL
	}
	tos := f.tosByte()
	if src.Is6() {
		return craft.BuildIPv6TCP(craft.IPv6{Src: src, Dst: dst, HopLimit: ttl, NextHeader: craft.ProtocolTCP,
			TrafficClass: tos, FlowLabel: f.FlowLabel}, tcp)
	}
	return craft.BuildIPv4TCP(craft.IPv4{TTL: ttl, ID: id, DontFragment: true, Protocol: craft.ProtocolTCP, Src: src, Dst: dst,
		DSCP: tos >> 2, ECN: tos & 3}, tcp)
}

// tosByte is the TOS byte (traffic class) an inbound line's fields give:
// "tos 0xNN" as written, an ECN codepoint in the low two bits.
func (f IPFields) tosByte() uint8 {
	tos := f.TOS
	switch f.ECN {
	case ECNECT1:
		tos = tos&^3 | 1
	case ECNECT0:
		tos = tos&^3 | 2
	case ECNCE:
		tos |= 3
	}
	return tos
}

// since is a live time as script time (time since the start).
func (r *runner) since(t time.Time) time.Duration { return t.Sub(r.start) }

func (r *runner) now() time.Duration { return r.since(time.Now()) }

func secs(d time.Duration) string { return fmt.Sprintf("%.6f", d.Seconds()) }

func (r *runner) verbosef(format string, args ...any) {
	if r.verb != nil {
		fmt.Fprintf(r.verb, format+"\n", args...)
	}
}

func (r *runner) fail(ev *Event, format string, args ...any) *Failure {
	return &Failure{Path: r.s.Path, Line: ev.Pos.Line, Msg: fmt.Sprintf(format, args...), OwnLate: r.ownLateMax}
}

func isInbound(ev *Event) bool { return ev != nil && ev.Packet != nil && ev.Packet.Dir == Inbound }

// schedule returns an event's script time (and the end of its range),
// packetdrill's way: absolute times count from the start; relative times
// from the previous event — from its script time when both are inbound
// packets (so that a burst does not drift), else from when the previous
// event actually happened.
func (r *runner) schedule(ev *Event) (t, tEnd, offset time.Duration) {
	switch ev.Time.Kind {
	case TimeRelative, TimeRelativeRange, TimeAny:
		offset = r.lastAnchor
		if isInbound(r.lastEv) && isInbound(ev) {
			offset = r.lastT
		}
	}
	t = offset + ev.Time.Start
	tEnd = t
	if ev.Time.Kind == TimeAbsoluteRange || ev.Time.Kind == TimeRelativeRange {
		tEnd = offset + ev.Time.End
	}
	// An event cannot be early only because what came before it was
	// late by tcpcraft's doing: a packet it sent late, a system call
	// whose reply (and so the next call) came late, a blocking call seen
	// asleep only some time after it sent what it sent. A relative
	// event's earliest time is its time less all that (chainSlack, since
	// the kernel's last packet, which its later timers count from).
	r.slack = 0
	if ev.Time.Kind != TimeAbsolute && ev.Time.Kind != TimeAbsoluteRange {
		r.slack = r.chainSlack
	}
	return t, tEnd, offset
}

// toleranceFor is the tolerance for an event at script time t: the
// configured one, or a percentage of the time since the previous event
// if that is larger (packetdrill's dynamic tolerance).
func (r *runner) toleranceFor(t, since time.Duration) time.Duration {
	dyn := time.Duration(float64(t-since) * r.percent / 100)
	return max(r.tolerance, dyn)
}

// waitUntil sleeps until script time t. A blocking call that returns
// meanwhile is checked (and, with --verbose, shown) as it returns, not
// after the next event.
//
// It sleeps until spinAhead before t and spins the rest, as packetdrill
// does (run.c, wait_for_event): Go's timers wake through epoll_wait,
// whose timeout is in whole milliseconds, so a sleep's last fraction of a
// millisecond can overshoot by up to one.
func (r *runner) waitUntil(t time.Duration) error {
	for {
		d := t - r.now()
		if d <= 0 {
			return nil
		}
		var returned <-chan Reply
		if r.blocking != nil {
			returned = r.blocking.call.Done
		}
		if d <= spinAhead {
			select {
			case rep := <-returned:
				if err := r.finishBlocking(rep); err != nil {
					return err
				}
			case <-r.ctx.Done():
				return r.ctx.Err()
			default:
				runtime.Gosched()
			}
			continue
		}
		timer := time.NewTimer(d - spinAhead)
		select {
		case <-timer.C:
		case rep := <-returned:
			timer.Stop()
			if err := r.finishBlocking(rep); err != nil {
				return err
			}
		case <-r.ctx.Done():
			timer.Stop()
			return r.ctx.Err()
		}
	}
}

// checkLate fails an event that we could only start more than the
// tolerance after its time (packetdrill: "timing error: expected ...").
// What tcpcraft starts itself (a packet it sends, a system call, a
// command) is late only by the machine's doing — a busy CPU, not the
// kernel under test — so it is allowed at least ownStartLate; whatever
// the kernel does in answer is still checked against the tolerance,
// counted from when the event actually happened.
func (r *runner) checkLate(ev *Event, what string, t, tol time.Duration) error {
	if ev.Time.Kind == TimeAny {
		return nil
	}
	tol = max(tol, ownStartLate)
	now := r.now()
	// What the kernel does in answer may be that much late too.
	r.ownLate = max(0, now-t)
	r.ownLateMax = max(r.ownLateMax, r.ownLate)
	if now > t+tol {
		return r.fail(ev, "timing error: expected %s at %s sec but happened at %s sec; tolerance %s sec", what, secs(t), secs(now), secs(tol))
	}
	return nil
}

func (r *runner) events() error {
	r.start = time.Now().Round(0) // wall clock, like capture and helper times
	for _, ev := range r.s.Events {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if err := r.pollBlocking(); err != nil {
			return err
		}
		if ev.Packet == nil || ev.Packet.Dir != Outbound {
			if err := r.checkLeftover(); err != nil {
				return err
			}
		}
		r.cur = ev
		t, tEnd, offset := r.schedule(ev)
		r.curT = t
		tol := r.toleranceFor(t, r.lastT)
		var anchor time.Duration
		var err error
		switch {
		case ev.Packet != nil && ev.Packet.Dir == Inbound:
			anchor, err = r.inbound(ev, t, tol)
		case ev.Packet != nil:
			anchor, err = r.outbound(ev, t, tEnd, tol)
		case ev.Syscall != nil:
			anchor, err = r.syscall(ev, t, offset, tol)
		case ev.Code != nil:
			if err = r.waitUntil(t); err == nil {
				if err = r.checkLate(ev, "code", t, tol); err == nil {
					err = r.code(ev)
					anchor = r.now()
				}
			}
		case ev.Shell != nil:
			if err = r.waitUntil(t); err == nil {
				if err = r.checkLate(ev, "command", t, tol); err == nil {
					err = r.shell(ev.Shell, "command")
					anchor = r.now()
				}
			}
		default:
			err = r.fail(ev, "unsupported event")
		}
		if err != nil {
			return err
		}
		if ev.Packet != nil && ev.Packet.Dir == Outbound {
			r.chainSlack = 0
		} else if late := anchor - t; late > 0 {
			r.chainSlack += late
			r.ownDrift += late
		}
		r.lastEv, r.lastT, r.lastAnchor = ev, t, anchor
		r.noteTimeline(ev, anchor)
	}
	if err := r.checkLeftover(); err != nil {
		return err
	}
	// packetdrill waits a little for a blocking call to finish and fails
	// if it does not.
	if r.blocking != nil {
		if err := r.awaitBlocking(idleWait); err != nil {
			return err
		}
		if b := r.blocking; b != nil {
			return r.fail(b.ev, "runtime error: exiting while a blocking system call (%s) is in progress", b.req.Call)
		}
	}
	return nil
}

// shell runs a backquoted command in the kernel's namespace.
func (r *runner) shell(sh *Shell, what string) error {
	if r.env.Kernel == nil {
		return &Failure{Path: r.s.Path, Line: sh.Pos.Line, Msg: "shell lines need a kernel to run on (not with --target)"}
	}
	r.verbosef("%s `%s`", secs(r.nowOrZero()), sh.Command)
	out, err := r.env.Kernel.Shell(r.ctx, r.dir, sh.Command)
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	if err != nil {
		f := &Failure{Path: r.s.Path, Line: sh.Pos.Line, Msg: fmt.Sprintf("error executing `%s` %s: %v", sh.Command, what, err)}
		if s := strings.TrimSpace(string(out)); s != "" {
			f.Details = append(f.Details, "output: "+truncate(s, 2000))
		}
		return f
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		r.verbosef("  %s", strings.ReplaceAll(s, "\n", "\n  "))
	}
	return nil
}

func (r *runner) nowOrZero() time.Duration {
	if r.start.IsZero() {
		return 0
	}
	return r.now()
}

// showLeftovers prints, with --verbose, segments the script did not expect.
func (r *runner) showLeftovers() {
	if r.verb == nil {
		return
	}
	show := func(seg segment) {
		r.verbosef("%s > %s (not in the script)", secs(r.since(seg.at)), r.liveLine(seg))
	}
	for _, seg := range r.pending {
		show(seg)
	}
	for {
		select {
		case seg, ok := <-r.segs:
			if !ok {
				return
			}
			show(seg)
		default:
			return
		}
	}
}

// liveLine renders a live segment the tcpdump way.
func (r *runner) liveLine(seg segment) string {
	t := seg.tcp
	pkt, err := buildTCP(seg.src.Addr(), r.env.Local.Addr(), 0, IPFields{}, &t)
	if err != nil {
		return fmt.Sprintf("%v > %v: %v", seg.src, r.env.Local, err)
	}
	var p craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, pkt, &p, craft.PacketOptions{}); err != nil {
		return err.Error()
	}
	return r.format.Format(&p)
}
