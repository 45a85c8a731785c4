package probe

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Settings are packetdrill's run options: the same names and values on
// tcpcraft probe's command line (--ip_version=ipv6) and in a script's
// option lines (--mss=1000 before the first event). As in packetdrill, a
// script's lines are applied first and the command line overrides them.
type Settings struct {
	// IPVersion is "ipv4", "ipv6" or "ipv4-mapped-ipv6" ("" = ipv4).
	IPVersion string
	// LocalIP is the kernel under test's address, RemoteIP tcpcraft's
	// (packetdrill's remote end), GatewayIP the next hop the kernel
	// routes RemoteIP through, NetmaskIP the IPv4 netmask of LocalIP's
	// subnet. Invalid means packetdrill's default (DefaultAddrs).
	LocalIP, RemoteIP, GatewayIP netip.Addr
	// RemotePrefix is RemoteIP's prefix length as written (192.0.2.1/24);
	// -1 means a host route.
	RemotePrefix int
	NetmaskIP    netip.Addr
	// MTU of the kernel's interface (0: 1500) and MSS, the segment size
	// an inbound segment larger than the MTU is cut to (0: by the MTU).
	MTU, MSS int
	// Tolerance (--tolerance_usecs) and TolerancePercent
	// (--tolerance_percent, when HasPercent).
	Tolerance        time.Duration
	TolerancePercent float64
	HasPercent       bool
	// BindPort is the kernel's port for bind(..., ...) and ConnectPort the
	// port connect(..., ...) reaches tcpcraft on (both 8080 by default).
	BindPort, ConnectPort uint16
	// TSTick is --tcp_ts_tick_usecs: outbound TS val is checked.
	TSTick time.Duration
	// Defines are -D NAME=VALUE: a word NAME in a script reads as VALUE.
	Defines map[string]string
	Verbose bool
}

// packetdrill's option names tcpcraft knows, with what they do here.
// Options marked "no effect" are accepted and ignored (they change how
// packetdrill works internally, not what a script means).
var settingHelp = map[string]string{
	"ip_version":        "ipv4, ipv6 or ipv4-mapped-ipv6",
	"local_ip":          "the kernel under test's address (default 192.168.0.1, fd3d:0a0b:17d6::1)",
	"remote_ip":         "tcpcraft's address (default 192.0.2.1, fd3d:fa7b:d17d::1)",
	"gateway_ip":        "the next hop of the kernel's route to --remote_ip",
	"netmask_ip":        "the netmask of --local_ip's subnet (IPv4; default 255.255.0.0)",
	"mtu":               "the MTU of the kernel's interface tun0 (default 1500)",
	"mss":               "the segment size inbound segments larger than the MTU are cut to",
	"tolerance_usecs":   "timing tolerance in microseconds (at least --tolerance)",
	"tolerance_percent": "tolerance as a percentage of the time since the previous event",
	"bind_port":         "the kernel's port for bind(..., ...) (default 8080)",
	"connect_port":      "tcpcraft's port for connect(..., ...) (default 8080)",
	"tcp_ts_tick_usecs": "check outbound TS val, one tick per N microseconds",
	"tcp_ts_ecr_scaled": "no effect (inbound TS ecr is always mapped)",
	"strict_segments":   "no effect (segments are always matched by byte range)",
	"send_omit_free":    "no effect",
	"define":            "NAME=VALUE: a word NAME in the script reads as VALUE (-D)",
	"verbose":           "show every packet, system call and command",
	"speed":             "no effect",
	"dry_run":           "not supported",
	"non_fatal":         "not supported",
	"wire_client":       "not supported",
	"wire_server":       "not supported",
	"init_scripts":      "not supported",
	"so_filename":       "not supported",
	"is_anyip":          "not supported",
	"code_command":      "not supported",
	"code_format":       "not supported",
	"code_sockopt":      "not supported",
}

// flagOnly are the options that take no value.
var flagOnly = map[string]bool{"tcp_ts_ecr_scaled": true, "strict_segments": true,
	"send_omit_free": true, "verbose": true, "dry_run": true, "wire_client": true, "wire_server": true, "is_anyip": true}

