package capture

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/tcpcraft/tcpcraft/craft"
)

// synth describes a synthetic IPv4 packet for filter tests. The zero value
// plus addresses and ports is a plain TCP segment with a 20-byte IP header.
type synth struct {
	version      uint8 // 0 means 4
	ihlWords     uint8 // 0 means 5; >5 adds NOP option bytes
	proto        uint8 // 0 means TCP
	fragOffset   uint16
	moreFrags    bool
	src, dst     string
	sport, dport uint16
	tcpBytes     int // bytes of transport header written; 0 means 20
}

func (s synth) bytes() []byte {
	version, ihl, proto := s.version, s.ihlWords, s.proto
	if version == 0 {
		version = 4
	}
	if ihl == 0 {
		ihl = 5
	}
	if proto == 0 {
		proto = ipProtoTCP
	}
	tcpLen := s.tcpBytes
	if tcpLen == 0 {
		tcpLen = 20
	}
	hdrLen := int(ihl) * 4
	if hdrLen < 20 {
		hdrLen = 20 // a bad IHL still needs room for the addresses
	}
	b := make([]byte, hdrLen+tcpLen)
	b[0] = version<<4 | ihl&0x0f
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	frag := s.fragOffset & ipFragOffsetMask
	if s.moreFrags {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	src, dst := netip.MustParseAddr(s.src).As4(), netip.MustParseAddr(s.dst).As4()
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	for i := 20; i < hdrLen; i++ {
		b[i] = 1 // IP option NOP (RFC 791)
	}
	tcp := b[hdrLen:]
	if len(tcp) >= 2 {
		binary.BigEndian.PutUint16(tcp[0:], s.sport)
	}
	if len(tcp) >= 4 {
		binary.BigEndian.PutUint16(tcp[2:], s.dport)
	}
	if len(tcp) >= 13 {
		tcp[12] = 5 << 4
	}
	return b
}

func mustVM(t *testing.T, flow Flow) *bpf.VM {
	t.Helper()
	prog, err := FilterProgram(flow)
	if err != nil {
		t.Fatalf("FilterProgram(%v): %v", flow, err)
	}
	// The kernel gets the assembled form: make sure it assembles.
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatalf("assembling filter for %v: %v", flow, err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	return vm
}

func accepted(t *testing.T, vm *bpf.VM, pkt []byte) bool {
	t.Helper()
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("vm.Run: %v", err)
	}
	// bpf.VM returns the program's snap length as is; the kernel then
	// keeps min(snap length, frame length). Anything shorter than the frame
	// would truncate segments.
	if n != 0 && n < len(pkt) {
		t.Fatalf("filter accepted %d of %d bytes; want all or nothing", n, len(pkt))
	}
	return n != 0
}

func TestFilterConnectedFlow(t *testing.T) {
	flow := Flow{
		Local:  netip.MustParseAddrPort("10.0.2.21:40000"),
		Remote: netip.MustParseAddrPort("10.0.2.20:80"),
	}
	vm := mustVM(t, flow)
	match := synth{src: "10.0.2.20", dst: "10.0.2.21", sport: 80, dport: 40000}

	cases := []struct {
		name string
		pkt  synth
		want bool
	}{
		{"exact match", match, true},
		{"wrong source address", with(match, func(s *synth) { s.src = "10.0.2.22" }), false},
		{"wrong destination address", with(match, func(s *synth) { s.dst = "10.0.2.22" }), false},
		{"wrong source port", with(match, func(s *synth) { s.sport = 81 }), false},
		{"wrong destination port", with(match, func(s *synth) { s.dport = 40001 }), false},
		{"reverse direction (our own segment)", synth{src: "10.0.2.21", dst: "10.0.2.20", sport: 40000, dport: 80}, false},
		{"ports swapped", with(match, func(s *synth) { s.sport, s.dport = 40000, 80 }), false},
		{"UDP with the same ports", with(match, func(s *synth) { s.proto = 17 }), false},
		{"IPv6 version nibble", with(match, func(s *synth) { s.version = 6 }), false},
		{"IHL 4 (malformed)", with(match, func(s *synth) { s.ihlWords = 4 }), false},
		{"IP options, IHL 6", with(match, func(s *synth) { s.ihlWords = 6 }), true},
		{"IP options, IHL 15", with(match, func(s *synth) { s.ihlWords = 15 }), true},
		{"IP options shift the ports: wrong port after options", with(match, func(s *synth) { s.ihlWords = 8; s.dport = 40001 }), false},
		{"first fragment (MF set, offset 0)", with(match, func(s *synth) { s.moreFrags = true }), true},
		{"middle fragment", with(match, func(s *synth) { s.fragOffset = 185; s.moreFrags = true }), false},
		{"last fragment", with(match, func(s *synth) { s.fragOffset = 185 }), false},
		{"fragment offset 1", with(match, func(s *synth) { s.fragOffset = 1 }), false},
		{"truncated before the destination port", with(match, func(s *synth) { s.tcpBytes = 3 }), false},
		{"ports only (4 bytes of TCP)", with(match, func(s *synth) { s.tcpBytes = 4 }), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := accepted(t, vm, c.pkt.bytes()); got != c.want {
				t.Errorf("accepted = %v, want %v for %+v", got, c.want, c.pkt)
			}
		})
	}
}

