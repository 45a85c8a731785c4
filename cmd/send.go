package cmd

import "github.com/urfave/cli/v2"

// sendCommand is "tcpcraft send [flags] HOST:PORT": one hand-made segment,
// hping3-style, and the replies it draws.
func sendCommand() *cli.Command {
	return &cli.Command{
		Name:      "send",
		Usage:     "craft one TCP segment (flags, sequence numbers, options, payload), send it and show the replies, hping3-style",
		ArgsUsage: "HOST:PORT",
		Description: "send builds a single segment exactly as told — TCP flags, sequence and acknowledgement\n" +
			"numbers, window, options, payload — injects it and prints the segments that come back.\n\n" +
			"Example: tcpcraft send --flags S --seq 1000 --opt mss=1460 10.0.2.20:80",
		Flags:  sendFlags(),
		Action: runSend,
	}
}
