package cmd

import "github.com/urfave/cli/v3"

// sendCommand is "tcpcraft send [flags] HOST:PORT": one hand-made segment,
// hping3-style, and the replies it draws.
func sendCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:      "send",
		Usage:     "craft TCP segments (flags, sequence numbers, options, payload), send them and show the replies, hping3-style",
		ArgsUsage: "HOST:PORT",
		Description: "send builds a segment exactly as told — TCP flags, sequence and acknowledgement numbers,\n" +
			"window, options, payload — injects it and prints the segments that come back on standard\n" +
			"output, with their round-trip time. With -c it sends several and ends with ping's\n" +
			"statistics (sent, answered, loss, rtt min/avg/median/max). A SYN-ACK drawn by a SYN is\n" +
			"answered with RST, so the peer is not left half-open. What was sent is shown on standard\n" +
			"error. The run fails (exit 1) when nothing answered.\n\n" +
			"With --json, standard output has one JSON object per reply (\"type\":\"reply\"), per\n" +
			"unanswered segment (\"timeout\"), the statistics (\"summary\") and the final error (\"error\").",
		Flags:  sendFlags(),
		Action: runSend,
	},
		example{"is the port open? a SYN, like hping3 -S -p 80 -c 1", "tcpcraft send 10.0.2.20:80"},
		example{"five SYNs 0.2 s apart, with ping's statistics (hping3 -S -c 5 -i u200000)", "tcpcraft send 10.0.2.20:80 -c 5 --interval 0.2"},
		example{"a SYN with Linux's options and a chosen sequence number", "tcpcraft send 10.0.2.20:80 --seq 1000 --opt linux"},
		example{"an out-of-the-blue ACK: a closed port answers RST (RFC 9293 §3.10.7.1)", "tcpcraft send 10.0.2.20:81 --flags A --ack 12345"},
		example{"a FIN/PSH/URG (\"Xmas\") probe with a payload, replies as JSON", "tcpcraft send 10.0.2.20:80 --flags FPU --payload hello --json"},
		example{"only the statistics, and a pcap of everything", "tcpcraft send 10.0.2.20:80 -c 20 --interval 0.05 -q --pcap probe.pcap"},
	)
}
