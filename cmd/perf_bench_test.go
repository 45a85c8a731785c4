package cmd

// The performance comparisons: tcpcraft (the CGO_ENABLED=0
// binary, as users run it) against the Linux kernel's own TCP on the same
// veth of one fresh lab, in the same run, in interleaved rounds (tcpcraft,
// kernel, tcpcraft, kernel, ...), reported as medians and ratios. Run them
// with scripts/bench.sh (bulk-send, bulk-recv, syn-rtt, conns, all) or
//
//	go test ./cmd -run '^$' -bench 'Perf' -benchtime 1x
//
// Every transfer is checked: the receiver counts the bytes and computes a
// CRC-32C of them, which must match the sender's (a fast wrong transfer is
// not a result). CRC-32C rather than SHA-256 because the checker shares two
// cores with the stacks being measured: at several Gbit/s SHA-256 would be
// the bottleneck of both sides and flatten the ratio.
//
// Knobs (environment): TCPCRAFT_BENCH_MB (size of a bulk transfer, default
// 200), TCPCRAFT_BENCH_ROUNDS (measured rounds per side, default 3),
// TCPCRAFT_BENCH_CONNS (connections of the memory benchmark, default
// 10000), TCPCRAFT_BENCH_WINDOW (--window of that benchmark, default the
// CLI's), TCPCRAFT_BENCH_KERNEL_CC (the kernel client's congestion control
// in the bulk-send comparison: default cubic, tcpcraft's default, like for
// like; "default" for the machine's own, which may be BBR).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// envInt reads a positive integer knob, or def.
func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// kernelCC is the congestion control the kernel's side of a sending
// comparison uses: TCPCRAFT_BENCH_KERNEL_CC, else want (the algorithm
// tcpcraft runs). "default" leaves the namespace's default, which is the
// machine's net.ipv4.tcp_congestion_control (BBR on some machines: the
// first runs of these benchmarks compared tcpcraft's CUBIC with the
// kernel's BBR without saying so).
func kernelCC(want string) string {
	if cc := os.Getenv("TCPCRAFT_BENCH_KERNEL_CC"); cc != "" {
		return cc
	}
	return want
}

// dialCC dials addr from the calling thread's namespace with congestion
// control cc (TCP_CONGESTION; "default": the namespace's).
func dialCC(addr, cc string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if cc != "default" {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
			})
			if err == nil && serr != nil {
				err = fmt.Errorf("TCP_CONGESTION %q: %w", cc, serr)
			}
			return err
		}
	}
	return d.Dial("tcp", addr)
}

// namespaceCC reads the default congestion control of namespace ns.
func namespaceCC(e *e2eLab, ns string) string {
	var cc string
	_ = lab.Do(ns, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
		cc = strings.TrimSpace(string(b))
		return err
	})
	return cc
}

// perfLab builds the lab of one benchmark (removed at cleanup).
func perfLab(b *testing.B) *e2eLab {
	b.Helper()
	labtest.RequireRoot(b)
	labtest.RequireTools(b, "ip", "iptables", "iptables-save")
	return &e2eLab{Lab: labtest.New(b), bin: tcpcraftBinary(b)}
}

// payload is the data of a bulk transfer: deterministic pseudo-random
// bytes (incompressible, so nothing on the path can cheat), written to a
// file for tcpcraft's stdin, with their CRC-32C.
type payload struct {
	data []byte
	path string
	crc  uint32
}

func newPayload(b *testing.B, mb int) payload {
	b.Helper()
	data := make([]byte, mb<<20)
	r := rand.NewChaCha8([32]byte{'t', 'c', 'p', 'c', 'r', 'a', 'f', 't'})
	_, _ = r.Read(data)
	path := filepath.Join(memoryDir(b), "payload")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatalf("writing the payload: %v", err)
	}
	return payload{data: data, path: path, crc: crc32.Checksum(data, castagnoli)}
}

