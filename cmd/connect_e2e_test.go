package cmd

// End-to-end tests of `tcpcraft connect` against the real Linux kernel: each
// test makes its own lab (client 10.0.2.21, server 10.0.2.20), runs the
// tcpcraft binary in the client namespace and a kernel peer in the server
// namespace, and checks what both ends saw, the exit code, and that no
// firewall rule was left behind (newE2ELab) or put in the root namespace.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// randomBytes returns n random bytes.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// httpBody parses an HTTP response read from tcpcraft's stdout and returns
// its status code and body.
func httpBody(t *testing.T, stdout string) (int, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(stdout)), nil)
	if err != nil {
		t.Fatalf("stdout is not an HTTP response (%d bytes): %v\n%q", len(stdout), err, tail(stdout, 300))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the HTTP body from stdout: %v", err)
	}
	// Nothing but the body follows the header: no byte lost, doubled or
	// added at the end.
	if i := strings.Index(stdout, "\r\n\r\n"); i < 0 || stdout[i+4:] != string(body) {
		t.Fatalf("stdout after the HTTP header is %d bytes, the body %d", len(stdout)-i-4, len(body))
	}
	return resp.StatusCode, body
}

// stateRE matches a state line of the text trace.
var stateRE = regexp.MustCompile(`(?m)^ *[0-9.]+ +state (\S+) -> (\S+)`)

// statePath returns the states the trace shows the connection passing
// through, starting with the first one left.
func statePath(trace string) []string {
	var path []string
	for _, m := range stateRE.FindAllStringSubmatch(trace, -1) {
		if len(path) == 0 {
			path = append(path, m[1])
		} else if path[len(path)-1] != m[1] {
			path = append(path, "?"+m[1]) // a gap: the trace skipped a change
		}
		path = append(path, m[2])
	}
	return path
}

// segmentRE matches a segment line of the text trace: time, direction.
var segmentRE = regexp.MustCompile(`(?m)^ *[0-9]+\.[0-9]+ ([<>]) `)

// segmentLines returns the segment lines of a text trace with direction dir
// ('>' out, '<' in, 0 both).
func segmentLines(trace string, dir byte) []string {
	var lines []string
	for _, line := range strings.Split(trace, "\n") {
		m := segmentRE.FindStringSubmatch(line)
		if m != nil && (dir == 0 || m[1][0] == dir) {
			lines = append(lines, line)
		}
	}
	return lines
}

// expectExit fails t unless r exited with code.
func expectExit(t *testing.T, r runResult, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %v", code, r)
	}
}

// 1. HTTP/1.0 GET of 1 MB from Go's net/http server.
func TestConnectHTTPGetFromGoServer(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	file := randomBytes(t, 1<<20)
	ln := e.listen(t, 80)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/file" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(file)))
			_, _ = w.Write(file)
		}),
		ReadHeaderTimeout: peerTimeout,
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	r := e.tcpcraft(t, strings.NewReader("GET /file HTTP/1.0\r\nHost: 10.0.2.20\r\n\r\n"), "connect", "-q", "--time-wait", "100ms", e.serverAddr(80))
	expectExit(t, r, 0)
	status, body := httpBody(t, r.stdout)
	if status != http.StatusOK {
		t.Fatalf("HTTP status %d", status)
	}
	if !bytes.Equal(body, file) {
		t.Fatalf("body differs from the file: got %d bytes, want %d (sha256 %x, want %x)", len(body), len(file), sha256.Sum256(body), sha256.Sum256(file))
	}
}