// A non-first fragment whose payload bytes happen to sit where the ports
// would be must still be refused: the check is on the offset, not on luck.
func TestFilterNonFirstFragmentWithLookalikePorts(t *testing.T) {
	flow := Flow{Local: netip.MustParseAddrPort("10.0.2.21:40000"), Remote: netip.MustParseAddrPort("10.0.2.20:80")}
	vm := mustVM(t, flow)
	pkt := synth{src: "10.0.2.20", dst: "10.0.2.21", sport: 80, dport: 40000, fragOffset: 8}.bytes()
	if accepted(t, vm, pkt) {
		t.Fatal("non-first fragment with matching bytes at the port offsets was accepted")
	}
	// The same bytes with offset 0 are admitted, so the refusal above is due
	// to the fragment offset alone.
	binary.BigEndian.PutUint16(pkt[6:], 0)
	if !accepted(t, vm, pkt) {
		t.Fatal("the same packet with fragment offset 0 was refused")
	}
}

func TestFilterListener(t *testing.T) {
	cases := []struct {
		name string
		flow Flow
		pkts map[string]synth
		want map[string]bool
	}{
		{
			name: "any remote, specific local",
			flow: Flow{Local: netip.MustParseAddrPort("10.0.2.20:8080")},
			pkts: map[string]synth{
				"from A":           {src: "10.0.2.21", dst: "10.0.2.20", sport: 5555, dport: 8080},
				"from B":           {src: "192.0.2.7", dst: "10.0.2.20", sport: 1, dport: 8080},
				"other local addr": {src: "10.0.2.21", dst: "127.0.0.1", sport: 5555, dport: 8080},
				"other port":       {src: "10.0.2.21", dst: "10.0.2.20", sport: 5555, dport: 8081},
			},
			want: map[string]bool{"from A": true, "from B": true, "other local addr": false, "other port": false},
		},
		{
			name: "any remote, any local address (0.0.0.0)",
			flow: Flow{Local: netip.MustParseAddrPort("0.0.0.0:8080"), Remote: netip.MustParseAddrPort("0.0.0.0:0")},
			pkts: map[string]synth{
				"veth address": {src: "10.0.2.21", dst: "10.0.2.20", sport: 5555, dport: 8080},
				"loopback":     {src: "127.0.0.1", dst: "127.0.0.1", sport: 5555, dport: 8080},
				"other port":   {src: "127.0.0.1", dst: "127.0.0.1", sport: 5555, dport: 8081},
				"udp":          {src: "127.0.0.1", dst: "127.0.0.1", sport: 5555, dport: 8080, proto: 17},
			},
			want: map[string]bool{"veth address": true, "loopback": true, "other port": false, "udp": false},
		},
		{
			name: "remote address fixed, remote port wildcard",
			flow: Flow{Local: netip.MustParseAddrPort("10.0.2.20:8080"), Remote: netip.AddrPortFrom(netip.MustParseAddr("10.0.2.21"), 0)},
			pkts: map[string]synth{
				"any port of that peer": {src: "10.0.2.21", dst: "10.0.2.20", sport: 33333, dport: 8080},
				"other peer":            {src: "10.0.2.22", dst: "10.0.2.20", sport: 33333, dport: 8080},
			},
			want: map[string]bool{"any port of that peer": true, "other peer": false},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vm := mustVM(t, c.flow)
			for name, p := range c.pkts {
				if got := accepted(t, vm, p.bytes()); got != c.want[name] {
					t.Errorf("%s: accepted = %v, want %v", name, got, c.want[name])
				}
			}
		})
	}
}

