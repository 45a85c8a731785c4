package cmd

import "github.com/urfave/cli/v2"

// connectCommand is "tcpcraft connect HOST:PORT": an active open from
// userspace, then stdin to the peer and the peer to stdout, like `nc -N`.
func connectCommand() *cli.Command {
	return &cli.Command{
		Name:      "connect",
		Usage:     "open a TCP connection from userspace and pipe stdin/stdout through it, like nc -N, showing every segment",
		ArgsUsage: "HOST:PORT",
		Description: "connect performs the three-way handshake itself (raw socket out, AF_PACKET in, a scoped\n" +
			"firewall rule keeping the local kernel from answering with RST), copies standard input to\n" +
			"the peer, the peer's data to standard output, and closes with FIN when standard input ends\n" +
			"(like nc -N). Every segment and state change is shown on standard error.\n\n" +
			"Example: tcpcraft connect 10.0.2.20:80",
		Flags:  connectFlags(),
		Action: runConnect,
	}
}
