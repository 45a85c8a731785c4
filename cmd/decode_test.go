package cmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/craft"
)

// decodeResult is what one run of the decode command produced.
type decodeResult struct {
	stdout, stderr string
	code           int
}

// runDecodeCmd runs `tcpcraft decode args...` in-process, with stdin,
// stdout and stderr captured. A panic fails the test (it is not
// recovered).
func runDecodeCmd(t *testing.T, stdin string, args ...string) decodeResult {
	t.Helper()
	r := runAppWith(t, context.Background(), stdin, append([]string{"decode"}, args...)...)
	return decodeResult{stdout: r.stdout, stderr: r.stderr, code: r.code}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// writeTemp writes b to a file in a fresh temporary directory.
func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var timestampRE = regexp.MustCompile(`^(\d\d):(\d\d):(\d\d)\.(\d{6}) (.*)$`)

// checkAgainstTcpdump compares decode's output with tcpdump's for the same
// file: the text after the timestamp must be identical (tcpdump's
// application-layer suffix such as ": HTTP: GET ..." cut), and the seconds
// and microseconds of the timestamp must agree (hours and minutes depend on
// the local time zone).
func checkAgainstTcpdump(t *testing.T, got []string, golden string) {
	t.Helper()
	want := lines(golden)
	if len(got) != len(want) {
		t.Fatalf("%d lines, tcpdump printed %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	app := regexp.MustCompile(`(, length \d+): .*$`)
	for i := range got {
		g, w := timestampRE.FindStringSubmatch(got[i]), timestampRE.FindStringSubmatch(want[i])
		if g == nil || w == nil {
			t.Fatalf("line %d has no timestamp:\n got %s\nwant %s", i+1, got[i], want[i])
		}
		if g[3] != w[3] || g[4] != w[4] {
			t.Errorf("line %d: time %s:%s.%s, tcpdump %s:%s.%s", i+1, g[2], g[3], g[4], w[2], w[3], w[4])
		}
		if wantText := app.ReplaceAllString(w[5], "$1"); g[5] != wantText {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, g[5], wantText)
		}
	}
}

func TestDecodePcapMatchesTcpdump(t *testing.T) {
	r := runDecodeCmd(t, "", "testdata/linux-http.pcap")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	checkAgainstTcpdump(t, lines(r.stdout), string(readTestdata(t, "linux-http.tcpdump.txt")))

	r = runDecodeCmd(t, "", "--absolute", "testdata/linux-http.pcap")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("--absolute: exit %d, stderr %q", r.code, r.stderr)
	}
	checkAgainstTcpdump(t, lines(r.stdout), string(readTestdata(t, "linux-http.tcpdump-S.txt")))
}

// pcapFrames reads the frames and capture infos of a testdata pcap.
func pcapFrames(t *testing.T, name string) ([][]byte, []gopacket.CaptureInfo) {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(readTestdata(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	var cis []gopacket.CaptureInfo
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		frames = append(frames, data)
		cis = append(cis, ci)
	}
	return frames, cis
}

// writePcap writes frames as a classic pcap with the given link type.
func writePcap(t *testing.T, link layers.LinkType, frames [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, link); err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Second), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDecodePcapng(t *testing.T) {
	frames, cis := pcapFrames(t, "linux-http.pcap")
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WritePacket(cis[i], f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	p := writeTemp(t, "http.pcapng", buf.Bytes())
	r := runDecodeCmd(t, "", p)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	checkAgainstTcpdump(t, lines(r.stdout), string(readTestdata(t, "linux-http.tcpdump.txt")))
}

// TestDecodePcapngMixedLinkTypes: a pcapng file whose interfaces have
// different link types (mergecap's merge of an SLL2, a raw-IP and an SLL
// capture, microsecond and nanosecond resolutions) decodes every packet
// with its own interface's link type: the lines are those of the three
// files decoded one by one. (Through gopacket's default options decode
// kept only the first interface's 10 packets of 29.)
func TestDecodePcapngMixedLinkTypes(t *testing.T) {
	r := runDecodeCmd(t, "", "../pcapfile/testdata/mergecap-mixed.pcapng")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var want []string
	for _, p := range []string{"../craft/testdata/linux-sll2.pcap", "../draw/testdata/demo.pcap", "../craft/testdata/linux-sll.pcap"} {
		one := runDecodeCmd(t, "", p)
		if one.code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", p, one.code, one.stderr)
		}
		want = append(want, lines(one.stdout)...)
	}
	got := lines(r.stdout)
	if len(got) != 29 {
		t.Fatalf("%d lines, want 29", len(got))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("decoded:\n%s\nwant (the three files):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDecodeTruncatedLastRecord(t *testing.T) {
	raw := readTestdata(t, "linux-http.pcap")
	p := writeTemp(t, "cut.pcap", raw[:len(raw)-10])
	r := runDecodeCmd(t, "", p)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0 (23 packets decoded); stderr %q", r.code, r.stderr)
	}
	if n := len(lines(r.stdout)); n != 23 {
		t.Errorf("%d lines decoded, want 23", n)
	}
	if want := "packet 24: record cut short (truncated file)\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

func TestDecodeUnreadableFiles(t *testing.T) {
	raw := readTestdata(t, "linux-http.pcap")
	rng := rand.New(rand.NewSource(1))
	random := make([]byte, 4096)
	rng.Read(random)
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"empty", "not a pcap or pcapng file: only 0 bytes", nil},
		{"three-bytes", "not a pcap or pcapng file: only 3 bytes", raw[:3]},
		{"cut-file-header", "not a pcap or pcapng file", raw[:10]},
		{"header-only", "no packets", raw[:24]},
		{"first-record-cut", "none of 1 packets could be decoded", raw[:24+16+20]},
		{"random", "not a pcap or pcapng file", random},
		{"pcapng-garbage", "not a readable pcapng file", append([]byte{0x0a, 0x0d, 0x0d, 0x0a}, random[:100]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runDecodeCmd(t, "", writeTemp(t, "f.pcap", tc.data))
			if r.code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", r.stderr, tc.want)
			}
		})
	}
	r := runDecodeCmd(t, "", filepath.Join(t.TempDir(), "missing.pcap"))
	if r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDecodeRandomRecordsNeverPanic feeds valid pcap headers followed by
// garbage records and mutated copies of the good capture: the command must
// neither panic nor print a decoded line for an undecodable packet.
func TestDecodeRandomRecordsNeverPanic(t *testing.T) {
	raw := readTestdata(t, "linux-http.pcap")
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 150; i++ {
		b := append([]byte{}, raw...)
		for j := 0; j < 1+rng.Intn(20); j++ {
			b[24+rng.Intn(len(b)-24)] = byte(rng.Intn(256))
		}
		if i%3 == 0 {
			b = b[:24+rng.Intn(len(b)-24)]
		}
		r := runDecodeCmd(t, "", writeTemp(t, "m.pcap", b))
		if r.code != 0 && r.code != 1 {
			t.Fatalf("mutation %d: exit %d; stderr %q", i, r.code, r.stderr)
		}
		if (r.code == 0) != (r.stdout != "") {
			t.Fatalf("mutation %d: exit %d with stdout %q", i, r.code, r.stdout)
		}
	}
}

// TestDecodeMalformedOptionMidFile: a packet with a malformed option between
// two good ones gets one clear error line; the others are decoded.
func TestDecodeMalformedOptionMidFile(t *testing.T) {
	frames, _ := pcapFrames(t, "linux-http.pcap")
	bad := append([]byte{}, frames[2]...) // ACK with options nop,nop,TS
	// Ethernet 14 + IPv4 20 + TCP: option bytes start at TCP offset 20.
	// Options: NOP at 20, NOP at 21, timestamps (kind 8) at 22 with its
	// length byte at 23. Set that length to 1.
	const tcpStart = 14 + 20
	if bad[tcpStart+20] != 1 || bad[tcpStart+21] != 1 || bad[tcpStart+22] != 8 {
		t.Fatalf("fixture changed: options start % x", bad[tcpStart+20:tcpStart+24])
	}
	bad[tcpStart+23] = 1
	p := writeTemp(t, "bad.pcap", writePcap(t, layers.LinkTypeEthernet, [][]byte{frames[0], bad, frames[1]}))
	r := runDecodeCmd(t, "", "--absolute", p)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if want := "packet 2: tcp option at offset 22: length 1 is less than 2\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	got := lines(r.stdout)
	if len(got) != 2 || !strings.Contains(got[0], "Flags [S],") || !strings.Contains(got[1], "Flags [S.],") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
}

func TestDecodeNonTCPPackets(t *testing.T) {
	frames, _ := pcapFrames(t, "linux-http.pcap")
	udp := append([]byte{}, frames[0]...)
	udp[14+9] = 17 // protocol UDP
	arp := append([]byte{}, frames[0][:14]...)
	arp[12], arp[13] = 0x08, 0x06
	arp = append(arp, make([]byte, 28)...)
	p := writeTemp(t, "mixed.pcap", writePcap(t, layers.LinkTypeEthernet, [][]byte{udp, frames[0], arp}))
	r := runDecodeCmd(t, "", p)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	want := "packet 1: not TCP: protocol 17 (UDP)\npacket 3: not IP: ethertype 0x0806 (ARP)\n"
	if r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if len(lines(r.stdout)) != 1 {
		t.Errorf("stdout %q, want one line", r.stdout)
	}
	// Nothing decodable at all: exit 1.
	p = writeTemp(t, "udp.pcap", writePcap(t, layers.LinkTypeEthernet, [][]byte{udp}))
	if r := runDecodeCmd(t, "", p); r.code != 1 || !strings.Contains(r.stderr, "none of 1 packets could be decoded") {
		t.Errorf("only UDP: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDecodeRawAndSLLFiles(t *testing.T) {
	frames, _ := pcapFrames(t, "linux-http.pcap")
	want := runDecodeCmd(t, "", "--json", "testdata/linux-http.pcap")
	var raw, sll [][]byte
	for _, f := range frames {
		raw = append(raw, f[14:])
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[14:], binary.BigEndian.Uint16(f[12:14]))
		sll = append(sll, append(h, f[14:]...))
	}
	for _, tc := range []struct {
		link   layers.LinkType
		frames [][]byte
	}{{layers.LinkTypeRaw, raw}, {layers.LinkTypeLinuxSLL, sll}} {
		r := runDecodeCmd(t, "", "--json", writeTemp(t, "f.pcap", writePcap(t, tc.link, tc.frames)))
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", tc.link, r.code, r.stderr)
		}
		// Same packets, same JSON except the time (writePcap's clock).
		g, w := lines(r.stdout), lines(want.stdout)
		if len(g) != len(w) {
			t.Fatalf("%v: %d lines, want %d", tc.link, len(g), len(w))
		}
		drop := regexp.MustCompile(`"time":"[^"]*",`)
		for i := range g {
			if drop.ReplaceAllString(g[i], "") != drop.ReplaceAllString(w[i], "") {
				t.Errorf("%v packet %d:\n got %s\nwant %s", tc.link, i+1, g[i], w[i])
			}
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	r := runDecodeCmd(t, "", "--json", "testdata/linux-http.pcap")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	ls := lines(r.stdout)
	if len(ls) != 24 {
		t.Fatalf("%d lines, want 24", len(ls))
	}
	var pkts []craft.PacketJSON
	for i, l := range ls {
		var p craft.PacketJSON
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		pkts = append(pkts, p)
	}
	syn := pkts[0]
	if syn.Src != "10.0.2.21" || syn.Dst != "10.0.2.20" || syn.SPort != 53888 || syn.DPort != 80 ||
		syn.Flags != "S" || syn.Seq != 2619426933 || syn.Win != 64240 || syn.Len != 0 || syn.TTL != 64 ||
		syn.IPVersion != 4 || syn.IPID == nil || *syn.IPID != 19480 || !syn.DF {
		t.Errorf("SYN: %+v", syn)
	}
	if syn.TCPChecksum.Status != "good" || syn.TCPChecksum.Value != "0xaa68" || syn.IPChecksum == nil || syn.IPChecksum.Status != "good" {
		t.Errorf("SYN checksums: %+v %+v", syn.TCPChecksum, syn.IPChecksum)
	}
	if len(syn.Options) != 5 || *syn.Options[0].MSS != 1460 || syn.Options[1].Name != "sackOK" ||
		*syn.Options[2].TSVal != 3708352010 || *syn.Options[2].TSEcr != 0 || *syn.Options[4].WScale != 10 {
		t.Errorf("SYN options: %s", ls[0])
	}
	_, cis := pcapFrames(t, "linux-http.pcap")
	for i, p := range pkts {
		ts, err := time.Parse(time.RFC3339Nano, p.Time)
		if err != nil || !ts.Equal(cis[i].Timestamp) {
			t.Errorf("packet %d: time %q, pcap record says %v (%v)", i+1, p.Time, cis[i].Timestamp, err)
		}
	}
	data := pkts[3] // the HTTP request, seq 1:84 relative
	if data.Len != 83 || data.RelSeq == nil || *data.RelSeq != 1 || *data.RelAck != 1 || data.Seq != 2619426934 {
		t.Errorf("request: %s", ls[3])
	}
	v6 := pkts[14]
	if v6.IPVersion != 6 || v6.Src != "fd00:2::21" || v6.IPID != nil || v6.IPChecksum != nil || v6.TCPChecksum.Status != "good" {
		t.Errorf("IPv6 SYN: %s", ls[14])
	}
	// --absolute drops the relative numbers.
	r = runDecodeCmd(t, "", "--json", "--absolute", "testdata/linux-http.pcap")
	if strings.Contains(r.stdout, "rel_seq") {
		t.Errorf("--absolute --json has rel_seq")
	}
}

func TestDecodeHex(t *testing.T) {
	frames, _ := pcapFrames(t, "linux-http.pcap")
	synLine := "IP 10.0.2.21.53888 > 10.0.2.20.80: Flags [S], seq 2619426933, win 64240, options [mss 1460,sackOK,TS val 3708352010 ecr 0,nop,wscale 10], length 0\n"
	eth := hex.EncodeToString(frames[0])
	ip := hex.EncodeToString(frames[0][14:])
	colons := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i += 2 {
			if i > 0 {
				if i%32 == 0 {
					b.WriteString("\n")
				} else {
					b.WriteString(":")
				}
			}
			b.WriteString(s[i : i+2])
		}
		return b.String()
	}
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
	}{
		{"eth-auto", []string{"--hex", eth}, ""},
		{"ip-auto", []string{"--hex", ip}, ""},
		{"ip-0x-colons-newlines", []string{"--hex", "0x" + colons(ip)}, ""},
		{"eth-spaces-upper", []string{"--hex", strings.ToUpper(strings.Join(strings.SplitAfter(eth, "ab"), " "))}, ""},
		{"eth-flag", []string{"--link", "eth", "--hex", eth}, ""},
		{"ip-flag", []string{"--link", "ip", "--hex", ip}, ""},
		{"stdin", []string{"--hex", "-"}, colons(eth) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runDecodeCmd(t, tc.stdin, tc.args...)
			if r.code != 0 || r.stderr != "" || r.stdout != synLine {
				t.Errorf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
	// The wrong framing forced by --link gives a clear error, exit 1.
	r := runDecodeCmd(t, "", "--link", "ip", "--hex", eth)
	if r.code != 1 || !regexp.MustCompile(`^tcpcraft decode: raw packet: not IP: version \d+\n$`).MatchString(r.stderr) {
		t.Errorf("eth as ip: exit %d, stderr %q", r.code, r.stderr)
	}
	// A bare IPv6 packet, auto-detected.
	r = runDecodeCmd(t, "", "--hex", hex.EncodeToString(frames[14][14:]))
	if r.code != 0 || !strings.HasPrefix(r.stdout, "IP6 fd00:2::21.58208 > fd00:2::20.8080: Flags [S], seq 65912624,") {
		t.Errorf("ipv6: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// A malformed option via hex: exit 1 with the offset.
	bad := append([]byte{}, frames[2][14:]...)
	bad[20+23] = 1 // timestamps length byte
	r = runDecodeCmd(t, "", "--hex", hex.EncodeToString(bad))
	if r.code != 1 || !strings.Contains(r.stderr, "tcp option at offset 22: length 1 is less than 2") {
		t.Errorf("bad option: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDecodeUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "give a pcap/pcapng file or --hex"},
		{"file-and-hex", []string{"--hex", "4500", "x.pcap"}, "not both"},
		{"two-files", []string{"a.pcap", "b.pcap"}, "one file at a time"},
		{"odd-hex", []string{"--hex", "450"}, "odd number of hex digits (3)"},
		{"bad-char", []string{"--hex", "45zz"}, `invalid character 'z' at position 2`},
		{"empty-hex", []string{"--hex", " : "}, "no hex digits"},
		{"bad-link", []string{"--link", "token-ring", "--hex", "4500"}, "--link token-ring: want auto, eth, ip, sll or sll2"},
		{"link-with-file", []string{"--link", "eth", "x.pcap"}, "--link applies to --hex input only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runDecodeCmd(t, "", tc.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
}

// TestDecodeBadChecksumNoted builds a packet with a wrong TCP checksum and
// checks the note on its line.
func TestDecodeBadChecksumNoted(t *testing.T) {
	ip := craft.IPv4{TTL: 64, Src: netip.MustParseAddr("10.0.2.21"), Dst: netip.MustParseAddr("10.0.2.20")}
	tcp := craft.TCP{SrcPort: 1, DstPort: 2, Flags: craft.FlagSYN, Checksum: 0x1234}
	b, err := craft.AppendIPv4TCP(nil, &ip, &tcp, craft.BuildOptions{KeepTCPChecksum: true})
	if err != nil {
		t.Fatal(err)
	}
	want := craft.TCPChecksum(ip.Src, ip.Dst, b[20:])
	r := runDecodeCmd(t, "", "--hex", hex.EncodeToString(b))
	if r.code != 0 || !strings.HasSuffix(r.stdout, "length 0 [bad tcp cksum 0x1234 -> 0x"+hex.EncodeToString([]byte{byte(want >> 8), byte(want)})+"]\n") {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestDecodeSnaplenCut: a record captured shorter than the packet (a small
// snap length) is reported with both lengths.
func TestDecodeSnaplenCut(t *testing.T) {
	frames, cis := pcapFrames(t, "linux-http.pcap")
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(54, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		ci := cis[i]
		ci.CaptureLength = 54
		if err := w.WritePacket(ci, frames[i][:54]); err != nil {
			t.Fatal(err)
		}
	}
	r := runDecodeCmd(t, "", writeTemp(t, "snap.pcap", buf.Bytes()))
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	want := "packet 1 (captured 54 of 74 bytes): ipv4: total length 60 exceeds the 40 bytes given: truncated\n"
	if !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q, want it to start with %q", r.stderr, want)
	}
}

// payloadsOf concatenates, in capture order, the TCP payloads sent from
// src (read with gopacket, independent of craft and draw/flow).
func payloadsOf(t *testing.T, name, src string) []byte {
	t.Helper()
	frames, _ := pcapFrames(t, name)
	var out []byte
	for _, f := range frames {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || p.NetworkLayer() == nil {
			continue
		}
		if netip.AddrPortFrom(netip.MustParseAddr(p.NetworkLayer().NetworkFlow().Src().String()), uint16(tcp.SrcPort)).String() == src {
			out = append(out, tcp.Payload...)
		}
	}
	return out
}

func TestDecodeFollow(t *testing.T) {
	client := payloadsOf(t, "linux-http.pcap", "10.0.2.21:53888")
	server := payloadsOf(t, "linux-http.pcap", "10.0.2.20:80")
	if len(client) != 83 || len(server) != 217 {
		t.Fatalf("fixture: %d and %d payload bytes", len(client), len(server))
	}
	// --side: the raw bytes of one direction, nothing else.
	for side, want := range map[string][]byte{"client": client, "server": server} {
		r := runDecodeCmd(t, "", "--follow", "--conn", "0", "--side", side, "testdata/linux-http.pcap")
		if r.code != 0 || r.stdout != string(want) {
			t.Errorf("--side %s: exit %d, %d bytes, want %d; stderr %q", side, r.code, len(r.stdout), len(want), r.stderr)
		}
	}
	// The marked-up form: each chunk's marker says how many bytes follow.
	r := runDecodeCmd(t, "", "--follow", "testdata/linux-http.pcap")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("--follow: exit %d, stderr %q", r.code, r.stderr)
	}
	got := map[string][]byte{}
	rest := r.stdout
	var conns []string
	for rest != "" {
		line, after, ok := strings.Cut(rest, "\n")
		if !ok {
			t.Fatalf("unterminated line %q", rest)
		}
		rest = after
		switch {
		case strings.HasPrefix(line, "=== connection "):
			conns = append(conns, line)
		case strings.HasPrefix(line, "=== end of connection"):
		case strings.HasPrefix(line, ">>> ") || strings.HasPrefix(line, "<<< "):
			var who, addr, to string
			var n, off int
			if _, err := fmt.Sscanf(line[4:], "%s %s > %s %d bytes at offset %d", &who, &addr, &to, &n, &off); err != nil {
				t.Fatalf("marker %q: %v", line, err)
			}
			if len(rest) < n+1 || rest[n] != '\n' {
				t.Fatalf("marker %q: the %d bytes and a newline do not follow", line, n)
			}
			if off != len(got[addr]) {
				t.Errorf("marker %q: offset %d after %d bytes", line, off, len(got[addr]))
			}
			got[addr] = append(got[addr], rest[:n]...)
			rest = rest[n+1:]
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	if len(conns) != 3 || conns[0] != "=== connection 0: client 10.0.2.21:53888 > server 10.0.2.20:80" {
		t.Errorf("connection headers %q", conns)
	}
	if !bytes.Equal(got["10.0.2.21:53888"], client) || !bytes.Equal(got["10.0.2.20:80"], server) ||
		string(got["[fd00:2::21]:58208"]) != "ping\n" || string(got["[fd00:2::20]:8080"]) != "pong\n" {
		t.Errorf("reassembled streams differ from the payloads: %q", got)
	}
	// JSON: base64 chunks.
	r = runDecodeCmd(t, "", "--follow", "--json", "--conn", "10.0.2.20:80", "testdata/linux-http.pcap")
	var chunks []followChunkJSON
	for _, l := range lines(r.stdout) {
		var c followChunkJSON
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		chunks = append(chunks, c)
	}
	if len(chunks) != 2 || chunks[0].From != "client" || !bytes.Equal(chunks[0].Data, client) || !bytes.Equal(chunks[1].Data, server) || chunks[1].Len != 217 {
		t.Errorf("--follow --json: %+v", chunks)
	}
}

// TestDecodeFollowRetransmittedAndReordered: overlapping, repeated and
// out-of-order segments give each byte once, in order.
func TestDecodeFollowRetransmittedAndReordered(t *testing.T) {
	frames, _ := pcapFrames(t, "linux-http.pcap")
	// The 12 segments of the HTTP connection with the response's two data
	// segments swapped and the request sent twice.
	http := frames[:12]
	re := [][]byte{http[0], http[1], http[2], http[3], http[3], http[4], http[7], http[5], http[6], http[8], http[9], http[10], http[11]}
	p := writeTemp(t, "re.pcap", writePcap(t, layers.LinkTypeEthernet, re))
	for side, src := range map[string]string{"client": "10.0.2.21:53888", "server": "10.0.2.20:80"} {
		r := runDecodeCmd(t, "", "--follow", "--side", side, p)
		if want := payloadsOf(t, "linux-http.pcap", src); r.code != 0 || r.stdout != string(want) {
			t.Errorf("%s: exit %d, got %q, want %q", side, r.code, r.stdout, want)
		}
	}
	r := runDecodeCmd(t, "", "--conns", "--json", p)
	var c connJSON
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatal(err)
	}
	if c.Bytes["client"] != 83 || c.Bytes["server"] != 217 || c.Retransmits["client"].Segments != 1 || c.Packets["client"] != 7 {
		t.Errorf("--conns: %+v", c)
	}
}

func TestDecodeConns(t *testing.T) {
	r := runDecodeCmd(t, "", "--conns", "testdata/linux-http.pcap")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	ls := lines(r.stdout)
	if len(ls) != 4 {
		t.Fatalf("%d lines, want a header and 3 rows:\n%s", len(ls), r.stdout)
	}
	wantRows := [][]string{
		{"0", "10.0.2.21:53888", "10.0.2.20:80", "12", "83", "217", "0/0", "", "CLOSED>SYN-SENT>ESTAB>CLOSE-WAIT>LAST-ACK>CLOSED", "LISTEN>SYN-RCVD>ESTAB>FIN-WAIT-1>TIME-WAIT"},
		{"1", "10.0.2.21:45732", "10.0.2.20:81", "2", "0", "0", "0/0", "", "CLOSED>SYN-SENT>CLOSED", "CLOSED"},
		{"2", "[fd00:2::21]:58208", "[fd00:2::20]:8080", "10", "5", "5", "0/0", "", "CLOSED>SYN-SENT>ESTAB>FIN-WAIT-1>FIN-WAIT-2>TIME-WAIT", "LISTEN>SYN-RCVD>ESTAB>CLOSE-WAIT>LAST-ACK>CLOSED"},
	}
	for i, want := range wantRows {
		f := strings.Fields(ls[i+1])
		if len(f) != len(want) {
			t.Errorf("row %d: %q", i, ls[i+1])
			continue
		}
		for j := range want {
			if j == 7 { // duration
				if !strings.HasSuffix(f[j], "ms") {
					t.Errorf("row %d duration %q", i, f[j])
				}
				continue
			}
			if f[j] != want[j] {
				t.Errorf("row %d column %d: %q, want %q", i, j, f[j], want[j])
			}
		}
	}
	r = runDecodeCmd(t, "", "--conns", "--json", "--conn", "2", "testdata/linux-http.pcap")
	var c connJSON
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if c.Index != 2 || c.Client != "[fd00:2::21]:58208" || c.Packets["client"] != 6 || c.Packets["server"] != 4 ||
		strings.Join(c.Paths["server"], " ") != "LISTEN SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED" ||
		c.DurationS <= 0 || c.DurationS > 1 {
		t.Errorf("--conns --json: %+v", c)
	}
}

func TestDecodeFlowUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--follow", "--conns", "testdata/linux-http.pcap"}, 2, "not both"},
		{[]string{"--side", "client", "testdata/linux-http.pcap"}, 2, "go with --follow"},
		{[]string{"--conns", "--side", "client", "testdata/linux-http.pcap"}, 2, "--side goes with --follow"},
		{[]string{"--follow", "--hex", "4500"}, 2, "not --hex"},
		{[]string{"--follow"}, 2, "give a pcap/pcapng file"},
		{[]string{"--follow", "--side", "both", "testdata/linux-http.pcap"}, 2, "--side both: want client or server"},
		{[]string{"--follow", "--conn", "9", "testdata/linux-http.pcap"}, 1, "connection 9"},
	} {
		r := runDecodeCmd(t, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d saying %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.want)
		}
	}
}
