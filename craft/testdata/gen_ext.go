//go:build ignore

// gen_ext writes testdata/ext.pcap (bare IP packets, LINKTYPE_RAW): what
// the other captures lack and a prober sends or meets, each built by
// craft's builders and checked against tcpdump's reading of it (the
// goldens ext.txt, ext.v.txt):
//
//   - IPv6 with extension headers: hop-by-hop (PadN, router alert),
//     destination options, routing type 0 and type 4 (segment routing)
//     with segments left (the TCP checksum then covers the final
//     destination), an atomic fragment, and an IPv4-mapped source;
//   - IPv4 header fields: TOS with ECN codepoints, the reserved flag, no
//     DF, IP options (router alert, record route), bad IP and TCP
//     checksums built on purpose;
//   - IPv4 and IPv6 fragments of a SYN with data (FragmentIPv4/6), with
//     the first fragment holding the whole TCP header or not;
//   - ICMP and ICMPv6 errors of every type and code tcpcraft names,
//     quoting a full segment or only 8 bytes of it, and one with a bad
//     ICMP checksum.
//
// Run from the module root:
//
//	go run craft/testdata/gen_ext.go
//	tcpdump -nn -t -r craft/testdata/ext.pcap > craft/testdata/ext.txt
//	tcpdump -nn -t -v -r craft/testdata/ext.pcap | (join continuation lines, see README) > craft/testdata/ext.v.txt
package main

import (
	"log"
	"net/netip"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/tcpcraft/tcpcraft/craft"
)

var (
	c4, s4, r4 = netip.MustParseAddr("10.0.2.21"), netip.MustParseAddr("10.0.2.20"), netip.MustParseAddr("10.0.1.1")
	c6, s6, r6 = netip.MustParseAddr("fd00:2::21"), netip.MustParseAddr("fd00:2::20"), netip.MustParseAddr("fd00:1::1")
)