func TestFilterRejectsBadFlows(t *testing.T) {
	cases := []struct {
		name string
		flow Flow
		want string
	}{
		{"no local port", Flow{Local: netip.MustParseAddrPort("10.0.2.21:0")}, "local port is 0"},
		{"zero flow", Flow{}, "local port is 0"},
		{"IPv6 remote, IPv4 local", Flow{Local: netip.MustParseAddrPort("10.0.2.21:1"), Remote: netip.MustParseAddrPort("[::1]:80")}, "different families"},
		{"IPv4 remote, IPv6 local", Flow{Local: netip.MustParseAddrPort("[fd00:2::21]:1"), Remote: netip.MustParseAddrPort("10.0.2.20:80")}, "different families"},
		{"0.0.0.0 remote, :: local", Flow{Local: netip.MustParseAddrPort("[::]:1"), Remote: netip.MustParseAddrPort("0.0.0.0:0")}, "different families"},
		{"zone", Flow{Local: netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 1)}, "zone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := FilterProgram(c.flow)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("FilterProgram(%+v) error = %v, want one containing %q", c.flow, err, c.want)
			}
		})
	}
}

// An IPv4-mapped IPv6 address is the same IPv4 address (netip parses
// "::ffff:10.0.2.20" that way); the filter must treat it so.
func TestFilterAcceptsMappedAddresses(t *testing.T) {
	flow := Flow{
		Local:  netip.MustParseAddrPort("[::ffff:10.0.2.21]:40000"),
		Remote: netip.MustParseAddrPort("[::ffff:10.0.2.20]:80"),
	}
	vm := mustVM(t, flow)
	if !accepted(t, vm, synth{src: "10.0.2.20", dst: "10.0.2.21", sport: 80, dport: 40000}.bytes()) {
		t.Fatal("matching frame refused")
	}
	if accepted(t, vm, synth{src: "10.0.2.20", dst: "10.0.2.22", sport: 80, dport: 40000}.bytes()) {
		t.Fatal("frame for another local address accepted")
	}
}

// synth6 describes a synthetic IPv6 packet for filter tests: a TCP
// segment right after the fixed header unless next says otherwise (then
// the ports sit where a TCP header after the fixed header would have them,
// to show they are not read).
type synth6 struct {
	next         uint8 // 0 means TCP
	src, dst     string
	sport, dport uint16
	tcpBytes     int // bytes after the fixed header; 0 means 20
}

