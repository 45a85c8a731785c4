package craft

import (
	"errors"
	"fmt"
)

// ErrTruncated is wrapped by every error about a buffer too short for the
// header or length it claims, so callers can tell short input
// (errors.Is(err, ErrTruncated)) from malformed input.
var ErrTruncated = errors.New("truncated")

// NotIPError reports a link-layer frame that does not carry IPv4 or IPv6.
type NotIPError struct {
	// EtherType is the Ethernet/SLL protocol type found, or for a bare
	// packet zero (see Version).
	EtherType uint16
	// Version is the IP version nibble found in a bare packet.
	Version uint8
	// Bare reports that the input was a bare packet, not a frame.
	Bare bool
}

// Error returns "not IP: ethertype 0x0806 (ARP)" or "not IP: version 5".
func (e *NotIPError) Error() string {
	if e.Bare {
		return fmt.Sprintf("not IP: version %d", e.Version)
	}
	name := etherTypeName(e.EtherType)
	if name != "" {
		return fmt.Sprintf("not IP: ethertype 0x%04x (%s)", e.EtherType, name)
	}
	return fmt.Sprintf("not IP: ethertype 0x%04x", e.EtherType)
}

// NotTCPError reports an IP packet that carries something other than TCP:
// the protocol of IPv4, or for IPv6 the next header after the extension
// headers this package walks.
type NotTCPError struct {
	Protocol uint8
}

// Error returns "not TCP: protocol 17 (UDP)".
func (e *NotTCPError) Error() string {
	name := ProtocolName(e.Protocol)
	if name != "" {
		return fmt.Sprintf("not TCP: protocol %d (%s)", e.Protocol, name)
	}
	return fmt.Sprintf("not TCP: protocol %d", e.Protocol)
}

// FragmentError reports an IP fragment (IPv4 MF or offset, or an IPv6
// fragment header that is not atomic): its TCP segment is incomplete and
// this package does not reassemble.
type FragmentError struct {
	// IPVersion is 4 or 6 (zero counts as 4).
	IPVersion uint8
	// Offset is the fragment offset in 8-byte units.
	Offset        uint16
	MoreFragments bool
	// ID is the IPv4 identification or the IPv6 fragment header's.
	ID uint32
	// Protocol is the protocol the fragments carry.
	Protocol uint8
}

// Error returns the fragment offset in bytes and the MF flag.
func (e *FragmentError) Error() string {
	v := "ipv4"
	if e.IPVersion == 6 {
		v = "ipv6"
	}
	return fmt.Sprintf("%s fragment (offset %d, more fragments %t) is not reassembled", v, int(e.Offset)*8, e.MoreFragments)
}

// OptionError reports a malformed TCP option. Offset counts bytes from the
// start of the TCP header, so the first option is at offset 20.
type OptionError struct {
	Offset int
	Kind   OptionKind
	Reason string
}

// Error returns "tcp option at offset 22: length 1 is less than 2".
func (e *OptionError) Error() string {
	return fmt.Sprintf("tcp option at offset %d: %s", e.Offset, e.Reason)
}

// ProtocolName returns the usual name of an IP protocol number, or "" for
// numbers this package has no name for.
func ProtocolName(p uint8) string {
	switch p {
	case 0:
		return "HOPOPT"
	case 1:
		return "ICMP"
	case 2:
		return "IGMP"
	case 4:
		return "IPIP"
	case 6:
		return "TCP"
	case 17:
		return "UDP"
	case 41:
		return "IPv6"
	case 43:
		return "IPv6-Route"
	case 44:
		return "IPv6-Frag"
	case 47:
		return "GRE"
	case 50:
		return "ESP"
	case 51:
		return "AH"
	case 58:
		return "ICMPv6"
	case 59:
		return "IPv6-NoNxt"
	case 60:
		return "IPv6-Opts"
	case 132:
		return "SCTP"
	case 136:
		return "UDPLite"
	}
	return ""
}

func etherTypeName(t uint16) string {
	switch t {
	case EtherTypeIPv4:
		return "IPv4"
	case EtherTypeIPv6:
		return "IPv6"
	case 0x0806:
		return "ARP"
	case EtherTypeVLAN:
		return "802.1Q"
	case EtherTypeQinQ:
		return "802.1ad"
	case 0x88cc:
		return "LLDP"
	case 0x8035:
		return "RARP"
	case 0x8847:
		return "MPLS"
	case 0x888e:
		return "EAPOL"
	}
	return ""
}
