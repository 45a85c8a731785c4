package cmd

// The prober's comparisons with the tools it stands beside, each in a
// process of its own on the same lab veth, in interleaved rounds of one
// run, packets counted by an nft counter in the server namespace:
//
//   - BenchmarkRateFloodClosed / BenchmarkRateFloodOpen: `tcpcraft send
//     --flood` against `hping3 --flood -S`, SYNs per second to a closed
//     port and to a kernel listener's port (where every SYN-ACK must be
//     answered by tcpcraft's RST, and nothing is left half-open);
//   - BenchmarkRateScan: a SYN scan of ports 1-65535 by `tcpcraft send
//     --rate R` against `nmap -sS -p- --min-rate R --max-rate R -Pn -n`,
//     wall time of each process, both checked against the ground truth.
//
// Run them with `scripts/bench.sh rate`. Knobs: TCPCRAFT_BENCH_ROUNDS
// (default 3), TCPCRAFT_FLOOD_SECONDS (each flood's length, default 3; the
// rate is counted over all but its first and last half second),
// TCPCRAFT_SCAN_RATE (default 20000).

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// floodCounter counts pure SYNs to port in the server namespace (nft).
func floodCounter(b *testing.B, e *e2eLab, port int) func() int {
	b.Helper()
	table := fmt.Sprintf("flood%d", port)
	labtest.Run(b, e.Lab, e.ServerNS, "nft", fmt.Sprintf("add table inet %s { chain in { type filter hook input priority -10; tcp dport %d tcp flags & (syn|ack|rst) == syn counter; }; }", table, port))
	return func() int {
		out := labtest.Run(b, e.Lab, e.ServerNS, "nft", "list", "table", "inet", table)
		i := strings.Index(out, "counter packets ")
		n, _ := strconv.Atoi(strings.Fields(out[i+len("counter packets "):])[0])
		return n
	}
}

// floodRound runs argv in the client namespace for secs seconds, counts
// the SYNs the server's counter sees over all but the first and last half
// second, then interrupts it (SIGINT) and returns the rate and its
// standard output.
func floodRound(b *testing.B, e *e2eLab, count func() int, secs int, argv ...string) (float64, string) {
	b.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := lab.Do(e.ClientNS, cmd.Start); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	c0, t0 := count(), time.Now()
	time.Sleep(time.Duration(secs)*time.Second - time.Second)
	c1, t1 := count(), time.Now()
	time.Sleep(500 * time.Millisecond)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		b.Fatalf("%s did not end within 30 s of SIGINT", argv[0])
	}
	return float64(c1-c0) / t1.Sub(t0).Seconds(), out.String()
}

func BenchmarkRateFloodClosed(b *testing.B) { benchFlood(b, false) }
func BenchmarkRateFloodOpen(b *testing.B)   { benchFlood(b, true) }

func benchFlood(b *testing.B, open bool) {
	labtest.RequireTools(b, "hping3", "nft")
	e := perfLab(b)
	port := 9
	if open {
		port = 8080
		labtest.Listen(b, e.Lab, e.ServerNS, e.serverAddr(port))
	}
	count := floodCounter(b, e, port)
	rounds, secs := envInt(b, "TCPCRAFT_BENCH_ROUNDS", 3), envInt(b, "TCPCRAFT_FLOOD_SECONDS", 3)
	res := results{}
	for round := range rounds {
		// hping3 (its own process): its kernel answers the SYN-ACKs with RST.
		rate, _ := floodRound(b, e, count, secs, "hping3", "--flood", "-q", "-S", "-p", strconv.Itoa(port), e.ServerIP().String())
		res["kernel"] = append(res["kernel"], rate)
		b.Logf("round %d hping3   %8.0f SYN/s", round+1, rate)
		rate, out := floodRound(b, e, count, secs, e.bin, "send", e.serverAddr(port), "--flood", "-c", "0", "--json")
		res["tcpcraft"] = append(res["tcpcraft"], rate)
		var sum struct {
			Sent      int `json:"sent"`
			Received  int `json:"received"`
			Resets    int `json:"resets"`
			RingDrops int `json:"ring_drops"`
			SendDrops int `json:"send_drops"`
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, `"type":"summary"`) {
				if err := json.Unmarshal([]byte(line), &sum); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Logf("round %d tcpcraft %8.0f SYN/s (%d sent, %d answered, %d resets, ring drops %d, send drops %d)",
			round+1, rate, sum.Sent, sum.Received, sum.Resets, sum.RingDrops, sum.SendDrops)
		if sum.Sent == 0 {
			b.Fatalf("tcpcraft printed no summary:\n%s", tail(out, 2000))
		}
		if open && sum.Resets != sum.Received {
			b.Errorf("round %d: %d SYN-ACKs answered with %d RSTs", round+1, sum.Received, sum.Resets)
		}
		if open {
			ok := false
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if strings.TrimSpace(labtest.Run(b, e.Lab, e.ServerNS, "ss", "-Htn", "state", "syn-recv")) == "" {
					ok = true
					break
				}
			}
			if !ok {
				b.Errorf("round %d: connections left half-open on the server", round+1)
			}
		}
	}
	b.Logf("target: tcpcraft/hping3 >= 1.0 (aim 2.0); \"kernel\" below is hping3")
	res.report(b, "SYN/s", true)
}

