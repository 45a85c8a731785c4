package cmd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fault"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/pcapfile"
	"github.com/tcpcraft/tcpcraft/release"
	"github.com/tcpcraft/tcpcraft/stack"
)

// The flags of the commands that talk TCP (connect, listen, send).

func ifaceFlag() cli.Flag {
	return &cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Usage: "send and capture on `INTERFACE`", DefaultText: "the interface of the route to the peer"}
}

func sportFlag() cli.Flag {
	return &intFlag{Name: "sport", Aliases: []string{"p"}, Usage: "local `PORT`", DefaultText: "a random port outside ip_local_port_range", Config: intRange{min: 1, max: 65535}}
}

func ttlFlag() cli.Flag {
	return &intFlag{Name: "ttl", Value: 64, Usage: "IP time to live of sent packets", Config: intRange{min: 1, max: 255}}
}

func pcapFlag() cli.Flag {
	return &cli.StringFlag{Name: "pcap", Usage: "write every segment of the session, both directions, to the pcap file `FILE`", TakesFile: true}
}

// Flags of connect and listen: where, and how much of the trace to show.
func linkFlags() []cli.Flag {
	return []cli.Flag{
		ifaceFlag(), sportFlag(), ttlFlag(), pcapFlag(),
		&cli.BoolFlag{Name: "json", Usage: "the trace, and the final error, as one JSON object per line on standard error"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no trace: only the data on standard output, and errors"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "trace more: RTT samples, retransmissions, acknowledged bytes"},
		&cli.BoolFlag{Name: "absolute", Aliases: []string{"S"}, Usage: "absolute sequence numbers in the trace (tcpdump -S)"},
	}
}

// defaultWindow is the receive buffer, and so the most we advertise: 6
// MiB, the tcp_rmem maximum Linux long had by default (newer kernels allow
// 32 MiB), which a shift of 7 can advertise. The buffer grows only as data
// waits in it, so an idle connection of a busy listener does not pay for
// it. With 256 KiB, a bulk download whose reader writes into a pipe ran
// dry whenever the pipe was full: the kernel's sender saw the window shut
// (docs/PERFORMANCE.md).
const defaultWindow = 6 << 20

// Flags that shape our end of a connection (connect, listen).
func connFlags() []cli.Flag {
	return []cli.Flag{
		seqNumberFlag("isn", "initial sequence `NUMBER` (decimal or 0x hex)", "random, RFC 6528"),
		// fsm accepts an MSS of 64 to 65495 (the largest IPv4 packet
		// less the headers; over IPv6 at most 65475).
		&intFlag{Name: "mss", Usage: "MSS to advertise, in `BYTES`", DefaultText: "the interface MTU - 40 (IPv4) or - 60 (IPv6)", Config: intRange{min: 64, max: 65495}},
		&intFlag{Name: "wscale", Value: 7, Usage: "window scale shift to offer, 0-14, or -1 for none (RFC 7323 §2.3)", Config: intRange{min: -1, max: 14, hint: "must be 0 to 14, or -1 for none (RFC 7323 §2.3)"}},
		&intFlag{Name: "window", Value: defaultWindow, Usage: "receive buffer in `BYTES`, the most we advertise (it grows on demand up to this; Linux's own grows to 6 MiB or more)", Config: intRange{min: 1, max: 1 << 30, hint: "must be 1 to 2^30 bytes"}},
		&intFlag{Name: "sndbuf", Value: 4 << 20, Usage: "send buffer in `BYTES`: the most queued, unacknowledged bytes included (it grows on demand up to this; Linux's tcp_wmem maximum is 4 MiB)", Config: intRange{min: 1024, max: 1 << 30, hint: "must be 1024 to 2^30 bytes"}},
		&cli.BoolFlag{Name: "no-sack", Usage: "do not offer SACK-permitted"},
		&cli.BoolFlag{Name: "no-timestamps", Usage: "do not offer timestamps"},
		&cli.BoolFlag{Name: "nagle", Usage: "enable Nagle's algorithm (off by default, for interactive use)"},
		&durationFlag{Name: "time-wait", Value: time.Second, Usage: "the longest TIME-WAIT lasts (2*MSL) when we close first; 0 passes through it at once"},
		&cli.BoolFlag{Name: "full-time-wait", Usage: "hold TIME-WAIT for all of --time-wait; by default it ends once a probe shows the peer has closed (no FIN of its can come again), or after two of its retransmission timeouts without one"},
		&choiceFlag{Name: "cc", Value: fsm.CongestionCubic, Usage: "congestion control: cubic (RFC 9438, as Linux) or reno (NewReno, RFC 5681/6582)", Config: choices{values: []string{fsm.CongestionCubic, fsm.CongestionReno}}},
		faultFlag(),
	}
}

// sessionSpec says what a session is for.
type sessionSpec struct {
	remote netip.AddrPort // connect/send: the peer; listen: invalid
	local  netip.AddrPort // listen: the address and port listened on
}

// session is everything a run that talks TCP sets up, in order: privileges
// checked, route found, port chosen and the connection configuration
// built (nothing changed yet); then guard rule installed, capture and raw
// socket opened, pcap file created, stack started. Each step that changes
// the system registers its undo before the next step runs (setUp), and
// close runs the undos: the stack's first, resetting open connections
// before the guard goes, so no peer is left half-open, then the others
// side by side: whichever step fails, and however the run ends, nothing
// it made is left behind.
type session struct {
	clock *startupClock // TCPCRAFT_STARTUP_TIMES
	// traceOut buffers the trace on its way to standard error.
	traceOut *traceBuffer
	route    capture.Route
	local    netip.AddrPort
	guard    *guard.Guard // the firewall rule, where the port could not be held
	hold     *guard.PortHold
	holdErr  error // why the port could not be held, for -v
	cap      *capture.Capture
	inj      *capture.Injector
	pcap     *pcapfile.Writer
	stack    *stack.Stack
	trace    *tracer
	gso      *capture.GSOSender
	// faults is the --fault link between the stack and the wire, and
	// acts carries out the faults that act on a connection; both nil
	// without --fault.
	faults *fault.Link
	acts   *faultActs
	specs  []fault.Spec
	closed bool
	// releaseLater: this process is tcpcraft itself (Main), so close may
	// leave the release of its sockets to a helper (package release).
	releaseLater bool
	guardConn    syscall.RawConn // the guard's netlink socket

	// undo holds what close must do, one entry per step done, in the
	// order of the steps.
	undo []undoStep
	// failAt, when set (failStepKey, tests only), is asked before each
	// step and makes it fail with what it returns.
	failAt func(step string) error
}

// undoStep undoes one step of the set-up.
type undoStep struct {
	step string
	undo func() error
}

// The steps of a session's set-up that change the system, in order
// (failStepKey's names).
const (
	stepProfile  = "profile"  // TCPCRAFT_CPUPROFILE's file and profile
	stepGuard    = "guard"    // the port's hold, or the firewall rule
	stepCapture  = "capture"  // the AF_PACKET capture
	stepInjector = "injector" // the raw sockets
	stepGSO      = "gso"      // the AF_PACKET sender of offloaded segments
	stepPcap     = "pcap"     // --pcap's file
	stepStack    = "stack"    // the stack's goroutines
)

// sessionSteps lists the steps in order.
var sessionSteps = []string{stepProfile, stepGuard, stepCapture, stepInjector, stepGSO, stepPcap, stepStack}

// failStepKey is the root command Metadata key of a func(step string)
// error that makes a session's set-up fail at a step: how tests check
// that a failure at any step leaves nothing behind.
const failStepKey = "session-fail-step"

// setUp runs one step: do changes the system and returns its undo, which
// is registered before anything else runs. A step that fails has changed
// nothing (do undoes its own half-work).
func (s *session) setUp(step string, do func() (undo func() error, err error)) error {
	if s.failAt != nil {
		if err := s.failAt(step); err != nil {
			return exitFailure(fmt.Errorf("%s: %w", step, err))
		}
	}
	undo, err := do()
	if err != nil {
		return err
	}
	if undo != nil {
		s.undo = append(s.undo, undoStep{step, undo})
	}
	s.clock.mark(step)
	return nil
}

// checkTraceFlags refuses -q and -v together.
func checkTraceFlags(c *cli.Command) error {
	return exclusive(c, "quiet", "verbose")
}

// traceLevelOf reads -q/-v (checkTraceFlags refused both together).
func traceLevelOf(c *cli.Command) traceLevel {
	switch {
	case flagBool(c, "quiet"):
		return traceQuiet
	case flagBool(c, "verbose"):
		return traceVerbose
	}
	return traceNormal
}

// openSession sets up a session; on error nothing is left changed: the
// steps done so far are undone (session.close) before it returns. Every
// check of the input comes before the first step that changes the system.
func openSession(ctx context.Context, c *cli.Command, spec sessionSpec, makeConfig func(mtu int) (fsm.Config, error)) (_ *session, err error) {
	if err := capture.CheckPrivileges(); err != nil {
		return nil, exitFailure(err)
	}
	s := &session{clock: startupClockOf(c)}
	if f, ok := c.Root().Metadata[failStepKey].(func(string) error); ok {
		s.failAt = f
	}
	s.releaseLater, _ = c.Root().Metadata[releaseLaterKey].(bool)
	defer func() {
		if err != nil {
			if cerr := s.close(); cerr != nil {
				err = fmt.Errorf("%w (and undoing the set-up: %v)", err, cerr)
			}
		}
	}()
	start := time.Now()

	// Checks and choices: nothing changes yet.
	var ifindex int
	s.route, ifindex, s.local, err = pickEndpoint(c, spec)
	if err != nil {
		return nil, err
	}
	s.clock.mark("route")
	localAddr := s.local.Addr()
	connCfg, err := makeConfig(s.route.MTU)
	if err != nil {
		return nil, err
	}
	faults, err := faultSpecs(c)
	if err != nil {
		return nil, err
	}
	pcapPath := flagString(c, "pcap")
	if err := checkOutputPath("--pcap", pcapPath); err != nil {
		return nil, err
	}
	scfg := stack.Config{
		Local: localAddr,
		TTL:   uint8(flagInt(c, "ttl")), // 1-255: checked by its flag
		Conn:  connCfg,
	}
	if !localAddr.IsValid() || localAddr.IsUnspecified() {
		if scfg.IsLocal, err = capture.HostAddresses(); err != nil {
			return nil, exitFailure(err)
		}
	}
	// Offload needs one interface and one next hop (not a listener on
	// every address, not loopback). The text and JSON traces show the
	// super-segments handed to the link, as tcpdump on a sender with
	// segmentation offload does; a pcap file or a ladder keeps fsm's
	// segments one by one (a ladder's rows are fsm's segments, and the
	// pcap's bytes need the true checksum of each). TCPCRAFT_NO_GSO=1
	// turns it off (for comparisons, scripts/bench.sh).
	wireTrace := pcapPath == "" && !flagBool(c, "ladder")
	quietRun := traceLevelOf(c) == traceQuiet && wireTrace
	// Nothing of a quiet run shows good segments: the tracer needs only
	// the failures and the events (--stats takes its figures from fsm's
	// counters and the events).
	scfg.SegmentErrorsOnly = quietRun
	// The text trace shows sent packets from their headers: no checksum
	// over the payload for its sake (the JSON trace and -v report each
	// packet's checksum status, so they keep them).
	scfg.TraceHeadersOnly = wireTrace && !flagBool(c, "json") && traceLevelOf(c) != traceVerbose
	useGSO := wireTrace && len(faults) == 0 && spec.remote.IsValid() && ifindex > 0 && !s.route.Local && os.Getenv("TCPCRAFT_NO_GSO") == ""

	// The steps that change the system, each undone by close.
	if path := os.Getenv("TCPCRAFT_CPUPROFILE"); path != "" {
		// A hidden knob for performance work (scripts/bench.sh): a
		// CPU profile of the whole session, for go tool pprof.
		if err := s.setUp(stepProfile, func() (func() error, error) { return startProfile(path) }); err != nil {
			return nil, err
		}
	}
	if err := s.setUp(stepGuard, func() (func() error, error) {
		// The port held by a socket of ours where it is free; the
		// firewall rule where a kernel socket has it (or it cannot be
		// bound): see package guard.
		h, holdErr := guard.HoldPort(s.local)
		if holdErr == nil {
			s.hold = h
			return h.Close, nil
		}
		g, err := guard.Install(ctx, s.local)
		if err != nil {
			return nil, exitFailure(fmt.Errorf("%w (and %v)", err, holdErr))
		}
		s.holdErr = holdErr
		s.guard = g
		// Taken now: Guard's own accessor waits while a Delete runs,
		// and close hands the socket over while it does (handOffReleases).
		s.guardConn = g.SyscallConn()
		return func() error {
			if err := g.Remove(context.Background()); err != nil {
				return fmt.Errorf("removing the firewall rule: %w", err)
			}
			return nil
		}, nil
	}); err != nil {
		return nil, err
	}
	if err := s.setUp(stepCapture, func() (func() error, error) {
		// PathMTU: the ICMP errors of path MTU discovery come in with
		// the segments (the stack checks which connection they quote).
		cp, err := capture.Open(ifindex, capture.Flow{Local: s.local, Remote: spec.remote, PathMTU: true}, captureConfig(spec.remote.IsValid()))
		if err != nil {
			return nil, exitFailure(err)
		}
		s.cap = cp
		return ignoreErr(cp.Close), nil
	}); err != nil {
		return nil, err
	}
	if err := s.setUp(stepInjector, func() (func() error, error) {
		inj, err := capture.OpenInjector()
		if err != nil {
			return nil, exitFailure(err)
		}
		s.inj = inj
		return ignoreErr(inj.Close), nil
	}); err != nil {
		return nil, err
	}
	var link stack.Link = capture.NewLink(s.cap, s.inj)
	if useGSO {
		if err := s.setUp(stepGSO, func() (func() error, error) {
			hop := s.route.Gateway
			if !hop.IsValid() {
				hop = spec.remote.Addr()
			}
			// Opened here, on the thread that opened the capture and
			// the injector: in the session's network namespace (a
			// test may drive tcpcraft from a thread inside a lab
			// namespace, and the stack's goroutines run elsewhere).
			// Without it, segments go one by one: not a failure.
			g, err := capture.OpenGSOSender(ifindex, hop)
			if err != nil {
				return nil, nil
			}
			s.gso = g
			link = capture.NewGSOLink(capture.NewLink(s.cap, s.inj), g, spec.remote.Addr())
			return ignoreErr(g.Close), nil
		}); err != nil {
			return nil, err
		}
	}
	if pcapPath != "" {
		if err := s.setUp(stepPcap, func() (func() error, error) { return s.createPcap(pcapPath) }); err != nil {
			return nil, err
		}
	}
	s.traceOut = newTraceBuffer(stderr(c))
	s.trace = newTracer(s.traceOut, traceLevelOf(c), flagBool(c, "json"), s.pcap, start)
	s.trace.format.Absolute = flagBool(c, "absolute")
	scfg.Tracer = s.trace
	if s.trace.level == traceVerbose {
		switch {
		case s.hold != nil:
			s.trace.note("guard: %v", s.hold)
		case s.guard != nil:
			s.trace.note("guard: nftables table inet %s, which drops what comes to %v (the port could not be held: %v)", s.guard.Table(), s.local, s.holdErr)
		}
	}
	if err := s.setUp(stepStack, func() (func() error, error) {
		runCtx, cancel := context.WithCancel(context.Background())
		if len(faults) > 0 {
			// Between the stack and the wire: the stack reports each
			// segment as fsm made it, the fault link what became of it.
			s.specs = faults
			s.acts = newFaultActs(s.trace)
			s.faults = fault.NewLink(link, faults, fault.LinkConfig{Note: s.trace.faultNote, Wire: s.trace.wire, Act: s.acts.act})
			s.trace.wireOut = true
			link = s.faults
			go s.faults.Run(runCtx)
		}
		st, err := stack.New(link, scfg)
		if err != nil {
			cancel()
			return nil, exitFailure(err)
		}
		s.stack = st
		runErr := make(chan error, 1)
		go func() { runErr <- st.Run(runCtx) }()
		return func() error {
			if s.faults != nil {
				// The resets of the way out must reach the peer,
				// whatever the faults (dead, drop-ack) were doing.
				s.faults.Release()
			}
			// Reset what is still open while the guard and the
			// raw socket are there, then stop the goroutines (their
			// reads and timers watch runCtx). The capture is closed
			// by its own step, beside the other releases.
			st.Shutdown()
			cancel()
			return <-runErr
		}, nil
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// createPcap creates the --pcap file; its undo closes it, and removes it
// too while the session is not yet set up (a run that failed to start
// leaves no file behind; one that ran keeps what it recorded). A file
// that was there before is replaced, as with tcpdump -w.
func (s *session) createPcap(path string) (func() error, error) {
	w, err := pcapfile.Create(path)
	if err != nil {
		return nil, exitFailure(err)
	}
	s.pcap = w
	return func() error {
		err := w.Close()
		if s.stack == nil || !s.running() {
			if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				return errors.Join(err, fmt.Errorf("removing the pcap file of a run that did not start: %w", rerr))
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("writing the pcap file: %w", err)
		}
		return nil
	}, nil
}

// ignoreErr is close for a socket, whose close cannot fail in a way that
// leaves anything behind or that a user could act on.
func ignoreErr(close func() error) func() error {
	return func() error { _ = close(); return nil }
}

// running reports whether the set-up got to its last step.
func (s *session) running() bool {
	return len(s.undo) > 0 && s.undo[len(s.undo)-1].step == stepStack
}

// startProfile starts TCPCRAFT_CPUPROFILE's CPU profile into path.
func startProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, exitFailure(fmt.Errorf("TCPCRAFT_CPUPROFILE: %w", err))
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, exitFailure(fmt.Errorf("TCPCRAFT_CPUPROFILE: %w", err))
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing the CPU profile: %w", err)
		}
		return nil
	}, nil
}

// checkOutputPath refuses, before anything changes, an output file (flag
// is its flag) that could not be created: a directory, or a name in a
// directory that does not exist.
func checkOutputPath(flag, path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return usagef("%s %s: is a directory", flag, path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return usagef("%s %s: %v", flag, path, err)
	case !fi.IsDir():
		return usagef("%s %s: %s is not a directory", flag, path, dir)
	}
	return nil
}

// pickEndpoint decides where a run talks from: the interface (by --iface,
// the route to the peer, or the listening address), our address and our
// port (--sport, the listening port, or one outside ip_local_port_range).
func pickEndpoint(c *cli.Command, spec sessionSpec) (route capture.Route, ifindex int, local netip.AddrPort, err error) {
	var localAddr netip.Addr
	switch {
	case flagString(c, "iface") != "":
		route, err = capture.InterfaceRoute(flagString(c, "iface"), spec.remote.Addr())
		if errors.Is(err, capture.ErrNoSuchInterface) {
			return route, 0, local, usagef("--iface: %v", err)
		}
		if err != nil {
			return route, 0, local, exitFailure(err)
		}
		ifindex, localAddr = route.Index, route.Source
		if !spec.remote.IsValid() {
			// listen -i: the listening address as given (every
			// address of both families for :PORT), on that
			// interface only.
			localAddr = spec.local.Addr()
		}
	case spec.remote.IsValid():
		route, err = capture.LookupRoute(spec.remote.Addr())
		if err != nil {
			return route, 0, local, exitFailure(fmt.Errorf("no route to %v: %w", spec.remote.Addr(), err))
		}
		ifindex, localAddr = route.Index, route.Source
	default: // listen
		localAddr = spec.local.Addr()
		if localAddr.IsValid() && !localAddr.IsUnspecified() {
			route, err = capture.AddressRoute(localAddr)
			if err != nil {
				return route, 0, local, exitFailure(err)
			}
			ifindex = route.Index
		}
	}
	if spec.remote.IsValid() && spec.local.IsValid() && !spec.local.Addr().IsUnspecified() {
		localAddr = spec.local.Addr()
	}
	port := spec.local.Port()
	if p := flagInt(c, "sport"); p != 0 {
		port = uint16(p) // 1-65535: checked by its flag
	}
	if port == 0 {
		port, err = capture.EphemeralPort(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
		if err != nil {
			return route, 0, local, exitFailure(fmt.Errorf("choosing a source port: %w", err))
		}
	}
	return route, ifindex, netip.AddrPortFrom(localAddr, port), nil
}

// close resets what is still open, stops the stack and undoes the rest of
// the set-up, and returns when all of it is done. It is safe to call more
// than once and on a half-built session.
func (s *session) close() error {
	if s == nil || s.closed {
		return nil
	}
	s.closed = true
	// The stack's step comes first, alone: it resets what is still open
	// while the guard and the sockets are there, and stops the goroutines
	// that use them. What is left only releases, in no order that matters,
	// and three of the releases wait for an RCU grace period in the
	// kernel: each AF_PACKET socket's (synchronize_net in packet_release,
	// net/packet/af_packet.c) and the guard's table's (freed by an
	// nf_tables worker after a grace period, which closing its socket
	// waits for). One after another those waits were most of a short run
	// (docs/PERFORMANCE.md, "Start-up"); side by side they share one. So
	// the guard's table is deleted first (its grace period passes in the
	// kernel's worker), the packet sockets are closed side by side, the
	// other releases are done meanwhile, and the guard's socket is closed
	// after them, when its worker is done. (Not each on a goroutine of its
	// own: a goroutine blocked in close(2) holds its P until sysmon takes
	// it, up to 10 ms later, and with two Ps a third release waited for
	// that.) The CPU profile, if any, stops last, so that it sees it all.
	// When this process is tcpcraft itself, a helper process takes
	// duplicates of those sockets first (package release) and the grace
	// periods pass in it after tcpcraft has exited: no close here waits.
	phase := func(step string) int {
		switch step {
		case stepStack:
			return 0
		case stepCapture, stepGSO:
			return 1 // side by side
		case stepGuard:
			return 3
		case stepProfile:
			return 4
		}
		return 2
	}
	errs := make([]error, len(s.undo))
	undo := func(p int, side *sync.WaitGroup) {
		for i := len(s.undo) - 1; i >= 0; i-- {
			if u := s.undo[i]; phase(u.step) == p {
				if side != nil {
					side.Go(func() { errs[i] = u.undo() })
				} else {
					errs[i] = u.undo()
				}
			}
		}
	}
	undo(0, nil)
	// Frames the kernel could not queue for tcpcraft because it had not
	// read the ones before (its ring, or its socket's queue, was full: a
	// flood faster than this process got the CPU): what a peer sent then
	// never reached tcpcraft, and the peer retransmits it. Said as tcpdump
	// says it ("packets dropped by kernel"), read before the capture goes.
	if s.cap != nil && s.trace != nil {
		if st, err := s.cap.Stats(); err == nil && st.Drops > 0 {
			s.trace.warn("capture: %d of %d frames dropped by the kernel (its buffer was full: tcpcraft fell behind); their senders retransmit them", st.Drops, st.Packets)
		}
	}
	// The table's deletion and the hand-over of the sockets (a clone of
	// this process) run side by side: neither needs the other.
	var handOff sync.WaitGroup
	handedOff := false
	if s.releaseLater {
		handOff.Go(func() { handedOff = s.handOffReleases() })
	}
	s.guard.Delete()
	handOff.Wait()
	if handedOff {
		// Every close only drops a reference now: no goroutines.
		undo(1, nil)
		undo(2, nil)
	} else {
		var side sync.WaitGroup
		undo(1, &side)
		undo(2, nil)
		side.Wait()
	}
	undo(3, nil)
	undo(4, nil)
	if s.traceOut != nil {
		// The trace's last lines before anything the command prints
		// after the session (an error).
		s.traceOut.Close()
	}
	return errors.Join(errs...)
}

// handOffReleases gives a helper process duplicates of the sockets whose
// release waits for an RCU grace period (the packet sockets and the
// guard's), so that the closes after it, and the exit, do not wait
// (package release); it reports whether it did. -v names the helper; one
// that cannot be made costs only the wait, and the trace says so.
func (s *session) handOffReleases() bool {
	var conns []release.Conn
	if s.cap != nil {
		conns = append(conns, s.cap.SyscallConn())
	}
	if s.gso != nil {
		conns = append(conns, s.gso.SyscallConn())
	}
	if s.guardConn != nil {
		conns = append(conns, s.guardConn)
	}
	if len(conns) == 0 {
		return false
	}
	pid, err := release.Later(conns...)
	if s.trace == nil {
		return err == nil
	}
	if err != nil {
		s.trace.note("%v; closing here instead", err)
		return false
	}
	if s.trace.level == traceVerbose {
		s.trace.note("release: %d sockets left to process %d (tcpcraft-linger), which frees them after tcpcraft exits", len(conns), pid)
	}
	return true
}

// connConfig builds the fsm template from the connection flags.
func connConfig(c *cli.Command, mtu int) (fsm.Config, error) {
	// Each flag's own range was checked when the command line was
	// parsed; what is left are the checks across flags and the
	// interface's MTU.
	cfg := fsm.DefaultConfig()
	if flagIsSet(c, "isn") {
		cfg.ISS, cfg.FixedISS = craft.Seq(uint32(flagInt(c, "isn"))), true
	}
	// The MSS of each family (RFC 9293 §3.7.1): what one packet of the
	// interface's MTU carries after the IP and TCP headers, 40 bytes for
	// IPv4 and 60 for IPv6 (RFC 8200 §3), as Linux derives it. --mss
	// sets both, as TCP_MAXSEG does.
	switch mss := flagInt(c, "mss"); {
	case mss != 0:
		cfg.MSS, cfg.MSS6 = uint16(mss), uint16(min(mss, 65475))
	case mtu > 124:
		cfg.MSS, cfg.MSS6 = uint16(min(mtu-40, 65495)), uint16(min(mtu-60, 65475))
	}
	ws := flagInt(c, "wscale")
	cfg.WindowScale = ws
	w := flagInt(c, "window")
	if ws > 0 && w < 4<<ws {
		// A scaled window field counts in units of 2^ws bytes (RFC 7323
		// §2.3); a buffer below a few units could not be advertised.
		return cfg, usagef("--window %d is too small for --wscale %d: at least %d bytes, or a smaller --wscale", w, ws, 4<<ws)
	}
	cfg.RecvBufferSize = w
	// A large send buffer keeps a fast path busy while ACKs are on their
	// way (256 KiB held a bulk upload on a veth to about half the rate 4
	// MiB gives, docs/PERFORMANCE.md); the buffer grows only as data is
	// queued, so an idle or interactive connection does not pay for it.
	cfg.SendBufferSize = flagInt(c, "sndbuf")
	cfg.SACK = !flagBool(c, "no-sack")
	cfg.Timestamps = !flagBool(c, "no-timestamps")
	cfg.NoDelay = !flagBool(c, "nagle")
	cfg.Congestion = flagString(c, "cc")
	cfg.TimeWait = flagDuration(c, "time-wait")
	cfg.TimeWaitProbe = !flagBool(c, "full-time-wait")
	if cfg.TimeWait <= 0 {
		cfg.TimeWait = time.Millisecond // "no TIME-WAIT" still passes through the state
	}
	return cfg, nil
}

// parseHostPort parses HOST:PORT (HOST an IPv4 address or a name that
// resolves to one): for the commands that speak IPv4 only.
func parseHostPort(ctx context.Context, arg string) (netip.AddrPort, error) {
	if host, _, err := net.SplitHostPort(arg); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && !a.Unmap().Is4() {
			return netip.AddrPort{}, usagef("%q: only IPv4 is supported for now", arg)
		}
	}
	return parsePeer(ctx, arg, family4)
}

// family is the address family a command line asks for: -4, -6, or
// either (familyAny).
type family int

const (
	familyAny family = iota
	family4
	family6
)

// familyOf reads -4/-6 (exclusive: checked by familyFlags' caller).
func familyOf(c *cli.Command) family {
	switch {
	case flagBool(c, "ipv4"):
		return family4
	case flagBool(c, "ipv6"):
		return family6
	}
	return familyAny
}

// familyFlags are -4 and -6, as nc and curl have them.
func familyFlags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "ipv4", Aliases: []string{"4"}, Usage: "IPv4 only: " + what},
		&cli.BoolFlag{Name: "ipv6", Aliases: []string{"6"}, Usage: "IPv6 only: " + what},
	}
}

