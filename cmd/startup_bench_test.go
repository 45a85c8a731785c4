package cmd

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// BenchmarkPerfStartup: how long `tcpcraft connect -q` takes from the
// moment it is started to its SYN on the wire, against socat doing the same
// connect, each a process of its own started the same way, in interleaved
// rounds on one lab. The server accepts and closes at once, and both
// clients read an empty standard input, so the whole run (also reported)
// is a handshake and a close; tcpcraft runs with --time-wait 0 so that run
// is not its TIME-WAIT.
//
// Both are started from a thread inside the client namespace (lab.Do), so
// neither pays for `ip netns exec`; "start" is taken just before fork, and
// the SYN's time is the kernel's capture time of the frame on the server's
// veth (an AF_PACKET capture there), so the figure is fork + exec + the
// program's own set-up + the kernel's send path.
//
//	go test ./cmd -run '^$' -bench PerfStartup -benchtime 1x
//
// TCPCRAFT_BENCH_ROUNDS sets the rounds (default 3; each round is 20 runs
// of each). TCPCRAFT_BENCH_BASELINE names another tcpcraft binary (one
// built from an older commit, say) to run interleaved with the others as
// "baseline", so that a change is measured against what it replaces in
// the same run.
func BenchmarkPerfStartup(b *testing.B) {
	e := perfLab(b)
	labtest.RequireTools(b, "socat")
	socat, err := exec.LookPath("socat")
	if err != nil {
		b.Fatal(err)
	}
	rounds := envInt(b, "TCPCRAFT_BENCH_ROUNDS", 3)
	const port, perRound = 9203, 20
	server := netip.AddrPortFrom(e.ServerIP(), port)
	ln := labtest.Listen(b, e.Lab, e.ServerNS, server.String())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	b.Cleanup(func() { ln.Close() })

	var syns *capture.Capture
	if err := lab.Do(e.ServerNS, func() (err error) {
		syns, err = capture.Open(0, capture.Flow{Local: server}, capture.Config{})
		return err
	}); err != nil {
		b.Fatalf("capturing SYNs in the server namespace: %v", err)
	}
	b.Cleanup(func() { syns.Close() })

	sides := []struct {
		name string
		argv []string
	}{
		{"tcpcraft", []string{e.bin, "connect", "-q", "--time-wait", "0", server.String()}},
		{"socat", []string{socat, "-u", "OPEN:/dev/null", "TCP:" + server.String()}},
	}
	if base := os.Getenv("TCPCRAFT_BENCH_BASELINE"); base != "" {
		sides = append(sides, struct {
			name string
			argv []string
		}{"baseline", []string{base, "connect", "-q", "--time-wait", "0", server.String()}})
	}
	// Where tcpcraft's time to the SYN goes: TCPCRAFT_STARTUP_TIMES=1
	// makes it print when each stage of its start-up ended (cmd/startup.go),
	// and every stage's duration (from the previous one; "main" from the
	// fork) is collected per run, for the baseline too (an older
	// tcpcraft prints the same line), so that a change's stages are
	// compared in the same run.
	stages := map[string]map[string][]float64{"tcpcraft": {}, "baseline": {}}
	var stageOrder []string
	noteStages := func(side string, start, end time.Time, stderr string) {
		stages := stages[side]
		for _, line := range strings.Split(stderr, "\n") {
			rest, ok := strings.CutPrefix(line, "tcpcraft: startup ")
			if !ok {
				continue
			}
			prev := start
			for _, f := range strings.Fields(rest) {
				name, v, _ := strings.Cut(f, "=")
				ns, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					continue
				}
				at := time.Unix(0, ns)
				if !slices.Contains(stageOrder, name) {
					stageOrder = append(stageOrder, name)
				}
				stages[name] = append(stages[name], float64(at.Sub(prev).Microseconds())/1000)
				prev = at
			}
			if prev != start {
				// From the last stage to the parent's wait returning:
				// what is left of the run and the process's exit.
				stages["exit"] = append(stages["exit"], float64(end.Sub(prev).Microseconds())/1000)
			}
		}
	}
	run := func(side string, argv []string) (toSYN, whole time.Duration, err error) {
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return 0, 0, err
		}
		defer devnull.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = devnull
		if side != "socat" {
			cmd.Env = append(os.Environ(), "TCPCRAFT_STARTUP_TIMES=1")
		}
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		var start time.Time
		// A child forked from a thread inside the namespace starts there.
		if err := lab.Do(e.ClientNS, func() error {
			start = time.Now()
			return cmd.Start()
		}); err != nil {
			return 0, 0, err
		}
		werr := cmd.Wait()
		end := time.Now()
		whole = end.Sub(start)
		if werr != nil {
			return 0, 0, fmt.Errorf("%v: %w\n%s", argv, werr, stderr.String())
		}
		if side != "socat" {
			noteStages(side, start, end, stderr.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			f, err := syns.ReadFrame(ctx)
			if err != nil {
				return 0, 0, fmt.Errorf("%v: no SYN captured: %w", argv, err)
			}
			ihl := int(f.Data[0]&0x0f) * 4
			if len(f.Data) < ihl+14 || f.Data[ihl+13]&0x12 != 0x02 || f.Time.Before(start) {
				continue // not this run's first SYN
			}
			// Frames of this run after its SYN are drained by the next
			// run's search (they are all earlier than its start).
			return f.Time.Sub(start), whole, nil
		}
	}
	// One unmeasured run each: the binaries' pages into the cache.
	for _, s := range sides {
		if _, _, err := run(s.name, s.argv); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
	}
	// The floor under tcpcraft's figures: the same binary doing nothing
	// but start, print its version and exit (the Go runtime, package
	// initialisation, the CLI).
	bare := func() (time.Duration, error) {
		cmd := exec.Command(e.bin, "--version")
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	toSYN, whole := results{}, results{}
	var floor []float64
	b.ResetTimer()
	for round := range rounds {
		var fl []float64
		for range perRound {
			d, err := bare()
			if err != nil {
				b.Fatalf("tcpcraft --version: %v", err)
			}
			fl = append(fl, float64(d.Microseconds())/1000)
		}
		floor = append(floor, median(fl))
		for _, s := range sides {
			var syn, all []float64
			for range perRound {
				d, w, err := run(s.name, s.argv)
				if err != nil {
					b.Fatalf("round %d: %v", round, err)
				}
				syn = append(syn, float64(d.Microseconds())/1000)
				all = append(all, float64(w.Microseconds())/1000)
			}
			name := s.name
			if name == "socat" {
				name = "kernel" // results.report's name for the reference
			}
			toSYN[name] = append(toSYN[name], median(syn))
			whole[name] = append(whole[name], median(all))
		}
	}
	b.StopTimer()
	b.Logf("%d rounds of %d runs each, interleaved; per-round medians; 'kernel' is socat", rounds, perRound)
	b.Logf("start to SYN on the wire:")
	toSYN.report(b, "ms-to-SYN", false)
	b.Logf("whole run (handshake, close):")
	wholeName := "ms-run"
	tc, sc := median(whole["tcpcraft"]), median(whole["kernel"])
	b.Logf("tcpcraft %s per round: %.2f", wholeName, whole["tcpcraft"])
	b.Logf("socat    %s per round: %.2f", wholeName, whole["kernel"])
	b.Logf("medians: tcpcraft %.2f ms, socat %.2f ms, ratio %.2f", tc, sc, tc/sc)
	b.ReportMetric(tc, "tcpcraft-"+wholeName)
	b.ReportMetric(sc, "socat-"+wholeName)
	if bs, ok := toSYN["baseline"]; ok {
		b.Logf("baseline %s: start to SYN per round %.1f, median %.1f ms; whole run per round %.2f, median %.2f ms",
			os.Getenv("TCPCRAFT_BENCH_BASELINE"), bs, median(bs), whole["baseline"], median(whole["baseline"]))
		b.ReportMetric(median(bs), "baseline-ms-to-SYN")
		b.ReportMetric(median(whole["baseline"]), "baseline-ms-run")
	}
	b.Logf("tcpcraft's run by stage, medians over all runs (ms; 'main': fork, exec, the Go runtime, package init; 'dial' ends as the SYN is handed to the kernel; 'stream': standard input and output done; 'closed': the session's undo; 'exit': from there until the parent's wait returns):")
	withBase := len(stages["baseline"]) > 0
	if withBase {
		b.Logf("  %-11s %8s %8s", "stage", "tcpcraft", "baseline")
	}
	for _, name := range append(stageOrder, "exit") {
		if withBase {
			// A stage the other binary lacks shows as 0.
			b.Logf("  %-11s %8.2f %8.2f", name, median(stages["tcpcraft"][name]), median(stages["baseline"][name]))
			continue
		}
		b.Logf("  %-11s %6.2f", name, median(stages["tcpcraft"][name]))
	}
	b.Logf("floor, tcpcraft --version whole run, per round: %.2f; median %.2f ms", floor, median(floor))
	b.ReportMetric(median(floor), "tcpcraft-version-ms")
}