// 2. HTTP/1.0 GET of 1 MB from python3 -m http.server.
func TestConnectHTTPGetFromPython(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "python3", "ss")
	e := newE2ELab(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := randomBytes(t, 1<<20)
	if err := os.WriteFile(filepath.Join(dir, "file.bin"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	labtest.Start(t, e.Lab, e.ServerNS, "python3", "-m", "http.server", "--bind", "10.0.2.20", "--directory", dir, "8000")
	waitUntil(t, 20*time.Second, "python3 -m http.server to listen on :8000", func() bool {
		out, _ := e.Command(context.Background(), e.ServerNS, "ss", "-Hltn", "sport = :8000").Output()
		return strings.Contains(string(out), "10.0.2.20:8000")
	})

	r := e.tcpcraft(t, strings.NewReader("GET /file.bin HTTP/1.0\r\n\r\n"), "connect", "-q", "--time-wait", "100ms", e.serverAddr(8000))
	expectExit(t, r, 0)
	status, body := httpBody(t, r.stdout)
	if status != http.StatusOK {
		t.Fatalf("HTTP status %d", status)
	}
	if !bytes.Equal(body, file) {
		t.Fatalf("body differs from the file: got %d bytes, want %d", len(body), len(file))
	}
}

// 3. Upload of 10 MB to a Go sink that reads everything, then closes.
func TestConnectUpload10MB(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	data := randomBytes(t, 10<<20)
	type sunk struct {
		n   int64
		sum [32]byte
	}
	got := make(chan sunk, 1)
	peer := serveOne(t, e.listen(t, 9000), func(c *net.TCPConn) error {
		h := sha256.New()
		n, err := io.Copy(h, c)
		var s sunk
		s.n = n
		copy(s.sum[:], h.Sum(nil))
		got <- s
		return err
	})

	r := e.tcpcraft(t, bytes.NewReader(data), "connect", "-q", "--time-wait", "100ms", e.serverAddr(9000))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the sink"); err != nil {
		t.Fatalf("sink: %v", err)
	}
	s := receive(t, got, "the sink's digest")
	if s.n != int64(len(data)) || s.sum != sha256.Sum256(data) {
		t.Fatalf("sink received %d bytes with sha256 %x; sent %d bytes with sha256 %x", s.n, s.sum, len(data), sha256.Sum256(data))
	}
	if r.stdout != "" {
		t.Errorf("stdout should be empty, got %q", tail(r.stdout, 200))
	}
}

// 4a. The peer closes first: tcpcraft passes CLOSE-WAIT and LAST-ACK.
func TestConnectPeerClosesFirst(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	const greeting = "hello from the kernel\n"
	peer := serveOne(t, e.listen(t, 7000), func(c *net.TCPConn) error {
		_, err := io.WriteString(c, greeting)
		return errors.Join(err, c.Close())
	})
	// Standard input stays open, so the close can only come from the peer.
	stdin, keep := openStdin(t)
	p := e.startTcpcraft(t, stdin, "connect", e.serverAddr(7000))
	stdin.Close()
	r := p.wait(t)
	keep.Close()
	assertRootUntouched(t, r.pid)
	expectExit(t, r, 0)
	if err := receive(t, peer, "the peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != greeting {
		t.Errorf("stdout %q, want %q", r.stdout, greeting)
	}
	want := []string{"CLOSED", "SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"}
	if got := statePath(r.stderr); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("state path %q, want %q\n%s", got, want, r.stderr)
	}
}

