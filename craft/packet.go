package craft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// LinkType says what framing surrounds the IP packet. The values are the
// pcap LINKTYPE_ numbers (https://www.tcpdump.org/linktypes.html), so a
// pcap file's link type can be passed straight through.
type LinkType uint32

const (
	// LinkEthernet is an Ethernet II frame, possibly with 802.1Q/802.1ad
	// VLAN tags.
	LinkEthernet LinkType = 1
	// LinkRaw is a bare IPv4 or IPv6 packet; the version nibble decides.
	LinkRaw LinkType = 101
	// LinkLinuxSLL is the Linux "cooked" capture header, version 1.
	LinkLinuxSLL LinkType = 113
	// LinkIPv4 is a bare IPv4 packet.
	LinkIPv4 LinkType = 228
	// LinkIPv6 is a bare IPv6 packet.
	LinkIPv6 LinkType = 229
	// LinkLinuxSLL2 is the Linux "cooked" capture header, version 2.
	LinkLinuxSLL2 LinkType = 276
)

// String returns a short name of the link type.
func (l LinkType) String() string {
	switch l {
	case LinkEthernet:
		return "ethernet"
	case LinkRaw:
		return "raw"
	case LinkLinuxSLL:
		return "linux-sll"
	case LinkIPv4:
		return "ipv4"
	case LinkIPv6:
		return "ipv6"
	case LinkLinuxSLL2:
		return "linux-sll2"
	}
	return fmt.Sprintf("linktype-%d", uint32(l))
}

// EtherTypes this package understands (IEEE 802 numbers).
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeIPv6 uint16 = 0x86dd
	EtherTypeVLAN uint16 = 0x8100 // 802.1Q tag
	EtherTypeQinQ uint16 = 0x88a8 // 802.1ad service tag
)

// Header sizes of the link layers.
const (
	EthernetHeaderLen = 14
	vlanTagLen        = 4
	sllHeaderLen      = 16
	sll2HeaderLen     = 20
	maxVLANTags       = 8 // a sanity limit on stacked tags
)

// ChecksumState says what is known about a checksum.
type ChecksumState uint8

const (
	// ChecksumUnverified: not checked, e.g. a frame captured before the
	// NIC filled in an offloaded checksum (TP_STATUS_CSUMNOTREADY), or a
	// fragment whose checksum covers bytes not present.
	ChecksumUnverified ChecksumState = iota
	// ChecksumGood: checked and correct.
	ChecksumGood
	// ChecksumBad: checked and wrong; ChecksumStatus.Expected holds the
	// right value.
	ChecksumBad
	// ChecksumNone: the header has no checksum (IPv6).
	ChecksumNone
	// ChecksumPartial: the TCP checksum field holds only the folded sum
	// of the pseudo-header, what a sender using checksum offload leaves
	// for the network card to finish (Linux's CHECKSUM_PARTIAL); a
	// capture taken before the card, or on a veth or loopback where no
	// card does it, shows it so. Reported only with
	// PacketOptions.RecognizePartial.
	ChecksumPartial
)

// String returns "unverified", "good", "bad", "none" or "partial".
func (s ChecksumState) String() string {
	switch s {
	case ChecksumUnverified:
		return "unverified"
	case ChecksumGood:
		return "good"
	case ChecksumBad:
		return "bad"
	case ChecksumNone:
		return "none"
	case ChecksumPartial:
		return "partial"
	}
	return fmt.Sprintf("ChecksumState(%d)", uint8(s))
}

// ChecksumStatus is the result of checking one layer's checksum.
type ChecksumStatus struct {
	State ChecksumState
	// Value is the checksum found in the header.
	Value uint16
	// Expected is the value the checksum should have (set when State is
	// ChecksumGood or ChecksumBad).
	Expected uint16
}

// Packet is one parsed TCP/IP packet: its framing, its IP header (IPv4 or
// IPv6, per IPVersion), its TCP segment and the checksum status of each
// layer. The slices in it (IP options, TCP options data, payload) point into
// the frame it was parsed from.
type Packet struct {
	Link LinkType
	// Tagged reports an 802.1Q or 802.1ad tag; VLAN is the ID of the
	// innermost tag.
	Tagged bool
	VLAN   uint16
	// IPVersion is 4 or 6 and says which of IPv4 and IPv6 is set.
	IPVersion uint8
	IPv4      IPv4
	IPv6      IPv6
	TCP       TCP
	// IPChecksum is the IPv4 header checksum status (ChecksumNone for IPv6).
	IPChecksum  ChecksumStatus
	TCPChecksum ChecksumStatus
}

