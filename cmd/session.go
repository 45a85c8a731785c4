package cmd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/pcapfile"
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
		// less the headers).
		&intFlag{Name: "mss", Usage: "MSS to advertise, in `BYTES`", DefaultText: "the interface MTU - 40", Config: intRange{min: 64, max: 65495}},
		&intFlag{Name: "wscale", Value: 7, Usage: "window scale shift to offer, 0-14, or -1 for none (RFC 7323 §2.3)", Config: intRange{min: -1, max: 14, hint: "must be 0 to 14, or -1 for none (RFC 7323 §2.3)"}},
		&intFlag{Name: "window", Value: defaultWindow, Usage: "receive buffer in `BYTES`, the most we advertise (it grows on demand up to this; Linux's own grows to 6 MiB or more)", Config: intRange{min: 1, max: 1 << 30, hint: "must be 1 to 2^30 bytes"}},
		&intFlag{Name: "sndbuf", Value: 4 << 20, Usage: "send buffer in `BYTES`: the most queued, unacknowledged bytes included (it grows on demand up to this; Linux's tcp_wmem maximum is 4 MiB)", Config: intRange{min: 1024, max: 1 << 30, hint: "must be 1024 to 2^30 bytes"}},
		&cli.BoolFlag{Name: "no-sack", Usage: "do not offer SACK-permitted"},
		&cli.BoolFlag{Name: "no-timestamps", Usage: "do not offer timestamps"},
		&cli.BoolFlag{Name: "nagle", Usage: "enable Nagle's algorithm (off by default, for interactive use)"},
		&durationFlag{Name: "time-wait", Value: time.Second, Usage: "how long TIME-WAIT lasts (2*MSL) when we close first; 0 passes through it at once"},
		&choiceFlag{Name: "cc", Value: fsm.CongestionCubic, Usage: "congestion control: cubic (RFC 9438, as Linux) or reno (NewReno, RFC 5681/6582)", Config: choices{values: []string{fsm.CongestionCubic, fsm.CongestionReno}}},
	}
}

// sessionSpec says what a session is for.
type sessionSpec struct {
	remote netip.AddrPort // connect/send: the peer; listen: invalid
	local  netip.AddrPort // listen: the address and port listened on
}

// session is everything a run that talks TCP sets up, in order: privileges
// checked, route found, port chosen, guard rule installed, capture and raw
// socket opened, stack started. close undoes it in reverse order, resetting
// open connections before the guard goes, so no peer is left half-open.
type session struct {
	route  capture.Route
	local  netip.AddrPort
	guard  *guard.Guard
	cap    *capture.Capture
	inj    *capture.Injector
	pcap   *pcapfile.Writer
	stack  *stack.Stack
	trace  *tracer
	cancel context.CancelFunc
	runErr chan error
	closed bool
	prof   *os.File // TCPCRAFT_CPUPROFILE: a CPU profile of the session
	gso    *capture.GSOSender
}

// checkTraceFlags refuses -q and -v together.
func checkTraceFlags(c *cli.Command) error {
	return exclusive(c, "quiet", "verbose")
}

// traceLevelOf reads -q/-v (checkTraceFlags refused both together).
func traceLevelOf(c *cli.Command) traceLevel {
	switch {
	case c.Bool("quiet"):
		return traceQuiet
	case c.Bool("verbose"):
		return traceVerbose
	}
	return traceNormal
}

