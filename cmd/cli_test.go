package cmd

// Tests of the command line that need no privileges and touch nothing:
// options after arguments, the value types of the options, what help
// promises, the examples, shell completion, the manual page and --version.

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// TestFlagsAfterArguments: every command reads its options after its
// arguments too (the error names the option, so it was read as one), and
// "--" ends the options.
func TestFlagsAfterArguments(t *testing.T) {
	script := writeScript(t, "s.pkt", "0 < S 0:0(0) win 1000\n+0 > R. 0:0(0) ack 1 win 0\n")
	pcap := "testdata/linux-http.pcap"
	for _, tc := range []struct {
		args []string
		code int
		says string // on stderr, or on stdout for a success
	}{
		{[]string{"connect", "127.0.0.1:9", "--ttl", "0"}, 2, "tcpcraft connect: --ttl 0: must be 1 to 255"},
		{[]string{"connect", "127.0.0.1:9", "-q", "-v"}, 2, "give --quiet (-q) or --verbose (-v), not both"},
		{[]string{"connect", "127.0.0.1:9", "-w", "-5s"}, 2, "-w -5s: must not be negative"},
		{[]string{"connect", "--", "127.0.0.1:9", "-q"}, 2, `got 2 ("127.0.0.1:9" "-q")`},
		{[]string{"listen", ":8080", "--backlog", "0"}, 2, "tcpcraft listen: --backlog 0: must be 1 to"},
		{[]string{"listen", ":8080", "--echo", "--exec", "cat"}, 2, "give --echo or --exec (-e), not both"},
		{[]string{"send", "127.0.0.1:9", "-c", "-1"}, 2, "tcpcraft send: -c -1: must be 0 to 1073741824"},
		{[]string{"send", "127.0.0.1:9", "--interval", "-1"}, 2, "--interval -1: must not be negative"},
		{[]string{"send", "127.0.0.1:9", "--opt", "mss=99999"}, 2, `--opt mss=99999: MSS must be 0-65535`},
		{[]string{"probe", script, "--tolerance", "0"}, 2, "tcpcraft probe: --tolerance 0: must be more than 0"},
		{[]string{"decode", pcap, "--conns"}, 0, "client states"},
		{[]string{"decode", pcap, "-S"}, 0, "seq 2619426933"},
		{[]string{"decode", "--", "--conns"}, 1, "open --conns: no such file"},
		{[]string{"draw", pcap, "--format", "txt", "-n", "3"}, 0, "client 10.0.2.21:53888"},
		{[]string{"lab", "up", "extra", "--client-ns", "x"}, 2, `tcpcraft lab up: unexpected argument "extra"`},
		{[]string{"man", "extra"}, 2, `tcpcraft man: unexpected argument "extra"`},
	} {
		r := runApp(t, context.Background(), tc.args...)
		out := r.stderr
		if tc.code == 0 {
			out = r.stdout
		}
		if r.code != tc.code || !strings.Contains(out, tc.says) {
			t.Errorf("%q: exit %d, want %d saying %q\nstdout %q\nstderr %q", tc.args, r.code, tc.code, tc.says, tail(r.stdout, 300), r.stderr)
		}
	}
}

// valueApp is tcpcraft with one more command, "x", whose options are fs
// and whose action hands the parsed command to got.
func valueApp(fs []cli.Flag, got func(*cli.Command)) *cli.Command {
	app := NewApp()
	x := &cli.Command{Name: "x", Flags: fs, Action: func(_ context.Context, c *cli.Command) error { got(c); return nil }}
	prepare(x)
	app.Commands = append(app.Commands, x)
	return app
}

