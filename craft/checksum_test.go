package craft

import (
	"encoding/binary"
	"math/rand"
	"net/netip"
	"testing"
)

// refChecksum is the textbook RFC 1071 algorithm: 16-bit words summed with
// end-around carry, an odd byte padded with zero.
func refChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func TestChecksumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for n := 0; n < 300; n++ {
		for rep := 0; rep < 20; rep++ {
			b := make([]byte, n)
			switch rep % 3 {
			case 0:
				rng.Read(b)
			case 1:
				for i := range b {
					b[i] = 0xff // maximal carries
				}
			}
			if got, want := Checksum(b), refChecksum(b); got != want {
				t.Fatalf("len %d: Checksum %#04x, reference %#04x", n, got, want)
			}
			// Summing in even-length pieces gives the same result.
			if n > 0 {
				cut := rng.Intn(n) &^ 1
				s := ChecksumAdd(ChecksumAdd(0, b[:cut]), b[cut:])
				if got := ChecksumFinish(s); got != refChecksum(b) {
					t.Fatalf("len %d split at %d: %#04x", n, cut, got)
				}
			}
		}
	}
}

// TestChecksumRFC1071Example uses the worked example of RFC 1071 §3:
// the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement sum), so the
// checksum is ^ddf2 = 220d.
func TestChecksumRFC1071Example(t *testing.T) {
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b); got != 0x220d {
		t.Errorf("Checksum = %#04x, want 0x220d", got)
	}
}

// TestChecksumIncremental: RFC 1624 updates equal a full recomputation.
func TestChecksumIncremental(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < 20000; i++ {
		b := make([]byte, 40)
		rng.Read(b)
		if rng.Intn(8) == 0 {
			for j := range b {
				b[j] = 0
			}
		}
		binary.BigEndian.PutUint16(b[16:], 0)
		cks := Checksum(b)
		old16 := binary.BigEndian.Uint16(b[2:])
		new16 := uint16(rng.Uint32())
		binary.BigEndian.PutUint16(b[2:], new16)
		if got, want := ChecksumUpdate16(cks, old16, new16), Checksum(b); !checksumMatches(got, want) {
			t.Fatalf("Update16: %#04x, recomputed %#04x", got, want)
		}
		cks = Checksum(b)
		old32 := binary.BigEndian.Uint32(b[4:])
		new32 := rng.Uint32()
		binary.BigEndian.PutUint32(b[4:], new32)
		if got, want := ChecksumUpdate32(cks, old32, new32), Checksum(b); !checksumMatches(got, want) {
			t.Fatalf("Update32: %#04x, recomputed %#04x", got, want)
		}
	}
}

// TestTCPChecksumPseudoHeader checks the pseudo-headers against the
// layouts of RFC 9293 §3.1 (IPv4) and RFC 8200 §8.1 (IPv6), built by hand.
func TestTCPChecksumPseudoHeader(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	seg := make([]byte, 33)
	rng.Read(seg)
	src4, dst4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	ph4 := append(append(src4.AsSlice(), dst4.AsSlice()...), 0, ProtocolTCP, 0, byte(len(seg)))
	want := refChecksum(append(append(ph4, seg[:16]...), append([]byte{0, 0}, seg[18:]...)...))
	if got := TCPChecksum(src4, dst4, seg); got != want {
		t.Errorf("IPv4: %#04x, want %#04x", got, want)
	}
	src6, dst6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2:3")
	ph6 := append(append(src6.AsSlice(), dst6.AsSlice()...), 0, 0, 0, byte(len(seg)), 0, 0, 0, ProtocolTCP)
	want = refChecksum(append(append(ph6, seg[:16]...), append([]byte{0, 0}, seg[18:]...)...))
	if got := TCPChecksum(src6, dst6, seg); got != want {
		t.Errorf("IPv6: %#04x, want %#04x", got, want)
	}
	// Verify: right after filling in, wrong after any change; 0xffff is
	// accepted where 0x0000 is computed.
	binary.BigEndian.PutUint16(seg[16:], TCPChecksum(src6, dst6, seg))
	if ok, _ := VerifyTCPChecksum(src6, dst6, seg); !ok {
		t.Errorf("filled-in checksum does not verify")
	}
	seg[30] ^= 1
	if ok, want := VerifyTCPChecksum(src6, dst6, seg); ok || want == binary.BigEndian.Uint16(seg[16:]) {
		t.Errorf("flipped bit still verifies")
	}
	if ok, _ := VerifyTCPChecksum(src4, dst4, seg[:10]); ok {
		t.Errorf("a 10-byte segment verifies")
	}
	if !checksumMatches(0xffff, 0) || checksumMatches(0, 0xffff) || checksumMatches(1, 2) {
		t.Errorf("checksumMatches")
	}
}
