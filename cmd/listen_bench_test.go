package cmd

// The accept-rate benchmark of `tcpcraft listen`: connections per second
// accepted and served by `tcpcraft listen -k --echo` (the binary, in the
// server namespace of a fresh lab) against the kernel's own listener (a Go
// echo server in the same namespace, on the same veth), in the same run,
// in interleaved rounds. Run it with scripts/bench.sh accept, or
//
//	go test ./cmd -run '^$' -bench ListenAcceptRate -benchtime 500x
//
// b.N is the number of connections per round and per server (so use an
// "Nx" -benchtime: the default 1s would stop at N=1, a single connection
// per round). Each connection is one short exchange from a Go client in the
// client namespace: connect, write 1 byte, read the 1-byte echo (checked),
// close. Results are medians over benchRounds rounds, reported as
// tcpcraft-conns/s, kernel-conns/s and tcpcraft/kernel (the ratio).

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// benchRounds is how many measured rounds each server gets (after one
// unmeasured warm-up round each).
const benchRounds = 5

func BenchmarkListenAcceptRate(b *testing.B) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchAcceptRate(b, clients) })
	}
}

// benchAcceptRate measures with `clients` concurrent client threads, each
// making its share of the round's connections one after the other.
func benchAcceptRate(b *testing.B, clients int) {
	labtest.RequireRoot(b)
	labtest.RequireTools(b, "ip", "iptables", "iptables-save")
	e := &e2eLab{Lab: labtest.New(b), bin: tcpcraftBinary(b)}
	const tcpcraftPort, kernelPort = 9100, 9101

	// The kernel: a Go echo server inside the server namespace.
	ln := labtest.Listen(b, e.Lab, e.ServerNS, e.serverAddr(kernelPort))
	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at cleanup
			}
			served.Add(1)
			go func() {
				defer served.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(peerTimeout))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); served.Wait() })

	// tcpcraft: the binary, as users run it.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := e.Command(ctx, e.ServerNS, e.bin, "listen", "-q", "-k", "--echo", "--time-wait", "10ms", fmt.Sprintf(":%d", tcpcraftPort))
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatalf("starting tcpcraft listen: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if code := cmd.ProcessState.ExitCode(); code != 130 {
				b.Errorf("tcpcraft listen exited %d (%v) after SIGINT, want 130; stderr:\n%s", code, err, tail(stderr.String(), 2000))
			}
		case <-time.After(30 * time.Second):
			cancel() // kills it
			<-exited
			b.Errorf("tcpcraft listen did not stop within 30 s of SIGINT")
		}
		cancel()
		if rules := guardsOf(b, e, e.ServerNS, cmd.Process.Pid); len(rules) > 0 {
			b.Errorf("tcpcraft left a rule: %q", rules)
		}
	}
	b.Cleanup(func() {
		if !stopped {
			stop()
		}
	})

	servers := []struct {
		name string
		port int
	}{{"tcpcraft", tcpcraftPort}, {"kernel", kernelPort}}
	// Until tcpcraft's rule and capture are in place its port refuses
	// (or drops) connections: wait for one echo from each server.
	for _, s := range servers {
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := acceptRound(e, s.port, 1, 1)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s on :%d does not answer: %v\n%s", s.name, s.port, err, tail(stderr.String(), 2000))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	n := max(b.N, clients)
	rates := map[string][]float64{}
	b.ResetTimer()
	for round := -1; round < benchRounds; round++ { // round -1 warms up
		for _, s := range servers {
			rate, err := acceptRound(e, s.port, n, clients)
			if err != nil {
				b.Fatalf("%s, round %d: %v", s.name, round, err)
			}
			if round >= 0 {
				rates[s.name] = append(rates[s.name], rate)
			}
		}
	}
	b.StopTimer()
	if cmd.ProcessState != nil {
		b.Fatalf("tcpcraft listen ended during the benchmark:\n%s", tail(stderr.String(), 2000))
	}
	stop()

	tc, kc := median(rates["tcpcraft"]), median(rates["kernel"])
	if b.N > 1 { // not the framework's first probe with N=1
		b.Logf("%d connections per round, %d client threads, %d rounds each, interleaved", n, clients, benchRounds)
		b.Logf("tcpcraft conns/s per round: %.0f", rates["tcpcraft"])
		b.Logf("kernel   conns/s per round: %.0f", rates["kernel"])
		b.Logf("medians: tcpcraft %.0f conns/s, kernel %.0f conns/s, ratio %.3f", tc, kc, tc/kc)
	}
	b.ReportMetric(0, "ns/op") // per-connection time of both servers together means nothing
	b.ReportMetric(tc, "tcpcraft-conns/s")
	b.ReportMetric(kc, "kernel-conns/s")
	b.ReportMetric(tc/kc, "tcpcraft/kernel")
}

// acceptRound makes n short connections to 10.0.2.20:port from the client
// namespace, spread over `clients` threads, and returns connections per
// second. Every echo byte is checked: a fast wrong answer is an error.
func acceptRound(e *e2eLab, port, n, clients int) (float64, error) {
	addr := e.serverAddr(port)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		share := n / clients
		if w < n%clients {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One thread in the client namespace per worker: sockets made
			// on it belong to that namespace.
			errs <- lab.Do(e.ClientNS, func() error {
				var buf [1]byte
				for i := range share {
					conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						return fmt.Errorf("connection %d of worker %d: %w", i, w, err)
					}
					_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
					want := byte(w*31 + i)
					_, err = conn.Write([]byte{want})
					if err == nil {
						_, err = io.ReadFull(conn, buf[:])
					}
					conn.Close()
					if err != nil {
						return fmt.Errorf("connection %d of worker %d: %w", i, w, err)
					}
					if buf[0] != want {
						return fmt.Errorf("connection %d of worker %d: echo %#x, sent %#x", i, w, buf[0], want)
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(n) / elapsed.Seconds(), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