// TestDurationValues: a bare number is seconds, a unit works as in Go,
// negative values and nonsense are refused in the same words everywhere.
func TestDurationValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"2", 2 * time.Second, ""},
		{"0.1", 100 * time.Millisecond, ""},
		{".5", 500 * time.Millisecond, ""},
		{"0", 0, ""},
		{"2s", 2 * time.Second, ""},
		{"100ms", 100 * time.Millisecond, ""},
		{"1m30s", 90 * time.Second, ""},
		{"-5s", 0, "must not be negative"},
		{"-1", 0, "must not be negative"},
		{"2x", 0, "unknown unit"},
		{"abc", 0, "want a number of seconds"},
		{"1.2.3", 0, "want a number of seconds"},
		{"", 0, "want a number of seconds"},
		{"1e300", 0, "unknown unit"},
		{"99999999999999", 0, "too long"},
	} {
		var got time.Duration
		set := false
		app := valueApp([]cli.Flag{&durationFlag{Name: "d", Value: time.Hour}}, func(c *cli.Command) { got, set = c.Duration("d"), true })
		var out, errOut bytes.Buffer
		app.Writer, app.ErrWriter = &out, &errOut
		code := Run(context.Background(), app, []string{"tcpcraft", "x", "-d", tc.in})
		switch {
		case tc.err == "" && (code != 0 || !set || got != tc.want):
			t.Errorf("-d %q: exit %d, %v (%s), want %v", tc.in, code, got, errOut.String(), tc.want)
		case tc.err != "" && (code != codeUsage || !strings.Contains(errOut.String(), "-d "+tc.in+": "+tc.err) && !strings.Contains(errOut.String(), tc.err)):
			t.Errorf("-d %q: exit %d, stderr %q; want exit 2 saying %q", tc.in, code, errOut.String(), tc.err)
		}
	}
	// Zero where only a positive time makes sense.
	r := runApp(t, context.Background(), "send", "127.0.0.1:9", "--wait", "0")
	if r.code != codeUsage || !strings.Contains(r.stderr, "--wait 0: must be more than 0") {
		t.Errorf("send --wait 0: exit %d, %q", r.code, r.stderr)
	}
}

// TestIntAndChoiceValues: numbers in range, in decimal or hex; choices in
// any case, with their aliases.
func TestIntAndChoiceValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the value read, or the error
	}{
		{[]string{"-n", "7"}, "7 auto"},
		{[]string{"-n", "0x10"}, "16 auto"},
		{[]string{"-n", "1000"}, "-n 1000: must be 0 to 100"},
		{[]string{"-n", "-1"}, "-n -1: must be 0 to 100"},
		{[]string{"-n", "1e2"}, "-n 1e2: not a whole number"},
		{[]string{"-n", "99999999999999999999"}, "must be 0 to 100"},
		{[]string{"--side", "SERVER"}, "0 server"},
		{[]string{"--side", "srv"}, "0 server"},
		{[]string{"--side", "both"}, "--side both: want auto, client or server"},
	} {
		var got string
		app := valueApp([]cli.Flag{
			&intFlag{Name: "n", Config: intRange{min: 0, max: 100}},
			&choiceFlag{Name: "side", Value: "auto", Config: choices{values: []string{"auto", "client", "server"}, aliases: map[string]string{"srv": "server"}}},
		}, func(c *cli.Command) { got = strings.Join([]string{strconv.Itoa(c.Int("n")), c.String("side")}, " ") })
		var out, errOut bytes.Buffer
		app.Writer, app.ErrWriter = &out, &errOut
		Run(context.Background(), app, append([]string{"tcpcraft", "x"}, tc.args...))
		if got != tc.want && !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: read %q, stderr %q; want %q", tc.args, got, errOut.String(), tc.want)
		}
	}
}

// leafCommands lists every command of a fresh app that does something
// (has no subcommands), by its words.
func leafCommands(app *cli.Command) map[string]*cli.Command {
	out := map[string]*cli.Command{}
	var walk func(cmds []*cli.Command, parent string)
	walk = func(cmds []*cli.Command, parent string) {
		for _, c := range cmds {
			name := strings.TrimSpace(parent + " " + c.Name)
			if len(c.Commands) == 0 {
				out[name] = c
			}
			walk(c.Commands, name)
		}
	}
	walk(app.Commands, "")
	return out
}

