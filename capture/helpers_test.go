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

// segment is a hand-built IPv4+TCP segment for link tests.
type segment struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    uint8
	window   uint16
	options  []byte // already padded to a multiple of 4
	payload  []byte
	ipID     uint16
}

// bytes builds the segment with correct IPv4 and TCP checksums (RFC 791
// §3.1, RFC 9293 §3.1), DF set and a non-zero IP ID, so the kernel sends it
// unchanged and a pcap of it shows good checksums.
func (s segment) bytes() []byte {
	tcpLen := 20 + len(s.options) + len(s.payload)
	b := make([]byte, 20+tcpLen)
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

	tcp := b[20:]
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
	binary.BigEndian.PutUint16(tcp[16:], checksum(pseudoHeaderSum(src, dst, tcpLen), tcp))
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

func pseudoHeaderSum(src, dst [4]byte, tcpLen int) uint32 {
	var sum uint32
	sum += uint32(binary.BigEndian.Uint16(src[0:])) + uint32(binary.BigEndian.Uint16(src[2:]))
	sum += uint32(binary.BigEndian.Uint16(dst[0:])) + uint32(binary.BigEndian.Uint16(dst[2:]))
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

// tcpChecksumOK verifies the TCP checksum of an IPv4 packet.
func tcpChecksumOK(pkt []byte) bool {
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if total > len(pkt) || ihl > total {
		return false
	}
	var src, dst [4]byte
	copy(src[:], pkt[12:16])
	copy(dst[:], pkt[16:20])
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
	p := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("captured frame does not decode: %v\n%x", el.Error(), data)
	}
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		t.Fatalf("captured frame is not IPv4/TCP: %x", data)
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	dst, _ := netip.AddrFromSlice(ip.DstIP.To4())
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