// SettingNames returns the option names Set accepts, sorted.
func SettingNames() []string {
	var names []string
	for n, h := range settingHelp {
		if !strings.HasPrefix(h, "not supported") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Set applies one option, "--name=value" without the dashes, checking the
// value as packetdrill does. An unknown or unsupported name is an error.
func (s *Settings) Set(name, value string) error {
	help, ok := settingHelp[name]
	if !ok {
		return fmt.Errorf("unknown option --%s (known: %s)", name, strings.Join(SettingNames(), ", "))
	}
	if strings.HasPrefix(help, "not supported") {
		return fmt.Errorf("option --%s is not supported by tcpcraft probe", name)
	}
	bad := func(want string) error { return fmt.Errorf("--%s=%s: want %s", name, value, want) }
	port := func() (uint16, error) {
		v, err := strconv.ParseUint(value, 10, 16)
		if err != nil || v == 0 {
			return 0, bad("a port 1-65535")
		}
		return uint16(v), nil
	}
	addr := func() (netip.Addr, error) {
		a, err := netip.ParseAddr(value)
		if err != nil {
			return a, bad("an IP address")
		}
		return a, nil
	}
	var err error
	switch name {
	case "ip_version":
		switch value {
		case "ipv4", "ipv6", "ipv4-mapped-ipv6":
			s.IPVersion = value
		default:
			return bad("ipv4, ipv6 or ipv4-mapped-ipv6")
		}
	case "local_ip":
		s.LocalIP, err = addr()
	case "gateway_ip":
		s.GatewayIP, err = addr()
	case "netmask_ip":
		s.NetmaskIP, err = addr()
		if err == nil {
			if !s.NetmaskIP.Is4() {
				return bad("an IPv4 netmask")
			}
			if _, e := netmaskBits(s.NetmaskIP); e != nil {
				return bad("a netmask (255.255.0.0)")
			}
		}
	case "remote_ip":
		a, p, cut := strings.Cut(value, "/")
		s.RemotePrefix = -1
		if s.RemoteIP, err = netip.ParseAddr(a); err != nil {
			return bad("an IP address, optionally with a prefix length (192.0.2.1/24)")
		}
		if cut {
			n, e := strconv.Atoi(p)
			if e != nil || n < 0 || n > s.RemoteIP.BitLen() {
				return bad("an IP address, optionally with a prefix length (192.0.2.1/24)")
			}
			s.RemotePrefix = n
		}
	case "mtu":
		v, e := strconv.Atoi(value)
		if e != nil || v < 1280 || v > 65535 {
			return bad("an MTU of 1280 to 65535")
		}
		s.MTU = v
	case "mss":
		v, e := strconv.Atoi(value)
		if e != nil || v < 1 || v > 65535 {
			return bad("a segment size of 1 to 65535")
		}
		s.MSS = v
	case "tolerance_usecs":
		v, e := strconv.ParseInt(value, 10, 64)
		if e != nil || v <= 0 || v > 1e9 {
			return bad("a positive number of microseconds")
		}
		s.Tolerance = time.Duration(v) * time.Microsecond
	case "tolerance_percent":
		v, e := strconv.ParseFloat(value, 64)
		if e != nil || v < 0 || v > 100 {
			return bad("a percentage 0-100")
		}
		s.TolerancePercent, s.HasPercent = v, true
	case "tcp_ts_tick_usecs":
		v, e := strconv.Atoi(value)
		if e != nil || v < 0 || v > 1000000 {
			return bad("0 to 1000000 microseconds")
		}
		s.TSTick = time.Duration(v) * time.Microsecond
	case "bind_port":
		s.BindPort, err = port()
	case "connect_port":
		s.ConnectPort, err = port()
	case "define":
		k, v, ok := strings.Cut(value, "=")
		if !ok || k == "" {
			return bad("NAME=VALUE")
		}
		if s.Defines == nil {
			s.Defines = map[string]string{}
		}
		s.Defines[k] = v
	case "verbose":
		s.Verbose = true
	case "speed":
		if _, e := strconv.ParseUint(value, 10, 32); e != nil {
			return bad("a speed in Mbps")
		}
	}
	return err
}

// checkScriptOption checks an option line's form: a value where one is
// needed and none where none is allowed, as packetdrill.
func checkScriptOption(o ScriptOption) error {
	if _, ok := settingHelp[o.Name]; !ok {
		return fmt.Errorf("option --%s unknown (known: %s)", o.Name, strings.Join(SettingNames(), ", "))
	}
	if flagOnly[o.Name] && o.Value != "" {
		return fmt.Errorf("option --%s forbids an argument", o.Name)
	}
	if !flagOnly[o.Name] && o.Value == "" {
		return fmt.Errorf("option --%s requires an argument", o.Name)
	}
	var s Settings
	return s.Set(o.Name, o.Value)
}

// ApplyScript applies a script's option lines to a copy of s — the
// script's lines first, then cmdline (the command line's own settings,
// which override them, as packetdrill's do). It returns a *ScriptError
// naming the line of a bad option.
func ApplyScript(sc *Script, cmdline []SettingArg) (Settings, error) {
	var s Settings
	for _, o := range sc.Options {
		if err := checkScriptOption(o); err != nil {
			return s, &ScriptError{Path: sc.Path, Pos: o.Pos, Msg: err.Error()}
		}
		if err := s.Set(o.Name, o.Value); err != nil {
			return s, &ScriptError{Path: sc.Path, Pos: o.Pos, Msg: err.Error()}
		}
	}
	for _, a := range cmdline {
		if err := s.Set(a.Name, a.Value); err != nil {
			return s, err
		}
	}
	return s, nil
}

// SettingArg is one option as the command line gave it.
type SettingArg struct{ Name, Value string }

func netmaskBits(m netip.Addr) (int, error) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&(1<<31) != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask %v is not contiguous", m)
	}
	return n, nil
}

