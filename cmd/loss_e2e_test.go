package cmd

// End-to-end tests of tcpcraft under loss, against the real Linux kernel:
// 5 MB each way through `connect` and through `listen` with segments
// dropped at random in the kernel peer's namespace (iptables -m statistic,
// INPUT and OUTPUT: netem is not available), and both ways of a zero
// window: tcpcraft's reader stalls, and the kernel's reader stalls.
//
// The twelve lossy transfers (3 loss rates x 4 directions) run at the same
// time, each in a lab of its own: at 20% loss both ends spend most of their
// time waiting for timers, so running them one after the other would take
// minutes (t.Parallel would allow only GOMAXPROCS of them at once). Each
// transfer is reported as a subtest afterwards, with tcpcraft's own account
// (segments, retransmissions, timeouts), the kernel's RetransSegs and the
// longest silence in tcpcraft's trace.
//
// Note on the kernel as sender: a drop in the OUTPUT chain of its own
// namespace is reported back to its TCP as a local send failure, which it
// retries, rather than lost on the wire; so when the kernel sends, the loss
// that matters is that of tcpcraft's ACKs (its INPUT chain). When tcpcraft
// sends, both its segments and the kernel's ACKs are really lost.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// lossSize is what each lossy transfer moves.
const lossSize = 5 << 20

// lossTimeout bounds one lossy transfer (handshake to exit); the 20% runs
// take the longest.
const lossTimeout = 200 * time.Second

// lossRates are the drop probabilities of the acceptance criteria.
var lossRates = []float64{0.01, 0.05, 0.20}

// lossModes are the four directions: through connect (tcpcraft active) and
// through listen (tcpcraft passive), tcpcraft sending ("up") or receiving
// ("down").
var lossModes = []string{"connect-up", "connect-down", "listen-up", "listen-down"}

// segmentsOnTheWire turns TSO and GSO off on both ends of the lab's veth,
// so that each TCP segment crosses it, and the loss rules, as a packet of
// its own. A veth hands a TSO/GSO packet to its peer whole: netfilter there
// sees one 64 KB packet where a wire would carry 45 segments. tcpcraft's
// offload sender (capture.GSOSender) makes such packets too, so with
// offload on a 2 MB upload crossed the peer's INPUT chain as 45 packets
// (ip6tables -v), and at 5% loss both ways a run lost none now and then;
// with it off, 1475. The kernel cuts tcpcraft's super-segments in
// software instead (validate_xmit_skb), so its offload path still runs.
func segmentsOnTheWire(t *testing.T, e *e2eLab) {
	t.Helper()
	labtest.RequireTools(t, "ethtool")
	labtest.Run(t, e.Lab, e.ClientNS, "ethtool", "-K", e.ClientIf, "tso", "off", "gso", "off")
	labtest.Run(t, e.Lab, e.ServerNS, "ethtool", "-K", e.ServerIf, "tso", "off", "gso", "off")
}

// dropRandomly makes namespace ns drop TCP segments at random with
// probability p, arriving (INPUT) and leaving (OUTPUT), each segment on
// its own (segmentsOnTheWire). The rules die with the lab's namespace.
func dropRandomly(t *testing.T, e *e2eLab, ns string, p float64) {
	t.Helper()
	segmentsOnTheWire(t, e)
	// The kernel peer's retransmission timer doubles with each loss of
	// the same segment, up to 120 s: at 20% loss each way a run of
	// losses leaves it silent for a minute or more now and then, and the
	// test would measure that luck, not tcpcraft. Linux 6.15 and later
	// take a smaller ceiling per namespace (tcp_rto_max_ms); older
	// kernels keep theirs.
	if _, err := os.Stat("/proc/sys/net/ipv4/tcp_rto_max_ms"); err == nil {
		labtest.Run(t, e.Lab, ns, "sysctl", "-qw", "net.ipv4.tcp_rto_max_ms=4000")
	}
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		labtest.Iptables(t, e.Lab, ns, "-A", chain, "-p", "tcp", "-m", "statistic", "--mode", "random",
			"--probability", strconv.FormatFloat(p, 'f', -1, 64), "-j", "DROP")
	}
}

