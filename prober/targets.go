package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// MaxTargets bounds the (address, port) pairs of one run: each holds a
// few dozen bytes of state, and a run this large at 20,000 probes a second
// already takes almost two minutes.
const MaxTargets = 1 << 21

// PortRange is an inclusive range of ports, Low <= High, both non-zero.
type PortRange struct{ Low, High uint16 }

// Len is the number of ports in r.
func (r PortRange) Len() int { return int(r.High) - int(r.Low) + 1 }

// TargetSpec is one HOST:PORTS argument: hosts (an address, a prefix, or a
// name still to resolve) and the ports to probe on each.
type TargetSpec struct {
	// Text is the argument as given.
	Text string
	// Prefix holds the addresses: a single address as a /32 or /128,
	// or a CIDR prefix. Invalid when Name is set.
	Prefix netip.Prefix
	// Name is a host name to resolve (Resolve takes its first address,
	// IPv4 before IPv6), or "".
	Name string
	// Ports are the port ranges, in the order given.
	Ports []PortRange
}

// Hosts is the number of addresses Prefix covers (1 for a name), capped
// at MaxTargets+1 so that a huge IPv6 prefix does not overflow.
func (s TargetSpec) Hosts() int {
	if s.Name != "" || !s.Prefix.IsValid() {
		return 1
	}
	bits := s.Prefix.Addr().BitLen() - s.Prefix.Bits()
	if bits > 21 {
		return MaxTargets + 1
	}
	return 1 << bits
}

// PortCount is the number of ports listed (a port listed twice counts
// twice; Expand keeps one).
func (s TargetSpec) PortCount() int {
	n := 0
	for _, r := range s.Ports {
		n += r.Len()
	}
	return n
}

// ErrNoPort is wrapped by ParseTarget's error for an argument without
// ":PORTS", which a caller may answer with a hint.
var ErrNoPort = errors.New("no port")

// ParseTarget reads one target argument:
//
//	HOST:PORTS
//
// HOST is an IPv4 address (10.0.2.20), an IPv4 prefix (10.0.2.0/28), a
// host name (server.example), or an IPv6 address or prefix in brackets
// ([fd00:2::20], [fd00:2::/120]). PORTS is a port (80), a range
// (1-1024), or a comma-separated list of both (22,80,443-445). Nothing is
// resolved here: a name stays a name.
func ParseTarget(s string) (TargetSpec, error) {
	spec := TargetSpec{Text: s}
	fail := func(format string, args ...any) (TargetSpec, error) {
		return TargetSpec{}, fmt.Errorf("target %q: %s", s, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return fail("empty")
	}
	var host, ports string
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return fail("no ] after the IPv6 address")
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest == "" {
			return TargetSpec{}, fmt.Errorf("target %q: %w: want [ADDRESS]:PORTS", s, ErrNoPort)
		}
		if !strings.HasPrefix(rest, ":") {
			return fail("want : and the ports after ]")
		}
		ports = rest[1:]
		if !strings.Contains(host, ":") {
			return fail("brackets are for IPv6 addresses; write an IPv4 address or a name without them")
		}
	} else {
		i := strings.LastIndex(s, ":")
		if i < 0 {
			return TargetSpec{}, fmt.Errorf("target %q: %w: want HOST:PORTS, e.g. %s:80", s, ErrNoPort, s)
		}
		host, ports = s[:i], s[i+1:]
		if strings.Contains(host, ":") {
			return fail("an IPv6 address goes in brackets: [ADDRESS]:PORTS")
		}
	}
	if host == "" {
		return fail("no host before the ports")
	}
	var err error
	if spec.Prefix, spec.Name, err = parseHost(host); err != nil {
		return fail("%v", err)
	}
	if ports == "" {
		return TargetSpec{}, fmt.Errorf("target %q: %w after the colon: want a port, a range 1-1024 or a list 22,80,443-445", s, ErrNoPort)
	}
	if spec.Ports, err = ParsePorts(ports); err != nil {
		return fail("%v", err)
	}
	if n := spec.Hosts() * spec.PortCount(); n > MaxTargets || spec.Hosts() > MaxTargets {
		return fail("%s addresses × %d ports is more than %d probes' targets; split the run", hostCount(spec), spec.PortCount(), MaxTargets)
	}
	return spec, nil
}

func hostCount(s TargetSpec) string {
	if h := s.Hosts(); h <= MaxTargets {
		return strconv.Itoa(h)
	}
	return "2^" + strconv.Itoa(s.Prefix.Addr().BitLen()-s.Prefix.Bits())
}

// parseHost reads an address, a prefix or a host name.
func parseHost(host string) (netip.Prefix, string, error) {
	if strings.Contains(host, "/") {
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return netip.Prefix{}, "", fmt.Errorf("%q is not an address prefix (10.0.2.0/28, fd00:2::/120)", host)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, "", errors.New("link-local IPv6 addresses with a zone are not supported")
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, "", fmt.Errorf("%q reaches beyond IPv4-mapped addresses", host)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), "", nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, "", errors.New("link-local IPv6 addresses with a zone are not supported")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	if !validHostName(host) {
		return netip.Prefix{}, "", fmt.Errorf("%q is neither an address nor a host name", host)
	}
	return netip.Prefix{}, strings.TrimSuffix(host, "."), nil
}