// Defaults of the addresses, packetdrill's (config.c; the kernel's
// selftests give the same ones on the command line).
var (
	DefaultLocal4   = netip.MustParseAddr("192.168.0.1")
	DefaultRemote4  = netip.MustParseAddr("192.0.2.1")
	DefaultNetmask4 = netip.MustParseAddr("255.255.0.0")
	DefaultLocal6   = netip.MustParseAddr("fd3d:a0b:17d6::1")
	DefaultRemote6  = netip.MustParseAddr("fd3d:fa7b:d17d::1")
	DefaultGateway6 = netip.MustParseAddr("fd3d:a0b:17d6:8888::1")
)

// Family is 6 for --ip_version=ipv6, else 4 (ipv4-mapped-ipv6 puts IPv4
// on the wire).
func (s Settings) Family() int {
	if s.IPVersion == "ipv6" {
		return 6
	}
	return 4
}

// Addrs returns the kernel's address and its prefix, tcpcraft's address
// and the gateway, with packetdrill's defaults filled in, and checks that
// they fit the IP version.
func (s Settings) Addrs() (local netip.Prefix, remote, gateway netip.Addr, err error) {
	six := s.Family() == 6
	l, r, g := s.LocalIP, s.RemoteIP, s.GatewayIP
	if !l.IsValid() {
		l = map[bool]netip.Addr{false: DefaultLocal4, true: DefaultLocal6}[six]
	}
	if !r.IsValid() {
		r = map[bool]netip.Addr{false: DefaultRemote4, true: DefaultRemote6}[six]
	}
	if !g.IsValid() {
		// packetdrill's IPv4 gateway is the local address's .1; IPv6's
		// is in the local /48.
		g = map[bool]netip.Addr{false: DefaultLocal4, true: DefaultGateway6}[six]
	}
	for _, a := range []struct {
		name string
		a    netip.Addr
	}{{"local_ip", l}, {"remote_ip", r}, {"gateway_ip", g}} {
		if a.a.Is4() == six || a.a.Is4In6() {
			return local, r, g, fmt.Errorf("--%s=%v does not fit --ip_version=%s", a.name, a.a, map[bool]string{false: "ipv4", true: "ipv6"}[six])
		}
	}
	bits := 48 // packetdrill's IPv6 prefix length
	if !six {
		m := s.NetmaskIP
		if !m.IsValid() {
			m = DefaultNetmask4
		}
		if bits, err = netmaskBits(m); err != nil {
			return local, r, g, err
		}
	}
	local = netip.PrefixFrom(l, bits)
	if local.Contains(r) {
		return local, r, g, fmt.Errorf("--remote_ip=%v is inside the kernel's subnet %v: it must be remote", r, local.Masked())
	}
	return local, r, g, nil
}

// ipLevelSymbols are the socket option levels and names the packetdrill
// suites reach through -D (CMSG_LEVEL_IP=SOL_IP or SOL_IPV6,
// CMSG_TYPE_RECVERR=IP_RECVERR or IPV6_RECVERR) and IPv6 scripts use.
var ipLevelSymbols = map[string]int64{
	"SOL_IPV6": unix.SOL_IPV6, "IP_RECVERR": unix.IP_RECVERR, "IPV6_RECVERR": unix.IPV6_RECVERR,
	"IPV6_TCLASS": unix.IPV6_TCLASS, "IPV6_V6ONLY": unix.IPV6_V6ONLY, "IPV6_MTU_DISCOVER": unix.IPV6_MTU_DISCOVER,
	"IPV6_UNICAST_HOPS": unix.IPV6_UNICAST_HOPS,
}
