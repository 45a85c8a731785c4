package pcapfile

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// record is what a reader should return for one packet.
type record struct {
	data          []byte
	ts            time.Time
	caplen, wire  int
	link          LinkType
	iface         int
	checkIfaceIdx bool
}

// readAll reads every record with our reader (data copied: the reader
// reuses its buffer) and the error that ended the file (nil for io.EOF).
func readAll(t testing.TB, b []byte) ([]record, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out []record
	for {
		data, ci, err := r.ReadPacket()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(data) != ci.CaptureLength {
			t.Fatalf("record %d: %d bytes, capture length %d", len(out)+1, len(data), ci.CaptureLength)
		}
		out = append(out, record{data: bytes.Clone(data), ts: ci.Timestamp, caplen: ci.CaptureLength, wire: ci.Length, link: ci.LinkType, iface: ci.Interface})
	}
}

// readGopacket reads every record with gopacket's pcapgo, the reference:
// NewReader for classic pcap, NewNgReader with mixed link types (each
// record's interface's own) for pcapng.
func readGopacket(t testing.TB, b []byte) []record {
	t.Helper()
	var r interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var recordOf func(data []byte, ci gopacket.CaptureInfo) record
	if len(b) >= 4 && binary.BigEndian.Uint32(b) == ngSectionHeader {
		ng, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			t.Fatalf("gopacket: %v", err)
		}
		r = ng
		recordOf = func(data []byte, ci gopacket.CaptureInfo) record {
			link := ci.AncillaryData[0].(layers.LinkType)
			return record{data: data, ts: ci.Timestamp, caplen: ci.CaptureLength, wire: ci.Length, link: LinkType(link), iface: ci.InterfaceIndex, checkIfaceIdx: true}
		}
	} else {
		classic, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gopacket: %v", err)
		}
		r = classic
		recordOf = func(data []byte, ci gopacket.CaptureInfo) record {
			return record{data: data, ts: ci.Timestamp, caplen: ci.CaptureLength, wire: ci.Length, link: LinkType(classic.LinkType())}
		}
	}
	var out []record
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("gopacket, record %d: %v", len(out)+1, err)
		}
		out = append(out, recordOf(data, ci))
	}
}

// sameRecords fails unless got and want hold the same packets: bytes,
// timestamps, lengths, link types (and interfaces where want has them).
func sameRecords(t *testing.T, name string, got, want []record) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: the reference read no packets", name)
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if !bytes.Equal(g.data, w.data) || !g.ts.Equal(w.ts) || g.caplen != w.caplen || g.wire != w.wire || g.link != w.link || (w.checkIfaceIdx && g.iface != w.iface) {
			t.Fatalf("%s: record %d: got %d bytes (%d/%d) at %v link %d iface %d; want %d bytes (%d/%d) at %v link %d iface %d",
				name, i+1, len(g.data), g.caplen, g.wire, g.ts.UnixNano(), g.link, g.iface, len(w.data), w.caplen, w.wire, w.ts.UnixNano(), w.link, w.iface)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", name, len(got), len(want))
	}
}

// differential reads b with both readers and compares.
func differential(t *testing.T, name string, b []byte) {
	t.Helper()
	got, err := readAll(t, b)
	if err != nil {
		t.Fatalf("%s: %v (after %d records)", name, err, len(got))
	}
	sameRecords(t, name, got, readGopacket(t, b))
}

