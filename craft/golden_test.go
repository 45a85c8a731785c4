package craft

import (
	"net/netip"
	"testing"
)

// The golden tests check real segments captured from the Linux kernel
// (testdata/linux-http.pcap: curl to python3 http.server between two
// network namespaces on a veth pair with checksum offload turned off, so
// every checksum on the wire is final). Expected values were read off the
// capture with tcpdump -nn -vv (testdata/linux-http.verbose.txt).

var (
	client4 = netip.MustParseAddr("10.0.2.21")
	server4 = netip.MustParseAddr("10.0.2.20")
)

func TestGoldenLinuxSYN(t *testing.T) {
	pkts := parseAll(t, "linux-http.pcap")
	p := &pkts[0]
	ip := p.IPv4
	if p.IPVersion != 4 || ip.Version != 4 || ip.IHL != 5 || ip.DSCP != 0 || ip.ECN != 0 || ip.TotalLength != 60 ||
		ip.ID != 19480 || ip.ReservedFlag || !ip.DontFragment || ip.MoreFragments || ip.FragmentOffset != 0 ||
		ip.TTL != 64 || ip.Protocol != ProtocolTCP || ip.Checksum != 0xd67b || ip.Src != client4 || ip.Dst != server4 ||
		len(ip.Options) != 0 {
		t.Errorf("SYN IPv4 header: %+v", ip)
	}
	tcp := &p.TCP
	if tcp.SrcPort != 53888 || tcp.DstPort != 80 || tcp.Seq != 2619426933 || tcp.Ack != 0 || tcp.DataOffset != 10 ||
		tcp.Flags != FlagSYN || tcp.Window != 64240 || tcp.Checksum != 0xaa68 || tcp.Urgent != 0 || len(tcp.Payload) != 0 {
		t.Errorf("SYN TCP header: %+v", tcp)
	}
	want := []Option{MSSOption(1460), SACKPermittedOption(), TimestampsOption(3708352010, 0), NOPOption(), WindowScaleOption(10)}
	checkOptions(t, "SYN", tcp.Options, want)
	if p.IPChecksum.State != ChecksumGood || p.TCPChecksum.State != ChecksumGood {
		t.Errorf("SYN checksums: ip %v tcp %v", p.IPChecksum, p.TCPChecksum)
	}
	// The Linux-like SYN option helper builds exactly what Linux sent.
	checkOptions(t, "LinuxSYNOptions", LinuxSYNOptions(1460, 10, 3708352010, 0), want)
}

func TestGoldenLinuxSYNACK(t *testing.T) {
	pkts := parseAll(t, "linux-http.pcap")
	syn, p := &pkts[0], &pkts[1]
	if p.IPv4.ID != 0 || !p.IPv4.DontFragment || p.IPv4.Src != server4 || p.IPChecksum.State != ChecksumGood {
		t.Errorf("SYN-ACK IPv4: %+v", p.IPv4)
	}
	tcp := &p.TCP
	if tcp.SrcPort != 80 || tcp.DstPort != 53888 || tcp.Seq != 2716094143 || tcp.Ack != syn.TCP.Seq.Add(1) ||
		tcp.Flags != FlagSYN|FlagACK || tcp.Window != 65160 || tcp.Checksum != 0x5a81 || len(tcp.Payload) != 0 {
		t.Errorf("SYN-ACK TCP: %+v", tcp)
	}
	checkOptions(t, "SYN-ACK", tcp.Options, []Option{MSSOption(1460), SACKPermittedOption(),
		TimestampsOption(3750525965, 3708352010), NOPOption(), WindowScaleOption(10)})
	if p.IPChecksum.State != ChecksumGood || p.TCPChecksum.State != ChecksumGood {
		t.Errorf("SYN-ACK checksums: ip %v tcp %v", p.IPChecksum, p.TCPChecksum)
	}
}

