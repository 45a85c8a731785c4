package cmd

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// The flag readers answer as cli.Command's own look-ups do, for every flag
// name every command can read (its own and its ancestors'), unset and
// set, and for a name no flag has.
func TestFlagReadersAnswerAsTheLibrary(t *testing.T) {
	var leaves [][]string
	var walk func(path []string, c *cli.Command)
	walk = func(path []string, c *cli.Command) {
		if len(c.Commands) == 0 {
			leaves = append(leaves, path)
		}
		for _, sub := range c.Commands {
			walk(append(append([]string(nil), path...), sub.Name), sub)
		}
	}
	walk(nil, NewApp())
	runs := leaves
	// Some flags set, of every kind the readers read.
	runs = append(runs,
		[]string{"connect", "-q", "--mss", "1000", "--time-wait", "2s", "--pcap", "x.pcap", "--fault", "drop:seq=1", "--fault", "dup:seq=2", "-4", "h:1"},
		[]string{"listen", "-v", "--backlog", "7", "-k", "--syncookies", "always", ":1"},
		[]string{"send", "--flags", "S", "-c", "3", "--interval", "5ms", "h:1"},
	)
	checked, set := 0, 0
	for _, args := range runs {
		app := NewApp()
		var leaf *cli.Command
		var find func(c *cli.Command, path []string)
		find = func(c *cli.Command, path []string) {
			if len(path) == 0 {
				leaf = c
				return
			}
			for _, sub := range c.Commands {
				if sub.Name == path[0] {
					find(sub, path[1:])
				}
			}
		}
		var path []string
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				break
			}
			path = append(path, a)
		}
		for len(path) > 0 {
			if find(app, path); leaf != nil {
				break
			}
			path = path[:len(path)-1]
		}
		if leaf == nil {
			t.Fatalf("%q: no command", args)
		}
		var problems []string
		leaf.Action = func(ctx context.Context, c *cli.Command) error {
			var names []string
			for _, cmd := range c.Lineage() {
				for _, f := range cmd.Flags {
					names = append(names, f.Names()...)
				}
			}
			names = append(names, "no-such-flag")
			for _, n := range names {
				checked++
				if c.IsSet(n) {
					set++
				}
				if got, want := flagIsSet(c, n), c.IsSet(n); got != want {
					problems = append(problems, fmt.Sprintf("IsSet(%q) = %v, the library's %v", n, got, want))
				}
				if got, want := flagValue(c, n), c.Value(n); !reflect.DeepEqual(got, want) {
					problems = append(problems, fmt.Sprintf("Value(%q) = %#v, the library's %#v", n, got, want))
				}
				if flagBool(c, n) != c.Bool(n) || flagString(c, n) != c.String(n) || flagInt(c, n) != c.Int(n) ||
					flagDuration(c, n) != c.Duration(n) || flagFloat64(c, n) != c.Float64(n) || !reflect.DeepEqual(flagStringSlice(c, n), c.StringSlice(n)) {
					problems = append(problems, fmt.Sprintf("a typed reader of %q differs from the library's", n))
				}
			}
			return nil
		}
		app.Writer, app.ErrWriter = new(strings.Builder), new(strings.Builder)
		if err := app.Run(context.Background(), append([]string{"tcpcraft"}, familyShorthands(append([]string{"tcpcraft"}, args...))[1:]...)); err != nil {
			t.Errorf("%q: %v", args, err)
		}
		for _, p := range problems {
			t.Errorf("%q: %s", args, p)
		}
	}
	if checked < 300 || set < 10 {
		t.Fatalf("only %d names checked, %d of them set", checked, set)
	}
}
