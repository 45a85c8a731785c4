package cmd

import "github.com/urfave/cli/v3"

// connectCommand is "tcpcraft connect HOST:PORT": an active open from
// userspace, then stdin to the peer and the peer to stdout, like `nc -N`.
func connectCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:      "connect",
		Usage:     "open a TCP connection from userspace and pipe stdin/stdout through it, like nc -N, showing every segment",
		ArgsUsage: "HOST:PORT",
		Description: "connect performs the three-way handshake itself (raw socket out, AF_PACKET in, and a guard\n" +
			"keeping the local kernel from answering with RST: a socket of its own that holds the port and\n" +
			"drops what it is given, or a scoped firewall rule where a kernel socket has the port), copies\n" +
			"standard input to the peer, the peer's data to standard output, and closes with FIN when standard\n" +
			"input ends (like nc -N). Every segment and state change is shown on standard error; with --json as\n" +
			"one JSON object per line there, the final error included ({\"type\":\"error\",...}).\n\n" +
			"HOST is an IPv4 address, an IPv6 address in brackets ([fd00:2::20]:80), or a name: its first\n" +
			"address (A or AAAA; -4 or -6 for one family, like nc and curl). A name that does not resolve\n" +
			"is a runtime failure (exit 1).\n\n" + faultHelp,
		Metadata: map[string]any{jsonStreamKey: "stderr"},
		Flags:    connectFlags(),
		Action:   runConnect,
	},
		example{"fetch a web page and watch every segment (nc -N 10.0.2.20 80)", `printf 'GET / HTTP/1.0\r\n\r\n' | tcpcraft connect 10.0.2.20:80`},
		example{"an interactive session; Ctrl-D sends FIN", "tcpcraft connect 10.0.2.20:7"},
		example{"the same over IPv6 (nc -6 fd00:2::20 80)", `printf 'GET / HTTP/1.0\r\n\r\n' | tcpcraft connect [fd00:2::20]:80`},
		example{"only the data, no trace; give up after 2 seconds (nc -w 2)", "tcpcraft connect 10.0.2.20:80 -q -w 2 < request.txt"},
		example{"draw the connection as a ladder while it runs", "echo hi | tcpcraft connect 10.0.2.20:7 --ladder"},
		example{"save the session for Wireshark and keep its figures", "tcpcraft connect 10.0.2.20:80 --pcap s.pcap --stats s.json < request.txt"},
		example{"a small window, no SACK, Reno congestion control", "tcpcraft connect 10.0.2.20:80 --window 8192 --wscale 0 --no-sack --cc reno < big.bin"},
		example{"lose our third data segment, then reset after 10 KiB: how does the server cope?", "tcpcraft connect 10.0.2.20:9000 --fault drop:seg=3 --fault rst:after=10k < big.bin"},
	)
}
