package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The RST guard (DESIGN.md "Keeping the kernel out"): the local kernel has
// no socket for tcpcraft's connections, so it would answer every segment
// from the peer with RST. AF_PACKET sees inbound frames before netfilter, so
// a DROP rule in the INPUT chain for exactly tcpcraft's (address, port)
// silences the kernel while tcpcraft still reads every frame. The rule is
// scoped to that destination (never "all RSTs"), carries a comment naming
// tcpcraft and the owning pid, and is removed when tcpcraft exits; rules
// from killed runs are found by CleanupStale.
//
// iptables acts in the network namespace of the process that runs it, so the
// rule lands in the namespace tcpcraft runs in (`ip netns exec NS tcpcraft`)
// or, from Go, in the namespace of the locked OS thread that starts it.

// commentPrefix starts every rule comment tcpcraft writes.
const commentPrefix = "tcpcraft pid="

// removeTimeout bounds a guard removal, which ignores cancellation.
const removeTimeout = 10 * time.Second

// guardChain is where the guard sits: INPUT sees locally delivered packets
// after AF_PACKET has copied them.
const guardChain = "INPUT"

// commentPattern parses the pid and start time back out of a comment.
var commentPattern = regexp.MustCompile(`^tcpcraft pid=([0-9]+)(?: start=([0-9]+))?(?: |$)`)

// Firewall runs iptables for the RST guard. The zero value uses "iptables"
// from PATH, the calling process's pid and /proc.
type Firewall struct {
	// IPTables is the iptables command (name or path); "" means "iptables".
	IPTables string
	// PID is the pid written into rule comments; 0 means os.Getpid() at the
	// time of the call.
	PID int
	// ProcRoot is where process liveness is looked up; "" means "/proc".
	ProcRoot string
}

// Guard is one installed guard rule. Its methods are safe for concurrent
// use, and Remove may be called any number of times, also on a nil *Guard.
type Guard struct {
	iptables string
	local    netip.AddrPort
	comment  string
	spec     []string // the rule after "-I INPUT" / "-D INPUT"

	netns string // the network namespace the rule went into, e.g. "net:[4026531840]"

	mu      sync.Mutex
	removed bool
}

// InstallGuard installs the RST guard for local with the zero Firewall; see
// Firewall.InstallGuard.
func InstallGuard(ctx context.Context, local netip.AddrPort) (*Guard, error) {
	return Firewall{}.InstallGuard(ctx, local)
}

// CleanupStale removes stale guard rules with the zero Firewall; see
// Firewall.CleanupStale.
func CleanupStale(ctx context.Context) (removed []string, err error) {
	return Firewall{}.CleanupStale(ctx)
}

// InstallGuard inserts, at the top of the INPUT chain,
//
//	iptables -w -I INPUT -p tcp -d ADDR --dport PORT -m comment --comment "tcpcraft pid=PID start=T guard ADDR:PORT" -j DROP
//
// so that inbound TCP segments to local never reach the kernel's TCP (it
// would answer them with RST). For a listener on all addresses (local
// address 0.0.0.0 or invalid) the -d match is left out: every local address,
// that port. start=T is the process start time from /proc/PID/stat, so that
// CleanupStale can tell a live owner from a recycled pid.
//
// If iptables is missing, nothing is changed and the error says to install
// it.
func (f Firewall) InstallGuard(ctx context.Context, local netip.AddrPort) (*Guard, error) {
	addr := local.Addr().Unmap()
	if addr.IsValid() && !addr.Is4() {
		return nil, fmt.Errorf("installing the RST guard for %s: not an IPv4 address", local)
	}
	if local.Port() == 0 {
		return nil, fmt.Errorf("installing the RST guard for %s: port 0", local)
	}
	iptables, err := f.lookPath()
	if err != nil {
		return nil, fmt.Errorf("installing the RST guard for %s: %w", local, err)
	}
	pid := f.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	comment := fmt.Sprintf("%s%d", commentPrefix, pid)
	if start, err := processStart(f.procRoot(), pid); err == nil {
		comment += " start=" + start
	}
	spec := []string{"-p", "tcp"}
	what := "*:" + strconv.Itoa(int(local.Port()))
	if addr.IsValid() && !addr.IsUnspecified() {
		spec = append(spec, "-d", addr.String())
		what = netip.AddrPortFrom(addr, local.Port()).String()
	}
	comment += " guard " + what
	spec = append(spec, "--dport", strconv.Itoa(int(local.Port())),
		"-m", "comment", "--comment", comment, "-j", "DROP")

	netns, err := threadNetns()
	if err != nil {
		return nil, fmt.Errorf("installing the RST guard for %s: %w", what, err)
	}
	g := &Guard{iptables: iptables, local: netip.AddrPortFrom(addr, local.Port()), comment: comment, spec: spec, netns: netns}
	if _, err := runIPTables(ctx, iptables, append([]string{"-w", "-I", guardChain}, spec...)...); err != nil {
		return nil, fmt.Errorf("installing the RST guard for %s: %w", what, err)
	}
	return g, nil
}

// Local is the address and port the guard protects (address 0.0.0.0 or
// invalid for all local addresses).
func (g *Guard) Local() netip.AddrPort { return g.local }

// Comment is the rule's comment, e.g. "tcpcraft pid=42 start=1234 guard 10.0.2.21:40000".
func (g *Guard) Comment() string { return g.comment }

