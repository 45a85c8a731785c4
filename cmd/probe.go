package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/probe"
)

// probeSyscallsName is the hidden helper command that executes a script's
// system calls inside the kernel's namespace.
const probeSyscallsName = "probe-syscalls"

// probeCommand is "tcpcraft probe SCRIPT...": packetdrill-style scripts of
// segments to send and segments to expect.
func probeCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:      "probe",
		Usage:     "run packetdrill-style scripts (segments to send, segments to expect) against a kernel peer",
		ArgsUsage: "SCRIPT...",
		Description: "probe runs each script: lines inject segments or expect segments (with don't-care\n" +
			"fields) from the peer, with timing. A script passes when every expectation is met; the\n" +
			"exit code is 1 when any script fails.\n\n" +
			"The language is packetdrill's: times (0.1, +0.1, *, 0.1~0.2, +0...0.2 for a blocking call),\n" +
			"packets (\"< S 0:0(0) win 1000 <mss 1460>\" is sent to the kernel, \"> S. 0:0(0) ack 1 <...>\"\n" +
			"is expected from it; Fast Open's FO and FOEXP options included), system calls (socket,\n" +
			"bind, listen, accept, connect, read, write, send, recv, sendto, recvfrom, sendmsg,\n" +
			"recvmsg, shutdown, close, fcntl, setsockopt, getsockopt, poll, epoll_create, epoll_ctl,\n" +
			"epoll_wait, ioctl, open, pipe, splice, sendfile), `shell lines` and %{ code blocks }%\n" +
			"(assertions over the socket's TCP_INFO and SO_MEMINFO, evaluated in-process; python3 runs what the\n" +
			"evaluator cannot). Sequence numbers are relative to each side's ISN, SYNs absolute.\n\n" +
			"Without --peer-netns or --target each script gets a throwaway network namespace laid\n" +
			"out as packetdrill's: the kernel under test has the tun device tun0 (MTU --mtu), which\n" +
			"tcpcraft holds, with --local_ip (192.168.0.1/16; IPv6 fd3d:0a0b:17d6::1/48) and routes\n" +
			"--remote_ip (192.0.2.1; fd3d:fa7b:d17d::1), tcpcraft's address, through --gateway_ip;\n" +
			"tcpcraft's packets go into tun0 whole, with --mss as GSO packets of that size, as\n" +
			"packetdrill writes them. The kernel's port is 8080 unless the script binds another;\n" +
			"every incoming connection comes from a fresh tcpcraft port. The namespace is removed\n" +
			"afterwards.\n" +
			"`Commands` run in the kernel's namespace, from the script's directory, with\n" +
			"PACKETDRILL_PID set. packetdrill's options (--ip_version=ipv6, --mtu=1520, -D NAME=VALUE,\n" +
			"...) work on the command line and as option lines in scripts (the command line wins),\n" +
			"so the Linux selftests' command lines run with packetdrill replaced by tcpcraft probe.\n\n" +
			"With -v every packet, system call and command is shown on standard error, stamped with\n" +
			"its time since the script's start: a packet sent when it was handed to the kernel, a\n" +
			"packet received when it was captured, a system call when it entered the kernel (a\n" +
			"blocking one also when it returned).\n\n" +
			"Exit codes: 0 all scripts pass; 1 a script failed, including a well-formed line\n" +
			"tcpcraft cannot play (reported as FAIL with the line and the reason: a UDP packet, an\n" +
			"unsupported system call or option); 2 a script has a syntax error (nothing is run\n" +
			"then) or the command line is wrong (an unknown flag, a bad value).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "peer-netns", Usage: "the kernel under test is the one of this existing network `NAMESPACE`; tcpcraft stays where it was started"},
			&cli.StringFlag{Name: "target", Usage: "probe a server at `HOST:PORT` with packets only (no system call or shell lines)"},
			&durationFlag{Name: "tolerance", Value: probe.DefaultTolerance, Usage: "how far from its script time an event may happen (also at least 12.5% of the time since the previous event)", Config: durationRules{positive: true}},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show every packet, system call and command on standard error"},
			&cli.StringFlag{Name: "ip_version", Usage: "packetdrill's option: `VERSION` ipv4, ipv6 or ipv4-mapped-ipv6 (IPv4 on the wire, AF_INET6 sockets)", DefaultText: "ipv4"},
			&cli.StringFlag{Name: "local_ip", Usage: "packetdrill's option: the kernel under test's `ADDRESS`", DefaultText: "192.168.0.1, fd3d:0a0b:17d6::1"},
			&cli.StringFlag{Name: "remote_ip", Usage: "packetdrill's option: tcpcraft's `ADDRESS`", DefaultText: "192.0.2.1, fd3d:fa7b:d17d::1"},
			&cli.StringFlag{Name: "gateway_ip", Usage: "packetdrill's option: the `ADDRESS` the kernel routes --remote_ip through", DefaultText: "192.168.0.1, fd3d:0a0b:17d6:8888::1"},
			&cli.StringFlag{Name: "netmask_ip", Usage: "packetdrill's option: the `NETMASK` of --local_ip's subnet (IPv4; IPv6 is /48)", DefaultText: "255.255.0.0"},
			&cli.StringFlag{Name: "mtu", Usage: "packetdrill's option: the MTU of the kernel's interface tun0 in `BYTES`", DefaultText: "1500"},
			&cli.StringFlag{Name: "mss", Usage: "packetdrill's option: inbound segments larger than the MTU are cut to this many `BYTES`"},
			&cli.StringFlag{Name: "tolerance_usecs", Usage: "packetdrill's option: timing tolerance in `MICROSECONDS` (never below --tolerance)"},
			&cli.StringFlag{Name: "tolerance_percent", Usage: "packetdrill's option: tolerance as a `PERCENT` of the time since the previous event", DefaultText: "12.5"},
			&cli.StringFlag{Name: "bind_port", Usage: "packetdrill's option: the kernel's `PORT` for bind(..., ...)", DefaultText: "8080"},
			&cli.StringFlag{Name: "connect_port", Usage: "packetdrill's option: tcpcraft's `PORT` for connect(..., ...)", DefaultText: "8080"},
			&cli.StringFlag{Name: "tcp_ts_tick_usecs", Usage: "packetdrill's option: check outbound TS val at one tick per `MICROSECONDS`"},
			&cli.BoolFlag{Name: "tcp_ts_ecr_scaled", Usage: "packetdrill's option, accepted: inbound TS ecr is always mapped"},
			&cli.BoolFlag{Name: "strict_segments", Usage: "packetdrill's option, accepted: segments are always matched by byte range"},
			&cli.BoolFlag{Name: "send_omit_free", Usage: "packetdrill's option, accepted: no effect"},
			&cli.StringSliceFlag{Name: "define", Aliases: []string{"D"}, Usage: "`NAME=VALUE`: the word NAME in a script reads as VALUE (packetdrill's -D; repeatable)"},
		},
		Action: runProbe,
	},
		example{"run a script against a fresh kernel in throwaway namespaces (packetdrill x.pkt)", "tcpcraft probe handshake.pkt"},
		example{"several scripts, showing every packet and system call", "tcpcraft probe -v tests/*.pkt"},
		example{"against the kernel of an existing namespace", "tcpcraft probe --peer-netns tcpcraft-server listen.pkt"},
		example{"packets only, against a running server", "tcpcraft probe --target 10.0.2.20:80 syn-ack.pkt"},
		example{"on a loaded machine, with a looser timing tolerance", "tcpcraft probe --tolerance 0.05 timing.pkt"},
	)
}