func (s synth6) bytes() []byte {
	next, n := s.next, s.tcpBytes
	if next == 0 {
		next = ipProtoTCP
	}
	if n == 0 {
		n = 20
	}
	b := make([]byte, ip6HeaderLen+n)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	b[6], b[7] = next, 64
	src, dst := netip.MustParseAddr(s.src).As16(), netip.MustParseAddr(s.dst).As16()
	copy(b[8:], src[:])
	copy(b[24:], dst[:])
	tcp := b[ip6HeaderLen:]
	if len(tcp) >= 2 {
		binary.BigEndian.PutUint16(tcp[0:], s.sport)
	}
	if len(tcp) >= 4 {
		binary.BigEndian.PutUint16(tcp[2:], s.dport)
	}
	return b
}

func TestFilterIPv6ConnectedFlow(t *testing.T) {
	flow := Flow{
		Local:  netip.MustParseAddrPort("[fd00:2::21]:40000"),
		Remote: netip.MustParseAddrPort("[fd00:2::20]:80"),
	}
	vm := mustVM(t, flow)
	match := synth6{src: "fd00:2::20", dst: "fd00:2::21", sport: 80, dport: 40000}
	with6 := func(change func(*synth6)) synth6 { s := match; change(&s); return s }
	// A hop-by-hop options header (next header 0) before TCP.
	hbh := with6(func(s *synth6) { s.tcpBytes = 28 }).bytes()
	hbh[ip6OffNext] = 0
	cases := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"exact match", match.bytes(), true},
		// A difference in each 32-bit word of each address.
		{"source differs in word 0", with6(func(s *synth6) { s.src = "fd01:2::20" }).bytes(), false},
		{"source differs in word 1", with6(func(s *synth6) { s.src = "fd00:2:0:1::20" }).bytes(), false},
		{"source differs in word 2", with6(func(s *synth6) { s.src = "fd00:2::1:0:0:20" }).bytes(), false},
		{"source differs in word 3", with6(func(s *synth6) { s.src = "fd00:2::21" }).bytes(), false},
		{"destination differs in word 0", with6(func(s *synth6) { s.dst = "fd01:2::21" }).bytes(), false},
		{"destination differs in word 1", with6(func(s *synth6) { s.dst = "fd00:2:0:1::21" }).bytes(), false},
		{"destination differs in word 2", with6(func(s *synth6) { s.dst = "fd00:2::1:0:0:21" }).bytes(), false},
		{"destination differs in word 3", with6(func(s *synth6) { s.dst = "fd00:2::22" }).bytes(), false},
		{"wrong source port", with6(func(s *synth6) { s.sport = 81 }).bytes(), false},
		{"wrong destination port", with6(func(s *synth6) { s.dport = 40001 }).bytes(), false},
		{"reverse direction (our own segment)", synth6{src: "fd00:2::21", dst: "fd00:2::20", sport: 40000, dport: 80}.bytes(), false},
		{"UDP with the same ports", with6(func(s *synth6) { s.next = 17 }).bytes(), false},
		{"hop-by-hop options header first", hbh, false},
		{"fragment header", with6(func(s *synth6) { s.next = 44 }).bytes(), false},
		{"destination options header", with6(func(s *synth6) { s.next = 60 }).bytes(), false},
		{"truncated before the destination port", with6(func(s *synth6) { s.tcpBytes = 3 }).bytes(), false},
		{"IPv4 packet with the same ports", synth{src: "10.0.2.20", dst: "10.0.2.21", sport: 80, dport: 40000}.bytes(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := accepted(t, vm, c.pkt); got != c.want {
				t.Errorf("accepted = %v, want %v for %x", got, c.want, c.pkt)
			}
		})
	}
}

