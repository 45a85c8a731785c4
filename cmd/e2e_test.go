package cmd

// Shared helpers of the end-to-end tests: the tcpcraft binary (built once per
// test binary), running it inside a lab namespace with `ip netns exec`, and
// kernel peers (Go servers opened inside the server namespace).
//
// End-to-end tests run as root against the real Linux kernel, each in a lab
// of its own (labtest.New: two fresh namespaces, removed at cleanup). Under
// CI=true a missing prerequisite fails the test instead of skipping it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// e2eBuild is the tcpcraft binary shared by every end-to-end test of this
// test binary: built at most once, on first use, into a directory TestMain
// removes at the end.
type e2eBuild struct {
	dir  string
	once sync.Once
	bin  string
	err  error
}

// theBuild is set up by TestMain; tests reach it only through tcpcraftBinary.
var theBuild e2eBuild

func TestMain(m *testing.M) {
	if v := os.Getenv(kernelSenderEnv); v != "" {
		// A helper process of BenchmarkPerfBulkSend, not a test run.
		cc, addr, _ := strings.Cut(v, " ")
		if err := kernelSender(cc, addr); err != nil {
			fmt.Fprintln(os.Stderr, "kernel sender:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if addr := os.Getenv(kernelReceiverEnv); addr != "" {
		// A helper process of BenchmarkPerfBulkRecv, not a test run.
		if err := kernelReceiver(addr); err != nil {
			fmt.Fprintln(os.Stderr, "kernel receiver:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if v := os.Getenv(kernelDialerEnv); v != "" {
		// A helper process of BenchmarkPerfSYNRTT, not a test run.
		if err := kernelDialer(v); err != nil {
			fmt.Fprintln(os.Stderr, "kernel dialer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if addr := os.Getenv(kernelAcceptorEnv); addr != "" {
		// A helper process of BenchmarkPerfSYNRTT, not a test run.
		if err := kernelAcceptor(addr); err != nil {
			fmt.Fprintln(os.Stderr, "kernel acceptor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "tcpcraft-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temporary directory:", err)
		os.Exit(1)
	}
	// Readable by everyone: TestConnectWithoutPrivileges runs the binary as
	// nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	theBuild.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tcpcraftBinary returns the path of a tcpcraft binary built from this tree
// with CGO_ENABLED=0, as users and CI build it.
func tcpcraftBinary(t testing.TB) string {
	t.Helper()
	theBuild.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
			if _, serr := os.Stat(goTool); serr != nil {
				goTool = "/usr/local/go/bin/go"
			}
		}
		bin := filepath.Join(theBuild.dir, "tcpcraft")
		build := exec.Command(goTool, "build", "-buildvcs=false", "-o", bin, "github.com/tcpcraft/tcpcraft")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			theBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		theBuild.bin = bin
	})
	if theBuild.err != nil {
		t.Fatalf("building tcpcraft: %v", theBuild.err)
	}
	return theBuild.bin
}

// e2eLab is one test's lab plus the tcpcraft binary.
type e2eLab struct {
	*lab.Lab
	bin string
}

// newE2ELab builds a fresh lab for t (removed at cleanup) and registers a
// cleanup check that tcpcraft left no firewall rule in the client namespace.
func newE2ELab(t *testing.T) *e2eLab {
	t.Helper()
	labtest.RequireRoot(t)
	labtest.RequireTools(t, "ip", "ss", "iptables", "iptables-save", "nft")
	bin := tcpcraftBinary(t)
	l := labtest.New(t)
	e := &e2eLab{Lab: l, bin: bin}
	// Registered after labtest.New, so it runs before the lab is removed.
	t.Cleanup(func() {
		if rules := guardRules(t, e, l.ClientNS); len(rules) > 0 {
			t.Errorf("firewall rules of tcpcraft left in %s:\n%s", l.ClientNS, strings.Join(rules, "\n"))
		}
	})
	return e
}

// serverAddr is "10.0.2.20:port".
func (e *e2eLab) serverAddr(port int) string {
	return net.JoinHostPort(e.ServerIP().String(), fmt.Sprint(port))
}

// runResult is what one run of a program produced.
type runResult struct {
	code           int
	stdout, stderr string
	pid            int
	elapsed        time.Duration
}

func (r runResult) String() string {
	return fmt.Sprintf("exit %d after %v\nstderr:\n%s", r.code, r.elapsed.Round(time.Millisecond), tail(r.stderr, 4000))
}

// tail shortens s to its last n bytes for a test log.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "[...]\n" + s[len(s)-n:]
}

// syncBuffer is a bytes.Buffer that may be read while a command writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a program started in a lab namespace.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	started        time.Time
	done           chan struct{}
	res            runResult
}

// processTimeout bounds every program a test runs, so that a hang fails the
// test instead of stalling the whole run.
const processTimeout = 60 * time.Second

// start starts argv inside namespace ns with stdin (nil: empty). `ip netns
// exec` execs the program, so the process's pid is the program's own.
func (e *e2eLab) start(t *testing.T, ns string, stdin io.Reader, argv ...string) *process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	cmd := e.Command(ctx, ns, argv[0], argv[1:]...)
	p := &process{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, p.stdout, p.stderr
	cmd.WaitDelay = 5 * time.Second
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %q in %s: %v", argv, ns, err)
	}
	p.res.pid = cmd.Process.Pid
	go func() {
		defer cancel()
		defer close(p.done)
		err := cmd.Wait()
		p.res.elapsed = time.Since(p.started)
		p.res.code = cmd.ProcessState.ExitCode()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			p.res.code = -1
		}
		if ctx.Err() != nil {
			p.res.code = -1 // killed for taking too long
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.res.code = -1
		}
		p.res.stdout, p.res.stderr = p.stdout.String(), p.stderr.String()
	}()
	t.Cleanup(func() {
		// A test that failed half-way must not leave the program running.
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to end and returns what it did.
func (p *process) wait(t *testing.T) runResult {
	t.Helper()
	<-p.done
	if p.res.code == -1 {
		t.Logf("process %d did not exit on its own (killed, signalled or timed out after %v): %v", p.res.pid, p.res.elapsed, p.cmd.ProcessState)
	}
	return p.res
}

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// startTcpcraft starts `tcpcraft args...` in the client namespace.
func (e *e2eLab) startTcpcraft(t *testing.T, stdin io.Reader, args ...string) *process {
	t.Helper()
	return e.start(t, e.ClientNS, stdin, append([]string{e.bin}, args...)...)
}

// tcpcraft runs `tcpcraft args...` in the client namespace to its end and
// checks that no firewall rule of that run is left in the root namespace.
func (e *e2eLab) tcpcraft(t *testing.T, stdin io.Reader, args ...string) runResult {
	t.Helper()
	r := e.startTcpcraft(t, stdin, args...).wait(t)
	assertRootUntouched(t, r.pid)
	return r
}

// guardRules returns the lines of `nft list ruleset` and `iptables-save`
// in ns (the root namespace if ns is "") that mention tcpcraft: the
// guards' table headers and rules (not the table comments, so that a
// guard counts once in rulesOf), and any iptables rule of an older
// version.
func guardRules(t testing.TB, e *e2eLab, ns string) []string {
	t.Helper()
	var rules []string
	for _, argv := range [][]string{{"nft", "list", "ruleset"}, {"iptables-save"}} {
		for _, line := range strings.Split(string(outputIn(t, e, ns, argv...)), "\n") {
			if strings.Contains(line, "tcpcraft") && !strings.HasPrefix(strings.TrimSpace(line), "comment ") {
				rules = append(rules, line)
			}
		}
	}
	return rules
}

// outputIn runs argv in ns (the root namespace if ns is "") and returns
// its standard output; a failure fails t.
func outputIn(t testing.TB, e *e2eLab, ns string, argv ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []byte
	var err error
	if ns == "" {
		out, err = exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	} else {
		out, err = e.Command(ctx, ns, argv[0], argv[1:]...).Output()
	}
	if err != nil {
		t.Fatalf("%s in %q: %v", strings.Join(argv, " "), ns, err)
	}
	return out
}

// guardComment is the start of the comment tcpcraft's rule carries.
func guardComment(pid int) string { return fmt.Sprintf("tcpcraft pid=%d ", pid) }

// assertRootUntouched fails t if the root namespace's firewall holds a rule
// of the tcpcraft run with this pid, or the run holds a port there: every
// run of a test belongs in its lab.
func assertRootUntouched(t testing.TB, pid int) {
	t.Helper()
	for _, rule := range guardRules(t, nil, "") {
		if strings.Contains(rule, guardComment(pid)) {
			t.Errorf("tcpcraft pid %d installed a rule in the ROOT namespace: %s", pid, rule)
		}
	}
	for _, held := range heldPorts(t, nil, "", pid) {
		t.Errorf("tcpcraft pid %d holds a port in the ROOT namespace: %s", pid, held)
	}
}

// heldPorts returns the listening TCP sockets of process pid in ns (the
// root namespace if ns is ""), as `ss -Hltnp` prints them: the guard of a
// run whose port was free (guard.HoldPort) is one.
func heldPorts(t testing.TB, e *e2eLab, ns string, pid int) []string {
	t.Helper()
	var held []string
	for _, line := range strings.Split(string(outputIn(t, e, ns, "ss", "-Hltnp")), "\n") {
		if strings.Contains(line, fmt.Sprintf("pid=%d,", pid)) {
			held = append(held, strings.Join(strings.Fields(line), " "))
		}
	}
	return held
}

// guardsOf returns what guards the run with this pid in ns: the port it
// holds, or its firewall rule where the port could not be held.
func guardsOf(t testing.TB, e *e2eLab, ns string, pid int) []string {
	t.Helper()
	return append(heldPorts(t, e, ns, pid), rulesOf(t, e, ns, pid)...)
}

// rulesOf returns the rules in ns whose comment names pid.
func rulesOf(t testing.TB, e *e2eLab, ns string, pid int) []string {
	t.Helper()
	var mine []string
	for _, rule := range guardRules(t, e, ns) {
		if strings.Contains(rule, guardComment(pid)) {
			mine = append(mine, rule)
		}
	}
	return mine
}

// listen opens a kernel listener on 10.0.2.20:port in the server namespace.
func (e *e2eLab) listen(t *testing.T, port int) net.Listener {
	t.Helper()
	return labtest.Listen(t, e.Lab, e.ServerNS, e.serverAddr(port))
}

// peerTimeout bounds how long a kernel peer waits for tcpcraft.
const peerTimeout = 30 * time.Second

// serveOne accepts one connection on ln and runs handle on it (with a
// deadline, so a silent tcpcraft cannot block it for ever). The returned
// channel delivers handle's result, or the Accept error. The connection is
// closed after handle unless handle closed it.
func serveOne(t *testing.T, ln net.Listener, handle func(c *net.TCPConn) error) <-chan error {
	t.Helper()
	result := make(chan error, 1)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		conn net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			result <- fmt.Errorf("accept: %w", err)
			return
		}
		mu.Lock()
		conn = c
		mu.Unlock()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(peerTimeout))
		result <- handle(c.(*net.TCPConn))
	}()
	t.Cleanup(func() {
		// Unblock a handler still waiting on a peer that went away.
		ln.Close()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return result
}

// receive waits for a peer's result.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(peerTimeout + 5*time.Second):
		t.Fatalf("no result from %s", what)
		var zero T
		return zero
	}
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openStdin returns a pipe to use as a program's standard input: the read
// end to hand to the program and the write end the test keeps open as long
// as it wants the input to go on. Both are closed at cleanup.
func openStdin(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// zeroReader is an endless stream of zero bytes.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
