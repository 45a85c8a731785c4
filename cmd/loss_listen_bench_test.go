package cmd

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// BenchmarkLossListenGoodput is BenchmarkLossGoodput the other way round:
// the sender is the server. `tcpcraft listen` (in the server namespace)
// sends TCPCRAFT_LOSS_MB from its standard input, a file, to the one
// kernel client that connects, against a kernel server (Go, in the same
// namespace) sending the same file, in interleaved rounds; the receiver is
// a kernel client in the client namespace (Go, timed from its connect to
// the sender's FIN, every byte hashed). Segments are dropped at random in
// the receiver's namespace (iptables -m statistic, INPUT and OUTPUT), as
// the upload benchmark drops them in its receiver's: the data on its way
// in, the ACKs on their way out. Dropping them in the sender's namespace
// instead would spare tcpcraft: its capture (AF_PACKET) sees frames
// before INPUT, and what it sends through AF_PACKET never passes OUTPUT.
// Settings as BenchmarkLossGoodput's (offloads off unless
// TCPCRAFT_LOSS_OFFLOAD=on); retransmissions: tcpcraft's from --stats, the
// kernel's from the server namespace's counters.
func BenchmarkLossListenGoodput(b *testing.B) {
	labtest.RequireRoot(b)
	labtest.RequireTools(b, "ip", "iptables", "iptables-save")
	loss := lossBenchEnv(b, "TCPCRAFT_LOSS_P", 0.01)
	size := int(lossBenchEnv(b, "TCPCRAFT_LOSS_MB", 32) * (1 << 20))
	rounds := int(lossBenchEnv(b, "TCPCRAFT_LOSS_ROUNDS", 5))
	cc := os.Getenv("TCPCRAFT_LOSS_CC")
	if cc == "" {
		cc = "cubic"
	}
	kcc := kernelCC(cc)
	e := &e2eLab{Lab: labtest.New(b), bin: tcpcraftBinary(b)}
	const kernelPort, tcpcraftPort = 9301, 9302
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{'l', 'o', 's', 's'}).Read(data)
	want := sha256.Sum256(data)
	dataPath := filepath.Join(memoryDir(b), "download")
	if err := os.WriteFile(dataPath, data, 0o600); err != nil {
		b.Fatalf("writing the data: %v", err)
	}

	// The kernel sender: each connection gets the file, then our FIN.
	ln := labtest.Listen(b, e.Lab, e.ServerNS, e.serverAddr(kernelPort))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if kcc != "default" {
					if rc, err := c.(*net.TCPConn).SyscallConn(); err == nil {
						_ = rc.Control(func(fd uintptr) {
							_ = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, kcc)
						})
					}
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
				f, err := os.Open(dataPath)
				if err != nil {
					return
				}
				defer f.Close()
				if _, err := copyPlain(c, f); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
					_, _ = io.Copy(io.Discard, c)
				}
			}()
		}
	}()

	// receive downloads from port in the client namespace, retrying the
	// connect while nothing listens yet (tcpcraft starting), and times it
	// from the connection to the sender's FIN.
	receive := func(who string, port int) (lossSinkResult, error) {
		var r lossSinkResult
		err := lab.Do(e.ClientNS, func() error {
			deadline := time.Now().Add(30 * time.Second)
			var c net.Conn
			for {
				var err error
				c, err = net.DialTimeout("tcp", e.serverAddr(port), 10*time.Second)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					return err
				}
				time.Sleep(20 * time.Millisecond)
			}
			defer c.Close()
			start := time.Now()
			_ = c.SetDeadline(start.Add(5 * time.Minute))
			h := sha256.New()
			n, err := io.Copy(h, c)
			r = lossSinkResult{n: n, duration: time.Since(start), err: err}
			copy(r.sum[:], h.Sum(nil))
			return nil
		})
		if err == nil && r.err != nil {
			err = r.err
		}
		if err == nil && (r.n != int64(size) || r.sum != want) {
			err = fmt.Errorf("received %d bytes (sha256 %x), %d were sent (sha256 %x)", r.n, r.sum[:8], size, want[:8])
		}
		if err != nil {
			return r, fmt.Errorf("%s: receiver: %w", who, err)
		}
		return r, nil
	}
	statsDir := b.TempDir()
	tcpcraftRound := func(i int) (lossSinkResult, lossCounts, error) {
		statsPath := filepath.Join(statsDir, fmt.Sprintf("round%d.json", i))
		in, err := os.Open(dataPath)
		if err != nil {
			return lossSinkResult{}, lossCounts{}, err
		}
		defer in.Close()
		run, err := lossStart(e, e.ServerNS, in, io.Discard,
			e.bin, "listen", "-q", "--stats", statsPath, "--cc", cc, "--time-wait", "10ms", ":"+strconv.Itoa(tcpcraftPort))
		if err != nil {
			return lossSinkResult{}, lossCounts{}, err
		}
		defer run.stop()
		res, rerr := receive("tcpcraft", tcpcraftPort)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := errors.Join(rerr, run.finish(ctx)); err != nil {
			return res, lossCounts{}, err
		}
		n, err := statsRetransmissions(statsPath)
		os.Remove(statsPath)
		return res, n, err
	}
	kernelCounts := func() (lossCounts, error) {
		rtx, err := kernelRetransSegs(e, e.ServerNS)
		if err != nil {
			return lossCounts{}, err
		}
		rtos, err := kernelTCPCounter(e, e.ServerNS, "/proc/net/netstat", "TcpExt:", "TCPTimeouts")
		return lossCounts{int(rtx), int(rtos)}, err
	}
	kernelRound := func() (lossSinkResult, lossCounts, error) {
		before, err := kernelCounts()
		if err != nil {
			return lossSinkResult{}, lossCounts{}, err
		}
		res, err := receive("kernel", kernelPort)
		if err != nil {
			return res, lossCounts{}, err
		}
		after, err := kernelCounts()
		return res, lossCounts{after.rtx - before.rtx, after.rtos - before.rtos}, err
	}

	if os.Getenv("TCPCRAFT_LOSS_OFFLOAD") != "on" {
		labtest.RequireTools(b, "ethtool")
		labtest.Run(b, e.Lab, e.ServerNS, "ethtool", "-K", e.ServerIf, "tso", "off", "gso", "off")
		labtest.Run(b, e.Lab, e.ClientNS, "ethtool", "-K", e.ClientIf, "gro", "off", "tso", "off", "gso", "off")
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
		labtest.Iptables(b, e.Lab, e.ClientNS, "-A", chain, "-p", "tcp", "-m", "statistic", "--mode", "random",
			"--probability", strconv.FormatFloat(loss, 'f', -1, 64), "-j", "DROP")
	}
	lossy := measure(fmt.Sprintf("%.2f%% loss", 100*loss))
	b.StopTimer()
	tm, km := lossMedian(lossy.tc), lossMedian(lossy.kc)
	t0, k0 := lossMedian(clean.tc), lossMedian(clean.kc)
	b.Logf("listen sending: %d MB downloads, %d rounds per side and phase, interleaved; tcpcraft --cc %s, kernel %s; loss in the receiver's namespace",
		size>>20, rounds, cc, kcc)
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
	b.ReportMetric(float64(lossy.tcRtx.rtos)/float64(rounds), "rto/round-tcpcraft")
	b.ReportMetric(float64(lossy.kcRtx.rtos)/float64(rounds), "rto/round-kernel")
}