// PacketOptions changes how ParsePacket treats a frame.
type PacketOptions struct {
	// PartialChecksum says the TCP checksum of the frame may not have been
	// computed yet (checksum offload, TP_STATUS_CSUMNOTREADY on AF_PACKET):
	// it is then reported unverified instead of bad.
	PartialChecksum bool
	// RecognizePartial reports a TCP checksum that holds just the
	// pseudo-header's sum as ChecksumPartial rather than ChecksumBad:
	// for frames read from capture files, which do not say which frames
	// were offloaded.
	RecognizePartial bool
}

// Src returns the source address.
func (p *Packet) Src() netip.Addr {
	if p.IPVersion == 6 {
		return p.IPv6.Src
	}
	return p.IPv4.Src
}

// Dst returns the destination address.
func (p *Packet) Dst() netip.Addr {
	if p.IPVersion == 6 {
		return p.IPv6.Dst
	}
	return p.IPv4.Dst
}

// Tuple returns the packet's 4-tuple as seen by its sender.
func (p *Packet) Tuple() FourTuple {
	return FourTuple{
		Src: netip.AddrPortFrom(p.Src(), p.TCP.SrcPort),
		Dst: netip.AddrPortFrom(p.Dst(), p.TCP.DstPort),
	}
}

// FourTuple names one direction of a TCP connection.
type FourTuple struct {
	Src, Dst netip.AddrPort
}

// Reverse returns the tuple of the opposite direction.
func (t FourTuple) Reverse() FourTuple { return FourTuple{Src: t.Dst, Dst: t.Src} }

// String returns "src > dst" in tcpdump's address.port form.
func (t FourTuple) String() string {
	return fmt.Sprintf("%s.%d > %s.%d", t.Src.Addr(), t.Src.Port(), t.Dst.Addr(), t.Dst.Port())
}

// ParsePacket parses a frame of the given link type into p. It reuses p's
// option storage, so parsing frame after frame into one Packet does not
// allocate; p's slices point into frame. IPv6 extension headers are walked
// (see WalkIPv6Ext) and kept in p.IPv6.Ext. Anything but TCP over
// IPv4/IPv6 is an error: *NotIPError, *NotTCPError (ICMP errors among them:
// see ParseICMPError), *FragmentError, an *OptionError for a malformed TCP
// option, or an error wrapping ErrTruncated or saying what is malformed.
// The IP header fields are set in p even when the error is about what
// follows them. A wrong checksum is not an error: it is reported in
// p.IPChecksum / p.TCPChecksum.
func ParsePacket(link LinkType, frame []byte, p *Packet, opts PacketOptions) error {
	p.Link = link
	p.Tagged, p.VLAN = false, 0
	var ip []byte
	switch link {
	case LinkEthernet:
		b, err := p.parseEthernet(frame)
		if err != nil {
			return err
		}
		ip = b
	case LinkLinuxSLL, LinkLinuxSLL2:
		hl, typeOff := sllHeaderLen, 14
		if link == LinkLinuxSLL2 {
			hl, typeOff = sll2HeaderLen, 0
		}
		if len(frame) < hl {
			return fmt.Errorf("%s: %d bytes, need %d for the header: %w", link, len(frame), hl, ErrTruncated)
		}
		et := binary.BigEndian.Uint16(frame[typeOff:])
		if et != EtherTypeIPv4 && et != EtherTypeIPv6 {
			return &NotIPError{EtherType: et}
		}
		ip = frame[hl:]
	case LinkRaw, LinkIPv4, LinkIPv6:
		ip = frame
	default:
		return fmt.Errorf("unsupported link type %d", uint32(link))
	}
	return p.parseIP(ip, link, opts)
}

