package cmd

// End-to-end tests of `tcpcraft listen` against the real Linux kernel: each
// test makes its own lab (client 10.0.2.21, server 10.0.2.20), runs tcpcraft
// in the SERVER namespace (as a subprocess, or in-process for the leak
// test) and kernel clients (Go net.Dial, curl, `tcpcraft send`) in the
// client namespace, and checks what both ends saw, the exit code and that
// no firewall rule of tcpcraft is left in either namespace or put in the
// root namespace.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// newListenLab is newE2ELab plus a cleanup check that no rule of tcpcraft is
// left in the server namespace, where listen runs.
func newListenLab(t *testing.T) *e2eLab {
	t.Helper()
	e := newE2ELab(t)
	t.Cleanup(func() {
		if rules := guardRules(t, e, e.ServerNS); len(rules) > 0 {
			t.Errorf("firewall rules of tcpcraft left in %s:\n%s", e.ServerNS, strings.Join(rules, "\n"))
		}
	})
	return e
}

// startListen starts `tcpcraft listen args...` in the server namespace.
// If the test ends with it still running (a failure half-way), it gets
// SIGINT first, so that it removes its rule before the SIGKILL of e.start's
// cleanup.
func (e *e2eLab) startListen(t *testing.T, stdin io.Reader, args ...string) *process {
	t.Helper()
	p := e.start(t, e.ServerNS, stdin, append([]string{e.bin, "listen"}, args...)...)
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
		}
	})
	return p
}

// waitListening waits for the "listening on" note of a listen run that
// traces (the note comes once the capture is open and the port is
// listening, so a SYN sent afterwards is answered).
func waitListening(t *testing.T, p *process) {
	t.Helper()
	waitUntil(t, 20*time.Second, "tcpcraft listen to say it is listening", func() bool {
		if !p.running() {
			t.Fatalf("tcpcraft listen ended before listening: %v", p.wait(t))
		}
		return strings.Contains(p.stderr.String(), "listening on")
	})
}

// waitEchoing waits until a listen run that echoes answers (needed with -q,
// which prints no "listening on"): a connection made before the rule or
// the capture is in place is refused by the kernel or its SYN is dropped,
// so it retries until one byte comes back.
func waitEchoing(t *testing.T, e *e2eLab, p *process, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p != nil && !p.running() {
			t.Fatalf("tcpcraft listen ended before answering: %v", p.wait(t))
		}
		err := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			conn, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(port))
			if err != nil {
				return err
			}
			defer conn.Close()
			return echoCheck(conn, []byte{'?'})
		}()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpcraft listen on :%d does not echo: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// interruptListen sends SIGINT, expects exit 130 and checks that the run's
// rule is gone from the server namespace and never was in the root one.
func interruptListen(t *testing.T, e *e2eLab, p *process) runResult {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	r := p.wait(t)
	expectExit(t, r, 130)
	if rules := guardsOf(t, e, e.ServerNS, r.pid); len(rules) > 0 {
		t.Errorf("rule left in the server namespace after SIGINT: %q", rules)
	}
	assertRootUntouched(t, r.pid)
	return r
}

// echoSequentially makes n short connections to 10.0.2.20:port from one
// thread in the client namespace, one after the other, each sending msg(i)
// and checking its echo.
func echoSequentially(e *e2eLab, port, n int, msg func(i int) []byte) error {
	return lab.Do(e.ClientNS, func() error {
		for i := range n {
			conn, err := net.DialTimeout("tcp", e.serverAddr(port), 5*time.Second)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			err = echoCheck(conn, msg(i))
			conn.Close()
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
		}
		return nil
	})
}