// probeSyscallsCommand is the hidden helper "tcpcraft probe-syscalls": it
// runs inside the kernel's namespace (started by probe with `ip netns
// exec`) and executes system calls it reads as JSON lines on stdin,
// answering with JSON lines on stdout.
func probeSyscallsCommand() *cli.Command {
	return &cli.Command{
		Name:   probeSyscallsName,
		Usage:  "internal: execute tcpcraft probe's system calls (JSON lines on stdin/stdout)",
		Hidden: true,
		Action: func(_ context.Context, c *cli.Command) error {
			if err := noArgs(c); err != nil {
				return err
			}
			// Inherited from probe already; set again for a
			// helper started some other way (no error: probe
			// says it when it has none).
			_ = probe.SetRealtimeScheduling()
			return probe.ServeHelper(stdin(c), stdout(c))
		},
	}
}

// probeMode says where scripts run.
type probeMode struct {
	peerNS string
	target netip.AddrPort
}

func (m probeMode) packetsOnly() bool { return m.target.IsValid() }

// probeSettingFlags are packetdrill's options, in the order they are
// applied (after the script's own option lines).
var probeSettingFlags = []string{"ip_version", "local_ip", "remote_ip", "gateway_ip", "netmask_ip",
	"mtu", "mss", "tolerance_usecs", "tolerance_percent", "bind_port", "connect_port",
	"tcp_ts_tick_usecs", "tcp_ts_ecr_scaled", "strict_segments", "send_omit_free"}