// parseEthernet skips the Ethernet header and any VLAN tags.
func (p *Packet) parseEthernet(b []byte) ([]byte, error) {
	if len(b) < EthernetHeaderLen {
		return nil, fmt.Errorf("ethernet: %d bytes, need %d for the header: %w", len(b), EthernetHeaderLen, ErrTruncated)
	}
	et := binary.BigEndian.Uint16(b[12:14])
	b = b[EthernetHeaderLen:]
	for tags := 0; et == EtherTypeVLAN || et == EtherTypeQinQ; tags++ {
		if tags == maxVLANTags {
			return nil, fmt.Errorf("ethernet: more than %d VLAN tags", maxVLANTags)
		}
		if len(b) < vlanTagLen {
			return nil, fmt.Errorf("ethernet: VLAN tag cut short (%d bytes): %w", len(b), ErrTruncated)
		}
		p.Tagged = true
		p.VLAN = binary.BigEndian.Uint16(b[0:2]) & 0x0fff
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[vlanTagLen:]
	}
	if et != EtherTypeIPv4 && et != EtherTypeIPv6 {
		return nil, &NotIPError{EtherType: et}
	}
	// The version nibble is checked against the EtherType in parseIP.
	if len(b) > 0 {
		if v := b[0] >> 4; (et == EtherTypeIPv4 && v != 4) || (et == EtherTypeIPv6 && v != 6) {
			return nil, fmt.Errorf("ethernet: ethertype 0x%04x but IP version %d", et, v)
		}
	}
	return b, nil
}

// parseIP parses a bare IP packet (version nibble decides) and its TCP.
func (p *Packet) parseIP(b []byte, link LinkType, opts PacketOptions) error {
	if len(b) == 0 {
		return fmt.Errorf("ip: empty packet: %w", ErrTruncated)
	}
	version := b[0] >> 4
	switch {
	case version == 4 && link != LinkIPv6:
		v, err := NewIPv4View(b)
		if err != nil {
			return err
		}
		p.IPVersion = 4
		p.IPv4.FromView(v)
		p.IPv6 = IPv6{}
		ok, want := v.VerifyChecksum()
		p.IPChecksum = ChecksumStatus{State: ChecksumGood, Value: v.Checksum(), Expected: want}
		if !ok {
			p.IPChecksum.State = ChecksumBad
		}
		if v.Protocol() != ProtocolTCP {
			return &NotTCPError{Protocol: v.Protocol()}
		}
		if v.IsFragment() {
			return &FragmentError{IPVersion: 4, Offset: v.FragmentOffset(), MoreFragments: v.MoreFragments(), ID: uint32(v.ID()), Protocol: v.Protocol()}
		}
		return p.parseTCP(v.Payload(), opts)
	case version == 6 && link != LinkIPv4:
		v, err := NewIPv6View(b)
		if err != nil {
			return err
		}
		p.IPVersion = 6
		p.IPv6.FromView(v)
		p.IPv4 = IPv4{}
		p.IPChecksum = ChecksumStatus{State: ChecksumNone}
		exts, proto, upper, err := WalkIPv6Ext(v.NextHeader(), v.Payload(), p.IPv6.Ext)
		p.IPv6.Ext = exts
		if err != nil {
			return err
		}
		// An atomic fragment (offset 0, no M flag, RFC 6946) is whole.
		if off, more, id, ok := p.IPv6.fragment(); ok && (off != 0 || more) {
			return &FragmentError{IPVersion: 6, Offset: off, MoreFragments: more, ID: id, Protocol: proto}
		}
		if proto != ProtocolTCP {
			return &NotTCPError{Protocol: proto}
		}
		return p.parseTCP(upper, opts)
	}
	return &NotIPError{Version: version, Bare: true}
}

func (p *Packet) parseTCP(seg []byte, opts PacketOptions) error {
	v, err := NewTCPView(seg)
	if err != nil {
		return err
	}
	if err := p.TCP.FromView(v); err != nil {
		return err
	}
	p.TCPChecksum = ChecksumStatus{State: ChecksumUnverified, Value: v.Checksum()}
	if opts.PartialChecksum {
		return nil
	}
	dst := p.IPv4.Dst
	if p.IPVersion == 6 {
		dst = p.IPv6.FinalDst()
	}
	ok, want := v.VerifyChecksum(p.Src(), dst)
	p.TCPChecksum.Expected = want
	p.TCPChecksum.State = ChecksumGood
	switch {
	case ok:
	case opts.RecognizePartial && v.Checksum() == ^ChecksumFinish(PseudoHeaderSum(p.Src(), p.Dst(), ProtocolTCP, uint32(len(seg)))):
		// The sender stored the folded pseudo-header sum, not
		// complemented, for the card to add the segment's sum to
		// (Linux: th->check = ~tcp_v4_check(len, saddr, daddr, 0)).
		p.TCPChecksum.State = ChecksumPartial
	default:
		p.TCPChecksum.State = ChecksumBad
	}
	return nil
}
