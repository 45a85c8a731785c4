package cmd

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/tcpcraft/tcpcraft/capture"
)

// runCleanup is the action of "tcpcraft cleanup": it removes the RST-guard
// rules of tcpcraft runs whose process is gone (killed with SIGKILL, say),
// in the network namespace it runs in.
func runCleanup(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if err := capture.CheckPrivileges(); err != nil {
		return exitFailure(err)
	}
	removed, err := capture.CleanupStale(c.Context)
	w := c.App.Writer
	for _, r := range removed {
		fmt.Fprintf(w, "removed %s\n", r)
	}
	if err != nil {
		return exitFailure(err)
	}
	if len(removed) == 0 {
		fmt.Fprintln(w, "no stale tcpcraft rules")
	}
	return nil
}
