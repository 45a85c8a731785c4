package craft

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// ext.pcap (testdata/gen_ext.go) holds what a prober sends and meets
// beyond plain TCP: IPv6 extension headers, unusual IPv4 header fields,
// fragments, ICMP and ICMPv6 errors. Its goldens are tcpdump's reading of
// it, so every line here is checked against an independent decoder.

// quoteNote matches the "[quote ...]" tcpcraft adds to an ICMP line (what
// tcpdump shows only with -v, on lines of its own).
var quoteNote = regexp.MustCompile(` \[quote (?:[^\[\]]|\[[^\]]*\])*\]`)

// badICMP matches the bad-checksum note for ICMP (tcpdump says it only
// with -v).
var badICMP = regexp.MustCompile(` \[bad icmp cksum 0x[0-9a-f]{4} -> 0x[0-9a-f]{4}\]`)

func extFrames(t *testing.T) []frameRecord { return readPcap(t, "ext.pcap") }

func TestExtTextMatchesTcpdump(t *testing.T) {
	frames := extFrames(t)
	for _, mode := range []string{"ext.txt", "ext.v.txt"} {
		want := readLines(t, mode)
		if len(want) != len(frames) {
			t.Fatalf("%s: %d lines, %d frames", mode, len(want), len(frames))
		}
		f := Formatter{Absolute: true, IPPrefix: true, Verbose: mode == "ext.v.txt"}
		for i, fr := range frames {
			var p Packet
			b, err := f.AppendFrame(nil, fr.link, fr.data, &p)
			if err != nil {
				t.Errorf("%s frame %d: %v", mode, i+1, err)
				continue
			}
			got := string(b)
			w := tcpdumpAppLayer.ReplaceAllString(want[i], "$1")
			if strings.Contains(got, "ICMP") {
				// tcpdump -v prints the quote as a packet of its own.
				if k := strings.Index(w, " IP ("); k > 0 {
					w = w[:k]
				}
				if k := strings.Index(w, " IP6 ("); k > 0 {
					w = w[:k]
				}
				if !quoteNote.MatchString(got) {
					t.Errorf("%s frame %d: no quote in %q", mode, i+1, got)
				}
				got = badICMP.ReplaceAllString(quoteNote.ReplaceAllString(got, ""), "")
			}
			got = ourExtras.ReplaceAllString(got, "")
			if !f.Verbose {
				got = ipGroup.ReplaceAllString(got, "$1")
			}
			if got != w {
				t.Errorf("%s frame %d:\n got %s\nwant %s", mode, i+1, got, w)
			}
		}
	}
}

// TestExtFieldsShown: the default line shows the unusual IP fields (the
// -v group), and the verbose line the usual ones.
func TestExtFieldsShown(t *testing.T) {
	frames := extFrames(t)
	var f Formatter
	var p Packet
	lines := map[string]bool{}
	for _, fr := range frames {
		b, err := f.AppendFrame(nil, fr.link, fr.data, &p)
		if err != nil {
			t.Fatal(err)
		}
		lines[string(b)] = true
	}
	for _, want := range []string{
		"(tos 0x10, ttl 64, id 1234, offset 0, flags [DF], proto TCP (6), length 60) 10.0.2.21.40000 > 10.0.2.20.80: Flags [S]",
		"(tos 0x2a,ECT(0), ttl 64,",
		"(tos 0x3,CE, ttl 64,",
		"flags [DF, rsvd]",
		"options (RA))",
		"(tos 0x0, ttl 64, id 1234, offset 16, flags [+], proto TCP (6), length 36) 10.0.2.21 > 10.0.2.20: ip-proto-6",
		"(class 0x12, flowlabel 0x12345, hlim 64, next-header TCP (6) payload length: 40) fd00:2::21.40000 > fd00:2::20.80",
		"fd00:2::21 > fd00:2::20: HBH frag (16|16)",
		"::ffff:48.48.48.48.40000 > fd00:2::20.80: Flags [S]",
		"10.0.1.1 > 10.0.2.21: ICMP 10.0.2.20 unreachable - need to frag (mtu 1200), length 36 [quote 10.0.2.21.40000 > 10.0.2.20.80: seq 1000]",
		"10.0.1.1 > 10.0.2.21: ICMP 10.0.2.20 tcp port 443 unreachable, length 53 [quote 10.0.2.21.40001 > 10.0.2.20.443: Flags [P.], seq 5000, ack 9000]",
		"ICMP6, packet too big, mtu 1280, length 88 [quote fd00:2::21.40000 > fd00:2::20.80: Flags [S], seq 1000]",
		"ICMP host 10.0.2.20 unreachable - admin prohibited filter, length 68 [quote 10.0.2.21.40000 > 10.0.2.20.80: Flags [S], seq 1000] [bad icmp cksum 0xea4a -> 0x154a]",
		"Flags [S], seq 1000, win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0 [bad tcp cksum",
	} {
		found := false
		for l := range lines {
			if strings.Contains(l, want) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no line contains %q", want)
		}
	}
}

