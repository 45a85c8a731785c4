package craft

import (
	"math/rand"
	"net/netip"
	"testing"
)

// Benchmarks of the hot paths; run with -benchmem. Parsing a view, parsing
// into a reused TCP or Packet, and building into a reused buffer must not
// allocate (TestParsePacketNoAllocs and TestBuildNoAllocs enforce it).

func benchSegment(b *testing.B, payload int) (IPv4, TCP) {
	b.Helper()
	ip := IPv4{ID: 1, TTL: 64, DontFragment: true, Src: client4, Dst: server4}
	tcp := TCP{SrcPort: 40000, DstPort: 80, Seq: 1, Ack: 2, Flags: FlagACK | FlagPSH, Window: 502,
		Options: []Option{NOPOption(), NOPOption(), TimestampsOption(1, 2)}, Payload: make([]byte, payload)}
	return ip, tcp
}

func BenchmarkTCPView(b *testing.B) {
	ip, tcp := benchSegment(b, 1448)
	pkt, err := BuildIPv4TCP(ip, &tcp)
	if err != nil {
		b.Fatal(err)
	}
	seg := pkt[20:]
	b.ReportAllocs()
	b.SetBytes(int64(len(seg)))
	var sink uint32
	for b.Loop() {
		v, err := NewTCPView(seg)
		if err != nil {
			b.Fatal(err)
		}
		sink += uint32(v.Seq()) + uint32(v.Ack()) + uint32(v.Flags()) + uint32(v.Window()) + uint32(len(v.Payload()))
	}
	_ = sink
}

func BenchmarkTCPParse(b *testing.B) {
	ip, tcp := benchSegment(b, 1448)
	pkt, err := BuildIPv4TCP(ip, &tcp)
	if err != nil {
		b.Fatal(err)
	}
	var t TCP
	b.ReportAllocs()
	for b.Loop() {
		if err := t.Parse(pkt[20:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePacket(b *testing.B) {
	ip, tcp := benchSegment(b, 1448)
	pkt, err := BuildIPv4TCP(ip, &tcp)
	if err != nil {
		b.Fatal(err)
	}
	frame := append(AppendEthernet(nil, [6]byte{1}, [6]byte{2}, EtherTypeIPv4), pkt...)
	var p Packet
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := ParsePacket(LinkEthernet, frame, &p, PacketOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePacketNoChecksum(b *testing.B) {
	ip, tcp := benchSegment(b, 1448)
	pkt, err := BuildIPv4TCP(ip, &tcp)
	if err != nil {
		b.Fatal(err)
	}
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		if err := ParsePacket(LinkRaw, pkt, &p, PacketOptions{PartialChecksum: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendIPv4TCP(b *testing.B) {
	for _, size := range []int{0, 1448} {
		b.Run(itoa(size), func(b *testing.B) {
			ip, tcp := benchSegment(b, size)
			buf := make([]byte, 0, 2048)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				var err error
				buf, err = AppendIPv4TCP(buf[:0], &ip, &tcp, BuildOptions{})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendIPv4TCPSYN(b *testing.B) {
	ip := IPv4{TTL: 64, Src: client4, Dst: server4}
	tcp := TCP{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: FlagSYN, Window: 64240, Options: LinuxSYNOptions(1460, 7, 1, 0)}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendIPv4TCP(buf[:0], &ip, &tcp, BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChecksum1500(b *testing.B) {
	data := make([]byte, 1500)
	for i := range data {
		data[i] = byte(i)
	}
	b.SetBytes(int64(len(data)))
	var sink uint16
	for b.Loop() {
		sink += Checksum(data)
	}
	_ = sink
}

func BenchmarkFormatText(b *testing.B) {
	pkts := parseAll(b, "linux-http.pcap")
	var f Formatter
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		for i := range pkts {
			buf = f.AppendText(buf[:0], &pkts[i])
		}
	}
}

// TestBuildNoAllocs: building into a buffer with room does not allocate.
func TestBuildNoAllocs(t *testing.T) {
	ip := IPv4{TTL: 64, Src: client4, Dst: server4}
	tcp := TCP{Flags: FlagSYN, Options: LinuxSYNOptions(1460, 7, 1, 0), Payload: make([]byte, 100)}
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = AppendIPv4TCP(buf[:0], &ip, &tcp, BuildOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendIPv4TCP allocates %v times", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = AppendIPv4TCPHeaders(buf[:0], &ip, &tcp, [][]byte{tcp.Payload}, BuildOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendIPv4TCPHeaders allocates %v times", allocs)
	}
	v6 := randomIPv6(rand.New(rand.NewSource(1)))
	allocs = testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = AppendIPv6TCP(buf[:0], &v6, &tcp, BuildOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendIPv6TCP allocates %v times", allocs)
	}
}

// BenchmarkIPv6 builds and parses a 1448-byte IPv6 segment: the family
// the capture layer will send and receive through the same builders, with
// no allocation either way.
func BenchmarkIPv6(b *testing.B) {
	_, tcp := benchSegment(b, 1448)
	ip := IPv6{HopLimit: 64, FlowLabel: 0x12345, Src: netip.MustParseAddr("fd00:2::21"), Dst: netip.MustParseAddr("fd00:2::20")}
	buf := make([]byte, 0, 2048)
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = AppendIPv6TCP(buf[:0], &ip, &tcp, BuildOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	pkt, err := AppendIPv6TCP(nil, &ip, &tcp, BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var p Packet
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := ParsePacket(LinkRaw, pkt, &p, PacketOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
