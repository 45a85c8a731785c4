package replay

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/probe"
)

// readPcap reads a pcap file into a Reader, as decode does.
func readPcap(t testing.TB, path string) *Reader {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return readPcapBytes(t, b)
}

func readPcapBytes(t testing.TB, b []byte) *Reader {
	t.Helper()
	pr, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := &Reader{}
	var p craft.Packet
	for n := 1; ; n++ {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if craft.ParsePacket(craft.LinkType(pr.LinkType()), data, &p, craft.PacketOptions{RecognizePartial: true}) != nil {
			continue
		}
		r.Add(n, ci.Timestamp, &p)
	}
	return r
}

// conv builds a connection segment by segment, as a capture would show
// it. The client's ISN is 1000, the server's 5000; seq and ack are
// relative to them, as in a script.
type conv struct {
	t        testing.TB
	r        Reader
	n        int
	at       time.Time
	cli, srv netip.AddrPort
	ipv6     bool
}

const cliISN, srvISN = 1000, 5000

func newConv(t testing.TB) *conv {
	return &conv{t: t, at: time.Unix(1700000000, 0),
		cli: netip.MustParseAddrPort("10.0.2.21:40000"), srv: netip.MustParseAddrPort("10.0.2.20:80")}
}

// seg adds a segment dt after the previous one, with window 500. from is
// "c" or "s".
func (c *conv) seg(dt time.Duration, from string, flags craft.Flags, seq, ack uint32, n int, opts ...craft.Option) {
	c.t.Helper()
	c.segWin(dt, from, flags, seq, ack, n, 500, opts...)
}

// segWin is seg with a window of win.
func (c *conv) segWin(dt time.Duration, from string, flags craft.Flags, seq, ack uint32, n int, win uint16, opts ...craft.Option) {
	c.t.Helper()
	c.at = c.at.Add(dt)
	c.n++
	tcp := craft.TCP{Flags: flags, Window: win, Payload: make([]byte, n), Options: opts}
	var src, dst netip.AddrPort
	var isn, peerISN uint32
	if from == "c" {
		src, dst, isn, peerISN = c.cli, c.srv, cliISN, srvISN
	} else {
		src, dst, isn, peerISN = c.srv, c.cli, srvISN, cliISN
	}
	tcp.SrcPort, tcp.DstPort = src.Port(), dst.Port()
	tcp.Seq = craft.Seq(isn + seq)
	if flags.Has(craft.FlagACK) {
		tcp.Ack = craft.Seq(peerISN + ack)
	}
	var pkt []byte
	var err error
	if c.ipv6 {
		ip := craft.IPv6{HopLimit: 64, NextHeader: craft.ProtocolTCP,
			Src: netip.MustParseAddr("fd00:2::21"), Dst: netip.MustParseAddr("fd00:2::20")}
		if from != "c" {
			ip.Src, ip.Dst = ip.Dst, ip.Src
		}
		pkt, err = craft.AppendIPv6TCP(nil, &ip, &tcp, craft.BuildOptions{})
	} else {
		pkt, err = craft.BuildIPv4TCP(craft.IPv4{TTL: 64, Protocol: craft.ProtocolTCP, Src: src.Addr(), Dst: dst.Addr()}, &tcp)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	var p craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, pkt, &p, craft.PacketOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.r.Add(c.n, c.at, &p)
}

// handshake adds the three segments of an opening handshake with Linux's
// options.
func (c *conv) handshake() {
	c.seg(0, "c", craft.FlagSYN, 0, 0, 0, craft.LinuxSYNOptions(1460, 7, 100, 0)...)
	c.seg(50*time.Microsecond, "s", craft.FlagSYN|craft.FlagACK, 0, 1, 0, craft.LinuxSYNOptions(1460, 7, 900, 100)...)
	c.seg(50*time.Microsecond, "c", craft.FlagACK, 1, 1, 0)
}

// script generates the script with the kernel as side.
func (c *conv) script(side flow.Side) *Script {
	c.t.Helper()
	conns := c.r.Conns()
	if len(conns) != 1 {
		c.t.Fatalf("%d connections, want 1", len(conns))
	}
	s, err := c.r.Script(conns[0], Config{Side: side, Source: "test.pcap"})
	if err != nil {
		c.t.Fatal(err)
	}
	mustParse(c.t, s)
	return s
}

// mustParse parses a generated script with probe's parser and checks
// that probe would run it.
func mustParse(t testing.TB, s *Script) *probe.Script {
	t.Helper()
	ps, err := probe.Parse("generated.pkt", s.Text)
	if err != nil {
		t.Fatalf("the generated script does not parse: %v\n%s", err, s.Text)
	}
	if err := probe.Validate(ps, false); err != nil {
		t.Fatalf("the generated script does not validate: %v\n%s", err, s.Text)
	}
	return ps
}

// body returns the script without its header comment.
func body(s *Script) string {
	var out []string
	for _, l := range strings.Split(string(s.Text), "\n") {
		if l != "" && !strings.HasPrefix(l, "//") || strings.HasPrefix(l, "// #") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// lines returns the script's lines that contain every one of words;
// comment lines only when the first word starts with "//".
func lines(s *Script, words ...string) []string {
	var out []string
	for _, l := range strings.Split(body(s), "\n") {
		ok := !strings.HasPrefix(l, "//") || strings.HasPrefix(words[0], "//")
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