// TestIPv4MappedRoundTrip: an IPv6 packet from ::ffff:48.48.48.48 (what
// FuzzParsePacket once found ParsePacket accepting and AppendIPv6TCP
// refusing) parses, keeps its 16-byte address, verifies its checksum over
// those 16 bytes, and rebuilds byte for byte; a 4-byte address is refused
// by the IPv6 builder and a mapped one by the IPv4 builder.
func TestIPv4MappedRoundTrip(t *testing.T) {
	mapped := netip.MustParseAddr("::ffff:48.48.48.48")
	ip := IPv6{HopLimit: 64, Src: mapped, Dst: netip.MustParseAddr("fd00::20")}
	b, err := AppendIPv6TCP(nil, &ip, &TCP{SrcPort: 1, DstPort: 2, Flags: FlagSYN}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var p Packet
	if err := ParsePacket(LinkRaw, b, &p, PacketOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.Src() != mapped || !p.Src().Is4In6() || p.TCPChecksum.State != ChecksumGood {
		t.Fatalf("parsed src %v, checksum %v", p.Src(), p.TCPChecksum.State)
	}
	again, err := AppendIPv6TCP(nil, &p.IPv6, &p.TCP, BuildOptions{KeepTCPChecksum: true})
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("rebuild: %v\n% x\n% x", err, again, b)
	}
	if j := (&Formatter{}).JSON(&p); j.Src != "::ffff:48.48.48.48" || j.IPVersion != 6 {
		t.Errorf("JSON src %q", j.Src)
	}
	if _, err := AppendIPv6TCP(nil, &IPv6{Src: mapped.Unmap(), Dst: ip.Dst}, &TCP{}, BuildOptions{}); err == nil {
		t.Error("IPv6 builder took a 4-byte address")
	}
	if _, err := AppendIPv4TCP(nil, &IPv4{Src: mapped, Dst: netip.MustParseAddr("10.0.0.1")}, &TCP{}, BuildOptions{}); err == nil {
		t.Error("IPv4 builder took an IPv4-mapped IPv6 address")
	}
}

// TestIPv6ExtRoundTrip: every extension-header packet of ext.pcap parses,
// and rebuilding the parse gives the same bytes.
func TestIPv6ExtRoundTrip(t *testing.T) {
	n := 0
	for i, fr := range extFrames(t) {
		var p Packet
		if err := ParsePacket(fr.link, fr.data, &p, PacketOptions{}); err != nil || p.IPVersion != 6 || len(p.IPv6.Ext) == 0 {
			continue
		}
		n++
		if p.TCPChecksum.State != ChecksumGood {
			t.Errorf("frame %d: TCP checksum %v", i+1, p.TCPChecksum.State)
		}
		b, err := AppendIPv6TCP(nil, &p.IPv6, &p.TCP, BuildOptions{KeepTCPChecksum: true})
		if err != nil || !bytes.Equal(b, fr.data) {
			t.Errorf("frame %d: rebuild %v\n% x\n% x", i+1, err, b, fr.data)
		}
	}
	if n != 7 {
		t.Errorf("%d IPv6 packets with extension headers, want 7", n)
	}
}

// TestFinalDestinationChecksum: with a routing header that has segments
// left the TCP checksum covers the final destination (RFC 8200 §8.1); the
// same segment checksummed over the first destination does not verify.
// tcpdump agrees (ext.v.txt says "(correct)" for both routing packets).
func TestFinalDestinationChecksum(t *testing.T) {
	frames := extFrames(t)
	for _, idx := range []int{3, 4} { // RT0 and SRH
		var p Packet
		if err := ParsePacket(LinkRaw, frames[idx].data, &p, PacketOptions{}); err != nil {
			t.Fatal(err)
		}
		final := p.IPv6.FinalDst()
		if final == p.IPv6.Dst {
			t.Fatalf("frame %d: final destination is the first one", idx+1)
		}
		seg := frames[idx].data[IPv6HeaderLen+p.IPv6.ExtLen():]
		if ok, _ := VerifyTCPChecksum(p.IPv6.Src, final, seg); !ok {
			t.Errorf("frame %d: checksum does not cover %v", idx+1, final)
		}
		if ok, _ := VerifyTCPChecksum(p.IPv6.Src, p.IPv6.Dst, seg); ok {
			t.Errorf("frame %d: checksum covers the first destination", idx+1)
		}
	}
	if !strings.Contains(readLines(t, "ext.v.txt")[4], "(correct)") {
		t.Error("tcpdump does not agree")
	}
}

// TestDifferentialIPv6Ext compares extension headers with gopacket's
// decoders (hop-by-hop, destination, routing). gopacket decodes nothing
// after a fragment header, so the fragment header is compared field by
// field.
func TestDifferentialIPv6Ext(t *testing.T) {
	for i, fr := range extFrames(t) {
		var p Packet
		if err := ParsePacket(fr.link, fr.data, &p, PacketOptions{}); err != nil || p.IPVersion != 6 || len(p.IPv6.Ext) == 0 {
			continue
		}
		gp := gopacket.NewPacket(fr.data, layers.LayerTypeIPv6, gopacket.Default)
		var kinds []uint8
		for _, l := range gp.Layers() {
			switch g := l.(type) {
			case *layers.IPv6HopByHop:
				kinds = append(kinds, IPv6HopByHop)
			case *layers.IPv6Destination:
				kinds = append(kinds, IPv6DestOpts)
			case *layers.IPv6Routing:
				kinds = append(kinds, IPv6Routing)
				e := p.IPv6.Ext[len(kinds)-1]
				if uint8(g.RoutingType) != e.Data[2] || g.SegmentsLeft != e.Data[3] {
					t.Errorf("frame %d: routing type %d segleft %d, gopacket %d %d", i+1, e.Data[2], e.Data[3], g.RoutingType, g.SegmentsLeft)
				}
			case *layers.IPv6Fragment:
				kinds = append(kinds, IPv6Fragment)
				off, more, id, _ := p.IPv6.Ext[len(kinds)-1].Fragment()
				if off != g.FragmentOffset || more != g.MoreFragments || id != g.Identification {
					t.Errorf("frame %d: fragment %d %v %#x, gopacket %+v", i+1, off, more, id, g)
				}
			}
		}
		if len(kinds) != len(p.IPv6.Ext) {
			t.Errorf("frame %d: %d extension headers, gopacket %d", i+1, len(p.IPv6.Ext), len(kinds))
			continue
		}
		for k, e := range p.IPv6.Ext {
			if e.Kind != kinds[k] {
				t.Errorf("frame %d: header %d kind %d, gopacket %d", i+1, k, e.Kind, kinds[k])
			}
		}
		if kinds[len(kinds)-1] != IPv6Fragment && p.IPv6.FinalDst() == p.IPv6.Dst {
			compareWithGopacket(t, "ext frame "+itoa(i+1), fr.link, fr.data)
		}
	}
}

// TestICMPErrors parses every ICMP error of ext.pcap and checks the
// fields against the builder's inputs and against gopacket's ICMPv4 and
// ICMPv6 decoders.
func TestICMPErrors(t *testing.T) {
	type want struct {
		version, typ, code uint8
		name               string
		mtu                uint32
		seq, ports         bool
	}
	var got []want
	for i, fr := range extFrames(t) {
		var e ICMPError
		err := ParseICMPError(fr.link, fr.data, &e)
		if errors.Is(err, ErrNotICMPError) {
			continue
		}
		var fe *FragmentError
		if errors.As(err, &fe) {
			continue
		}
		if err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		got = append(got, want{e.IPVersion, e.Type, e.Code, e.Name(), e.MTU, e.Quote.HasSeq, e.Quote.HasPorts})
		q := &e.Quote
		if e.IPVersion == 4 {
			if e.From() != netip.MustParseAddr("10.0.1.1") || q.Src() != netip.MustParseAddr("10.0.2.21") || q.Dst() != netip.MustParseAddr("10.0.2.20") {
				t.Errorf("frame %d: from %v quote %v", i+1, e.From(), q.Tuple())
			}
			g, _ := gopacket.NewPacket(fr.data, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if g == nil || g.TypeCode.Type() != e.Type || g.TypeCode.Code() != e.Code || g.Checksum != e.Checksum.Value {
				t.Errorf("frame %d: gopacket %v vs %d/%d", i+1, g, e.Type, e.Code)
			} else if e.MTU != 0 && uint32(g.Seq) != e.MTU {
				// gopacket reads bytes 6-7 as the echo sequence: the MTU.
				t.Errorf("frame %d: MTU %d, gopacket bytes 6-7 %d", i+1, e.MTU, g.Seq)
			}
		} else {
			g, _ := gopacket.NewPacket(fr.data, layers.LayerTypeIPv6, gopacket.Default).Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			if g == nil || g.TypeCode.Type() != e.Type || g.TypeCode.Code() != e.Code || g.Checksum != e.Checksum.Value {
				t.Errorf("frame %d: gopacket %v vs %d/%d", i+1, g, e.Type, e.Code)
			}
		}
		if q.HasSeq && q.Seq != 1000 && q.Seq != 5000 {
			t.Errorf("frame %d: quoted seq %d", i+1, q.Seq)
		}
		wantBad := i+1 == len(extFrames(t))
		if (e.Checksum.State == ChecksumBad) != wantBad {
			t.Errorf("frame %d: checksum %v", i+1, e.Checksum.State)
		}
		// Rebuilding the parse reproduces the packet (but for the bad
		// checksum, which the builder computes).
		b, err := AppendICMPError(nil, &e, BuildOptions{})
		if err != nil || (!wantBad && !bytes.Equal(b, fr.data)) {
			t.Errorf("frame %d: rebuild %v\n% x\n% x", i+1, err, b, fr.data)
		}
		if _, err := json.Marshal((&Formatter{}).ICMPJSON(&e)); err != nil {
			t.Error(err)
		}
	}
	names := make([]string, len(got))
	for i, g := range got {
		names[i] = g.name
	}
	wantNames := "net-unreachable host-unreachable protocol-unreachable port-unreachable frag-needed source-route-failed " +
		"net-unknown host-unknown host-isolated net-prohibited host-prohibited net-tos-unreachable host-tos-unreachable " +
		"admin-prohibited precedence-violation precedence-cutoff port-unreachable ttl-exceeded ttl-exceeded reassembly-timeout " +
		"parameter-problem missing-option no-route admin-prohibited beyond-scope address-unreachable port-unreachable port-unreachable " +
		"packet-too-big hop-limit-exceeded reassembly-timeout header-field unknown-next-header unknown-option incomplete-header-chain admin-prohibited"
	if s := strings.Join(names, " "); s != wantNames {
		t.Errorf("names:\n got %s\nwant %s", s, wantNames)
	}
	for _, g := range got {
		if (g.name == "frag-needed") != (g.mtu == 1200) || (g.name == "packet-too-big") != (g.mtu == 1280) {
			t.Errorf("%s: MTU %d", g.name, g.mtu)
		}
	}
	// 8-byte quotes still give ports and sequence number; a 48-byte
	// ICMPv6 quote (40 + 8) too.
	if !got[0].seq || !got[0].ports || !got[18].seq || !got[28].seq {
		t.Errorf("truncated quotes lost the seq: %+v %+v %+v", got[0], got[18], got[28])
	}
}

func TestICMPJSON(t *testing.T) {
	frames := extFrames(t)
	var e ICMPError
	if err := ParseICMPError(LinkRaw, frames[len(frames)-32].data, &e); err != nil { // frag-needed
		t.Fatal(err)
	}
	b, err := json.Marshal((&Formatter{}).ICMPJSON(&e))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"icmp","ip_version":4,"from":"10.0.1.1","to":"10.0.2.21","ttl":64,"icmp_type":3,"icmp_code":4,"type_name":"unreachable","name":"frag-needed","mtu":1200,` +
		`"checksum":{"status":"good","value":"0x57d3"},"quote":{"ip_version":4,"src":"10.0.2.21","dst":"10.0.2.20","proto":6,"ttl":1,"ip_id":77,"sport":40000,"dport":80,"seq":1000,"len":8}}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

func TestParseICMPKind(t *testing.T) {
	for _, tc := range []struct {
		v          uint8
		typ, code  string
		wantT, wtC uint8
	}{
		{4, "unreachable", "frag_needed", 3, 4},
		{4, "unreachable", "frag-needed", 3, 4},
		{4, "unreachable", "port_unreachable", 3, 3},
		{4, "unreachable", "packet_filtered", 3, 13},
		{4, "unreachable", "admin-prohibited", 3, 13},
		{4, "time_exceeded", "", 11, 0},
		{4, "time-exceeded", "reassembly-timeout", 11, 1},
		{4, "type_3", "code_9", 3, 9},
		{6, "packet_too_big", "", 2, 0},
		{6, "unreachable", "admin_prohibited", 1, 1},
		{6, "time_exceeded", "exceeded_hop_limit", 3, 0},
		{6, "parameter_problem", "unknown_next_header", 4, 1},
	} {
		ty, c, err := ParseICMPKind(tc.v, tc.typ, tc.code)
		if err != nil || ty != tc.wantT || c != tc.wtC {
			t.Errorf("ParseICMPKind(%d, %q, %q) = %d, %d, %v", tc.v, tc.typ, tc.code, ty, c, err)
		}
	}
	for _, tc := range []struct {
		v         uint8
		typ, code string
		want      string
	}{
		{4, "packet_too_big", "", `icmp type "packet_too_big": want unreachable, time-exceeded, parameter-problem, or type_N`},
		{4, "unreachable", "frag", `icmp code "frag" for unreachable: want one of net-unreachable, host-unreachable`},
		{4, "type_300", "", `icmp type "type_300": want a number 0-255 after type_`},
	} {
		if _, _, err := ParseICMPKind(tc.v, tc.typ, tc.code); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseICMPKind(%d, %q, %q) error %v, want %q", tc.v, tc.typ, tc.code, err, tc.want)
		}
	}
}

func TestParseICMPErrorRefuses(t *testing.T) {
	frames := extFrames(t)
	var e ICMPError
	if err := ParseICMPError(LinkRaw, frames[0].data, &e); !errors.Is(err, ErrNotICMPError) {
		t.Errorf("TCP packet: %v", err)
	}
	echo := append([]byte{}, frames[len(frames)-1].data...)
	echo[20] = 8 // echo request
	if err := ParseICMPError(LinkRaw, echo, &e); !errors.Is(err, ErrNotICMPError) || !strings.Contains(err.Error(), "echo") {
		t.Errorf("echo: %v", err)
	}
	short := frames[len(frames)-1].data[:20+8+10]
	short = append([]byte{}, short...)
	short[3] = byte(len(short))
	if err := ParseICMPError(LinkRaw, short, &e); err == nil || !errors.Is(err, ErrTruncated) {
		t.Errorf("10-byte quote: %v", err)
	}
}

// TestFragments: FragmentIPv4/6 pieces carry the payload in order, with
// offsets, MF and per-fragment options as RFC 791 and RFC 8200 say, and
// each is a valid packet (gopacket's defragmenter puts the IPv4 ones back
// together to the original).
func TestFragments(t *testing.T) {
	tcp := &TCP{SrcPort: 1, DstPort: 2, Flags: FlagSYN, Payload: bytes.Repeat([]byte("x"), 100)}
	ip4 := IPv4{TTL: 9, ID: 7, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		Options: []byte{0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0, 0}}
	whole, err := AppendIPv4TCP(nil, &ip4, tcp, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	frags, err := FragmentIPv4(whole, 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) != 4 { // 120 bytes of TCP in 32-byte pieces
		t.Fatalf("%d fragments", len(frags))
	}
	var joined []byte
	for i, fr := range frags {
		v, err := NewIPv4View(fr)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := v.VerifyChecksum(); !ok || v.ID() != 7 || int(v.FragmentOffset())*8 != len(joined) || v.MoreFragments() != (i < 3) {
			t.Errorf("fragment %d: id %d offset %d MF %v", i, v.ID(), v.FragmentOffset(), v.MoreFragments())
		}
		wantOpts := []byte{0x94, 4, 0, 0}
		if i == 0 {
			wantOpts = ip4.Options
		}
		if !bytes.Equal(v.Options(), wantOpts) {
			t.Errorf("fragment %d options % x, want % x", i, v.Options(), wantOpts)
		}
		joined = append(joined, v.Payload()...)
	}
	if !bytes.Equal(joined, whole[ip4.HeaderLen():]) {
		t.Error("fragments do not join to the payload")
	}
	defrag := ipv4Defrag(t, frags)
	if !bytes.Equal(defrag, whole[ip4.HeaderLen():]) {
		t.Error("gopacket's defragmenter disagrees")
	}
	for _, bad := range []int{0, 7, 12} {
		if _, err := FragmentIPv4(whole, bad); err == nil {
			t.Errorf("size %d: no error", bad)
		}
	}
	one, _ := FragmentIPv4(whole, 256)
	if len(one) != 1 || !bytes.Equal(one[0], whole) {
		t.Error("a payload that fits is not one copy")
	}

	ip6 := IPv6{HopLimit: 9, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"),
		Ext: []IPv6Ext{IPv6OptionsHeader(IPv6HopByHop, nil), IPv6OptionsHeader(IPv6DestOpts, nil)}}
	whole6, err := AppendIPv6TCP(nil, &ip6, tcp, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	frags6, err := FragmentIPv6(whole6, 48, 0xfeed)
	if err != nil {
		t.Fatal(err)
	}
	// The destination options header (no routing header follows) is in
	// the fragmentable part: 8 + 120 bytes in 48-byte pieces.
	if len(frags6) != 3 {
		t.Fatalf("%d IPv6 fragments", len(frags6))
	}
	joined = joined[:0]
	for i, fr := range frags6 {
		var p Packet
		err := ParsePacket(LinkRaw, fr, &p, PacketOptions{})
		var fe *FragmentError
		if !errors.As(err, &fe) || fe.ID != 0xfeed || fe.IPVersion != 6 || int(fe.Offset)*8 != len(joined) || fe.MoreFragments != (i < 2) {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if len(p.IPv6.Ext) != 2 || p.IPv6.Ext[0].Kind != IPv6HopByHop || p.IPv6.Ext[1].Kind != IPv6Fragment || p.IPv6.Ext[1].Data[0] != IPv6DestOpts {
			t.Errorf("fragment %d headers %+v", i, p.IPv6.Ext)
		}
		joined = append(joined, fr[IPv6HeaderLen+16:]...)
	}
	if !bytes.Equal(joined, whole6[IPv6HeaderLen+8:]) {
		t.Error("IPv6 fragments do not join to the fragmentable part")
	}
	if _, err := FragmentIPv6(frags6[0], 16, 1); err == nil {
		t.Error("a fragment fragmented again")
	}
}

// ipv4Defrag reassembles with gopacket's ip4defrag-like logic: sort by
// offset (they are in order) and check with gopacket that each decodes.
func ipv4Defrag(t *testing.T, frags [][]byte) []byte {
	var out []byte
	for _, f := range frags {
		g, _ := gopacket.NewPacket(f, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if g == nil || int(g.FragOffset)*8 != len(out) {
			t.Fatalf("gopacket: %v", g)
		}
		out = append(out, g.Payload...)
	}
	return out
}

func TestBadChecksumsOnPurpose(t *testing.T) {
	ip := IPv4{TTL: 64, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}
	for _, tcp := range []*TCP{{Flags: FlagSYN}, {Flags: FlagACK, Payload: []byte{0xff, 0xff}}} {
		for _, opts := range []BuildOptions{{BadIPChecksum: true}, {BadTCPChecksum: true}, {BadIPChecksum: true, BadTCPChecksum: true}} {
			b, err := AppendIPv4TCP(nil, &ip, tcp, opts)
			if err != nil {
				t.Fatal(err)
			}
			var p Packet
			if err := ParsePacket(LinkRaw, b, &p, PacketOptions{}); err != nil {
				t.Fatal(err)
			}
			if (p.IPChecksum.State == ChecksumBad) != opts.BadIPChecksum || (p.TCPChecksum.State == ChecksumBad) != opts.BadTCPChecksum {
				t.Errorf("%+v: ip %v tcp %v", opts, p.IPChecksum.State, p.TCPChecksum.State)
			}
		}
	}
	b, _ := AppendIPv6TCP(nil, &IPv6{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2")}, &TCP{}, BuildOptions{BadTCPChecksum: true})
	var p Packet
	if err := ParsePacket(LinkRaw, b, &p, PacketOptions{}); err != nil || p.TCPChecksum.State != ChecksumBad {
		t.Errorf("IPv6 bad TCP checksum: %v %v", err, p.TCPChecksum.State)
	}
}

func TestIPv6ExtBuilderChain(t *testing.T) {
	ip := IPv6{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"),
		Ext: []IPv6Ext{IPv6OptionsHeader(IPv6HopByHop, []byte{5, 2, 0, 0}), IPv6OptionsHeader(IPv6DestOpts, nil), IPv6FragmentHeader(0, false, 9)}}
	b, err := AppendIPv6TCP(nil, &ip, &TCP{Flags: FlagSYN}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// next header: 0 in the fixed header, then 60, 44, 6 in the chain.
	if b[6] != 0 || b[40] != 60 || b[48] != 44 || b[56] != 6 || int(b[4])<<8|int(b[5]) != 8+8+8+20 {
		t.Errorf("chain % x", b[:64])
	}
	var p Packet
	if err := ParsePacket(LinkRaw, b, &p, PacketOptions{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.IPv6.Ext[2], IPv6Ext{Kind: IPv6Fragment, Data: []byte{6, 0, 0, 0, 0, 0, 0, 9}}) {
		t.Errorf("fragment header %+v", p.IPv6.Ext[2])
	}
}

// TestJSONIPFields: the JSON form carries the IP fields a prober sets,
// and addresses as strings.
func TestJSONIPFields(t *testing.T) {
	frames := extFrames(t)
	var f Formatter
	js := func(i int) string {
		var p Packet
		if err := ParsePacket(LinkRaw, frames[i].data, &p, PacketOptions{}); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(f.JSON(&p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		frame int
		want  []string
	}{
		{0, []string{`"ip_version":6,"src":"fd00:2::21","dst":"fd00:2::20"`, `"traffic_class":0,"flow_label":74565,"ext":["HBH"]`}},
		{4, []string{`"ext":["RT6"]`}},
		{6, []string{`"ext":["frag"]`}},
		{7, []string{`"src":"::ffff:48.48.48.48"`}},
		{9, []string{`"ip_id":1234,"tos":16,"df":true,"ttl":64`}},
		{11, []string{`"tos":1,`}},
		{13, []string{`"rsvd":true`}},
		{15, []string{`"ip_options":"94040000"`}},
	} {
		got := js(tc.frame)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("frame %d: %s lacks %s", tc.frame+1, got, w)
			}
		}
	}
}

// TestICMPExtensionsCutFromQuote: an ICMP error with RFC 4884 extensions
// (here an MPLS label stack, as routers append to time exceeded) quotes
// the padded original datagram only; the extension structure is not part
// of Quote.Bytes, and the probe is still found in it.
func TestICMPExtensionsCutFromQuote(t *testing.T) {
	q, err := AppendIPv4TCP(nil, &IPv4{TTL: 1, Src: netip.MustParseAddr("10.0.2.21"), Dst: netip.MustParseAddr("10.0.2.20")},
		&TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: FlagSYN}, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := icmp.Message{Type: ipv4.ICMPTypeTimeExceeded, Body: &icmp.TimeExceeded{Data: q,
		Extensions: []icmp.Extension{&icmp.MPLSLabelStack{Class: 1, Type: 1, Labels: []icmp.MPLSLabel{{Label: 16014, TC: 0x4, S: true, TTL: 255}}}}}}
	msg, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := (&IPv4{TTL: 64, Protocol: ProtocolICMP, Src: netip.MustParseAddr("10.0.1.1"), Dst: netip.MustParseAddr("10.0.2.21")}).Emit(nil, msg, EmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var e ICMPError
	if err := ParseICMPError(LinkRaw, pkt, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Quote.Bytes) != 128 || !bytes.Equal(e.Quote.Bytes[:len(q)], q) || e.Checksum.State != ChecksumGood {
		t.Errorf("quote of %d bytes (want 128, the padded datagram), checksum %v", len(e.Quote.Bytes), e.Checksum.State)
	}
	if e.Quote.Tuple().String() != "10.0.2.21.40000 > 10.0.2.20.80" || e.Quote.Seq != 1000 {
		t.Errorf("quote %v seq %d", e.Quote.Tuple(), e.Quote.Seq)
	}
}
