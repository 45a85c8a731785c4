package lab_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// labScript runs scripts/lab.sh with the names of cfg in its environment.
func labScript(t *testing.T, cfg lab.Config, cred *syscall.Credential, action string) (stdout, stderr string, code int) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "scripts", "lab.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script, action)
	cmd.Env = append(os.Environ(),
		"TCPCRAFT_CLIENT_NS="+cfg.ClientNS, "TCPCRAFT_SERVER_NS="+cfg.ServerNS,
		"TCPCRAFT_CLIENT_IF="+cfg.ClientIf, "TCPCRAFT_SERVER_IF="+cfg.ServerIf,
		"TCPCRAFT_CLIENT_ADDR="+cfg.ClientAddr.String(), "TCPCRAFT_SERVER_ADDR="+cfg.ServerAddr.String(),
		"TCPCRAFT_CLIENT_ADDR6="+cfg.ClientAddr6.String(), "TCPCRAFT_SERVER_ADDR6="+cfg.ServerAddr6.String())
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("lab.sh %s: %v", action, err)
	}
	return out.String(), errOut.String(), 0
}

// TestLabScript checks that scripts/lab.sh builds the same lab as lab.Up,
// idempotently, and removes all of it.
func TestLabScript(t *testing.T) {
	labtest.RequireTools(t, "bash")
	cfg := labtest.Config(t)
	ctx := context.Background()
	run := func(action string, wants ...string) string {
		t.Helper()
		out, errOut, code := labScript(t, cfg, nil, action)
		if code != 0 {
			t.Fatalf("lab.sh %s: exit %d\n%s%s", action, code, out, errOut)
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("lab.sh %s: output lacks %q:\n%s", action, w, out)
			}
		}
		return out
	}
	goState := func() lab.State {
		t.Helper()
		st, err := lab.Status(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st.State()
	}

	run("status", "lab: down")
	run("up", "created namespace "+cfg.ClientNS, "created veth pair", "added 10.0.2.20/24 to "+cfg.ServerIf,
		"added fd00:2::20/64 to "+cfg.ServerIf, "added fd00:2::21/64 to "+cfg.ClientIf, "lab is up: client 10.0.2.21/24 fd00:2::21/64")
	if s := goState(); s != lab.StateUp {
		t.Fatalf("after lab.sh up, lab.Status says %s", s)
	}
	if out := run("up", "lab is up"); strings.Contains(out, "created") || strings.Contains(out, "added") {
		t.Errorf("second lab.sh up changed something:\n%s", out)
	}
	run("status", "lab: up", cfg.ClientIf+": veth, up, 10.0.2.21/24 fd00:2::21/64")

	// The Go side sees nothing to do in what the script built.
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Changes) != 0 {
		t.Errorf("lab.Up after lab.sh up changed %q", l.Changes)
	}
	labtest.Run(t, l, cfg.ServerNS, "ip", "link", "set", "dev", cfg.ServerIf, "down")
	run("status", "lab: partial", "problem: "+cfg.ServerIf+" in "+cfg.ServerNS+" is down")
	run("up", "set "+cfg.ServerIf+" up")
	labtest.Run(t, l, cfg.ClientNS, "ip", "addr", "del", "fd00:2::21/64", "dev", cfg.ClientIf)
	run("status", "lab: partial", "problem: "+cfg.ClientIf+" in "+cfg.ClientNS+" lacks address fd00:2::21/64")
	run("up", "added fd00:2::21/64 to "+cfg.ClientIf)

	run("down", "removed namespace "+cfg.ClientNS, "removed namespace "+cfg.ServerNS)
	labtest.AssertNoLeftovers(t, cfg)
	run("down", "nothing to remove")
	run("status", "lab: down")

	// And the script sees what lab.Up built as up.
	if _, err := lab.Up(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	run("status", "lab: up")
	run("down", "lab is down")
	if s := goState(); s != lab.StateDown {
		t.Errorf("after lab.sh down, lab.Status says %s", s)
	}
}

func TestLabScriptErrors(t *testing.T) {
	labtest.RequireTools(t, "bash")
	cfg := labtest.Config(t)

	out, errOut, code := labScript(t, cfg, nil, "sideways")
	if code != 2 || !strings.Contains(errOut, "usage:") {
		t.Errorf("lab.sh sideways: exit %d, %q %q; want exit 2 and usage", code, out, errOut)
	}

	bad := cfg
	bad.ClientIf = "much-too-long-name"
	if _, errOut, code := labScript(t, bad, nil, "up"); code != 1 || !strings.Contains(errOut, "1 to 15 bytes") {
		t.Errorf("lab.sh up with a long name: exit %d, %q", code, errOut)
	}

	_, errOut, code = labScript(t, cfg, &syscall.Credential{Uid: 65534, Gid: 65534}, "up")
	if code != 1 || !strings.Contains(errOut, "needs root or CAP_NET_ADMIN") {
		t.Errorf("lab.sh up as nobody: exit %d, %q; want exit 1 and the privileges message", code, errOut)
	}
	labtest.AssertNoLeftovers(t, cfg)
}
