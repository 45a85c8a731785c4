package capture

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

func TestTCPDestination(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.0.2.21:4000"), netip.MustParseAddrPort("10.0.2.20:80")
	src6, dst6 := netip.MustParseAddrPort("[fd00:2::21]:4000"), netip.MustParseAddrPort("[fd00:2::20]:80")
	opts := segment{src: src, dst: dst, flags: tcpSYN | tcpACK}.bytes()
	opts[0] = 0x46 // an IPv4 option word: the TCP header moves by 4 bytes
	opts = append(opts[:20], append([]byte{1, 1, 1, 1}, opts[20:]...)...)
	udp6 := segment{src: src6, dst: dst6, flags: tcpACK}.bytes()
	udp6[ip6OffNext] = 17
	udp4 := segment{src: src, dst: dst, flags: tcpACK}.bytes()
	udp4[ipOffProtocol] = 17
	for _, c := range []struct {
		name  string
		pkt   []byte
		dst   netip.Addr
		flags byte
		ok    bool
	}{
		{"IPv4 SYN", segment{src: src, dst: dst, flags: tcpSYN}.bytes(), dst.Addr(), tcpSYN, true},
		{"IPv4 ACK", segment{src: src, dst: dst, flags: tcpACK}.bytes(), dst.Addr(), tcpACK, true},
		{"IPv4 with options", opts, dst.Addr(), tcpSYN | tcpACK, true},
		{"IPv6 SYN", segment{src: src6, dst: dst6, flags: tcpSYN}.bytes(), dst6.Addr(), tcpSYN, true},
		{"IPv6 FIN", segment{src: src6, dst: dst6, flags: tcpFIN | tcpACK}.bytes(), dst6.Addr(), tcpFIN | tcpACK, true},
		{"IPv4 UDP", udp4, netip.Addr{}, 0, false},
		{"IPv6 not TCP next", udp6, netip.Addr{}, 0, false},
		{"empty", nil, netip.Addr{}, 0, false},
		{"short IPv4", make([]byte, 20), netip.Addr{}, 0, false},
		{"short IPv6", append([]byte{0x60}, make([]byte, 50)...), netip.Addr{}, 0, false},
	} {
		d, f, ok := tcpDestination(c.pkt)
		if d != c.dst || f != c.flags || ok != c.ok {
			t.Errorf("%s: tcpDestination = %v, %#x, %v; want %v, %#x, %v", c.name, d, f, ok, c.dst, c.flags, c.ok)
		}
	}
}

// TestGSOLinkChoosesTheSocket: with an OUTPUT rule in the client namespace
// that drops the test flow, a packet through the raw socket is refused
// (EPERM, the OUTPUT hook) while one through the GSO socket goes straight
// to the device and arrives. So GSOLink.Send's choice is visible: SYNs and
// packets to others take the raw socket, the rest to the peer the GSO
// socket; a GSO socket that cannot send (no neighbour entry) is given up
// for the raw one.
func TestGSOLinkChoosesTheSocket(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "IPv4", true: "IPv6"}[ipv6], func(t *testing.T) {
			l := gsoLab(t)
			s := setupGSO(t, l, ipv6)
			var inj *Injector
			inNS(t, l.ClientNS, func() (err error) {
				inj, err = OpenInjector()
				return err
			})
			t.Cleanup(func() { inj.Close() })
			labtest.Run(t, l, l.ClientNS, "nft", "add table inet tctest ; add chain inet tctest out { type filter hook output priority filter ; } ; add rule inet tctest out tcp dport 8091 drop")

			link := NewGSOLink(NewLink(nil, inj), s.g, s.server.Addr())
			pkt := func(flags uint8, to netip.AddrPort) []byte {
				return segment{src: s.client, dst: to, seq: 100, ack: 200, flags: flags, payload: []byte("x")}.bytes()
			}
			ack := pkt(tcpACK|tcpPSH, s.server)
			if err := link.Send(ack); err != nil {
				t.Fatalf("an ACK to the peer: %v (should have gone through the GSO socket, past OUTPUT)", err)
			}
			expectFrame(t, s.capture, ack, "the ACK sent through the GSO socket")
			if err := link.Send(pkt(tcpSYN, s.server)); err == nil || !strings.Contains(err.Error(), "OUTPUT") {
				t.Fatalf("a SYN to the peer: %v, want the raw socket's EPERM from the OUTPUT rule", err)
			}
			other := netip.AddrPortFrom(netip.MustParseAddr("10.0.2.77"), 8091)
			if ipv6 {
				other = netip.AddrPortFrom(netip.MustParseAddr("fd00:2::77"), 8091)
			}
			if err := link.Send(pkt(tcpACK, other)); err == nil || !strings.Contains(err.Error(), "OUTPUT") {
				t.Fatalf("an ACK to another address: %v, want the raw socket's EPERM", err)
			}
			if err := link.SendGSO(ack, nil, 0); err != nil {
				t.Fatalf("SendGSO: %v", err)
			}
			expectFrame(t, s.capture, ack, "the packet sent by SendGSO")
			if link.failed.Load() {
				t.Fatal("the link gave up its GSO socket")
			}

			// A GSO socket towards a next hop with no neighbour entry.
			stranger := netip.MustParseAddr("10.0.2.99")
			if ipv6 {
				stranger = netip.MustParseAddr("fd00:2::99")
			}
			var g *GSOSender
			inNS(t, l.ClientNS, func() (err error) {
				g, err = OpenGSOSender(s.route.Index, stranger)
				return err
			})
			t.Cleanup(func() { g.Close() })
			broken := NewGSOLink(NewLink(nil, inj), g, s.server.Addr())
			if err := broken.Send(ack); err == nil || !strings.Contains(err.Error(), "OUTPUT") {
				t.Fatalf("through a GSO socket without a neighbour: %v, want the raw socket's EPERM after the fallback", err)
			}
			if !broken.failed.Load() {
				t.Fatal("the failed GSO socket was not given up")
			}
			expectNothing(t, s.capture, "after the refused sends")
		})
	}
}

