package cmd

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
)

// TestSendInterruptedLeavesNoGuard: Ctrl-C on `send -c 1000 --interval 0`
// at many moments — during start-up, while a guard is being installed or
// removed, between probes — never leaves a guard behind. The SIGINT goes
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
		// land in start-up, the rest among the probes (each installs and
		// removes a guard; a run of 1000 takes seconds).
		delay := time.Duration(i) * 20 * time.Millisecond
		cmd := exec.Command(e.bin, "send", "-q", "-c", "1000", "--interval", "0", "--wait", "200ms", e.serverAddr(7100))
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
		if rules := rulesOf(t, e, e.ClientNS, pid); len(rules) > 0 {
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