func TestGoldenLinuxData(t *testing.T) {
	pkts := parseAll(t, "linux-http.pcap")
	synack, p := &pkts[1], &pkts[3]
	tcp := &p.TCP
	if p.IPv4.TotalLength != 135 || p.IPv4.ID != 19482 {
		t.Errorf("request IPv4: %+v", p.IPv4)
	}
	if tcp.Seq != 2619426934 || tcp.Ack != synack.TCP.Seq.Add(1) || tcp.Flags != FlagPSH|FlagACK || tcp.Window != 63 ||
		tcp.DataOffset != 8 || tcp.Checksum != 0x8171 || len(tcp.Payload) != 83 {
		t.Errorf("request TCP: %+v", tcp)
	}
	if got := string(tcp.Payload[:26]); got != "GET /index.html HTTP/1.1\r\n" {
		t.Errorf("request payload starts %q", got)
	}
	checkOptions(t, "request", tcp.Options, []Option{NOPOption(), NOPOption(), TimestampsOption(3708352010, 3750525965)})
	if p.TCPChecksum.State != ChecksumGood || p.TCPChecksum.Expected != 0x8171 {
		t.Errorf("request checksum %+v", p.TCPChecksum)
	}
	if got := tcp.SegmentLen(); got != 83 {
		t.Errorf("SegmentLen %d", got)
	}
	// The server's response: 185 bytes at its ISN+1.
	resp := &pkts[5].TCP
	if resp.Seq != synack.TCP.Seq.Add(1) || len(resp.Payload) != 185 || resp.Ack != tcp.Seq.Add(83) || pkts[5].TCPChecksum.State != ChecksumGood {
		t.Errorf("response: seq %d ack %d len %d", resp.Seq, resp.Ack, len(resp.Payload))
	}
}

func TestGoldenLinuxFINAndRST(t *testing.T) {
	pkts := parseAll(t, "linux-http.pcap")
	isnC, isnS := pkts[0].TCP.Seq, pkts[1].TCP.Seq
	srvFIN, cliFIN, lastACK := &pkts[9].TCP, &pkts[10].TCP, &pkts[11].TCP
	if srvFIN.Flags != FlagFIN|FlagACK || srvFIN.Seq != isnS.Add(218) || srvFIN.Ack != isnC.Add(84) || srvFIN.SegmentLen() != 1 || srvFIN.Window != 64 {
		t.Errorf("server FIN: %+v", srvFIN)
	}
	if cliFIN.Flags != FlagFIN|FlagACK || cliFIN.Seq != isnC.Add(84) || cliFIN.Ack != isnS.Add(219) {
		t.Errorf("client FIN: %+v", cliFIN)
	}
	if lastACK.Flags != FlagACK || lastACK.Ack != isnC.Add(85) {
		t.Errorf("last ACK: %+v", lastACK)
	}
	checkOptions(t, "server FIN", srvFIN.Options, []Option{NOPOption(), NOPOption(), TimestampsOption(3750525975, 3708352020)})
	// Connection refused: the kernel answers a SYN to a closed port with
	// RST|ACK, seq 0, ack ISN+1, window 0, no options (RFC 9293 §3.5.2).
	syn, rst := &pkts[12], &pkts[13]
	if rst.TCP.Flags != FlagRST|FlagACK || rst.TCP.Seq != 0 || rst.TCP.Ack != syn.TCP.Seq.Add(1) || rst.TCP.Window != 0 ||
		len(rst.TCP.Options) != 0 || rst.TCP.DataOffset != 5 || rst.TCP.SrcPort != 81 {
		t.Errorf("RST: %+v", rst.TCP)
	}
	for i := range pkts {
		if pkts[i].TCPChecksum.State != ChecksumGood {
			t.Errorf("packet %d: tcp checksum %v", i+1, pkts[i].TCPChecksum)
		}
		if pkts[i].IPVersion == 4 && pkts[i].IPChecksum.State != ChecksumGood {
			t.Errorf("packet %d: ip checksum %v", i+1, pkts[i].IPChecksum)
		}
	}
}

func TestGoldenLinuxIPv6(t *testing.T) {
	pkts := parseAll(t, "linux-http.pcap")
	p := &pkts[14]
	ip := p.IPv6
	if p.IPVersion != 6 || ip.Src != netip.MustParseAddr("fd00:2::21") || ip.Dst != netip.MustParseAddr("fd00:2::20") ||
		ip.NextHeader != ProtocolTCP || ip.HopLimit != 64 || ip.PayloadLength != 40 || ip.TrafficClass != 0 {
		t.Errorf("IPv6 SYN header: %+v", ip)
	}
	if p.TCP.SrcPort != 58208 || p.TCP.DstPort != 8080 || p.TCP.Seq != 65912624 || p.TCP.Window != 64800 ||
		p.TCPChecksum.State != ChecksumGood || p.IPChecksum.State != ChecksumNone {
		t.Errorf("IPv6 SYN: %+v %+v", p.TCP, p.TCPChecksum)
	}
	checkOptions(t, "IPv6 SYN", p.TCP.Options, LinuxSYNOptions(1440, 10, 1043363605, 0))
}

func checkOptions(t *testing.T, what string, got, want []Option) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d options %v, want %d %v", what, len(got), got, len(want), want)
		return
	}
	for i := range got {
		if !got[i].Equal(&want[i]) {
			t.Errorf("%s: option %d is %+v, want %+v", what, i, got[i], want[i])
		}
	}
}