// lossHashWriter counts and hashes what is written to it.
type lossHashWriter struct {
	mu sync.Mutex
	n  int64
	h  hash.Hash
}

func newLossHashWriter() *lossHashWriter { return &lossHashWriter{h: sha256.New()} }

func (w *lossHashWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += int64(len(p))
	return w.h.Write(p)
}

func (w *lossHashWriter) result() (int64, [32]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s [32]byte
	copy(s[:], w.h.Sum(nil))
	return w.n, s
}

// checkDigest compares what arrived with what was sent.
func lossCheckDigest(what string, n int64, sum [32]byte, data []byte) error {
	if n != int64(len(data)) || sum != sha256.Sum256(data) {
		return fmt.Errorf("%s received %d bytes with sha256 %x; %d bytes with sha256 %x were sent",
			what, n, sum[:8], len(data), sha256.Sum256(data))
	}
	return nil
}

// run is a program started in a lab namespace by a test goroutine that may
// not call t.Fatal (the transfers run concurrently).
type lossRun struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // Wait's error
}

// startIn starts argv in ns. It runs until it ends or finish gives up on
// it (SIGINT first, so tcpcraft removes its firewall rule, then SIGKILL).
func lossStart(e *e2eLab, ns string, stdin io.Reader, stdout io.Writer, argv ...string) (*lossRun, error) {
	cmd := e.Command(context.Background(), ns, argv[0], argv[1:]...)
	r := &lossRun{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, r.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %q in %s: %w", argv, ns, err)
	}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	return r, nil
}

// finish waits for the program and reports a failure with its stderr.
func (r *lossRun) finish(ctx context.Context) error {
	select {
	case <-r.done:
	case <-ctx.Done():
		r.stop()
		return fmt.Errorf("tcpcraft did not finish in time (%v); stderr:\n%s", ctx.Err(), tail(r.stderr.String(), 3000))
	}
	if r.err != nil {
		return fmt.Errorf("tcpcraft: %v; stderr:\n%s", r.err, tail(r.stderr.String(), 3000))
	}
	return nil
}

// stop interrupts the program if it still runs (tcpcraft resets its
// connection and removes its rule), and kills it if that does not end it.
func (r *lossRun) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// lossSummaryRE matches the account tcpcraft prints at the end of a connection.
var lossSummaryRE = regexp.MustCompile(`sent (\d+) bytes in (\d+) segments \((\d+) retransmitted, (\d+) timeouts\), received (\d+) bytes in (\d+) segments`)

// lossAccount is tcpcraft's own account of a connection.
type lossAccount struct {
	sent, segsSent, retransmitted, timeouts, received int64
	ok                                                bool
}

func lossAccountOf(stderr string) lossAccount {
	m := lossSummaryRE.FindAllStringSubmatch(stderr, -1)
	if m == nil {
		return lossAccount{}
	}
	last := m[len(m)-1]
	num := func(i int) int64 { v, _ := strconv.ParseInt(last[i], 10, 64); return v }
	return lossAccount{sent: num(1), segsSent: num(2), retransmitted: num(3), timeouts: num(4), received: num(5), ok: true}
}

// retransSegs reads RetransSegs of /proc/net/snmp in ns: the segments the
// kernel retransmitted there.
func kernelRetransSegs(e *e2eLab, ns string) (int64, error) {
	return kernelTCPCounter(e, ns, "/proc/net/snmp", "Tcp:", "RetransSegs")
}