// dialServer connects a kernel client in the client namespace to
// 10.0.2.20:port; the connection is closed at cleanup.
func dialServer(t *testing.T, e *e2eLab, port int) *net.TCPConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(port))
	if err != nil {
		t.Fatalf("connecting to :%d: %v", port, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn.(*net.TCPConn)
}

// echoCheck writes data and reads exactly len(data) bytes back, comparing
// them (the connection stays open).
func echoCheck(conn net.Conn, data []byte) error {
	_ = conn.SetDeadline(time.Now().Add(peerTimeout))
	defer conn.SetDeadline(time.Time{})
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		werr <- err
	}()
	got := make([]byte, len(data))
	n, err := io.ReadFull(conn, got)
	if err != nil {
		return fmt.Errorf("read %d of %d echoed bytes: %w", n, len(data), err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("echo differs from what was sent (%d bytes, first difference at %d)", len(data), firstDiff(got, data))
	}
	return nil
}

// echoAll sends data, half-closes, and reads until EOF: the echo must be
// exactly data, and the server must then close its side.
func echoAll(conn *net.TCPConn, data []byte) error {
	_ = conn.SetDeadline(time.Now().Add(peerTimeout))
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		if err == nil {
			err = conn.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		return fmt.Errorf("reading the echo (%d bytes so far): %w", len(got), err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("echo differs: got %d bytes, sent %d, first difference at %d", len(got), len(data), firstDiff(got, data))
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// listenStateRE matches a state line of listen's text trace, which names
// the peer: "  0.001234   [10.0.2.21:41000] state LISTEN -> SYN-RECEIVED".
var listenStateRE = regexp.MustCompile(`(?m)^ *[0-9.]+ +\[[0-9.:]+\] state (\S+) -> (\S+)`)

// listenStatePath is statePath for listen's trace (one connection).
func listenStatePath(trace string) []string {
	var path []string
	for _, m := range listenStateRE.FindAllStringSubmatch(trace, -1) {
		if len(path) == 0 {
			path = append(path, m[1])
		} else if path[len(path)-1] != m[1] {
			path = append(path, "?"+m[1])
		}
		path = append(path, m[2])
	}
	return path
}

// waitFor polls cond until it holds or timeout passes, and says which.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// traceOf renders the trace entries of the peer at port for a test log.
func traceOf(trace []traceEntry, port uint16) string {
	var b strings.Builder
	suffix := fmt.Sprintf(":%d", port)
	for _, x := range trace {
		if (x.Type == "segment" && (x.SPort == port || x.DPort == port)) || strings.HasSuffix(x.Remote, suffix) {
			fmt.Fprintf(&b, "%+v\n", x)
		}
	}
	return b.String()
}

// traceEntry is one line of a --json trace (segments, events and notes
// share it; fields of the other kinds stay zero).
type traceEntry struct {
	Type     string  `json:"type"`
	Dir      string  `json:"dir"`
	T        float64 `json:"t"`
	SPort    uint16  `json:"sport"`
	DPort    uint16  `json:"dport"`
	FlagBits uint16  `json:"flag_bits"`
	Seq      uint32  `json:"seq"`
	Ack      uint32  `json:"ack"`
	Len      int     `json:"len"`
	Win      uint16  `json:"win"`
	Remote   string  `json:"remote"`
	From     string  `json:"from"`
	To       string  `json:"to"`
	Msg      string  `json:"msg"`
	Error    string  `json:"error"`
}

func (e traceEntry) has(f craft.Flags) bool { return craft.Flags(e.FlagBits)&f == f }

// jsonTrace parses a --json trace; lines that are not JSON (error messages
// printed at exit) are skipped.
func jsonTrace(t *testing.T, stderr string) []traceEntry {
	t.Helper()
	var out []traceEntry
	// A trace read while tcpcraft runs may end inside a line: tcpcraft
	// writes its trace in pieces of up to 64 KiB, which a pipe hands over
	// in parts. The line is whole in a later read.
	stderr = stderr[:strings.LastIndexByte(stderr, '\n')+1]
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var e traceEntry
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("bad JSON trace line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// segmentsWith returns the traced segments in direction dir ("in"/"out")
// whose peer port is port.
func segmentsWith(trace []traceEntry, dir string, port uint16) []traceEntry {
	var out []traceEntry
	for _, e := range trace {
		if e.Type != "segment" || e.Dir != dir {
			continue
		}
		if (dir == "in" && e.SPort == port) || (dir == "out" && e.DPort == port) {
			out = append(out, e)
		}
	}
	return out
}

// reachedState reports whether the trace shows the connection with remote
// entering state to.
func reachedState(trace []traceEntry, remote, to string) bool {
	for _, e := range trace {
		if e.Type == "state" && e.Remote == remote && e.To == to {
			return true
		}
	}
	return false
}

// dropRSTsFrom makes the client namespace drop every RST its kernel sends
// from sports (an iptables port or range): a `tcpcraft send --no-reset`
// SYN from there then "vanishes" mid-handshake, never answering the
// SYN-ACK, also after send has gone (send's own packets may leave
// through an AF_PACKET socket, which OUTPUT rules do not see).
// The returned function removes the rule again.
func dropRSTsFrom(t *testing.T, e *e2eLab, sports string) (undo func()) {
	t.Helper()
	rule := []string{"OUTPUT", "-p", "tcp", "--sport", sports, "--tcp-flags", "RST", "RST", "-j", "DROP"}
	labtest.Iptables(t, e.Lab, e.ClientNS, append([]string{"-A"}, rule...)...)
	return func() { labtest.Iptables(t, e.Lab, e.ClientNS, append([]string{"-D"}, rule...)...) }
}

// sendFromClient runs `tcpcraft send --json args...` in the client
// namespace and returns its replies.
func sendFromClient(t *testing.T, e *e2eLab, args ...string) (runResult, []traceEntry) {
	t.Helper()
	r := e.start(t, e.ClientNS, nil, append([]string{e.bin, "send", "--json"}, args...)...).wait(t)
	assertRootUntouched(t, r.pid)
	if rules := guardsOf(t, e, e.ClientNS, r.pid); len(rules) > 0 {
		t.Errorf("tcpcraft send left a rule: %q", rules)
	}
	var replies []traceEntry
	for _, x := range jsonTrace(t, r.stdout) {
		if x.Type == "reply" {
			replies = append(replies, x)
		}
	}
	return r, replies
}

// 1. curl gets a canned HTTP reply from `listen :8080 < reply`; the
// request is on tcpcraft's stdout; exit 0.
func TestListenCurl(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "curl")
	e := newListenLab(t)
	body := "hello from tcpcraft listen\n"
	reply := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	p := e.startListen(t, strings.NewReader(reply), "--time-wait", "100ms", ":8080")
	waitListening(t, p)

	curl := e.start(t, e.ClientNS, nil, "curl", "-sS", "--max-time", "20", "-H", "X-Test: listen-e2e", "http://10.0.2.20:8080/hello?x=1").wait(t)
	if curl.code != 0 {
		t.Fatalf("curl: %v\nstdout %q", curl, curl.stdout)
	}
	if curl.stdout != body {
		t.Errorf("curl printed %q, want %q", curl.stdout, body)
	}
	r := p.wait(t)
	expectExit(t, r, 0)
	for _, want := range []string{"GET /hello?x=1 HTTP/1.1\r\n", "Host: 10.0.2.20:8080\r\n", "X-Test: listen-e2e\r\n", "User-Agent: curl/"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("tcpcraft's stdout lacks %q:\n%q", want, r.stdout)
		}
	}
	if !strings.HasSuffix(r.stdout, "\r\n\r\n") {
		t.Errorf("tcpcraft's stdout should be exactly the request, ending with an empty line: %q", r.stdout)
	}
	path := strings.Join(listenStatePath(r.stderr), " ")
	if !strings.HasPrefix(path, "CLOSED LISTEN SYN-RECEIVED ESTABLISHED ") || !strings.HasSuffix(path, " CLOSED") {
		t.Errorf("state path %q: want CLOSED, LISTEN, SYN-RECEIVED, ESTABLISHED ... CLOSED\n%s", path, tail(r.stderr, 3000))
	}
	if rules := guardsOf(t, e, e.ServerNS, r.pid); len(rules) > 0 {
		t.Errorf("rule left after exit: %q", rules)
	}
	assertRootUntouched(t, r.pid)
}

// 2. 64 concurrent kernel clients each send 256 KB of their own and read
// back exactly their bytes, from --echo and from --exec cat; SIGINT at the
// end gives exit 130 and leaves no rule.
func TestListenManyConcurrentClients(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const clients, size = 64, 256 << 10
	for _, mode := range []struct {
		name string
		port int
		args []string
	}{
		{"echo", 8090, []string{"--echo"}},
		{"exec cat", 8091, []string{"--exec", "cat"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			args := append([]string{"-q", "-k", "--time-wait", "100ms"}, mode.args...)
			p := e.startListen(t, nil, append(args, fmt.Sprintf(":%d", mode.port))...)
			waitEchoing(t, e, p, mode.port)

			data := make([][]byte, clients)
			for i := range data {
				data[i] = randomBytes(t, size)
				binary.BigEndian.PutUint32(data[i], uint32(i)) // distinct even if the randomness were not
			}
			start := time.Now()
			errs := make(chan error, clients)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					conn, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(mode.port))
					if err != nil {
						errs <- fmt.Errorf("client %d: %w", i, err)
						return
					}
					defer conn.Close()
					if err := echoAll(conn.(*net.TCPConn), data[i]); err != nil {
						errs <- fmt.Errorf("client %d: %w", i, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			failed := 0
			for err := range errs {
				failed++
				t.Error(err)
			}
			t.Logf("%d clients x %d KB echoed in %v (%d failed)", clients, size>>10, time.Since(start).Round(time.Millisecond), failed)
			if !p.running() {
				t.Fatalf("tcpcraft ended during the test: %v", p.wait(t))
			}
			r := interruptListen(t, e, p)
			if strings.Contains(r.stderr, "panic") {
				t.Errorf("stderr mentions a panic:\n%s", tail(r.stderr, 3000))
			}
		})
	}
}

// 3. Clients that close first, reset mid-stream or vanish mid-handshake do
// not disturb the others, and their state is freed (the vanished one is
// kept half-open only while its SYN-ACK is retransmitted).
func TestListenMisbehavingClients(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8100
	p := e.startListen(t, nil, "--json", "-k", "--echo", "--time-wait", "100ms", fmt.Sprintf(":%d", port))
	waitListening(t, p)

	// A long-lived good client, open across the whole test.
	steady := dialServer(t, e, port)
	if err := echoCheck(steady, randomBytes(t, 16<<10)); err != nil {
		t.Fatalf("steady client: %v", err)
	}

	// Vanishes mid-handshake: one SYN, no clean-up RST (--no-reset), and
	// every RST the client kernel would send from that port (its answer
	// to the retransmitted SYN-ACKs) is dropped.
	const vanishPort = 40001
	dropRSTsFrom(t, e, fmt.Sprint(vanishPort))
	sr, replies := sendFromClient(t, e, "--flags", "S", "--seq", "1000", "--opt", "linux", "--no-reset", "--sport", fmt.Sprint(vanishPort), "--wait", "500ms", e.serverAddr(port))
	if sr.code != 0 || len(replies) == 0 || !replies[0].has(craft.FlagSYN|craft.FlagACK) || replies[0].Ack != 1001 {
		t.Fatalf("the half-open client's SYN should draw a SYN-ACK acking 1001: %v\nstdout %s", sr, sr.stdout)
	}
	vanishedAt := time.Now()

	// Closes first: sends, then closes without reading the echo.
	closer := dialServer(t, e, port)
	if _, err := closer.Write(randomBytes(t, 32<<10)); err != nil {
		t.Fatalf("closing client: %v", err)
	}
	closer.Close()

	// Resets mid-stream: writes while the echo comes back, then aborts.
	resetter := dialServer(t, e, port)
	if err := echoCheck(resetter, randomBytes(t, 8<<10)); err != nil {
		t.Fatalf("resetting client, before the reset: %v", err)
	}
	if _, err := resetter.Write(randomBytes(t, 64<<10)); err != nil {
		t.Fatalf("resetting client: %v", err)
	}
	_ = resetter.SetLinger(0)
	resetter.Close()

	// Good clients are still served, the steady one and new ones.
	if err := echoCheck(steady, randomBytes(t, 64<<10)); err != nil {
		t.Fatalf("steady client after the others misbehaved: %v", err)
	}
	late := dialServer(t, e, port)
	if err := echoAll(late, randomBytes(t, 128<<10)); err != nil {
		t.Fatalf("a client after the others misbehaved: %v", err)
	}

	// Wait for two SYN-ACK retransmissions to the vanished client (RTO 1 s,
	// then 2 s: RFC 6298 §5.5 back-off).
	vanished := fmt.Sprintf("10.0.2.21:%d", vanishPort)
	waitUntil(t, 10*time.Second, "two SYN-ACK retransmissions to the half-open client", func() bool {
		return len(segmentsWith(jsonTrace(t, p.stderr.String()), "out", vanishPort)) >= 3
	})
	t.Logf("3 SYN-ACKs to the half-open client within %v", time.Since(vanishedAt).Round(time.Millisecond))
	if err := echoCheck(steady, []byte("still there?")); err != nil {
		t.Fatalf("steady client at the end: %v", err)
	}
	// The closing and the resetting clients' connections are gone while
	// tcpcraft still runs (not merely aborted at shutdown).
	for name, c := range map[string]*net.TCPConn{"closing": closer, "resetting": resetter} {
		remote := c.LocalAddr().String()
		if !waitFor(5*time.Second, func() bool { return reachedState(jsonTrace(t, p.stderr.String()), remote, "CLOSED") }) {
			t.Errorf("the %s client %s was not freed (CLOSED) while tcpcraft ran:\n%s", name, remote, traceOf(jsonTrace(t, p.stderr.String()), uint16(c.LocalAddr().(*net.TCPAddr).Port)))
		}
	}

	r := interruptListen(t, e, p)
	trace := jsonTrace(t, r.stderr)
	synAcks := segmentsWith(trace, "out", vanishPort)
	for i, s := range synAcks {
		if !s.has(craft.FlagSYN|craft.FlagACK) && !(i == len(synAcks)-1 && s.has(craft.FlagRST)) {
			t.Errorf("segment %d to the half-open client is flags %#x, want SYN-ACK (or a final RST at shutdown)", i, s.FlagBits)
		}
		if i > 0 && s.Seq != synAcks[0].Seq && !s.has(craft.FlagRST) {
			t.Errorf("SYN-ACK retransmission %d has seq %d, the first had %d", i, s.Seq, synAcks[0].Seq)
		}
	}
	if len(synAcks) >= 3 {
		gap1, gap2 := synAcks[1].T-synAcks[0].T, synAcks[2].T-synAcks[1].T
		if gap2 < 1.5*gap1 {
			t.Errorf("SYN-ACK retransmissions at +%.3fs and +%.3fs: the timer should back off (RFC 6298 §5.5)", gap1, gap1+gap2)
		}
	}
	if reachedState(trace, vanished, "ESTABLISHED") {
		t.Errorf("the half-open client reached ESTABLISHED")
	}
	for name, c := range map[string]*net.TCPConn{"closing": closer, "resetting": resetter} {
		if remote := c.LocalAddr().String(); !reachedState(trace, remote, "ESTABLISHED") {
			t.Errorf("the %s client %s never was ESTABLISHED", name, remote)
		}
	}
	// The reset one was freed by its RST.
	resetRemote := resetter.LocalAddr().String()
	freedByReset := false
	for _, x := range trace {
		if x.Type == "error" && x.Remote == resetRemote && strings.Contains(x.Error, "reset") {
			freedByReset = true
		}
	}
	if !freedByReset {
		t.Errorf("no 'reset' error traced for the resetting client %s", resetRemote)
	}
}

// 4. 1000 sequential short connections leave no goroutines or heap behind.
// tcpcraft listen runs in this process, inside the server namespace, so the
// test can measure it; not parallel, so no other test disturbs the counts.
func TestListenNoLeakAfterManyConnections(t *testing.T) {
	e := newListenLab(t)
	const port = 9000
	ctx, cancel := context.WithCancel(context.Background())
	app := NewApp()
	stdoutBuf, stderrBuf := &syncBuffer{}, &syncBuffer{}
	app.Writer, app.ErrWriter, app.Reader = stdoutBuf, stderrBuf, strings.NewReader("")
	exit := make(chan int, 1)
	go func() {
		code := -1
		// lab.Do runs the whole listen run on one OS thread inside the
		// server namespace: its guard rule, capture and raw sockets are
		// made there (TestKernelListeningSeesThisThreadsNamespace: its
		// port check reads that namespace too).
		err := lab.Do(e.ServerNS, func() error {
			code = Run(ctx, app, []string{"tcpcraft", "listen", "-q", "-k", "--echo", "--time-wait", "10ms", fmt.Sprintf(":%d", port)})
			return nil
		})
		if err != nil {
			t.Errorf("lab.Do: %v", err)
		}
		exit <- code
	}()
	stopped := false
	stop := func() int {
		cancel()
		select {
		case code := <-exit:
			stopped = true
			return code
		case <-time.After(30 * time.Second):
			t.Fatalf("the in-process listen did not stop 30 s after cancel")
			return -1
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	waitEchoing(t, e, nil, port)

	// connectMany runs n sequential short connections from one thread in
	// the client namespace.
	connectMany := func(n int) {
		t.Helper()
		msg := []byte("ping-0000")
		err := echoSequentially(e, port, n, func(i int) []byte {
			copy(msg[5:], fmt.Sprintf("%04d", i%10000))
			return msg
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// settle waits until the goroutine count has not changed for 300 ms
	// (the last connections finish LAST-ACK, their handlers return), then
	// returns it with the heap in use after a full GC.
	settle := func() (goroutines int, heap uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		last, stableSince := runtime.NumGoroutine(), time.Now()
		for time.Since(stableSince) < 300*time.Millisecond && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			if n := runtime.NumGoroutine(); n != last {
				last, stableSince = n, time.Now()
			}
		}
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return last, ms.HeapInuse
	}

	connectMany(100)
	g0, h0 := settle()

	// What an open connection costs, to show that the check below could
	// see a leak: 100 connections held open at once.
	const held = 100
	var open []net.Conn
	err := lab.Do(e.ClientNS, func() error {
		for i := range held {
			conn, err := net.DialTimeout("tcp", e.serverAddr(port), 5*time.Second)
			if err != nil {
				return fmt.Errorf("held connection %d: %w", i, err)
			}
			open = append(open, conn)
			if err := echoCheck(conn, []byte("held")); err != nil {
				return fmt.Errorf("held connection %d: %w", i, err)
			}
		}
		return nil
	})
	gOpen, hOpen := settle()
	for _, c := range open {
		c.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	perConnHeap := (float64(hOpen) - float64(h0)) / held
	t.Logf("%d connections open: goroutines %d -> %d, heap %+.0f KB per connection", held, g0, gOpen, perConnHeap/1024)
	if gOpen < g0+held {
		t.Errorf("with %d connections open, goroutines went from %d only to %d: the measure cannot see a handler leak", held, g0, gOpen)
	}

	start := time.Now()
	connectMany(1000)
	elapsed := time.Since(start)
	g1, h1 := settle()
	t.Logf("1000 connections in %v (%.0f/s); goroutines %d -> %d; heap in use %.2f MB -> %.2f MB",
		elapsed.Round(time.Millisecond), 1000/elapsed.Seconds(), g0, g1, float64(h0)/1e6, float64(h1)/1e6)
	if g1 > g0+3 {
		t.Errorf("goroutines grew from %d to %d over 1000 closed connections", g0, g1)
	}
	// At most 2 MB, and less than 20 of the connections' worth (so a leak
	// of every connection, or of a few percent, fails).
	limit := min(2<<20, 20*perConnHeap)
	if growth := float64(h1) - float64(h0); growth > limit {
		t.Errorf("heap in use grew by %.0f KB over 1000 closed connections (limit %.0f KB; an open connection takes %.0f KB)", growth/1024, limit/1024, perConnHeap/1024)
	}

	if code := stop(); code != 130 {
		t.Errorf("the in-process listen exited %d after cancel, want 130; stderr:\n%s", code, tail(stderrBuf.String(), 2000))
	}
	if rules := guardsOf(t, e, e.ServerNS, os.Getpid()); len(rules) > 0 {
		t.Errorf("rule left after the in-process listen: %q", rules)
	}
	assertRootUntouched(t, os.Getpid())
	// The run's own goroutines (the accept loop in lab.Do, the stack's
	// reader and timer) are gone too once it returned.
	if gEnd, _ := settle(); gEnd > g0-3 {
		t.Errorf("goroutines: %d while listening idle, %d after the run ended; want at least 3 fewer", g0, gEnd)
	}
}

// 5. With a kernel socket listening on the port, listen refuses (exit 1,
// no rule); with --force it takes the port's segments.
func TestListenRefusesPortInUse(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8110
	kernel := e.listen(t, port)

	r := e.startListen(t, nil, "--echo", fmt.Sprintf(":%d", port)).wait(t)
	expectExit(t, r, 1)
	if !strings.Contains(r.stderr, "tcpcraft listen: a kernel socket already listens on *:8110") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("want a clear message naming the port and --force, got:\n%s", r.stderr)
	}
	if rules := guardsOf(t, e, e.ServerNS, r.pid); len(rules) > 0 {
		t.Errorf("a refused listen installed a rule: %q", rules)
	}
	// The same with an explicit address.
	r = e.startListen(t, nil, fmt.Sprintf("10.0.2.20:%d", port)).wait(t)
	expectExit(t, r, 1)
	if !strings.Contains(r.stderr, "already listens") {
		t.Errorf("10.0.2.20:%d: want the port-in-use message, got:\n%s", port, r.stderr)
	}

	p := e.startListen(t, nil, "--json", "-k", "--echo", "--force", fmt.Sprintf(":%d", port))
	waitListening(t, p)
	conn := dialServer(t, e, port)
	if err := echoAll(conn, []byte("answered by tcpcraft, not the kernel")); err != nil {
		t.Fatalf("with --force: %v", err)
	}
	// The kernel's listener never saw the connection.
	_ = kernel.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
	if c, err := kernel.Accept(); err == nil {
		c.Close()
		t.Errorf("the kernel's listener accepted a connection meant for tcpcraft")
	}
	interruptListen(t, e, p)

	// Once tcpcraft is gone, the kernel's listener gets its port back.
	_ = kernel.(*net.TCPListener).SetDeadline(time.Now().Add(peerTimeout))
	accepted := make(chan error, 1)
	go func() {
		c, err := kernel.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	dialServer(t, e, port)
	if err := receive(t, accepted, "the kernel listener"); err != nil {
		t.Errorf("the kernel's listener after tcpcraft exited: %v", err)
	}
}

// 6. A segment from an unknown 4-tuple that is not a SYN: an ACK draws a
// RST with seq = SEG.ACK, a RST draws nothing (RFC 9293 §3.10.7.2).
func TestListenAnswersStrayACKWithRST(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8120
	p := e.startListen(t, nil, "--json", "-k", "--echo", fmt.Sprintf(":%d", port))
	waitListening(t, p)

	r, replies := sendFromClient(t, e, "--flags", "A", "--seq", "5000", "--ack", "123456", "--sport", "40011", "--wait", "500ms", e.serverAddr(port))
	if r.code != 0 || len(replies) != 1 {
		t.Fatalf("want exactly one reply to a stray ACK: %v\nstdout %s", r, r.stdout)
	}
	rst := replies[0]
	if craft.Flags(rst.FlagBits) != craft.FlagRST || rst.Seq != 123456 || rst.SPort != port || rst.DPort != 40011 {
		t.Errorf("reply to a stray ACK: flags %#x seq %d %d->%d; want a bare RST, seq 123456 (SEG.ACK), %d->40011", rst.FlagBits, rst.Seq, rst.SPort, rst.DPort, port)
	}

	r, replies = sendFromClient(t, e, "--flags", "R", "--seq", "5000", "--sport", "40012", "--wait", "500ms", e.serverAddr(port))
	if len(replies) != 0 || r.code != 1 {
		t.Errorf("a stray RST must not be answered; got %d replies, %v\nstdout %s", len(replies), r, r.stdout)
	}

	// Still listening: a real client is served.
	if err := echoAll(dialServer(t, e, port), []byte("after the strays")); err != nil {
		t.Fatal(err)
	}
	out := interruptListen(t, e, p)
	trace := jsonTrace(t, out.stderr)
	if n := len(segmentsWith(trace, "in", 40011)); n != 1 {
		t.Errorf("tcpcraft traced %d segments from the stray ACK, want 1", n)
	}
	if n := len(segmentsWith(trace, "out", 40012)); n != 0 {
		t.Errorf("tcpcraft sent %d segments in answer to a stray RST", n)
	}
	for _, x := range trace {
		if x.Type == "state" && (strings.HasSuffix(x.Remote, ":40011") || strings.HasSuffix(x.Remote, ":40012")) {
			t.Errorf("a stray segment created a connection: %+v", x)
		}
	}
}

// 7. --backlog 2 --syncookies never: two half-open connections fill it; a
// third SYN is dropped unanswered; once one of them is reset, a new SYN is
// answered. (With cookies, the default: TestListenSYNCookieWhenQueueFull.)
func TestListenBacklogDropsSYNs(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8130
	p := e.startListen(t, nil, "--json", "-k", "--echo", "--backlog", "2", "--syncookies", "never", fmt.Sprintf(":%d", port))
	waitListening(t, p)
	letRSTsGo := dropRSTsFrom(t, e, "40021:40023")

	for _, sport := range []string{"40021", "40022"} {
		r, replies := sendFromClient(t, e, "--flags", "S", "--seq", "1000", "--opt", "linux", "--no-reset", "--sport", sport, "--wait", "300ms", e.serverAddr(port))
		if r.code != 0 || len(replies) == 0 || !replies[0].has(craft.FlagSYN|craft.FlagACK) {
			t.Fatalf("SYN from :%s should be answered (backlog not full yet): %v\nstdout %s", sport, r, r.stdout)
		}
	}
	r, replies := sendFromClient(t, e, "--flags", "S", "--seq", "1000", "--opt", "linux", "--no-reset", "--sport", "40023", "--wait", "1500ms", e.serverAddr(port))
	if r.code != 1 || len(replies) != 0 {
		t.Errorf("with the backlog full, a third SYN must go unanswered; got %d replies, %v\nstdout %s", len(replies), r, r.stdout)
	}
	trace := jsonTrace(t, p.stderr.String())
	if n := len(segmentsWith(trace, "in", 40023)); n != 1 {
		t.Errorf("tcpcraft should have seen the third SYN once, saw %d", n)
	}
	if out := segmentsWith(trace, "out", 40023); len(out) != 0 {
		t.Errorf("tcpcraft answered the SYN beyond the backlog: %+v", out)
	}

	// A RST for the first half-open connection (seq = its RCV.NXT) frees
	// its slot (RFC 9293 §3.10.7.4: SYN-RECEIVED from a passive open).
	letRSTsGo()
	sendFromClient(t, e, "--flags", "R", "--seq", "1001", "--sport", "40021", "--wait", "100ms", e.serverAddr(port))
	left := func() bool {
		for _, x := range jsonTrace(t, p.stderr.String()) {
			if x.Type == "state" && x.Remote == "10.0.2.21:40021" && x.From == "SYN-RECEIVED" {
				return true
			}
		}
		return false
	}
	if !waitFor(5*time.Second, left) {
		t.Errorf("a RST at RCV.NXT did not end the half-open connection from :40021; its trace:\n%s", traceOf(jsonTrace(t, p.stderr.String()), 40021))
	}
	r, replies = sendFromClient(t, e, "--flags", "S", "--seq", "7000", "--opt", "linux", "--sport", "40025", "--wait", "500ms", e.serverAddr(port))
	if r.code != 0 || len(replies) == 0 || !replies[0].has(craft.FlagSYN|craft.FlagACK) || replies[0].Ack != 7001 {
		t.Errorf("after a slot was freed, a new SYN should get a SYN-ACK: %v\nstdout %s", r, r.stdout)
	}
	interruptListen(t, e, p)
}

// 8. --max-conns 2 with 3 simultaneous connections: the third is reset;
// once one closes, a new one is served.
func TestListenMaxConns(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8140
	p := e.startListen(t, nil, "--json", "-k", "--echo", "--max-conns", "2", "--time-wait", "100ms", fmt.Sprintf(":%d", port))
	waitListening(t, p)

	first, second := dialServer(t, e, port), dialServer(t, e, port)
	for i, c := range []*net.TCPConn{first, second} {
		if err := echoCheck(c, []byte(fmt.Sprintf("client %d", i+1))); err != nil {
			t.Fatalf("client %d: %v", i+1, err)
		}
	}
	// The third's handshake completes (tcpcraft accepts before it can
	// count), then it is reset: so fast that connect(2) may already
	// report the reset, or later on the first Read.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	third, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(port))
	cancel()
	if err == nil {
		defer third.Close()
		_ = third.SetDeadline(time.Now().Add(peerTimeout))
		// The socket reports the reset once, to whichever call comes
		// first: the Write, or the Read after it.
		if _, err = third.Write([]byte("me too")); err == nil {
			var n int
			n, err = third.Read(make([]byte, 16))
			if n > 0 {
				t.Errorf("the third client got %d bytes of echo", n)
			}
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		msg := ""
		if third != nil {
			msg = traceOf(jsonTrace(t, p.stderr.String()), uint16(third.LocalAddr().(*net.TCPAddr).Port))
		}
		t.Errorf("the third client: %v; want ECONNRESET\n%s", err, msg)
	}
	for i, c := range []*net.TCPConn{first, second} {
		if err := echoCheck(c, []byte("still served")); err != nil {
			t.Errorf("client %d after the third was refused: %v", i+1, err)
		}
	}
	if !strings.Contains(p.stderr.String(), "refused: 2 connections already (--max-conns)") {
		t.Errorf("the trace should say why the third was refused:\n%s", tail(p.stderr.String(), 2000))
	}

	// The first leaves; its slot becomes free once its connection is
	// CLOSED and its handler returned.
	if err := echoAll(first, []byte("bye")); err != nil {
		t.Fatalf("first client closing: %v", err)
	}
	waitUntil(t, 5*time.Second, "the first connection to close", func() bool {
		return reachedState(jsonTrace(t, p.stderr.String()), first.LocalAddr().String(), "CLOSED")
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Until the slot is free the handshake completes and the
		// connection is reset, which Dial may already report.
		err := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			fourth, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(port))
			if err != nil {
				return err
			}
			defer fourth.Close()
			return echoAll(fourth.(*net.TCPConn), []byte("fourth"))
		}()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a fourth client after the first left: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the slot frees just after CLOSED
	}
	// Each finished connection gets its one-line account.
	account := fmt.Sprintf("[%s] sent 23 bytes in ", first.LocalAddr())
	if !waitFor(5*time.Second, func() bool { return strings.Contains(p.stderr.String(), account) }) {
		t.Errorf("no account %q... of the first connection (8+12+3 bytes echoed):\n%s", account, tail(p.stderr.String(), 3000))
	} else if !strings.Contains(p.stderr.String(), "received 23 bytes") {
		t.Errorf("the first connection's account does not say it received 23 bytes")
	}
	interruptListen(t, e, p)
}

// 9. SIGINT with open connections: every open client sees a reset; exit
// 130; no rule left.
func TestListenSIGINTResetsClients(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8150
	p := e.startListen(t, nil, "--json", "-k", "--echo", fmt.Sprintf(":%d", port))
	waitListening(t, p)
	var conns []*net.TCPConn
	for i := range 4 {
		c := dialServer(t, e, port)
		if err := echoCheck(c, []byte(fmt.Sprintf("client %d", i))); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	if guards := guardsOf(t, e, e.ServerNS, p.res.pid); len(guards) != 1 || !strings.Contains(guards[0], "LISTEN") || !strings.Contains(guards[0], fmt.Sprintf(":%d ", port)) {
		t.Errorf("while running, want port %d of pid %d held in the server namespace (and no rule), got %q", port, p.res.pid, guards)
	}
	results := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(peerTimeout))
			_, err := c.Read(make([]byte, 1))
			results <- err
		}()
	}
	r := interruptListen(t, e, p)
	for i := range conns {
		if err := receive(t, results, "a client's Read"); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client %d: Read ended with %v, want ECONNRESET", i, err)
		}
	}
	rsts := 0
	for _, x := range jsonTrace(t, r.stderr) {
		if x.Type == "segment" && x.Dir == "out" && x.has(craft.FlagRST) {
			rsts++
		}
	}
	if rsts < len(conns) {
		t.Errorf("the trace shows %d RSTs sent, want at least %d", rsts, len(conns))
	}
}

// 10. Without -k, listen serves one connection and closes its listener:
// a half-open connection still waiting is reset then (as Linux resets the
// queue of a closed listening socket), so completing its handshake later
// draws a RST instead of a connection nobody serves.
func TestListenSingleResetsTheOthers(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8160
	stdin, feed := openStdin(t)
	p := e.startListen(t, stdin, "--json", "--time-wait", "100ms", fmt.Sprintf(":%d", port))
	stdin.Close()
	waitListening(t, p)

	letRSTsGo := dropRSTsFrom(t, e, "40031")
	r, replies := sendFromClient(t, e, "--flags", "S", "--seq", "1000", "--opt", "linux", "--no-reset", "--sport", "40031", "--wait", "300ms", e.serverAddr(port))
	if r.code != 0 || len(replies) == 0 || !replies[0].has(craft.FlagSYN|craft.FlagACK) {
		t.Fatalf("the half-open client's SYN should draw a SYN-ACK: %v\nstdout %s", r, r.stdout)
	}
	iss := replies[0].Seq

	served := dialServer(t, e, port)
	if _, err := feed.Write([]byte("to the one served\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(served).ReadString('\n')
	if err != nil || line != "to the one served\n" {
		t.Fatalf("the served client read %q, %v", line, err)
	}
	if !waitFor(5*time.Second, func() bool {
		for _, s := range segmentsWith(jsonTrace(t, p.stderr.String()), "out", 40031) {
			if s.has(craft.FlagRST) {
				return true
			}
		}
		return false
	}) {
		t.Errorf("the half-open connection was not reset when the listener closed:\n%s", traceOf(jsonTrace(t, p.stderr.String()), 40031))
	}
	// Complete the half-open handshake while the served one is open.
	letRSTsGo()
	r, replies = sendFromClient(t, e, "--flags", "A", "--seq", "1001", "--ack", fmt.Sprint(iss+1), "--sport", "40031", "--wait", "500ms", e.serverAddr(port))
	if len(replies) != 1 || craft.Flags(replies[0].FlagBits) != craft.FlagRST || replies[0].Seq != iss+1 {
		t.Errorf("the ACK completing a handshake after the listener closed should draw RST seq=%d; got %v\nstdout %s", iss+1, r, r.stdout)
	}
	if !p.running() {
		t.Fatalf("tcpcraft ended before the served connection did: %v", p.wait(t))
	}

	// The served connection ends normally: stdin's EOF sends our FIN.
	if _, err := served.Write([]byte("bye\n")); err != nil {
		t.Fatal(err)
	}
	feed.Close()
	if rest, err := io.ReadAll(served); err != nil || len(rest) != 0 {
		t.Errorf("the served client after stdin's end read %q, %v; want EOF", rest, err)
	}
	served.Close()
	out := p.wait(t)
	expectExit(t, out, 0)
	if out.stdout != "bye\n" {
		t.Errorf("tcpcraft's stdout is %q, want the served client's %q", out.stdout, "bye\n")
	}
	if rules := guardsOf(t, e, e.ServerNS, out.pid); len(rules) > 0 {
		t.Errorf("rule left after exit: %q", rules)
	}
	for _, x := range jsonTrace(t, out.stderr) {
		if x.Type == "state" && x.Remote == "10.0.2.21:40031" && x.To == "ESTABLISHED" {
			t.Errorf("the connection from :40031 was established after the listener closed")
		}
	}
}

// 11. A lost SYN-ACK: the handshake still completes (our SYN-ACK is
// retransmitted, or the client's repeated SYN is answered with it).
func TestListenLostSYNACK(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8170
	// Drop the first SYN-ACK reaching the client namespace, and only it.
	labtest.Iptables(t, e.Lab, e.ClientNS, "-A", "INPUT", "-p", "tcp", "--sport", fmt.Sprint(port), "--tcp-flags", "SYN,ACK", "SYN,ACK",
		"-m", "statistic", "--mode", "nth", "--every", "1000", "--packet", "0", "-j", "DROP")
	p := e.startListen(t, nil, "--json", "-k", "--echo", "--time-wait", "100ms", fmt.Sprintf(":%d", port))
	waitListening(t, p)
	conn := dialServer(t, e, port)
	if err := echoAll(conn, randomBytes(t, 100<<10)); err != nil {
		t.Fatalf("after a lost SYN-ACK: %v", err)
	}
	r := interruptListen(t, e, p)
	clientPort := uint16(conn.LocalAddr().(*net.TCPAddr).Port)
	synAcks := 0
	for _, s := range segmentsWith(jsonTrace(t, r.stderr), "out", clientPort) {
		if s.has(craft.FlagSYN | craft.FlagACK) {
			synAcks++
		}
	}
	if synAcks < 2 {
		t.Errorf("tcpcraft sent %d SYN-ACKs; the first was dropped, so want at least 2:\n%s", synAcks, traceOf(jsonTrace(t, r.stderr), clientPort))
	}
	if !reachedState(jsonTrace(t, r.stderr), conn.LocalAddr().String(), "CLOSED") {
		t.Errorf("the connection did not end in CLOSED")
	}
}

// 12. tcpcraft never offers more window than its receive buffer holds
// (RFC 9293 §3.8.6: the window is the buffer space the receiver has), for
// any client ISN: 8 clients (8 random ISNs) each send 256 KB through a
// 128 KB buffer.
func TestListenWindowWithinBuffer(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port, buffer, clients = 8180, 128 << 10, 8
	p := e.startListen(t, nil, "--json", "-k", "--echo", "--window", fmt.Sprint(buffer), "--wscale", "7", "--time-wait", "100ms", fmt.Sprintf(":%d", port))
	waitListening(t, p)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	data := make([][]byte, clients)
	for i := range data {
		data[i] = randomBytes(t, 256<<10)
	}
	var ports []uint16
	var mu sync.Mutex
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(port))
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			mu.Lock()
			ports = append(ports, uint16(conn.LocalAddr().(*net.TCPAddr).Port))
			mu.Unlock()
			if err := echoAll(conn.(*net.TCPConn), data[i]); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r := interruptListen(t, e, p)
	trace := jsonTrace(t, r.stderr)
	for _, cport := range ports {
		var irs uint32
		checked := 0
		for _, s := range segmentsWith(trace, "out", cport) {
			if s.has(craft.FlagSYN) {
				irs = s.Ack - 1
				continue // a SYN's window is not scaled (RFC 7323 §2.2)
			}
			if s.has(craft.FlagRST) {
				continue
			}
			checked++
			if win := uint64(s.Win) << 7; win > buffer {
				t.Errorf("client :%d (ISN %#x): tcpcraft advertised %d bytes (field %d << 7) with a %d-byte buffer", cport, irs, win, s.Win, buffer)
				break
			}
		}
		if checked == 0 {
			t.Errorf("no segments to client :%d in the trace", cport)
		}
	}
}

// kernelListening reads the listening sockets of the calling thread's
// network namespace, so that Run works inside lab.Do (a goroutine locked
// on a thread switched into a namespace) as well as in a process of its
// own.
func TestKernelListeningSeesThisThreadsNamespace(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port = 8190
	e.listen(t, port)
	// Several times, each from a new goroutine: one that happens to run
	// on the process's main thread would pass even when reading /proc/net.
	for i := range 10 {
		var busy, free string
		done := make(chan error, 1)
		go func() {
			done <- lab.Do(e.ServerNS, func() error {
				var err error
				if busy, err = kernelListening(netip.MustParseAddrPort(fmt.Sprintf("0.0.0.0:%d", port))); err != nil {
					return err
				}
				free, err = kernelListening(netip.MustParseAddrPort(fmt.Sprintf("0.0.0.0:%d", port+1)))
				return err
			})
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(busy, fmt.Sprintf("10.0.2.20 port %d", port)) {
			t.Fatalf("try %d: kernelListening(:%d) inside the server namespace = %q; want the kernel listener on 10.0.2.20", i, port, busy)
		}
		if free != "" {
			t.Fatalf("try %d: kernelListening(:%d) = %q, want none", i, port+1, free)
		}
	}
}

// A traced echo listener answering short connections one after the other,
// as fast as a kernel client makes them, sends no RST: every connection
// ends by FIN both ways. (Frames the reader goroutine took before the
// stack's lock could be handled after later ones that an echo's write took
// inline: a client's last ACK of the echo then came after the ACK of our
// FIN, found the connection gone and drew a RST, dozens per thousand
// connections.)
func TestListenSequentialConnectionsNoStrayRST(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port, n = 8094, 400
	p := e.startListen(t, nil, "-k", "--echo", "--time-wait", "10ms", fmt.Sprintf(":%d", port))
	waitEchoing(t, e, p, port)
	// Only the trace from here on: waitEchoing's first dial may have come
	// before the listener was registered and drawn an RST ("refused", as
	// from a kernel that is not listening yet), which is not one of the
	// connections under test.
	ready := len(p.stderr.String())
	before := strings.Count(p.stderr.String(), "CLOSED after")
	if err := echoSequentially(e, port, n, func(i int) []byte { return []byte{'e', byte(i)} }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(p.stderr.String(), "CLOSED after")-before < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections ended", strings.Count(p.stderr.String(), "CLOSED after")-before, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	trace := p.stderr.String()[ready:]
	if k := strings.Count(trace, "Flags [R"); k > 0 {
		i := strings.Index(trace, "Flags [R")
		t.Fatalf("%d RSTs in the trace of %d clean connections; the first:\n%s", k, n, trace[max(0, i-2000):min(len(trace), i+200)])
	}
	interruptListen(t, e, p)
}
