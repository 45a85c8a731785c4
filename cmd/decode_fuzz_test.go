package cmd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/draw"
	"github.com/tcpcraft/tcpcraft/draw/flow"
)

// FuzzDecodeFile feeds arbitrary bytes as a capture file to the reader
// that decode and draw share (decodeSession.decodeFile: pcap or pcapng,
// then craft.ParsePacket per record), in the three ways they use it: text
// lines, JSON lines, and connections for --follow/--conns/draw, whose
// drawings are then made too. It must never panic, and every failure must
// be an exit code with a message (what the user sees), never a bare
// error. Seeds: the first records of the test captures as pcap and as
// pcapng, and cut short, plus what `go test -fuzz` found
// (testdata/fuzz/FuzzDecodeFile).
func FuzzDecodeFile(f *testing.F) {
	for _, p := range []string{"testdata/linux-http.pcap", "../craft/testdata/ext.pcap", "../craft/testdata/synth.pcap"} {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		// Small seeds keep each run (and minimizing what it finds) fast.
		small := firstRecords(f, raw, 4)
		f.Add(small)
		f.Add(small[:len(small)-7])
		f.Add(raw[:24])
		f.Add(toPcapng(f, small))
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "in.pcap")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, asJSON := range []bool{false, true} {
			d := &decodeSession{out: bufio.NewWriter(io.Discard), errOut: io.Discard, asJSON: asJSON}
			checkExit(t, d.decodeFile(path))
		}
		d := &decodeSession{out: bufio.NewWriter(io.Discard), errOut: io.Discard, flows: &flow.Builder{KeepPayload: true}}
		if err := d.decodeFile(path); err != nil {
			checkExit(t, err)
			return
		}
		// What draw and --follow make of the connections (drawings are
		// laid out, not written: the layout is what reads the segments).
		for i, c := range d.flows.Conns() {
			if i == 2 {
				break
			}
			_ = draw.LadderText(c, draw.LadderOptions{Count: 20}, draw.TextLadder{Width: 100})
			_ = draw.TimeSequence(c, draw.TSGOptions{Sender: draw.BusierSide(c)})
			_ = draw.States(c)
			_ = c.Follow()
		}
	})
}

// checkExit fails unless err is nil or an exit code with a message.
func checkExit(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() == 0 || err.Error() == "" {
		t.Fatalf("decodeFile: %v (%T), want an exit code with a message", err, err)
	}
}

// firstRecords returns a classic pcap file holding the first n records of
// raw.
func firstRecords(t testing.TB, raw []byte, n int) []byte {
	r, err := pcapgo.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := pcapgo.NewWriter(&out)
	if err := w.WriteFileHeader(r.Snaplen(), r.LinkType()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// toPcapng rewrites a classic pcap file as pcapng.
func toPcapng(t testing.TB, raw []byte) []byte {
	r, err := pcapgo.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w, err := pcapgo.NewNgWriter(&out, layers.LinkType(r.LinkType()))
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		ci.InterfaceIndex = 0
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ci.Timestamp, CaptureLength: len(data), Length: ci.Length}, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