// kernelTCPCounter reads one counter of the kernel's TCP in namespace ns:
// file is /proc/net/snmp or /proc/net/netstat, prefix the table ("Tcp:",
// "TcpExt:"), name the column.
func kernelTCPCounter(e *e2eLab, ns, file, prefix, name string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Command(ctx, ns, "cat", file).Output()
	if err != nil {
		return 0, fmt.Errorf("reading %s in %s: %w", file, ns, err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)[1:]
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s %s in %s of %s", prefix, name, file, ns)
}

// lossOutcome is one transfer's result.
type lossOutcome struct {
	elapsed       time.Duration
	account       lossAccount
	kernelRetrans int64
	longestGap    time.Duration // the longest silence in tcpcraft's trace
	gapAt         float64       // when it started (seconds into the run)
	err           error
}

// traceTimeRE matches the time that starts a line of the text trace.
var traceTimeRE = regexp.MustCompile(`(?m)^ *([0-9]+\.[0-9]+) `)

// longestGap returns the longest time between two consecutive lines of a
// text trace and when it began: where a transfer waited (for an RTO, or
// for the peer).
func longestGap(trace string) (time.Duration, float64) {
	var gap time.Duration
	var at, prev float64
	for i, m := range traceTimeRE.FindAllStringSubmatch(trace, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		d := time.Duration((v - prev) * float64(time.Second))
		if i > 0 && d > gap {
			gap, at = d, prev
		}
		prev = v
	}
	return gap, at
}

// lossTransfer moves data through tcpcraft in mode over e's lossy link.
// It runs on its own goroutine: it returns errors instead of failing t.
func lossTransfer(e *e2eLab, mode string, port int, data []byte) lossOutcome {
	return lossTransferAddr(e, mode, e.serverAddr(port), port, data)
}

// lossTransferAddr is lossTransfer to the server's address addr (for IPv6,
// "[fd00:2::20]:port"); listen listens on :port, both families.
func lossTransferAddr(e *e2eLab, mode, addr string, port int, data []byte) (out lossOutcome) {
	ctx, cancel := context.WithTimeout(context.Background(), lossTimeout)
	defer cancel()
	start := time.Now()
	defer func() { out.elapsed = time.Since(start) }()
	kernelNS := e.ServerNS
	if strings.HasPrefix(mode, "listen") {
		kernelNS = e.ClientNS
	}
	before, err := kernelRetransSegs(e, kernelNS)
	if err != nil {
		return lossOutcome{err: err}
	}
	defer func() {
		if after, err := kernelRetransSegs(e, kernelNS); err == nil {
			out.kernelRetrans = after - before
		}
	}()
	common := []string{e.bin}
	switch mode {
	case "connect-up", "connect-down":
		ln, err := e.Listen(e.ServerNS, "tcp", addr)
		if err != nil {
			return lossOutcome{err: err}
		}
		defer ln.Close()
		peerDone := make(chan error, 1)
		sink := newLossHashWriter()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				peerDone <- fmt.Errorf("accept: %w", err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(lossTimeout))
			if mode == "connect-up" {
				_, err = io.Copy(sink, c)
			} else {
				_, err = c.Write(data)
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				if err == nil {
					_, err = io.Copy(io.Discard, c) // until tcpcraft's FIN
				}
			}
			peerDone <- err
		}()
		var stdin io.Reader = bytes.NewReader(data)
		stdout := newLossHashWriter()
		if mode == "connect-down" {
			stdin = nil
		}
		// --timeout: the handshake may need several SYN retries at 20%.
		r, err := lossStart(e, e.ClientNS, stdin, stdout,
			append(common, "connect", "--timeout", "60s", "--time-wait", "100ms", addr)...)
		if err != nil {
			return lossOutcome{err: err}
		}
		defer r.stop()
		err = r.finish(ctx)
		out.account = lossAccountOf(r.stderr.String())
		out.longestGap, out.gapAt = longestGap(r.stderr.String())
		if err != nil {
			return lossOutcome{err: err, account: out.account}
		}
		select {
		case err = <-peerDone:
		case <-ctx.Done():
			err = errors.New("the kernel peer did not finish")
		}
		if err != nil {
			return lossOutcome{err: fmt.Errorf("kernel peer: %w", err), account: out.account}
		}
		if mode == "connect-up" {
			n, sum := sink.result()
			out.err = lossCheckDigest("the kernel sink", n, sum, data)
		} else {
			n, sum := stdout.result()
			out.err = lossCheckDigest("tcpcraft's stdout", n, sum, data)
		}
		return out

	default: // listen-up, listen-down
		var stdin io.Reader
		if mode == "listen-up" {
			stdin = bytes.NewReader(data)
		}
		stdout := newLossHashWriter()
		r, err := lossStart(e, e.ServerNS, stdin, stdout,
			append(common, "listen", "--time-wait", "100ms", fmt.Sprintf(":%d", port))...)
		if err != nil {
			return lossOutcome{err: err}
		}
		defer r.stop()
		for !strings.Contains(r.stderr.String(), "listening on") {
			select {
			case <-r.done:
				return lossOutcome{err: fmt.Errorf("tcpcraft listen ended early: %v\n%s", r.err, tail(r.stderr.String(), 2000))}
			case <-ctx.Done():
				return lossOutcome{err: errors.New("tcpcraft listen never said it was listening")}
			case <-time.After(20 * time.Millisecond):
			}
		}
		// The SYN may be lost several times: the kernel retries for
		// longer than this (tcp_syn_retries).
		conn, err := e.Dial(ctx, e.ClientNS, "tcp", addr)
		if err != nil {
			return lossOutcome{err: fmt.Errorf("kernel client: %w", err)}
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(lossTimeout))
		peer := newLossHashWriter()
		var perr error
		if mode == "listen-up" {
			// tcpcraft sends its stdin; the kernel reads to EOF, then
			// closes (tcpcraft ends its side when the peer's FIN comes,
			// like nc -N, so the kernel must not half-close first).
			_, perr = io.Copy(peer, conn)
			if cerr := conn.Close(); perr == nil {
				perr = cerr
			}
		} else {
			_, perr = conn.Write(data)
			if perr == nil {
				perr = conn.(*net.TCPConn).CloseWrite()
			}
			if perr == nil {
				_, perr = io.Copy(io.Discard, conn)
			}
			// Not closed until tcpcraft is done (the deferred Close):
			// tcpcraft, with nothing to send, closed first, so the read
			// above ends at once while data may still wait in the send
			// queue; closed now, the socket would be an orphan, which at
			// 20% loss can exhaust its few retries (tcp_orphan_retries)
			// and vanish, leaving tcpcraft waiting for the rest.
		}
		if perr != nil {
			return lossOutcome{err: fmt.Errorf("kernel client: %w", perr)}
		}
		err = r.finish(ctx)
		out.account = lossAccountOf(r.stderr.String())
		out.longestGap, out.gapAt = longestGap(r.stderr.String())
		if err != nil {
			return lossOutcome{err: err, account: out.account}
		}
		if mode == "listen-up" {
			n, sum := peer.result()
			out.err = lossCheckDigest("the kernel client", n, sum, data)
		} else {
			n, sum := stdout.result()
			out.err = lossCheckDigest("tcpcraft's stdout", n, sum, data)
		}
		return out
	}
}

