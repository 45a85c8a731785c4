// Package labtest gives each test its own tcpcraft lab: a fresh pair of
// network namespaces with unique names, the standard addresses (client
// 10.0.2.21, server 10.0.2.20), removed by t.Cleanup even when the test fails
// or panics. It also has small helpers to run kernel peers inside the lab.
//
// What it must not do: touch the root network namespace or any lab it did not
// create (the stale-lab sweep only removes labtest namespaces whose creating
// process is dead), or skip a test when CI=true — a missing prerequisite
// there is a failure.
package labtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab"
)

// Prefix starts the name of every namespace and veth end labtest makes.
const Prefix = "tct"

// cleanupTimeout bounds how long removing one lab may take.
const cleanupTimeout = 30 * time.Second

// namePattern matches labtest namespace names: tct-<pid>-<random>-<role>.
var namePattern = regexp.MustCompile(`^` + Prefix + `-([0-9]+)-[0-9a-f]{6}-(client|server|router)$`)

// Need stops the test because a prerequisite is missing: t.Fatal when
// CI=true (CI must run every test), t.Skip otherwise.
func Need(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("missing prerequisite (CI=true, so this fails instead of skipping): %s", msg)
		return
	}
	t.Skipf("missing prerequisite: %s", msg)
}

// RequireRoot stops the test (see Need) unless the process may build labs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if err := lab.CheckPrivileges(); err != nil {
		Need(t, "%v", err)
	}
}

// RequireTools stops the test (see Need) unless every named program is on PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		Need(t, "programs not found on PATH: %s", strings.Join(missing, ", "))
	}
}

// Config returns a lab configuration with names no other lab on this machine
// uses (tct-<pid>-<random>-client/server, veth tct<random>c/s) and the
// standard addresses, and registers a t.Cleanup that removes whatever exists
// under those names and checks that nothing is left. It does not build the
// lab: use it to drive lab.Up (or a command doing so) yourself; use New for
// a lab that is simply there.
func Config(t testing.TB) lab.Config {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip")
	SweepStale(t)
	cfg, err := uniqueConfig()
	if err != nil {
		t.Fatalf("labtest: choosing lab names: %v", err)
	}
	t.Cleanup(func() { Remove(t, cfg) })
	return cfg
}

// New builds a fresh lab for this test and removes it when the test ends,
// whether it passes, fails or panics.
func New(t testing.TB) *lab.Lab {
	t.Helper()
	cfg := Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	return l
}

// Remove takes the lab cfg down and reports an error on t if it cannot, or if
// anything of it is left afterwards. Config and New register it as cleanup.
func Remove(t testing.TB, cfg lab.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := lab.Down(ctx, cfg); err != nil {
		t.Errorf("labtest: removing lab %s/%s: %v", cfg.ClientNS, cfg.ServerNS, err)
	}
	AssertNoLeftovers(t, cfg)
}

// AssertNoLeftovers reports an error on t if either namespace of cfg still
// exists, or if an interface with one of its veth names appeared in the root
// namespace.
func AssertNoLeftovers(t testing.TB, cfg lab.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	st, err := lab.Status(ctx, cfg)
	if err != nil {
		t.Errorf("labtest: checking for leftovers of %s/%s: %v", cfg.ClientNS, cfg.ServerNS, err)
		return
	}
	if st.State() != lab.StateDown {
		t.Errorf("labtest: lab left behind:\n%s", st)
	}
	for _, dev := range []string{cfg.ClientIf, cfg.ServerIf} {
		if _, err := net.InterfaceByName(dev); err == nil {
			t.Errorf("labtest: interface %s exists in the root namespace", dev)
		}
	}
}

func uniqueConfig() (lab.Config, error) {
	for range 10 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return lab.Config{}, err
		}
		id := hex.EncodeToString(b[:])
		cfg := lab.DefaultConfig()
		base := fmt.Sprintf("%s-%d-%s", Prefix, os.Getpid(), id)
		cfg.ClientNS, cfg.ServerNS = base+"-client", base+"-server"
		cfg.ClientIf, cfg.ServerIf = Prefix+id+"c", Prefix+id+"s" // 10 bytes, within IFNAMSIZ
		if !exists(cfg.ClientNS) && !exists(cfg.ServerNS) {
			return cfg, nil
		}
	}
	return lab.Config{}, errors.New("10 random names in a row were taken")
}

func exists(ns string) bool {
	_, err := os.Stat("/var/run/netns/" + ns)
	return err == nil
}

// SweepStale removes labtest namespaces left by test processes that were
// killed before their cleanup ran (a timeout, SIGKILL). A namespace is only
// removed when its name carries the pid of a process that no longer exists.
func SweepStale(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return // no namespaces at all
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for _, e := range entries {
		m := namePattern.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || processAlive(pid) {
			continue
		}
		out, err := exec.CommandContext(ctx, "ip", "netns", "delete", e.Name()).CombinedOutput()
		if err != nil {
			t.Logf("labtest: removing stale namespace %s: %v: %s", e.Name(), err, bytes.TrimSpace(out))
			continue
		}
		t.Logf("labtest: removed stale namespace %s (process %d is gone)", e.Name(), pid)
	}
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Run runs name with args inside namespace ns of l, fails the test if it
// fails, and returns its standard output.
func Run(t testing.TB, l *lab.Lab, ns, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := l.Command(ctx, ns, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("labtest: in %s: %s %s: %v\nstderr: %s", ns, name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// Iptables runs `iptables args...` inside namespace ns (for fault injection,
// e.g. "-A", "INPUT", "-p", "tcp", "-m", "statistic", "--mode", "random",
// "--probability", "0.1", "-j", "DROP"). The rules live in the lab's own
// namespace, so they disappear with it.
func Iptables(t testing.TB, l *lab.Lab, ns string, args ...string) {
	t.Helper()
	RequireTools(t, "iptables")
	Run(t, l, ns, "iptables", append([]string{"-w"}, args...)...)
}

// Start starts name with args inside namespace ns of l, as a kernel peer
// (socat, curl, python3 -m http.server ...). Its output goes to the test
// log. When the test ends it is killed and waited for.
func Start(t testing.TB, l *lab.Lab, ns, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.Command(ctx, ns, name, args...)
	cmd.Stdout = logWriter{t, name + ": "}
	cmd.Stderr = logWriter{t, name + ": "}
	// A grandchild holding the output pipe must not keep Wait (and so the
	// test's cleanup) waiting for ever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("labtest: starting %s in %s: %v", name, ns, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait() // killed by cancel; its exit status says nothing
	})
	return cmd
}

// Listen opens a kernel TCP listener inside namespace ns on addr
// (e.g. "10.0.2.20:8080"), closed when the test ends.
func Listen(t testing.TB, l *lab.Lab, ns, addr string) net.Listener {
	t.Helper()
	ln, err := l.Listen(ns, "tcp", addr)
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// logWriter sends a peer's output to the test log. Start's cleanup waits
// for the copying to end, so no line arrives after the test has finished.
type logWriter struct {
	t      testing.TB
	prefix string
}

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
