package craft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// IPv6HeaderLen is the length of the fixed IPv6 header (RFC 8200 §3).
const IPv6HeaderLen = 40

// IPv6View is a checked view of an IPv6 packet: the fixed header and the
// payload that follows it. The view does not walk extension headers:
// NextHeader is the first next-header value (see WalkIPv6Ext). A view made
// by NewIPv6View has been checked so that no accessor can panic; the zero
// IPv6View is not valid.
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

// IPv6 is an IPv6 header as plain fields (RFC 8200 §3), with the extension
// headers that follow it.
//
// Addresses are 16-byte IPv6 addresses (netip.Addr.Is6). An IPv4-mapped
// address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) is one of them: the parser
// keeps it as it came (never Unmap()ed, so Src and Dst round-trip and the
// pseudo-header uses the 16 bytes on the wire), and the builder sends it
// as given, so that a tester can see and craft what the wire can carry.
// The family of a packet follows the type of its addresses, never their
// value: a 4-byte netip.Addr is refused here, and a mapped one by IPv4.
type IPv6 struct {
	TrafficClass uint8
	FlowLabel    uint32 // 20 bits
	// PayloadLength is written as given; zero means computed from the
	// extension headers and the payload.
	PayloadLength uint16
	// NextHeader is the first next-header value. On build it is the Kind
	// of Ext[0] when there are extension headers (the chain is what Ext
	// says); without, zero means the upper-layer protocol and another
	// value is written as given.
	NextHeader uint8
	HopLimit   uint8
	Src, Dst   netip.Addr
	// Ext are the extension headers between the fixed header and the
	// upper layer, in wire order. A parse fills it (reusing its storage);
	// the builder writes it.
	Ext []IPv6Ext
}

// IPv6 extension header kinds (the next-header values that announce them,
// RFC 8200 §4) and upper-layer protocols met in IPv6.
const (
	IPv6HopByHop   uint8 = 0  // RFC 8200 §4.3
	IPv6Routing    uint8 = 43 // RFC 8200 §4.4
	IPv6Fragment   uint8 = 44 // RFC 8200 §4.5
	IPv6NoNext     uint8 = 59 // RFC 8200 §4.7
	IPv6DestOpts   uint8 = 60 // RFC 8200 §4.6
	ProtocolICMP   uint8 = 1
	ProtocolICMPv6 uint8 = 58
)

// maxIPv6Ext bounds the extension headers walked in one packet: RFC 8200
// §4.1 recommends at most one of each (two destination options), so a
// longer chain is an attack or junk, not a packet to decode.
const maxIPv6Ext = 16

// IPv6Ext is one IPv6 extension header.
type IPv6Ext struct {
	// Kind is the next-header value that announces the header:
	// IPv6HopByHop, IPv6Routing, IPv6Fragment or IPv6DestOpts.
	Kind uint8
	// Data is the whole header as on the wire, its first byte (the next
	// header) included: 8 bytes for a fragment header, (Data[1]+1)*8 for
	// the others. The builder writes it as given except the first byte,
	// which it sets to the kind of what follows.
	Data []byte
}

// IPv6FragmentHeader returns a fragment header (RFC 8200 §4.5): offset in
// 8-byte units (13 bits), the M flag, and the identification.
func IPv6FragmentHeader(offset uint16, more bool, id uint32) IPv6Ext {
	b := make([]byte, 8)
	om := offset << 3
	if more {
		om |= 1
	}
	binary.BigEndian.PutUint16(b[2:], om)
	binary.BigEndian.PutUint32(b[4:], id)
	return IPv6Ext{Kind: IPv6Fragment, Data: b}
}

// IPv6OptionsHeader returns a hop-by-hop or destination options header
// (kind IPv6HopByHop or IPv6DestOpts) holding the given TLV-encoded
// options, padded with Pad1/PadN to a multiple of 8 bytes (RFC 8200 §4.2).
func IPv6OptionsHeader(kind uint8, options []byte) IPv6Ext {
	n := 2 + len(options)
	total := (n + 7) &^ 7
	b := make([]byte, 2, total)
	b[1] = byte(total/8 - 1)
	b = append(b, options...)
	switch pad := total - n; {
	case pad == 1:
		b = append(b, 0) // Pad1
	case pad > 1:
		b = append(b, 1, byte(pad-2)) // PadN
		b = append(b, make([]byte, pad-2)...)
	}
	return IPv6Ext{Kind: kind, Data: b}
}