func must(b []byte, err error) []byte {
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func routing(typ uint8, segLeft uint8, addrs ...string) craft.IPv6Ext {
	b := make([]byte, 8, 8+16*len(addrs))
	b[1] = uint8(2 * len(addrs))
	b[2] = typ
	b[3] = segLeft
	if typ == 4 {
		b[4] = uint8(len(addrs) - 1) // last entry
	}
	for _, a := range addrs {
		b = append(b, netip.MustParseAddr(a).AsSlice()...)
	}
	return craft.IPv6Ext{Kind: craft.IPv6Routing, Data: b}
}

func main() {
	var pkts [][]byte
	add := func(b ...[]byte) { pkts = append(pkts, b...) }
	syn := func() *craft.TCP {
		return &craft.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: craft.FlagSYN, Window: 64240, Options: craft.LinuxSYNOptions(1460, 7, 1, 0)}
	}
	v6 := func(ext ...craft.IPv6Ext) *craft.IPv6 {
		return &craft.IPv6{HopLimit: 64, FlowLabel: 0x12345, Src: c6, Dst: s6, Ext: ext}
	}
	v4 := func() *craft.IPv4 { return &craft.IPv4{TTL: 64, ID: 1234, DontFragment: true, Src: c4, Dst: s4} }

	// IPv6 extension headers.
	add(must(craft.AppendIPv6TCP(nil, v6(craft.IPv6OptionsHeader(craft.IPv6HopByHop, nil)), syn(), craft.BuildOptions{})))
	add(must(craft.AppendIPv6TCP(nil, v6(craft.IPv6OptionsHeader(craft.IPv6HopByHop, []byte{5, 2, 0, 0})), syn(), craft.BuildOptions{})))
	add(must(craft.AppendIPv6TCP(nil, v6(craft.IPv6OptionsHeader(craft.IPv6DestOpts, []byte{0x1e, 2, 0, 0})), syn(), craft.BuildOptions{})))
	add(must(craft.AppendIPv6TCP(nil, v6(routing(0, 1, "fd00:2::99")), syn(), craft.BuildOptions{})))
	add(must(craft.AppendIPv6TCP(nil, v6(routing(4, 1, "fd00:2::77", "fd00:2::20")), syn(), craft.BuildOptions{})))
	add(must(craft.AppendIPv6TCP(nil, v6(craft.IPv6OptionsHeader(craft.IPv6HopByHop, nil), craft.IPv6OptionsHeader(craft.IPv6DestOpts, nil)), syn(), craft.BuildOptions{})))
	add(must(craft.AppendIPv6TCP(nil, v6(craft.IPv6FragmentHeader(0, false, 0x1234)), syn(), craft.BuildOptions{})))
	mapped := v6()
	mapped.Src = netip.MustParseAddr("::ffff:48.48.48.48")
	add(must(craft.AppendIPv6TCP(nil, mapped, syn(), craft.BuildOptions{})))
	tc := v6()
	tc.TrafficClass = 0x12 // DSCP 4, ECT(0)
	add(must(craft.AppendIPv6TCP(nil, tc, syn(), craft.BuildOptions{})))

	// IPv4 header fields.
	for _, f := range []func(*craft.IPv4){
		func(ip *craft.IPv4) { ip.DSCP = 4 },
		func(ip *craft.IPv4) { ip.DSCP, ip.ECN = 10, 2 },
		func(ip *craft.IPv4) { ip.ECN = 1 },
		func(ip *craft.IPv4) { ip.ECN = 3 },
		func(ip *craft.IPv4) { ip.ReservedFlag = true },
		func(ip *craft.IPv4) { ip.DontFragment = false; ip.ID = 4321 },
		func(ip *craft.IPv4) { ip.Options = []byte{0x94, 4, 0, 0} },
		func(ip *craft.IPv4) { ip.Options = []byte{0x07, 7, 4, 1, 2, 3, 4, 0} },
	} {
		ip := v4()
		f(ip)
		add(must(craft.AppendIPv4TCP(nil, ip, syn(), craft.BuildOptions{})))
	}
	add(must(craft.AppendIPv4TCP(nil, v4(), syn(), craft.BuildOptions{BadTCPChecksum: true})))
	add(must(craft.AppendIPv4TCP(nil, v4(), syn(), craft.BuildOptions{BadIPChecksum: true})))
	add(must(craft.AppendIPv6TCP(nil, v6(), syn(), craft.BuildOptions{BadTCPChecksum: true})))

	// Fragments of a SYN with 40 bytes of data.
	data := syn()
	data.Payload = []byte("0123456789abcdefghijklmnopqrstuvwxyzABCD")
	whole4 := v4()
	whole4.DontFragment = false
	p4 := must(craft.AppendIPv4TCP(nil, whole4, data, craft.BuildOptions{}))
	for _, size := range []int{16, 48} {
		frags, err := craft.FragmentIPv4(p4, size)
		if err != nil {
			log.Fatal(err)
		}
		add(frags...)
	}
	opt4 := v4()
	opt4.DontFragment = false
	opt4.Options = []byte{0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0, 0} // RA copied, RR not
	frags, err := craft.FragmentIPv4(must(craft.AppendIPv4TCP(nil, opt4, data, craft.BuildOptions{})), 48)
	if err != nil {
		log.Fatal(err)
	}
	add(frags...)
	p6 := must(craft.AppendIPv6TCP(nil, v6(craft.IPv6OptionsHeader(craft.IPv6HopByHop, nil)), data, craft.BuildOptions{}))
	for _, size := range []int{16, 48} {
		frags, err := craft.FragmentIPv6(p6, size, 0xabcd)
		if err != nil {
			log.Fatal(err)
		}
		add(frags...)
	}

	// ICMP errors quoting a probe: the whole SYN, or its first 8 bytes.
	q4 := must(craft.AppendIPv4TCP(nil, &craft.IPv4{TTL: 1, ID: 77, DontFragment: true, Src: c4, Dst: s4}, syn(), craft.BuildOptions{}))
	ack := &craft.TCP{SrcPort: 40001, DstPort: 443, Seq: 5000, Ack: 9000, Flags: craft.FlagACK | craft.FlagPSH, Window: 502, Payload: []byte("hello")}
	q4ack := must(craft.AppendIPv4TCP(nil, &craft.IPv4{TTL: 3, ID: 78, Src: c4, Dst: s4}, ack, craft.BuildOptions{}))
	q6 := must(craft.AppendIPv6TCP(nil, &craft.IPv6{HopLimit: 1, Src: c6, Dst: s6}, syn(), craft.BuildOptions{}))
	icmp := func(e craft.ICMPError) []byte { return must(craft.AppendICMPError(nil, &e, craft.BuildOptions{})) }
	out4 := craft.IPv4{TTL: 64, Src: r4, Dst: c4}
	out6 := craft.IPv6{HopLimit: 64, Src: r6, Dst: c6}
	for code := uint8(0); code < 16; code++ {
		e := craft.ICMPError{IPVersion: 4, IPv4: out4, Type: craft.ICMPUnreachable, Code: code, Quote: craft.Quote{Bytes: q4[:28]}}
		if code == craft.ICMPFragNeeded {
			e.MTU = 1200
		}
		add(icmp(e))
	}
	add(icmp(craft.ICMPError{IPVersion: 4, IPv4: out4, Type: craft.ICMPUnreachable, Code: 3, Quote: craft.Quote{Bytes: q4ack}}))
	add(icmp(craft.ICMPError{IPVersion: 4, IPv4: out4, Type: craft.ICMPTimeExceeded, Code: 0, Quote: craft.Quote{Bytes: q4}}))
	add(icmp(craft.ICMPError{IPVersion: 4, IPv4: out4, Type: craft.ICMPTimeExceeded, Code: 0, Quote: craft.Quote{Bytes: q4[:28]}}))
	add(icmp(craft.ICMPError{IPVersion: 4, IPv4: out4, Type: craft.ICMPTimeExceeded, Code: 1, Quote: craft.Quote{Bytes: q4}}))
	add(icmp(craft.ICMPError{IPVersion: 4, IPv4: out4, Type: craft.ICMPParamProblem, Code: 0, Pointer: 20, Quote: craft.Quote{Bytes: q4}}))
	add(icmp(craft.ICMPError{IPVersion: 4, IPv4: out4, Type: craft.ICMPParamProblem, Code: 1, Quote: craft.Quote{Bytes: q4}}))
	for code := uint8(0); code < 5; code++ {
		add(icmp(craft.ICMPError{IPVersion: 6, IPv6: out6, Type: craft.ICMPv6Unreachable, Code: code, Quote: craft.Quote{Bytes: q6}}))
	}
	add(icmp(craft.ICMPError{IPVersion: 6, IPv6: out6, Type: craft.ICMPv6Unreachable, Code: 4, Quote: craft.Quote{Bytes: q6[:48]}}))
	add(icmp(craft.ICMPError{IPVersion: 6, IPv6: out6, Type: craft.ICMPv6PacketTooBig, MTU: 1280, Quote: craft.Quote{Bytes: q6}}))
	add(icmp(craft.ICMPError{IPVersion: 6, IPv6: out6, Type: craft.ICMPv6TimeExceeded, Code: 0, Quote: craft.Quote{Bytes: q6}}))
	add(icmp(craft.ICMPError{IPVersion: 6, IPv6: out6, Type: craft.ICMPv6TimeExceeded, Code: 1, Quote: craft.Quote{Bytes: q6}}))
	for code := uint8(0); code < 4; code++ {
		add(icmp(craft.ICMPError{IPVersion: 6, IPv6: out6, Type: craft.ICMPv6ParamProblem, Code: code, Pointer: 6, Quote: craft.Quote{Bytes: q6}}))
	}
	bad := icmp(craft.ICMPError{IPVersion: 4, IPv4: out4, Type: craft.ICMPUnreachable, Code: 13, Quote: craft.Quote{Bytes: q4}})
	bad[22] ^= 0xff // the ICMP checksum's low byte
	add(bad)

	f, err := os.Create("craft/testdata/ext.pcap")
	if err != nil {
		log.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		log.Fatal(err)
	}
	for i, p := range pkts {
		ci := gopacket.CaptureInfo{CaptureLength: len(p), Length: len(p)}
		ci.Timestamp = ci.Timestamp.AddDate(2026, 0, i)
		if err := w.WritePacket(ci, p); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
