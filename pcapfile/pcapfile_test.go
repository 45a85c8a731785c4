package pcapfile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// packet builds an IPv4 or IPv6 TCP packet (by the addresses' family) with
// correct checksums.
func packet(t *testing.T, src, dst netip.AddrPort, seq uint32, flags craft.Flags, payload string) []byte {
	t.Helper()
	tcp := &craft.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: craft.Seq(seq), Flags: flags, Window: 65535, Payload: []byte(payload)}
	var b []byte
	var err error
	if src.Addr().Is4() {
		b, err = craft.BuildIPv4TCP(craft.IPv4{TTL: 64, ID: 1, DontFragment: true, Protocol: craft.ProtocolTCP, Src: src.Addr(), Dst: dst.Addr()}, tcp)
	} else {
		b, err = craft.BuildIPv6TCP(craft.IPv6{HopLimit: 64, Src: src.Addr(), Dst: dst.Addr()}, tcp)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	pw, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	syn := packet(t, netip.MustParseAddrPort("10.0.2.21:40000"), netip.MustParseAddrPort("10.0.2.20:80"), 1, craft.FlagSYN, "")
	syn6 := packet(t, netip.MustParseAddrPort("[fd00:2::21]:40000"), netip.MustParseAddrPort("[fd00:2::20]:80"), 1, craft.FlagSYN, "")
	big := make([]byte, SnapLen+100)
	t1 := time.Unix(1700000000, 123456789)
	t2 := t1.Add(1500 * time.Microsecond)
	if err := pw.WritePacket(t1, syn); err != nil {
		t.Fatal(err)
	}
	if err := pw.WriteTruncated(t2, syn[:30], len(syn)); err != nil {
		t.Fatal(err)
	}
	if err := pw.WritePacket(t2, syn6); err != nil {
		t.Fatal(err)
	}
	// Output is buffered until Flush (or Close).
	if buf.Len() != 0 {
		t.Fatalf("before Flush %d bytes reached the writer, want 0", buf.Len())
	}
	if err := pw.WritePacket(t2, big); err != nil {
		t.Fatal(err)
	}
	if err := pw.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := 24 + 16 + len(syn) + 16 + 30 + 16 + len(syn6) + 16 + SnapLen; buf.Len() != want {
		t.Fatalf("after Flush %d bytes, want %d (header and four records)", buf.Len(), want)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := pw.WritePacket(t1, syn); err == nil {
		t.Fatal("WritePacket after Close succeeded")
	}

	r, err := pcapgo.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw || r.Snaplen() != SnapLen {
		t.Fatalf("link type %v snap length %d, want raw (101) and %d", r.LinkType(), r.Snaplen(), SnapLen)
	}
	want := []struct {
		ts     time.Time
		data   []byte
		length int
	}{{t1, syn, len(syn)}, {t2, syn[:30], len(syn)}, {t2, syn6, len(syn6)}, {t2, big[:SnapLen], len(big)}}
	for i, w := range want {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !ci.Timestamp.Equal(w.ts) || !bytes.Equal(data, w.data) || ci.Length != w.length || ci.CaptureLength != len(w.data) {
			t.Fatalf("record %d: %v len %d/%d; want %v len %d/%d", i, ci.Timestamp, ci.CaptureLength, ci.Length, w.ts, len(w.data), w.length)
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the records: %v, want EOF", err)
	}
}

// TestCreateAndTshark: tshark reads a file of IPv4 and IPv6 segments, finds
// no malformed packet and good checksums on all of them.
func TestCreateAndTshark(t *testing.T) {
	labtest.RequireTools(t, "tshark")
	path := filepath.Join(t.TempDir(), "out.pcap")
	pw, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a, b := netip.MustParseAddrPort("10.0.2.21:40000"), netip.MustParseAddrPort("10.0.2.20:80")
	a6, b6 := netip.MustParseAddrPort("[fd00:2::21]:40000"), netip.MustParseAddrPort("[fd00:2::20]:80")
	pkts := [][]byte{
		packet(t, a, b, 1000, craft.FlagSYN, ""),
		packet(t, a, b, 1001, craft.FlagACK|craft.FlagPSH, "hello\n"),
		packet(t, a6, b6, 2000, craft.FlagSYN, ""),
		packet(t, a6, b6, 2001, craft.FlagACK|craft.FlagPSH, "hello over IPv6\n"),
	}
	for i, p := range pkts {
		if err := pw.WritePacket(now.Add(time.Duration(i)*time.Millisecond), p); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tshark", "-r", path, "-n", "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=|", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.checksum.status", "-e", "_ws.malformed").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"10.0.2.21||1|", "10.0.2.21||1|", "|fd00:2::21|1|", "|fd00:2::21|1|"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tshark read:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}

	if _, err := Create(filepath.Join(t.TempDir(), "missing", "out.pcap")); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
