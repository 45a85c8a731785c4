package cmd

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v3"
)

// startupClockKey is the root command Metadata key of the *startupClock
// that Main makes when TCPCRAFT_STARTUP_TIMES=1.
const startupClockKey = "startup-clock"

// startupClock records when each stage of a connect's start-up ended, as
// wall-clock times, for TCPCRAFT_STARTUP_TIMES=1 (a hidden knob for
// performance work: BenchmarkPerfStartup knows when it forked tcpcraft
// and so tells where the time to the SYN went: the Go runtime and package
// initialisation before main, the CLI's parsing, the route lookup, the
// guard, the capture, the raw sockets, the stack's start).
type startupClock struct {
	names []string
	at    []time.Time
}

// startupClockOf returns the run's clock, nil (which records nothing)
// unless TCPCRAFT_STARTUP_TIMES=1.
func startupClockOf(c *cli.Command) *startupClock {
	sc, _ := c.Root().Metadata[startupClockKey].(*startupClock)
	return sc
}

func newStartupClock() *startupClock {
	if os.Getenv("TCPCRAFT_STARTUP_TIMES") != "1" {
		return nil
	}
	return &startupClock{}
}

// mark records that stage ended now.
func (sc *startupClock) mark(stage string) {
	if sc == nil {
		return
	}
	sc.names = append(sc.names, stage)
	sc.at = append(sc.at, time.Now())
}

// print writes one line: "tcpcraft: startup" and stage=unix-nanoseconds
// pairs, in order.
func (sc *startupClock) print(w io.Writer) {
	if sc == nil {
		return
	}
	line := []byte("tcpcraft: startup")
	for i, n := range sc.names {
		line = fmt.Appendf(line, " %s=%d", n, sc.at[i].UnixNano())
	}
	_, _ = w.Write(append(line, '\n'))
}
