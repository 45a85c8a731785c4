package cmd

// tcpcraft decode --pkt: one connection of a capture as a packetdrill
// script (the engine is package replay).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/draw/flow"
	scriptreplay "github.com/tcpcraft/tcpcraft/replay"
)

// decodeScript is decode with --pkt.
func decodeScript(c *cli.Command, d *decodeSession) error {
	switch {
	case flagBool(c, "follow") || flagBool(c, "conns"):
		return cli.Exit("give --pkt, --follow or --conns, one of them", decodeUsage)
	case flagIsSet(c, "hex"):
		return cli.Exit("--pkt reads a capture file, not --hex", decodeUsage)
	case c.NArg() != 1:
		return cli.Exit("give one pcap/pcapng file", decodeUsage)
	case flagBool(c, "json") || flagBool(c, "absolute"):
		return cli.Exit("--json and --absolute do not go with --pkt (a script has its own notation)", decodeUsage)
	}
	side := flow.Server
	if flagString(c, "side") == "client" { // one of --side's choices
		side = flow.Client
	}
	path := c.Args().First()
	d.out = bufio.NewWriter(io.Discard)
	d.replay = &scriptreplay.Reader{}
	if err := d.decodeFile(path); err != nil {
		return err
	}
	conns := d.replay.Conns()
	if len(conns) == 0 {
		return cli.Exit(fmt.Sprintf("%s: no TCP connection", path), decodeFailure)
	}
	conn, err := flow.Find(conns, flagString(c, "conn"))
	if err != nil {
		return cli.Exit(err.Error(), decodeFailure)
	}
	s, err := d.replay.Script(conn, scriptreplay.Config{Side: side, Source: path})
	if err != nil {
		if errors.Is(err, scriptreplay.ErrNoHandshake) || errors.Is(err, scriptreplay.ErrIPv6) {
			return cli.Exit(fmt.Sprintf("%s: connection %d (%s): %v", path, conn.Index, conn, err), decodeFailure)
		}
		return cli.Exit(fmt.Sprintf("%s: connection %d: %v", path, conn.Index, err), decodeFailure)
	}
	if _, err := stdout(c).Write(s.Text); err != nil {
		return exitFailure(fmt.Errorf("writing output: %w", err))
	}
	left := ""
	if len(s.Left) > 0 {
		nums := make([]string, len(s.Left))
		for i, n := range s.Left {
			nums[i] = fmt.Sprintf("#%d", n)
		}
		left = fmt.Sprintf("; left out (never reached the %s): %s", side, strings.Join(nums, " "))
	}
	fmt.Fprintf(stderr(c), "tcpcraft: connection %d (%s), the kernel as the %s: %d packets to send, %d to expect, %d system calls%s\n",
		conn.Index, conn, side, s.Inbound, s.Outbound, s.Syscalls, left)
	return nil
}