// TestLossTransfers: 5 MB up and down through connect and through listen
// at 1%, 5% and 20% random loss each way, every byte intact (sha256).
func TestLossTransfers(t *testing.T) {
	t.Parallel()
	rates := lossRates
	if s := os.Getenv("TCPCRAFT_LOSS_RATES"); s != "" {
		// Only for working on one rate by hand: "0.2" or "0.01,0.05".
		rates = nil
		for _, f := range strings.Split(s, ",") {
			p, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("TCPCRAFT_LOSS_RATES=%q: %v", s, err)
			}
			rates = append(rates, p)
		}
	}
	data := randomBytes(t, lossSize)
	type lossCase struct {
		name string
		e    *e2eLab
		mode string
		out  lossOutcome
	}
	var cases []*lossCase
	// The labs are built here, on the test's goroutine (helpers may
	// t.Fatal); the 20% ones first, as they take the longest.
	for i := len(rates) - 1; i >= 0; i-- {
		p := rates[i]
		for _, mode := range lossModes {
			e := newE2ELab(t)
			kernelNS := e.ServerNS
			if strings.HasPrefix(mode, "listen") {
				kernelNS = e.ClientNS
				t.Cleanup(func() {
					if rules := guardRules(t, e, e.ServerNS); len(rules) > 0 {
						t.Errorf("firewall rules of tcpcraft left in %s:\n%s", e.ServerNS, strings.Join(rules, "\n"))
					}
				})
			}
			dropRandomly(t, e, kernelNS, p)
			cases = append(cases, &lossCase{name: fmt.Sprintf("p=%v/%s", p, mode), e: e, mode: mode})
		}
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.out = lossTransfer(c.e, c.mode, 9000, data)
		}()
	}
	wg.Wait()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.out.account
			t.Logf("%v; tcpcraft: %d segments sent, %d retransmitted, %d timeouts; kernel RetransSegs %d; longest silence %v at %.3f s",
				c.out.elapsed.Round(time.Millisecond), a.segsSent, a.retransmitted, a.timeouts, c.out.kernelRetrans,
				c.out.longestGap.Round(time.Millisecond), c.out.gapAt)
			if c.out.err != nil {
				t.Fatal(c.out.err)
			}
			if !a.ok {
				t.Errorf("no connection summary in tcpcraft's trace")
			}
		})
	}
}