// Fragment returns the fields of a fragment header: offset in 8-byte
// units, the M (more fragments) flag and the identification. ok is false
// when e is not a well-formed fragment header.
func (e IPv6Ext) Fragment() (offset uint16, more bool, id uint32, ok bool) {
	if e.Kind != IPv6Fragment || len(e.Data) != 8 {
		return 0, false, 0, false
	}
	om := binary.BigEndian.Uint16(e.Data[2:])
	return om >> 3, om&1 != 0, binary.BigEndian.Uint32(e.Data[4:]), true
}

// Name returns the header's name as tcpdump prints it: "HBH", "RT6",
// "frag", "DSTOPT", or "ext-N".
func (e IPv6Ext) Name() string {
	switch e.Kind {
	case IPv6HopByHop:
		return "HBH"
	case IPv6Routing:
		return "RT6"
	case IPv6Fragment:
		return "frag"
	case IPv6DestOpts:
		return "DSTOPT"
	}
	return fmt.Sprintf("ext-%d", e.Kind)
}

// check reports whether e can be written: a known kind and a length that
// matches its length byte.
func (e IPv6Ext) check() error {
	switch e.Kind {
	case IPv6Fragment:
		if len(e.Data) != 8 {
			return fmt.Errorf("ipv6: fragment header of %d bytes, want 8", len(e.Data))
		}
	case IPv6HopByHop, IPv6Routing, IPv6DestOpts:
		if len(e.Data) < 8 || len(e.Data)%8 != 0 || len(e.Data) > 2048 || int(e.Data[1]+1)*8 != len(e.Data) {
			return fmt.Errorf("ipv6: %s header of %d bytes: want a multiple of 8 bytes whose length byte says so", e.Name(), len(e.Data))
		}
	default:
		return fmt.Errorf("ipv6: extension header kind %d is not one this package writes (0, 43, 44, 60)", e.Kind)
	}
	return nil
}

// WalkIPv6Ext walks the extension headers of an IPv6 payload that starts
// with next header first (RFC 8200 §4): hop-by-hop options (first only),
// routing, fragment and destination options headers. It appends them to
// dst (reusing its storage) and returns them with the upper-layer protocol
// and its bytes. The walk stops after the fragment header of a fragment
// (not an atomic one): proto and upper are then what that header
// announces and the fragment's data. Any other next-header value ends the walk as the upper
// layer (ESP, AH, no next header, UDP, ...: the caller decides). A header
// cut short is an error wrapping ErrTruncated; a misplaced hop-by-hop
// header or more than 16 headers are errors too. It never panics.
func WalkIPv6Ext(first uint8, payload []byte, dst []IPv6Ext) (exts []IPv6Ext, proto uint8, upper []byte, err error) {
	exts, proto, b := dst[:0], first, payload
	for {
		var n int
		switch proto {
		case IPv6HopByHop, IPv6Routing, IPv6DestOpts:
			if proto == IPv6HopByHop && len(exts) > 0 {
				return exts, proto, b, fmt.Errorf("ipv6: hop-by-hop options header after another extension header (RFC 8200 §4.1: only right after the IPv6 header)")
			}
			if len(b) < 2 {
				return exts, proto, b, fmt.Errorf("ipv6: %s header cut short (%d bytes): %w", IPv6Ext{Kind: proto}.Name(), len(b), ErrTruncated)
			}
			n = (int(b[1]) + 1) * 8
		case IPv6Fragment:
			n = 8
		default:
			return exts, proto, b, nil
		}
		if len(b) < n {
			return exts, proto, b, fmt.Errorf("ipv6: %s header of %d bytes but %d left: %w", IPv6Ext{Kind: proto}.Name(), n, len(b), ErrTruncated)
		}
		if len(exts) == maxIPv6Ext {
			return exts, proto, b, fmt.Errorf("ipv6: more than %d extension headers", maxIPv6Ext)
		}
		e := IPv6Ext{Kind: proto, Data: b[:n]}
		exts = append(exts, e)
		proto, b = b[0], b[n:]
		if off, more, _, _ := e.Fragment(); off != 0 || more {
			// What follows the fragment header of a fragment is a piece
			// of the fragmentable part, not headers to walk (RFC 8200
			// §4.5); only an atomic fragment (RFC 6946) is whole.
			return exts, proto, b, nil
		}
	}
}

