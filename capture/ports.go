package capture

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/tcpcraft/tcpcraft/internal/procfile"

	"golang.org/x/sys/unix"
)

// DefaultPortRangePath is where PortChooser reads the kernel's ephemeral
// port range. net sysctls under /proc/sys/net follow the calling thread's
// network namespace, as tcpcraft and its tests need (they may run this on
// a thread that entered another namespace).
const DefaultPortRangePath = "/proc/sys/net/ipv4/ip_local_port_range"

// lowestPort is the first port EphemeralPort may choose. Ports below 1024
// are where well-known services live; a tool should not squat on them.
const lowestPort = 1024

// PortChooser picks tcpcraft's source ports. The zero value asks the
// kernel; tests point the fields elsewhere.
type PortChooser struct {
	// RangePath is the ip_local_port_range file ("low<TAB>high");
	// "" means DefaultPortRangePath.
	RangePath string
	// InUse reports whether a kernel TCP socket holds port; nil means
	// PortInUse, which asks the kernel of the calling thread's namespace.
	InUse func(port uint16) (bool, error)
}

// EphemeralPort chooses a source port with the default sources; see
// PortChooser.Choose.
func EphemeralPort(r *rand.Rand) (uint16, error) {
	return PortChooser{}.Choose(r)
}

// sources returns where the chooser reads the kernel's port range and
// which ports are in use: its fields, or the system's.
func (pc PortChooser) sources() (rangePath string, inUse func(port uint16) (bool, error)) {
	rangePath, inUse = pc.RangePath, pc.InUse
	if rangePath == "" {
		rangePath = DefaultPortRangePath
	}
	if inUse == nil {
		inUse = PortInUse
	}
	return rangePath, inUse
}

// Choose returns a port in [1024, 65535] that lies OUTSIDE the kernel's
// ip_local_port_range, so the kernel never picks it for its own outgoing
// connections while tcpcraft uses it, and that no kernel TCP socket (any
// state, any address, IPv4 or IPv6) holds. The search starts at a
// position drawn from r and then walks every candidate, so it fails only
// when none is free, with an error that says why.
func (pc PortChooser) Choose(r *rand.Rand) (uint16, error) {
	if r == nil {
		return 0, errors.New("choosing a source port: no random source")
	}
	rangePath, inUse := pc.sources()

	low, high, err := readPortRange(rangePath)
	if err != nil {
		return 0, fmt.Errorf("choosing a source port: %w", err)
	}
	// The candidates are [lowestPort, low) and (high, 65535]; the i-th is
	// computed, not listed.
	below := max(0, low-lowestPort)
	above := 65535 - max(high, lowestPort-1)
	n := below + above
	if n == 0 {
		return 0, fmt.Errorf("choosing a source port: ip_local_port_range %d-%d leaves no port in %d-65535 outside it; narrow it (sysctl net.ipv4.ip_local_port_range)", low, high, lowestPort)
	}
	candidate := func(i int) uint16 {
		if i < below {
			return uint16(lowestPort + i)
		}
		return uint16(max(high, lowestPort-1) + 1 + i - below)
	}
	start := r.IntN(n)
	for i := range n {
		p := candidate((start + i) % n)
		used, err := inUse(p)
		if err != nil {
			return 0, fmt.Errorf("choosing a source port: %w", err)
		}
		if !used {
			return p, nil
		}
	}
	return 0, fmt.Errorf("choosing a source port: all %d ports outside ip_local_port_range %d-%d (from %d) are in use by kernel sockets", n, low, high, lowestPort)
}

