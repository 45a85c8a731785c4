package cmd

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tcpcraft/tcpcraft/draw"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// drawCommand is "tcpcraft draw FILE.pcap": pictures of a connection in a
// capture.
func drawCommand() *cli.Command {
	return &cli.Command{
		Name:      "draw",
		Usage:     "draw a connection of a pcap/pcapng capture: ladder diagram, time-sequence graph or state diagram (SVG or PNG)",
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
            advertised window's right edge (yellow), SACK blocks (purple)
  --states  the RFC 9293 state diagram with the paths both ends took

The output is SVG, or PNG (rendered in Go) when -o ends in .png, or the
terminal ladder as text when -o ends in .txt (--format overrides). Without
-o the SVG (or text) goes to standard output. --conn picks the connection:
its number in "tcpcraft decode --conns FILE", or ADDR:PORT[-ADDR:PORT];
the default is the first connection whose handshake was captured.

Example: tcpcraft draw session.pcap --tsg -o tsg.svg`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write the drawing to `FILE` (.svg, .png, .txt; \"-\": standard output)"},
			&cli.BoolFlag{Name: "ladder", Usage: "draw a ladder (sequence) diagram (the default)"},
			&cli.BoolFlag{Name: "tsg", Usage: "draw a time-sequence graph"},
			&cli.BoolFlag{Name: "states", Usage: "draw the RFC 9293 state diagram with both ends' paths"},
			&cli.StringFlag{Name: "conn", Usage: "the connection: `N` (see decode --conns) or ADDR:PORT[-ADDR:PORT]"},
			&cli.IntFlag{Name: "count", Aliases: []string{"n"}, Value: 50, Usage: "ladder: draw the first `N` segments (0: all)"},
			&cli.StringFlag{Name: "side", Value: "auto", Usage: "tsg: whose data to plot: client, server, or auto (the end that sent more)"},
			&cli.StringFlag{Name: "format", Usage: "svg, png or txt (default: from the -o extension, else svg)"},
			&cli.Float64Flag{Name: "scale", Value: 2, Usage: "png: pixels per SVG unit"},
			&cli.IntFlag{Name: "width", Value: 100, Usage: "txt: ladder width in columns"},
			&cli.BoolFlag{Name: "unicode", Usage: "txt: draw with Unicode box characters instead of ASCII"},
			&cli.BoolFlag{Name: "absolute", Aliases: []string{"S"}, Usage: "label segments with absolute sequence numbers"},
		},
		Action: runDraw,
	}
}

// runDraw is the action of "tcpcraft draw".
func runDraw(c *cli.Context) error {
	for _, a := range c.Args().Slice() {
		if a == "-h" || a == "--help" || a == "-help" {
			return cli.ShowCommandHelp(c, c.Command.Name)
		}
	}
	args, err := interspersedFlags(c)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want exactly one capture file, got %d arguments", len(args))
	}
	kinds := 0
	for _, k := range []string{"ladder", "tsg", "states"} {
		if c.Bool(k) {
			kinds++
		}
	}
	if kinds > 1 {
		return usagef("give one of --ladder, --tsg, --states")
	}
	out := c.String("output")
	format := strings.ToLower(c.String("format"))
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
	switch format {
	case "svg", "png":
	case "txt", "text":
		format = "txt"
		if c.Bool("tsg") || c.Bool("states") {
			return usagef("the text format draws ladders only")
		}
	default:
		return usagef("--format %q: want svg, png or txt", format)
	}
	if c.Int("count") < 0 {
		return usagef("--count %d: want 0 (all) or more", c.Int("count"))
	}
	if s := c.Float64("scale"); s <= 0 || s > 8 {
		return usagef("--scale %v: want above 0, at most 8", s)
	}
	if w := c.Int("width"); w < 64 || w > 1000 {
		return usagef("--width %d: want 64 to 1000 columns", w)
	}
	side := c.String("side")
	if side != "auto" && side != "client" && side != "server" {
		return usagef("--side %q: want client, server or auto", side)
	}

	conns, err := readFlows(c, args[0], false)
	if err != nil {
		return err
	}
	conn, err := flow.Find(conns, c.String("conn"))
	if err != nil {
		return exitFailure(err)
	}
	label := draw.LabelOptions{Absolute: c.Bool("absolute")}
	var canvas *draw.Canvas
	switch {
	case c.Bool("tsg"):
		sender := draw.BusierSide(conn)
		switch side {
		case "client":
			sender = flow.Client
		case "server":
			sender = flow.Server
		}
		canvas = draw.TimeSequence(conn, draw.TSGOptions{Sender: sender})
	case c.Bool("states"):
		canvas = draw.States(conn)
	default:
		opt := draw.LadderOptions{Count: c.Int("count"), Label: label}
		if format == "txt" {
			text := draw.LadderText(conn, opt, draw.TextLadder{Width: c.Int("width"), Unicode: c.Bool("unicode")})
			return writeOutput(c, out, func(w io.Writer) error {
				_, err := io.WriteString(w, text)
				return err
			})
		}
		canvas = draw.Ladder(conn, opt)
	}
	return writeOutput(c, out, func(w io.Writer) error {
		if format == "png" {
			return canvas.WritePNG(w, c.Float64("scale"))
		}
		return canvas.WriteSVG(w)
	})
}

// writeOutput runs write on the -o file ("-": standard output), creating
// it; a failed write leaves no half-written file behind.
func writeOutput(c *cli.Context, path string, write func(io.Writer) error) error {
	if path == "-" {
		bw := bufio.NewWriter(c.App.Writer)
		if err := write(bw); err != nil {
			return exitFailure(err)
		}
		if err := bw.Flush(); err != nil {
			return exitFailure(fmt.Errorf("writing: %w", err))
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

// interspersedFlags lets flags follow the file name ("draw x.pcap -o y.svg"
// as in the usage line): urfave/cli stops at the first argument, so flags
// found among the arguments are set here. It returns the other arguments.
func interspersedFlags(c *cli.Context) ([]string, error) {
	var rest []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		fl := findFlag(c.Command.Flags, name)
		if fl == nil {
			return nil, usagef("flag provided but not defined: %s", a)
		}
		canonical := fl.Names()[0]
		if _, isBool := fl.(*cli.BoolFlag); isBool {
			if !hasValue {
				value = "true"
			}
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, usagef("flag needs an argument: %s", a)
			}
			i++
			value = args[i]
		}
		if err := c.Set(canonical, value); err != nil {
			return nil, usagef("invalid value %q for flag %s: %v", value, a, err)
		}
	}
	return rest, nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}