// memoryDir is a directory for benchmark input that stays in memory: on
// tmpfs (/dev/shm) when there is one, else the test's temporary directory.
// Page cache may be reclaimed between rounds (this VM's balloon keeps it
// small), and then whichever side reads the file first would pay for the
// disk; the comparison is of the network paths, not of the disk.
func memoryDir(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "tcpcraft-bench-")
	if err != nil {
		return b.TempDir()
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// checker counts and checksums bytes and notes when the last one came.
type checker struct {
	mu   sync.Mutex
	n    int64
	crc  uint32
	want int64
	full chan struct{} // closed when want bytes were seen
	at   time.Time
}

func newChecker(want int64) *checker { return &checker{want: want, full: make(chan struct{})} }

func (c *checker) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.crc = crc32.Update(c.crc, castagnoli, p)
	before := c.n
	c.n += int64(len(p))
	if before < c.want && c.n >= c.want {
		c.at = time.Now()
		close(c.full)
	}
	return len(p), nil
}

func (c *checker) verify(p payload) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n != int64(len(p.data)) || c.crc != p.crc {
		return fmt.Errorf("received %d bytes with CRC-32C %#08x, sent %d bytes with %#08x", c.n, c.crc, len(p.data), p.crc)
	}
	return nil
}

// copyPlain copies with a 64 KiB buffer and plain read/write calls (no
// sendfile or splice), the same work tcpcraft's pipe does.
func copyPlain(dst io.Writer, src io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 64<<10))
}

// runInto runs tcpcraft in the client namespace with its stdout going to
// out (so out sees bytes as they come) and returns an error unless it
// exits 0.
func runInto(e *e2eLab, in io.Reader, out io.Writer, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, e.ClientNS, e.bin, args...)
	stderr := &syncBuffer{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tcpcraft %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return nil
}

// bulkSides are the sides of a bulk comparison: tcpcraft quiet and the
// kernel, and with TCPCRAFT_BENCH_TRACE=1 also "traced": tcpcraft with
// its default trace (every segment, one line each) written to a file, as
// `tcpcraft connect HOST:PORT < file 2> trace` runs. With
// TCPCRAFT_BENCH_BASELINE (another tcpcraft binary: one built from an older
// commit, say) also "baseline": that binary's `connect -q`, so that a
// change is measured against what it replaces in the same run.
func bulkSides() []string {
	sides := []string{"tcpcraft", "kernel"}
	if os.Getenv("TCPCRAFT_BENCH_TRACE") == "1" {
		sides = []string{"tcpcraft", "traced", "kernel"}
	}
	if os.Getenv("TCPCRAFT_BENCH_BASELINE") != "" {
		sides = append(sides, "baseline")
	}
	return sides
}

// reportBaseline logs the baseline side's rate against the kernel's and
// tcpcraft's, if it ran.
func (r results) reportBaseline(b *testing.B) {
	b.Helper()
	bs, tc, kc := median(r["baseline"]), median(r["tcpcraft"]), median(r["kernel"])
	if bs == 0 {
		return
	}
	b.Logf("baseline %s Mbit/s per round: %.1f; median %.1f, %.3f of the kernel (tcpcraft %.3f)",
		os.Getenv("TCPCRAFT_BENCH_BASELINE"), r["baseline"], bs, bs/kc, tc/kc)
	b.ReportMetric(bs, "baseline-Mbit/s")
	b.ReportMetric(bs/kc, "baseline/kernel")
}

// runTcpcraftBulk runs `tcpcraft connect` for a bulk comparison's side
// ("tcpcraft": -q; "traced": the default trace into a file of dir) and
// returns the trace's lines (0 for -q).
func runTcpcraftBulk(e *e2eLab, side, dir string, in io.Reader, out io.Writer, addr string) (lines int, err error) {
	if side == "baseline" {
		base := *e
		base.bin = os.Getenv("TCPCRAFT_BENCH_BASELINE")
		return 0, runInto(&base, in, out, "connect", "-q", "--time-wait", "10ms", addr)
	}
	if side != "traced" {
		return 0, runInto(e, in, out, "connect", "-q", "--time-wait", "10ms", addr)
	}
	path := filepath.Join(dir, "trace")
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, e.ClientNS, e.bin, "connect", "--time-wait", "10ms", addr)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, f
	err = cmd.Run()
	f.Close()
	trace, rerr := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("tcpcraft connect (traced): %w\n%s", err, tail(string(trace), 2000))
	}
	if rerr != nil {
		return 0, rerr
	}
	return bytes.Count(trace, []byte{'\n'}), nil
}