// 4b. tcpcraft closes first (end of stdin) while the peer echoes until EOF:
// FIN-WAIT-1, then FIN-WAIT-2 or CLOSING (or straight on when the peer's FIN
// acknowledges ours), TIME-WAIT, CLOSED.
func TestConnectWeCloseFirst(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peer := serveOne(t, e.listen(t, 7000), func(c *net.TCPConn) error {
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
	const msg = "ping\n"
	r := e.tcpcraft(t, strings.NewReader(msg), "connect", "--time-wait", "200ms", e.serverAddr(7000))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != msg {
		t.Errorf("stdout %q, want the echo %q", r.stdout, msg)
	}
	got := strings.Join(statePath(r.stderr), " ")
	valid := []string{
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT CLOSED",
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 CLOSING TIME-WAIT CLOSED",
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 TIME-WAIT CLOSED",
	}
	ok := false
	for _, v := range valid {
		ok = ok || got == v
	}
	if !ok {
		t.Errorf("state path %q, want one of %q\n%s", got, valid, r.stderr)
	}
}

// 5. The peer resets the connection while tcpcraft is still sending.
func TestConnectPeerResetsMidTransfer(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peer := serveOne(t, e.listen(t, 7000), func(c *net.TCPConn) error {
		if _, err := io.ReadFull(c, make([]byte, 64<<10)); err != nil {
			return fmt.Errorf("reading the first 64 KB: %w", err)
		}
		// SO_LINGER 0: close(2) sends RST instead of FIN.
		if err := c.SetLinger(0); err != nil {
			return err
		}
		return c.Close()
	})
	r := e.tcpcraft(t, io.LimitReader(zeroReader{}, 1<<30), "connect", "-q", e.serverAddr(7000))
	if err := receive(t, peer, "the peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	expectExit(t, r, 1)
	if !strings.Contains(r.stderr, "connection reset by peer") {
		t.Errorf("stderr does not say %q:\n%s", "connection reset by peer", r.stderr)
	}
}

// 6. Nobody listens: the kernel answers the SYN with RST.
func TestConnectRefused(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	r := e.tcpcraft(t, nil, "connect", e.serverAddr(81))
	expectExit(t, r, 1)
	if !strings.Contains(r.stderr, "connection refused") {
		t.Errorf("stderr does not say %q:\n%s", "connection refused", r.stderr)
	}
	if in := segmentLines(r.stderr, '<'); len(in) != 1 || !strings.Contains(in[0], "Flags [R.]") {
		t.Errorf("want exactly one inbound RST,ACK in the trace, got %q", in)
	}
}

// 7. The peer never answers (its SYNs are dropped): --timeout ends the wait.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	labtest.Iptables(t, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "82", "-j", "DROP")
	const timeout = 2 * time.Second
	r := e.tcpcraft(t, nil, "connect", "--timeout", timeout.String(), e.serverAddr(82))
	expectExit(t, r, 1)
	if !strings.Contains(r.stderr, "timed out") {
		t.Errorf("stderr does not say the connection timed out:\n%s", r.stderr)
	}
	if r.elapsed < timeout {
		t.Errorf("gave up after %v, before the %v timeout", r.elapsed, timeout)
	}
	// The initial RTO is 1 s (RFC 6298 §2.1): the SYN was sent again.
	var syns int
	for _, line := range segmentLines(r.stderr, '>') {
		if strings.Contains(line, "Flags [S]") {
			syns++
		}
	}
	if syns < 2 {
		t.Errorf("want the SYN retransmitted within %v, saw %d SYNs:\n%s", timeout, syns, r.stderr)
	}
	if in := segmentLines(r.stderr, '<'); len(in) > 0 {
		t.Errorf("nothing should have arrived, got %q", in)
	}
}

// 8. SIGINT mid-transfer: exit 130, the kernel peer gets RST, no guard left.
func TestConnectSIGINTResetsPeer(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	received := make(chan int64, 1)
	peer := serveOne(t, e.listen(t, 7000), func(c *net.TCPConn) error {
		var total int64
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			total += int64(n)
			select {
			case received <- total:
			default:
			}
			if err != nil {
				return err
			}
		}
	})
	stdin, feed := openStdin(t)
	p := e.startTcpcraft(t, stdin, "connect", e.serverAddr(7000))
	stdin.Close()
	// A slow stdin: 1 KB every 10 ms until the test ends.
	stopFeeding := make(chan struct{})
	feederDone := make(chan struct{})
	go func() {
		defer close(feederDone)
		chunk := bytes.Repeat([]byte("x"), 1024)
		for {
			select {
			case <-stopFeeding:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if _, err := feed.Write(chunk); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(stopFeeding); feed.Close(); <-feederDone })

	waitUntil(t, 20*time.Second, "the peer to receive data", func() bool {
		select {
		case n := <-received:
			return n >= 4096
		default:
			return !p.running()
		}
	})
	if !p.running() {
		t.Fatalf("tcpcraft ended early: %v", p.wait(t))
	}
	pid := p.res.pid
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != e.bin {
		t.Fatalf("pid %d is %q (%v), not tcpcraft %s", pid, exe, err, e.bin)
	}
	if guards := guardsOf(t, e, e.ClientNS, pid); len(guards) != 1 || !strings.Contains(guards[0], "LISTEN") {
		t.Errorf("while running, want the port of pid %d held in the client namespace (and no rule), got %q", pid, guards)
	}
	assertRootUntouched(t, pid)

	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	r := p.wait(t)
	expectExit(t, r, 130)
	err := receive(t, peer, "the peer")
	if err == nil || !strings.Contains(err.Error(), "connection reset by peer") {
		t.Errorf("the peer's Read ended with %v, want connection reset by peer", err)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the peer's error %v is not ECONNRESET", err)
	}
	if guards := guardsOf(t, e, e.ClientNS, pid); len(guards) > 0 {
		t.Errorf("guard left after SIGINT: %q", guards)
	}
	if out := segmentLines(r.stderr, '>'); len(out) == 0 || !strings.Contains(out[len(out)-1], "Flags [R") {
		t.Errorf("the last segment sent should be the RST:\n%s", tail(r.stderr, 2000))
	}
}

// 9. SIGKILL leaves nothing: the guard is a socket that holds the port (or,
// where the port was taken, a table that belongs to the run's netlink
// socket), and the kernel closes it with the process. What can be left —
// an unowned table (a kernel before 5.12) or an iptables rule of an older
// tcpcraft — `tcpcraft cleanup` removes, and only that: the guard of a live
// run in the same namespace stays.
func TestConnectSIGKILLThenCleanup(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	accepted := make(chan struct{})
	peer := serveOne(t, e.listen(t, 7000), func(c *net.TCPConn) error {
		close(accepted)
		_, err := io.Copy(io.Discard, c)
		return err
	})
	stdin, keep := openStdin(t)
	p := e.startTcpcraft(t, stdin, "connect", e.serverAddr(7000))
	stdin.Close()
	awaitAccepted(t, p, accepted)
	pid := p.res.pid
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.wait(t) // reaped: the pid no longer names a live process
	keep.Close()
	if guards := guardsOf(t, e, e.ClientNS, pid); len(guards) > 0 {
		t.Fatalf("after SIGKILL, the guard of pid %d is still there: %q", pid, guards)
	}
	assertRootUntouched(t, pid)
	// What a killed run leaves elsewhere, planted under the dead pid: an
	// unowned table with its rule, and an old-style iptables rule.
	staleTable := fmt.Sprintf("tcpcraft-%d-0badcafe", pid)
	staleComment := fmt.Sprintf("tcpcraft pid=%d guard 10.0.2.21:7002", pid)
	labtest.Run(t, e.Lab, e.ClientNS, "nft", "add table inet "+staleTable+
		" ; add chain inet "+staleTable+" guard { type filter hook input priority filter ; }"+
		" ; add rule inet "+staleTable+" guard ip daddr 10.0.2.21 tcp dport 7002 drop comment \""+staleComment+"\"")
	oldComment := fmt.Sprintf("tcpcraft pid=%d guard 10.0.2.21:7003", pid)
	labtest.Iptables(t, e.Lab, e.ClientNS, "-I", "INPUT", "-d", "10.0.2.21", "-p", "tcp", "--dport", "7003", "-m", "comment", "--comment", oldComment, "-j", "DROP")
	if rules := rulesOf(t, e, e.ClientNS, pid); len(rules) != 2 {
		t.Fatalf("the planted stale guards of pid %d: %q", pid, rules)
	}

	// A live run in the same namespace: cleanup must leave its rule alone.
	live, liveFeed, livePeer := e.connectEcho(t, 7001, "--time-wait", "100ms")

	// --netns: only this test's namespace (a sweep of every namespace
	// would reach other tests' labs on this machine).
	r := e.tcpcraft(t, nil, "cleanup", "--netns", e.ClientNS)
	expectExit(t, r, 0)
	for _, want := range []string{"removed in " + e.ClientNS + ": table inet " + staleTable + ": " + staleComment,
		"removed in " + e.ClientNS + ": iptables rule ", oldComment, "looked at network namespaces: " + e.ClientNS + "\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cleanup should say %q:\n%s", want, r.stdout)
		}
	}
	if rules := rulesOf(t, e, e.ClientNS, pid); len(rules) > 0 {
		t.Errorf("cleanup left the stale rule: %q\ncleanup said:\n%s%s", rules, r.stdout, r.stderr)
	}
	if guards := guardsOf(t, e, e.ClientNS, live.res.pid); len(guards) != 1 {
		t.Errorf("cleanup touched the live run's guard: now %q\ncleanup said:\n%s%s", guards, r.stdout, r.stderr)
	}

	// The live run is undisturbed: it still talks, closes, and removes its
	// own rule.
	if _, err := io.WriteString(liveFeed, "after cleanup\n"); err != nil {
		t.Fatal(err)
	}
	liveFeed.Close()
	lr := live.wait(t)
	assertRootUntouched(t, lr.pid)
	expectExit(t, lr, 0)
	if lr.stdout != "after cleanup\n" {
		t.Errorf("live run's stdout %q", lr.stdout)
	}
	if err := receive(t, livePeer, "the live run's peer"); err != nil {
		t.Errorf("live run's peer: %v", err)
	}
	_ = peer // the killed run's peer keeps its half-open connection; the lab goes with it
}

