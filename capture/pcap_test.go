package capture

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestPcapRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	pw, err := NewPcapWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	syn := segment{
		src: netip.MustParseAddrPort("10.0.2.21:40000"), dst: netip.MustParseAddrPort("10.0.2.20:80"),
		seq: 1, flags: tcpSYN, options: paddedSYNOptions(),
	}.bytes()
	t1 := time.Unix(1700000000, 123456789)
	t2 := t1.Add(1500 * time.Microsecond)
	if err := pw.WritePacket(t1, syn); err != nil {
		t.Fatal(err)
	}
	cut := Frame{Data: syn[:30], Time: t2, Length: len(syn)}
	if err := pw.WriteFrame(cut); err != nil {
		t.Fatal(err)
	}
	// Output is buffered until Flush (or Close).
	if buf.Len() != 0 {
		t.Fatalf("before Flush %d bytes reached the writer, want 0", buf.Len())
	}
	if err := pw.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := 24 + 16 + len(syn) + 16 + 30; buf.Len() != want {
		t.Fatalf("after Flush %d bytes, want %d (header and two records)", buf.Len(), want)
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
	if r.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("link type %v, want raw (101)", r.LinkType())
	}
	want := []struct {
		ts     time.Time
		data   []byte
		length int
	}{{t1, syn, len(syn)}, {t2, syn[:30], len(syn)}}
	for i, w := range want {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !ci.Timestamp.Equal(w.ts) || !bytes.Equal(data, w.data) || ci.Length != w.length || ci.CaptureLength != len(w.data) {
			t.Fatalf("record %d: %v len %d/%d %x; want %v len %d/%d %x",
				i, ci.Timestamp, ci.CaptureLength, ci.Length, data, w.ts, len(w.data), w.length, w.data)
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the records: %v, want EOF", err)
	}
}

func TestCreatePcapAndTshark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.pcap")
	pw, err := CreatePcap(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a, b := netip.MustParseAddrPort("10.0.2.21:40000"), netip.MustParseAddrPort("10.0.2.20:80")
	for i, s := range []segment{
		{src: a, dst: b, seq: 1000, flags: tcpSYN, options: paddedSYNOptions()},
		{src: a, dst: b, seq: 1001, ack: 5001, flags: tcpACK},
		{src: a, dst: b, seq: 1001, ack: 5001, flags: tcpACK | tcpPSH, payload: []byte("hello\n")},
		{src: a, dst: b, seq: 1007, ack: 5001, flags: tcpFIN | tcpACK},
	} {
		if err := pw.WritePacket(now.Add(time.Duration(i)*time.Millisecond), s.bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	checkPcapWithTshark(t, path)

	if _, err := CreatePcap(filepath.Join(t.TempDir(), "missing", "out.pcap")); err == nil {
		t.Fatal("CreatePcap in a missing directory succeeded")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