// reportTraced logs what the trace costs: the traced run's rate against
// the kernel's and against tcpcraft's quiet one, and the time per line
// ((traced - quiet time) / lines), from the medians.
func (r results) reportTraced(b *testing.B, mb int, lines []float64) {
	b.Helper()
	tr, tc, kc := median(r["traced"]), median(r["tcpcraft"]), median(r["kernel"])
	if tr == 0 {
		return
	}
	b.Logf("traced   Mbit/s per round: %.1f; trace lines per round %.0f", r["traced"], lines)
	bits := float64(mb<<20) * 8 / 1e6
	perLine := (bits/tr - bits/tc) / median(lines) * 1e9 // ns
	b.Logf("traced: %.1f Mbit/s, %.3f of the kernel, %.3f of -q; the trace costs %.0f ns a line (%.0f lines)",
		tr, tr/kc, tr/tc, perLine, median(lines))
	b.ReportMetric(tr, "traced-Mbit/s")
	b.ReportMetric(tr/kc, "traced/kernel")
	b.ReportMetric(perLine, "ns/trace-line")
}

// results collects per-round measurements of both sides.
type results map[string][]float64

func (r results) report(b *testing.B, unit string, higherIsBetter bool) {
	b.Helper()
	tc, kc := median(r["tcpcraft"]), median(r["kernel"])
	b.Logf("tcpcraft %s per round: %.1f", unit, r["tcpcraft"])
	b.Logf("kernel   %s per round: %.1f", unit, r["kernel"])
	// For a rate the ratio is tcpcraft's share of the kernel's (higher is
	// better); for a time it is tcpcraft's as a multiple of the kernel's.
	ratio := tc / kc
	_ = higherIsBetter
	b.Logf("medians: tcpcraft %.1f %s, kernel %.1f %s, ratio %.3f", tc, unit, kc, unit, ratio)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(tc, "tcpcraft-"+unit)
	b.ReportMetric(kc, "kernel-"+unit)
	b.ReportMetric(ratio, "tcpcraft/kernel")
}

// benchServerAddr is the server's address of the bulk benchmarks: IPv4,
// or IPv6 with TCPCRAFT_BENCH_FAMILY=6 (scripts/bench.sh bulk-send6,
// bulk-recv6), so the two families are compared with the kernel alike.
func benchServerAddr(b *testing.B, e *e2eLab, port int) string {
	switch f := os.Getenv("TCPCRAFT_BENCH_FAMILY"); f {
	case "", "4":
		return e.serverAddr(port)
	case "6":
		return e.serverAddr6(port)
	default:
		b.Fatalf("TCPCRAFT_BENCH_FAMILY=%q: want 4 or 6", f)
		return ""
	}
}

