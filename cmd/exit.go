package cmd

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v3"
)

// Exit codes of tcpcraft (also in the README and the app's help).
const (
	codeOK          = 0   // success
	codeFailure     = 1   // runtime failure: the network, the peer or the system said no
	codeUsage       = 2   // usage error: unknown command or flag, bad or missing argument
	codeInterrupted = 130 // stopped by SIGINT/SIGTERM (128 + SIGINT, as shells report it)
	// codeBrokenPipe: standard output was a pipe whose reader went away
	// (`tcpcraft decode x.pcap | head -1`). Shells report a program that
	// SIGPIPE ended, as grep or tcpdump, with 128 + SIGPIPE; tcpcraft
	// ignores SIGPIPE to clean up first, then ends with the same status.
	codeBrokenPipe = 141
)

// exitCodes says what each exit code means, for the manual.
var exitCodes = []struct {
	code int
	what string
}{
	{codeOK, "success"},
	{codeFailure, "runtime failure: the network, the peer or the system said no (a refused or timed-out connection, no reply, a name that does not resolve, a file that cannot be read)"},
	{codeUsage, "usage error: an unknown command or option, a bad or missing argument or value; nothing on the system was changed"},
	{codeInterrupted, "interrupted by SIGINT or SIGTERM, after resetting open connections and removing its guards"},
	{codeBrokenPipe, "standard output closed by its reader (tcpcraft decode x.pcap | head -1), after the same clean-up; nothing is printed"},
}

// exitError carries the exit code an error should end the process with.
// It satisfies cli.ExitCoder.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// exitUsage marks err as a usage error (exit 2): the command line was wrong,
// and running it again unchanged cannot succeed.
func exitUsage(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: codeUsage, err: err}
}

// exitFailure marks err as a runtime failure (exit 1). Errors that carry no
// code are failures too; this makes the intent explicit.
func exitFailure(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: codeFailure, err: err}
}

// usagef is exitUsage(fmt.Errorf(format, args...)).
func usagef(format string, args ...any) error {
	return exitUsage(fmt.Errorf(format, args...))
}

// exitCode is the exit code for a non-nil error: its own (cli.ExitCoder,
// e.g. exitUsage, exitFailure or cli.Exit), else 1.
func exitCode(err error) int {
	var coder cli.ExitCoder
	if errors.As(err, &coder) && coder.ExitCode() != codeOK {
		return coder.ExitCode()
	}
	return codeFailure
}

// prefixedError puts the command's full name in front of an error message
// ("tcpcraft lab up: needs root ..."), keeping the wrapped error and its
// exit code. jsonOut is set when the command ran with --json: the error
// is then reported there as a JSON line.
type prefixedError struct {
	name    string
	err     error
	jsonOut io.Writer
}

func (e *prefixedError) Error() string { return e.name + ": " + e.err.Error() }
func (e *prefixedError) Unwrap() error { return e.err }

// prefixed names the command c in err's message, unless a command
// already did.
func prefixed(c *cli.Command, err error) error {
	if err == nil {
		return nil
	}
	var p *prefixedError
	if errors.As(err, &p) {
		return err // a nested command already named itself
	}
	return &prefixedError{name: c.FullName(), err: err, jsonOut: jsonStream(c)}
}

// noArgs rejects positional arguments for commands that take none.
func noArgs(c *cli.Command) error {
	if c.Args().Present() {
		return usagef("unexpected argument %q", c.Args().First())
	}
	return nil
}

// quoteArgs shows arguments as they were given: "a" "b c".
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, " ")
}