// probeSettings collects packetdrill's options from the command line and
// checks them as a script's option lines are checked.
func probeSettings(c *cli.Command) ([]probe.SettingArg, map[string]string, error) {
	var args []probe.SettingArg
	var check probe.Settings
	for _, name := range probeSettingFlags {
		if !flagIsSet(c, name) {
			continue
		}
		a := probe.SettingArg{Name: name}
		if _, isBool := map[string]bool{"tcp_ts_ecr_scaled": true, "strict_segments": true, "send_omit_free": true}[name]; !isBool {
			a.Value = flagString(c, name)
		}
		if err := check.Set(a.Name, a.Value); err != nil {
			return nil, nil, exitUsage(err)
		}
		args = append(args, a)
	}
	for _, d := range flagStringSlice(c, "define") {
		if err := check.Set("define", d); err != nil {
			return nil, nil, exitUsage(fmt.Errorf("-D %s: want NAME=VALUE", d))
		}
		args = append(args, probe.SettingArg{Name: "define", Value: d})
	}
	if _, _, _, err := check.Addrs(); err != nil {
		return nil, nil, exitUsage(err)
	}
	return args, check.Defines, nil
}

func runProbe(ctx context.Context, c *cli.Command) error {
	if c.NArg() == 0 {
		return usagef("want at least one SCRIPT")
	}
	settings, defines, err := probeSettings(c)
	if err != nil {
		return err
	}
	tol := flagDuration(c, "tolerance")
	var mode probeMode
	mode.peerNS = flagString(c, "peer-netns")
	if t := flagString(c, "target"); t != "" {
		if mode.peerNS != "" {
			return usagef("give --peer-netns or --target, not both")
		}
		var err error
		if mode.target, err = parseHostPort(ctx, t); err != nil {
			return err
		}
	}

	if mode.peerNS != "" || mode.packetsOnly() {
		for _, a := range settings {
			if a.Name == "ip_version" && a.Value != "ipv4" {
				return usagef("--ip_version=%s needs the namespaces probe makes itself (not with --peer-netns or --target)", a.Value)
			}
		}
	}
	// Parse and check every script before anything changes on the system.
	scripts, err := loadScripts(c.Args().Slice(), mode, defines)
	if err != nil {
		return err
	}
	if err := capture.CheckPrivileges(); err != nil {
		return exitFailure(err)
	}
	if mode.peerNS == "" && !mode.packetsOnly() {
		if err := lab.CheckPrivileges(); err != nil {
			return exitFailure(err)
		}
		// Namespaces of runs killed before their clean-up (SIGKILL).
		removed, err := probe.SweepStale(ctx)
		for _, ns := range removed {
			fmt.Fprintf(stderr(c), "removed namespace %s left by a killed tcpcraft probe\n", ns)
		}
		if err != nil {
			return exitFailure(err)
		}
	}
	cfg := probe.Config{Tolerance: tol, Args: settings}
	if flagBool(c, "verbose") {
		cfg.Verbose = stderr(c)
	}
	helper, err := helperCommand()
	if err != nil {
		return exitFailure(err)
	}
	// packetdrill's scheduling: SCHED_RR at the lowest priority, so that
	// events are not late behind other work on a busy machine; the helper
	// process and shell commands inherit it. Without it only timing
	// suffers.
	if err := probe.SetRealtimeScheduling(); err != nil && cfg.Verbose != nil {
		fmt.Fprintf(cfg.Verbose, "tcpcraft probe: no real-time scheduling (%v): events may be late on a busy machine\n", err)
	}
	failed := 0
	for _, ls := range scripts {
		ok, err := runOneScript(ctx, stdout(c), stderr(c), ls, mode, cfg, helper)
		if err != nil {
			return err
		}
		if !ok {
			failed++
		}
	}
	if failed > 0 {
		return exitFailure(fmt.Errorf("%d of %d scripts failed", failed, len(scripts)))
	}
	return nil
}

