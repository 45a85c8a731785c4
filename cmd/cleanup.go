package cmd

import "github.com/urfave/cli/v2"

// cleanupCommand is "tcpcraft cleanup": remove RST-guard firewall rules
// that killed tcpcraft runs left behind.
func cleanupCommand() *cli.Command {
	return &cli.Command{
		Name:      "cleanup",
		Usage:     "remove stale tcpcraft firewall rules (RST guards) left by runs that were killed",
		ArgsUsage: " ",
		Description: "Every tcpcraft run that talks TCP installs a scoped INPUT rule tagged with its pid and\n" +
			"removes it on exit. A run killed with SIGKILL cannot; cleanup finds rules whose process\n" +
			"is gone and deletes them.",
		Action: runCleanup,
	}
}
