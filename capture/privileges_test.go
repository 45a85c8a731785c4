package capture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

func TestCheckPrivilegesAsRoot(t *testing.T) {
	labtest.RequireRoot(t)
	if err := CheckPrivileges(); err != nil {
		t.Fatalf("CheckPrivileges as root: %v", err)
	}
}

// The test binary re-runs itself (TestMain, helperEnv) under setpriv with
// fewer capabilities and reports what CheckPrivileges said.
func TestCheckPrivilegesWithoutCapabilities(t *testing.T) {
	labtest.RequireRoot(t)
	labtest.RequireTools(t, "setpriv")
	bin := worldExecutableCopy(t)

	want := "error: " + ErrNeedPrivileges.Error()
	cases := []struct {
		name    string
		setpriv []string
		want    string
	}{
		{"unprivileged user", []string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}, want},
		{"root without CAP_NET_RAW and CAP_NET_ADMIN", []string{"--inh-caps=-net_raw,-net_admin", "--bounding-set=-net_raw,-net_admin"}, want},
		{"root without CAP_NET_RAW", []string{"--inh-caps=-net_raw", "--bounding-set=-net_raw"}, want},
		{"root without CAP_NET_ADMIN", []string{"--inh-caps=-net_admin", "--bounding-set=-net_admin"}, want},
		// The control: the same path with nothing dropped passes, so the
		// failures above come from the capabilities alone.
		{"root, nothing dropped", []string{"--inh-caps=-sys_module", "--bounding-set=-sys_module"}, "ok"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append(append([]string{}, c.setpriv...), "--", bin, "-test.run=^$")
			cmd := exec.CommandContext(ctx, "setpriv", args...)
			cmd.Env = append(os.Environ(), helperEnv+"=check-privileges")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("setpriv %v: %v\nstderr: %s", args, err, stderr.String())
			}
			if got := strings.TrimSpace(stdout.String()); got != c.want {
				t.Fatalf("CheckPrivileges printed %q, want %q", got, c.want)
			}
		})
	}
}

// worldExecutableCopy copies the test binary where uid 65534 may run it
// (go test builds it in a directory only root can enter).
func worldExecutableCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent directory is private to root.
	dir, err := os.MkdirTemp("", "capture-privileges-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "capture.test")
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestPermissionErrorWrapsEPERM(t *testing.T) {
	err := permissionError(os.NewSyscallError("socket", unix.EPERM))
	if !errors.Is(err, ErrNeedPrivileges) || !strings.Contains(err.Error(), "needs root or CAP_NET_RAW+CAP_NET_ADMIN") {
		t.Fatalf("permissionError(EPERM) = %v", err)
	}
	other := errors.New("boom")
	if got := permissionError(other); got != other {
		t.Fatalf("permissionError(other) = %v, want it unchanged", got)
	}
}
