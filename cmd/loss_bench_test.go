package cmd

// The goodput benchmark under loss: tcpcraft (`tcpcraft connect`, the
// binary, in the client namespace of a fresh lab) uploading to a kernel
// sink (a Go server in the server namespace) against the kernel's own TCP
// (a Go client in the same client namespace, the same sink, the same
// veth), in the same run, in interleaved rounds, with segments dropped at
// random in the sink's namespace (iptables -m statistic, INPUT and
// OUTPUT). Run it with scripts/bench.sh loss, or
//
//	go test ./cmd -run '^$' -bench LossGoodput -benchtime 1x
//
// Settings (environment): TCPCRAFT_LOSS_P (drop probability, default
// 0.01), TCPCRAFT_LOSS_MB (megabytes per upload, default 32),
// TCPCRAFT_LOSS_ROUNDS (measured rounds per side and phase, default 5),
// TCPCRAFT_LOSS_CC (tcpcraft's --cc, default cubic; the kernel's client
// uses the same algorithm through TCP_CONGESTION, whatever the machine's
// default is, unless TCPCRAFT_BENCH_KERNEL_CC names another or "default"),
// TCPCRAFT_LOSS_OFFLOAD=on to keep the veth's segmentation offloads.
//
// Offloads are off by default: with TSO/GSO the kernel hands the veth
// 64 KB super-segments and iptables drops (or keeps) each as one packet,
// so the kernel would see 1% of ~45-segment aggregates lost while
// tcpcraft, which sends one MSS per packet, sees 1% of its segments lost.
// Without them both sides send MSS-sized segments and suffer the same
// loss per segment.
//
// The benchmark runs two phases, each interleaved: without loss (to
// show what each side does when nothing is dropped) and with loss; it
// reports the ratio under loss (the acceptance figure), the ratio
// without, and each side's efficiency (goodput with loss / without).
//
// Goodput is measured at the sink, from accepting the connection to its
// EOF, so neither side pays for process start-up or the handshake. Every
// upload is checked at the sink (byte count and SHA-256). Retransmissions:
// tcpcraft's are its own count (-q --stats: quiet, so its bulk data goes
// out by segmentation offload as in any quiet run, cut into MSS-sized
// packets before the veth since offloads are off there), with its
// retransmission timer expiries; the kernel's are RetransSegs of
// /proc/net/snmp and TCPTimeouts of /proc/net/netstat in the client
// namespace, read before and after each of its rounds. Reported: medians
// of goodput, the ratio tcpcraft/kernel, and the total retransmissions and
// timeouts of each side.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// benchEnv reads a numeric benchmark setting.
func lossBenchEnv(b *testing.B, name string, def float64) float64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

// lossSinkResult is what the sink saw of one upload.
type lossSinkResult struct {
	n        int64
	sum      [32]byte
	duration time.Duration // accept to EOF
	err      error
}