// openSession sets up a session; on error nothing is left changed: what
// was set up is undone (the deferred close sees the session being built,
// not the nil every error return gives the caller).
func openSession(ctx context.Context, c *cli.Command, spec sessionSpec, makeConfig func(mtu int) (fsm.Config, error)) (_ *session, err error) {
	if err := capture.CheckPrivileges(); err != nil {
		return nil, exitFailure(err)
	}
	s := &session{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	start := time.Now()
	// A hidden knob for performance work (scripts/bench.sh): a CPU
	// profile of the whole session, for go tool pprof.
	if path := os.Getenv("TCPCRAFT_CPUPROFILE"); path != "" {
		if s.prof, err = os.Create(path); err != nil {
			return nil, exitFailure(fmt.Errorf("TCPCRAFT_CPUPROFILE: %w", err))
		}
		if err = pprof.StartCPUProfile(s.prof); err != nil {
			return nil, exitFailure(fmt.Errorf("TCPCRAFT_CPUPROFILE: %w", err))
		}
	}
	var ifindex int
	s.route, ifindex, s.local, err = pickEndpoint(c, spec)
	if err != nil {
		return nil, err
	}
	localAddr := s.local.Addr()

	if path := c.String("pcap"); path != "" {
		s.pcap, err = pcapfile.Create(path)
		if err != nil {
			return nil, exitFailure(err)
		}
	}
	s.trace = newTracer(stderr(c), traceLevelOf(c), c.Bool("json"), s.pcap, start)
	s.trace.format.Absolute = c.Bool("absolute")

	s.guard, err = guard.Install(ctx, s.local)
	if err != nil {
		return nil, exitFailure(err)
	}
	flow := capture.Flow{Local: s.local, Remote: spec.remote}
	s.cap, err = capture.Open(ifindex, flow, capture.Config{})
	if err != nil {
		return nil, exitFailure(err)
	}
	s.inj, err = capture.OpenInjector()
	if err != nil {
		return nil, exitFailure(err)
	}
	connCfg, err := makeConfig(s.route.MTU)
	if err != nil {
		return nil, err
	}
	scfg := stack.Config{
		Local:  localAddr,
		TTL:    uint8(c.Int("ttl")), // 1-255: checked by its flag
		Conn:   connCfg,
		Tracer: s.trace,
	}
	if localAddr.IsUnspecified() {
		if scfg.IsLocal, err = capture.HostAddresses(); err != nil {
			return nil, exitFailure(err)
		}
	}
	var link stack.Link = capture.NewLink(s.cap, s.inj)
	// Offload needs one interface and one next hop (not a listener on
	// every address, not loopback). It is used only by quiet runs with no
	// pcap or ladder: coalesced super-segments would make those show
	// other packets than fsm's segments. TCPCRAFT_NO_GSO=1 turns it
	// off (for comparisons, scripts/bench.sh).
	quietRun := traceLevelOf(c) == traceQuiet && c.String("pcap") == "" && !c.Bool("ladder")
	// Nothing of a quiet run shows good segments: the tracer needs only
	// the failures and the events (--stats takes its figures from fsm's
	// counters and the events).
	scfg.SegmentErrorsOnly = quietRun
	if quietRun && spec.remote.IsValid() && ifindex > 0 && !s.route.Local && os.Getenv("TCPCRAFT_NO_GSO") == "" {
		hop := s.route.Gateway
		if !hop.IsValid() {
			hop = spec.remote.Addr()
		}
		// Opened here, on the thread that opened the capture and the
		// injector: in the session's network namespace (a test may
		// drive tcpcraft from a thread inside a lab namespace, and the
		// stack's goroutines run elsewhere).
		if g, err := capture.OpenGSOSender(ifindex, hop); err == nil {
			s.gso = g
			link = capture.NewGSOLink(capture.NewLink(s.cap, s.inj), g, spec.remote.Addr())
		}
	}
	s.stack, err = stack.New(link, scfg)
	if err != nil {
		return nil, exitFailure(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.runErr = make(chan error, 1)
	go func() { s.runErr <- s.stack.Run(runCtx) }()
	return s, nil
}

// pickEndpoint decides where a run talks from: the interface (by --iface,
// the route to the peer, or the listening address), our address and our
// port (--sport, the listening port, or one outside ip_local_port_range).
func pickEndpoint(c *cli.Command, spec sessionSpec) (route capture.Route, ifindex int, local netip.AddrPort, err error) {
	var localAddr netip.Addr
	switch {
	case c.String("iface") != "":
		route, err = capture.InterfaceRoute(c.String("iface"), spec.remote.Addr())
		if errors.Is(err, capture.ErrNoSuchInterface) {
			return route, 0, local, usagef("--iface: %v", err)
		}
		if err != nil {
			return route, 0, local, exitFailure(err)
		}
		ifindex, localAddr = route.Index, route.Source
	case spec.remote.IsValid():
		route, err = capture.LookupRoute(spec.remote.Addr())
		if err != nil {
			return route, 0, local, exitFailure(fmt.Errorf("no route to %v: %w", spec.remote.Addr(), err))
		}
		ifindex, localAddr = route.Index, route.Source
	default: // listen
		localAddr = spec.local.Addr()
		if !localAddr.IsUnspecified() {
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
	if p := c.Int("sport"); p != 0 {
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

// close resets what is still open, stops the stack and undoes the set-up.
// It is safe to call more than once and on a half-built session.
func (s *session) close() error {
	if s == nil || s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.stack != nil {
		s.stack.Shutdown()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.cap != nil {
		_ = s.cap.Close() // wakes the reader
	}
	if s.runErr != nil {
		if err := <-s.runErr; err != nil {
			errs = append(errs, err)
		}
	}
	if s.inj != nil {
		_ = s.inj.Close()
	}
	if s.gso != nil {
		_ = s.gso.Close()
	}
	if s.guard != nil {
		if err := s.guard.Remove(context.Background()); err != nil {
			errs = append(errs, fmt.Errorf("removing the firewall rule: %w", err))
		}
	}
	if s.pcap != nil {
		if err := s.pcap.Close(); err != nil {
			errs = append(errs, fmt.Errorf("writing the pcap file: %w", err))
		}
	}
	if s.prof != nil {
		pprof.StopCPUProfile()
		if err := s.prof.Close(); err != nil {
			errs = append(errs, fmt.Errorf("writing the CPU profile: %w", err))
		}
	}
	return errors.Join(errs...)
}

// connConfig builds the fsm template from the connection flags.
func connConfig(c *cli.Command, mtu int) (fsm.Config, error) {
	// Each flag's own range was checked when the command line was
	// parsed; what is left are the checks across flags and the
	// interface's MTU.
	cfg := fsm.DefaultConfig()
	if c.IsSet("isn") {
		cfg.ISS, cfg.FixedISS = craft.Seq(uint32(c.Int("isn"))), true
	}
	switch mss := c.Int("mss"); {
	case mss != 0:
		cfg.MSS = uint16(mss)
	case mtu > 40:
		cfg.MSS = uint16(min(mtu-40, 65495))
	}
	ws := c.Int("wscale")
	cfg.WindowScale = ws
	w := c.Int("window")
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
	cfg.SendBufferSize = c.Int("sndbuf")
	cfg.SACK = !c.Bool("no-sack")
	cfg.Timestamps = !c.Bool("no-timestamps")
	cfg.NoDelay = !c.Bool("nagle")
	cfg.Congestion = c.String("cc")
	cfg.TimeWait = c.Duration("time-wait")
	if cfg.TimeWait <= 0 {
		cfg.TimeWait = time.Millisecond // "no TIME-WAIT" still passes through the state
	}
	return cfg, nil
}

// parseHostPort parses HOST:PORT (HOST an IPv4 address or a name that
// resolves to one).
func parseHostPort(ctx context.Context, arg string) (netip.AddrPort, error) {
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
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		if lerr != nil || len(addrs) == 0 {
			if lerr == nil {
				lerr = errors.New("no IPv4 address")
			}
			return netip.AddrPort{}, exitFailure(fmt.Errorf("%q: cannot resolve %q: %w", arg, host, lerr))
		}
		addr = addrs[0]
	}
	addr = addr.Unmap()
	if !addr.Is4() {
		return netip.AddrPort{}, usagef("%q: only IPv4 is supported for now", arg)
	}
	if addr.IsUnspecified() || addr.IsMulticast() {
		return netip.AddrPort{}, usagef("%q: %v cannot be a TCP peer", arg, addr)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
