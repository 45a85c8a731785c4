package cmd

import "github.com/urfave/cli/v2"

// listenCommand is "tcpcraft listen [ADDR]:PORT": a passive open from
// userspace that accepts kernel clients.
func listenCommand() *cli.Command {
	return &cli.Command{
		Name:      "listen",
		Usage:     "accept TCP connections from kernel clients (curl, nc) in userspace, showing every segment",
		ArgsUsage: "[ADDR]:PORT",
		Description: "listen answers SYNs on ADDR:PORT itself (ADDR defaults to the address of the interface\n" +
			"that owns the route), pipes the connection to standard input/output and shows every\n" +
			"segment and state change on standard error.\n\n" +
			"Example: tcpcraft listen :8080",
		Flags:  listenFlags(),
		Action: runListen,
	}
}