// BenchmarkPerfBulkSend: `tcpcraft connect` uploads the payload from a file
// to a kernel sink, against a kernel client (Go net.Dial in the same
// namespace, a process of its own reading the same file from its standard
// input: runKernelSender) doing the same. Throughput is measured at the sink, from the
// accepted connection to the last byte, in Mbit/s.
func BenchmarkPerfBulkSend(b *testing.B) {
	e := perfLab(b)
	p := newPayload(b, envInt(b, "TCPCRAFT_BENCH_MB", 200))
	rounds := envInt(b, "TCPCRAFT_BENCH_ROUNDS", 3)
	const port = 9200
	addr := benchServerAddr(b, e, port)
	ln := labtest.Listen(b, e.Lab, e.ServerNS, addr)
	type sunk struct {
		c       *checker
		elapsed time.Duration
		err     error
	}
	sinks := make(chan sunk, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			start := time.Now()
			chk := newChecker(int64(len(p.data)))
			_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
			_, err = copyPlain(chk, c)
			elapsed := time.Since(start)
			c.Close()
			sinks <- sunk{chk, elapsed, err}
		}
	}()
	b.Cleanup(func() { ln.Close() })

	cc := kernelCC("cubic")
	res := results{}
	var lines []float64
	dir := b.TempDir()
	b.ResetTimer()
	for round := range rounds {
		for _, side := range bulkSides() {
			var clientErr error
			if side != "kernel" {
				f, err := os.Open(p.path)
				if err != nil {
					b.Fatal(err)
				}
				var n int
				n, clientErr = runTcpcraftBulk(e, side, dir, f, io.Discard, addr)
				if side == "traced" {
					lines = append(lines, float64(n))
				}
				f.Close()
			} else {
				f, err := os.Open(p.path)
				if err != nil {
					b.Fatal(err)
				}
				clientErr = runKernelSender(e, f, addr, cc)
				f.Close()
			}
			var s sunk
			select {
			case s = <-sinks:
			case <-time.After(5 * time.Minute):
				b.Fatalf("%s round %d: the sink saw no end of the transfer (client: %v)", side, round, clientErr)
			}
			if clientErr != nil {
				b.Fatalf("%s round %d: %v", side, round, clientErr)
			}
			if s.err != nil {
				b.Fatalf("%s round %d: sink: %v", side, round, s.err)
			}
			if err := s.c.verify(p); err != nil {
				b.Fatalf("%s round %d: %v", side, round, err)
			}
			res[side] = append(res[side], float64(len(p.data))*8/s.elapsed.Seconds()/1e6)
		}
	}
	b.StopTimer()
	b.Logf("%d MB per transfer to %s, %d rounds each, interleaved; bytes and CRC-32C verified every round; congestion control: tcpcraft cubic, kernel %s (namespace default %s)",
		len(p.data)>>20, addr, rounds, cc, namespaceCC(e, e.ClientNS))
	res.report(b, "Mbit/s", true)
	res.reportTraced(b, len(p.data)>>20, lines)
	res.reportBaseline(b)
}

// BenchmarkPerfBulkRecv: `tcpcraft connect` downloads the payload from a
// kernel source (its stdout counted and checksummed), against a kernel
// client doing the same in a process of its own (runKernelReceiver), its
// stdout counted and checksummed the same way. Throughput is from the
// source's accept to the last byte the checker got, in Mbit/s.
func BenchmarkPerfBulkRecv(b *testing.B) {
	e := perfLab(b)
	p := newPayload(b, envInt(b, "TCPCRAFT_BENCH_MB", 200))
	rounds := envInt(b, "TCPCRAFT_BENCH_ROUNDS", 3)
	const port = 9201
	addr := benchServerAddr(b, e, port)
	ln := labtest.Listen(b, e.Lab, e.ServerNS, addr)
	accepted := make(chan time.Time, 1)
	sourceErr := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- time.Now()
			_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
			_, err = copyPlain(c, bytes.NewReader(p.data))
			if err == nil {
				_ = c.(*net.TCPConn).CloseWrite()
				_, err = io.Copy(io.Discard, c)
			}
			c.Close()
			sourceErr <- err
		}
	}()
	b.Cleanup(func() { ln.Close() })

	res := results{}
	var lines []float64
	dir := b.TempDir()
	b.ResetTimer()
	for round := range rounds {
		for _, side := range bulkSides() {
			chk := newChecker(int64(len(p.data)))
			var clientErr error
			if side != "kernel" {
				var n int
				n, clientErr = runTcpcraftBulk(e, side, dir, nil, chk, addr)
				if side == "traced" {
					lines = append(lines, float64(n))
				}
			} else {
				clientErr = runKernelReceiver(e, chk, addr)
			}
			if clientErr != nil {
				b.Fatalf("%s round %d: %v", side, round, clientErr)
			}
			start := <-accepted
			if err := <-sourceErr; err != nil {
				b.Fatalf("%s round %d: source: %v", side, round, err)
			}
			if err := chk.verify(p); err != nil {
				b.Fatalf("%s round %d: %v", side, round, err)
			}
			res[side] = append(res[side], float64(len(p.data))*8/chk.at.Sub(start).Seconds()/1e6)
		}
	}
	b.StopTimer()
	b.Logf("%d MB per transfer from %s, %d rounds each, interleaved; bytes and CRC-32C verified every round", len(p.data)>>20, addr, rounds)
	res.report(b, "Mbit/s", true)
	res.reportTraced(b, len(p.data)>>20, lines)
	res.reportBaseline(b)
}

