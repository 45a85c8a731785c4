package probe

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ScriptError is a script that parses but cannot be run as written: an
// unsupported system call or option, or a line that the chosen mode does
// not allow. Pos is where.
type ScriptError struct {
	Path string
	Pos  Pos
	Msg  string
	// ModeForbids is set when the script is fine but the mode (--target,
	// packets only) does not allow the line: a usage error.
	ModeForbids bool
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Path, e.Pos.Line, e.Pos.Col, e.Msg)
}

// syscallArity is how many arguments each supported call takes.
var syscallArity = map[string][]int{
	"socket": {3}, "bind": {3}, "listen": {2}, "accept": {3}, "connect": {3},
	"read": {3}, "write": {3}, "send": {4}, "recv": {4}, "sendto": {6}, "recvfrom": {6},
	"shutdown": {2}, "close": {1}, "fcntl": {2, 3}, "setsockopt": {5}, "getsockopt": {5},
}

// Options scripts may set with --name=value lines.
var knownOptions = map[string]string{
	"tolerance_usecs":    "timing tolerance in microseconds (the larger of it and --tolerance is used)",
	"tolerance_percent":  "tolerance as a percentage of the time since the previous event",
	"ip_version":         "ipv4 only",
	"local_ip":           "the script's address for the kernel under test (mapped to its real address)",
	"remote_ip":          "the script's address for tcpcraft's end (mapped to its real address)",
	"tcp_ts_tick_usecs":  "check outbound TS val, one tick per N microseconds",
	"tcp_ts_ecr_scaled":  "accepted (inbound TS ecr is always mapped)",
	"strict_segments":    "accepted (segments are always matched by byte range)",
	"bind_port":          "the kernel's port for bind(..., ...) (default 8080)",
	"non_fatal":          "not supported",
	"wire_client":        "not supported",
	"wire_server":        "not supported",
	"mss":                "not supported (the path's MTU decides)",
	"mtu":                "not supported (the path's MTU decides)",
	"speed":              "not supported",
	"init_scripts":       "not supported",
	"define":             "not supported",
	"so_filename":        "not supported",
	"persistent_tun_dev": "not supported",
}

// Validate checks that a parsed script can run: only supported system
// calls, with the right number of arguments, and only supported options.
// packetsOnly (--target) also refuses system calls and shell lines. It
// returns nil or a *ScriptError.
func Validate(s *Script, packetsOnly bool) error {
	fail := func(p Pos, format string, args ...any) error {
		return &ScriptError{Path: s.Path, Pos: p, Msg: fmt.Sprintf(format, args...)}
	}
	forbid := func(p Pos, format string, args ...any) error {
		return &ScriptError{Path: s.Path, Pos: p, Msg: fmt.Sprintf(format, args...), ModeForbids: true}
	}
	if s.Unsupported != nil {
		return s.Unsupported
	}
	for _, o := range s.Options {
		desc, ok := knownOptions[o.Name]
		if !ok || strings.HasPrefix(desc, "not supported") {
			return fail(o.Pos, "option --%s is not supported (supported: tolerance_usecs, tolerance_percent, ip_version=ipv4, local_ip, remote_ip, bind_port, tcp_ts_tick_usecs, tcp_ts_ecr_scaled, strict_segments)", o.Name)
		}
		if _, err := parseOptionValue(o); err != nil {
			return fail(o.Pos, "%v", err)
		}
	}
	if packetsOnly {
		for _, sh := range []*Shell{s.Init, s.Cleanup} {
			if sh != nil {
				return forbid(sh.Pos, "shell lines need a kernel to run on; with --target a script may only have packet lines")
			}
		}
	}
	for _, ev := range s.Events {
		switch {
		case ev.Syscall != nil:
			sc := ev.Syscall
			if packetsOnly {
				return forbid(sc.NamePos, "system call %s: with --target a script may only have packet lines (the kernel under test is not ours to drive)", sc.Name)
			}
			arity, ok := syscallArity[sc.Name]
			if !ok {
				return fail(sc.NamePos, "unsupported system call %s (supported: %s)", sc.Name, strings.Join(SupportedSyscalls(), ", "))
			}
			good := false
			for _, n := range arity {
				good = good || n == len(sc.Args)
			}
			if !good {
				return fail(sc.NamePos, "%s takes %s arguments, not %d", sc.Name, joinInts(arity, " or "), len(sc.Args))
			}
		case ev.Shell != nil && packetsOnly:
			return forbid(ev.Shell.Pos, "shell lines need a kernel to run on; with --target a script may only have packet lines")
		case ev.Code != nil && packetsOnly:
			return forbid(ev.Pos, "code blocks read the kernel's TCP_INFO; with --target a script may only have packet lines")
		case ev.Packet != nil && ev.Packet.SrcPort != 0 && ev.Packet.Dir == Inbound:
			return fail(ev.Packet.Pos, "an explicit source port on an inbound packet is not supported (tcpcraft chooses its own port)")
		}
	}
	return nil
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

// scriptSettings are the effects of a script's option lines.
type scriptSettings struct {
	tolerance        time.Duration
	tolerancePercent float64
	hasPercent       bool
	localIP          string
	remoteIP         string
	bindPort         uint16
	tsTick           time.Duration
}

func parseOptionValue(o ScriptOption) (scriptSettings, error) {
	var s scriptSettings
	num := func() (float64, error) {
		v, err := strconv.ParseFloat(o.Value, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("--%s=%s: want a non-negative number", o.Name, o.Value)
		}
		return v, nil
	}
	switch o.Name {
	case "tolerance_usecs":
		v, err := num()
		s.tolerance = time.Duration(v) * time.Microsecond
		return s, err
	case "tolerance_percent":
		v, err := num()
		s.tolerancePercent, s.hasPercent = v, true
		return s, err
	case "tcp_ts_tick_usecs":
		v, err := num()
		s.tsTick = time.Duration(v) * time.Microsecond
		return s, err
	case "ip_version":
		if o.Value != "ipv4" {
			return s, fmt.Errorf("--ip_version=%s: only ipv4 is supported", o.Value)
		}
	case "local_ip":
		s.localIP = o.Value
	case "remote_ip":
		s.remoteIP = o.Value
	case "bind_port":
		v, err := strconv.ParseUint(o.Value, 10, 16)
		if err != nil || v == 0 {
			return s, fmt.Errorf("--bind_port=%s: want a port 1-65535", o.Value)
		}
		s.bindPort = uint16(v)
	}
	return s, nil
}
