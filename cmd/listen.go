package cmd

import "github.com/urfave/cli/v3"

// listenCommand is "tcpcraft listen [ADDR]:PORT": a passive open from
// userspace that accepts kernel clients.
func listenCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:      "listen",
		Usage:     "accept TCP connections from kernel clients (curl, nc) in userspace, showing every segment",
		ArgsUsage: "[ADDR]:PORT",
		Description: "listen answers SYNs for PORT itself: on ADDR only when it is given, else on every address\n" +
			"of every interface of this network namespace, IPv4 and IPv6 alike (as a kernel socket on [::]\n" +
			"does; -4 or -6, 0.0.0.0:PORT or [::]:PORT keep to one family). It serves one connection, piping it to\n" +
			"standard input and output (like nc -l), or with -k many at once (--echo, --exec, or their\n" +
			"data to standard output). Every segment and state change is shown on standard error; with\n" +
			"--json as one JSON object per line there, the final error included.\n\n" +
			"A kernel socket already listening on the port would lose its segments to tcpcraft:\n" +
			"listen refuses, unless --force.\n\n" + faultHelp,
		Metadata: map[string]any{jsonStreamKey: "stderr"},
		Flags:    listenFlags(),
		Action:   runListen,
	},
		example{"accept one connection on port 8080, like nc -l 8080", "tcpcraft listen :8080"},
		example{"an echo server for many clients until Ctrl-C", "tcpcraft listen :7 -k --echo"},
		example{"serve a file to each client (ncat --sh-exec)", "tcpcraft listen 10.0.2.20:8080 -k -e 'cat index.html'"},
		example{"IPv6 only, on one address", "tcpcraft listen [fd00:2::20]:8080 -k --echo"},
		example{"many clients, quietly, at most 100 at once, with their figures", "tcpcraft listen :8080 -k -q --echo --max-conns 100 --stats conns.json"},
		example{"draw the connection as a ladder", "tcpcraft listen :8080 --ladder"},
		example{"shut our window for 2 s after 64 KiB of an upload: watch the client probe it", "tcpcraft listen :8080 --fault zero-window:after=64k,for=2s > /dev/null"},
	)
}
