package craft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// IP protocol numbers used by this package (IANA "Assigned Internet
// Protocol Numbers").
const (
	ProtocolTCP uint8 = 6
	ProtocolUDP uint8 = 17
)

// IPv4 header sizes (RFC 791 §3.1).
const (
	IPv4MinHeaderLen = 20
	IPv4MaxHeaderLen = 60
)

// DefaultTTL is the TTL Linux uses by default (net.ipv4.ip_default_ttl).
const DefaultTTL = 64

// IPv4View is a checked view of an IPv4 packet in a byte slice: the header
// fields are read straight from the bytes, nothing is copied. A view made by
// NewIPv4View has been checked so that no accessor can panic; the zero
// IPv4View is not valid.
type IPv4View struct {
	b []byte // the packet, sliced to its total length
}

// NewIPv4View checks that b starts with a complete IPv4 packet and returns a
// view of it. It checks the version (4), that the header length (IHL) is at
// least 5 words and fits in b, and that the total length covers the header
// and fits in b (RFC 791 §3.1). Bytes of b beyond the total length (such as
// Ethernet padding) are not part of the view. The header checksum is not
// checked here; see VerifyChecksum.
func NewIPv4View(b []byte) (IPv4View, error) {
	if len(b) < IPv4MinHeaderLen {
		return IPv4View{}, fmt.Errorf("ipv4: %d bytes, need at least %d for the header: %w", len(b), IPv4MinHeaderLen, ErrTruncated)
	}
	if v := b[0] >> 4; v != 4 {
		return IPv4View{}, fmt.Errorf("ipv4: version %d, want 4", v)
	}
	hl := int(b[0]&0x0f) * 4
	if hl < IPv4MinHeaderLen {
		return IPv4View{}, fmt.Errorf("ipv4: header length %d (IHL %d) is less than %d", hl, hl/4, IPv4MinHeaderLen)
	}
	if hl > len(b) {
		return IPv4View{}, fmt.Errorf("ipv4: header length %d exceeds the %d bytes given: %w", hl, len(b), ErrTruncated)
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < hl {
		return IPv4View{}, fmt.Errorf("ipv4: total length %d is less than the header length %d", total, hl)
	}
	if total > len(b) {
		return IPv4View{}, fmt.Errorf("ipv4: total length %d exceeds the %d bytes given: %w", total, len(b), ErrTruncated)
	}
	return IPv4View{b: b[:total]}, nil
}

// Bytes returns the packet: header and payload, up to the total length.
func (v IPv4View) Bytes() []byte { return v.b }

// Version returns the version field (always 4 in a checked view).
func (v IPv4View) Version() uint8 { return v.b[0] >> 4 }

// IHL returns the header length in 32-bit words.
func (v IPv4View) IHL() uint8 { return v.b[0] & 0x0f }

// HeaderLen returns the header length in bytes.
func (v IPv4View) HeaderLen() int { return int(v.b[0]&0x0f) * 4 }

// DSCP returns the differentiated services code point (RFC 2474).
func (v IPv4View) DSCP() uint8 { return v.b[1] >> 2 }

// ECN returns the ECN field (RFC 3168 §5).
func (v IPv4View) ECN() uint8 { return v.b[1] & 0x03 }

// TotalLength returns the total length field: header plus payload.
func (v IPv4View) TotalLength() uint16 { return binary.BigEndian.Uint16(v.b[2:4]) }

// ID returns the identification field.
func (v IPv4View) ID() uint16 { return binary.BigEndian.Uint16(v.b[4:6]) }

// ReservedFlag returns the reserved (must be zero, "evil") flag bit.
func (v IPv4View) ReservedFlag() bool { return v.b[6]&0x80 != 0 }

// DontFragment returns the DF flag.
func (v IPv4View) DontFragment() bool { return v.b[6]&0x40 != 0 }

// MoreFragments returns the MF flag.
func (v IPv4View) MoreFragments() bool { return v.b[6]&0x20 != 0 }

// FragmentOffset returns the fragment offset in 8-byte units.
func (v IPv4View) FragmentOffset() uint16 { return binary.BigEndian.Uint16(v.b[6:8]) & 0x1fff }

// TTL returns the time to live.
func (v IPv4View) TTL() uint8 { return v.b[8] }

// Protocol returns the protocol of the payload (6 for TCP).
func (v IPv4View) Protocol() uint8 { return v.b[9] }

// Checksum returns the header checksum field.
func (v IPv4View) Checksum() uint16 { return binary.BigEndian.Uint16(v.b[10:12]) }

// Src returns the source address.
func (v IPv4View) Src() netip.Addr { return netip.AddrFrom4([4]byte(v.b[12:16])) }

// Dst returns the destination address.
func (v IPv4View) Dst() netip.Addr { return netip.AddrFrom4([4]byte(v.b[16:20])) }

// Options returns the raw option bytes between the fixed header and the
// payload (empty when IHL is 5).
func (v IPv4View) Options() []byte { return v.b[IPv4MinHeaderLen:v.HeaderLen()] }

// Header returns the header bytes, options included.
func (v IPv4View) Header() []byte { return v.b[:v.HeaderLen()] }

// Payload returns the bytes after the header up to the total length.
func (v IPv4View) Payload() []byte { return v.b[v.HeaderLen():] }

// IsFragment reports whether the packet is a fragment (MF set or a non-zero
// fragment offset), i.e. carries only part of its upper-layer payload.
func (v IPv4View) IsFragment() bool { return v.MoreFragments() || v.FragmentOffset() != 0 }

// ComputeChecksum returns the header checksum the header should carry.
func (v IPv4View) ComputeChecksum() uint16 {
	h := v.Header()
	sum := ChecksumAdd(0, h)
	// Subtract the stored checksum (add its complement), as if it were 0.
	sum = ChecksumAdd16(sum, ^v.Checksum())
	return ChecksumFinish(sum)
}

// VerifyChecksum reports whether the header checksum is correct and returns
// the value it should have (RFC 791 §3.1).
func (v IPv4View) VerifyChecksum() (ok bool, want uint16) {
	want = v.ComputeChecksum()
	return checksumMatches(v.Checksum(), want), want
}

// IPv4 is an IPv4 header as plain fields (RFC 791 §3.1). Parse fills every
// field from the wire; Emit writes them back. Fields that Emit can compute
// (Version, IHL, TotalLength, Checksum) are computed when zero or, for the
// checksum, unless the caller asks to keep it, so that a tester can also
// craft a header that lies.
type IPv4 struct {
	// Version is written as given; zero means 4.
	Version uint8
	// IHL is the header length in 32-bit words; zero means computed from
	// Options. A non-zero value is written as given.
	IHL          uint8
	DSCP         uint8 // 6 bits
	ECN          uint8 // 2 bits
	TotalLength  uint16
	ID           uint16
	ReservedFlag bool // the reserved flag bit (must be zero on the wire)
	DontFragment bool
	// MoreFragments is the MF flag.
	MoreFragments bool
	// FragmentOffset is in 8-byte units (13 bits).
	FragmentOffset uint16
	TTL            uint8
	Protocol       uint8
	Checksum       uint16
	Src, Dst       netip.Addr
	// Options are the raw option bytes, padding included. Emit pads them
	// with zero bytes (End of Option List) to a multiple of 4.
	Options []byte
}

// ParseIPv4 checks b with NewIPv4View and returns the header as an IPv4
// value and the payload (a sub-slice of b, up to the total length). Options
// is a sub-slice of b too.
func ParseIPv4(b []byte) (IPv4, []byte, error) {
	v, err := NewIPv4View(b)
	if err != nil {
		return IPv4{}, nil, err
	}
	var ip IPv4
	ip.FromView(v)
	return ip, v.Payload(), nil
}

// FromView sets every field of ip from the view v.
func (ip *IPv4) FromView(v IPv4View) {
	*ip = IPv4{
		Version:        v.Version(),
		IHL:            v.IHL(),
		DSCP:           v.DSCP(),
		ECN:            v.ECN(),
		TotalLength:    v.TotalLength(),
		ID:             v.ID(),
		ReservedFlag:   v.ReservedFlag(),
		DontFragment:   v.DontFragment(),
		MoreFragments:  v.MoreFragments(),
		FragmentOffset: v.FragmentOffset(),
		TTL:            v.TTL(),
		Protocol:       v.Protocol(),
		Checksum:       v.Checksum(),
		Src:            v.Src(),
		Dst:            v.Dst(),
		Options:        v.Options(),
	}
}

// HeaderLen returns the number of bytes Emit writes for the header: 20 plus
// the options padded to a multiple of 4. It does not depend on IHL, which
// may lie.
func (ip *IPv4) HeaderLen() int { return IPv4MinHeaderLen + (len(ip.Options)+3)&^3 }

// EmitOptions controls what Emit computes and what it writes as given.
type EmitOptions struct {
	// KeepChecksum writes the Checksum field as given instead of computing
	// it, so a tester can send a bad checksum and a round trip is exact.
	KeepChecksum bool
}

func (ip *IPv4) check() error {
	if !ip.Src.Is4() || !ip.Dst.Is4() {
		return fmt.Errorf("ipv4: source %v and destination %v must be IPv4 addresses", ip.Src, ip.Dst)
	}
	if ip.HeaderLen() > IPv4MaxHeaderLen {
		return fmt.Errorf("ipv4: %d bytes of options exceed the 40 a header can hold", len(ip.Options))
	}
	if ip.Version > 15 || ip.IHL > 15 || ip.DSCP > 63 || ip.ECN > 3 || ip.FragmentOffset > 0x1fff {
		return fmt.Errorf("ipv4: a field is too large for its bits (version %d, IHL %d, DSCP %d, ECN %d, fragment offset %d)",
			ip.Version, ip.IHL, ip.DSCP, ip.ECN, ip.FragmentOffset)
	}
	return nil
}

// AppendHeader appends the header to dst for a packet whose payload is
// payloadLen bytes long and returns the extended slice. It computes IHL and
// TotalLength when they are zero and the checksum unless opts.KeepChecksum.
// It does not allocate when dst has room for HeaderLen more bytes.
func (ip *IPv4) AppendHeader(dst []byte, payloadLen int, opts EmitOptions) ([]byte, error) {
	if err := ip.check(); err != nil {
		return dst, err
	}
	hl := ip.HeaderLen()
	total := int(ip.TotalLength)
	if total == 0 {
		total = hl + payloadLen
		if total > 0xffff {
			return dst, fmt.Errorf("ipv4: total length %d exceeds 65535", total)
		}
	}
	start := len(dst)
	dst = grow(dst, hl)
	h := dst[start:]
	version := ip.Version
	if version == 0 {
		version = 4
	}
	ihl := ip.IHL
	if ihl == 0 {
		ihl = uint8(hl / 4)
	}
	h[0] = version<<4 | ihl
	h[1] = ip.DSCP<<2 | ip.ECN
	binary.BigEndian.PutUint16(h[2:], uint16(total))
	binary.BigEndian.PutUint16(h[4:], ip.ID)
	frag := ip.FragmentOffset
	if ip.ReservedFlag {
		frag |= 0x8000
	}
	if ip.DontFragment {
		frag |= 0x4000
	}
	if ip.MoreFragments {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8] = ip.TTL
	h[9] = ip.Protocol
	h[10], h[11] = 0, 0
	src, dstAddr := ip.Src.As4(), ip.Dst.As4()
	copy(h[12:16], src[:])
	copy(h[16:20], dstAddr[:])
	n := copy(h[20:], ip.Options)
	clear(h[20+n:])
	cks := ip.Checksum
	if !opts.KeepChecksum {
		cks = Checksum(h)
	}
	binary.BigEndian.PutUint16(h[10:], cks)
	return dst, nil
}

// Emit appends the header followed by payload to dst.
func (ip *IPv4) Emit(dst []byte, payload []byte, opts EmitOptions) ([]byte, error) {
	dst, err := ip.AppendHeader(dst, len(payload), opts)
	if err != nil {
		return dst, err
	}
	return append(dst, payload...), nil
}

// grow extends b by n bytes (contents unspecified) and returns it.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n+len(b)/2)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}
