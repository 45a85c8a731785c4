package cmd

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/probe"
)

// runCleanup is the action of "tcpcraft cleanup": it removes the RST
// guards of tcpcraft runs whose process is gone (killed with SIGKILL, say),
// in its own network namespace and every named one (or those of --netns),
// and the namespaces of probe runs that were killed.
func runCleanup(ctx context.Context, c *cli.Command) error {
	if err := noArgs(c); err != nil {
		return err
	}
	only := flagStringSlice(c, "netns")
	for _, ns := range only {
		if ns == "" || strings.ContainsAny(ns, "/\x00") || ns == "." || ns == ".." {
			return usagef("--netns %q: not a network namespace name", ns)
		}
	}
	if err := capture.CheckPrivileges(); err != nil {
		return exitFailure(err)
	}
	w := stdout(c)
	reports, sweepErr := guard.Firewall{}.Sweep(ctx, only)
	var looked []string
	removed := 0
	for _, r := range reports {
		name := r.Namespace
		if name == "" {
			name = "this namespace"
		}
		looked = append(looked, name)
		for _, item := range r.Removed {
			fmt.Fprintf(w, "removed in %s: %s\n", name, item)
			removed++
		}
	}
	fmt.Fprintf(w, "looked at network namespaces: %s\n", strings.Join(looked, ", "))
	if sweepErr != nil {
		return exitFailure(sweepErr)
	}
	var namespaces []string
	if len(only) == 0 {
		// Namespaces of `tcpcraft probe` runs that were killed (tcprobe-PID-*).
		var err error
		namespaces, err = probe.SweepStale(ctx)
		for _, ns := range namespaces {
			fmt.Fprintf(w, "removed namespace %s\n", ns)
		}
		if err != nil {
			return exitFailure(err)
		}
	}
	if removed == 0 && len(namespaces) == 0 {
		fmt.Fprintln(w, "nothing stale: no tcpcraft guards or probe namespaces left by killed runs")
	}
	return nil
}