// FinalDst returns the destination the upper-layer checksum covers: the
// final destination named by a routing header that still has segments
// left (RFC 8200 §8.1), else Dst. It knows routing types 0 and 2 (the
// last address listed) and 4 (Segment Routing, RFC 8754 §4.3.1: segment
// list[0]); for other types it returns Dst.
func (ip *IPv6) FinalDst() netip.Addr {
	for _, e := range ip.Ext {
		if e.Kind != IPv6Routing || len(e.Data) < 8 || e.Data[3] == 0 {
			continue
		}
		addrs := e.Data[8:]
		switch e.Data[2] {
		case 0, 2:
			if n := len(addrs) / 16; n > 0 {
				return netip.AddrFrom16([16]byte(addrs[(n-1)*16 : n*16]))
			}
		case 4:
			if len(addrs) >= 16 {
				return netip.AddrFrom16([16]byte(addrs[:16]))
			}
		}
	}
	return ip.Dst
}

// ExtLen returns the number of bytes the extension headers take.
func (ip *IPv6) ExtLen() int {
	n := 0
	for _, e := range ip.Ext {
		n += len(e.Data)
	}
	return n
}

// fragment returns the fragment header's fields, if there is one.
func (ip *IPv6) fragment() (offset uint16, more bool, id uint32, ok bool) {
	for _, e := range ip.Ext {
		if offset, more, id, ok = e.Fragment(); ok {
			return
		}
	}
	return 0, false, 0, false
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

// FromView sets the fixed-header fields of ip from the view v; Ext is
// emptied (its storage kept), see WalkIPv6Ext.
func (ip *IPv6) FromView(v IPv6View) {
	*ip = IPv6{
		TrafficClass:  v.TrafficClass(),
		FlowLabel:     v.FlowLabel(),
		PayloadLength: v.PayloadLength(),
		NextHeader:    v.NextHeader(),
		HopLimit:      v.HopLimit(),
		Src:           v.Src(),
		Dst:           v.Dst(),
		Ext:           ip.Ext[:0],
	}
}

func (ip *IPv6) check() error {
	if !ip.Src.Is6() || !ip.Dst.Is6() {
		return fmt.Errorf("ipv6: source %v and destination %v must be IPv6 addresses (an IPv4 address goes as ::ffff:a.b.c.d only when given so)", ip.Src, ip.Dst)
	}
	if ip.FlowLabel > 0xfffff {
		return fmt.Errorf("ipv6: flow label %#x does not fit in 20 bits", ip.FlowLabel)
	}
	for i := range ip.Ext {
		if err := ip.Ext[i].check(); err != nil {
			return err
		}
	}
	return nil
}

// AppendHeader appends the 40-byte fixed header to dst for a payload of
// payloadLen bytes (extension headers included), computing PayloadLength
// when it is zero. It does not write ip.Ext; see AppendHeaders.
func (ip *IPv6) AppendHeader(dst []byte, payloadLen int) ([]byte, error) {
	if err := ip.check(); err != nil {
		return dst, err
	}
	next := ip.NextHeader
	if len(ip.Ext) > 0 {
		next = ip.Ext[0].Kind
	}
	return ip.appendFixed(dst, next, payloadLen)
}

func (ip *IPv6) appendFixed(dst []byte, next uint8, payloadLen int) ([]byte, error) {
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
	h[6] = next
	h[7] = ip.HopLimit
	src, d := ip.Src.As16(), ip.Dst.As16()
	copy(h[8:24], src[:])
	copy(h[24:40], d[:])
	return dst, nil
}

// AppendHeaders appends the fixed header and the extension headers (chained:
// each next-header byte names what follows, the last names proto) for an
// upper-layer packet of upperLen bytes. NextHeader is computed as its
// comment says.
func (ip *IPv6) AppendHeaders(dst []byte, proto uint8, upperLen int) ([]byte, error) {
	if err := ip.check(); err != nil {
		return dst, err
	}
	next := ip.NextHeader
	switch {
	case len(ip.Ext) > 0:
		next = ip.Ext[0].Kind
	case next == 0:
		next = proto
	}
	start := len(dst)
	dst, err := ip.appendFixed(dst, next, ip.ExtLen()+upperLen)
	if err != nil {
		return dst[:start], err
	}
	for i, e := range ip.Ext {
		at := len(dst)
		dst = append(dst, e.Data...)
		if i+1 < len(ip.Ext) {
			dst[at] = ip.Ext[i+1].Kind
		} else {
			dst[at] = proto
		}
	}
	return dst, nil
}

// Emit appends the fixed header followed by payload to dst (ip.Ext is not
// written; see AppendHeaders).
func (ip *IPv6) Emit(dst []byte, payload []byte) ([]byte, error) {
	dst, err := ip.AppendHeader(dst, len(payload))
	if err != nil {
		return dst, err
	}
	return append(dst, payload...), nil
}