// loadedScript is a parsed script, or the reason it cannot run.
type loadedScript struct {
	path   string
	script *probe.Script
	cannot error // a *probe.ScriptError: reported as FAIL without running
}

// loadScripts parses and validates the scripts. Syntax errors (and lines
// the mode forbids) are usage errors: all of them are reported together.
func loadScripts(paths []string, mode probeMode, defines map[string]string) ([]loadedScript, error) {
	var scripts []loadedScript
	var problems []string
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		s, err := probe.ParseDefines(path, src, defines)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		ls := loadedScript{path: path, script: s}
		var se *probe.ScriptError
		if err := probe.Validate(s, mode.packetsOnly()); errors.As(err, &se) && se.ModeForbids {
			problems = append(problems, err.Error())
			continue
		} else if err != nil {
			ls.cannot = err
		}
		scripts = append(scripts, ls)
	}
	if len(problems) > 0 {
		return nil, exitUsage(errors.New(strings.Join(problems, "\n")))
	}
	return scripts, nil
}

// helperCommand is the command that starts the system-call helper: this
// very executable.
func helperCommand() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding tcpcraft's own executable for the system call helper: %w", err)
	}
	return []string{exe, probeSyscallsName}, nil
}

// runOneScript sets up the script's environment, runs it, tears the
// environment down and prints PASS or FAIL. A non-nil error ends the whole
// run (the environment could not be set up, or the run was interrupted).
func runOneScript(ctx context.Context, out, errOut io.Writer, ls loadedScript, mode probeMode, cfg probe.Config, helper []string) (bool, error) {
	if ls.cannot != nil {
		fmt.Fprintf(out, "FAIL %v\n", ls.cannot)
		return false, nil
	}
	started := time.Now()
	// The script's option lines, then the command line's: they choose
	// the environment (IP version, addresses, MTU).
	set, err := probe.ApplyScript(ls.script, cfg.Args)
	if err == nil {
		_, _, _, err = set.Addrs()
	}
	if err != nil {
		fmt.Fprintf(out, "FAIL %s: %v\n", ls.path, err)
		return false, nil
	}
	if set.Verbose && cfg.Verbose == nil {
		cfg.Verbose = errOut // a --verbose option line in the script
	}
	var env *probe.Env
	switch {
	case mode.packetsOnly():
		env, err = probe.NewTargetEnv(ctx, mode.target)
	case mode.peerNS != "":
		env, err = probe.NewPeerEnv(ctx, mode.peerNS, netip.Addr{}, helper)
	default:
		env, err = probe.NewPacketdrillEnv(ctx, helper, set)
	}
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, exitFailure(fmt.Errorf("%s: setting up: %w", ls.path, err))
	}
	if cfg.Verbose != nil {
		fmt.Fprintf(cfg.Verbose, "%s: %s; tcpcraft at %v\n", ls.path, env.Describe, env.Local)
	}
	runErr := probe.Run(ctx, ls.script, env, cfg)
	elapsed := time.Since(started).Seconds()
	closeErr := env.Close()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	passed := false
	var failure *probe.Failure
	var scriptErr *probe.ScriptError
	switch {
	case runErr == nil:
		fmt.Fprintf(out, "PASS %s (%.2fs)\n", ls.path, elapsed)
		passed = true
	case errors.As(runErr, &failure):
		fmt.Fprintf(out, "FAIL %s (%.2fs)\n", failure, elapsed)
		for _, d := range failure.Details {
			fmt.Fprintf(out, "  %s\n", d)
		}
	case errors.As(runErr, &scriptErr):
		fmt.Fprintf(out, "FAIL %v\n", scriptErr)
	default:
		return false, exitFailure(errors.Join(fmt.Errorf("%s: %w", ls.path, runErr), closeErr))
	}
	if closeErr != nil {
		return false, exitFailure(fmt.Errorf("%s: cleaning up: %w", ls.path, closeErr))
	}
	return passed, nil
}