// 10. The guard is scoped: an ordinary kernel connection between the same
// two namespaces works while tcpcraft holds its own connection.
func TestConnectGuardLeavesOtherTrafficAlone(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	p, feed, peer := e.connectEcho(t, 7000, "--time-wait", "100ms")
	pid := p.res.pid
	if guards := guardsOf(t, e, e.ClientNS, pid); len(guards) != 1 || !strings.Contains(guards[0], "10.0.2.21:") {
		t.Errorf("while running, want one guard for 10.0.2.21 of pid %d, got %q", pid, guards)
	}

	// Kernel to kernel, client -> server and server -> client, while the
	// guard is in place in the client namespace.
	echoes := []struct{ listenNS, dialNS, addr string }{
		{e.ServerNS, e.ClientNS, e.serverAddr(7001)},
		{e.ClientNS, e.ServerNS, net.JoinHostPort(e.ClientIP().String(), "7002")},
	}
	for _, ec := range echoes {
		ln := labtest.Listen(t, e.Lab, ec.listenNS, ec.addr)
		echo := serveOne(t, ln, func(c *net.TCPConn) error {
			_, err := io.Copy(c, c)
			return err
		})
		ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
		c, err := e.Dial(ctx, ec.dialNS, "tcp", ec.addr)
		cancel()
		if err != nil {
			t.Fatalf("kernel connection %s -> %s while tcpcraft runs: %v", ec.dialNS, ec.addr, err)
		}
		_ = c.SetDeadline(time.Now().Add(peerTimeout))
		data := randomBytes(t, 256<<10)
		werr := make(chan error, 1)
		go func() {
			_, err := c.Write(data)
			werr <- errors.Join(err, c.(*net.TCPConn).CloseWrite())
		}()
		back, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.Equal(back, data) {
			t.Errorf("kernel echo via %s: %d of %d bytes back intact=%v, err %v", ec.addr, len(back), len(data), bytes.Equal(back, data), err)
		}
		if err := receive(t, werr, "the kernel client's writer"); err != nil {
			t.Errorf("kernel client write: %v", err)
		}
		if err := receive(t, echo, "the kernel echo server"); err != nil {
			t.Errorf("kernel echo server: %v", err)
		}
	}
	if !p.running() {
		t.Fatalf("tcpcraft ended while the kernel connections ran: %v", p.wait(t))
	}

	// tcpcraft's own connection still works, and closes cleanly.
	if _, err := io.WriteString(feed, "still here\n"); err != nil {
		t.Fatal(err)
	}
	feed.Close()
	r := p.wait(t)
	assertRootUntouched(t, pid)
	expectExit(t, r, 0)
	if r.stdout != "still here\n" {
		t.Errorf("stdout %q, want the echo", r.stdout)
	}
	if err := receive(t, peer, "tcpcraft's peer"); err != nil {
		t.Errorf("tcpcraft's peer: %v", err)
	}
}

