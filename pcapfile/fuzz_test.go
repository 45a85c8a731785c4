package pcapfile

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var updateCorpus = flag.Bool("update-corpus", false, "write the seed corpus of FuzzReader to testdata/fuzz/FuzzReader")

// FuzzReader feeds arbitrary bytes to the reader as a capture file. It
// must never panic; every record must hold CaptureLength bytes, no more
// than MaxRecord, and, uncompressed, no more than the input; an error
// must say something and stay. Seeds: testdata/fuzz/FuzzReader (classic
// pcap in both byte orders and resolutions, pcapng of every block kind in
// both byte orders and several sections, gzip, cut and garbage files; see
// fuzzSeeds) and what `go test -fuzz` finds.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		gz := len(in) >= 2 && in[0] == 0x1f && in[1] == 0x8b
		total := 0
		for n := 0; n < 100000; n++ {
			data, ci, err := r.ReadPacket()
			if err != nil {
				if err.Error() == "" {
					t.Fatal("empty error")
				}
				if _, _, again := r.ReadPacket(); again != err {
					t.Fatalf("after %v: %v, want the same error", err, again)
				}
				return
			}
			if len(data) != ci.CaptureLength || ci.CaptureLength > MaxRecord || ci.Length < 0 || ci.Interface < 0 || ci.LinkType > 0xffff {
				t.Fatalf("record %d: %d bytes, capture info %+v", n+1, len(data), ci)
			}
			if r.Format() == FormatPcap && ci.CaptureLength > ci.Length {
				t.Fatalf("record %d: captured %d of %d bytes", n+1, ci.CaptureLength, ci.Length)
			}
			total += len(data)
			if !gz && total > len(in) {
				t.Fatalf("records hold %d bytes, the input %d", total, len(in))
			}
		}
	})
}

// fuzzSeeds returns FuzzReader's seed corpus.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	// Classic pcap: the first records of captures (micro- and
	// nanosecond), in both byte orders, and cut inside a record.
	for _, p := range []string{"../cmd/testdata/linux-http.pcap", "../draw/testdata/demo.pcap", "../craft/testdata/linux-sll2.pcap"} {
		fs, cis := frames(t, p)
		var buf bytes.Buffer
		w := pcapgo.NewWriter(&buf)
		if binary.LittleEndian.Uint32(mustRead(t, p)) == pcapNano {
			w = pcapgo.NewWriterNanos(&buf)
		}
		r, err := pcapgo.NewReader(bytes.NewReader(mustRead(t, p)))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteFileHeader(r.Snaplen(), r.LinkType()); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := w.WritePacket(cis[i], fs[i]); err != nil {
				t.Fatal(err)
			}
		}
		seeds = append(seeds, buf.Bytes(), swapPcap(t, buf.Bytes()), buf.Bytes()[:buf.Len()-7])
	}
	// pcapng built block by block.
	a, _ := handBuilt(binary.LittleEndian, binary.BigEndian, false)
	b, _ := handBuilt(binary.BigEndian, binary.BigEndian, true)
	seeds = append(seeds, a, b, a[:len(a)/2])
	// gopacket's pcapng: two interfaces, packet options, statistics.
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkTypeRaw, TimestampOffset: 10}); err != nil {
		t.Fatal(err)
	}
	eth, _ := frames(t, "../cmd/testdata/linux-http.pcap")
	for i := range 3 {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)), CaptureLength: len(eth[i]), Length: len(eth[i]), InterfaceIndex: i % 2}
		if err := w.WritePacketWithOptions(ci, eth[i], pcapgo.NgPacketOptions{Comments: []string{"c"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteInterfaceStats(0, pcapgo.NgInterfaceStatistics{LastUpdate: time.Unix(1700000001, 0), PacketsReceived: 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, buf.Bytes())
	// mergecap's pcapng (three interfaces), its first 1 KiB.
	seeds = append(seeds, mustRead(t, "testdata/mergecap-mixed.pcapng")[:1024])
	// gzip of a classic and a pcapng seed.
	for _, s := range [][]byte{seeds[0], a} {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(s)
		zw.Close()
		seeds = append(seeds, z.Bytes())
	}
	// Almost nothing.
	seeds = append(seeds, nil, []byte{0x0a, 0x0d, 0x0d, 0x0a}, []byte{0xd4, 0xc3, 0xb2, 0xa1})
	return seeds
}

// corpusFile returns the name and contents of a seed in the checked-in
// corpus ("go test fuzz v1" format).
func corpusFile(seed []byte) (string, []byte) {
	b := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", seed)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("seed-%x", sum[:8]), b
}

// TestFuzzCorpus: every seed fuzzSeeds makes is in the checked-in corpus
// (go test ./pcapfile -run TestFuzzCorpus -update-corpus writes them).
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	seeds := fuzzSeeds(t)
	if len(seeds) < 15 {
		t.Fatalf("%d seeds", len(seeds))
	}
	for _, s := range seeds {
		name, b := corpusFile(s)
		path := filepath.Join(dir, name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("seed %s is not in the corpus (%v): run go test ./pcapfile -run TestFuzzCorpus -update-corpus", path, err)
		}
	}
	// The seeds reach what they are for: each classic and pcapng seed
	// that is whole reads to the end with records.
	for i, s := range seeds[:9] {
		if i%3 == 2 {
			continue // cut on purpose
		}
		r, err := NewReader(bytes.NewReader(s))
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		n := 0
		for ; ; n++ {
			if _, _, err := r.ReadPacket(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("seed %d: %v", i, err)
			}
		}
		if n != 3 {
			t.Fatalf("seed %d: %d records, want 3", i, n)
		}
	}
}
