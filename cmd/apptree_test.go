package cmd

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// The makers' names are the commands' own names and aliases, in the
// order of the whole tree.
func TestCommandMakersNameTheirCommands(t *testing.T) {
	full := NewApp()
	var order []string
	for _, m := range commandMakers() {
		c := m.make()
		if got := append([]string{c.Name}, c.Aliases...); !slices.Equal(got, m.names) {
			t.Errorf("maker names %v, its command is %v", m.names, got)
		}
		order = append(order, c.Name)
	}
	var got []string
	for _, c := range full.Commands {
		got = append(got, c.Name)
	}
	if !slices.Equal(got, order) {
		t.Errorf("NewApp's commands %v, the makers' %v", got, order)
	}
}

// newAppFor makes the named command alone, and the whole tree for
// anything that needs it.
func TestNewAppForMakesOnlyTheCommandRun(t *testing.T) {
	whole := len(NewApp().Commands)
	for _, m := range commandMakers() {
		for _, name := range m.names {
			app := newAppFor([]string{"tcpcraft", name, "x"})
			switch {
			case m.whole && len(app.Commands) != whole:
				t.Errorf("%s: %d commands, want the whole tree (%d)", name, len(app.Commands), whole)
			case !m.whole && (len(app.Commands) != 1 || app.Commands[0].Name != m.names[0]):
				t.Errorf("%s: commands %d, want %s alone", name, len(app.Commands), m.names[0])
			}
		}
	}
	for _, args := range [][]string{{"tcpcraft"}, {"tcpcraft", "--version"}, {"tcpcraft", "-h"}, {"tcpcraft", "nosuch"}, {"tcpcraft", "completion", "bash"}, {"tcpcraft", "-4", "connect"}} {
		if n := len(newAppFor(args).Commands); n != whole {
			t.Errorf("%q: %d commands, want the whole tree (%d)", args, n, whole)
		}
	}
}

// What a user sees of a command is the same whether the tree holds it
// alone or every command: its help, a subcommand's help, flag errors,
// argument errors, shell completion of its options.
func TestOneCommandTreeShowsTheSame(t *testing.T) {
	var cases [][]string
	for _, m := range commandMakers() {
		if m.whole {
			continue
		}
		name := m.names[0]
		cases = append(cases,
			[]string{name, "--help"},
			[]string{name, "--no-such-option"},
			[]string{name, "-", "--generate-shell-completion"},
		)
	}
	cases = append(cases,
		[]string{"lab", "up", "--help"},
		[]string{"lab", "nosuch"},
		[]string{"lab", "--generate-shell-completion"},
		[]string{"connect"},
		[]string{"connect", "-q", "--mss", "1"},
		[]string{"send", "--flags", "Q", "10.0.2.20:80"},
		[]string{"decode"},
	)
	for _, args := range cases {
		full := runAppOn(t, NewApp(), args...)
		one := runAppOn(t, newAppFor(append([]string{"tcpcraft"}, args...)), args...)
		if full.stdout+full.stderr == "" {
			t.Errorf("tcpcraft %s: no output at all (exit %d)", strings.Join(args, " "), full.code)
		}
		if full != one {
			t.Errorf("tcpcraft %s:\nwhole tree: exit %d\n%s%s\none command: exit %d\n%s%s",
				strings.Join(args, " "), full.code, full.stdout, full.stderr, one.code, one.stdout, one.stderr)
		}
	}
}

// runAppOn runs app with args (without the program name).
func runAppOn(t *testing.T, a *cli.Command, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	a.Writer, a.ErrWriter = &out, &errOut
	a.Reader = strings.NewReader("")
	code := Run(context.Background(), a, append([]string{"tcpcraft"}, args...))
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}