// 10b. Where a kernel socket already has the source port (--sport), the
// port cannot be held: the guard is the firewall rule, -v says so and why,
// and the run talks and leaves nothing, as with a held port.
func TestConnectGuardFallsBackToTheFirewall(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	labtest.Listen(t, e.Lab, e.ClientNS, "10.0.2.21:7102") // the port's kernel socket
	p, feed, peer := e.connectEcho(t, 7000, "-v", "--sport", "7102", "--time-wait", "100ms")
	pid := p.res.pid
	if rules := rulesOf(t, e, e.ClientNS, pid); len(rules) != 1 || !strings.Contains(rules[0], "ip daddr 10.0.2.21 tcp dport 7102 drop") {
		t.Errorf("while running, want pid %d's firewall rule for 10.0.2.21:7102, got %q", pid, rules)
	}
	if held := heldPorts(t, e, e.ClientNS, pid); len(held) > 0 {
		t.Errorf("pid %d holds %q, though a kernel socket has its port", pid, held)
	}
	const line = "over the firewall's guard\n"
	if _, err := io.WriteString(feed, line); err != nil {
		t.Fatal(err)
	}
	feed.Close()
	r := p.wait(t)
	assertRootUntouched(t, pid)
	expectExit(t, r, 0)
	if r.stdout != line {
		t.Errorf("stdout %q, want the echo", r.stdout)
	}
	want := "tcpcraft: guard: nftables table inet tcpcraft-"
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "address already in use") {
		t.Errorf("-v should say %q and why the port could not be held:\n%s", want, tail(r.stderr, 2000))
	}
	if guards := guardsOf(t, e, e.ClientNS, pid); len(guards) > 0 {
		t.Errorf("guard left: %q", guards)
	}
	if err := receive(t, peer, "the peer"); err != nil {
		t.Errorf("the peer: %v", err)
	}
}

