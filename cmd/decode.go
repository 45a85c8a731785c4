package cmd

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/pcapfile"
	scriptreplay "github.com/tcpcraft/tcpcraft/replay"
)

// Exit codes of tcpcraft decode (the app's convention: 1 runtime failure,
// 2 usage error).
const (
	decodeFailure = 1 // nothing could be decoded
	decodeUsage   = 2 // bad command line or --hex input
)

// decodeCommand returns the "decode" command: print the TCP segments of a
// pcap/pcapng file or of a hex dump, one line each in tcpdump's style or one
// JSON object per line.
func decodeCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:      "decode",
		Usage:     "print the TCP segments of a pcap/pcapng file or of a hex dump",
		ArgsUsage: "FILE.pcap|FILE.pcapng",
		Description: `Each TCP segment is printed on one line as tcpdump -nn prints it,
prefixed with its capture time for files. Sequence numbers are relative to
each side's initial sequence number as in tcpdump (--absolute for raw ones).
Packets that cannot be decoded (not TCP, malformed options, truncated) are
reported on standard error as "packet N: reason" and decoding goes on.

Checksums: a wrong one is noted at the end of the line ("[bad tcp cksum
0xA -> 0xB]", JSON "status":"bad"). A TCP checksum that holds only the sum
of the pseudo-header is one a sender with checksum offload left for the
network card to finish, as Linux does on veth and loopback, where no card
does: "[tcp cksum partial (offloaded)]", JSON "status":"partial".

Exit status: 0 when at least one packet was decoded, 1 when none could be
(not a capture file, a directory, empty, every packet bad), 2 for usage
errors.

--conns prints a table of the capture's TCP connections instead: packets,
bytes each way (each stream byte once), retransmissions, duration and each
end's RFC 9293 state path as inferred from the segments (--json: one
object per connection). --follow prints each connection's reassembled byte
streams, like Wireshark's Follow TCP Stream: in sequence order,
retransmissions and overlaps dropped; each chunk is a marker line
(">>> client ADDR > server, N bytes at offset O", "<<<" for the server's)
followed by exactly those N bytes and a newline. --side client|server
prints only that end's bytes, raw. --conn picks one connection.

--pkt writes a packetdrill script that replays one connection (--conn;
by default the first with a handshake) against a fresh kernel that plays
--side's role (server by default): the other end's segments become "<"
lines that tcpcraft probe sends, the kernel's end's segments ">" lines it
must send back, and the system calls that made them are inferred (socket,
bind, listen, accept or connect; a write per burst of data, a read per
piece received, close or shutdown at its FIN). Segments lost between the
capture point and the kernel's end are left out as comments; the kernel's
retransmissions stay, as expectations. A summary goes to standard error.

--hex takes one packet as hex digits; spaces, colons, newlines and a 0x
prefix are ignored. "--hex -" reads the hex from standard input. The
framing is guessed (an Ethernet header announcing IP, else a bare IP
packet) unless --link says eth, ip, sll or sll2.

With --json every line on standard output is one JSON object, the final
error included ({"type":"error",...}).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "hex", Usage: "decode one packet given as `HEX` digits (\"-\": read them from standard input)"},
			&choiceFlag{Name: "link", Value: "auto", Usage: "framing of --hex input: auto, eth, ip, sll or sll2",
				Config: choices{values: []string{"auto", "eth", "ip", "sll", "sll2"}, aliases: map[string]string{"ethernet": "eth", "en10mb": "eth", "raw": "ip", "linux-sll": "sll", "linux-sll2": "sll2"}}},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line: a packet, or with --conns a connection, or with --follow a chunk"},
			&cli.BoolFlag{Name: "absolute", Aliases: []string{"S"}, Usage: "print absolute sequence numbers (tcpdump -S)"},
			&cli.BoolFlag{Name: "follow", Usage: "print each connection's reassembled byte stream, both directions, like Wireshark's Follow TCP Stream"},
			&cli.BoolFlag{Name: "conns", Usage: "print a table of the TCP connections: state paths, packets, bytes each way, duration, retransmissions"},
			&cli.BoolFlag{Name: "pkt", Usage: "write a packetdrill script that replays one connection against a fresh kernel playing --side's role (tcpcraft probe runs it)"},
			&cli.StringFlag{Name: "conn", Usage: "with --follow, --conns or --pkt: only the connection `N` (from --conns) or ADDR:PORT[-ADDR:PORT]"},
			&choiceFlag{Name: "side", Usage: "with --follow: print only the bytes `SIDE` (client or server) sent, raw, nothing else; with --pkt: the end the kernel under test plays, the server when not given",
				Config: choices{values: []string{"client", "server"}}},
		},
		Action: decodeAction,
	},
		example{"read a capture like tcpdump -nn -r", "tcpcraft decode session.pcap"},
		example{"its connections: state paths, bytes, retransmissions", "tcpcraft decode session.pcap --conns"},
		example{"what the client and the server said (Wireshark's Follow TCP Stream)", "tcpcraft decode session.pcap --follow --conn 0"},
		example{"save the server's bytes of the first connection (an HTTP response)", "tcpcraft decode session.pcap --follow --conn 0 --side server > response.bin"},
		example{"turn the capture into a test of the server's kernel, and run it", "tcpcraft decode session.pcap --pkt --side server > server.pkt && tcpcraft probe server.pkt"},
		example{"one packet from a hex dump", "tcpcraft decode --hex '4500002c...'"},
		example{"packets as JSON for jq", "tcpcraft decode session.pcap --json | jq .flags"},
	)
}

// decodeSession prints packets and counts what happened.
type decodeSession struct {
	out     *bufio.Writer
	errOut  io.Writer
	asJSON  bool
	fmt     craft.Formatter
	pkt     craft.Packet
	line    []byte
	decoded int
	// flows, when set (--follow, --conns, draw), collects the packets into
	// connections instead of printing them.
	flows *flow.Builder
	// replay, when set (--pkt), collects them for a script.
	replay *scriptreplay.Reader
}

// report writes one "packet N: reason" line on stderr, after flushing the
// lines decoded so far so that the two streams interleave in order on a
// terminal.
func (d *decodeSession) report(format string, args ...any) {
	d.out.Flush()
	fmt.Fprintf(d.errOut, format, args...)
}

func decodeAction(_ context.Context, c *cli.Command) error {
	hexArg := flagString(c, "hex")
	hexSet := flagIsSet(c, "hex")
	switch {
	case c.NArg() > 1:
		return cli.Exit(fmt.Sprintf("one file at a time, got %d arguments (%s)", c.NArg(), quoteArgs(c.Args().Slice())), decodeUsage)
	case c.NArg() == 1 && hexSet:
		return cli.Exit("give a file or --hex, not both", decodeUsage)
	case c.NArg() == 0 && !hexSet:
		return cli.Exit("give a pcap/pcapng file or --hex HEX", decodeUsage)
	case c.NArg() == 1 && flagIsSet(c, "link"):
		return cli.Exit("--link applies to --hex input only; a capture file names its own link type", decodeUsage)
	}
	d := &decodeSession{
		out:    bufio.NewWriter(stdout(c)),
		errOut: stderr(c),
		asJSON: flagBool(c, "json"),
		fmt:    craft.Formatter{Absolute: flagBool(c, "absolute"), IPPrefix: true},
	}
	if flagBool(c, "pkt") {
		return decodeScript(c, d) // cmd/decode_pkt.go
	}
	if flagBool(c, "follow") || flagBool(c, "conns") || flagIsSet(c, "conn") || flagIsSet(c, "side") {
		return decodeFlows(c, d) // cmd/decode_flows.go
	}
	var err error
	if hexSet {
		err = d.decodeHex(c, hexArg, flagString(c, "link"))
	} else {
		err = d.decodeFile(c.Args().First())
	}
	if ferr := d.out.Flush(); ferr != nil && err == nil {
		err = exitFailure(fmt.Errorf("writing output: %w", ferr))
	}
	return err
}

// decodeHex decodes one packet given as hex.
func (d *decodeSession) decodeHex(c *cli.Command, arg, linkName string) error {
	if arg == "-" {
		b, err := io.ReadAll(stdin(c))
		if err != nil {
			return cli.Exit(fmt.Sprintf("read stdin: %v", err), decodeFailure)
		}
		arg = string(b)
	}
	frame, err := decodeParseHex(arg)
	if err != nil {
		return cli.Exit(fmt.Sprintf("--hex: %v", err), decodeUsage)
	}
	var link craft.LinkType
	switch linkName { // one of --link's choices
	case "eth":
		link = craft.LinkEthernet
	case "ip":
		link = craft.LinkRaw
	case "sll":
		link = craft.LinkLinuxSLL
	case "sll2":
		link = craft.LinkLinuxSLL2
	default:
		link = decodeGuessLink(frame)
	}
	if err := craft.ParsePacket(link, frame, &d.pkt, craft.PacketOptions{RecognizePartial: true}); err != nil {
		return cli.Exit(fmt.Sprintf("%s packet: %v", link, err), decodeFailure)
	}
	return d.print(time.Time{})
}

// decodeParseHex turns hex digits into bytes, skipping whitespace, colons and a
// leading 0x.
func decodeParseHex(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	digits := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == ':':
		case ch >= '0' && ch <= '9', ch >= 'a' && ch <= 'f', ch >= 'A' && ch <= 'F':
			digits = append(digits, ch)
		default:
			return nil, fmt.Errorf("invalid character %q at position %d", ch, i)
		}
	}
	if len(digits) == 0 {
		return nil, errors.New("no hex digits")
	}
	if len(digits)%2 != 0 {
		return nil, fmt.Errorf("odd number of hex digits (%d)", len(digits))
	}
	b := make([]byte, len(digits)/2)
	if _, err := hex.Decode(b, digits); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeGuessLink decides whether frame is an Ethernet frame or a bare IP packet:
// Ethernet when bytes 12-13 announce IPv4/IPv6 (or a VLAN tag) and the byte
// after the header has a matching IP version; otherwise a bare packet when
// the first nibble is 4 or 6; otherwise Ethernet, whose error then names the
// EtherType found.
func decodeGuessLink(frame []byte) craft.LinkType {
	if len(frame) > craft.EthernetHeaderLen {
		et := binary.BigEndian.Uint16(frame[12:14])
		v := frame[14] >> 4
		switch {
		case et == craft.EtherTypeIPv4 && v == 4, et == craft.EtherTypeIPv6 && v == 6:
			return craft.LinkEthernet
		case et == craft.EtherTypeVLAN || et == craft.EtherTypeQinQ:
			return craft.LinkEthernet
		}
	}
	if len(frame) > 0 && (frame[0]>>4 == 4 || frame[0]>>4 == 6) {
		return craft.LinkRaw
	}
	return craft.LinkEthernet
}

// decodeFile decodes every packet of a pcap or pcapng file.
func (d *decodeSession) decodeFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return cli.Exit(fmt.Sprintf("%v", err), decodeFailure)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return cli.Exit(fmt.Sprintf("%s: is a directory, not a pcap or pcapng file", path), decodeFailure)
	}
	src, err := pcapfile.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		// The error names the format the file seemed to be: "not a pcap
		// or pcapng file: ..." or "not a readable pcapng file: ...".
		return cli.Exit(fmt.Sprintf("%s: %v", path, err), decodeFailure)
	}
	n := 0
	for {
		data, ci, err := src.ReadPacket()
		if err == io.EOF {
			break
		}
		n++
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = errors.New("record cut short (truncated file)")
			}
			d.report("packet %d: %v\n", n, err)
			break
		}
		if err := craft.ParsePacket(craft.LinkType(ci.LinkType), data, &d.pkt, craft.PacketOptions{RecognizePartial: true}); err != nil {
			if d.flows == nil {
				if ok, werr := d.printOther(ci.Timestamp, craft.LinkType(ci.LinkType), data); werr != nil {
					return werr
				} else if ok {
					continue
				}
			}
			if ci.CaptureLength < ci.Length {
				d.report("packet %d (captured %d of %d bytes): %v\n", n, ci.CaptureLength, ci.Length, err)
			} else {
				d.report("packet %d: %v\n", n, err)
			}
			continue
		}
		if d.flows != nil {
			d.decoded++
			d.flows.Add(n, ci.Timestamp, &d.pkt)
			continue
		}
		if d.replay != nil {
			d.decoded++
			d.replay.Add(n, ci.Timestamp, &d.pkt)
			continue
		}
		if err := d.print(ci.Timestamp); err != nil {
			return err
		}
	}
	if d.decoded == 0 {
		if n == 0 {
			return cli.Exit(fmt.Sprintf("%s: no packets", path), decodeFailure)
		}
		return cli.Exit(fmt.Sprintf("%s: none of %d packets could be decoded", path, n), decodeFailure)
	}
	return nil
}

// printOther writes a frame that is not a whole TCP segment but that a
// prober's capture holds — an ICMP or ICMPv6 error (text or JSON), an IP
// fragment (text: its IP header, and the TCP ports of a first one) — and
// reports whether it could.
func (d *decodeSession) printOther(ts time.Time, link craft.LinkType, frame []byte) (bool, error) {
	var b []byte
	if d.asJSON {
		var e craft.ICMPError
		if craft.ParseICMPError(link, frame, &e) != nil {
			return false, nil
		}
		j := d.fmt.ICMPJSON(&e)
		j.Time = ts.UTC().Format(time.RFC3339Nano)
		var err error
		if b, err = json.Marshal(j); err != nil {
			return false, nil
		}
	} else {
		b = ts.Local().AppendFormat(d.line[:0], "15:04:05.000000 ")
		var err error
		if b, err = d.fmt.AppendFrame(b, link, frame, &d.pkt); err != nil {
			return false, nil
		}
	}
	d.decoded++
	if _, err := d.out.Write(append(b, '\n')); err != nil {
		return false, exitFailure(fmt.Errorf("writing output: %w", err))
	}
	return true, nil
}

// print writes d.pkt as text or JSON; ts is zero for --hex input.
func (d *decodeSession) print(ts time.Time) error {
	d.decoded++
	if d.asJSON {
		j := d.fmt.JSON(&d.pkt)
		if !ts.IsZero() {
			j.Time = ts.UTC().Format(time.RFC3339Nano)
		}
		b, err := json.Marshal(j)
		if err != nil {
			return cli.Exit(fmt.Sprintf("json: %v", err), decodeFailure)
		}
		b = append(b, '\n')
		if _, err := d.out.Write(b); err != nil {
			return exitFailure(fmt.Errorf("writing output: %w", err))
		}
		return nil
	}
	d.line = d.line[:0]
	if !ts.IsZero() {
		// tcpdump -r prints the capture time in local time, microseconds.
		d.line = ts.Local().AppendFormat(d.line, "15:04:05.000000")
		d.line = append(d.line, ' ')
	}
	d.line = d.fmt.AppendText(d.line, &d.pkt)
	d.line = append(d.line, '\n')
	if _, err := d.out.Write(d.line); err != nil {
		// The output is gone (a closed pipe): reading on is no use.
		return exitFailure(fmt.Errorf("writing output: %w", err))
	}
	return nil
}
