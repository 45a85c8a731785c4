package cmd

// Tests of `tcpcraft probe` that need no privileges: usage and syntax
// errors are found before anything touches the system, so these run the
// app in-process.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeScript writes a script into a fresh directory and returns its path.
func writeScript(t *testing.T, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// probeNamespaces lists the network namespaces that the tcpcraft probe
// run of process pid names as its own (tcprobe-PID-*).
func probeNamespaces(t *testing.T, pid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	// Only that process's: the probe package's live tests, run beside
	// this package's, make their own.
	mine := fmt.Sprintf("tcprobe-%d-", pid)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), mine) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestProbeUsageErrors(t *testing.T) {
	good := writeScript(t, "good.pkt", "0 < S 0:0(0) win 1000\n+0 > R. 0:0(0) ack 1 win 0\n")
	withSyscall := writeScript(t, "sys.pkt", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) = 0\n")
	withShell := writeScript(t, "sh.pkt", "`echo hi`\n0 < S 0:0(0) win 1000\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no script", []string{"probe"}, "tcpcraft probe: want at least one SCRIPT"},
		{"both modes", []string{"probe", "--target", "10.0.2.20:80", "--peer-netns", "x", good}, "give --peer-netns or --target, not both"},
		{"bad target", []string{"probe", "--target", "10.0.2.20", good}, "want HOST:PORT"},
		{"bad tolerance", []string{"probe", "--tolerance", "0s", good}, "--tolerance 0s: must be more than 0"},
		{"negative tolerance", []string{"probe", "--tolerance", "-0.1", good}, "--tolerance -0.1: must not be negative"},
		{"missing file", []string{"probe", filepath.Join(t.TempDir(), "nope.pkt")}, "no such file or directory"},
		{"syscall with --target", []string{"probe", "--target", "10.0.2.20:80", withSyscall},
			"sys.pkt:1:3: system call socket: with --target a script may only have packet lines"},
		{"shell with --target", []string{"probe", "--target", "10.0.2.20:80", withShell},
			"sh.pkt:1:1: shell lines need a kernel to run on; with --target a script may only have packet lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runApp(t, context.Background(), tc.args...)
			if r.code != codeUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, codeUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing (no script ran)", r.stdout)
			}
		})
	}
}

// TestProbeSyntaxErrors: every malformed script is reported with its
// file, line, column and what was expected; exit 2; nothing runs, not even
// the well-formed scripts given with them.
func TestProbeSyntaxErrors(t *testing.T) {
	// runApp runs probe in this process.
	before := probeNamespaces(t, os.Getpid())
	good := writeScript(t, "good.pkt", "0 < S 0:0(0) win 1000\n+0 > R. 0:0(0) ack 1 win 0\n")
	bad1 := writeScript(t, "bad1.pkt", "// a comment\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0(0) win 1000 <mss 1460,wscale>\n")
	bad2 := writeScript(t, "bad2.pkt", "0 > S. 0:0(0) ack 1\n+.1 < X 1:1(0) ack 1 win 100\n")
	r := runApp(t, context.Background(), "probe", good, bad1, bad2)
	if r.code != codeUsage {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, codeUsage, r.stdout, r.stderr)
	}
	for _, want := range []string{
		bad1 + `:3:40: wscale: window scale shift missing (want 0-255)`,
		bad2 + `:2:7: X: invalid TCP flag 'X' (packetdrill's flags: S F R P U E W A and . for ACK, a digit 0-7 for ACE, or - for none)`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not have\n  %s\nstderr:\n%s", want, r.stderr)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout %q: no script should have run", r.stdout)
	}
	if after := probeNamespaces(t, os.Getpid()); len(after) != len(before) {
		t.Errorf("namespaces before %v, after %v", before, after)
	}
}

// TestProbeHelpMentionsModes: the help names the flags of the issue.
func TestProbeHelpMentionsModes(t *testing.T) {
	r := runApp(t, context.Background(), "probe", "--help")
	if r.code != codeOK {
		t.Fatalf("exit %d", r.code)
	}
	for _, flag := range []string{"--peer-netns", "--target", "--tolerance", "--verbose"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("help does not mention %s:\n%s", flag, r.stdout)
		}
	}
	// The helper is hidden.
	r = runApp(t, context.Background(), "--help")
	if strings.Contains(r.stdout, probeSyscallsName) {
		t.Errorf("the hidden helper shows in the help:\n%s", r.stdout)
	}
}

// TestProbeSyscallsHelper drives the hidden helper in-process: it executes
// a request and answers with JSON lines.
func TestProbeSyscallsHelper(t *testing.T) {
	app := NewApp()
	var out, errOut strings.Builder
	app.Writer, app.ErrWriter = &out, &errOut
	// fcntl on descriptor -1 fails with EBADF without touching anything.
	app.Reader = strings.NewReader(`{"id":7,"call":"fcntl","fd":-1,"ints":[3]}` + "\n")
	if code := Run(context.Background(), app, []string{"tcpcraft", probeSyscallsName}); code != codeOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := `"id":7,"event":"done","ret":-1,"errno":9`; !strings.Contains(out.String(), want) {
		t.Errorf("reply %q does not contain %q", out.String(), want)
	}
}
