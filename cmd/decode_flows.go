package cmd

// tcpcraft decode --follow and --conns: the capture read as connections
// (draw/flow) rather than packet by packet.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/draw"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// readFlows reads a capture file into connections, reporting undecodable
// packets on stderr as decode does. keep keeps payloads (for --follow).
func readFlows(c *cli.Command, path string, keep bool) ([]*flow.Conn, error) {
	d := &decodeSession{out: bufio.NewWriter(io.Discard), errOut: stderr(c), flows: &flow.Builder{KeepPayload: keep}}
	if err := d.decodeFile(path); err != nil {
		return nil, err
	}
	conns := d.flows.Conns()
	if len(conns) == 0 {
		return nil, cli.Exit(fmt.Sprintf("%s: no TCP connection", path), decodeFailure)
	}
	return conns, nil
}

// decodeFlows is decode with --follow or --conns.
func decodeFlows(c *cli.Command, d *decodeSession) error {
	follow, table := flagBool(c, "follow"), flagBool(c, "conns")
	switch {
	case follow && table:
		return cli.Exit("give --follow or --conns, not both", decodeUsage)
	case !follow && !table:
		return cli.Exit("--conn and --side go with --follow or --pkt (--conn also with --conns)", decodeUsage)
	case flagIsSet(c, "hex"):
		return cli.Exit("--follow and --conns read capture files, not --hex", decodeUsage)
	case c.NArg() != 1:
		return cli.Exit("give one pcap/pcapng file", decodeUsage)
	case flagIsSet(c, "side") && !follow:
		return cli.Exit("--side goes with --follow or --pkt", decodeUsage)
	}
	side := flow.Client
	if flagString(c, "side") == "server" { // one of --side's choices
		side = flow.Server
	}
	conns, err := readFlows(c, c.Args().First(), follow)
	if err != nil {
		return err
	}
	if flagIsSet(c, "conn") || flagIsSet(c, "side") {
		one, err := flow.Find(conns, flagString(c, "conn"))
		if err != nil {
			return cli.Exit(err.Error(), decodeFailure)
		}
		conns = []*flow.Conn{one}
	}
	w := stdout(c)
	switch {
	case table && d.asJSON:
		return writeConnsJSON(w, conns)
	case table:
		return writeConnsTable(w, conns)
	case flagIsSet(c, "side"):
		data, _ := conns[0].Stream(side)
		_, err := w.Write(data)
		return err
	case d.asJSON:
		return writeFollowJSON(w, conns)
	}
	return writeFollow(w, conns)
}

