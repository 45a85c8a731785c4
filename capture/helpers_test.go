package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/lab"
)

// helperEnv selects what the test binary does when a test re-executes it
// (see TestMain): the privilege test needs CheckPrivileges to run in a
// process whose capabilities were dropped before it started.
const helperEnv = "TCPCRAFT_CAPTURE_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "check-privileges":
		if err := CheckPrivileges(); err != nil {
			fmt.Println("error:", err)
		} else {
			fmt.Println("ok")
		}
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// TCP flag bits (RFC 9293 §3.1) for the hand-built test segments. The
// package under test has no TCP logic; these tests build and read just
// enough TCP to talk to a kernel listener.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// segment is a hand-built IPv4+TCP or IPv6+TCP segment (by the family of
// its addresses) for link tests.
type segment struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    uint8
	window   uint16
	options  []byte // already padded to a multiple of 4
	payload  []byte
	ipID     uint16
}

// bytes builds the segment with correct checksums (RFC 791 §3.1, RFC 8200
// §8.1, RFC 9293 §3.1); IPv4 with DF set and a non-zero IP ID, so the
// kernel sends it unchanged and a pcap of it shows good checksums; IPv6
// with hop limit 64 and TCP right after the fixed header.
func (s segment) bytes() []byte {
	tcpLen := 20 + len(s.options) + len(s.payload)
	var b, tcp []byte
	if s.src.Addr().Is6() {
		b = make([]byte, ip6HeaderLen+tcpLen)
		b[0] = 0x60
		binary.BigEndian.PutUint16(b[4:], uint16(tcpLen))
		b[6] = ipProtoTCP
		b[7] = 64
		src, dst := s.src.Addr().As16(), s.dst.Addr().As16()
		copy(b[8:], src[:])
		copy(b[24:], dst[:])
		tcp = b[ip6HeaderLen:]
	} else {
		b = make([]byte, 20+tcpLen)
		ip := b[:20]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(len(b)))
		id := s.ipID
		if id == 0 {
			id = 0x1234
		}
		binary.BigEndian.PutUint16(ip[4:], id)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = ipProtoTCP
		src, dst := s.src.Addr().As4(), s.dst.Addr().As4()
		copy(ip[12:], src[:])
		copy(ip[16:], dst[:])
		binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))
		tcp = b[20:]
	}
	binary.BigEndian.PutUint16(tcp[0:], s.src.Port())
	binary.BigEndian.PutUint16(tcp[2:], s.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = uint8((20+len(s.options))/4) << 4
	tcp[13] = s.flags
	w := s.window
	if w == 0 {
		w = 65535
	}
	binary.BigEndian.PutUint16(tcp[14:], w)
	copy(tcp[20:], s.options)
	copy(tcp[20+len(s.options):], s.payload)
	binary.BigEndian.PutUint16(tcp[16:], checksum(pseudoHeaderSum(s.src.Addr(), s.dst.Addr(), tcpLen), tcp))
	return b
}

// synOptions is MSS 1460, SACK permitted, window scale 7: a normal SYN
// (an option-less SYN makes Linux fall back to MSS 536).
var synOptions = []byte{2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7}

func paddedSYNOptions() []byte {
	o := append([]byte(nil), synOptions...)
	for len(o)%4 != 0 {
		o = append(o, 1) // NOP
	}
	return o
}

