package probe

import (
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// schedChildEnv marks the test binary re-executed by
// TestSetRealtimeScheduling: the policy is set in a process of its own, so
// that the other tests keep the usual one.
const schedChildEnv = "TCPCRAFT_TEST_SCHED_CHILD"

// TestSetRealtimeScheduling: after SetRealtimeScheduling every thread of
// the process — those it had, those the runtime starts later — and a
// process it starts run under SCHED_RR at the lowest priority (the helper
// and shell commands inherit it that way); on one CPU nothing changes.
func TestSetRealtimeScheduling(t *testing.T) {
	labtest.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRealtimeSchedulingChild$", "-test.v")
	cmd.Env = append(os.Environ(), schedChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !testing.Verbose() {
		return
	}
	t.Logf("child:\n%s", out)
}

func TestRealtimeSchedulingChild(t *testing.T) {
	if os.Getenv(schedChildEnv) == "" {
		t.Skip("run by TestSetRealtimeScheduling in a process of its own")
	}
	wantPolicy, wantPrio := uint32(unix.SCHED_RR), uint32(1)
	if runtime.NumCPU() <= 1 {
		wantPolicy, wantPrio = unix.SCHED_NORMAL, 0
	}
	if err := SetRealtimeScheduling(); err != nil {
		t.Fatal(err)
	}
	// Threads started afterwards: goroutines that hold theirs while
	// others start.
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			<-release
		}()
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()

	check := func(what string, pid int) {
		attr, err := unix.SchedGetAttr(pid, 0)
		if err != nil {
			t.Errorf("%s %d: sched_getattr: %v", what, pid, err)
			return
		}
		if attr.Policy != wantPolicy || attr.Priority != wantPrio {
			t.Errorf("%s %d: policy %d priority %d, want %d %d", what, pid, attr.Policy, attr.Priority, wantPolicy, wantPrio)
		}
	}
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) < 5 {
		t.Errorf("%d threads, want at least 5 (4 locked goroutines and this one)", len(tids))
	}
	for _, tid := range tids {
		check("thread", tid)
	}
	check("child process", sleeper.Process.Pid)
	close(release)
	wg.Wait()
}