// 11. Without privileges tcpcraft says so and changes nothing.
func TestConnectWithoutPrivileges(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "setpriv")
	e := newE2ELab(t)
	ln := e.listen(t, 80)
	p := e.start(t, e.ClientNS, nil, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", e.bin, "connect", e.serverAddr(80))
	r := p.wait(t)
	assertRootUntouched(t, r.pid)
	expectExit(t, r, 1)
	if !strings.Contains(r.stderr, "needs root or CAP_NET_RAW+CAP_NET_ADMIN") {
		t.Errorf("stderr does not name the missing privileges:\n%s", r.stderr)
	}
	if rules := guardRules(t, e, e.ClientNS); len(rules) > 0 {
		t.Errorf("an unprivileged run left rules: %q", rules)
	}
	// Nothing reached the server either.
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("an unprivileged run connected to the server")
	}
}

// pcapPackets reads a LINKTYPE_RAW pcap file.
func pcapPackets(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var pkts [][]byte
	for {
		data, _, err := rd.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pkts = append(pkts, data)
	}
}

// partialChecksum is what the TCP checksum field of an IPv4 packet holds when
// the kernel left it for offload (CHECKSUM_PARTIAL): the folded sum of the
// pseudo-header (RFC 9293 §3.1), not complemented.
func partialChecksum(pkt []byte) uint16 {
	ihl := int(pkt[0]&0x0f) * 4
	tcpLen := int(binary.BigEndian.Uint16(pkt[2:4])) - ihl
	sum := uint32(binary.BigEndian.Uint16(pkt[12:14])) + uint32(binary.BigEndian.Uint16(pkt[14:16])) +
		uint32(binary.BigEndian.Uint16(pkt[16:18])) + uint32(binary.BigEndian.Uint16(pkt[18:20])) +
		6 + uint32(tcpLen)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// 12. --pcap: tshark reads the file; tcpcraft's own segments carry correct
// checksums; every segment of the trace is in the file.
func TestConnectPcap(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "tshark")
	e := newE2ELab(t)
	peer := serveOne(t, e.listen(t, 7000), func(c *net.TCPConn) error {
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
	dir := t.TempDir()
	file := filepath.Join(dir, "session.pcap")
	data := randomBytes(t, 100<<10)
	r := e.tcpcraft(t, bytes.NewReader(data), "connect", "--pcap", file, "--time-wait", "100ms", e.serverAddr(7000))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != string(data) {
		t.Fatalf("echo differs: %d bytes back, sent %d", len(r.stdout), len(data))
	}

	// Only IP and TCP are dissected: the random payload must not be taken
	// for whatever protocol owns port 7000 (Gryphon) and called malformed.
	out, err := exec.Command("tshark", "-r", file, "-n",
		"--disable-protocol", "ALL", "--enable-protocol", "frame,raw,ip,tcp",
		// Debian 12's tshark (4.0) ignores "ALL" above: force the payload
		// to plain data, or port 7000's Gryphon dissector may call random
		// bytes malformed.
		"-d", "tcp.port==7000,data",
		"-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=|",
		"-e", "frame.number", "-e", "ip.src", "-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "_ws.malformed",
		"-e", "frame.protocols",
	).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tshark: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	pkts := pcapPackets(t, file)
	trace := segmentLines(r.stderr, 0)
	if len(lines) != len(trace) || len(pkts) != len(trace) {
		t.Fatalf("tshark sees %d packets, pcapgo %d, the trace shows %d segments", len(lines), len(pkts), len(trace))
	}
	var outbound, inbound, partial int
	for i, line := range lines {
		f := strings.Split(line, "|")
		if len(f) != 6 {
			t.Fatalf("tshark line %q: want 6 fields", line)
		}
		if f[4] != "" || !strings.HasPrefix(f[5], "raw:ip:tcp") {
			t.Errorf("frame %s is malformed or not TCP/IP: %q", f[0], line)
		}
		// Status values: 0 bad, 1 good, 2 unverified.
		if f[2] != "1" {
			t.Errorf("frame %s: IP checksum status %s, want good", f[0], f[2])
		}
		switch f[1] {
		case "10.0.2.21": // sent by tcpcraft
			outbound++
			if f[3] != "1" {
				t.Errorf("frame %s sent by tcpcraft: TCP checksum status %s, want good (1)", f[0], f[3])
			}
			if !strings.Contains(trace[i], " > ") {
				t.Errorf("frame %s is outbound, trace line %d is not: %s", f[0], i, trace[i])
			}
		case "10.0.2.20": // captured from the kernel peer on the veth
			inbound++
			if !strings.Contains(trace[i], " < ") {
				t.Errorf("frame %s is inbound, trace line %d is not: %s", f[0], i, trace[i])
			}
			switch f[3] {
			case "1":
			case "0":
				// Checksum offload: the kernel left the sum of the
				// pseudo-header in the field. Anything else is corrupt.
				if got, want := binary.BigEndian.Uint16(pkts[i][int(pkts[i][0]&0xf)*4+16:]), partialChecksum(pkts[i]); got != want {
					t.Errorf("frame %s from the peer: checksum %#04x is neither right nor the partial %#04x", f[0], got, want)
				}
				partial++
			default:
				t.Errorf("frame %s: TCP checksum status %q", f[0], f[3])
			}
		default:
			t.Errorf("frame %s from unexpected source %s", f[0], f[1])
		}
	}
	if outbound == 0 || inbound == 0 {
		t.Errorf("want segments both ways, got %d out and %d in", outbound, inbound)
	}
	t.Logf("%d frames: %d out (checksums good), %d in (%d with partial offload checksums)", len(lines), outbound, inbound, partial)
}

// 13. --json: every line on stderr is one JSON object.
func TestConnectJSONTrace(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peer := serveOne(t, e.listen(t, 7000), func(c *net.TCPConn) error {
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
	r := e.tcpcraft(t, strings.NewReader("json please\n"), "connect", "--json", "--time-wait", "100ms", e.serverAddr(7000))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != "json please\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	type object struct {
		Type     string `json:"type"`
		Dir      string `json:"dir"`
		From     string `json:"from"`
		To       string `json:"to"`
		Src      string `json:"src"`
		Dst      string `json:"dst"`
		Flags    string `json:"flags"`
		IPLen    int    `json:"ip_len"`
		DataOff  int    `json:"data_offset"`
		Len      int    `json:"len"`
		Checksum struct {
			Status string `json:"status"`
		} `json:"tcp_checksum"`
	}
	counts := map[string]int{}
	var states []string
	for i, line := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Errorf("stderr line %d is not a JSON object: %v\n%s", i+1, err, line)
			continue
		}
		var o object
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Errorf("line %d: %v", i+1, err)
			continue
		}
		switch o.Type {
		case "segment":
			counts["segment "+o.Dir]++
			want := map[string][2]string{"out": {"10.0.2.21", "10.0.2.20"}, "in": {"10.0.2.20", "10.0.2.21"}}[o.Dir]
			if o.Src != want[0] || o.Dst != want[1] {
				t.Errorf("line %d: %s segment %s -> %s", i+1, o.Dir, o.Src, o.Dst)
			}
			// What the trace shows is what went on the wire: lengths
			// and checksums as sent.
			if o.DataOff < 5 || o.IPLen != 20+4*o.DataOff+o.Len {
				t.Errorf("line %d: ip_len %d, data_offset %d, len %d do not add up:\n%s", i+1, o.IPLen, o.DataOff, o.Len, line)
			}
			if o.Dir == "out" && o.Checksum.Status != "good" {
				t.Errorf("line %d: our own segment's checksum is %q", i+1, o.Checksum.Status)
			}
		case "state":
			counts["state"]++
			if len(states) == 0 {
				states = append(states, o.From)
			}
			states = append(states, o.To)
		default:
			counts[o.Type]++
		}
	}
	if counts["segment in"] == 0 || counts["segment out"] == 0 || counts["state"] == 0 {
		t.Errorf("want segments in and out and state objects, got %v", counts)
	}
	if len(states) < 3 || states[0] != "CLOSED" || states[2] != "ESTABLISHED" || states[len(states)-1] != "CLOSED" {
		t.Errorf("state objects trace %q", states)
	}
}

