package capture

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// Default places PortChooser reads. thread-self, not self: /proc/self/net
// shows the namespace of the process's main thread, while tcpcraft and its
// tests may run this on a thread that has entered another namespace
// (net sysctls under /proc/sys/net already follow the calling thread).
const (
	DefaultPortRangePath = "/proc/sys/net/ipv4/ip_local_port_range"
	DefaultTCPTablePath  = "/proc/thread-self/net/tcp"
	DefaultTCP6TablePath = "/proc/thread-self/net/tcp6"
)

// lowestPort is the first port EphemeralPort may choose. Ports below 1024
// are where well-known services live; a tool should not squat on them.
const lowestPort = 1024

// PortChooser picks tcpcraft's source ports. The zero value reads the
// default /proc paths; tests point the fields at fake files.
type PortChooser struct {
	// RangePath is the ip_local_port_range file ("low<TAB>high");
	// "" means DefaultPortRangePath.
	RangePath string
	// TCPTables are /proc/net/tcp-format files listing kernel sockets
	// whose local ports are taken; nil means the thread's tcp and tcp6. A
	// missing file other than the first is skipped (tcp6 is absent when
	// IPv6 is disabled).
	TCPTables []string
}

// EphemeralPort chooses a source port with the default /proc paths; see
// PortChooser.Choose.
func EphemeralPort(r *rand.Rand) (uint16, error) {
	return PortChooser{}.Choose(r)
}

// Choose returns a port in [1024, 65535] that lies OUTSIDE the kernel's
// ip_local_port_range, so the kernel never picks it for its own outgoing
// connections while tcpcraft uses it, and that no kernel TCP socket (any
// state, any address, IPv4 or IPv6) has bound. The search starts at a
// position drawn from r and then walks every candidate, so it fails only
// when none is free, with an error that says why.
func (pc PortChooser) Choose(r *rand.Rand) (uint16, error) {
	if r == nil {
		return 0, errors.New("choosing a source port: no random source")
	}
	rangePath := pc.RangePath
	if rangePath == "" {
		rangePath = DefaultPortRangePath
	}
	tables := pc.TCPTables
	if tables == nil {
		tables = []string{DefaultTCPTablePath, DefaultTCP6TablePath}
	}

	low, high, err := readPortRange(rangePath)
	if err != nil {
		return 0, fmt.Errorf("choosing a source port: %w", err)
	}
	var candidates []uint16
	for p := lowestPort; p <= 65535; p++ {
		if p < low || p > high {
			candidates = append(candidates, uint16(p))
		}
	}
	if len(candidates) == 0 {
		return 0, fmt.Errorf("choosing a source port: ip_local_port_range %d-%d leaves no port in %d-65535 outside it; narrow it (sysctl net.ipv4.ip_local_port_range)", low, high, lowestPort)
	}

	used := make(map[uint16]bool)
	for i, path := range tables {
		err := readUsedPorts(path, used)
		if err != nil && !(i > 0 && errors.Is(err, os.ErrNotExist)) {
			return 0, fmt.Errorf("choosing a source port: %w", err)
		}
	}

	start := r.IntN(len(candidates))
	for i := range candidates {
		p := candidates[(start+i)%len(candidates)]
		if !used[p] {
			return p, nil
		}
	}
	return 0, fmt.Errorf("choosing a source port: all %d ports outside ip_local_port_range %d-%d (from %d) are in use by kernel sockets", len(candidates), low, high, lowestPort)
}

// readPortRange parses ip_local_port_range ("32768\t60999\n").
func readPortRange(path string) (low, high int, err error) {
	b, err := os.ReadFile(path)
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

// readUsedPorts adds the local port of every socket listed in a
// /proc/net/tcp-format file to used. Lines look like
//
//	sl  local_address rem_address   st ...
//	 0: 0100007F:1F90 00000000:0000 0A ...
//
// with the port in hex after the colon (for tcp6 the address is longer; the
// port is still after the last colon).
func readUsedPorts(path string, used map[uint16]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading kernel TCP sockets: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue // header
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		local := fields[1]
		colon := strings.LastIndexByte(local, ':')
		if colon < 0 {
			return fmt.Errorf("%s:%d: local address %q has no port", path, line, local)
		}
		port, err := strconv.ParseUint(local[colon+1:], 16, 16)
		if err != nil {
			return fmt.Errorf("%s:%d: bad port in %q: %w", path, line, local, err)
		}
		used[uint16(port)] = true
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}