// validHostName reports whether s is a DNS host name (RFC 1123 §2.1:
// letters, digits and hyphens, labels of 1-63, 253 in all, an optional
// final dot), which keeps junk from reaching the resolver.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	// A name of digits and dots only is a mistyped address.
	return strings.Trim(s, "0123456789.") != ""
}

// ParsePorts reads a port list: ports and ranges, separated by commas,
// each port 1-65535 ("22,80,443-445", "1-65535").
func ParsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("port range %q runs backwards", item)
			}
		}
		out = append(out, PortRange{a, b})
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("an empty port in the list (want 80, 1-1024 or 22,80,443-445)")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number 1-65535", s)
	}
	return uint16(n), nil
}

// Target is one (address, port) a run probes.
type Target struct {
	Addr netip.Addr
	Port uint16
}

func (t Target) String() string { return netip.AddrPortFrom(t.Addr, t.Port).String() }

// AddrPort is the target as a netip.AddrPort.
func (t Target) AddrPort() netip.AddrPort { return netip.AddrPortFrom(t.Addr, t.Port) }

// Lookup resolves a host name to its addresses (net.DefaultResolver's
// LookupNetIP with network "ip" has this shape).
type Lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)

// NameError is the error of Expand for a name that did not resolve.
type NameError struct {
	Name string
	Err  error
}

func (e *NameError) Error() string { return fmt.Sprintf("cannot resolve %q: %v", e.Name, e.Err) }
func (e *NameError) Unwrap() error { return e.Err }

// Expand turns target arguments into the run's targets: each host's
// addresses (a name resolved through lookup: its first IPv4 address, or
// its first IPv6 one when it has no IPv4 address), each with every port,
// in the order given, hosts outer and ports inner, each (address, port)
// once. Addresses that cannot be a TCP peer (unspecified, multicast, an
// IPv4 broadcast of 255.255.255.255) are refused.
func Expand(ctx context.Context, specs []TargetSpec, lookup Lookup) ([]Target, error) {
	total := 0
	for _, s := range specs {
		total += s.Hosts() * s.PortCount()
		if total > MaxTargets {
			return nil, fmt.Errorf("more than %d targets in all; split the run", MaxTargets)
		}
	}
	// Each (address, port) once: keyed by the address's number in
	// hostNum and the port, which hashes much faster than the pair. One
	// argument whose port ranges do not overlap cannot repeat a pair (a
	// prefix's addresses are distinct), and needs no such bookkeeping.
	dedupe := len(specs) > 1 || (len(specs) == 1 && overlapping(specs[0].Ports))
	hostNum := map[netip.Addr]uint64{}
	var seen map[uint64]struct{}
	if dedupe {
		seen = make(map[uint64]struct{}, total)
	}
	out := make([]Target, 0, total)
	for _, s := range specs {
		prefix := s.Prefix
		if s.Name != "" {
			if lookup == nil {
				lookup = net.DefaultResolver.LookupNetIP
			}
			addrs, err := lookup(ctx, "ip", s.Name)
			if err == nil && len(addrs) == 0 {
				err = errors.New("no address")
			}
			if err != nil {
				return nil, &NameError{Name: s.Name, Err: err}
			}
			a := addrs[0]
			for _, c := range addrs {
				if c.Unmap().Is4() {
					a = c
					break
				}
			}
			a = a.Unmap()
			prefix = netip.PrefixFrom(a, a.BitLen())
		}
		for a := prefix.Addr(); a.IsValid() && prefix.Contains(a); a = a.Next() {
			if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				if prefix.IsSingleIP() {
					return nil, fmt.Errorf("target %q: %v cannot be a TCP peer", s.Text, a)
				}
				continue
			}
			var hn uint64
			if dedupe {
				n, ok := hostNum[a]
				if !ok {
					n = uint64(len(hostNum))
					hostNum[a] = n
				}
				hn = n
			}
			for _, r := range s.Ports {
				for p := int(r.Low); p <= int(r.High); p++ {
					if dedupe {
						key := hn<<16 | uint64(p)
						if _, dup := seen[key]; dup {
							continue
						}
						seen[key] = struct{}{}
					}
					out = append(out, Target{Addr: a, Port: uint16(p)})
				}
			}
		}
	}
	return out, nil
}

// overlapping reports whether two of the ranges share a port.
func overlapping(ranges []PortRange) bool {
	sorted := slices.Clone(ranges)
	slices.SortFunc(sorted, func(a, b PortRange) int { return int(a.Low) - int(b.Low) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Low <= sorted[i-1].High {
			return true
		}
	}
	return false
}