// Bad addresses: usage errors (exit 2), or a failure (exit 1) for a name
// that does not resolve; either way nothing on the system changed.
func TestConnectUsageErrors(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	dir := t.TempDir()
	for i, tc := range []struct {
		addr, says string
		code       int
	}{
		{"10.0.2.20", "want HOST:PORT", 2},
		{"10.0.2.20:99999", "not a number 1-65535", 2},
		{"10.0.2.20:0", "not a number 1-65535", 2},
		// A name that does not resolve is a runtime failure: the
		// resolver said no (here, the lab has no route to any).
		{"nohost.invalid:80", `cannot resolve "nohost.invalid"`, 1},
	} {
		file := filepath.Join(dir, fmt.Sprintf("run%d.pcap", i))
		r := e.tcpcraft(t, nil, "connect", "--pcap", file, tc.addr)
		if r.code != tc.code {
			t.Errorf("connect %s: want exit %d, got %v", tc.addr, tc.code, r)
			continue
		}
		if !strings.Contains(r.stderr, tc.says) || !strings.Contains(r.stderr, "tcpcraft connect:") {
			t.Errorf("connect %s: stderr does not say %q:\n%s", tc.addr, tc.says, r.stderr)
		}
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("connect %s: the pcap file was created (%v)", tc.addr, err)
		}
		if rules := guardRules(t, e, e.ClientNS); len(rules) > 0 {
			t.Errorf("connect %s: rules installed: %q", tc.addr, rules)
		}
		if r.stdout != "" {
			t.Errorf("connect %s: stdout %q", tc.addr, r.stdout)
		}
	}
}

