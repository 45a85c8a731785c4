package cmd

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// exchangeRequest and exchangeResponse are the request/response exchange
// of BenchmarkPerfExchange: an HTTP/1.0 GET and a small answer.
const (
	exchangeRequest  = "GET / HTTP/1.0\r\n\r\n"
	exchangeResponse = "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"
)

// BenchmarkPerfExchange: a scripted request/response exchange end to end,
// `printf 'GET / HTTP/1.0\r\n\r\n' | tcpcraft connect -q HOST:PORT` against
// `socat - TCP:HOST:PORT` with the same input, each a process of its own
// started from a thread inside the client namespace (lab.Do, so neither
// pays for `ip netns exec`), in interleaved rounds on one lab. The server
// (a kernel socket) reads the request to the client's FIN, answers and
// closes, so both clients close first (their input ends right after the
// request) and tcpcraft goes through TIME-WAIT every time: the figure is from
// fork to exit, TIME-WAIT included, with tcpcraft's defaults (its
// TIME-WAIT ends once the probe shows the peer closed, fsm
// Config.TimeWaitProbe). Every run's output is checked.
//
//	go test ./cmd -run '^$' -bench PerfExchange -benchtime 1x
//
// TCPCRAFT_BENCH_ROUNDS sets the rounds (default 3; each round is 20 runs
// of each). TCPCRAFT_BENCH_FULL_TIME_WAIT=1 adds `connect -q
// --full-time-wait` (TIME-WAIT held for all of --time-wait, 1 s: what
// the exchange cost before) as a third side, with 3 runs a round.
// TCPCRAFT_BENCH_BASELINE names another tcpcraft binary (one built from an
// older commit, say) to run `connect -q` interleaved with the others as
// "baseline", so that a change is measured against what it replaces in the
// same run.
func BenchmarkPerfExchange(b *testing.B) {
	e := perfLab(b)
	labtest.RequireTools(b, "socat")
	socat, err := exec.LookPath("socat")
	if err != nil {
		b.Fatal(err)
	}
	rounds := envInt(b, "TCPCRAFT_BENCH_ROUNDS", 3)
	const port, perRound = 9204, 20
	server := netip.AddrPortFrom(e.ServerIP(), port)
	ln := labtest.Listen(b, e.Lab, e.ServerNS, server.String())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveExchange(c)
		}
	}()
	b.Cleanup(func() { ln.Close() })

	type side struct {
		name string
		argv []string
		runs int
	}
	sides := []side{
		{"tcpcraft", []string{e.bin, "connect", "-q", server.String()}, perRound},
		{"socat", []string{socat, "-", "TCP:" + server.String()}, perRound},
	}
	if base := os.Getenv("TCPCRAFT_BENCH_BASELINE"); base != "" {
		sides = append(sides, side{"baseline", []string{base, "connect", "-q", server.String()}, perRound})
	}
	if os.Getenv("TCPCRAFT_BENCH_FULL_TIME_WAIT") == "1" {
		sides = append(sides, side{"full-time-wait", []string{e.bin, "connect", "-q", "--full-time-wait", server.String()}, 3})
	}
	run := func(argv []string) (time.Duration, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = strings.NewReader(exchangeRequest)
		var stdout bytes.Buffer
		stderr := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		var start time.Time
		if err := lab.Do(e.ClientNS, func() error {
			start = time.Now()
			return cmd.Start()
		}); err != nil {
			return 0, err
		}
		werr := cmd.Wait()
		d := time.Since(start)
		if werr != nil {
			return 0, fmt.Errorf("%v: %w\n%s", argv, werr, stderr.String())
		}
		if stdout.String() != exchangeResponse {
			return 0, fmt.Errorf("%v: output %q, want %q", argv, stdout.String(), exchangeResponse)
		}
		return d, nil
	}
	for _, s := range sides {
		if _, err := run(s.argv); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	res := results{}
	b.ResetTimer()
	for round := range rounds {
		for _, s := range sides {
			var ms []float64
			for range s.runs {
				d, err := run(s.argv)
				if err != nil {
					b.Fatalf("round %d: %v", round, err)
				}
				ms = append(ms, float64(d.Microseconds())/1000)
			}
			name := s.name
			if name == "socat" {
				name = "kernel" // results.report's name for the reference
			}
			res[name] = append(res[name], median(ms))
		}
	}
	b.StopTimer()
	b.Logf("%d rounds of %d runs each, interleaved; per-round medians of fork-to-exit; 'kernel' is socat", rounds, perRound)
	res.report(b, "ms-exchange", false)
	if bs, ok := res["baseline"]; ok {
		b.Logf("baseline %s connect -q per round: %.1f; median %.1f ms (%.2fx socat)", os.Getenv("TCPCRAFT_BENCH_BASELINE"), bs, median(bs), median(bs)/median(res["kernel"]))
		b.ReportMetric(median(bs), "baseline-ms-exchange")
	}
	if f, ok := res["full-time-wait"]; ok {
		b.Logf("connect -q --full-time-wait per round: %.1f; median %.1f ms (%.1fx socat)", f, median(f), median(f)/median(res["kernel"]))
		b.ReportMetric(median(f), "full-time-wait-ms-exchange")
	}
}

// serveExchange reads the request to the client's FIN, answers and
// closes: the client always closes first, so tcpcraft always goes through
// TIME-WAIT (a server that answered as soon as it had the request would
// race the client's FIN, and tcpcraft would often close second).
func serveExchange(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return
	}
	_, _ = c.Write([]byte(exchangeResponse))
}
