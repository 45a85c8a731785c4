package craft

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// The Internet checksum (RFC 1071) is the ones' complement of the ones'
// complement sum of the data taken as big-endian 16-bit words. The helpers
// below keep a partial sum as a uint32 so callers can add pieces (a
// pseudo-header, a header, a payload) without allocating and without copying
// them into one buffer, and fold it only at the end.

// ChecksumAdd adds the bytes of b to the partial sum and returns the new
// partial sum. Every b except the last one passed for a given checksum must
// have an even length, since words are formed from byte pairs; an odd final
// byte is padded with a zero on the right (RFC 1071 §4.1).
func ChecksumAdd(sum uint32, b []byte) uint32 {
	// Sum 64-bit big-endian words with end-around carry. 2^16 ≡ 1 modulo
	// 0xffff, so summing wider words and folding later gives the same ones'
	// complement result as summing 16-bit words (RFC 1071 §2(B)).
	acc := uint64(sum)
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), 0)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:]), carry)
		acc += carry // cannot overflow: acc <= 2^64-2 after a carry-out
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), 0)
		acc += carry
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b)), 0)
		acc += carry
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), 0)
		acc += carry
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, 0)
		acc += carry
	}
	return fold64(acc)
}

// fold64 reduces a 64-bit ones' complement sum to 16 bits (kept in a uint32).
func fold64(acc uint64) uint32 {
	acc = (acc >> 32) + (acc & 0xffffffff)
	acc = (acc >> 32) + (acc & 0xffffffff)
	s := uint32(acc)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return s
}

// ChecksumAdd16 adds one 16-bit word to the partial sum.
func ChecksumAdd16(sum uint32, w uint16) uint32 {
	s := sum + uint32(w)
	return (s >> 16) + (s & 0xffff)
}

// ChecksumFinish folds a partial sum to 16 bits and complements it, giving
// the value to store in a checksum field.
func ChecksumFinish(sum uint32) uint16 {
	for sum > 0xffff {
		sum = (sum >> 16) + (sum & 0xffff)
	}
	return ^uint16(sum)
}

// Checksum returns the Internet checksum of b.
func Checksum(b []byte) uint16 { return ChecksumFinish(ChecksumAdd(0, b)) }

// ChecksumUpdate16 returns the checksum after a 16-bit word covered by it
// changed from old to now, without summing the data again (RFC 1624 §3,
// eqn. 3: HC' = ~(~HC + ~m + m')).
func ChecksumUpdate16(cksum, old, now uint16) uint16 {
	s := uint32(^cksum) + uint32(^old) + uint32(now)
	return ChecksumFinish(s)
}

// ChecksumUpdate32 is ChecksumUpdate16 for a 32-bit field such as a
// sequence number or an IPv4 address.
func ChecksumUpdate32(cksum uint16, old, now uint32) uint16 {
	s := uint32(^cksum) +
		uint32(^uint16(old>>16)) + uint32(^uint16(old)) +
		(now >> 16) + (now & 0xffff)
	return ChecksumFinish(s)
}

// PseudoHeaderSum returns the partial checksum of the pseudo-header that
// TCP's checksum covers: for IPv4 source, destination, zero, protocol and
// TCP length (RFC 9293 §3.1); for IPv6 source, destination, upper-layer
// length and next header (RFC 8200 §8.1). src and dst must be the same
// family; an IPv4-mapped IPv6 address counts as IPv6.
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length uint32) uint32 {
	var sum uint32
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		sum = ChecksumAdd(0, a[:])
		sum = ChecksumAdd(sum, b[:])
	} else {
		a, b := src.As16(), dst.As16()
		sum = ChecksumAdd(0, a[:])
		sum = ChecksumAdd(sum, b[:])
	}
	sum = ChecksumAdd16(sum, uint16(length>>16))
	sum = ChecksumAdd16(sum, uint16(length))
	return ChecksumAdd16(sum, uint16(proto))
}

// TCPChecksum returns the checksum a TCP segment (header and payload) sent
// from src to dst must carry. The segment's own checksum field is ignored,
// so it can be called before or after the field is filled in.
func TCPChecksum(src, dst netip.Addr, segment []byte) uint16 {
	sum := PseudoHeaderSum(src, dst, ProtocolTCP, uint32(len(segment)))
	sum = ChecksumAdd(sum, segment)
	if len(segment) >= 18 {
		// Remove the stored checksum: adding its complement subtracts it
		// in ones' complement arithmetic.
		sum = ChecksumAdd16(sum, ^binary.BigEndian.Uint16(segment[16:18]))
	}
	return ChecksumFinish(sum)
}

// VerifyTCPChecksum reports whether the checksum stored in a TCP segment
// from src to dst is correct, and returns the value it should have.
func VerifyTCPChecksum(src, dst netip.Addr, segment []byte) (ok bool, want uint16) {
	want = TCPChecksum(src, dst, segment)
	if len(segment) < 18 {
		return false, want
	}
	return checksumMatches(binary.BigEndian.Uint16(segment[16:18]), want), want
}

// checksumMatches reports whether a stored checksum equals the computed one.
// A computed checksum is never 0xffff (the sum of non-zero data is never
// zero), but a sender may store 0xffff for 0x0000: both are zero in ones'
// complement arithmetic, and summing the data with the stored value yields
// 0xffff either way (RFC 1624 §3).
func checksumMatches(stored, want uint16) bool {
	return stored == want || (want == 0 && stored == 0xffff)
}