// kernelSenderEnv, set in a re-run of this test binary, makes it the
// kernel's side of the send comparison (see runKernelSender) instead of
// running tests: the value is the congestion control, a space and the
// address to upload to.
const kernelSenderEnv = "TCPCRAFT_BENCH_KERNEL_SENDER"

// runKernelSender uploads in to addr with the kernel's TCP (congestion
// control cc) in a process of its own in the client namespace (this test
// binary again, as kernelSender) that reads in as its standard input: the
// same path as tcpcraft's (a process that sends the file it is given).
// With the client inside the benchmark's own process, beside the sink and
// its checker, the two shared one Go scheduler that tcpcraft's process
// did not: the same reason the receive comparison runs its kernel client
// apart.
func runKernelSender(e *e2eLab, in io.Reader, addr, cc string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, e.ClientNS, os.Args[0])
	cmd.Env = append(os.Environ(), kernelSenderEnv+"="+cc+" "+addr)
	stderr := &syncBuffer{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, io.Discard, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kernel sender: %w\n%s", err, tail(stderr.String(), 2000))
	}
	return nil
}

// kernelSender is the kernel's side of the send comparison: connect to
// addr with congestion control cc, copy standard input to the connection
// with plain 64 KiB reads and writes, half-close, and wait for the peer's
// end.
func kernelSender(cc, addr string) error {
	c, err := dialCC(addr, cc, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := copyPlain(c, os.Stdin); err != nil {
		return err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_, err = io.Copy(io.Discard, c)
	return err
}

// kernelReceiverEnv, set in a re-run of this test binary, makes it the
// kernel's side of the receive comparison (see runKernelReceiver) instead
// of running tests: the value is the address to download from.
const kernelReceiverEnv = "TCPCRAFT_BENCH_KERNEL_RECEIVER"

// runKernelReceiver downloads from addr with the kernel's TCP in a process
// of its own in the client namespace (this test binary again, as
// kernelReceiver), whose standard output goes to out: the same path as
// tcpcraft's (a process that writes what it receives to a pipe the
// benchmark reads and checks). With the client inside the benchmark's own
// process, next to the source and the checker, the kernel's figure swung
// between 2.5 and 18 Gbit/s from round to round with how the Go scheduler
// placed them on the two CPUs.
func runKernelReceiver(e *e2eLab, out io.Writer, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, e.ClientNS, os.Args[0])
	cmd.Env = append(os.Environ(), kernelReceiverEnv+"="+addr)
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kernel receiver: %w\n%s", err, tail(stderr.String(), 2000))
	}
	return nil
}

// kernelReceiver is the kernel's side of the receive comparison: connect to
// addr, half-close, and copy everything received to standard output with
// plain 64 KiB reads and writes (as tcpcraft's connect does).
func kernelReceiver(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.(*net.TCPConn).CloseWrite()
	_, err = copyPlain(os.Stdout, c)
	return err
}

