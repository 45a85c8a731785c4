//go:build ignore

// gen_synth writes synth.pcap, the synthesized part of craft's test corpus:
// segments that a kernel capture rarely shows (every option kind, reserved
// bits, all flags, bad checksums, IP options, VLAN tags, Ethernet padding,
// IPv6 flow labels). The expected decodings come from independent decoders
// (tcpdump goldens, gopacket), not from this program. Run from the module
// root:
//
//	go run craft/testdata/gen_synth.go
package main

import (
	"log"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/tcpcraft/tcpcraft/craft"
)

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0x21}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0x20}
	cli4 = netip.MustParseAddr("10.0.2.21")
	srv4 = netip.MustParseAddr("10.0.2.20")
	cli6 = netip.MustParseAddr("fd00:2::21")
	srv6 = netip.MustParseAddr("fd00:2::20")
)

func v4(src, dst netip.Addr, id uint16) craft.IPv4 {
	return craft.IPv4{ID: id, DontFragment: true, TTL: 64, Src: src, Dst: dst}
}

func eth(ip []byte, v6 bool) []byte {
	et := craft.EtherTypeIPv4
	if v6 {
		et = craft.EtherTypeIPv6
	}
	b := craft.AppendEthernet(nil, macB, macA, et)
	return append(b, ip...)
}

