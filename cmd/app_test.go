package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v3"
)

// result is what one run of the app produced.
type result struct {
	code           int
	stdout, stderr string
}

// runApp runs a fresh app with args (without the program name).
func runApp(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	return runAppWith(t, ctx, "", args...)
}

// runAppWith is runApp with stdin.
func runAppWith(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	app := NewApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	app.Reader = strings.NewReader(stdin)
	code := Run(ctx, app, append([]string{"tcpcraft"}, args...))
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// commandPaths lists every command as the words that name it, e.g.
// ["lab", "up"].
func commandPaths(cmds []*cli.Command, parent []string) [][]string {
	var out [][]string
	for _, c := range cmds {
		path := append(append([]string(nil), parent...), c.Name)
		out = append(out, path)
		out = append(out, commandPaths(c.Commands, path)...)
	}
	return out
}

func TestProductCommandsRegistered(t *testing.T) {
	var got []string
	for _, p := range commandPaths(NewApp().Commands, nil) {
		got = append(got, strings.Join(p, " "))
	}
	for _, want := range []string{"connect", "listen", "send", "probe", "decode", "cleanup", "lab", "lab up", "lab down", "lab status", "lab demo", "draw", "help"} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("command %q is not registered (have %q)", want, got)
		}
	}
}

func TestEveryCommandShowsHelp(t *testing.T) {
	app := NewApp()
	for _, path := range commandPaths(app.Commands, nil) {
		name := strings.Join(path, " ")
		t.Run(name, func(t *testing.T) {
			for _, args := range [][]string{
				append(append([]string(nil), path...), "--help"),
				append([]string{"help"}, path...),
			} {
				r := runApp(t, context.Background(), args...)
				if r.code != codeOK {
					t.Fatalf("%q: exit %d, stderr %q", args, r.code, r.stderr)
				}
				want := "tcpcraft " + name + " - "
				if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "USAGE:") {
					t.Errorf("%q: help does not name the command:\n%s", args, r.stdout)
				}
			}
		})
	}
	r := runApp(t, context.Background(), "--help")
	if r.code != codeOK || !strings.Contains(r.stdout, "COMMANDS:") || !strings.Contains(r.stdout, "130 interrupted") {
		t.Errorf("tcpcraft --help: exit %d\n%s", r.code, r.stdout)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "tcpcraft: a command is required"},
		{[]string{"bogus"}, `tcpcraft: unknown command "bogus"`},
		{[]string{"--bogus"}, "tcpcraft: unknown flag --bogus"},
		{[]string{"connect", "--bogus"}, "tcpcraft connect: unknown flag --bogus"},
		{[]string{"connect", "10.0.2.20:80", "-x"}, "tcpcraft connect: unknown flag -x"},
		{[]string{"decode", "--bogus"}, "tcpcraft decode: unknown flag --bogus"},
		{[]string{"lab"}, "tcpcraft lab: a command is required (commands: up, down, status, demo)"},
		{[]string{"lab", "bogus"}, `tcpcraft lab: unknown command "bogus"`},
		{[]string{"lab", "up", "--bogus"}, "tcpcraft lab up: unknown flag --bogus"},
		{[]string{"lab", "up", "extra"}, `tcpcraft lab up: unexpected argument "extra"`},
		{[]string{"lab", "status", "--client-addr", "10.0.2.21"}, "tcpcraft lab status: --client-addr"},
		{[]string{"lab", "up", "--client-if", "much-too-long-name"}, "at most 15"},
		{[]string{"lab", "down", "--server-ns", "tcpcraft-client"}, "must differ"},
		{[]string{"help", "bogus"}, `no help for "bogus"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runApp(t, context.Background(), tc.args...)
			if r.code != codeUsage {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, codeUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.want)
			}
			if !strings.Contains(r.stderr, "--help' for usage") {
				t.Errorf("stderr %q gives no hint where the usage is", r.stderr)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		action cli.ActionFunc
		code   int
		stderr string
	}{
		{"success", context.Background(), func(context.Context, *cli.Command) error { return nil }, 0, ""},
		{"plain error", context.Background(), func(context.Context, *cli.Command) error { return errors.New("boom") }, 1, "tcpcraft x: boom\n"},
		{"failure", context.Background(), func(context.Context, *cli.Command) error { return exitFailure(errors.New("no route")) }, 1, "tcpcraft x: no route\n"},
		{"usage", context.Background(), func(context.Context, *cli.Command) error { return usagef("want %s", "HOST:PORT") }, 2,
			"tcpcraft x: want HOST:PORT\nRun 'tcpcraft x --help' for usage.\n"},
		{"cli.Exit", context.Background(), func(context.Context, *cli.Command) error { return cli.Exit("odd", 3) }, 3, "tcpcraft x: odd\n"},
		{"interrupted", cancelled, func(ctx context.Context, _ *cli.Command) error { return ctx.Err() }, 130, "tcpcraft x: interrupted\n"},
		{"interrupted, clean exit", cancelled, func(context.Context, *cli.Command) error { return nil }, 130, ""},
		{"stdout closed", context.Background(), func(_ context.Context, c *cli.Command) error {
			_, err := stdout(c).Write([]byte("x"))
			return exitFailure(fmt.Errorf("writing: %w", err))
		}, 141, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := NewApp()
			app.Commands = append(app.Commands, &cli.Command{Name: "x", Action: tc.action})
			prepare(app.Commands[len(app.Commands)-1])
			var out, errOut bytes.Buffer
			app.Writer, app.ErrWriter = &out, &errOut
			if tc.code == codeBrokenPipe {
				app.Writer = brokenPipe{}
			}
			if code := Run(tc.ctx, app, []string{"tcpcraft", "x"}); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if errOut.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", errOut.String(), tc.stderr)
			}
		})
	}
}

// brokenPipe is an output whose reader has gone.
type brokenPipe struct{}

func (brokenPipe) Write([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: "/dev/stdout", Err: syscall.EPIPE}
}
