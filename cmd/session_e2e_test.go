package cmd

import (
	"context"
	"errors"
	"net"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab"
)

// A session's set-up that fails at any step leaves nothing behind: no
// firewall rule in the namespace, no --pcap file, no open socket, no
// goroutine. Each step that changes the system is made to fail in turn
// (failStepKey) in a real run of `tcpcraft connect` inside a lab
// namespace; the steps before it must have run, and their undo too.
func TestSessionFailureAtEveryStepLeavesNothing(t *testing.T) {
	e := newE2ELab(t)
	ln := e.listen(t, 7900)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dir := t.TempDir()
	t.Setenv("TCPCRAFT_CPUPROFILE", dir+"/cpu.prof")
	pcap := dir + "/run.pcap"
	variants := []struct {
		name  string
		args  []string
		steps []string // the steps this run takes, in order
	}{
		// -q without --pcap: segmentation offload is used.
		{"quiet", []string{"-q"}, []string{stepProfile, stepGuard, stepCapture, stepInjector, stepGSO, stepStack}},
		{"pcap", []string{"--pcap", pcap}, []string{stepProfile, stepGuard, stepCapture, stepInjector, stepPcap, stepStack}},
	}
	for _, v := range variants {
		for i, failing := range v.steps {
			name := v.name + "/" + failing
			var seen []string
			injected := errors.New("injected failure")
			app := NewApp()
			out, errOut := &syncBuffer{}, &syncBuffer{}
			app.Writer, app.ErrWriter, app.Reader = out, errOut, strings.NewReader("")
			app.Metadata = map[string]any{failStepKey: func(step string) error {
				seen = append(seen, step)
				if step == failing {
					return injected
				}
				return nil
			}}
			fdsBefore, goroutinesBefore := openFDs(t), runtime.NumGoroutine()
			code := -1
			err := lab.Do(e.ClientNS, func() error {
				args := append([]string{"tcpcraft", "connect", "-w", "1"}, v.args...)
				code = Run(context.Background(), app, append(args, e.serverAddr(7900)))
				return nil
			})
			if err != nil {
				t.Fatalf("%s: lab.Do: %v", name, err)
			}
			if code != 1 || !strings.Contains(errOut.String(), "injected failure") {
				t.Errorf("%s: exit %d, stderr %q; want 1 and the injected failure", name, code, errOut.String())
			}
			if !slices.Equal(seen, v.steps[:i+1]) {
				t.Errorf("%s: steps reached %v, want %v", name, seen, v.steps[:i+1])
			}
			if rules := guardRules(t, e, e.ClientNS); len(rules) > 0 {
				t.Errorf("%s: firewall rules left:\n%s", name, strings.Join(rules, "\n"))
			}
			if _, err := os.Stat(pcap); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the pcap file of a run that did not start is left (%v)", name, err)
			}
			// Sockets are closed at once; goroutines end soon after.
			if fds := openFDs(t); fds > fdsBefore {
				t.Errorf("%s: %d file descriptors open after the run, %d before", name, fds, fdsBefore)
			}
			if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= goroutinesBefore }) {
				t.Errorf("%s: %d goroutines after the run, %d before", name, runtime.NumGoroutine(), goroutinesBefore)
			}
		}
	}

	// And the run that fails nowhere keeps its pcap file, and its close
	// leaves nothing either.
	fdsBefore, goroutinesBefore := openFDs(t), runtime.NumGoroutine()
	app := NewApp()
	app.Writer, app.ErrWriter, app.Reader = &syncBuffer{}, &syncBuffer{}, strings.NewReader("")
	code := -1
	if err := lab.Do(e.ClientNS, func() error {
		code = Run(context.Background(), app, []string{"tcpcraft", "connect", "-q", "-w", "1", "--pcap", pcap, e.serverAddr(7900)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(pcap); code != 0 || err != nil || fi.Size() == 0 {
		t.Errorf("a run that worked: exit %d, pcap %v %v", code, fi, err)
	}
	if rules := guardRules(t, e, e.ClientNS); len(rules) > 0 {
		t.Errorf("a run that worked left firewall rules:\n%s", strings.Join(rules, "\n"))
	}
	if fds := openFDs(t); fds > fdsBefore {
		t.Errorf("a run that worked: %d file descriptors open after it, %d before", fds, fdsBefore)
	}
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= goroutinesBefore }) {
		t.Errorf("a run that worked: %d goroutines after it, %d before", runtime.NumGoroutine(), goroutinesBefore)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Input is checked before anything changes: a bad --pcap path, like a bad
// flag, fails before the guard, with nothing made (not even the file).
func TestBadPcapPathRefusedBeforeSetUp(t *testing.T) {
	e := newE2ELab(t)
	dir := t.TempDir()
	for _, c := range []struct{ path, want string }{
		{dir, "is a directory"},
		{dir + "/no/such/dir/x.pcap", "no such file or directory"},
	} {
		var seen []string
		app := NewApp()
		errOut := &syncBuffer{}
		app.Writer, app.ErrWriter, app.Reader = &syncBuffer{}, errOut, strings.NewReader("")
		app.Metadata = map[string]any{failStepKey: func(step string) error { seen = append(seen, step); return nil }}
		code := -1
		if err := lab.Do(e.ClientNS, func() error {
			code = Run(context.Background(), app, []string{"tcpcraft", "connect", "--pcap", c.path, e.serverAddr(7901)})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if code != 2 || !strings.Contains(errOut.String(), c.want) || len(seen) > 0 {
			t.Errorf("--pcap %s: exit %d, stderr %q, steps %v; want 2, %q, none", c.path, code, errOut.String(), seen, c.want)
		}
	}
}

// A session's close waits for the kernel's RCU grace periods side by side,
// not one after another. Three of its releases wait for one: each
// AF_PACKET socket's (the capture's, the offload sender's: synchronize_net
// in packet_release) and the guard's table's; one after another they took
// three grace periods. The close of a session whose set-up is made to fail
// just before the stack (everything else opened) is timed against three
// bare AF_PACKET sockets closed one after another in the same namespace
// (three grace periods), interleaved, and must take less than three
// quarters of that: side by side it takes one or two (a release that
// comes just after a grace period began waits for the next one too),
// serial it took as long as the reference. Both sides wait for the same
// kind of grace period, 2-4 scheduler ticks, on an idle or a busy machine.
func TestSessionCloseSharesGracePeriods(t *testing.T) {
	e := newE2ELab(t)
	const rounds, serial = 9, 3
	var closes, refs []float64
	for round := range rounds {
		// The session: its close starts when the stack's step fails.
		var failedAt time.Time
		app := NewApp()
		errOut := &syncBuffer{}
		app.Writer, app.ErrWriter, app.Reader = &syncBuffer{}, errOut, strings.NewReader("")
		app.Metadata = map[string]any{failStepKey: func(step string) error {
			if step == stepStack {
				failedAt = time.Now()
				return errors.New("injected failure")
			}
			return nil
		}}
		var code int
		var closed time.Time
		if err := lab.Do(e.ClientNS, func() error {
			code = Run(context.Background(), app, []string{"tcpcraft", "connect", "-q", "-w", "1", e.serverAddr(7901)})
			closed = time.Now()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if code != 1 || failedAt.IsZero() {
			t.Fatalf("round %d: exit %d, the stack's step reached: %v; stderr %q", round, code, !failedAt.IsZero(), errOut.String())
		}
		closes = append(closes, float64(closed.Sub(failedAt).Microseconds()))

		// The reference: three AF_PACKET sockets' releases in a row.
		if err := lab.Do(e.ClientNS, func() error {
			var fds []int
			for range serial {
				fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				fds = append(fds, fd)
			}
			start := time.Now()
			for _, fd := range fds {
				if err := unix.Close(fd); err != nil {
					return err
				}
			}
			refs = append(refs, float64(time.Since(start).Microseconds()))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	c, r := median(closes), median(refs)
	t.Logf("session close per round (µs): %v; %d AF_PACKET sockets closed in a row: %v; medians %.0f / %.0f µs, ratio %.2f", closes, serial, refs, c, r, c/r)
	if c >= 0.75*r {
		t.Errorf("a session's close took %.2f times %d packet sockets' releases in a row (medians of %d rounds), want under 0.75: its grace periods are waited for one after another", c/r, serial, rounds)
	}
}

// tcpcraft leaves the release of its packet and guard sockets to a helper
// (package release), so that its exit does not wait for their RCU grace
// periods: the guard's table is gone when tcpcraft exits (deleted, not
// left for the helper), -v names the helper and the sockets it holds,
// and the helper goes by itself after tcpcraft. (That the handed-off
// closes do not wait is release's TestLaterHoldsUntilExit.)
func TestConnectLeavesReleasesToHelper(t *testing.T) {
	e := newE2ELab(t)
	const port = 7931
	ln := e.listen(t, port)
	done := serveOne(t, ln, func(c *net.TCPConn) error { return nil })
	r := e.tcpcraft(t, strings.NewReader(""), "connect", "-v", "--time-wait", "0", e.serverAddr(port))
	if r.code != 0 {
		t.Fatalf("connect: %v", r)
	}
	if rules := guardsOf(t, e, e.ClientNS, r.pid); len(rules) > 0 {
		t.Errorf("the guard outlived tcpcraft (left to its release helper?): %v", rules)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`release: (\d+) sockets left to process (\d+) \(tcpcraft-linger\)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("-v does not name the release helper:\n%s", r)
	}
	if n, _ := strconv.Atoi(m[1]); n < 2 {
		t.Errorf("%s sockets handed off, want the capture's and the guard's at least", m[1])
	}
	proc := "/proc/" + m[2]
	deadline := time.Now().Add(30 * time.Second) // a bound, not a measure
	for {
		st, err := os.ReadFile(proc + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			break // gone, or exited and not yet reaped by init
		}
		if !strings.Contains(string(st), "(tcpcraft-linger)") {
			break // the pid was reaped and reused
		}
		if time.Now().After(deadline) {
			t.Fatalf("release helper %s still running 30 s after tcpcraft exited", m[2])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