func must(b []byte, err error) []byte {
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func main() {
	var frames [][]byte
	add4 := func(ip craft.IPv4, t craft.TCP, o craft.BuildOptions) []byte {
		b := must(craft.AppendIPv4TCP(nil, &ip, &t, o))
		frames = append(frames, eth(b, false))
		return b
	}
	// 1. SYN with every option kind: MSS, SACK-permitted, timestamps, NOP,
	// window scale, an unknown kind with data, SACK, then EOL and padding.
	add4(v4(cli4, srv4, 1), craft.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: craft.FlagSYN, Window: 65535,
		Options: append(craft.LinuxSYNOptions(1460, 7, 1, 0),
			craft.Option{Kind: 99, Data: []byte{0xab, 0xcd}},
			craft.SACKOption(craft.SACKBlock{Left: 5, Right: 9}),
			craft.Option{Kind: craft.OptEOL, Data: []byte{0, 0, 0, 0, 0}})}, craft.BuildOptions{})
	// 2. SYN-ACK.
	add4(v4(srv4, cli4, 0), craft.TCP{SrcPort: 80, DstPort: 40000, Seq: 4294967000, Ack: 1001, Flags: craft.FlagSYN | craft.FlagACK, Window: 65160,
		Options: craft.LinuxSYNOptions(1460, 10, 77, 1)}, craft.BuildOptions{})
	// 3. ACK.
	add4(v4(cli4, srv4, 2), craft.TCP{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: 4294967001, Flags: craft.FlagACK, Window: 502}, craft.BuildOptions{})
	// 4. Data with PSH, sequence wrapping past 2^32 on the server side.
	add4(v4(srv4, cli4, 1), craft.TCP{SrcPort: 80, DstPort: 40000, Seq: 4294967001, Ack: 1001, Flags: craft.FlagPSH | craft.FlagACK, Window: 509,
		Options: []craft.Option{craft.NOPOption(), craft.NOPOption(), craft.TimestampsOption(80, 2)},
		Payload: make([]byte, 600)}, craft.BuildOptions{})
	// 5. ACK with four SACK blocks (relative to the server's ISN in tcpdump).
	add4(v4(cli4, srv4, 3), craft.TCP{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: 4294967001, Flags: craft.FlagACK, Window: 502,
		Options: []craft.Option{craft.NOPOption(), craft.NOPOption(), craft.SACKOption(
			craft.SACKBlock{Left: 4294967101, Right: 4294967201}, craft.SACKBlock{Left: 4294967251, Right: 5},
			craft.SACKBlock{Left: 105, Right: 205}, craft.SACKBlock{Left: 305, Right: 405}),
			craft.Option{Kind: craft.OptEOL, Data: []byte{0, 0}}}}, craft.BuildOptions{})
	// 6. All twelve flag bits: 8 classic, NS, 3 reserved; urgent pointer.
	add4(v4(cli4, srv4, 4), craft.TCP{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: 305, Flags: craft.FlagsMask, Window: 502, Urgent: 3,
		Payload: []byte("urgent!")}, craft.BuildOptions{})
	// 7. No flags at all.
	add4(v4(cli4, srv4, 5), craft.TCP{SrcPort: 40001, DstPort: 81, Seq: 7, Ack: 9, Window: 1}, craft.BuildOptions{})
	// 8. ECE and CWR with SYN (ECN setup, RFC 3168 §6.1.1).
	add4(v4(cli4, srv4, 6), craft.TCP{SrcPort: 40002, DstPort: 80, Seq: 100, Flags: craft.FlagSYN | craft.FlagECE | craft.FlagCWR, Window: 64240,
		Options: craft.LinuxSYNOptions(1460, 7, 5, 0)}, craft.BuildOptions{})
	// 9. Bad TCP checksum.
	add4(v4(cli4, srv4, 7), craft.TCP{SrcPort: 40003, DstPort: 80, Seq: 200, Flags: craft.FlagSYN, Window: 1024, Checksum: 0x1234},
		craft.BuildOptions{KeepTCPChecksum: true})
	// 10. Bad IP header checksum, good TCP checksum.
	bad := v4(cli4, srv4, 8)
	bad.Checksum = 0xbeef
	add4(bad, craft.TCP{SrcPort: 40004, DstPort: 80, Seq: 300, Flags: craft.FlagRST, Window: 0}, craft.BuildOptions{KeepIPChecksum: true})
	// 11. IP options (NOP, NOP, NOP, EOL), DSCP/ECN, reserved IP flag, TTL 1.
	ipo := craft.IPv4{ID: 0xfffe, DSCP: 46, ECN: 2, ReservedFlag: true, TTL: 1, Src: cli4, Dst: srv4, Options: []byte{1, 1, 1, 0}}
	add4(ipo, craft.TCP{SrcPort: 40005, DstPort: 80, Seq: 400, Ack: 1, Flags: craft.FlagACK | craft.FlagFIN, Window: 8}, craft.BuildOptions{})
	// 12. Unknown option without data, EOL in the middle followed by
	// non-zero bytes (kept as EOL data).
	add4(v4(cli4, srv4, 9), craft.TCP{SrcPort: 40006, DstPort: 80, Seq: 500, Flags: craft.FlagSYN, Window: 4,
		Options: []craft.Option{{Kind: 200, Data: []byte{}}, craft.MSSOption(536), {Kind: craft.OptEOL, Data: []byte{2, 4, 5}}}}, craft.BuildOptions{})
	// 13. RST with a payload (RFC 9293 §3.5.3 allows data on RST).
	add4(v4(srv4, cli4, 10), craft.TCP{SrcPort: 81, DstPort: 40001, Seq: 0, Ack: 8, Flags: craft.FlagRST | craft.FlagACK, Payload: []byte("no listener")}, craft.BuildOptions{})
	// 14. Short frame with Ethernet padding after the IP packet.
	{
		ip := v4(cli4, srv4, 11)
		b := must(craft.AppendIPv4TCP(nil, &ip, &craft.TCP{SrcPort: 40007, DstPort: 80, Seq: 9, Ack: 9, Flags: craft.FlagACK, Window: 9}, craft.BuildOptions{}))
		f := eth(b, false)
		for len(f) < 60 {
			f = append(f, 0xee)
		}
		frames = append(frames, f)
	}
	// 15. 802.1Q VLAN tag (VLAN 42, priority 3).
	{
		ip := v4(cli4, srv4, 12)
		b := must(craft.AppendIPv4TCP(nil, &ip, &craft.TCP{SrcPort: 40008, DstPort: 80, Seq: 10, Flags: craft.FlagSYN, Window: 10}, craft.BuildOptions{}))
		f := craft.AppendEthernet(nil, macB, macA, craft.EtherTypeVLAN)
		f = append(f, 0x60, 42, 0x08, 0x00)
		frames = append(frames, append(f, b...))
	}
	// 16-17. IPv6 with traffic class and flow label; SYN and data.
	add6 := func(ip craft.IPv6, t craft.TCP, o craft.BuildOptions) {
		b := must(craft.AppendIPv6TCP(nil, &ip, &t, o))
		frames = append(frames, eth(b, true))
	}
	add6(craft.IPv6{TrafficClass: 0xb8, FlowLabel: 0xabcde, HopLimit: 64, Src: cli6, Dst: srv6},
		craft.TCP{SrcPort: 50000, DstPort: 8080, Seq: 123456, Flags: craft.FlagSYN, Window: 64800, Options: craft.LinuxSYNOptions(1440, 10, 3, 0)}, craft.BuildOptions{})
	add6(craft.IPv6{HopLimit: 255, Src: srv6, Dst: cli6},
		craft.TCP{SrcPort: 8080, DstPort: 50000, Seq: 99, Ack: 123457, Flags: craft.FlagACK | craft.FlagPSH, Window: 3,
			Payload: []byte("hello")}, craft.BuildOptions{})
	// 18. IPv6 with a bad TCP checksum.
	add6(craft.IPv6{HopLimit: 1, Src: cli6, Dst: srv6},
		craft.TCP{SrcPort: 50001, DstPort: 8080, Seq: 1, Flags: craft.FlagFIN, Window: 3, Checksum: 0xffff}, craft.BuildOptions{KeepTCPChecksum: true})
	// 19. Window scale 14, MSS 65535, timestamps with all bits set.
	add4(v4(cli4, srv4, 13), craft.TCP{SrcPort: 65535, DstPort: 1, Seq: 0xffffffff, Ack: 0xffffffff, Flags: craft.FlagSYN | craft.FlagACK, Window: 65535,
		Options: []craft.Option{craft.MSSOption(65535), craft.WindowScaleOption(14), craft.TimestampsOption(0xffffffff, 0xffffffff), craft.SACKPermittedOption()}}, craft.BuildOptions{})

	f, err := os.Create("craft/testdata/synth.pcap")
	if err != nil {
		log.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		log.Fatal(err)
	}
	ts := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, b := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(b), Length: len(b)}
		if err := w.WritePacket(ci, b); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