// TestReadRepoCaptures: every pcap and pcapng file in the repository's
// testdata directories reads packet for packet as gopacket reads it.
func TestReadRepoCaptures(t *testing.T) {
	var files []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "fuzz") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.Contains(filepath.ToSlash(path), "testdata/") &&
			(strings.HasSuffix(path, ".pcap") || strings.HasSuffix(path, ".pcapng")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The repository's captures: 11 classic ones in craft, cmd, draw and
	// replay, and mergecap's pcapng here (three interfaces, three link
	// types, microsecond and nanosecond resolutions).
	if len(files) < 12 {
		t.Fatalf("found %d capture files, want at least 12: %v", len(files), files)
	}
	sawNg := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sawNg = sawNg || strings.HasSuffix(f, ".pcapng")
		differential(t, f, b)
	}
	if !sawNg {
		t.Fatal("no pcapng file among the captures")
	}
	// mergecap's file: three interfaces, each with its own link type, all
	// of whose packets come through (gopacket's default options keep only
	// the first interface's link type).
	got, err := readAll(t, mustRead(t, "testdata/mergecap-mixed.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	links := map[LinkType]int{}
	for _, r := range got {
		links[r.link]++
	}
	if len(got) != 29 || links[276] != 10 || links[113] != 10 || links[101] != 9 {
		t.Fatalf("mergecap file: %d records, link types %v; want 29: 10 SLL2, 10 SLL, 9 raw", len(got), links)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frames returns the records of a classic capture, read by gopacket.
func frames(t testing.TB, path string) ([][]byte, []gopacket.CaptureInfo) {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(mustRead(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	var fs [][]byte
	var cis []gopacket.CaptureInfo
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return fs, cis
		}
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, data)
		cis = append(cis, ci)
	}
}

// swapPcap rewrites a little-endian classic pcap file in big-endian byte
// order, as a big-endian host's libpcap writes it.
func swapPcap(t testing.TB, b []byte) []byte {
	t.Helper()
	out := bytes.Clone(b)
	sw32 := func(i int) { binary.BigEndian.PutUint32(out[i:], binary.LittleEndian.Uint32(b[i:])) }
	sw16 := func(i int) { binary.BigEndian.PutUint16(out[i:], binary.LittleEndian.Uint16(b[i:])) }
	sw32(0)
	sw16(4)
	sw16(6)
	for _, i := range []int{8, 12, 16, 20} {
		sw32(i)
	}
	for i := 24; i < len(b); {
		if i+16 > len(b) {
			t.Fatal("cut record header")
		}
		caplen := int(binary.LittleEndian.Uint32(b[i+8:]))
		for j := 0; j < 16; j += 4 {
			sw32(i + j)
		}
		i += 16 + caplen
	}
	return out
}

// TestReadGopacketWrittenFiles: files gopacket's writers make — classic
// pcap with microsecond and nanosecond timestamps in both byte orders and
// several link types, records cut short; pcapng with several interfaces
// of different link types, snap lengths and time offsets, packet options
// and statistics blocks — read back as gopacket reads them.
func TestReadGopacketWrittenFiles(t *testing.T) {
	eth, ethCI := frames(t, "../craft/testdata/linux-http.pcap")
	sll2, _ := frames(t, "../craft/testdata/linux-sll2.pcap")
	raw, _ := frames(t, "../craft/testdata/ext.pcap")
	if len(eth) < 20 || len(sll2) < 5 || len(raw) < 20 {
		t.Fatalf("test captures: %d, %d, %d frames", len(eth), len(sll2), len(raw))
	}
	base := time.Unix(1700000000, 123456789)
	for _, tc := range []struct {
		name   string
		nanos  bool
		link   layers.LinkType
		frames [][]byte
	}{
		{"ethernet-micro", false, layers.LinkTypeEthernet, eth},
		{"ethernet-nano", true, layers.LinkTypeEthernet, eth},
		{"sll2-nano", true, layers.LinkType(276), sll2},
		{"raw-micro", false, layers.LinkTypeRaw, raw},
		{"ipv4-nano", true, layers.LinkTypeIPv4, raw},
		{"null-micro", false, layers.LinkTypeNull, eth}, // a link type craft refuses: passed through
	} {
		var buf bytes.Buffer
		w := pcapgo.NewWriter(&buf)
		if tc.nanos {
			w = pcapgo.NewWriterNanos(&buf)
		}
		if err := w.WriteFileHeader(65535, tc.link); err != nil {
			t.Fatal(err)
		}
		for i, f := range tc.frames {
			ci := gopacket.CaptureInfo{Timestamp: base.Add(time.Duration(i) * 1001 * time.Microsecond), CaptureLength: len(f), Length: len(f)}
			if i%5 == 3 && len(f) > 20 {
				// Cut short by the snap length.
				ci.CaptureLength, f = 20, f[:20]
			}
			if err := w.WritePacket(ci, f); err != nil {
				t.Fatal(err)
			}
		}
		differential(t, tc.name, buf.Bytes())
		differential(t, tc.name+"-bigendian", swapPcap(t, buf.Bytes()))
		if got, _ := readAll(t, buf.Bytes()); len(got) != len(tc.frames) || got[0].link != LinkType(tc.link) {
			t.Fatalf("%s: %d records, want %d", tc.name, len(got), len(tc.frames))
		}
	}

	// pcapng: three interfaces, packets spread over them.
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriterInterface(&buf, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 262144},
		pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "pcapfile test", Comment: "a comment of 30 characters ok"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(pcapgo.NgInterface{Name: "raw0", LinkType: layers.LinkTypeRaw, TimestampOffset: 3600}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(pcapgo.NgInterface{Name: "sll2", LinkType: layers.LinkType(276), SnapLength: 96, Description: "odd length"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range max(len(eth), len(raw)) {
		ts := ethCI[0].Timestamp.Add(time.Duration(i) * time.Millisecond)
		if i < len(eth) {
			ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(eth[i]), Length: len(eth[i])}
			opts := pcapgo.NgPacketOptions{}
			if i%4 == 1 {
				opts.Comments = []string{"odd", "comment of 7"}
			}
			if err := w.WritePacketWithOptions(ci, eth[i], opts); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if i < len(raw) {
			f := raw[i]
			ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Microsecond), CaptureLength: len(f), Length: len(f) + i%3, InterfaceIndex: 1}
			if i%3 != 0 {
				ci.CaptureLength, f = len(f)-1, f[:len(f)-1]
			}
			if err := w.WritePacket(ci, f); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if i < len(sll2) {
			ci := gopacket.CaptureInfo{Timestamp: ts.Add(2 * time.Microsecond), CaptureLength: len(sll2[i]), Length: len(sll2[i]), InterfaceIndex: 2}
			if err := w.WritePacket(ci, sll2[i]); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if i == 5 {
			if err := w.WriteInterfaceStats(0, pcapgo.NgInterfaceStatistics{LastUpdate: ts, PacketsReceived: 5, Comment: "stats"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	differential(t, "pcapng", buf.Bytes())
	got, err := readAll(t, buf.Bytes())
	if err != nil || len(got) != n {
		t.Fatalf("pcapng: %d records (%v), want %d", len(got), err, n)
	}
	// if_tsoffset: interface 1's timestamps are an hour later.
	if want := ethCI[0].Timestamp.Add(time.Hour + time.Microsecond); !got[1].ts.Equal(want) || got[1].iface != 1 || got[1].link != LinkTypeRaw {
		t.Fatalf("pcapng record 2: %v iface %d link %d; want %v on interface 1, raw", got[1].ts, got[1].iface, got[1].link, want)
	}
}

// ng builds pcapng files block by block, in either byte order, for what
// gopacket's writer does not make: big-endian sections, several sections,
// other timestamp resolutions, Simple and obsolete Packet Blocks, unknown
// blocks, and malformed blocks.
type ng struct {
	o order
	b []byte
}

// order is a byte order that can append.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

func (w *ng) u16(v uint16) []byte { return w.o.AppendUint16(nil, v) }
func (w *ng) u32(v uint32) []byte { return w.o.AppendUint32(nil, v) }

// opt is one option, padded to 32 bits.
func (w *ng) opt(code uint16, val []byte) []byte {
	b := append(w.u16(code), w.u16(uint16(len(val)))...)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// optionsEnd closes a list of options with opt_endofopt.
func (w *ng) options(opts ...[]byte) []byte {
	if len(opts) == 0 {
		return nil
	}
	var b []byte
	for _, o := range opts {
		b = append(b, o...)
	}
	return append(b, 0, 0, 0, 0)
}

// block appends a block: type, total length, body (padded), total length.
func (w *ng) block(typ uint32, body ...[]byte) {
	var bb []byte
	for _, p := range body {
		bb = append(bb, p...)
	}
	for len(bb)%4 != 0 {
		bb = append(bb, 0)
	}
	total := uint32(12 + len(bb))
	w.b = w.o.AppendUint32(w.b, typ)
	w.b = w.o.AppendUint32(w.b, total)
	w.b = append(w.b, bb...)
	w.b = w.o.AppendUint32(w.b, total)
}

func (w *ng) shb(o order, opts ...[]byte) { w.shbVersion(o, 1, 0, opts...) }

func (w *ng) shbVersion(o order, major, minor uint16, opts ...[]byte) {
	w.o = o
	w.block(ngSectionHeader, w.u32(ngByteOrderMagic), w.u16(major), w.u16(minor), w.o.AppendUint64(nil, ^uint64(0)), w.options(opts...))
}

func (w *ng) idb(link uint16, snap uint32, opts ...[]byte) {
	w.block(ngInterfaceDesc, w.u16(link), w.u16(0), w.u32(snap), w.options(opts...))
}

func (w *ng) epb(iface uint32, ts uint64, data []byte, wire uint32, opts ...[]byte) {
	w.block(ngEnhancedPacket, w.u32(iface), w.u32(uint32(ts>>32)), w.u32(uint32(ts)), w.u32(uint32(len(data))), w.u32(wire), pad(data), w.options(opts...))
}

func (w *ng) pb(iface uint16, ts uint64, data []byte, wire uint32) {
	w.block(ngObsoletePacket, w.u16(iface), w.u16(0), w.u32(uint32(ts>>32)), w.u32(uint32(ts)), w.u32(uint32(len(data))), w.u32(wire), pad(data))
}

func (w *ng) spb(wire uint32, data []byte) {
	w.block(ngSimplePacket, w.u32(wire), data)
}

func pad(b []byte) []byte {
	b = bytes.Clone(b)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// tsresol is an if_tsresol option.
func (w *ng) tsresol(v byte) []byte { return w.opt(ngOptIfTsresol, []byte{v}) }

// handBuilt returns a pcapng file of two sections, little- then
// big-endian (or the reverse), exercising every block this reader knows
// and some it skips, and the records it must give. binary reports whether
// an interface uses a power-of-2 resolution (gopacket rounds those
// differently).
func handBuilt(first, second order, binaryRes bool) ([]byte, []record) {
	w := &ng{o: first} // the section header's options are built before shb sets it
	var want []record
	p := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i)
		}
		return b
	}
	sec := uint64(1700000000)
	w.shb(first, w.opt(4, []byte("tcpcraft test")))
	w.block(0x0bad, []byte("an unknown block, skipped")) // local use
	// Interface 0: Ethernet, microseconds (no if_tsresol), snap 64.
	w.idb(1, 64, w.opt(2, []byte("eth0")))
	// Interface 1: raw, nanoseconds.
	w.idb(101, 0, w.tsresol(9), w.opt(14, w.o.AppendUint64(nil, 0)))
	w.epb(0, sec*1e6+123456, p(60, 1), 60)
	want = append(want, record{data: p(60, 1), ts: time.Unix(int64(sec), 123456000), caplen: 60, wire: 60, link: 1, iface: 0})
	w.epb(1, sec*1e9+987654321, p(41, 2), 1500, w.opt(1, []byte("comment")), w.opt(2, w.u32(1)))
	want = append(want, record{data: p(41, 2), ts: time.Unix(int64(sec), 987654321), caplen: 41, wire: 1500, link: 101, iface: 1})
	w.block(5, w.u32(0), w.u32(0), w.u32(0)) // Interface Statistics Block
	// Simple Packet Block: interface 0, its snap length 64 cuts the data.
	w.spb(100, p(100, 3))
	want = append(want, record{data: p(64, 3), caplen: 64, wire: 100, link: 1})
	w.spb(30, p(30, 4))
	want = append(want, record{data: p(30, 4), caplen: 30, wire: 30, link: 1})
	// Obsolete Packet Block on interface 1.
	w.pb(1, sec*1e9+5, p(23, 5), 23)
	want = append(want, record{data: p(23, 5), ts: time.Unix(int64(sec), 5), caplen: 23, wire: 23, link: 101, iface: 1})
	// Interface 2: SLL2, milliseconds, an hour's if_tsoffset.
	w.idb(276, 0, w.tsresol(3), w.opt(14, w.o.AppendUint64(nil, 3600)))
	w.epb(2, sec*1e3+7, p(20, 6), 20)
	want = append(want, record{data: p(20, 6), ts: time.Unix(int64(sec)+3600, 7e6), caplen: 20, wire: 20, link: 276, iface: 2})

	// Second section: interfaces start over.
	w.shb(second)
	w.idb(113, 0, w.tsresol(6))
	if binaryRes {
		// 2^-20 s units: 0.75 s is exact; 1 unit is 953.67 ns, truncated.
		w.idb(228, 0, w.tsresol(0x80|20))
		w.epb(1, sec<<20|3<<18, p(28, 7), 28)
		want = append(want, record{data: p(28, 7), ts: time.Unix(int64(sec), 75e7), caplen: 28, wire: 28, link: 228, iface: 1})
		w.epb(1, sec<<20|1, p(28, 8), 28)
		want = append(want, record{data: p(28, 8), ts: time.Unix(int64(sec), 953), caplen: 28, wire: 28, link: 228, iface: 1})
		// 2^-40: one unit is 0.9 ps (64 bits hold 194 days of them);
		// 2^39 units are half a second.
		w.idb(229, 0, w.tsresol(0x80|40))
		w.epb(2, 1e6<<40|1<<39|1, p(40, 9), 40)
		want = append(want, record{data: p(40, 9), ts: time.Unix(1e6, 5e8), caplen: 40, wire: 40, link: 229, iface: 2})
	} else {
		// Picoseconds (10^-12): 64 bits hold 213 days of them.
		w.idb(228, 0, w.tsresol(12))
		w.epb(1, 1e6*1e12+123456789012, p(28, 7), 28)
		want = append(want, record{data: p(28, 7), ts: time.Unix(1e6, 123456789), caplen: 28, wire: 28, link: 228, iface: 1})
	}
	w.epb(0, sec*1e6+1, p(44, 10), 44)
	want = append(want, record{data: p(44, 10), ts: time.Unix(int64(sec), 1000), caplen: 44, wire: 44, link: 113, iface: 0})
	w.spb(8, p(8, 11))
	want = append(want, record{data: p(8, 11), caplen: 8, wire: 8, link: 113})
	w.block(0x80000001, p(9, 0)) // a custom block of unknown type
	for i := range want {
		want[i].checkIfaceIdx = true
	}
	return w.b, want
}

// TestReadPcapngHandBuilt: sections in both byte orders one after the
// other, interfaces with different link types and resolutions, Enhanced,
// Simple and obsolete Packet Blocks, blocks to skip — read as built and,
// for powers of 10, as gopacket reads them.
func TestReadPcapngHandBuilt(t *testing.T) {
	le, be := order(binary.LittleEndian), order(binary.BigEndian)
	for _, tc := range []struct {
		name          string
		first, second order
		binaryRes     bool
	}{
		{"le-be", le, be, false},
		{"be-le", be, le, false},
		{"be-be-binary", be, be, true},
		{"le-le-binary", le, le, true},
	} {
		b, want := handBuilt(tc.first, tc.second, tc.binaryRes)
		got, err := readAll(t, b)
		if err != nil {
			t.Fatalf("%s: %v after %d records", tc.name, err, len(got))
		}
		sameRecords(t, tc.name, got, want)
		if !tc.binaryRes {
			// gopacket multiplies the fraction by 10^9/2^n truncated for
			// binary resolutions (0 for 2^-30 and finer): compared on
			// powers of 10 only.
			sameRecords(t, tc.name+" (gopacket)", got, readGopacket(t, b))
		}
	}
}

// TestReadPcapngSkipsUnknownVersion: a section of a version this reader
// does not know is skipped to the next Section Header Block (the draft's
// §3.4: a reader MUST), its blocks unread, whatever they hold; the
// sections around it read as gopacket reads them with SkipUnknownVersion.
func TestReadPcapngSkipsUnknownVersion(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	for _, minor := range []uint16{0, 2} { // 1.2 reads as 1.0
		w := &ng{}
		w.shb(le)
		w.idb(101, 0)
		w.epb(0, 1e6, []byte("first section"), 13)
		w.shbVersion(be, 2, 0)
		w.idb(1, 0, w.opt(ngOptIfTsresol, []byte{1, 2, 3})) // malformed for 1.0
		w.epb(7, 0, []byte("in a section of version 2.0"), 9)
		w.block(ngEnhancedPacket, []byte("not an EPB of 1.0"))
		w.shbVersion(le, 1, minor)
		w.idb(228, 0)
		w.epb(0, 2e6, []byte("third section"), 13)
		got, err := readAll(t, w.b)
		if err != nil {
			t.Fatalf("1.%d: %v", minor, err)
		}
		want := []record{
			{data: []byte("first section"), ts: time.Unix(1, 0), caplen: 13, wire: 13, link: 101, checkIfaceIdx: true},
			{data: []byte("third section"), ts: time.Unix(2, 0), caplen: 13, wire: 13, link: 228, checkIfaceIdx: true},
		}
		sameRecords(t, fmt.Sprintf("skipped section, then 1.%d", minor), got, want)
		if minor != 0 {
			continue // gopacket skips 1.2 sections as unknown
		}
		r, err := pcapgo.NewNgReader(bytes.NewReader(w.b), pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			t.Fatal(err)
		}
		var ref []record
		for {
			data, ci, err := r.ReadPacketData()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("gopacket: %v", err)
			}
			ref = append(ref, record{data: data, ts: ci.Timestamp, caplen: ci.CaptureLength, wire: ci.Length, link: LinkType(ci.AncillaryData[0].(layers.LinkType)), iface: ci.InterfaceIndex, checkIfaceIdx: true})
		}
		sameRecords(t, "skipped section (gopacket)", got, ref)
	}
}

// TestReadGzip: a gzipped capture reads as the plain one, and a cut
// gzipped stream ends with a truncation error.
func TestReadGzip(t *testing.T) {
	ngFile, _ := handBuilt(binary.LittleEndian, binary.BigEndian, false)
	for name, plain := range map[string][]byte{"pcap": mustRead(t, "../cmd/testdata/linux-http.pcap"), "pcapng": ngFile} {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(plain)
		zw.Close()
		want, err := readAll(t, plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, z.Bytes())
		if err != nil {
			t.Fatalf("%s.gz: %v", name, err)
		}
		sameRecords(t, name+".gz", got, want)
		got, err = readAll(t, z.Bytes()[:z.Len()*2/3])
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) == 0 || len(got) >= len(want) {
			t.Fatalf("%s.gz cut: %d of %d records, error %v; want some, then unexpected EOF", name, len(got), len(want), err)
		}
	}
}

// TestReadMalformed: every malformed or truncated input gives an error
// that says what is wrong, after the records before it, and the error
// stays.
func TestReadMalformed(t *testing.T) {
	le := binary.LittleEndian
	pcap := mustRead(t, "../cmd/testdata/linux-http.pcap") // 24 records, 262144 snap length
	withU32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		le.PutUint32(b[off:], v)
		return b
	}
	firstRec := 24 // offset of the first record header
	ngOK := func(extra func(w *ng)) []byte {
		w := &ng{}
		w.shb(le)
		w.idb(1, 0)
		w.epb(0, 1, []byte("packet one"), 10)
		extra(w)
		return w.b
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		open    string // error from NewReader
		records int    // records before the error
		err     string // error from ReadPacket
		eof     bool   // the error wraps io.ErrUnexpectedEOF
	}{
		{name: "empty", b: nil, open: "not a pcap or pcapng file: only 0 bytes"},
		{name: "3 bytes", b: pcap[:3], open: "only 3 bytes"},
		{name: "cut file header", b: pcap[:20], open: "not a pcap or pcapng file: file header: unexpected EOF"},
		{name: "bad magic", b: withU32(pcap, 0, 0x12345678), open: "unknown magic number 0x12345678"},
		{name: "bad version", b: withU32(pcap, 4, 0x00010002), open: "unsupported pcap version 2.1"},
		{name: "record past the snap length", b: withU32(withU32(pcap, 16, 300000), firstRec+8, 300001), err: "capture length exceeds snap length: 300001 > 300000"},
		{name: "record past 256 KiB", b: withU32(pcap, firstRec+8, 262145), err: "capture length exceeds snap length: 262145 > 262144"},
		{name: "record past the maximum", b: withU32(withU32(withU32(pcap, 16, 1<<30), firstRec+8, MaxRecord+1), firstRec+12, MaxRecord+1), err: "exceeds the 16777216-byte maximum record"},
		{name: "captured more than sent", b: withU32(pcap, firstRec+12, 10), err: "capture length exceeds original packet length"},
		{name: "cut record header", b: pcap[:len(pcap)-len(pcap)+firstRec+10], err: "unexpected EOF", eof: true},
		{name: "cut last record", b: pcap[:len(pcap)-3], records: 23, err: "unexpected EOF", eof: true},

		{name: "ng bad byte-order magic", b: withU32(ngOK(func(*ng) {}), 8, 0x11223344), open: "not a readable pcapng file: pcapng block 1 (section header): byte-order magic"},
		{name: "ng version 2 only", b: withU32(ngOK(func(*ng) {}), 12, 2), err: "no section of a version this reader knows (1.0), only version 2.0 (block 1)"},
		{name: "ng short section header", b: withU32(ngOK(func(*ng) {}), 4, 24), open: "total length 24, below the minimum 28"},
		{name: "ng cut section header", b: ngOK(func(*ng) {})[:20], open: "unexpected EOF"},
		{name: "ng huge section header", b: withU32(ngOK(func(*ng) {}), 4, 1<<30), open: "exceeds the 16777216-byte maximum"},
		{name: "ng section trailer", b: withU32(ngOK(func(*ng) {}), 24, 32), open: "trailing total length 32 differs from the leading 28"},
		{name: "ng length not a multiple of 4", b: ngOK(func(w *ng) { w.b = append(w.b, 6, 0, 0, 0, 33, 0, 0, 0) }), records: 1, err: "pcapng block 4: total length 33 is not a multiple of 4"},
		{name: "ng length below 12", b: ngOK(func(w *ng) { w.b = append(w.b, 6, 0, 0, 0, 8, 0, 0, 0) }), records: 1, err: "total length 8, below the 12 bytes"},
		{name: "ng block past the maximum", b: ngOK(func(w *ng) { w.b = append(w.b, 6, 0, 0, 0, 0, 0, 0, 2) }), records: 1, err: "exceeds the 16777216-byte maximum"},
		{name: "ng block trailer", b: ngOK(func(w *ng) { w.epb(0, 2, []byte("x"), 1); w.b[len(w.b)-4] = 99 }), records: 1, err: "trailing total length 99 differs"},
		{name: "ng cut block", b: ngOK(func(w *ng) { w.epb(0, 2, []byte("packet two"), 10); w.b = w.b[:len(w.b)-9] }), records: 1, err: "pcapng block 4: unexpected EOF", eof: true},
		{name: "ng cut block header", b: ngOK(func(w *ng) { w.b = append(w.b, 6, 0, 0, 0, 40) }), records: 1, err: "unexpected EOF", eof: true},
		{name: "ng cut unknown block", b: ngOK(func(w *ng) { w.block(99, make([]byte, 40)); w.b = w.b[:len(w.b)-20] }), records: 1, err: "unexpected EOF", eof: true},
		{name: "ng packet before interface", b: func() []byte { w := &ng{}; w.shb(le); w.epb(0, 1, []byte("x"), 1); return w.b }(), err: "pcapng block 2 (enhanced packet block): interface 0, but the section describes 0"},
		{name: "ng interface out of range", b: ngOK(func(w *ng) { w.epb(1, 1, []byte("x"), 1) }), records: 1, err: "interface 1, but the section describes 1"},
		{name: "ng interfaces end with the section", b: ngOK(func(w *ng) { w.shb(le); w.epb(0, 1, []byte("x"), 1) }), records: 1, err: "interface 0, but the section describes 0"},
		{name: "ng simple packet before interface", b: func() []byte { w := &ng{}; w.shb(le); w.spb(1, []byte("x")); return w.b }(), err: "simple packet block): no interface description block"},
		{name: "ng captured length past the block", b: ngOK(func(w *ng) {
			w.block(ngEnhancedPacket, w.u32(0), w.u32(0), w.u32(0), w.u32(9), w.u32(9), []byte("12345678"))
		}), records: 1, err: "captured length 9 runs past the end of the block"},
		{name: "ng short packet block", b: ngOK(func(w *ng) { w.block(ngEnhancedPacket, w.u32(0), w.u32(0)) }), records: 1, err: "body of 8 bytes, want at least 20"},
		{name: "ng short simple packet block", b: ngOK(func(w *ng) { w.block(ngSimplePacket) }), records: 1, err: "body of 0 bytes, want at least 4"},
		{name: "ng short interface block", b: ngOK(func(w *ng) { w.block(ngInterfaceDesc, w.u32(1)) }), records: 1, err: "interface description block): body of 4 bytes"},
		{name: "ng tsresol 10^-20", b: ngOK(func(w *ng) { w.idb(1, 0, w.tsresol(20)) }), records: 1, err: "if_tsresol 10^-20: finer than 10^-19"},
		{name: "ng tsresol 2^-64", b: ngOK(func(w *ng) { w.idb(1, 0, w.tsresol(0x80|64)) }), records: 1, err: "if_tsresol 2^-64: finer than 2^-63"},
		{name: "ng tsresol of 2 bytes", b: ngOK(func(w *ng) { w.idb(1, 0, w.opt(ngOptIfTsresol, []byte{6, 0})) }), records: 1, err: "if_tsresol of 2 bytes, want 1"},
		{name: "ng tsoffset of 4 bytes", b: ngOK(func(w *ng) { w.idb(1, 0, w.opt(ngOptIfTsoffset, w.u32(1))) }), records: 1, err: "if_tsoffset of 4 bytes, want 8"},
		{name: "ng option past the block", b: ngOK(func(w *ng) {
			w.block(ngInterfaceDesc, w.u16(1), w.u16(0), w.u32(0), w.u16(2), w.u16(200), []byte("eth0"))
		}), records: 1, err: "option 2 of 200 bytes runs past the end of the block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.b))
			if tc.open != "" {
				if err == nil || !strings.Contains(err.Error(), tc.open) {
					t.Fatalf("NewReader: %v, want %q", err, tc.open)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			for i := range tc.records {
				if _, _, err := r.ReadPacket(); err != nil {
					t.Fatalf("record %d: %v", i+1, err)
				}
			}
			_, _, err = r.ReadPacket()
			if err == nil || !strings.Contains(err.Error(), tc.err) || errors.Is(err, io.ErrUnexpectedEOF) != tc.eof {
				t.Fatalf("record %d: %v, want %q (unexpected EOF: %v)", tc.records+1, err, tc.err, tc.eof)
			}
			if _, _, again := r.ReadPacket(); again != err {
				t.Fatalf("after the error: %v, want the same error again", again)
			}
		})
	}
}

// TestReadAllocationsBounded: a record or block that claims 16 MiB in a
// file of a few hundred bytes costs no more than the bytes that are there
// (the buffer grows as they arrive), and reading a capture allocates
// nothing per record.
func TestReadAllocationsBounded(t *testing.T) {
	pcap := bytes.Clone(mustRead(t, "../cmd/testdata/linux-http.pcap"))
	binary.LittleEndian.PutUint32(pcap[16:], MaxRecord) // snap length
	binary.LittleEndian.PutUint32(pcap[24+8:], MaxRecord)
	binary.LittleEndian.PutUint32(pcap[24+12:], MaxRecord)
	w := &ng{}
	w.shb(binary.LittleEndian)
	w.idb(1, 0)
	w.b = binary.LittleEndian.AppendUint32(w.b, ngEnhancedPacket)
	w.b = binary.LittleEndian.AppendUint32(w.b, MaxRecord)
	w.b = append(w.b, make([]byte, 300)...)
	for name, b := range map[string][]byte{"pcap": pcap, "pcapng": w.b} {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err = r.ReadPacket()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: %v, want unexpected EOF", name, err)
		}
		// What the reader allocates is at most a 64 KiB first step; 1 MiB
		// leaves room for anything the runtime allocates meanwhile and is
		// a sixteenth of what trusting the length would cost.
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
			t.Fatalf("%s: reading a cut 16 MiB record allocated %d bytes, want < 1 MiB", name, got)
		}
	}

	// 200 records of each kind; after the first (which sizes the buffer)
	// none allocates.
	ngw := &ng{}
	ngw.shb(binary.LittleEndian)
	ngw.idb(1, 0)
	eth, _ := frames(t, "../cmd/testdata/linux-http.pcap")
	var pw bytes.Buffer
	pcw := pcapgo.NewWriter(&pw)
	pcw.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for i := range 200 {
		f := eth[i%len(eth)]
		ngw.epb(0, uint64(i), f, uint32(len(f)))
		ngw.spb(uint32(len(f)), f)
		pcw.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(int64(i), 0), CaptureLength: len(f), Length: len(f)}, f)
	}
	for name, b := range map[string][]byte{"pcap": pw.Bytes(), "pcapng": ngw.b} {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var rerr error
		allocs := testing.AllocsPerRun(150, func() {
			if _, _, err := r.ReadPacket(); err != nil {
				rerr = err
			}
		})
		if rerr != nil {
			t.Fatalf("%s: %v", name, rerr)
		}
		if allocs != 0 {
			t.Fatalf("%s: %.1f allocations per record, want 0", name, allocs)
		}
	}
}

// TestWriterReadsBack: what Writer writes, this reader reads back.
func TestWriterReadsBack(t *testing.T) {
	var buf bytes.Buffer
	pw, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	eth, _ := frames(t, "../craft/testdata/ext.pcap")
	base := time.Unix(1800000000, 999999999)
	for i, f := range eth {
		ts := base.Add(time.Duration(i) * time.Nanosecond)
		if i%2 == 0 {
			err = pw.WritePacket(ts, f)
		} else {
			err = pw.WriteTruncated(ts, f[:len(f)/2], len(f))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(eth) {
		t.Fatalf("%d records, want %d", len(got), len(eth))
	}
	for i, r := range got {
		want := eth[i]
		if i%2 == 1 {
			want = want[:len(want)/2]
		}
		if !bytes.Equal(r.data, want) || r.wire != len(eth[i]) || !r.ts.Equal(base.Add(time.Duration(i))) || r.link != LinkTypeRaw {
			t.Fatalf("record %d: %d bytes of %d at %v link %d", i, len(r.data), r.wire, r.ts, r.link)
		}
	}
	sameRecords(t, "writer", got, readGopacket(t, buf.Bytes()))
}

// TestBinaryLinksNoGopacket: the tcpcraft binary does not link gopacket
// (its package initialisation would cost every run again; see the package
// doc). Tests may import it.
func TestBinaryLinksNoGopacket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-deps", "github.com/tcpcraft/tcpcraft").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/tcpcraft/tcpcraft/pcapfile") {
		t.Fatalf("go list -deps names %d packages, not pcapfile", len(deps))
	}
	for _, d := range deps {
		if strings.Contains(d, "gopacket") {
			t.Errorf("the binary links %s", d)
		}
	}
}
