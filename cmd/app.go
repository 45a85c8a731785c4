// Package cmd is tcpcraft's command-line interface: one file per command,
// built with urfave/cli/v2. It owns flags, output and exit codes, and turns
// them into calls on the packages that do the work (craft, capture, stack,
// lab, ...).
//
// What it must not do: hold protocol logic of its own, or write anywhere but
// the App's Writer and ErrWriter (so tests can capture every byte), or exit
// the process — Main returns the exit code and main.go exits.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Main runs tcpcraft with the process arguments (os.Args) and returns the
// exit code. The first SIGINT or SIGTERM cancels the commands' context so
// they can clean up (firewall rules, open connections); a second one kills
// the process the usual way.
func Main(args []string) int {
	// A closed output pipe (`tcpcraft connect ... | head -c 100`) must
	// not kill tcpcraft with SIGPIPE before it has reset its connections
	// and removed its firewall rule: ignored, a write to it fails with
	// EPIPE instead, which ends the session like any output error.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // restore default handling: the next signal terminates at once
	}()
	return Run(ctx, NewApp(), args)
}

// Run runs app with args (args[0] is the program name) and maps the outcome
// to an exit code: 0 success, 1 runtime failure, 2 usage error, 130 when ctx
// was cancelled (interrupted). Errors are printed on app.ErrWriter.
func Run(ctx context.Context, app *cli.App, args []string) int {
	err := app.RunContext(ctx, args)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Stopped by SIGINT/SIGTERM: say so rather than "context
		// canceled" (the cleanup has run by now).
		var p *prefixedError
		if errors.As(err, &p) {
			err = &prefixedError{name: p.name, err: errors.New("interrupted")}
		} else {
			err = errors.New("interrupted")
		}
	}
	if err != nil {
		fmt.Fprintln(app.ErrWriter, err)
		if code := exitCode(err); code == codeUsage && !errors.Is(err, errNotImplemented) {
			if hint := helpHint(err); hint != "" {
				fmt.Fprintln(app.ErrWriter, hint)
			}
		}
	}
	switch {
	case ctx.Err() != nil:
		return codeInterrupted
	case err == nil:
		return codeOK
	default:
		return exitCode(err)
	}
}

// NewApp builds the tcpcraft application with every command registered.
// Output goes to os.Stdout and os.Stderr; tests replace app.Writer and
// app.ErrWriter.
func NewApp() *cli.App {
	app := &cli.App{
		Name:     "tcpcraft",
		HelpName: "tcpcraft",
		Usage:    "speak TCP from userspace against real Linux kernel peers, showing every segment",
		Description: "tcpcraft builds IPv4/TCP segments by hand, injects them with a raw socket, captures the\n" +
			"replies with AF_PACKET and keeps the local kernel out of the way with a scoped firewall\n" +
			"rule, so it completes real handshakes, moves data and tears connections down against\n" +
			"live kernel peers. Most commands need root (raw sockets, firewall, namespaces).\n\n" +
			"Exit codes: 0 success, 1 runtime failure, 2 usage error, 130 interrupted.",
		Version:   version(),
		Reader:    os.Stdin,
		Writer:    os.Stdout,
		ErrWriter: os.Stderr,
		Commands: []*cli.Command{
			connectCommand(),
			listenCommand(),
			sendCommand(),
			probeCommand(),
			probeSyscallsCommand(),
			decodeCommand(),
			drawCommand(),
			cleanupCommand(),
			labCommand(),
		},
		// Errors are printed and mapped to exit codes by Run, never by
		// urfave/cli itself (which would call os.Exit).
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true, // replaced by helpCommand, which exits 2 on unknown topics
		// urfave/cli adds --help only when it adds its own help command.
		Flags: []cli.Flag{cli.HelpFlag},
	}
	app.Action = func(c *cli.Context) error { return prefixed(app.HelpName, unknownCommand(c)) }
	app.Commands = append(app.Commands, helpCommand())
	for _, c := range app.Commands {
		prepare(c)
		// App.Setup prefixes top-level names itself; deeper ones are set
		// here so that `tcpcraft help lab up` can show them before lab runs.
		for _, sub := range c.Subcommands {
			setHelpNames(sub, app.HelpName+" "+c.Name)
		}
	}
	app.OnUsageError = usageError
	return app
}

// prepare gives every command (recursively) the shared behaviour: flag
// errors as usage errors (exit 2), and errors from its action prefixed with
// the command's full name ("tcpcraft lab up: ...").
func prepare(c *cli.Command) {
	c.HideHelpCommand = true
	c.OnUsageError = usageError
	if len(c.Subcommands) > 0 && c.Action == nil {
		c.Action = unknownCommand
	}
	if action := c.Action; action != nil {
		c.Action = func(ctx *cli.Context) error {
			return prefixed(ctx.Command.HelpName, action(ctx))
		}
	}
	for _, sub := range c.Subcommands {
		prepare(sub)
	}
}

// setHelpNames sets the full name ("tcpcraft lab up") of c and its
// subcommands.
func setHelpNames(c *cli.Command, parent string) {
	c.HelpName = parent + " " + c.Name
	for _, sub := range c.Subcommands {
		setHelpNames(sub, c.HelpName)
	}
}

// usageError turns a flag-parsing error into an exit-2 error naming the
// command.
func usageError(c *cli.Context, err error, _ bool) error {
	return prefixed(c.Command.HelpName, exitUsage(err))
}

// unknownCommand is the action of the app and of every command that only
// groups subcommands: it runs when no (known) subcommand was named.
func unknownCommand(c *cli.Context) error {
	var names []string
	for _, sub := range c.Command.VisibleCommands() {
		names = append(names, sub.Name)
	}
	if c.Args().Present() {
		return exitUsage(fmt.Errorf("unknown command %q (commands: %s)", c.Args().First(), strings.Join(names, ", ")))
	}
	return exitUsage(fmt.Errorf("a command is required (commands: %s)", strings.Join(names, ", ")))
}

// helpCommand is "tcpcraft help [COMMAND [SUBCOMMAND]]".
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "show help for tcpcraft or one of its commands",
		ArgsUsage: "[COMMAND [SUBCOMMAND]]",
		Action: func(c *cli.Context) error {
			if !c.Args().Present() {
				return cli.ShowAppHelp(c)
			}
			commands := c.App.Commands
			for _, name := range c.Args().Slice() {
				var found *cli.Command
				for _, cand := range commands {
					if cand.HasName(name) {
						found = cand
					}
				}
				if found == nil {
					return usagef("no help for %q: no such command", strings.Join(c.Args().Slice(), " "))
				}
				commands = found.Subcommands
			}
			// The command exists: let it show its own help, as --help does.
			args := append([]string{c.App.Name}, c.Args().Slice()...)
			return c.App.RunContext(c.Context, append(args, "--help"))
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

// version is the module version the binary was built from, if known.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// stdout and stderr are where commands write; they are the App's writers so
// that tests see all output.
func stdout(c *cli.Context) io.Writer { return c.App.Writer }
func stderr(c *cli.Context) io.Writer { return c.App.ErrWriter }
