// Package cmd is tcpcraft's command-line interface: one file per command,
// built with urfave/cli/v3 (whose parser takes flags before and after the
// arguments). It owns flags, help, output and exit codes, and turns them
// into calls on the packages that do the work (craft, capture, stack, lab,
// probe, draw).
//
// What it must not do: hold protocol logic of its own, or write anywhere but
// the root command's Writer and ErrWriter (so tests can capture every byte),
// or exit the process — Main returns the exit code and main.go exits.
package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"
)

// Main runs tcpcraft with the process arguments (os.Args) and returns the
// exit code. The first SIGINT or SIGTERM cancels the commands' context so
// they can clean up (their guards, open connections); a second one kills
// the process the usual way.
func Main(args []string) int {
	// The handlers are set up on a goroutine, beside the parsing of the
	// command line, and every command's action waits for them before it
	// does anything (prepare): each signal handled is a round trip to the
	// runtime's signal-mask thread, which the first one starts, and
	// together they took 0.26 ms of a 3.3 ms run when they came first
	// (docs/PERFORMANCE.md, "Signals beside the parsing"). Until then a
	// signal ends the process the usual way, with nothing yet to undo.
	ctx, cancel := context.WithCancel(context.Background())
	signalsReady := make(chan struct{})
	go handleSignals(cancel, signalsReady)
	sc := newStartupClock()
	sc.mark("main") // the Go runtime and every package's init are done
	app := newAppFor(args)
	app.Metadata = map[string]any{releaseLaterKey: true, signalsReadyKey: signalsReady}
	if sc != nil {
		app.Metadata[startupClockKey] = sc
	}
	// Standard output is this process's own: connect may let its reader
	// go as soon as the stream has ended (endOutput).
	app.Writer = outputWriter{w: os.Stdout, ownStdout: true}
	return Run(ctx, app, args)
}

// Run runs app with args (args[0] is the program name) and maps the outcome
// to an exit code: 0 success, 1 runtime failure, 2 usage error, 130 when ctx
// was cancelled (interrupted), 141 when standard output was a pipe whose
// reader went away. Errors are printed on app.ErrWriter, or as one JSON
// line on the stream a --json command writes its JSON to.
func Run(ctx context.Context, app *cli.Command, args []string) int {
	if _, ok := app.Writer.(outputWriter); !ok {
		app.Writer = outputWriter{w: app.Writer}
	}
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	app.Metadata[argsKey] = args
	err := app.Run(ctx, familyShorthands(args))
	if err != nil && errors.As(err, new(*outputClosedError)) {
		// The reader of our output left (`tcpcraft decode x | head -1`):
		// its choice, not an error worth a message. The session, if
		// any, was closed on the way out.
		return codeBrokenPipe
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Stopped by SIGINT/SIGTERM: say so rather than "context
		// canceled" (the cleanup has run by now).
		var p *prefixedError
		if errors.As(err, &p) {
			err = &prefixedError{name: p.name, jsonOut: p.jsonOut, err: errors.New("interrupted")}
		} else {
			err = errors.New("interrupted")
		}
	}
	code := codeOK
	switch {
	case ctx.Err() != nil:
		code = codeInterrupted
	case err != nil:
		code = exitCode(err)
	}
	if err != nil {
		reportError(app.ErrWriter, err, code)
	}
	return code
}

// familyShorthands spells -4 and -6 of connect and listen (nc's and
// curl's names for --ipv4 and --ipv6) out in full: urfave/cli takes a
// word of a dash and a digit for a negative number, an argument, and
// would stop reading options there. Only the words after the command and
// before "--" are changed.
func familyShorthands(args []string) []string {
	cmdAt := -1
	for i := 1; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			cmdAt = i
			break
		}
	}
	if cmdAt < 0 || args[cmdAt] != "connect" && args[cmdAt] != "listen" {
		return args
	}
	out := slices.Clone(args)
	for i := cmdAt + 1; i < len(out); i++ {
		switch out[i] {
		case "--":
			return out
		case "-4":
			out[i] = "--ipv4"
		case "-6":
			out[i] = "--ipv6"
		}
	}
	return out
}

