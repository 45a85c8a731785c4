package cmd

import "github.com/urfave/cli/v3"

// cleanupCommand is "tcpcraft cleanup": remove RST guards that killed
// tcpcraft runs left behind.
func cleanupCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:      "cleanup",
		Usage:     "remove stale tcpcraft firewall rules (RST guards) left by runs that were killed, in every network namespace",
		ArgsUsage: " ",
		Description: "A connect or listen run guards its port with a socket that holds it, which the kernel\n" +
			"closes with the process however it ends: nothing to clean up. Where a kernel socket has\n" +
			"the port, and for send's block of ports, a run guards them with an nf_tables table of its own\n" +
			"(inet tcpcraft-PID-..., see `nft list ruleset`) and removes it on exit. The table belongs to\n" +
			"the run's netlink socket, so the kernel deletes it even when the run is killed with SIGKILL;\n" +
			"what can be left is an unowned table (kernels before 5.12) or an iptables INPUT rule tagged\n" +
			"\"tcpcraft pid=...\" (older tcpcraft versions). cleanup removes those whose process is gone\n" +
			"(or whose pid now names another process), in its own network namespace and in every named\n" +
			"one (`ip netns list`), says which namespaces it looked at, and removes the namespaces of\n" +
			"`tcpcraft probe` runs that were killed. With --netns it looks only at the namespaces named.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "netns", Usage: "look only at the named network namespace `NS` (a name ip netns list shows; repeatable); probe namespaces are then left alone"},
		},
		Action: runCleanup,
	},
		example{"after a tcpcraft run was killed with SIGKILL", "sudo tcpcraft cleanup"},
		example{"in a lab namespace", "sudo ip netns exec tcpcraft-client tcpcraft cleanup"},
	)
}