// stallSize is what the zero-window tests move; stallTime how long a
// reader stops.
const (
	stallSize = 3 << 20
	stallTime = 2 * time.Second
)

// stallWindow is tcpcraft's receive buffer in the zero-window tests: well
// below stallSize, so that a stalled reader fills it (the default, 6 MiB,
// would take all the data).
const stallWindow = 256 << 10

// zeroWindowTrace looks through tcpcraft's --json trace for a zero window
// and what followed: dir is who advertised it ("out": tcpcraft, "in":
// the kernel). It returns the segments that advertised zero, the window
// updates after the first of them, and the window probes of the other
// side (SEQ = the acknowledged sequence number - 1, no data) with how
// many of them were answered by the next segment of the advertiser.
type zeroWindowReport struct {
	zeros, updates, probes, answered int
}

func zeroWindowTrace(trace []traceEntry, dir string) zeroWindowReport {
	var r zeroWindowReport
	other := map[string]string{"in": "out", "out": "in"}[dir]
	var lastAck uint32 // the advertiser's latest ACK
	inZero := false
	probePending := false
	for _, x := range trace {
		if x.Type != "segment" || x.has(craft.FlagSYN) || x.has(craft.FlagRST) {
			continue
		}
		switch x.Dir {
		case dir:
			if probePending {
				r.answered++
				probePending = false
			}
			lastAck = x.Ack
			if x.Win == 0 {
				r.zeros++
				inZero = true
			} else if r.zeros > 0 && inZero {
				r.updates++
				inZero = false
			}
		case other:
			if inZero && x.Len == 0 && x.Seq == lastAck-1 {
				r.probes++
				probePending = true
			}
		}
	}
	return r
}