// TestGSOSenderErrorsIPv6: an IPv6 sender refuses what is not one IPv6
// packet with TCP right after the fixed header and the payload length it
// claims, without sending anything.
func TestGSOSenderErrorsIPv6(t *testing.T) {
	l := gsoLab(t)
	s := setupGSO(t, l, true)
	pieces := cut(randomBytes(3*gsoMSS6, 3), 1001, 1427)
	good, _ := s.headers(t, 5000, 0x10, pieces, true)
	mutate := func(f func(h []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	v4 := segment{src: netip.MustParseAddrPort("10.0.2.21:4000"), dst: netip.MustParseAddrPort("10.0.2.20:8091"), flags: tcpACK}.bytes()
	for _, c := range []struct {
		name   string
		hdr    []byte
		pieces [][]byte
		want   string
	}{
		{"IPv4 packet", v4, nil, "not an IPv6 packet"},
		{"shorter than the IPv6 header", good[:39], pieces, "not an IPv6 packet"},
		{"extension header first", mutate(func(h []byte) []byte { h[ip6OffNext] = 0; return h }), pieces, "TCP must follow"},
		{"no TCP header", good[:ip6HeaderLen+10], pieces, "not a TCP packet"},
		{"TCP header beyond hdr", mutate(func(h []byte) []byte { h[ip6HeaderLen+12] = 15 << 4; return h }), pieces, "bad TCP header length"},
		{"a piece missing", good, pieces[:2], "payload length"},
	} {
		if err := s.g.Send(c.hdr, c.pieces, gsoMSS6); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Send = %v, want an error containing %q", c.name, err, c.want)
		}
	}
	expectNothing(t, s.capture, "after refused sends")
	if err := s.g.Send(good, pieces, gsoMSS6); err != nil {
		t.Fatalf("Send after the refused ones: %v", err)
	}
	readOne(t, s.capture, "the good super-segment")
}

// FuzzPacketParsing: the little the injector and GSOLink read of a packet
// (its destination, its TCP flags) must never panic on any bytes, and the
// two must agree on the destination of a TCP packet both accept.
func FuzzPacketParsing(f *testing.F) {
	f.Add(segment{src: netip.MustParseAddrPort("10.0.2.21:4000"), dst: netip.MustParseAddrPort("10.0.2.20:80"), flags: tcpSYN}.bytes())
	f.Add(segment{src: netip.MustParseAddrPort("[fd00:2::21]:4000"), dst: netip.MustParseAddrPort("[fd00:2::20]:80"), flags: tcpACK}.bytes())
	f.Fuzz(func(t *testing.T, pkt []byte) {
		_, dst, err := packetDestination(pkt)
		tdst, _, ok := tcpDestination(pkt)
		if err == nil && ok && dst != tdst {
			t.Fatalf("packetDestination says %v, tcpDestination %v", dst, tdst)
		}
	})
}
