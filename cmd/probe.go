package cmd

import "github.com/urfave/cli/v2"

// probeCommand is "tcpcraft probe SCRIPT...": packetdrill-style scripts of
// segments to send and segments to expect.
func probeCommand() *cli.Command {
	return &cli.Command{
		Name:      "probe",
		Usage:     "run packetdrill-style scripts (segments to send, segments to expect) against a kernel peer",
		ArgsUsage: "SCRIPT...",
		Description: "probe runs each script: lines inject segments or expect segments (with don't-care\n" +
			"fields) from the peer, with timing. A script passes when every expectation is met; the\n" +
			"exit code is 1 when any script fails.\n\n" +
			"Example: tcpcraft probe handshake.pkt",
		Action: notImplemented,
	}
}