// TestHelpPromises walks every option of every command: help shows it with
// a placeholder for its value, its default at most once, no stray
// backquote; the options whose help disagreed with what they did now say
// what they do; and a test of this package runs the command with the
// option, so that what the help says is exercised.
func TestHelpPromises(t *testing.T) {
	app := NewApp()
	// What some options and commands promise in their help, checked by the
	// tests named in the coverage scan below.
	words := map[string][]string{
		"connect --json":  {"standard error", "final error"},
		"listen --json":   {"standard error", "final error"},
		"send --json":     {"standard output", "final error"},
		"send --quiet":    {"only the statistics"},
		"decode --side":   {"--side SIDE", "client or server"},
		"decode --json":   {"one JSON object per line"},
		"draw --count":    {"0: all"},
		"connect --sport": {"(default: a random port outside ip_local_port_range)"},
		"connect --mss":   {"(default: the interface MTU - 40 (IPv4) or - 60 (IPv6))"},
	}
	descriptions := map[string][]string{
		"listen":  {"on ADDR only when it is given, else on every address"},
		"decode":  {"[tcp cksum partial (offloaded)]", `"status":"partial"`},
		"draw":    {"marked with an arrow"},
		"send":    {"standard\noutput", "(\"error\")"},
		"connect": {"with --json as\none JSON object per line there, the final error included"},
	}
	covered := flagsExercised(t)
	for name, c := range leafCommands(app) {
		if c.Name == "help" {
			continue
		}
		for _, want := range descriptions[name] {
			if !strings.Contains(c.Description, want) {
				t.Errorf("%s: the description does not say %q", name, want)
			}
		}
		for _, f := range visibleFlags(c) {
			names := f.Names()
			key := name + " --" + names[0]
			line := flagHelp(f)
			usage := f.(cli.DocGenerationFlag).GetUsage()
			switch {
			case usage == "":
				t.Errorf("%s: no help", key)
			case strings.Contains(usage, "(default"):
				t.Errorf("%s: the usage names its default itself (%q); give DefaultText, so help shows it once", key, usage)
			case strings.Count(line, "(default:") > 1 || strings.Contains(line, "`"):
				t.Errorf("%s: help %q", key, line)
			}
			if _, ok := f.(*durationFlag); ok && !strings.Contains(line, "DURATION") {
				t.Errorf("%s: a duration shown without DURATION: %q", key, line)
			}
			if _, ok := f.(*cli.DurationFlag); ok {
				t.Errorf("%s: a cli.DurationFlag, which wants a unit: use durationFlag", key)
			}
			for _, w := range words[key] {
				if !strings.Contains(line, w) {
					t.Errorf("%s: help %q does not say %q", key, line, w)
				}
			}
			if !slices.ContainsFunc(names, func(n string) bool { return covered[name+" "+flagName(n)] }) {
				t.Errorf("%s: no test runs %s with it", key, name)
			}
		}
	}
	// The flags the issue found wrong.
	if f := probeCommand().Flags; slices.ContainsFunc(f, func(f cli.Flag) bool { return f.Names()[0] == "ipv4" }) {
		t.Error("probe still has --ipv4, an option with no use")
	}
	for _, f := range sendCommand().Flags {
		if n := f.Names()[0]; n == "absolute" {
			t.Errorf("send has --%s, which it does not act on", n)
		}
	}
}

// testRunners are helpers of this package's tests that run a tcpcraft
// command: a test calling one runs that command.
var testRunners = map[string]string{
	"startListen":  "listen",
	"runDecodeCmd": "decode",
	"probeRun":     "probe",
	"lossStart":    "",
}

// flagsExercised scans this package's tests for the command lines they
// run: a test that names a command (or calls a helper that runs it) and an
// option exercises "command --option". Subcommands count by their last
// word ("lab up" is named "up" after "lab").
func flagsExercised(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	out := map[string]bool{}
	app := NewApp()
	leaves := leafCommands(app)
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil || file == "cli_test.go" {
				continue
			}
			var lits []string
			called := map[string]bool{}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BasicLit:
					if n.Kind == token.STRING {
						if s, err := strconv.Unquote(n.Value); err == nil {
							lits = append(lits, s)
						}
					}
				case *ast.SelectorExpr:
					called[n.Sel.Name] = true
				case *ast.Ident:
					called[n.Name] = true
				}
				return true
			})
			for name, c := range leaves {
				words := strings.Fields(name)
				runs := slices.Contains(lits, words[len(words)-1])
				for helper, cmd := range testRunners {
					if cmd == name && called[helper] {
						runs = true
					}
				}
				if !runs {
					continue
				}
				for _, fl := range c.Flags {
					for _, n := range fl.Names() {
						opt := flagName(n)
						for _, l := range lits {
							if l == opt || strings.HasPrefix(l, opt+"=") {
								out[name+" "+opt] = true
							}
						}
					}
				}
			}
		}
	}
	return out
}

