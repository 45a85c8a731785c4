package cmd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/draw"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// drawCommand is "tcpcraft draw FILE.pcap": pictures of a connection in a
// capture.
func drawCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:      "draw",
		Usage:     "draw a connection of a pcap/pcapng capture: ladder diagram, time-sequence graph or state diagram (SVG, PNG or text)",
		ArgsUsage: "FILE.pcap|FILE.pcapng",
		Description: `draw reads a capture (from tcpcraft --pcap or any tcpdump/tshark capture:
Ethernet, raw IP or Linux cooked framing) and draws one TCP connection of it:

  --ladder  (default) the sequence diagram of its first --count segments:
            client on the left, server on the right, one arrow per segment
            with its flags, sequence range, ack and window, and the state
            each end enters (inferred from the segments) beside its line
  --tsg     the time-sequence graph of one direction (--side; default the
            one that sent more): data segments as vertical bars over time,
            retransmissions in red, the peer's ACK line (green), its
            advertised window's right edge (yellow; cut where it leaves the
            plot, marked with an arrow and its value), SACK blocks (purple)
  --states  the RFC 9293 state diagram with the paths both ends took

The output is SVG, or PNG (rendered in Go) when -o ends in .png, or the
ladder as text when -o ends in .txt (--format overrides). Without -o the
SVG (or text) goes to standard output. --conn picks the connection: its
number in "tcpcraft decode --conns FILE", or ADDR:PORT[-ADDR:PORT]; the
default is the first connection whose handshake was captured.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write the drawing to `FILE` (.svg, .png, .txt; \"-\": standard output)", TakesFile: true},
			&cli.BoolFlag{Name: "ladder", Usage: "draw a ladder (sequence) diagram (the default)"},
			&cli.BoolFlag{Name: "tsg", Usage: "draw a time-sequence graph"},
			&cli.BoolFlag{Name: "states", Usage: "draw the RFC 9293 state diagram with both ends' paths"},
			&cli.StringFlag{Name: "conn", Usage: "the connection: `N` (see decode --conns) or ADDR:PORT[-ADDR:PORT]"},
			&intFlag{Name: "count", Aliases: []string{"n"}, Value: 50, Usage: "ladder: draw the first `N` segments; 0: all", Config: intRange{min: 0, max: 1 << 30, hint: "must be 0 or more"}},
			&choiceFlag{Name: "side", Value: "auto", Usage: "tsg: whose data to plot: client, server, or auto (the end that sent more)", Config: choices{values: []string{"auto", "client", "server"}}},
			&choiceFlag{Name: "format", Usage: "svg, png or txt", DefaultText: "from the -o extension, else svg", Config: choices{values: []string{"svg", "png", "txt"}, aliases: map[string]string{"text": "txt"}}},
			&cli.Float64Flag{Name: "scale", Value: 2, Usage: "png: pixels per SVG unit, above 0 and at most 8"},
			&intFlag{Name: "width", Value: 100, Usage: "txt: ladder width in columns", Config: intRange{min: 64, max: 1000}},
			&cli.BoolFlag{Name: "unicode", Usage: "txt: draw with Unicode box characters instead of ASCII"},
			&cli.BoolFlag{Name: "absolute", Aliases: []string{"S"}, Usage: "label segments with absolute sequence numbers"},
		},
		Action: runDraw,
	},
		example{"the ladder of the first connection, as SVG", "tcpcraft draw session.pcap -o ladder.svg"},
		example{"the same in the terminal", "tcpcraft draw session.pcap --format txt | less"},
		example{"a time-sequence graph of the server's data, as PNG", "tcpcraft draw session.pcap --tsg --side server -o tsg.png"},
		example{"the state diagram with the paths both ends took", "tcpcraft draw session.pcap --states -o states.svg"},
		example{"connection 2, all its segments, absolute numbers", "tcpcraft draw session.pcap --conn 2 -n 0 -S -o c2.svg"},
	)
}

// runDraw is the action of "tcpcraft draw".
func runDraw(_ context.Context, c *cli.Command) error {
	args := c.Args().Slice()
	if len(args) != 1 {
		return usagef("want exactly one capture file, got %d arguments (%s)", len(args), quoteArgs(args))
	}
	kinds := 0
	for _, k := range []string{"ladder", "tsg", "states"} {
		if flagBool(c, k) {
			kinds++
		}
	}
	if kinds > 1 {
		return usagef("give one of --ladder, --tsg, --states")
	}
	out := flagString(c, "output")
	format := flagString(c, "format")
	if format == "" {
		switch strings.ToLower(filepath.Ext(out)) {
		case ".png":
			format = "png"
		case ".txt":
			format = "txt"
		default:
			format = "svg"
		}
	}
	if format == "txt" && (flagBool(c, "tsg") || flagBool(c, "states")) {
		return usagef("the text format draws ladders only")
	}
	if s := flagFloat64(c, "scale"); s <= 0 || s > 8 {
		return usagef("--scale %v: want above 0, at most 8", s)
	}
	side := flagString(c, "side")

	conns, err := readFlows(c, args[0], false)
	if err != nil {
		return err
	}
	conn, err := flow.Find(conns, flagString(c, "conn"))
	if err != nil {
		return exitFailure(err)
	}
	label := draw.LabelOptions{Absolute: flagBool(c, "absolute")}
	var canvas *draw.Canvas
	switch {
	case flagBool(c, "tsg"):
		sender := draw.BusierSide(conn)
		switch side {
		case "client":
			sender = flow.Client
		case "server":
			sender = flow.Server
		}
		canvas = draw.TimeSequence(conn, draw.TSGOptions{Sender: sender})
	case flagBool(c, "states"):
		canvas = draw.States(conn)
	default:
		opt := draw.LadderOptions{Count: flagInt(c, "count"), Label: label}
		if format == "txt" {
			text := draw.LadderText(conn, opt, draw.TextLadder{Width: flagInt(c, "width"), Unicode: flagBool(c, "unicode")})
			return writeOutput(c, out, func(w io.Writer) error {
				_, err := io.WriteString(w, text)
				return err
			})
		}
		canvas = draw.Ladder(conn, opt)
	}
	return writeOutput(c, out, func(w io.Writer) error {
		if format == "png" {
			return canvas.WritePNG(w, flagFloat64(c, "scale"))
		}
		return canvas.WriteSVG(w)
	})
}

// writeOutput runs write on the -o file ("-": standard output), creating
// it; a failed write leaves no half-written file behind.
func writeOutput(c *cli.Command, path string, write func(io.Writer) error) error {
	if path == "-" {
		bw := bufio.NewWriter(stdout(c))
		err := write(bw)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return exitFailure(fmt.Errorf("writing output: %w", err))
		}
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return exitFailure(err)
	}
	bw := bufio.NewWriter(f)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return exitFailure(fmt.Errorf("writing %s: %w", path, err))
	}
	return nil
}