func BenchmarkLossGoodput(b *testing.B) {
	labtest.RequireRoot(b)
	labtest.RequireTools(b, "ip", "iptables", "iptables-save")
	loss := lossBenchEnv(b, "TCPCRAFT_LOSS_P", 0.01)
	size := int(lossBenchEnv(b, "TCPCRAFT_LOSS_MB", 32) * (1 << 20))
	rounds := int(lossBenchEnv(b, "TCPCRAFT_LOSS_ROUNDS", 5))
	cc := os.Getenv("TCPCRAFT_LOSS_CC")
	if cc == "" {
		cc = "cubic"
	}
	// Like for like: the kernel runs tcpcraft's algorithm unless
	// TCPCRAFT_BENCH_KERNEL_CC says otherwise ("default", "bbr", ...).
	kcc := kernelCC(cc)
	e := &e2eLab{Lab: labtest.New(b), bin: tcpcraftBinary(b)}
	const port = 9300
	addr := e.serverAddr(port)
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{'l', 'o', 's', 's'}).Read(data)
	want := sha256.Sum256(data)
	// Both sides read the upload from the same file, the way a user would
	// hand tcpcraft its input, so neither pays for a feeding process the
	// other does not have.
	dataPath := filepath.Join(memoryDir(b), "upload")
	if err := os.WriteFile(dataPath, data, 0o600); err != nil {
		b.Fatalf("writing the upload: %v", err)
	}

	// The kernel sink: every connection read to EOF, hashed and timed.
	ln := labtest.Listen(b, e.Lab, e.ServerNS, addr)
	results := make(chan lossSinkResult, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at cleanup
			}
			go func() {
				defer c.Close()
				start := time.Now()
				_ = c.SetDeadline(start.Add(5 * time.Minute))
				h := sha256.New()
				n, err := io.Copy(h, c)
				r := lossSinkResult{n: n, duration: time.Since(start), err: err}
				copy(r.sum[:], h.Sum(nil))
				results <- r
			}()
		}
	}()

	sink := func(who string) (lossSinkResult, error) {
		select {
		case r := <-results:
			if r.err != nil {
				return r, fmt.Errorf("%s: sink: %w", who, r.err)
			}
			if r.n != int64(size) || r.sum != want {
				return r, fmt.Errorf("%s: the sink received %d bytes (sha256 %x), %d were sent (sha256 %x)", who, r.n, r.sum[:8], size, want[:8])
			}
			return r, nil
		case <-time.After(5 * time.Minute):
			return lossSinkResult{}, fmt.Errorf("%s: the sink got nothing", who)
		}
	}
	statsDir := b.TempDir()
	// Each round returns the sink's result and the sender's retransmitted
	// segments and retransmission timeouts.
	tcpcraftRound := func(i int) (lossSinkResult, lossCounts, error) {
		statsPath := filepath.Join(statsDir, fmt.Sprintf("round%d.json", i))
		in, err := os.Open(dataPath)
		if err != nil {
			return lossSinkResult{}, lossCounts{}, err
		}
		defer in.Close()
		r, err := lossStart(e, e.ClientNS, in, io.Discard,
			e.bin, "connect", "-q", "--stats", statsPath, "--cc", cc, "--timeout", "30s", "--time-wait", "10ms", addr)
		if err != nil {
			return lossSinkResult{}, lossCounts{}, err
		}
		defer r.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := r.finish(ctx); err != nil {
			return lossSinkResult{}, lossCounts{}, err
		}
		res, err := sink("tcpcraft")
		if err != nil {
			return res, lossCounts{}, err
		}
		n, err := statsRetransmissions(statsPath)
		os.Remove(statsPath)
		return res, n, err
	}
	kernelCounts := func() (lossCounts, error) {
		rtx, err := kernelRetransSegs(e, e.ClientNS)
		if err != nil {
			return lossCounts{}, err
		}
		rtos, err := kernelTCPCounter(e, e.ClientNS, "/proc/net/netstat", "TcpExt:", "TCPTimeouts")
		return lossCounts{int(rtx), int(rtos)}, err
	}
	kernelRound := func() (lossSinkResult, lossCounts, error) {
		before, err := kernelCounts()
		if err != nil {
			return lossSinkResult{}, lossCounts{}, err
		}
		err = lab.Do(e.ClientNS, func() error {
			c, err := dialCC(addr, kcc, 30*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
			in, err := os.Open(dataPath)
			if err != nil {
				return err
			}
			defer in.Close()
			if _, err := copyPlain(c, in); err != nil {
				return err
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, c)
			return err
		})
		if err != nil {
			return lossSinkResult{}, lossCounts{}, fmt.Errorf("kernel client: %w", err)
		}
		res, err := sink("kernel")
		if err != nil {
			return res, lossCounts{}, err
		}
		after, err := kernelCounts()
		return res, lossCounts{after.rtx - before.rtx, after.rtos - before.rtos}, err
	}

	if os.Getenv("TCPCRAFT_LOSS_OFFLOAD") != "on" {
		labtest.RequireTools(b, "ethtool")
		labtest.Run(b, e.Lab, e.ClientNS, "ethtool", "-K", e.ClientIf, "tso", "off", "gso", "off")
		labtest.Run(b, e.Lab, e.ServerNS, "ethtool", "-K", e.ServerIf, "gro", "off", "tso", "off", "gso", "off")
	}
	mbps := func(r lossSinkResult) float64 { return float64(size) / (1 << 20) / r.duration.Seconds() }
	type phase struct {
		tc, kc       []float64
		tcRtx, kcRtx lossCounts
	}
	measure := func(name string) phase {
		var ph phase
		for round := -1; round < rounds; round++ { // round -1 warms up
			t, trtx, err := tcpcraftRound(round + 1)
			if err != nil {
				b.Fatalf("%s: tcpcraft, round %d: %v", name, round, err)
			}
			k, krtx, err := kernelRound()
			if err != nil {
				b.Fatalf("%s: kernel, round %d: %v", name, round, err)
			}
			if round < 0 {
				continue
			}
			ph.tc, ph.kc = append(ph.tc, mbps(t)), append(ph.kc, mbps(k))
			ph.tcRtx.add(trtx)
			ph.kcRtx.add(krtx)
			b.Logf("%s, round %d: tcpcraft %.1f MB/s (%v), kernel %.1f MB/s (%v)",
				name, round, mbps(t), trtx, mbps(k), krtx)
		}
		return ph
	}
	b.ResetTimer()
	clean := measure("no loss")
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		labtest.Iptables(b, e.Lab, e.ServerNS, "-A", chain, "-p", "tcp", "-m", "statistic", "--mode", "random",
			"--probability", strconv.FormatFloat(loss, 'f', -1, 64), "-j", "DROP")
	}
	lossy := measure(fmt.Sprintf("%.2f%% loss", 100*loss))
	b.StopTimer()
	tm, km := lossMedian(lossy.tc), lossMedian(lossy.kc)
	t0, k0 := lossMedian(clean.tc), lossMedian(clean.kc)
	b.Logf("%d MB uploads, %d rounds per side and phase, interleaved; tcpcraft --cc %s, kernel %s (namespace default %s); offloads %s",
		size>>20, rounds, cc, kcc, namespaceCC(e, e.ClientNS), map[bool]string{true: "on", false: "off"}[os.Getenv("TCPCRAFT_LOSS_OFFLOAD") == "on"])
	b.Logf("no loss:      tcpcraft %.1f MB/s, kernel %.1f MB/s, ratio %.3f", t0, k0, t0/k0)
	b.Logf("%.2f%% loss:   tcpcraft %.1f MB/s, kernel %.1f MB/s, ratio %.3f", 100*loss, tm, km, tm/km)
	b.Logf("efficiency (with loss / without): tcpcraft %.2f, kernel %.2f", tm/t0, km/k0)
	b.Logf("all measured rounds with loss: tcpcraft %v, kernel %v (without loss: %v, %v)",
		lossy.tcRtx, lossy.kcRtx, clean.tcRtx, clean.kcRtx)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(tm, "tcpcraft-MB/s")
	b.ReportMetric(km, "kernel-MB/s")
	b.ReportMetric(tm/km, "tcpcraft/kernel")
	b.ReportMetric(t0/k0, "noloss-tcpcraft/kernel")
	b.ReportMetric(float64(lossy.tcRtx.rtx)/float64(rounds), "rtx/round-tcpcraft")
	b.ReportMetric(float64(lossy.kcRtx.rtx)/float64(rounds), "rtx/round-kernel")
	b.ReportMetric(float64(lossy.tcRtx.rtos)/float64(rounds), "rto/round-tcpcraft")
	b.ReportMetric(float64(lossy.kcRtx.rtos)/float64(rounds), "rto/round-kernel")
}

// lossCounts is what a sender retransmitted: segments, and retransmission
// timeouts (each stalls the transfer for at least the minimum RTO, 200 ms
// on both sides, which dominates a short upload's goodput).
type lossCounts struct{ rtx, rtos int }

func (c *lossCounts) add(o lossCounts) { c.rtx += o.rtx; c.rtos += o.rtos }

func (c lossCounts) String() string {
	return fmt.Sprintf("%d retransmitted segments, %d timeouts", c.rtx, c.rtos)
}

// statsRetransmissions reads the retransmitted segments (fsm's count: each
// segment sent again, whole or in part) and retransmission timer expiries
// of the one connection a `connect --stats FILE` run accounted for.
func statsRetransmissions(path string) (lossCounts, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return lossCounts{}, err
	}
	var s statsJSON
	if err := json.Unmarshal(bytes.TrimSpace(data), &s); err != nil {
		return lossCounts{}, fmt.Errorf("%s: %w", path, err)
	}
	return lossCounts{int(s.Retransmits.Segments), int(s.Retransmits.RTOExpiries)}, nil
}

// lossMedian is the median of xs.
func lossMedian(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
