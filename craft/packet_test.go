package craft

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// buildSYN returns a bare IPv4 SYN from client4 to server4.
func buildSYN(t testing.TB) []byte {
	t.Helper()
	b, err := BuildIPv4TCP(IPv4{ID: 7, TTL: 64, DontFragment: true, Src: client4, Dst: server4},
		&TCP{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: FlagSYN, Window: 1000, Options: LinuxSYNOptions(1460, 7, 1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ethernet(et uint16, payload []byte) []byte {
	return append(AppendEthernet(nil, [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}, et), payload...)
}

func TestParsePacketLinkTypes(t *testing.T) {
	ip := buildSYN(t)
	sll := make([]byte, 16)
	binary.BigEndian.PutUint16(sll[14:], EtherTypeIPv4)
	sll2 := make([]byte, 20)
	binary.BigEndian.PutUint16(sll2[0:], EtherTypeIPv4)
	qinq := ethernet(EtherTypeQinQ, append([]byte{0x00, 0x05, 0x81, 0x00, 0x20, 0x2a, 0x08, 0x00}, ip...))
	padded := append(ethernet(EtherTypeIPv4, ip), make([]byte, 30)...)
	for _, tc := range []struct {
		name   string
		link   LinkType
		frame  []byte
		tagged bool
		vlan   uint16
	}{
		{"raw", LinkRaw, ip, false, 0},
		{"ipv4", LinkIPv4, ip, false, 0},
		{"ethernet", LinkEthernet, ethernet(EtherTypeIPv4, ip), false, 0},
		{"ethernet padding", LinkEthernet, padded, false, 0},
		{"802.1Q", LinkEthernet, ethernet(EtherTypeVLAN, append([]byte{0x60, 0x2a, 0x08, 0x00}, ip...)), true, 42},
		{"802.1ad+802.1Q", LinkEthernet, qinq, true, 42},
		{"sll", LinkLinuxSLL, append(sll, ip...), false, 0},
		{"sll2", LinkLinuxSLL2, append(sll2, ip...), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if err := ParsePacket(tc.link, tc.frame, &p, PacketOptions{}); err != nil {
				t.Fatal(err)
			}
			if p.Link != tc.link || p.Tagged != tc.tagged || p.VLAN != tc.vlan || p.IPVersion != 4 || p.IPv4.ID != 7 ||
				p.TCP.SrcPort != 40000 || len(p.TCP.Options) != 5 || len(p.TCP.Payload) != 0 ||
				p.IPChecksum.State != ChecksumGood || p.TCPChecksum.State != ChecksumGood {
				t.Errorf("parsed %+v", p)
			}
			want := FourTuple{netip.AddrPortFrom(client4, 40000), netip.AddrPortFrom(server4, 80)}
			if p.Tuple() != want || p.Tuple().Reverse() != (FourTuple{want.Dst, want.Src}) || want.String() != "10.0.2.21.40000 > 10.0.2.20.80" {
				t.Errorf("tuple %v", p.Tuple())
			}
		})
	}
}

func TestParsePacketErrors(t *testing.T) {
	ip := buildSYN(t)
	udp := append([]byte{}, ip...)
	udp[9] = ProtocolUDP
	frag := append([]byte{}, ip...)
	frag[6] |= 0x20 // MF
	frag2 := append([]byte{}, ip...)
	binary.BigEndian.PutUint16(frag2[6:], 185) // offset 1480
	v6, err := BuildIPv6TCP(IPv6{HopLimit: 1, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2")}, &TCP{Flags: FlagSYN})
	if err != nil {
		t.Fatal(err)
	}
	// UDP after a destination options header: the walk ends at UDP.
	v6udp, err := (&IPv6{NextHeader: IPv6DestOpts, HopLimit: 1, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2")}).Emit(nil,
		append([]byte{ProtocolUDP, 0, 1, 4, 0, 0, 0, 0}, make([]byte, 8)...))
	if err != nil {
		t.Fatal(err)
	}
	// A hop-by-hop header that is not the first.
	hbhLate := append([]byte{}, v6udp...)
	hbhLate[40] = IPv6HopByHop
	badOpt := append([]byte{}, ip...)
	badOpt[20+20+1] = 3 // MSS length 3
	shortTCP := append([]byte{}, ip[:30]...)
	binary.BigEndian.PutUint16(shortTCP[2:], 30)
	bigOffset := append([]byte{}, ip...)
	bigOffset[20+12] = 0xf0
	smallOffset := append([]byte{}, ip...)
	smallOffset[20+12] = 0x40
	for _, tc := range []struct {
		name   string
		link   LinkType
		frame  []byte
		want   string
		target any
	}{
		{"udp", LinkRaw, udp, "not TCP: protocol 17 (UDP)", new(*NotTCPError)},
		{"ipv6 udp after dest options", LinkRaw, v6udp, "not TCP: protocol 17 (UDP)", new(*NotTCPError)},
		{"ipv6 late hop-by-hop", LinkRaw, hbhLate, "ipv6: hop-by-hop options header after another extension header (RFC 8200 §4.1: only right after the IPv6 header)", nil},
		{"arp", LinkEthernet, ethernet(0x0806, make([]byte, 28)), "not IP: ethertype 0x0806 (ARP)", new(*NotIPError)},
		{"unknown ethertype", LinkEthernet, ethernet(0x1234, ip), "not IP: ethertype 0x1234", new(*NotIPError)},
		{"version 5", LinkRaw, append([]byte{0x55}, ip[1:]...), "not IP: version 5", new(*NotIPError)},
		{"ipv6 as LinkIPv4", LinkIPv4, v6, "not IP: version 6", new(*NotIPError)},
		{"sll non-ip", LinkLinuxSLL, append(make([]byte, 14), 0x08, 0x06), "not IP: ethertype 0x0806 (ARP)", new(*NotIPError)},
		{"fragment MF", LinkRaw, frag, "ipv4 fragment (offset 0, more fragments true) is not reassembled", new(*FragmentError)},
		{"fragment offset", LinkRaw, frag2, "ipv4 fragment (offset 1480, more fragments false) is not reassembled", new(*FragmentError)},
		{"bad option", LinkRaw, badOpt, "tcp option at offset 20: mss option length 3, want 4", new(*OptionError)},
		{"ethertype/version mismatch", LinkEthernet, ethernet(EtherTypeIPv6, ip), "ethernet: ethertype 0x86dd but IP version 4", nil},
		{"unsupported link", LinkType(147), ip, "unsupported link type 147", nil},
		{"tcp data offset < 5", LinkRaw, smallOffset, "tcp: data offset 4 (16 bytes) is less than 5 words", nil},
		{"ipv4 IHL < 5", LinkRaw, append([]byte{0x44}, ip[1:]...), "ipv4: header length 16 (IHL 4) is less than 20", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			err := ParsePacket(tc.link, tc.frame, &p, PacketOptions{})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.target != nil && !errors.As(err, tc.target) {
				t.Errorf("error %T is not %T", err, tc.target)
			}
			if errors.Is(err, ErrTruncated) {
				t.Errorf("%v wraps ErrTruncated", err)
			}
		})
	}
	truncated := []struct {
		name  string
		link  LinkType
		frame []byte
	}{
		{"empty raw", LinkRaw, nil},
		{"short ethernet", LinkEthernet, make([]byte, 13)},
		{"vlan cut", LinkEthernet, ethernet(EtherTypeVLAN, []byte{0, 1})},
		{"short sll", LinkLinuxSLL, make([]byte, 15)},
		{"short sll2", LinkLinuxSLL2, make([]byte, 19)},
		{"ipv4 header cut", LinkRaw, ip[:19]},
		{"ipv4 options cut", LinkRaw, append([]byte{0x46}, ip[1:20]...)},
		{"ipv4 total length past end", LinkRaw, ip[:len(ip)-1]},
		{"ipv6 header cut", LinkRaw, v6[:39]},
		{"ipv6 payload cut", LinkRaw, v6[:len(v6)-1]},
		{"tcp header cut", LinkRaw, shortTCP},
		{"tcp data offset past end", LinkRaw, bigOffset},
	}
	for _, tc := range truncated {
		var p Packet
		if err := ParsePacket(tc.link, tc.frame, &p, PacketOptions{}); !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: error %v does not wrap ErrTruncated", tc.name, err)
		}
	}
	nineTags := ethernet(EtherTypeVLAN, append([]byte(strings.Repeat("\x00\x01\x81\x00", 9)), ip...))
	if err := ParsePacket(LinkEthernet, nineTags, new(Packet), PacketOptions{}); err == nil || !strings.Contains(err.Error(), "more than 8 VLAN tags") {
		t.Errorf("9 VLAN tags: %v", err)
	}
}

func TestParsePacketChecksumStates(t *testing.T) {
	ip := buildSYN(t)
	var p Packet
	bad := append([]byte{}, ip...)
	bad[len(bad)-1] ^= 0xff // inside the TCP options: TCP checksum wrong
	if err := ParsePacket(LinkRaw, bad, &p, PacketOptions{}); err != nil {
		t.Fatal(err)
	}
	want := TCPChecksum(client4, server4, bad[20:])
	if p.TCPChecksum.State != ChecksumBad || p.TCPChecksum.Expected != want || p.TCPChecksum.Value == want || p.IPChecksum.State != ChecksumGood {
		t.Errorf("bad TCP checksum: %+v ip %+v", p.TCPChecksum, p.IPChecksum)
	}
	// With checksum offload the same frame is unverified, not bad.
	if err := ParsePacket(LinkRaw, bad, &p, PacketOptions{PartialChecksum: true}); err != nil {
		t.Fatal(err)
	}
	if p.TCPChecksum.State != ChecksumUnverified || p.TCPChecksum.Value != binary.BigEndian.Uint16(bad[36:]) {
		t.Errorf("partial checksum: %+v", p.TCPChecksum)
	}
	badIP := append([]byte{}, ip...)
	badIP[10] ^= 1
	if err := ParsePacket(LinkRaw, badIP, &p, PacketOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.IPChecksum.State != ChecksumBad || p.IPChecksum.Expected != binary.BigEndian.Uint16(ip[10:]) || p.TCPChecksum.State != ChecksumGood {
		t.Errorf("bad IP checksum: %+v tcp %+v", p.IPChecksum, p.TCPChecksum)
	}
	for s, want := range map[ChecksumState]string{ChecksumUnverified: "unverified", ChecksumGood: "good", ChecksumBad: "bad", ChecksumNone: "none", 9: "ChecksumState(9)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}

// TestParsePacketNoAllocs: parsing frame after frame into one Packet does
// not allocate (the hot path of a capture loop).
func TestParsePacketNoAllocs(t *testing.T) {
	frames := readPcap(t, "linux-http.pcap")
	var p Packet
	for _, f := range frames {
		if err := ParsePacket(f.link, f.data, &p, PacketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(50, func() {
		for _, f := range frames {
			_ = ParsePacket(f.link, f.data, &p, PacketOptions{})
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per pass over the capture", allocs)
	}
}

func TestIPv4EmitComputesAndKeeps(t *testing.T) {
	ip := IPv4{ID: 1, TTL: 9, Protocol: 99, Src: client4, Dst: server4, Options: []byte{1, 1, 1}}
	b, err := ip.Emit(nil, []byte("xyz"), EmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewIPv4View(b)
	if err != nil {
		t.Fatal(err)
	}
	if v.IHL() != 6 || v.TotalLength() != 27 || !bytesEq(v.Options(), []byte{1, 1, 1, 0}) || string(v.Payload()) != "xyz" {
		t.Errorf("emitted % x", b)
	}
	if ok, _ := v.VerifyChecksum(); !ok {
		t.Errorf("computed checksum does not verify")
	}
	// Lying values are written as given.
	lie := IPv4{Version: 5, IHL: 15, TotalLength: 1000, Checksum: 0xdead, TTL: 1, Src: client4, Dst: server4}
	b, err = lie.Emit(nil, nil, EmitOptions{KeepChecksum: true})
	if err != nil || len(b) != 20 || b[0] != 0x5f || binary.BigEndian.Uint16(b[2:]) != 1000 || binary.BigEndian.Uint16(b[10:]) != 0xdead {
		t.Errorf("lying header % x, %v", b, err)
	}
	for _, bad := range []IPv4{
		{Src: netip.MustParseAddr("::1"), Dst: server4},
		{Src: client4, Dst: server4, Options: make([]byte, 41)},
		{Src: client4, Dst: server4, DSCP: 64},
		{Src: client4, Dst: server4, FragmentOffset: 0x2000},
	} {
		if _, err := bad.Emit(nil, nil, EmitOptions{}); err == nil {
			t.Errorf("no error for %+v", bad)
		}
	}
	if _, err := (&IPv4{Src: client4, Dst: server4}).Emit(nil, make([]byte, 65516), EmitOptions{}); err == nil {
		t.Errorf("no error for a 65536-byte packet")
	}
}

func TestIPv6EmitAndView(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	ip := IPv6{TrafficClass: 0xab, FlowLabel: 0xfffff, NextHeader: 59, HopLimit: 3, Src: src, Dst: dst}
	b, err := ip.Emit(nil, []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	got, payload, err := ParseIPv6(append(b, 0xee)) // a trailing byte outside the payload
	if err != nil || string(payload) != "abc" {
		t.Fatalf("ParseIPv6: %v %q", err, payload)
	}
	ip.PayloadLength = 3
	if !reflect.DeepEqual(got, ip) {
		t.Errorf("parsed %+v, want %+v", got, ip)
	}
	for _, bad := range []IPv6{
		{Src: client4, Dst: dst},
		{Src: src, Dst: netip.MustParseAddr("10.0.0.1")},
		{Src: src, Dst: dst, Ext: []IPv6Ext{{Kind: IPv6Fragment, Data: make([]byte, 7)}}},
		{Src: src, Dst: dst, Ext: []IPv6Ext{{Kind: IPv6Routing, Data: make([]byte, 16)}}}, // length byte says 8
		{Src: src, Dst: dst, Ext: []IPv6Ext{{Kind: 51, Data: make([]byte, 8)}}},
		{Src: src, Dst: dst, FlowLabel: 1 << 20},
	} {
		if _, err := bad.Emit(nil, nil); err == nil {
			t.Errorf("no error for %+v", bad)
		}
	}
	if _, err := NewIPv6View(append([]byte{0x45}, b[1:]...)); err == nil || err.Error() != "ipv6: version 4, want 6" {
		t.Errorf("version check: %v", err)
	}
}

func TestBuilderErrors(t *testing.T) {
	tooMany := &TCP{Options: make([]Option, 41)} // 41 NOPs
	for i := range tooMany.Options {
		tooMany.Options[i].Kind = OptNOP
	}
	if _, err := BuildIPv4TCP(IPv4{Src: client4, Dst: server4}, tooMany); err == nil {
		t.Errorf("41 option bytes: no error")
	}
	if _, err := BuildIPv4TCP(IPv4{Src: netip.MustParseAddr("::1"), Dst: server4}, &TCP{}); err == nil {
		t.Errorf("IPv6 source in IPv4: no error")
	}
	if _, err := BuildIPv6TCP(IPv6{Src: client4, Dst: server4}, &TCP{}); err == nil {
		t.Errorf("IPv4 addresses in IPv6: no error")
	}
	if _, err := (&TCP{Flags: 0x1000}).Emit(nil, client4, server4, EmitOptions{}); err == nil {
		t.Errorf("flag bit 12: no error")
	}
	if _, err := (&TCP{DataOffset: 16}).Emit(nil, client4, server4, EmitOptions{}); err == nil {
		t.Errorf("data offset 16: no error")
	}
	if _, err := (&TCP{}).Emit(nil, client4, netip.MustParseAddr("::1"), EmitOptions{}); err == nil {
		t.Errorf("mixed families for the checksum: no error")
	}
	// Protocol defaults to TCP; the buffer passed in is appended to.
	b, err := AppendIPv4TCP([]byte("head"), &IPv4{Src: client4, Dst: server4}, &TCP{}, BuildOptions{})
	if err != nil || string(b[:4]) != "head" || b[4+9] != ProtocolTCP || len(b) != 44 {
		t.Errorf("AppendIPv4TCP: % x %v", b, err)
	}
}

func bytesEq(a, b []byte) bool { return string(a) == string(b) }
