package cmd

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/probe"
)

// runCleanup is the action of "tcpcraft cleanup": it removes the RST-guard
// rules of tcpcraft runs whose process is gone (killed with SIGKILL, say),
// in the network namespace it runs in, and the namespaces of probe runs
// that were killed.
func runCleanup(ctx context.Context, c *cli.Command) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if err := capture.CheckPrivileges(); err != nil {
		return exitFailure(err)
	}
	w := stdout(c)
	rules, err := capture.CleanupStale(ctx)
	for _, r := range rules {
		fmt.Fprintf(w, "removed rule %s\n", r)
	}
	if err != nil {
		return exitFailure(err)
	}
	// Namespaces of `tcpcraft probe` runs that were killed (tcprobe-PID-*).
	namespaces, err := probe.SweepStale(ctx)
	for _, ns := range namespaces {
		fmt.Fprintf(w, "removed namespace %s\n", ns)
	}
	if err != nil {
		return exitFailure(err)
	}
	if len(rules) == 0 && len(namespaces) == 0 {
		fmt.Fprintln(w, "nothing stale: no tcpcraft rules or probe namespaces left by killed runs")
	}
	return nil
}
