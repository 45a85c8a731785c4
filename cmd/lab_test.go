package cmd

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// TestLabUpStatusDown drives `tcpcraft lab` end to end with unique names
// given by flags, and checks that nothing is left.
func TestLabUpStatusDown(t *testing.T) {
	cfg := labtest.Config(t)
	ctx := context.Background()
	flags := []string{
		"--client-ns", cfg.ClientNS, "--server-ns", cfg.ServerNS,
		"--client-if", cfg.ClientIf, "--server-if", cfg.ServerIf,
		"--client-addr", cfg.ClientAddr.String(), "--server-addr", cfg.ServerAddr.String(),
		"--client-addr6", cfg.ClientAddr6.String(), "--server-addr6", cfg.ServerAddr6.String(),
	}
	labRun := func(sub string) result {
		t.Helper()
		r := runApp(t, ctx, append([]string{"lab", sub}, flags...)...)
		if r.code != codeOK {
			t.Fatalf("lab %s: exit %d\nstdout %s\nstderr %s", sub, r.code, r.stdout, r.stderr)
		}
		return r
	}
	expect := func(r result, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("output lacks %q:\n%s", w, r.stdout)
			}
		}
	}

	expect(labRun("status"), "lab: down", cfg.ClientNS+": absent")
	expect(labRun("up"),
		"created namespace "+cfg.ClientNS, "created namespace "+cfg.ServerNS, "created veth pair",
		"added 10.0.2.21/24 to "+cfg.ClientIf, "added 10.0.2.20/24 to "+cfg.ServerIf,
		"added fd00:2::21/64 to "+cfg.ClientIf, "added fd00:2::20/64 to "+cfg.ServerIf, "lab is up: client 10.0.2.21/24 fd00:2::21/64")
	st, err := lab.Status(ctx, cfg)
	if err != nil || st.State() != lab.StateUp {
		t.Fatalf("after lab up the lab is %v (%v):\n%s", st.State(), err, st)
	}
	expect(labRun("up"), "nothing to change", "lab is up")
	expect(labRun("status"), "lab: up", cfg.ClientIf+": veth, up, 10.0.2.21/24, fd00:2::21/64", cfg.ServerIf+": veth, up, 10.0.2.20/24, fd00:2::20/64")
	// Both families work at once (nodad: no tentative address).
	l := &lab.Lab{Config: cfg}
	for _, addr := range []string{"[fd00:2::20]:7", "10.0.2.20:7"} {
		ln := labtest.Listen(t, l, cfg.ServerNS, addr)
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := l.Dial(dctx, cfg.ClientNS, "tcp", addr)
		cancel()
		if err != nil {
			t.Fatalf("a kernel connection to %s right after lab up: %v", addr, err)
		}
		conn.Close()
		ln.Close()
	}
	// Without its IPv6 address the lab is partial, and up puts it back.
	labtest.Run(t, l, cfg.ServerNS, "ip", "addr", "del", "fd00:2::20/64", "dev", cfg.ServerIf)
	expect(labRun("status"), "lab: partial", "lacks address fd00:2::20/64")
	expect(labRun("up"), "added fd00:2::20/64 to "+cfg.ServerIf)
	expect(labRun("status"), "lab: up")

	// A broken lab is reported, still with exit 0.
	if out, err := exec.Command("ip", "netns", "delete", cfg.ServerNS).CombinedOutput(); err != nil {
		t.Fatalf("ip netns delete: %v: %s", err, out)
	}
	expect(labRun("status"), "lab: partial", "problem: namespace "+cfg.ServerNS+" does not exist")

	expect(labRun("down"), "removed namespace "+cfg.ClientNS, "lab is down")
	labtest.AssertNoLeftovers(t, cfg)
	expect(labRun("down"), "nothing to remove", "lab is down")
	expect(labRun("status"), "lab: down")
}

// TestLabEnvironmentOverrides checks that the TCPCRAFT_* variables
// scripts/lab.sh reads also steer `tcpcraft lab`.
func TestLabEnvironmentOverrides(t *testing.T) {
	cfg := labtest.Config(t)
	t.Setenv("TCPCRAFT_CLIENT_NS", cfg.ClientNS)
	t.Setenv("TCPCRAFT_SERVER_NS", cfg.ServerNS)
	t.Setenv("TCPCRAFT_CLIENT_IF", cfg.ClientIf)
	t.Setenv("TCPCRAFT_SERVER_IF", cfg.ServerIf)
	r := runApp(t, context.Background(), "lab", "up")
	if r.code != codeOK || !strings.Contains(r.stdout, "created namespace "+cfg.ClientNS) {
		t.Fatalf("lab up with environment: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runApp(t, context.Background(), "lab", "down"); r.code != codeOK || !strings.Contains(r.stdout, "removed namespace "+cfg.ServerNS) {
		t.Fatalf("lab down with environment: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	labtest.AssertNoLeftovers(t, cfg)
}