// TestZeroWindowTcpcraftReaderStalls: tcpcraft's standard output is a
// pipe the test stops reading for a while. tcpcraft stops reading its
// connection, its receive buffer fills, it advertises a zero window, the
// kernel probes it and gets answers, and when the pipe is read again the
// window reopens with an update. Nothing is lost. Through connect (the
// kernel server sends) and listen (the kernel client sends).
func TestZeroWindowTcpcraftReaderStalls(t *testing.T) {
	for _, mode := range []string{"connect", "listen"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newE2ELab(t)
			data := randomBytes(t, stallSize)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pr.Close(); pw.Close() })
			const port = 9100
			kernelDone := make(chan error, 1)
			send := func(c *net.TCPConn) error {
				_ = c.SetDeadline(time.Now().Add(lossTimeout))
				if _, err := c.Write(data); err != nil {
					return fmt.Errorf("write: %w", err)
				}
				if err := c.CloseWrite(); err != nil {
					return err
				}
				_, err := io.Copy(io.Discard, c) // until tcpcraft's FIN
				return err
			}
			var run *lossRun
			if mode == "connect" {
				ln := e.listen(t, port)
				go func() {
					c, err := ln.Accept()
					if err != nil {
						kernelDone <- err
						return
					}
					defer c.Close()
					kernelDone <- send(c.(*net.TCPConn))
				}()
				run, err = lossStart(e, e.ClientNS, nil, pw, e.bin, "connect", "--json", "--window", fmt.Sprint(stallWindow), "--time-wait", "100ms", e.serverAddr(port))
			} else {
				run, err = lossStart(e, e.ServerNS, nil, pw, e.bin, "listen", "--json", "--window", fmt.Sprint(stallWindow), "--time-wait", "100ms", fmt.Sprintf(":%d", port))
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(run.stop)
			pw.Close() // the child holds its own copy: EOF when it exits
			if mode == "listen" {
				waitUntil(t, 20*time.Second, "tcpcraft listen to listen", func() bool {
					return strings.Contains(run.stderr.String(), "listening on")
				})
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					c, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(port))
					if err != nil {
						kernelDone <- err
						return
					}
					defer c.Close()
					kernelDone <- send(c.(*net.TCPConn))
				}()
			}
			// Read a little, stall, then read the rest.
			h := sha256.New()
			first := make([]byte, 64<<10)
			if _, err := io.ReadFull(pr, first); err != nil {
				t.Fatalf("reading tcpcraft's output: %v\n%s", err, tail(run.stderr.String(), 2000))
			}
			h.Write(first)
			time.Sleep(stallTime)
			n, err := io.Copy(h, pr)
			if err != nil {
				t.Fatalf("reading tcpcraft's output: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), lossTimeout)
			defer cancel()
			if err := run.finish(ctx); err != nil {
				t.Fatal(err)
			}
			if err := receive(t, kernelDone, "the kernel peer"); err != nil {
				t.Fatalf("kernel peer: %v", err)
			}
			var sum [32]byte
			copy(sum[:], h.Sum(nil))
			if err := lossCheckDigest("tcpcraft's stdout", n+int64(len(first)), sum, data); err != nil {
				t.Fatal(err)
			}
			rep := zeroWindowTrace(jsonTrace(t, run.stderr.String()), "out")
			t.Logf("tcpcraft advertised a zero window %d times, sent %d window updates; the kernel sent %d probes, %d answered",
				rep.zeros, rep.updates, rep.probes, rep.answered)
			if rep.zeros == 0 {
				t.Fatal("tcpcraft never advertised a zero window while its reader stalled")
			}
			if rep.updates == 0 {
				t.Fatal("no window update reopened tcpcraft's zero window")
			}
			if rep.probes == 0 || rep.answered != rep.probes {
				t.Fatalf("the kernel's zero-window probes: %d sent, %d answered", rep.probes, rep.answered)
			}
		})
	}
}

// TestZeroWindowKernelReaderStalls: the kernel's reader stops for a while
// during an upload through connect; its receive buffer fills and it
// advertises a zero window; tcpcraft probes the window (SEQ = SND.UNA-1,
// RFC 9293 §3.8.6.1) until it opens, then resumes. Nothing is lost.
func TestZeroWindowKernelReaderStalls(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	data := randomBytes(t, stallSize)
	const port = 9200
	ln := e.listen(t, port)
	type sunk struct {
		n   int64
		sum [32]byte
		err error
	}
	got := make(chan sunk, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- sunk{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(lossTimeout))
		h := sha256.New()
		n, err := io.CopyN(h, c, 64<<10)
		if err == nil {
			time.Sleep(stallTime) // the receive buffer fills: zero window
			var m int64
			m, err = io.Copy(h, c)
			n += m
		}
		var s sunk
		s.n, s.err = n, err
		copy(s.sum[:], h.Sum(nil))
		got <- s
	}()
	run, err := lossStart(e, e.ClientNS, bytes.NewReader(data), io.Discard, e.bin, "connect", "--json", "--time-wait", "100ms", e.serverAddr(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.stop)
	ctx, cancel := context.WithTimeout(context.Background(), lossTimeout)
	defer cancel()
	if err := run.finish(ctx); err != nil {
		t.Fatal(err)
	}
	s := receive(t, got, "the kernel sink")
	if s.err != nil {
		t.Fatalf("kernel sink: %v", s.err)
	}
	if err := lossCheckDigest("the kernel sink", s.n, s.sum, data); err != nil {
		t.Fatal(err)
	}
	rep := zeroWindowTrace(jsonTrace(t, run.stderr.String()), "in")
	t.Logf("the kernel advertised a zero window %d times and reopened it %d times; tcpcraft sent %d probes, %d answered",
		rep.zeros, rep.updates, rep.probes, rep.answered)
	if rep.zeros == 0 {
		t.Fatal("the kernel never advertised a zero window while its reader stalled")
	}
	if rep.probes == 0 {
		t.Fatal("tcpcraft sent no zero-window probe")
	}
	if rep.updates == 0 {
		t.Fatal("the kernel's window never reopened in the trace")
	}
}