// BenchmarkRateScan: every port of the server, at the same pinned rate,
// tcpcraft against nmap, each process timed from start to exit, each
// printing what it prints by default (the ports that are not closed);
// both must find exactly the ground truth (two listeners, DROP, REJECT).
func BenchmarkRateScan(b *testing.B) {
	labtest.RequireTools(b, "nmap", "nft")
	e := perfLab(b)
	rate := envInt(b, "TCPCRAFT_SCAN_RATE", 20000)
	rounds := envInt(b, "TCPCRAFT_BENCH_ROUNDS", 3)
	open := map[int]bool{22: true, 8080: true}
	for p := range open {
		labtest.Listen(b, e.Lab, e.ServerNS, e.serverAddr(p))
	}
	labtest.Iptables(b, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP")
	labtest.Iptables(b, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "1000", "-j", "REJECT", "--reject-with", "icmp-port-unreachable")
	filtered := map[int]bool{9: true, 1000: true}
	timed := func(argv ...string) (time.Duration, string) {
		cmd := e.Command(b.Context(), e.ClientNS, argv[0], argv[1:]...)
		start := time.Now()
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("%s: %v", strings.Join(argv, " "), err)
		}
		return time.Since(start), string(out)
	}
	// Whether a tool's listing is the ground truth: every port it lists
	// as it should be, all other ports closed.
	exact := func(listed map[int]string, closedCount int) bool {
		ok := closedCount+len(listed) == 65535 && len(listed) == len(open)+len(filtered)
		for p := range open {
			ok = ok && listed[p] == "open"
		}
		for p := range filtered {
			ok = ok && listed[p] == "filtered"
		}
		return ok
	}
	nmapPort := regexp.MustCompile(`(\d+)/(open|filtered|closed)/tcp`)
	nmapIgnored := regexp.MustCompile(`Ignored State: closed \((\d+)\)`)
	tableRow := regexp.MustCompile(`(?m)^10\.0\.2\.20:(\d+) +(\S+) `)
	notShown := regexp.MustCompile(`Not shown: (\d+) closed \(\d+ rst\)`)
	listing := func(out string, row, rest *regexp.Regexp) (map[int]string, int) {
		got := map[int]string{}
		for _, m := range row.FindAllStringSubmatch(out, -1) {
			p, _ := strconv.Atoi(m[1])
			got[p] = m[2]
		}
		n := 0
		if m := rest.FindStringSubmatch(out); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		return got, n
	}
	res := results{}
	for round := range rounds {
		// nmap as the comparison runs it: its own retransmission
		// rules (with --max-retries 1 it lost ports on this loaded
		// machine: not exact, and no faster).
		d, out := timed("nmap", "-sS", "-p-", "-Pn", "-n", "--min-rate", strconv.Itoa(rate), "--max-rate", strconv.Itoa(rate), "-oG", "-", e.ServerIP().String())
		res["kernel"] = append(res["kernel"], d.Seconds())
		listed, closed := listing(out, nmapPort, nmapIgnored)
		b.Logf("round %d nmap     %.3f s, exact: %v", round+1, d.Seconds(), exact(listed, closed))

		d, out = timed(e.bin, "send", e.ServerIP().String()+":1-65535", "--rate", strconv.Itoa(rate))
		res["tcpcraft"] = append(res["tcpcraft"], d.Seconds())
		listed, closed = listing(out, tableRow, notShown)
		ok := exact(listed, closed)
		b.Logf("round %d tcpcraft %.3f s, exact: %v", round+1, d.Seconds(), ok)
		if !ok {
			b.Errorf("round %d: tcpcraft's verdicts are not the ground truth:\n%s", round+1, out)
		}
	}
	b.Logf("target: tcpcraft/nmap <= 1.0 (time: lower is better); \"kernel\" below is nmap")
	res.report(b, "s", false)
}
