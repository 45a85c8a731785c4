package cmd

import (
	"context"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

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
