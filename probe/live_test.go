package probe

// Live tests: the runner against the real Linux kernel in a throwaway
// namespace pair (NewLabEnv), with system calls executed in-process on a
// thread inside the kernel's namespace. The tcpcraft binary and its helper
// process are tested end to end in cmd.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

func runLive(t *testing.T, path string, src []byte) error {
	t.Helper()
	labtest.RequireRoot(t)
	labtest.RequireTools(t, "ip", "iptables")
	s, err := Parse(path, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(s, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	set, err := ApplyScript(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := NewPacketdrillEnv(ctx, nil, set)
	if err != nil {
		t.Fatalf("NewPacketdrillEnv: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			env.Close()
		}
	})
	runErr := Run(ctx, s, env, Config{})
	closed = true
	if err := env.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, ns := range env.Namespaces {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	return runErr
}

func TestLiveOwnScripts(t *testing.T) {
	for _, name := range []string{"server-data-close.pkt", "rst-closed-port.pkt", "client-refused.pkt", "disconnect-reconnect.pkt", "tun-gso-rcv-mss.pkt", "meminfo.pkt"} {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			if err := runLive(t, name, src); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
}

// TestLiveMismatch: a wrong expectation against the real kernel fails at
// the right line with both values.
func TestLiveMismatch(t *testing.T) {
	src, err := os.ReadFile("testdata/must-fail-wrong-ack.pkt")
	if err != nil {
		t.Fatal(err)
	}
	err = runLive(t, "must-fail-wrong-ack.pkt", src)
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *Failure, got %v", err)
	}
	if f.Line != 11 || f.Msg != "error handling packet: live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)" {
		t.Errorf("failure %v", f)
	}
}

// TestLiveSyscallErrors: a wrong errno and a wrong result are reported in
// packetdrill's words.
func TestLiveSyscallErrors(t *testing.T) {
	err := runLive(t, "errno.pkt", []byte(`
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  bind(3, ..., ...) = -1 EADDRINUSE (Address already in use)
`))
	var f *Failure
	if !errors.As(err, &f) || f.Line != 4 || f.Msg != "runtime error in bind call: Expected errno 98 (EADDRINUSE: Address already in use) but got 22 (EINVAL: Invalid argument)" {
		t.Errorf("second bind: %v", err)
	}
	err = runLive(t, "result.pkt", []byte(`
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  listen(3, 1) = 0
+0  getsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], [4]) = 0
`))
	if !errors.As(err, &f) || f.Line != 4 || f.Msg != "runtime error in getsockopt call: Bad getsockopt optval: expected: 1 actual: 0" {
		t.Errorf("getsockopt: %v", err)
	}
}

// TestSweepStale removes the namespaces of dead runs only.
func TestSweepStale(t *testing.T) {
	labtest.RequireRoot(t)
	labtest.RequireTools(t, "ip")
	dead := 0
	for pid := 4194300; pid > 4000000; pid-- {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			dead = pid
			break
		}
	}
	if dead == 0 {
		t.Fatal("no free pid found")
	}
	deadNS := fmt.Sprintf("tcprobe-%d-sweeptest-kernel", dead)
	liveNS := fmt.Sprintf("tcprobe-%d-sweeptest-kernel", os.Getpid())
	for _, ns := range []string{deadNS, liveNS} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	}
	removed, err := SweepStale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, deadNS) {
		t.Errorf("removed %v, want %s among them", removed, deadNS)
	}
	if slices.Contains(removed, liveNS) {
		t.Errorf("removed %s, whose process (this test) is alive", liveNS)
	}
	if _, err := os.Stat("/run/netns/" + deadNS); err == nil {
		t.Errorf("%s still exists", deadNS)
	}
	if _, err := os.Stat("/run/netns/" + liveNS); err != nil {
		t.Errorf("%s is gone: %v", liveNS, err)
	}
}
