package craft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// IPv6HeaderLen is the length of the fixed IPv6 header (RFC 8200 §3).
const IPv6HeaderLen = 40

// IPv6View is a checked view of an IPv6 packet: the fixed header and the
// payload that follows it. Extension headers are not walked: NextHeader is
// the first next-header value. A view made by NewIPv6View has been checked
// so that no accessor can panic; the zero IPv6View is not valid.
type IPv6View struct {
	b []byte // the packet, sliced to 40 + payload length
}

// NewIPv6View checks that b starts with a complete IPv6 packet (version 6, a
// 40-byte header and the payload length it announces) and returns a view.
// Bytes beyond the payload length are not part of the view. Jumbograms
// (payload length 0 with a Jumbo Payload option, RFC 2675) are not
// supported: their payload reads as empty.
func NewIPv6View(b []byte) (IPv6View, error) {
	if len(b) < IPv6HeaderLen {
		return IPv6View{}, fmt.Errorf("ipv6: %d bytes, need at least %d for the header: %w", len(b), IPv6HeaderLen, ErrTruncated)
	}
	if v := b[0] >> 4; v != 6 {
		return IPv6View{}, fmt.Errorf("ipv6: version %d, want 6", v)
	}
	total := IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6]))
	if total > len(b) {
		return IPv6View{}, fmt.Errorf("ipv6: payload length %d exceeds the %d bytes after the header: %w", total-IPv6HeaderLen, len(b)-IPv6HeaderLen, ErrTruncated)
	}
	return IPv6View{b: b[:total]}, nil
}

// Bytes returns the packet: header and payload.
func (v IPv6View) Bytes() []byte { return v.b }

// Version returns the version field (always 6 in a checked view).
func (v IPv6View) Version() uint8 { return v.b[0] >> 4 }

// TrafficClass returns the traffic class (DSCP and ECN, RFC 8200 §7).
func (v IPv6View) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(v.b[0:2]) >> 4) }

// FlowLabel returns the 20-bit flow label (RFC 6437).
func (v IPv6View) FlowLabel() uint32 { return binary.BigEndian.Uint32(v.b[0:4]) & 0x000fffff }

// PayloadLength returns the payload length field.
func (v IPv6View) PayloadLength() uint16 { return binary.BigEndian.Uint16(v.b[4:6]) }

// NextHeader returns the next header field (6 for TCP).
func (v IPv6View) NextHeader() uint8 { return v.b[6] }

// HopLimit returns the hop limit.
func (v IPv6View) HopLimit() uint8 { return v.b[7] }

// Src returns the source address.
func (v IPv6View) Src() netip.Addr { return netip.AddrFrom16([16]byte(v.b[8:24])) }

// Dst returns the destination address.
func (v IPv6View) Dst() netip.Addr { return netip.AddrFrom16([16]byte(v.b[24:40])) }

// Header returns the 40 header bytes.
func (v IPv6View) Header() []byte { return v.b[:IPv6HeaderLen] }

// Payload returns the payload (extension headers included, if any).
func (v IPv6View) Payload() []byte { return v.b[IPv6HeaderLen:] }

// IPv6 is the fixed IPv6 header as plain fields (RFC 8200 §3).
type IPv6 struct {
	TrafficClass uint8
	FlowLabel    uint32 // 20 bits
	// PayloadLength is written as given; zero means computed from the
	// payload.
	PayloadLength uint16
	NextHeader    uint8
	HopLimit      uint8
	Src, Dst      netip.Addr
}

// ParseIPv6 checks b with NewIPv6View and returns the header and the payload
// (a sub-slice of b).
func ParseIPv6(b []byte) (IPv6, []byte, error) {
	v, err := NewIPv6View(b)
	if err != nil {
		return IPv6{}, nil, err
	}
	var ip IPv6
	ip.FromView(v)
	return ip, v.Payload(), nil
}

// FromView sets every field of ip from the view v.
func (ip *IPv6) FromView(v IPv6View) {
	*ip = IPv6{
		TrafficClass:  v.TrafficClass(),
		FlowLabel:     v.FlowLabel(),
		PayloadLength: v.PayloadLength(),
		NextHeader:    v.NextHeader(),
		HopLimit:      v.HopLimit(),
		Src:           v.Src(),
		Dst:           v.Dst(),
	}
}

// AppendHeader appends the 40-byte header to dst for a payload of
// payloadLen bytes, computing PayloadLength when it is zero.
func (ip *IPv6) AppendHeader(dst []byte, payloadLen int) ([]byte, error) {
	if !ip.Src.Is6() || !ip.Dst.Is6() || ip.Src.Is4In6() || ip.Dst.Is4In6() {
		return dst, fmt.Errorf("ipv6: source %v and destination %v must be IPv6 addresses", ip.Src, ip.Dst)
	}
	if ip.FlowLabel > 0xfffff {
		return dst, fmt.Errorf("ipv6: flow label %#x does not fit in 20 bits", ip.FlowLabel)
	}
	plen := int(ip.PayloadLength)
	if plen == 0 {
		if payloadLen > 0xffff {
			return dst, fmt.Errorf("ipv6: payload length %d exceeds 65535", payloadLen)
		}
		plen = payloadLen
	}
	start := len(dst)
	dst = grow(dst, IPv6HeaderLen)
	h := dst[start:]
	binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(ip.TrafficClass)<<20|ip.FlowLabel)
	binary.BigEndian.PutUint16(h[4:], uint16(plen))
	h[6] = ip.NextHeader
	h[7] = ip.HopLimit
	src, d := ip.Src.As16(), ip.Dst.As16()
	copy(h[8:24], src[:])
	copy(h[24:40], d[:])
	return dst, nil
}

// Emit appends the header followed by payload to dst.
func (ip *IPv6) Emit(dst []byte, payload []byte) ([]byte, error) {
	dst, err := ip.AppendHeader(dst, len(payload))
	if err != nil {
		return dst, err
	}
	return append(dst, payload...), nil
}