// parsePeer parses HOST:PORT, HOST an IPv4 address, an IPv6 address in
// brackets ([fd00:2::20]:80) or a name, of the family fam asks for. A
// name is resolved as getaddrinfo(3) would for nc or curl: to its
// addresses of that family (A and AAAA for either), the first one taken
// (Go's resolver orders them by RFC 6724, as glibc does).
func parsePeer(ctx context.Context, arg string, fam family) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(arg)
	if err != nil {
		return netip.AddrPort{}, usagef("%q: want HOST:PORT: %v", arg, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, usagef("%q: port %q is not a number 1-65535", arg, portStr)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		// Not an address: a name. One that does not resolve is a
		// runtime failure (the resolver, the network or the name's
		// owner said no), not a mistake in the command line.
		network, none := "ip", "no address"
		switch fam {
		case family4:
			network, none = "ip4", "no IPv4 address"
		case family6:
			network, none = "ip6", "no IPv6 address"
		}
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, network, host)
		if lerr != nil || len(addrs) == 0 {
			if lerr == nil {
				lerr = errors.New(none)
			}
			return netip.AddrPort{}, exitFailure(fmt.Errorf("%q: cannot resolve %q: %w", arg, host, lerr))
		}
		addr = addrs[0]
	} else if addr.Zone() != "" || addr.Is6() && addr.IsLinkLocalUnicast() {
		return netip.AddrPort{}, usagef("%q: link-local IPv6 addresses are not supported; use a global or unique local one", arg)
	}
	addr = addr.Unmap()
	switch {
	case fam == family4 && !addr.Is4():
		return netip.AddrPort{}, usagef("%q: -4 asks for IPv4, and %v is an IPv6 address", arg, addr)
	case fam == family6 && !addr.Is6():
		return netip.AddrPort{}, usagef("%q: -6 asks for IPv6, and %v is an IPv4 address", arg, addr)
	}
	if addr.IsUnspecified() || addr.IsMulticast() {
		return netip.AddrPort{}, usagef("%q: %v cannot be a TCP peer", arg, addr)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// captureConfig is the receive ring of a session. A connection's ring
// holds 64 KB slots, so a peer's TSO segments land whole in the ring. A
// listener's ring holds small slots, 15,600 of them in the same 5 MiB (75
// of the large ones): a SYN flood arriving while the process waits for a
// CPU overflows a short ring, and the SYN of a legitimate client is lost
// with the flood's (then sent again only after its 1 s RTO). A slot takes
// any handshake segment (IPv6, every option); longer frames still arrive
// whole, through the socket's queue, at one more system call each
// (capture.Config.LongFramesWhole).
func captureConfig(connected bool) capture.Config {
	if connected {
		return capture.Config{Queue: true}
	}
	return capture.Config{SnapLen: listenerSnapLen, Frames: listenerRingFrames, LongFramesWhole: true}
}

const (
	listenerSnapLen    = 256   // an IPv6 header, a TCP header with 40 bytes of options, and room
	listenerRingFrames = 15600 // five 1 MiB blocks of 3,120 slots
)
