package craft

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// frameRecord is one frame of a test capture.
type frameRecord struct {
	link LinkType
	data []byte
}

// readPcap returns the frames of a classic pcap file in testdata.
func readPcap(t testing.TB, name string) []frameRecord {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []frameRecord
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		out = append(out, frameRecord{link: LinkType(r.LinkType()), data: append([]byte{}, data...)})
	}
	if len(out) == 0 {
		t.Fatalf("%s: no packets", name)
	}
	return out
}

// corpusFiles are the checked-in captures every corpus-wide test covers.
var corpusFiles = []string{"linux-http.pcap", "linux-sll.pcap", "linux-sll2.pcap", "synth.pcap"}

// readCorpus returns every frame of every corpus capture.
func readCorpus(t testing.TB) []frameRecord {
	var all []frameRecord
	for _, f := range corpusFiles {
		all = append(all, readPcap(t, f)...)
	}
	return all
}

// parseAll parses every frame of a capture, failing on any error.
func parseAll(t testing.TB, name string) []Packet {
	t.Helper()
	frames := readPcap(t, name)
	pkts := make([]Packet, len(frames))
	for i, f := range frames {
		if err := ParsePacket(f.link, f.data, &pkts[i], PacketOptions{}); err != nil {
			t.Fatalf("%s packet %d: %v", name, i+1, err)
		}
	}
	return pkts
}

// readLines returns the lines of a testdata text file.
func readLines(t testing.TB, name string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
}