// pseudoHeaderSum is the sum of the TCP pseudo-header: RFC 9293 §3.1 for
// IPv4, RFC 8200 §8.1 for IPv6.
func pseudoHeaderSum(src, dst netip.Addr, tcpLen int) uint32 {
	var sum uint32
	for _, a := range []netip.Addr{src, dst} {
		b := a.AsSlice()
		for i := 0; i < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	sum += ipProtoTCP + uint32(tcpLen)
	return sum
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
// Computed over data that already holds a correct checksum it yields 0.
func checksum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// tcpChecksumOK verifies the TCP checksum of an IPv4 or IPv6 packet.
func tcpChecksumOK(pkt []byte) bool {
	if pkt[0]>>4 == 6 {
		if len(pkt) < ip6HeaderLen {
			return false
		}
		total := ip6HeaderLen + int(binary.BigEndian.Uint16(pkt[4:]))
		if total > len(pkt) {
			return false
		}
		src, dst := netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		return checksum(pseudoHeaderSum(src, dst, total-ip6HeaderLen), pkt[ip6HeaderLen:total]) == 0
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if total > len(pkt) || ihl > total {
		return false
	}
	src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
	return checksum(pseudoHeaderSum(src, dst, total-ihl), pkt[ihl:total]) == 0
}

// decoded is what link tests look at in a captured frame, decoded with
// gopacket/layers (an independent decoder).
type decoded struct {
	src, dst                   netip.AddrPort
	seq, ack                   uint32
	isSYN, isACK, isRST, isFIN bool
	payload                    []byte
}

func decode(t testing.TB, data []byte) decoded {
	t.Helper()
	first := layers.LayerTypeIPv4
	if len(data) > 0 && data[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(data, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("captured frame does not decode: %v\n%x", el.Error(), data)
	}
	var src, dst netip.Addr
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	} else if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	}
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !src.IsValid() || tcp == nil {
		t.Fatalf("captured frame is not IP/TCP: %x", data)
	}
	return decoded{
		src: netip.AddrPortFrom(src, uint16(tcp.SrcPort)),
		dst: netip.AddrPortFrom(dst, uint16(tcp.DstPort)),
		seq: tcp.Seq, ack: tcp.Ack,
		isSYN: tcp.SYN, isACK: tcp.ACK, isRST: tcp.RST, isFIN: tcp.FIN,
		payload: tcp.Payload,
	}
}

func TestHandBuiltSegmentDecodes(t *testing.T) {
	s := segment{
		src: netip.MustParseAddrPort("10.0.2.21:40000"), dst: netip.MustParseAddrPort("10.0.2.20:80"),
		seq: 1000, flags: tcpSYN, options: paddedSYNOptions(),
	}
	b := s.bytes()
	if !tcpChecksumOK(b) {
		t.Fatal("TCP checksum of the hand-built SYN does not verify")
	}
	if checksum(0, b[:20]) != 0 {
		t.Fatal("IP header checksum of the hand-built SYN does not verify")
	}
	d := decode(t, b)
	if d.src != s.src || d.dst != s.dst || d.seq != 1000 || !d.isSYN || d.isACK {
		t.Fatalf("decoded %+v from %+v", d, s)
	}
	b[30] ^= 0xff // a sequence number byte
	if tcpChecksumOK(b) {
		t.Fatal("corrupted segment still verifies")
	}

	s6 := segment{
		src: netip.MustParseAddrPort("[fd00:2::21]:40000"), dst: netip.MustParseAddrPort("[fd00:2::20]:80"),
		seq: 1000, flags: tcpSYN, options: paddedSYNOptions(),
	}
	b = s6.bytes()
	if !tcpChecksumOK(b) {
		t.Fatal("TCP checksum of the hand-built IPv6 SYN does not verify")
	}
	// gopacket computes the checksum itself: an independent check.
	p := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	ip6, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if tcp == nil || ip6 == nil {
		t.Fatalf("IPv6 SYN does not decode: %x", b)
	}
	want := tcp.Checksum
	if err := tcp.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload)); err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(buf.Bytes()[16:]); got != want {
		t.Fatalf("IPv6 TCP checksum %#04x, gopacket computes %#04x", want, got)
	}
	d = decode(t, b)
	if d.src != s6.src || d.dst != s6.dst || d.seq != 1000 || !d.isSYN {
		t.Fatalf("decoded %+v from %+v", d, s6)
	}
	b[ip6HeaderLen+5] ^= 0xff
	if tcpChecksumOK(b) {
		t.Fatal("corrupted IPv6 segment still verifies")
	}
}

// inNS runs fn on a thread inside namespace ns (lab.Do) and fails the test
// on error.
func inNS(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := lab.Do(ns, fn); err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// removeOnCleanup removes the guards when the test ends (a guard removes
// itself from the namespace it was installed in).
func removeOnCleanup(t testing.TB, guards ...*guard.Guard) {
	t.Helper()
	t.Cleanup(func() {
		for _, g := range guards {
			if err := g.Remove(context.Background()); err != nil {
				t.Errorf("removing guard: %v", err)
			}
		}
	})
}

// checkRootUntouched registers a cleanup that fails the test if the root
// namespace's firewall gained a guard of this process: every guard of a
// link test belongs in its lab.
func checkRootUntouched(t testing.TB) {
	t.Helper()
	list := func() string {
		out, err := exec.Command("nft", "list", "ruleset").Output()
		if err != nil {
			t.Fatalf("nft list ruleset in the root namespace: %v", err)
		}
		return string(out)
	}
	before := list()
	mine := fmt.Sprintf("%s%d-", guard.TablePrefix, os.Getpid())
	t.Cleanup(func() {
		for _, line := range strings.Split(list(), "\n") {
			if strings.Contains(line, mine) && !strings.Contains(before, line) {
				t.Errorf("a guard of this test process is in the root namespace: %s", line)
			}
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// The lab's IPv6 addresses (addIPv6).
var (
	client6 = netip.MustParseAddr("fd00:2::21")
	server6 = netip.MustParseAddr("fd00:2::20")
)

// addIPv6 checks that the lab's veth ends have fd00:2::21 (client) and
// fd00:2::20 (server) beside their IPv4 addresses, as every lab has.
func addIPv6(t testing.TB, l *lab.Lab) {
	t.Helper()
	if l.ClientIP6() != client6 || l.ServerIP6() != server6 {
		t.Fatalf("lab IPv6 addresses %v and %v, want %v and %v", l.ClientIP6(), l.ServerIP6(), client6, server6)
	}
}

// bothReads runs test with each of Capture's ways to read its frames: the
// ring (the zero Config) and the socket's queue (Config.Queue).
func bothReads(t *testing.T, test func(t *testing.T, read Config)) {
	t.Helper()
	t.Run("ring", func(t *testing.T) { test(t, Config{}) })
	t.Run("queue", func(t *testing.T) { test(t, Config{Queue: true}) })
}
