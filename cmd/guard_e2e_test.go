package cmd

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// TestSendInterruptedLeavesNoGuard: Ctrl-C on `send -c 0 --rate 2000`
// (until Ctrl-C) at many moments — during start-up, while the guard is
// being installed, among the probes — never leaves a guard behind. The SIGINT goes
// to the whole process group, as a terminal's Ctrl-C does (when tcpcraft
// ran iptables, the child got it too, and a rule it had just committed
// was left behind in about one run in six).
func TestSendInterruptedLeavesNoGuard(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	ln := e.listen(t, 7100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	const runs = 24
	interrupted := 0
	for i := range runs {
		// From 0 to 460 ms after the start, 20 ms apart: the first ones
		// land in start-up, the rest among the probes.
		delay := time.Duration(i) * 20 * time.Millisecond
		cmd := exec.Command(e.bin, "send", "-q", "-c", "0", "--rate", "2000", "--wait", "200ms", e.serverAddr(7100))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		// Started from a thread inside the client namespace, so the
		// process runs there without `ip netns exec` in between (whose
		// own handling of SIGINT is not under test).
		if err := lab.Do(e.ClientNS, cmd.Start); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		time.Sleep(delay)
		if err := syscall.Kill(-pid, syscall.SIGINT); err != nil {
			t.Fatalf("run %d: SIGINT to process group %d: %v", i, pid, err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("run %d: tcpcraft did not end within 30 s of SIGINT", i)
		}
		code := cmd.ProcessState.ExitCode()
		status, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case code == codeInterrupted:
			interrupted++
		case status.Signaled() && status.Signal() == syscall.SIGINT:
			// Before Go installed its signal handler: killed outright,
			// before anything was set up.
		default:
			t.Errorf("run %d (SIGINT after %v): %v, exit %d; want 130", i, delay, err, code)
		}
		if rules := guardsOf(t, e, e.ClientNS, pid); len(rules) > 0 {
			t.Fatalf("run %d (SIGINT after %v): guard left behind:\n%q", i, delay, rules)
		}
		assertRootUntouched(t, pid)
	}
	t.Logf("%d runs, %d ended by the interrupt with exit 130", runs, interrupted)
	if interrupted < runs/2 {
		t.Errorf("only %d of %d runs were interrupted after start-up: the delays missed the probes", interrupted, runs)
	}
	if rules := guardRules(t, e, e.ClientNS); len(rules) > 0 {
		t.Fatalf("tcpcraft guards in %s: %q", e.ClientNS, rules)
	}
}

// TestCleanupHelpAndUsage: `cleanup --help` says that every named network
// namespace is swept and that --netns limits it; a --netns value that is
// not a namespace name is a usage error, found before anything is done.
func TestCleanupHelpAndUsage(t *testing.T) {
	r := runApp(t, context.Background(), "cleanup", "--help")
	for _, want := range []string{"every named", "ip netns list", "--netns NS", "nft list ruleset", "SIGKILL"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cleanup --help does not say %q:\n%s", want, r.stdout)
		}
	}
	for _, bad := range []string{"", "..", "a/b"} {
		r := runApp(t, context.Background(), "cleanup", "--netns", bad)
		if r.code != codeUsage || !strings.Contains(r.stderr, "not a network namespace name") {
			t.Errorf("cleanup --netns %q: exit %d, stderr %q; want a usage error", bad, r.code, r.stderr)
		}
	}
}

// TestCleanupNamedNamespaceOnly: `cleanup --netns NS`, run from another
// namespace, removes NS's stale guard, says it looked at NS only, and
// leaves the stale guard of the namespace it runs in (a sweep of every
// namespace would reach other tests' labs on this machine, so that is
// left to guard's own tests, which point it at a directory of their own).
func TestCleanupNamedNamespaceOnly(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	plant := func(ns string, port int) string {
		table := fmt.Sprintf("tcpcraft-%d-%08x", pid, port)
		comment := fmt.Sprintf("tcpcraft pid=%d guard *:%d", pid, port)
		labtest.Run(t, e.Lab, ns, "nft", "add table inet "+table+
			" ; add chain inet "+table+" guard { type filter hook input priority filter ; }"+
			" ; add rule inet "+table+" guard tcp dport "+fmt.Sprint(port)+" drop comment \""+comment+"\"")
		return table
	}
	serverTable := plant(e.ServerNS, 7200)
	clientTable := plant(e.ClientNS, 7201)
	r := e.tcpcraft(t, nil, "cleanup", "--netns", e.ServerNS)
	expectExit(t, r, 0)
	if want := "removed in " + e.ServerNS + ": table inet " + serverTable; !strings.Contains(r.stdout, want) {
		t.Errorf("cleanup should say %q:\n%s", want, r.stdout)
	}
	if want := "looked at network namespaces: " + e.ServerNS + "\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("cleanup should say %q:\n%s", want, r.stdout)
	}
	if rules := guardRules(t, e, e.ServerNS); len(rules) > 0 {
		t.Errorf("stale guard left in %s: %q", e.ServerNS, rules)
	}
	if rules := guardRules(t, e, e.ClientNS); len(rules) != 2 || !strings.Contains(rules[0], clientTable) {
		t.Errorf("cleanup --netns %s touched %s: its guards are now %q", e.ServerNS, e.ClientNS, rules)
	}
	labtest.Run(t, e.Lab, e.ClientNS, "nft", "delete", "table", "inet", clientTable)
}