// connectEcho starts `tcpcraft connect args... 10.0.2.20:port` against a
// kernel echo server on port, which closes after our FIN, with standard
// input a pipe the test writes to (feed), and returns once the server has
// accepted the connection; peer reports how the server's side ended.
func (e *e2eLab) connectEcho(t *testing.T, port int, args ...string) (p *process, feed *os.File, peer <-chan error) {
	t.Helper()
	accepted := make(chan struct{})
	peer = serveOne(t, e.listen(t, port), func(c *net.TCPConn) error {
		close(accepted)
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
	stdin, feed := openStdin(t)
	p = e.startTcpcraft(t, stdin, append(append([]string{"connect"}, args...), e.serverAddr(port))...)
	stdin.Close()
	awaitAccepted(t, p, accepted)
	return p, feed, peer
}

// awaitAccepted returns once the peer has accepted tcpcraft's connection
// (accepted is closed), and fails t if p ends or 20 s pass first.
func awaitAccepted(t *testing.T, p *process, accepted <-chan struct{}) {
	t.Helper()
	select {
	case <-accepted:
	case <-p.done:
		t.Fatalf("tcpcraft ended before the peer accepted: %v", p.wait(t))
	case <-time.After(20 * time.Second):
		t.Fatal("the peer never accepted tcpcraft's connection")
	}
}