// exampleArgs reads the tcpcraft command line of an example: the words
// after "tcpcraft", up to the first shell operator, with quotes removed.
func exampleArgs(line string) ([]string, bool) {
	i := strings.Index(line, "tcpcraft ")
	if i < 0 || (i > 0 && !strings.ContainsAny(line[i-1:i], " (")) {
		return nil, false
	}
	var args []string
	var cur strings.Builder
	inWord, quote := false, byte(0)
	s := line[i+len("tcpcraft "):]
	for j := 0; j < len(s); j++ {
		ch := s[j]
		switch {
		case quote != 0 && ch == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(ch)
		case ch == '\'' || ch == '"':
			quote, inWord = ch, true
		case ch == ' ':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.IndexByte("|<>&;)", ch) >= 0:
			if inWord {
				args = append(args, cur.String())
			}
			return args, true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, true
}

// TestExamples: the commands that do the work have several examples in
// their help, every other command at least one, and every example's
// command line is one tcpcraft accepts (its actions replaced, so nothing
// runs).
func TestExamples(t *testing.T) {
	app := NewApp()
	for name, c := range leafCommands(app) {
		want := 1
		switch name {
		case "connect", "listen", "send", "probe", "decode", "draw":
			want = 4
		case "help", "probe-syscalls":
			want = 0
		}
		if n := len(examplesOf(c)); n < want {
			t.Errorf("%s: %d examples, want at least %d", name, n, want)
		}
	}
	var all []example
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			all = append(all, examplesOf(c)...)
			walk(c.Commands)
		}
	}
	walk(app.Commands)
	runs := runCompletionCommand(t) // completion's examples are added at run time
	all = append(all, runs...)
	checked := 0
	for _, ex := range all {
		args, ok := exampleArgs(ex.Cmd)
		if !ok {
			continue
		}
		dry := NewApp()
		var stub func([]*cli.Command)
		stub = func(cmds []*cli.Command) {
			for _, c := range cmds {
				if c.Action != nil && len(c.Commands) == 0 {
					c.Action = func(context.Context, *cli.Command) error { return nil }
				}
				stub(c.Commands)
			}
		}
		stub(dry.Commands)
		var out, errOut bytes.Buffer
		dry.Writer, dry.ErrWriter = &out, &errOut
		if code := Run(context.Background(), dry, append([]string{"tcpcraft"}, args...)); code != 0 {
			t.Errorf("example %q: tcpcraft %q exits %d: %s", ex.Cmd, args, code, errOut.String())
		}
		checked++
	}
	if checked < 30 {
		t.Errorf("only %d examples checked", checked)
	}
}

// runCompletionCommand returns the examples of the completion command,
// which urfave/cli adds when the app runs.
func runCompletionCommand(t *testing.T) []example {
	t.Helper()
	app := NewApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	if code := Run(context.Background(), app, []string{"tcpcraft", "completion", "--help"}); code != 0 {
		t.Fatalf("completion --help: exit %d: %s", code, out.String())
	}
	c := app.Command("completion")
	if c == nil {
		t.Fatal("no completion command")
	}
	return examplesOf(c)
}