// reportError prints the error a run ended with: as text with a hint after
// a usage error, or, for a --json run, as one JSON object on its JSON
// stream, so that every line there is JSON.
func reportError(errOut io.Writer, err error, code int) {
	var p *prefixedError
	if errors.As(err, &p) && p.jsonOut != nil {
		b, jerr := json.Marshal(struct {
			Type    string `json:"type"`
			Command string `json:"command"`
			Error   string `json:"error"`
			Exit    int    `json:"exit"`
		}{"error", p.name, p.err.Error(), code})
		if jerr == nil {
			_, _ = p.jsonOut.Write(append(b, '\n'))
			return
		}
	}
	fmt.Fprintln(errOut, err)
	if code == codeUsage {
		fmt.Fprintln(errOut, helpHint(err))
	}
}

// NewApp builds the tcpcraft command with every subcommand registered.
// Output goes to os.Stdout and os.Stderr; tests replace Writer, ErrWriter
// and Reader. A Command holds the state of its one run: build a new one
// for every Run.
func NewApp() *cli.Command { return newApp(commandMakers()) }

// newApp makes the application with the commands of makers.
func newApp(makers []commandMaker) *cli.Command {
	app := &cli.Command{
		Name:  "tcpcraft",
		Usage: "speak TCP from userspace against real Linux kernel peers, showing every segment",
		Description: "tcpcraft builds TCP segments over IPv4 and IPv6 by hand, injects them with a raw socket, captures the\n" +
			"replies with AF_PACKET and keeps the local kernel out of the way with a scoped firewall\n" +
			"rule, so it completes real handshakes, moves data and tears connections down against\n" +
			"live kernel peers. Most commands need root (raw sockets, firewall, namespaces).\n\n" +
			"Options go before or after the arguments; -- ends the options. A DURATION is a number of\n" +
			"seconds (2, 0.5) or a number with a unit (2s, 100ms, 1m30s).\n\n" +
			"Exit codes: 0 success, 1 runtime failure, 2 usage error, 130 interrupted,\n" +
			"141 standard output closed by its reader (tcpcraft decode x.pcap | head -1).",
		Version:   version(),
		Reader:    os.Stdin,
		Writer:    os.Stdout,
		ErrWriter: os.Stderr,
		// Errors are printed and mapped to exit codes by Run, never by
		// urfave/cli itself (which would call os.Exit).
		ExitErrHandler:  func(context.Context, *cli.Command, error) {},
		HideHelpCommand: true, // replaced by helpCommand, which exits 2 on unknown topics
		// --opt sack=1-2,5-6 is one option: a comma does not split values.
		DisableSliceFlagSeparator: true,
		EnableShellCompletion:     true,
		ConfigureShellCompletionCommand: func(c *cli.Command) {
			configureCompletion(c)
			prepare(c)
		},
		CustomRootCommandHelpTemplate: rootHelpTemplate,
		Action:                        unknownCommand,
	}
	for _, m := range makers {
		app.Commands = append(app.Commands, m.make())
	}
	prepare(app)
	return app
}

// commandMaker makes one of tcpcraft's commands. names are the command's
// name and aliases, known without making it.
type commandMaker struct {
	names []string
	make  func() *cli.Command
	// whole: the command needs the whole tree (man writes every
	// command's page; help lists them).
	whole bool
}

// commandMakers lists tcpcraft's commands in the order help shows them.
func commandMakers() []commandMaker {
	return []commandMaker{
		{names: []string{"connect"}, make: connectCommand},
		{names: []string{"listen"}, make: listenCommand},
		{names: []string{"send"}, make: sendCommand},
		{names: []string{"probe"}, make: probeCommand},
		{names: []string{probeSyscallsName}, make: probeSyscallsCommand},
		{names: []string{"decode"}, make: decodeCommand},
		{names: []string{"draw"}, make: drawCommand},
		{names: []string{"cleanup"}, make: cleanupCommand},
		{names: []string{"lab"}, make: labCommand},
		{names: []string{"man"}, make: manCommand, whole: true},
		{names: []string{"help"}, make: helpCommand, whole: true},
	}
}