// BenchmarkPerfConns: TCPCRAFT_BENCH_CONNS (default 10,000) concurrent
// connections from kernel clients held open by `tcpcraft listen -k`; the
// metric is tcpcraft's resident memory (VmRSS) once all are established,
// with the same count held by a kernel (Go) listener for comparison of
// nothing but correctness (the kernel's memory is not a process's RSS).
func BenchmarkPerfConns(b *testing.B) {
	e := perfLab(b)
	n := envInt(b, "TCPCRAFT_BENCH_CONNS", 10000)
	const port = 9203
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < uint64(n)+1000 {
		lim.Cur = max(lim.Max, uint64(n)+1000)
		lim.Max = lim.Cur
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatalf("raising RLIMIT_NOFILE to %d: %v", lim.Cur, err)
		}
	}
	args := []string{"listen", "-q", "-k", "--echo", "--backlog", "4096"}
	if w := os.Getenv("TCPCRAFT_BENCH_WINDOW"); w != "" {
		args = append(args, "--window", w)
	}
	args = append(args, fmt.Sprintf(":%d", port))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := e.Command(ctx, e.ServerNS, e.bin, args...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting tcpcraft listen: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			cancel()
			<-exited
			b.Errorf("tcpcraft listen did not stop within 60 s of SIGINT")
		}
	}()
	rss := func() int64 {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			b.Fatalf("reading tcpcraft's status: %v", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
		b.Fatalf("no VmRSS in /proc/%d/status", cmd.Process.Pid)
		return 0
	}
	// Wait until it answers.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := lab.Do(e.ClientNS, func() error {
			c, err := net.DialTimeout("tcp", e.serverAddr(port), time.Second)
			if err == nil {
				_ = c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("tcpcraft listen does not answer: %v\n%s", err, tail(stderr.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	idle := rss()

	b.ResetTimer()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	start := time.Now()
	// Each worker enters the client namespace on its own thread (lab.Do):
	// a goroutine started inside lab.Do would run on another thread, in
	// the root namespace, and must never dial from there.
	const workers = 32
	var mu sync.Mutex
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- lab.Do(e.ClientNS, func() error {
				d := net.Dialer{Timeout: 10 * time.Second}
				for i := w; i < n; i += workers {
					c, err := d.Dial("tcp", e.serverAddr(port))
					if err != nil {
						return fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	err := errors.Join(all...)
	if err != nil {
		state := "still running"
		select {
		case werr := <-exited:
			state = fmt.Sprintf("exited: %v", werr)
			exited <- werr
		case <-time.After(500 * time.Millisecond):
		}
		b.Fatalf("opening %d connections (%d open; tcpcraft %s): %v\n%s", n, len(conns), state, tail(err.Error(), 1000), tail(stderr.String(), 4000))
	}
	elapsed := time.Since(start)
	time.Sleep(2 * time.Second) // let the last ACKs land and memory settle
	held := rss()
	b.StopTimer()
	// Every connection must still be open: a read that times out (rather
	// than EOF or a reset) says tcpcraft holds it.
	var checks sync.WaitGroup
	var deadN atomic.Int64
	for i := 0; i < len(conns); i += 500 {
		checks.Add(1)
		go func(part []net.Conn) {
			defer checks.Done()
			var one [1]byte
			for _, c := range part {
				_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
				if _, err := c.Read(one[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
					deadN.Add(1)
				}
			}
		}(conns[i:min(i+500, len(conns))])
	}
	checks.Wait()
	if deadN.Load() > 0 {
		b.Fatalf("%d of %d connections were not held open", deadN.Load(), len(conns))
	}
	if cmd.ProcessState != nil {
		b.Fatalf("tcpcraft listen ended:\n%s", tail(stderr.String(), 2000))
	}
	b.Logf("%d connections opened in %v; tcpcraft VmRSS idle %.1f MB, holding them %.1f MB (%.1f KB per connection)",
		len(conns), elapsed.Round(time.Millisecond), float64(idle)/1e6, float64(held)/1e6, float64(held-idle)/float64(n)/1e3)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(held)/1e6, "MB-RSS")
	b.ReportMetric(float64(held-idle)/float64(n)/1e3, "KB/conn")
}