// TestCompletion: tcpcraft completion prints a script for bash, zsh and
// fish; no shell, or another, is a usage error. The bash script, loaded in
// bash, completes commands and options by asking tcpcraft.
func TestCompletion(t *testing.T) {
	for shell, marks := range map[string][]string{
		"bash": {"complete -o bashdefault -o default -F __tcpcraft_bash_autocomplete tcpcraft"},
		"zsh":  {"#compdef tcpcraft", "compdef _tcpcraft tcpcraft"},
		"fish": {"complete -c tcpcraft -f -a '(__tcpcraft_perform_completion)'"},
	} {
		r := runApp(t, context.Background(), "completion", shell)
		if r.code != 0 {
			t.Errorf("completion %s: exit %d: %s", shell, r.code, r.stderr)
		}
		for _, m := range marks {
			if !strings.Contains(r.stdout, m) {
				t.Errorf("completion %s: the script lacks %q", shell, m)
			}
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "pwsh"}, {"completion", "tcsh"}} {
		if r := runApp(t, context.Background(), args...); r.code != codeUsage || !strings.Contains(r.stderr, "commands: bash, zsh, fish") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	r := runApp(t, context.Background(), "--help")
	if !strings.Contains(r.stdout, "completion  print a shell completion script for bash, zsh or fish") {
		t.Errorf("tcpcraft --help does not list completion:\n%s", r.stdout)
	}

	labtest.RequireTools(t, "bash")
	bash, _ := exec.LookPath("bash")
	bin := tcpcraftBinary(t)
	script := filepath.Join(t.TempDir(), "tcpcraft.bash")
	if err := os.WriteFile(script, []byte(runApp(t, context.Background(), "completion", "bash").stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) []string {
		t.Helper()
		// bash-completion's helpers may be missing: a minimal one
		// gives the script the current word.
		prog := `declare -F _get_comp_words_by_ref >/dev/null || _get_comp_words_by_ref() { cur="${COMP_WORDS[COMP_CWORD]}"; }
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
__tcpcraft_bash_autocomplete
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, append([]string{"-c", prog, "bash", script}, words...)...)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("tcpcraft", "con"); !slices.Equal(got, []string{"connect"}) {
		t.Errorf("tcpcraft con<TAB>: %q, want connect", got)
	}
	if got := complete("tcpcraft", "connect", "10.0.2.20:80", "--ti"); !slices.Equal(got, []string{"--time-wait", "--timeout"}) {
		t.Errorf("tcpcraft connect 10.0.2.20:80 --ti<TAB>: %q, want --time-wait --timeout", got)
	}
	if got := complete("tcpcraft", "lab", ""); !slices.Equal(got, []string{"up", "down", "status", "demo"}) {
		t.Errorf("tcpcraft lab <TAB>: %q", got)
	}
}

// TestManPage: tcpcraft man writes the manual from the command
// definitions; docs/tcpcraft.1 is that page (regenerate it with
// `go run . man > docs/tcpcraft.1`), and groff reads it without a warning.
func TestManPage(t *testing.T) {
	r := runApp(t, context.Background(), "man")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("tcpcraft man: exit %d, stderr %q", r.code, r.stderr)
	}
	page := r.stdout
	for _, want := range []string{".TH TCPCRAFT 1", ".SH NAME", ".SH SYNOPSIS", ".SH COMMANDS", `.SS "tcpcraft connect [options] HOST:PORT"`,
		`.SS "tcpcraft lab up [options]"`, `.SS "tcpcraft completion COMMAND [options]"`, ".SH EXIT STATUS", ".B 141\nstandard output closed"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Every visible command, option and example is in it.
	app := NewApp()
	for name, c := range leafCommands(app) {
		if c.Hidden {
			continue
		}
		if !strings.Contains(page, roffCode("tcpcraft "+name)) {
			t.Errorf("the page does not have %q", name)
		}
		for _, f := range visibleFlags(c) {
			if !strings.Contains(page, roffCode(flagName(f.Names()[0]))) {
				t.Errorf("%s: the page does not have %s", name, flagName(f.Names()[0]))
			}
		}
		for _, ex := range examplesOf(c) {
			if !strings.Contains(page, roffCode(ex.Cmd)) {
				t.Errorf("%s: the page does not have the example %q", name, ex.Cmd)
			}
		}
	}
	checked, err := os.ReadFile("../docs/tcpcraft.1")
	if err != nil || string(checked) != page {
		t.Errorf("docs/tcpcraft.1 is not what tcpcraft man prints (%v): regenerate it with `go run . man > docs/tcpcraft.1`", err)
	}
	labtest.RequireTools(t, "groff")
	groff, _ := exec.LookPath("groff")
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-k")
	cmd.Stdin = strings.NewReader(page)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil || errOut.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errOut.String())
	}
	text := regexp.MustCompile(".\b").ReplaceAllString(out.String(), "") // overstrikes
	for _, want := range []string{"tcpcraft connect [options] HOST:PORT", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | tcpcraft connect 10.0.2.20:80", "--timeout DURATION, -w DURATION"} {
		if !strings.Contains(text, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
}

// TestVersion: --version prints the module version of a release build,
// else the commit, its time and whether the tree had changes.
func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		info *debug.BuildInfo
		want string
	}{
		{nil, "devel"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-06T10:00:00Z"}, {Key: "vcs.modified", Value: "false"}}},
			"devel 0123456789ab 2026-12-06T10:00:00Z"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-06T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"devel 0123456789ab 2026-12-06T10:00:00Z (modified)"},
	} {
		if got := versionOf(tc.info); got != tc.want {
			t.Errorf("versionOf(%+v) = %q, want %q", tc.info, got, tc.want)
		}
	}
	r := runApp(t, context.Background(), "--version")
	if r.code != 0 || r.stdout != "tcpcraft version "+version()+"\n" {
		t.Errorf("--version: exit %d, %q", r.code, r.stdout)
	}

	// A binary built from a clone of this checkout's commit names it. (A
	// clone: the go command stamps no commit in a git worktree, whose
	// .git is a file.) Since Go 1.24 the go command makes the commit a
	// pseudo-version, v0.0.0-TIME-COMMIT.
	labtest.RequireTools(t, "git")
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		labtest.Need(t, "a git checkout: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("git", "clone", "--quiet", "..", clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "tcpcraft")
	build := exec.Command(goCommand(t), "build", "-buildvcs=true", "-o", bin, ".")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "tcpcraft version ") || !strings.Contains(string(out), string(head[:12])) {
		t.Errorf("--version of a build of commit %.12s: %q", head, out)
	}
}

// goCommand finds the go command.
func goCommand(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
