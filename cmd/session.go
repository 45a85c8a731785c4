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

	"github.com/urfave/cli/v2"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/pcapfile"
	"github.com/tcpcraft/tcpcraft/stack"
)

// Flags shared by the commands that talk TCP (connect, listen, send).
func linkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "iface", Aliases: []string{"i"}, Usage: "send and capture on this interface (default: the route's)"},
		&cli.UintFlag{Name: "sport", Aliases: []string{"p"}, Usage: "local port (default: a random port outside ip_local_port_range)"},
		&cli.UintFlag{Name: "ttl", Value: 64, Usage: "IP time to live of sent packets"},
		&cli.StringFlag{Name: "pcap", Usage: "write every segment of the session, both directions, to this pcap `FILE`"},
		&cli.BoolFlag{Name: "json", Usage: "trace as one JSON object per line on stderr"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no trace, only errors"},
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
// (issue 8: 0.38 of the kernel's receiver, 0.50 with 6 MiB, in the lab).
const defaultWindow = 6 << 20

// Flags that shape our end of a connection (connect, listen).
func connFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "isn", Usage: "initial sequence number (default: random, RFC 6528)"},
		&cli.UintFlag{Name: "mss", Usage: "MSS to advertise (default: the interface MTU - 40)"},
		&cli.IntFlag{Name: "wscale", Value: 7, Usage: "window scale shift to offer, 0-14, or -1 for none"},
		&cli.UintFlag{Name: "window", Value: defaultWindow, Usage: "receive buffer, the most we advertise (grows on demand up to this; Linux's own receive buffer grows to 6 MiB or more)"},
		&cli.UintFlag{Name: "sndbuf", Value: 4 << 20, Usage: "send buffer: the most bytes queued, unacknowledged ones included (grows on demand up to this; Linux's tcp_wmem maximum is 4 MiB)"},
		&cli.BoolFlag{Name: "no-sack", Usage: "do not offer SACK-permitted"},
		&cli.BoolFlag{Name: "no-timestamps", Usage: "do not offer timestamps"},
		&cli.BoolFlag{Name: "nagle", Usage: "enable Nagle's algorithm (off by default for interactive use)"},
		&cli.DurationFlag{Name: "time-wait", Value: time.Second, Usage: "how long TIME-WAIT lasts (2*MSL) when we close first"},
		&cli.StringFlag{Name: "cc", Value: fsm.CongestionCubic, Usage: "congestion control: cubic (RFC 9438, as Linux) or reno (NewReno, RFC 5681/6582)"},
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
// open connections before the guard goes (DESIGN.md, the RST guard).
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

// traceLevelOf reads -q/-v.
func traceLevelOf(c *cli.Context) traceLevel {
	switch {
	case c.Bool("quiet"):
		return traceQuiet
	case c.Bool("verbose"):
		return traceVerbose
	}
	return traceNormal
}

// openSession sets up a session; on error nothing is left changed.
func openSession(ctx context.Context, c *cli.Context, spec sessionSpec, makeConfig func(mtu int) (fsm.Config, error)) (s *session, err error) {
	if err := capture.CheckPrivileges(); err != nil {
		return nil, exitFailure(err)
	}
	s = &session{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	start := time.Now()
	// A hidden knob for performance work (scripts/bench.sh, issue 8): a
	// CPU profile of the whole session, for go tool pprof.
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
	s.trace = newTracer(c.App.ErrWriter, traceLevelOf(c), c.Bool("json"), s.pcap, start)
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
	ttl := c.Uint("ttl")
	if ttl == 0 || ttl > 255 {
		return nil, usagef("--ttl %d: must be 1-255", ttl)
	}
	scfg := stack.Config{
		Local:  localAddr,
		TTL:    uint8(ttl),
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
func pickEndpoint(c *cli.Context, spec sessionSpec) (route capture.Route, ifindex int, local netip.AddrPort, err error) {
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
	if p := c.Uint("sport"); p != 0 {
		if p > 65535 {
			return route, 0, local, usagef("--sport %d: not a port (1-65535)", p)
		}
		port = uint16(p)
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
func connConfig(c *cli.Context, mtu int) (fsm.Config, error) {
	cfg := fsm.DefaultConfig()
	if s := c.String("isn"); s != "" {
		v, err := strconv.ParseUint(s, 0, 32)
		if err != nil {
			return cfg, usagef("--isn %q: not a 32-bit number", s)
		}
		cfg.ISS, cfg.FixedISS = craft.Seq(v), true
	}
	switch mss := c.Uint("mss"); {
	case mss > 65535:
		return cfg, usagef("--mss %d: at most 65535", mss)
	case mss != 0:
		cfg.MSS = uint16(mss)
	case mtu > 40:
		cfg.MSS = uint16(min(mtu-40, 65495))
	}
	ws := c.Int("wscale")
	if ws < -1 || ws > 14 {
		return cfg, usagef("--wscale %d: must be 0-14, or -1 for none (RFC 7323 §2.3)", ws)
	}
	cfg.WindowScale = ws
	w := c.Uint("window")
	if w == 0 || w > 1<<30 {
		return cfg, usagef("--window %d: must be 1 to 2^30 bytes", w)
	}
	if ws > 0 && int(w) < 4<<ws {
		// A scaled window field counts in units of 2^ws bytes (RFC 7323
		// §2.3); a buffer below a few units could not be advertised.
		return cfg, usagef("--window %d is too small for --wscale %d: at least %d bytes, or a smaller --wscale", w, ws, 4<<ws)
	}
	cfg.RecvBufferSize = int(w)
	sb := c.Uint("sndbuf")
	if sb < 1024 || sb > 1<<30 {
		return cfg, usagef("--sndbuf %d: must be 1024 to 2^30 bytes", sb)
	}
	// A large send buffer keeps a fast path busy while ACKs are on their
	// way (issue 8: 256 KiB held a bulk upload on a veth to about half
	// the rate 4 MiB gives); the buffer grows only as data is queued, so
	// an idle or interactive connection does not pay for it.
	cfg.SendBufferSize = int(sb)
	cfg.SACK = !c.Bool("no-sack")
	cfg.Timestamps = !c.Bool("no-timestamps")
	cfg.NoDelay = !c.Bool("nagle")
	switch cc := c.String("cc"); cc {
	case fsm.CongestionCubic, fsm.CongestionReno:
		cfg.Congestion = cc
	default:
		return cfg, usagef("--cc %q: want cubic or reno", cc)
	}
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
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		if lerr != nil || len(addrs) == 0 {
			return netip.AddrPort{}, usagef("%q: %q is neither an IPv4 address nor a name that resolves to one", arg, host)
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