func TestFilterFamilies(t *testing.T) {
	v4 := synth{src: "10.0.2.21", dst: "10.0.2.20", sport: 5555, dport: 8080}.bytes()
	v6 := synth6{src: "fd00:2::21", dst: "fd00:2::20", sport: 5555, dport: 8080}.bytes()
	v4other := synth{src: "10.0.2.21", dst: "10.0.2.20", sport: 5555, dport: 8081}.bytes()
	v6other := synth6{src: "fd00:2::21", dst: "fd00:2::20", sport: 5555, dport: 8081}.bytes()
	bad := append([]byte{0x50}, v4[1:]...) // version 5
	cases := []struct {
		name       string
		flow       Flow
		wantFamily int
		v4, v6     bool
	}{
		{"0.0.0.0: IPv4 only", Flow{Local: netip.MustParseAddrPort("0.0.0.0:8080")}, familyIPv4, true, false},
		{":: : IPv6 only", Flow{Local: netip.MustParseAddrPort("[::]:8080")}, familyIPv6, false, true},
		{"no address: both", Flow{Local: netip.AddrPortFrom(netip.Addr{}, 8080)}, familyBoth, true, true},
		{"IPv6 local address", Flow{Local: netip.MustParseAddrPort("[fd00:2::20]:8080")}, familyIPv6, false, true},
		{"IPv6 remote, no local address", Flow{Local: netip.AddrPortFrom(netip.Addr{}, 8080), Remote: netip.MustParseAddrPort("[fd00:2::21]:0")}, familyIPv6, false, true},
		{"mapped IPv4 local", Flow{Local: netip.MustParseAddrPort("[::ffff:10.0.2.20]:8080")}, familyIPv4, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fam, err := c.flow.families(); err != nil || fam != c.wantFamily {
				t.Fatalf("families() = %d, %v; want %d", fam, err, c.wantFamily)
			}
			vm := mustVM(t, c.flow)
			if got := accepted(t, vm, v4); got != c.v4 {
				t.Errorf("IPv4 segment accepted = %v, want %v", got, c.v4)
			}
			if got := accepted(t, vm, v6); got != c.v6 {
				t.Errorf("IPv6 segment accepted = %v, want %v", got, c.v6)
			}
			for _, p := range [][]byte{v4other, v6other, bad} {
				if accepted(t, vm, p) {
					t.Errorf("accepted %x", p)
				}
			}
		})
	}
}