// Rule is the rule as an iptables command line, for display.
func (g *Guard) Rule() string {
	var b strings.Builder
	b.WriteString("iptables -I " + guardChain)
	for _, a := range g.spec {
		b.WriteByte(' ')
		if strings.ContainsAny(a, " \"") {
			a = strconv.Quote(a)
		}
		b.WriteString(a)
	}
	return b.String()
}

// Remove deletes exactly this guard's rule. It is idempotent: a rule that is
// already gone (removed earlier, by CleanupStale, or by hand) is not an
// error. Cancellation of ctx is ignored on purpose — Remove runs on the way
// out of a cancelled run, and a leftover rule silently breaks later runs —
// so the removal is bounded by its own timeout instead.
func (g *Guard) Remove(ctx context.Context) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.removed {
		return nil
	}
	// iptables acts in the caller's namespace: from another one, -D would
	// find nothing there and the real rule would silently stay behind.
	if here, err := threadNetns(); err != nil {
		return fmt.Errorf("removing the RST guard %q: %w", g.comment, err)
	} else if here != g.netns {
		return fmt.Errorf("removing the RST guard %q: it was installed in network namespace %s but Remove runs in %s; call Remove from the same namespace",
			g.comment, g.netns, here)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	_, delErr := runIPTables(ctx, g.iptables, append([]string{"-w", "-D", guardChain}, g.spec...)...)
	if delErr != nil {
		// -D fails both when the rule is absent and when iptables itself
		// fails; -C tells the two apart (exit status 1: no such rule).
		present, checkErr := g.present(ctx)
		if checkErr != nil || present {
			return fmt.Errorf("removing the RST guard %q: %w", g.comment, delErr)
		}
	}
	g.removed = true
	return nil
}

// present reports whether the guard's rule is in the chain.
func (g *Guard) present(ctx context.Context) (bool, error) {
	_, err := runIPTables(ctx, g.iptables, append([]string{"-w", "-C", guardChain}, g.spec...)...)
	if err == nil {
		return true, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 1 {
		return false, nil
	}
	return false, err
}

// CleanupStale removes every rule in the INPUT chain whose comment starts
// with "tcpcraft pid=" and whose owner is gone: no such process, a zombie,
// or a process with the same pid but another start time (the pid was
// recycled). Rules of live tcpcraft runs are kept. The pid is looked up in
// the caller's pid namespace. It returns the removed rules as iptables -S
// prints them; errors for single rules are joined, the others are still
// removed.
func (f Firewall) CleanupStale(ctx context.Context) (removed []string, err error) {
	iptables, err := f.lookPath()
	if err != nil {
		return nil, fmt.Errorf("removing stale RST guards: %w", err)
	}
	out, err := runIPTables(ctx, iptables, "-w", "-S", guardChain)
	if err != nil {
		return nil, fmt.Errorf("removing stale RST guards: listing %s: %w", guardChain, err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		args, err := splitRuleLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading rule %q: %w", line, err))
			continue
		}
		if len(args) < 2 || args[0] != "-A" || args[1] != guardChain {
			continue
		}
		comment := ruleComment(args)
		m := commentPattern.FindStringSubmatch(comment)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		if f.ownerAlive(pid, m[2]) {
			continue
		}
		del := append([]string{"-w", "-D"}, args[1:]...)
		if _, err := runIPTables(ctx, iptables, del...); err != nil {
			errs = append(errs, fmt.Errorf("removing %q: %w", line, err))
			continue
		}
		removed = append(removed, line)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("removing stale RST guards: %w", err)
	}
	return removed, nil
}

// threadNetns names the calling thread's network namespace (the target of
// /proc/thread-self/ns/net, e.g. "net:[4026531840]"); iptables started from
// this thread runs there.
func threadNetns() (string, error) {
	ns, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		return "", fmt.Errorf("finding this thread's network namespace: %w", err)
	}
	return ns, nil
}

// ownerAlive reports whether pid is a live (non-zombie) process and, when
// the comment recorded a start time, the same process that wrote it.
func (f Firewall) ownerAlive(pid int, recordedStart string) bool {
	if pid <= 0 {
		return false
	}
	start, err := processStart(f.procRoot(), pid)
	if err != nil {
		return false
	}
	return recordedStart == "" || recordedStart == start
}

// processStart returns field 22 of /proc/PID/stat (start time in clock
// ticks after boot), or an error if the process does not exist or is a
// zombie. The comm field (2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func processStart(procRoot string, pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("pid %d: unreadable stat line", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return "", fmt.Errorf("pid %d: short stat line", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return "", fmt.Errorf("pid %d: process has exited", pid)
	}
	return fields[19], nil
}

func (f Firewall) procRoot() string {
	if f.ProcRoot == "" {
		return "/proc"
	}
	return f.ProcRoot
}

func (f Firewall) lookPath() (string, error) {
	name := f.IPTables
	if name == "" {
		name = "iptables"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("iptables not found: install the iptables package (%w)", err)
	}
	return path, nil
}

// runIPTables runs iptables and returns its standard output; a failure
// carries what iptables printed.
func runIPTables(ctx context.Context, iptables string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, iptables, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg != "" {
			return nil, fmt.Errorf("%s %s: %w: %s", filepath.Base(iptables), strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("%s %s: %w", filepath.Base(iptables), strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

// ruleComment returns the value after --comment in a split rule, or "".
func ruleComment(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--comment" {
			return args[i+1]
		}
	}
	return ""
}

// splitRuleLine splits one line of `iptables -S` output into arguments.
// iptables quotes an argument that contains spaces with double quotes and
// escapes '"' and '\' inside with a backslash.
func splitRuleLine(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg, inQuote := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			inArg = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\r'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}