// PortInUse reports whether a kernel TCP socket of the calling thread's
// namespace holds port, in any state (listening, connected, TIME-WAIT) and
// on any address of either family: a dual-stack socket without
// SO_REUSEADDR binding [::]:port conflicts with every one of them
// (inet_csk_bind_conflict), so the bind fails with EADDRINUSE exactly
// then. The socket is closed at once and never listens.
//
// Why a bind rather than reading /proc/net/tcp and tcp6: each of those
// walks the kernel's whole established-connection hash table, a
// millisecond or more apiece even when empty, which was a third of
// tcpcraft's set-up time; a bind is one hash lookup.
func PortInUse(port uint16) (bool, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	var addr unix.Sockaddr = &unix.SockaddrInet6{Port: int(port)}
	if errors.Is(err, unix.EAFNOSUPPORT) {
		// A kernel without IPv6: an IPv4 wildcard bind says the same
		// for IPv4, the only family there is.
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		addr = &unix.SockaddrInet4{Port: int(port)}
	} else if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		if err != nil {
			unix.Close(fd)
			return false, fmt.Errorf("testing port %d: IPV6_V6ONLY: %w", port, err)
		}
	}
	if err != nil {
		return false, fmt.Errorf("testing port %d: %w", port, err)
	}
	defer unix.Close(fd)
	switch err := unix.Bind(fd, addr); {
	case err == nil:
		return false, nil
	case errors.Is(err, unix.EADDRINUSE):
		return true, nil
	default:
		return false, fmt.Errorf("testing port %d: bind: %w", port, err)
	}
}

// readPortRange parses ip_local_port_range ("32768\t60999\n").
func readPortRange(path string) (low, high int, err error) {
	b, err := procfile.Read(path)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the kernel's ephemeral port range: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("%s: want two numbers, got %q", path, strings.TrimSpace(string(b)))
	}
	low, errLow := strconv.Atoi(fields[0])
	high, errHigh := strconv.Atoi(fields[1])
	if errLow != nil || errHigh != nil || low < 1 || high > 65535 || low > high {
		return 0, 0, fmt.Errorf("%s: %q is not a port range low<=high within 1-65535", path, strings.TrimSpace(string(b)))
	}
	return low, high, nil
}

// PortBlock chooses a block of n consecutive source ports with the
// default sources; see PortChooser.ChooseBlock.
func PortBlock(r *rand.Rand, n int) (uint16, error) {
	return PortChooser{}.ChooseBlock(r, n)
}

// ChooseBlock returns the first of n consecutive ports in [1024, 65535],
// all outside the kernel's ip_local_port_range and held by no kernel TCP
// socket: the source ports of a prober run, guarded by one rule. The
// block starts at a position drawn from r; when a port in it is taken the
// search moves past that port, so it fails only when no such block
// exists.
func (pc PortChooser) ChooseBlock(r *rand.Rand, n int) (uint16, error) {
	if n == 1 {
		return pc.Choose(r)
	}
	if r == nil || n < 1 || n > 65535-lowestPort {
		return 0, fmt.Errorf("choosing a block of %d source ports: bad request", n)
	}
	rangePath, inUse := pc.sources()
	low, high, err := readPortRange(rangePath)
	if err != nil {
		return 0, fmt.Errorf("choosing source ports: %w", err)
	}
	// The two stretches outside the range, and within them the starts
	// that leave room for n ports.
	type stretch struct{ first, last int }
	var starts []stretch
	for _, s := range []stretch{{lowestPort, low - 1}, {max(high+1, lowestPort), 65535}} {
		if s.last-s.first+1 >= n {
			starts = append(starts, stretch{s.first, s.last - n + 1})
		}
	}
	total := 0
	for _, s := range starts {
		total += s.last - s.first + 1
	}
	if total == 0 {
		return 0, fmt.Errorf("choosing %d source ports: ip_local_port_range %d-%d leaves no %d consecutive ports in %d-65535 outside it", n, low, high, n, lowestPort)
	}
	at := func(i int) int {
		for _, s := range starts {
			if i < s.last-s.first+1 {
				return s.first + i
			}
			i -= s.last - s.first + 1
		}
		return -1
	}
	begin := r.IntN(total)
	for tried := 0; tried < total; {
		first := at((begin + tried) % total)
		taken := -1
		for p := first + n - 1; p >= first; p-- {
			used, err := inUse(uint16(p))
			if err != nil {
				return 0, fmt.Errorf("choosing source ports: %w", err)
			}
			if used {
				taken = p
				break
			}
		}
		if taken < 0 {
			return uint16(first), nil
		}
		// No block starting at or before the taken port can hold it.
		tried += taken - first + 1
	}
	return 0, fmt.Errorf("choosing %d source ports: no %d consecutive ports outside ip_local_port_range %d-%d are free of kernel sockets", n, n, low, high)
}