// writeFollow prints each connection's conversation. A chunk is a marker
// line followed by exactly the bytes it announces and a newline:
//
//	>>> client 10.0.2.21:40000 > server, 83 bytes at offset 0
//	<83 bytes>
//	<<< server 10.0.2.20:80 > client, 217 bytes at offset 0
//	<217 bytes>
//
// so a reader can cut the bytes out exactly; gaps the capture never filled
// are "!!!" lines.
func writeFollow(w io.Writer, conns []*flow.Conn) error {
	var b strings.Builder
	for _, c := range conns {
		b.Reset()
		fmt.Fprintf(&b, "=== connection %d: client %s > server %s\n", c.Index, c.Client(), c.Server())
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
		var total [2]int64
		for _, ch := range c.Follow() {
			b.Reset()
			dir := ">>>"
			if ch.From == flow.Server {
				dir = "<<<"
			}
			if ch.Missing > 0 {
				fmt.Fprintf(&b, "!!! %s: %d bytes at offset %d are not in the capture\n", ch.From, ch.Missing, ch.Offset)
				if _, err := io.WriteString(w, b.String()); err != nil {
					return err
				}
				continue
			}
			total[ch.From] += int64(len(ch.Data))
			fmt.Fprintf(&b, "%s %s %s > %s, %d bytes at offset %d\n", dir, ch.From, c.Addr[ch.From], ch.From.Other(), len(ch.Data), ch.Offset)
			if _, err := io.WriteString(w, b.String()); err != nil {
				return err
			}
			if _, err := w.Write(ch.Data); err != nil {
				return err
			}
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		b.Reset()
		fmt.Fprintf(&b, "=== end of connection %d: client sent %d bytes, server %d\n", c.Index, total[flow.Client], total[flow.Server])
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

// followChunkJSON is one chunk of decode --follow --json.
type followChunkJSON struct {
	Conn    int    `json:"conn"`
	From    string `json:"from"`
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	Offset  int64  `json:"offset"`
	Len     int    `json:"len"`
	Missing int64  `json:"missing,omitempty"`
	// Data is base64 (encoding/json's form of bytes).
	Data []byte `json:"data,omitempty"`
}

func writeFollowJSON(w io.Writer, conns []*flow.Conn) error {
	enc := json.NewEncoder(w)
	for _, c := range conns {
		for _, ch := range c.Follow() {
			j := followChunkJSON{Conn: c.Index, From: ch.From.String(), Src: c.Addr[ch.From].String(), Dst: c.Addr[ch.From.Other()].String(),
				Offset: ch.Offset, Len: len(ch.Data), Missing: ch.Missing, Data: ch.Data}
			if err := enc.Encode(j); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeConnsTable prints one row per connection.
func writeConnsTable(w io.Writer, conns []*flow.Conn) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tclient\tserver\tpackets\tbytes c>s\tbytes s>c\tretx c/s\tduration\tclient states\tserver states")
	for _, c := range conns {
		st := c.Stats
		partial := ""
		if c.Partial {
			partial = " (joined mid-stream)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d/%d\t%s\t%s\t%s%s\n", c.Index, c.Client(), c.Server(),
			st[flow.Client].Packets+st[flow.Server].Packets, st[flow.Client].Bytes, st[flow.Server].Bytes,
			st[flow.Client].Retransmits, st[flow.Server].Retransmits, formatSpan(c.Duration()),
			draw.PathString(c.Paths[flow.Client], ">"), draw.PathString(c.Paths[flow.Server], ">"), partial)
	}
	return tw.Flush()
}

func formatSpan(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}

// connJSON is one connection of decode --conns --json.
type connJSON struct {
	Index     int     `json:"index"`
	Client    string  `json:"client"`
	Server    string  `json:"server"`
	Partial   bool    `json:"partial,omitempty"`
	First     string  `json:"first"`
	Last      string  `json:"last"`
	DurationS float64 `json:"duration_s"`
	// By the end that sent them.
	Packets     map[string]int                `json:"packets"`
	Bytes       map[string]int64              `json:"bytes"`
	Retransmits map[string]retransmitCountsJS `json:"retransmits"`
	Paths       map[string][]string           `json:"states"`
}

type retransmitCountsJS struct {
	Segments int   `json:"segments"`
	Bytes    int64 `json:"bytes"`
	Fast     int   `json:"fast"`
	Timeout  int   `json:"timeout"`
	DupACKs  int   `json:"dup_acks_sent"`
}

func writeConnsJSON(w io.Writer, conns []*flow.Conn) error {
	enc := json.NewEncoder(w)
	for _, c := range conns {
		j := connJSON{Index: c.Index, Client: c.Client().String(), Server: c.Server().String(), Partial: c.Partial,
			First: c.First.UTC().Format(time.RFC3339Nano), Last: c.Last.UTC().Format(time.RFC3339Nano), DurationS: c.Duration().Seconds(),
			Packets: map[string]int{}, Bytes: map[string]int64{}, Retransmits: map[string]retransmitCountsJS{}, Paths: map[string][]string{}}
		for _, s := range []flow.Side{flow.Client, flow.Server} {
			st := c.Stats[s]
			j.Packets[s.String()] = st.Packets
			j.Bytes[s.String()] = st.Bytes
			j.Retransmits[s.String()] = retransmitCountsJS{st.Retransmits, st.RetransBytes, st.Fast, st.Timeout, st.DupACKs}
			for _, p := range c.Paths[s] {
				j.Paths[s.String()] = append(j.Paths[s.String()], p.String())
			}
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	return nil
}
