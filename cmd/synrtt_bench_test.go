package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kernelDialerEnv, set in a re-run of this test binary, makes it the
// kernel's side of BenchmarkPerfSYNRTT: the value is the address and the
// count of connect() calls to time.
const kernelDialerEnv = "TCPCRAFT_BENCH_KERNEL_DIALER"

// kernelAcceptorEnv, set in a re-run of this test binary, makes it the
// server of BenchmarkPerfSYNRTT: it listens on the value's address,
// prints "ready", and accepts and closes connections until killed.
const kernelAcceptorEnv = "TCPCRAFT_BENCH_KERNEL_ACCEPTOR"

// kernelDialer times count connect() calls to addr (v is "addr count"),
// closing each with a reset (linger 0, so TIME-WAIT does not pile up),
// and prints the times in µs as one JSON array.
func kernelDialer(v string) error {
	addr, n, _ := strings.Cut(v, " ")
	count, err := strconv.Atoi(n)
	if err != nil {
		return err
	}
	lat := make([]int64, 0, count)
	for range count {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		d := time.Since(start)
		if err != nil {
			return err
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
		lat = append(lat, d.Microseconds())
	}
	return json.NewEncoder(os.Stdout).Encode(lat)
}

// kernelAcceptor listens on addr and accepts and closes until killed.
func kernelAcceptor(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		c.Close()
	}
}

// BenchmarkPerfSYNRTT: SYN→SYN-ACK as `tcpcraft send --flags S --count 300
// --interval 2ms --json` reports it (one SYN at a time, as the kernel's
// connect() calls go: with --interval 0 the prober sends its 300 SYNs
// back to back and times the queue they make) (the median and minimum of its RTTs),
// against the kernel's connect() timed in a process of its own (this test
// binary again, kernelDialer: 300 Go net.Dial calls, each timed), both
// against a server that is a process of its own too (kernelAcceptor) in
// the server namespace, in interleaved rounds; µs. Timing the kernel
// inside the benchmark's process, beside its own accept loop, put it at
// 135-151 µs where on its own it takes 45-65 (docs/PERFORMANCE.md). The
// ratio is tcpcraft's median over the kernel's (lower is better); the
// medians over their own minimums are logged too.
func BenchmarkPerfSYNRTT(b *testing.B) {
	e := perfLab(b)
	rounds := envInt(b, "TCPCRAFT_BENCH_ROUNDS", 3)
	const port, count = 9202, 300
	addr := e.serverAddr(port)

	ctx, cancel := context.WithCancel(context.Background())
	acceptor := e.Command(ctx, e.ServerNS, os.Args[0])
	acceptor.Env = append(os.Environ(), kernelAcceptorEnv+"="+addr)
	out, err := acceptor.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	acceptor.Stderr = os.Stderr
	if err := acceptor.Start(); err != nil {
		b.Fatalf("starting the acceptor: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		_ = acceptor.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("the acceptor: %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	res, mins := results{}, results{}
	b.ResetTimer()
	for round := range rounds {
		// tcpcraft
		var stdout syncBuffer
		if err := runInto(e, nil, &stdout, "send", "--flags", "S", "--count", strconv.Itoa(count), "--interval", "2ms", "--json", addr); err != nil {
			b.Fatalf("round %d: %v", round, err)
		}
		var sum struct {
			Sent     int   `json:"sent"`
			Received int   `json:"received"`
			MinUs    int64 `json:"rtt_min_us"`
			MedianUs int64 `json:"rtt_median_us"`
		}
		found := false
		sc := bufio.NewScanner(strings.NewReader(stdout.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"summary"`) {
				if err := json.Unmarshal(sc.Bytes(), &sum); err != nil {
					b.Fatalf("round %d: summary line %q: %v", round, sc.Text(), err)
				}
				found = true
			}
		}
		if !found || sum.Sent != count || sum.Received != count {
			b.Fatalf("round %d: want %d SYNs sent and answered, got summary %+v (found %v); stdout tail:\n%s", round, count, sum, found, tail(stdout.String(), 2000))
		}
		res["tcpcraft"] = append(res["tcpcraft"], float64(sum.MedianUs))
		mins["tcpcraft"] = append(mins["tcpcraft"], float64(sum.MinUs))

		// the kernel, in a process of its own
		var kout syncBuffer
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		dialer := e.Command(dctx, e.ClientNS, os.Args[0])
		dialer.Env = append(os.Environ(), kernelDialerEnv+"="+addr+" "+strconv.Itoa(count))
		stderr := &syncBuffer{}
		dialer.Stdout, dialer.Stderr = &kout, stderr
		err := dialer.Run()
		dcancel()
		if err != nil {
			b.Fatalf("round %d: kernel dialer: %v\n%s", round, err, stderr.String())
		}
		var lat []int64
		if err := json.Unmarshal([]byte(kout.String()), &lat); err != nil || len(lat) != count {
			b.Fatalf("round %d: kernel dialer: %d times, %v", round, len(lat), err)
		}
		f := make([]float64, len(lat))
		for i, v := range lat {
			f[i] = float64(v)
		}
		res["kernel"] = append(res["kernel"], median(f))
		mins["kernel"] = append(mins["kernel"], slices.Min(f))
	}
	b.StopTimer()
	b.Logf("%d SYNs / connects per round, %d rounds each, interleaved; every SYN answered; server, tcpcraft and the kernel's client each a process of its own", count, rounds)
	res.report(b, "us", false)
	tm, km := median(mins["tcpcraft"]), median(mins["kernel"])
	b.Logf("minimums per round: tcpcraft %.0f, kernel %.0f; median over own minimum: tcpcraft %.2f, kernel %.2f",
		mins["tcpcraft"], mins["kernel"], median(res["tcpcraft"])/tm, median(res["kernel"])/km)
	b.ReportMetric(median(res["tcpcraft"])/tm, "tcpcraft-median/min")
	b.ReportMetric(median(res["kernel"])/km, "kernel-median/min")
}