func TestFlowString(t *testing.T) {
	f := Flow{Local: netip.MustParseAddrPort("0.0.0.0:8080")}
	if got, want := f.String(), "*:* -> *:8080"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	f = Flow{Local: netip.MustParseAddrPort("10.0.2.21:40000"), Remote: netip.MustParseAddrPort("10.0.2.20:80")}
	if got, want := f.String(), "10.0.2.20:80 -> 10.0.2.21:40000"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	f = Flow{Local: netip.MustParseAddrPort("[fd00:2::21]:40000"), Remote: netip.MustParseAddrPort("[fd00:2::20]:0")}
	if got, want := f.String(), "[fd00:2::20]:* -> [fd00:2::21]:40000"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func with(s synth, change func(*synth)) synth {
	change(&s)
	return s
}

// icmpFrame builds an ICMP (version 4) or ICMPv6 error from src to dst of
// the given type and code, quoting a TCP segment from local:40000 to
// remote:80.
func icmpFrame(t *testing.T, version, typ, code uint8, src, dst, local, remote string) []byte {
	t.Helper()
	seg := craft.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: craft.FlagACK, Window: 100, Payload: make([]byte, 100)}
	e := craft.ICMPError{IPVersion: version, Type: typ, Code: code}
	var err error
	if version == 4 {
		e.Quote.Bytes, err = craft.BuildIPv4TCP(craft.IPv4{TTL: 64, Protocol: craft.ProtocolTCP, Src: netip.MustParseAddr(local), Dst: netip.MustParseAddr(remote)}, &seg)
		e.IPv4 = craft.IPv4{TTL: 64, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}
	} else {
		e.Quote.Bytes, err = craft.BuildIPv6TCP(craft.IPv6{HopLimit: 64, Src: netip.MustParseAddr(local), Dst: netip.MustParseAddr(remote)}, &seg)
		e.IPv6 = craft.IPv6{HopLimit: 64, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}
	}
	if err != nil {
		t.Fatal(err)
	}
	if typ == craft.ICMPUnreachable && code == craft.ICMPFragNeeded && version == 4 || version == 6 && typ == craft.ICMPv6PacketTooBig {
		e.MTU = 1280
	}
	b, err := craft.AppendICMPError(nil, &e, craft.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Flow.PathMTU admits the ICMP errors of path MTU discovery addressed to
// the local address, from any router, and no other ICMP; without it no
// ICMP at all.
func TestFilterPathMTU(t *testing.T) {
	for _, tc := range []struct {
		local, remote, router, other string
		version, typ, code           uint8
		otherType                    uint8
	}{
		{"10.0.2.21", "10.9.2.20", "10.0.2.1", "10.0.2.99", 4, craft.ICMPUnreachable, craft.ICMPFragNeeded, craft.ICMPTimeExceeded},
		{"fd00:2::21", "fd00:9:2::20", "fd00:2::1", "fd00:2::99", 6, craft.ICMPv6PacketTooBig, 0, craft.ICMPv6Unreachable},
	} {
		flow := Flow{Local: netip.AddrPortFrom(netip.MustParseAddr(tc.local), 40000), Remote: netip.AddrPortFrom(netip.MustParseAddr(tc.remote), 80)}
		ptb := icmpFrame(t, tc.version, tc.typ, tc.code, tc.router, tc.local, tc.local, tc.remote)
		if accepted(t, mustVM(t, flow), ptb) {
			t.Errorf("IPv%d: without PathMTU the filter admits an ICMP error", tc.version)
		}
		flow.PathMTU = true
		vm := mustVM(t, flow)
		if !accepted(t, vm, ptb) {
			t.Errorf("IPv%d: packet too big to us refused", tc.version)
		}
		if accepted(t, vm, icmpFrame(t, tc.version, tc.typ, tc.code, tc.router, tc.other, tc.other, tc.remote)) {
			t.Errorf("IPv%d: packet too big to another address admitted", tc.version)
		}
		otherCode := tc.code
		if tc.version == 4 {
			otherCode = 1 // host unreachable
			if accepted(t, vm, icmpFrame(t, 4, craft.ICMPUnreachable, otherCode, tc.router, tc.local, tc.local, tc.remote)) {
				t.Errorf("IPv4: host unreachable admitted")
			}
		}
		if accepted(t, vm, icmpFrame(t, tc.version, tc.otherType, 0, tc.router, tc.local, tc.local, tc.remote)) {
			t.Errorf("IPv%d: ICMP type %d admitted", tc.version, tc.otherType)
		}
		// The flow's own segments still pass, others' still do not.
		if tc.version == 4 {
			if !accepted(t, vm, synth{src: tc.remote, dst: tc.local, sport: 80, dport: 40000}.bytes()) || accepted(t, vm, synth{src: tc.remote, dst: tc.local, sport: 81, dport: 40000}.bytes()) {
				t.Error("IPv4: TCP filtering changed with PathMTU")
			}
		} else if !accepted(t, vm, synth6{src: tc.remote, dst: tc.local, sport: 80, dport: 40000}.bytes()) || accepted(t, vm, synth6{src: tc.remote, dst: tc.local, sport: 81, dport: 40000}.bytes()) {
			t.Error("IPv6: TCP filtering changed with PathMTU")
		}
	}
	// A listener on every address of both families admits both.
	vm := mustVM(t, Flow{Local: netip.AddrPortFrom(netip.Addr{}, 40000), PathMTU: true})
	if !accepted(t, vm, icmpFrame(t, 4, craft.ICMPUnreachable, craft.ICMPFragNeeded, "10.0.2.1", "10.0.2.21", "10.0.2.21", "10.9.2.20")) ||
		!accepted(t, vm, icmpFrame(t, 6, craft.ICMPv6PacketTooBig, 0, "fd00:2::1", "fd00:2::21", "fd00:2::21", "fd00:9:2::20")) {
		t.Error("a listener on both families refuses packet too big")
	}
}