// newAppFor makes the application that runs args (args[0] the program
// name). When args[1] names a command that does not need the others, the
// tree holds that command alone: urfave/cli sets up every command and flag
// of the tree before it parses anything (setupCommandGraph), and the whole
// tree took 0.45 ms of a `connect` that takes 8 (docs/PERFORMANCE.md,
// "The command tree"). Help, errors and completion of that command are the
// same either way; anything else (no command, a root option, an unknown
// command, man, help, completion) gets the whole tree.
func newAppFor(args []string) *cli.Command {
	if len(args) > 1 {
		for _, m := range commandMakers() {
			if !m.whole && slices.Contains(m.names, args[1]) {
				return newApp([]commandMaker{m})
			}
		}
	}
	return NewApp()
}

// prepare gives a command and its subcommands (recursively) the shared
// behaviour: flag errors as usage errors (exit 2) in tcpcraft's words,
// errors from its action prefixed with the command's full name
// ("tcpcraft lab up: ..."), tcpcraft's help layout with the examples, and
// flags shown by flagHelp.
func prepare(c *cli.Command) {
	c.OnUsageError = usageError
	// urfave/cli reads this of the command that parses the flag, not of
	// the root: set on every command, so that a comma never splits a
	// value (--opt sack=1-2,5-6, --fault zero-window:after=64k,for=2s).
	c.DisableSliceFlagSeparator = true
	if len(c.Commands) > 0 && c.Action == nil {
		c.Action = unknownCommand
	}
	if action := c.Action; action != nil {
		c.Action = func(ctx context.Context, cmd *cli.Command) error {
			awaitSignalHandlers(cmd) // before anything changes (Main)
			return prefixed(cmd, action(ctx, cmd))
		}
	}
	if c.CustomHelpTemplate == "" {
		c.CustomHelpTemplate = commandHelpTemplate
		if len(c.Commands) > 0 {
			c.CustomHelpTemplate = groupHelpTemplate
			// urfave/cli shows a group's --help with its own layout,
			// which has no room for examples: they go in the
			// description, where both layouts show them.
			c.Description = withExampleText(c.Description, examplesOf(c))
		}
	}
	for _, f := range c.Flags {
		if s, ok := f.(interface{ SetStringer(cli.FlagStringFunc) }); ok {
			s.SetStringer(flagHelp)
		}
	}
	for _, sub := range c.Commands {
		prepare(sub)
	}
}

// The help layouts: urfave/cli's, with the examples after the description.
const (
	rootHelpTemplate = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{.FullName}} COMMAND [options] [arguments]

VERSION:
   {{.Version}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}

COMMANDS:{{template "visibleCommandTemplate" .}}

GLOBAL OPTIONS:{{template "visibleFlagTemplate" .}}

Run 'tcpcraft COMMAND --help' for a command's options and examples; 'tcpcraft man' prints the manual.
`
	commandHelpTemplate = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{template "usageTemplate" .}}{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}{{with index .Metadata "examples"}}

EXAMPLES:{{range .}}{{if .What}}

   # {{.What}}{{end}}
   {{.Cmd}}{{end}}{{end}}{{if .VisibleFlags}}

OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}
`
	groupHelpTemplate = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{.FullName}} COMMAND [options]{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}

COMMANDS:{{template "visibleCommandTemplate" .}}{{if .VisibleFlags}}

OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}
`
)

// example is one example of a command's help and manual page: what it
// does and the command line.
type example struct {
	What, Cmd string
}

// withExamples attaches examples to c, common tasks first.
func withExamples(c *cli.Command, ex ...example) *cli.Command {
	if c.Metadata == nil {
		c.Metadata = map[string]any{}
	}
	c.Metadata["examples"] = ex
	return c
}

// withExampleText is a group's description with its examples after it.
func withExampleText(description string, ex []example) string {
	if len(ex) == 0 {
		return description
	}
	var b strings.Builder
	b.WriteString(description)
	b.WriteString("\n\nExamples:")
	for _, e := range ex {
		if e.What != "" {
			b.WriteString("\n\n  # " + e.What)
		}
		b.WriteString("\n  " + e.Cmd)
	}
	return b.String()
}

// examplesOf returns the examples attached to c.
func examplesOf(c *cli.Command) []example {
	ex, _ := c.Metadata["examples"].([]example)
	return ex
}

// jsonStreamKey marks, in a command's Metadata, the stream its --json
// output goes to when it is not standard output ("stderr": the trace of
// connect and listen).
const jsonStreamKey = "json-stream"

// argsKey keeps, in the root command's Metadata, the arguments Run was
// given.
const argsKey = "args"

// handleSignals makes SIGPIPE harmless, then SIGINT and SIGTERM cancel the
// commands' context, and closes ready when both are in place. A closed
// output pipe (`tcpcraft connect ... | head -c 100`) must not kill tcpcraft
// with SIGPIPE before it has reset its connections and removed its guard:
// ignored, a write to it fails with EPIPE instead, which ends the run
// quietly with codeBrokenPipe. After the first SIGINT or SIGTERM the
// default handling is back: the next one terminates at once. (Never
// stopped on the way out: the process is exiting, and signal.Stop waits
// for the signal loop to be idle, thread hand-offs between a short run's
// end and its exit.)
func handleSignals(cancel context.CancelFunc, ready chan<- struct{}) {
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	close(ready)
	<-sigs
	cancel()
	signal.Stop(sigs)
}

// signalsReadyKey is the root command Metadata key of the channel Main's
// signal handling closes when its handlers are in place; absent when a
// test runs commands in its own process.
const signalsReadyKey = "signals-ready"

// awaitSignalHandlers returns once the process's signal handlers are in
// place (at once when there are none to wait for).
func awaitSignalHandlers(c *cli.Command) {
	if ready, ok := c.Root().Metadata[signalsReadyKey].(chan struct{}); ok {
		<-ready
	}
}

// releaseLaterKey is the root command Metadata key set (true) when the
// process is tcpcraft itself (Main), not a test running commands in its
// own process: only then may a session leave the release of its sockets
// to a helper process that lives until the process exits (package release).
const releaseLaterKey = "release-later"

// jsonStream is where c writes JSON when --json is given, or nil when it
// was not (or c has no --json). A command line whose parsing stopped at an
// error before --json counts as --json when --json is among its options.
func jsonStream(c *cli.Command) io.Writer {
	if !slices.ContainsFunc(c.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), "json") }) {
		return nil
	}
	if !flagBool(c, "json") {
		args, _ := c.Root().Metadata[argsKey].([]string)
		if i := slices.Index(args, "--"); i >= 0 {
			args = args[:i]
		}
		if !slices.Contains(args, "--json") {
			return nil
		}
	}
	if c.Metadata[jsonStreamKey] == "stderr" {
		return stderr(c)
	}
	return stdout(c)
}

// usageError turns a flag-parsing error into an exit-2 error naming the
// command.
func usageError(_ context.Context, c *cli.Command, err error, _ bool) error {
	// urfave/cli's flag errors, to put them in tcpcraft's words: "--ttl
	// 0: must be 1 to 255", "unknown flag --bogus". Compiled here, not at
	// package initialisation: every run paid for them, and only a mistyped
	// command line uses them (docs/PERFORMANCE.md, "Start-up").
	v3InvalidValue := regexp.MustCompile(`^invalid value "(.*)" for flag -(\S+): (.*)$`)
	v3Undefined := regexp.MustCompile(`^flag provided but not defined: -(.*)$`)
	v3NeedsValue := regexp.MustCompile(`^flag needs an argument: (-*)(.*)$`)
	msg := err.Error()
	switch {
	case v3InvalidValue.MatchString(msg):
		m := v3InvalidValue.FindStringSubmatch(msg)
		value := m[1]
		if value == "" || strings.ContainsAny(value, " \t") {
			value = fmt.Sprintf("%q", value)
		}
		err = fmt.Errorf("%s %s: %s", flagName(m[2]), value, m[3])
	case v3Undefined.MatchString(msg):
		err = fmt.Errorf("unknown flag %s", flagName(v3Undefined.FindStringSubmatch(msg)[1]))
	case v3NeedsValue.MatchString(msg):
		err = fmt.Errorf("%s needs a value", flagName(v3NeedsValue.FindStringSubmatch(msg)[2]))
	}
	return prefixed(c, exitUsage(err))
}

// unknownCommand is the action of the app and of every command that only
// groups subcommands: it runs when no (known) subcommand was named.
func unknownCommand(_ context.Context, c *cli.Command) error {
	var names []string
	for _, sub := range c.VisibleCommands() {
		names = append(names, sub.Name)
	}
	if c.Args().Present() {
		return usagef("unknown command %q (commands: %s)", c.Args().First(), strings.Join(names, ", "))
	}
	return usagef("a command is required (commands: %s)", strings.Join(names, ", "))
}

// helpCommand is "tcpcraft help [COMMAND [SUBCOMMAND]]".
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "show help for tcpcraft or one of its commands",
		ArgsUsage: "[COMMAND [SUBCOMMAND]]",
		Action: func(ctx context.Context, c *cli.Command) error {
			root := c.Root()
			if !c.Args().Present() {
				return cli.ShowRootCommandHelp(root)
			}
			parent := root
			var found *cli.Command
			for _, name := range c.Args().Slice() {
				if found != nil {
					parent = found
				}
				if found = parent.Command(name); found == nil {
					return usagef("no help for %q: no such command", strings.Join(c.Args().Slice(), " "))
				}
			}
			return cli.ShowCommandHelp(ctx, parent, found.Name)
		},
	}
}

// helpHint suggests where to read the usage after a usage error.
func helpHint(err error) string {
	var p *prefixedError
	if errors.As(err, &p) {
		return fmt.Sprintf("Run '%s --help' for usage.", p.name)
	}
	return "Run 'tcpcraft --help' for usage."
}

// version is what --version prints: the module version when the binary
// was built from a tagged module (go install ...@v1.2.3), else the commit
// it was built from with its date and whether the tree had changes, else
// "devel".
func version() string {
	info, _ := debug.ReadBuildInfo()
	return versionOf(info)
}

// versionOf reads the version out of build information.
func versionOf(info *debug.BuildInfo) string {
	if info == nil {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "devel " + rev
	if at != "" {
		v += " " + at
	}
	if modified {
		v += " (modified)"
	}
	return v
}

// stdout, stderr and stdin are the root command's streams: the ones tests
// replace.
func stdout(c *cli.Command) io.Writer { return c.Root().Writer }
func stderr(c *cli.Command) io.Writer { return c.Root().ErrWriter }
func stdin(c *cli.Command) io.Reader  { return c.Root().Reader }

// outputWriter is standard output as commands see it: a write that fails
// because the reader of a pipe went away (EPIPE) returns an
// outputClosedError, which ends the run quietly.
type outputWriter struct {
	w io.Writer
	// ownStdout: w is the process's standard output (file descriptor 1),
	// which endOutput may release.
	ownStdout bool
}

// endOutput lets the reader of standard output see its end while the
// process goes on (connect in TIME-WAIT: `tcpcraft connect ... | next`
// need not wait for it): /dev/null takes the place of file descriptor 1,
// so the pipe or file is released and nothing opened later can take that
// number. Other writers (tests' buffers) are left alone.
func (o outputWriter) endOutput() error {
	if !o.ownStdout {
		return nil
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("releasing standard output: %w", err)
	}
	defer null.Close()
	if err := unix.Dup3(int(null.Fd()), 1, 0); err != nil {
		return fmt.Errorf("releasing standard output: %w", err)
	}
	return nil
}

func (o outputWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil && errors.Is(err, syscall.EPIPE) {
		err = &outputClosedError{err}
	}
	return n, err
}

// outputClosedError is a write to standard output whose reader has gone.
type outputClosedError struct{ err error }

func (e *outputClosedError) Error() string { return "standard output closed: " + e.err.Error() }
func (e *outputClosedError) Unwrap() error { return e.err }
