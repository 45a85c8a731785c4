package cmd

import "github.com/urfave/cli/v3"

// cleanupCommand is "tcpcraft cleanup": remove RST-guard firewall rules
// that killed tcpcraft runs left behind.
func cleanupCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:  "cleanup",
		Usage: "remove stale tcpcraft firewall rules (RST guards) and probe namespaces left by runs that were killed",
		Description: "Every tcpcraft run that talks TCP installs a scoped INPUT rule tagged with its pid and\n" +
			"removes it on exit. A run killed with SIGKILL cannot; cleanup finds the rules, in the\n" +
			"network namespace it runs in, whose process is gone and deletes them, and removes the\n" +
			"namespaces of tcpcraft probe runs that were killed. Rules of runs still alive stay.",
		Action: runCleanup,
	},
		example{"after a tcpcraft run was killed with SIGKILL", "sudo tcpcraft cleanup"},
		example{"in a lab namespace", "sudo ip netns exec tcpcraft-client tcpcraft cleanup"},
	)
}
