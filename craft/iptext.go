package craft

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// The IP layer in the text form, worded as tcpdump 4.99 -v prints it
// (print-ip.c, print-ip6.c, print-ip6opts.c, print-rt6.c, print-frag6.c).

// unusualIP reports whether p's IP header carries something a default
// trace line should show although tcpdump without -v does not: a TOS or
// traffic class (DSCP, ECN), the reserved flag, fragment fields, or IPv4
// options. TTL, ID, DF and the flow label are normal traffic and stay
// hidden unless Verbose.
func unusualIP(p *Packet) bool {
	if p.IPVersion == 6 {
		return p.IPv6.TrafficClass != 0
	}
	ip := &p.IPv4
	return ip.DSCP != 0 || ip.ECN != 0 || ip.ReservedFlag || ip.MoreFragments || ip.FragmentOffset != 0 || len(ip.Options) > 0
}

// ipProtoName returns tcpdump's name of an IP protocol (ipproto.c), or
// "unknown".
func ipProtoName(p uint8) string {
	switch p {
	case 0:
		return "Options"
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
		return "Routing"
	case 44:
		return "Fragment"
	case 47:
		return "GRE"
	case 50:
		return "ESP"
	case 51:
		return "AH"
	case 58:
		return "ICMPv6"
	case 132:
		return "SCTP"
	}
	return "unknown"
}

// appendECN appends tcpdump's name of the ECN codepoint after a TOS
// (RFC 3168 §5): ",ECT(1)", ",ECT(0)", ",CE" or nothing for Not-ECT.
func appendECN(dst []byte, ecn uint8) []byte {
	switch ecn & 3 {
	case 1:
		return append(dst, ",ECT(1)"...)
	case 2:
		return append(dst, ",ECT(0)"...)
	case 3:
		return append(dst, ",CE"...)
	}
	return dst
}

// appendIPv4Group appends tcpdump -v's "(tos 0x0, ttl 64, id 1, offset 0,
// flags [DF], proto TCP (6), length 60) " for ip. badCksum adds tcpdump's
// ", bad cksum X (->Y)!" for a wrong header checksum.
func appendIPv4Group(dst []byte, ip *IPv4, cks ChecksumStatus, badCksum bool) []byte {
	dst = append(dst, "(tos 0x"...)
	dst = strconv.AppendUint(dst, uint64(ip.DSCP<<2|ip.ECN), 16)
	dst = appendECN(dst, ip.ECN)
	dst = append(dst, ", ttl "...)
	dst = strconv.AppendUint(dst, uint64(ip.TTL), 10)
	dst = append(dst, ", id "...)
	dst = strconv.AppendUint(dst, uint64(ip.ID), 10)
	dst = append(dst, ", offset "...)
	dst = strconv.AppendUint(dst, uint64(ip.FragmentOffset)*8, 10)
	dst = append(dst, ", flags ["...)
	start := len(dst)
	for _, fl := range [...]struct {
		on   bool
		name string
	}{{ip.MoreFragments, "+"}, {ip.DontFragment, "DF"}, {ip.ReservedFlag, "rsvd"}} {
		if !fl.on {
			continue
		}
		if len(dst) > start {
			dst = append(dst, ", "...)
		}
		dst = append(dst, fl.name...)
	}
	if len(dst) == start {
		dst = append(dst, "none"...)
	}
	dst = append(dst, "], proto "...)
	dst = append(dst, ipProtoName(ip.Protocol)...)
	dst = append(dst, " ("...)
	dst = strconv.AppendUint(dst, uint64(ip.Protocol), 10)
	dst = append(dst, "), length "...)
	dst = strconv.AppendUint(dst, uint64(ip.TotalLength), 10)
	if len(ip.Options) > 0 {
		dst = append(dst, ", options ("...)
		dst = appendIPv4Options(dst, ip.Options)
		dst = append(dst, ')')
	}
	if badCksum && cks.State == ChecksumBad {
		dst = append(dst, ", bad cksum "...)
		dst = strconv.AppendUint(dst, uint64(cks.Value), 16)
		dst = append(dst, " (->"...)
		dst = strconv.AppendUint(dst, uint64(cks.Expected), 16)
		dst = append(dst, ")!"...)
	}
	return append(dst, ") "...)
}

// appendIPv4Options names IPv4 options as tcpdump does (RFC 791 §3.1,
// RFC 2113 router alert); record-route style options list their
// addresses. Options tcpdump decodes further (timestamp, security) are
// named only.
func appendIPv4Options(dst []byte, b []byte) []byte {
	for i := 0; i < len(b); {
		if i > 0 {
			dst = append(dst, ',')
		}
		code := b[i]
		switch code {
		case 0:
			// tcpdump stops at EOL: what follows is padding.
			return append(dst, "EOL"...)
		case 1:
			dst = append(dst, "NOP"...)
			i++
			continue
		}
		name := ""
		switch code {
		case 0x44:
			name = "timestamp"
		case 0x82:
			name = "security"
		case 0x07:
			name = "RR"
		case 0x89:
			name = "SSRR"
		case 0x83:
			name = "LSRR"
		case 0x94:
			name = "RA"
		case 0x52:
			name = "traceroute"
		}
		if name == "" {
			dst = append(dst, "unknown "...)
			dst = strconv.AppendUint(dst, uint64(code), 10)
		} else {
			dst = append(dst, name...)
		}
		if i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			dst = append(dst, " [bad length]"...)
			return dst
		}
		n := int(b[i+1])
		if (code == 0x07 || code == 0x89 || code == 0x83) && n >= 3 {
			ptr := int(b[i+2]) - 1 // the pointer counts from 1
			for k := 3; k+4 <= n; k += 4 {
				dst = append(dst, ' ')
				dst = netip.AddrFrom4([4]byte(b[i+k : i+k+4])).AppendTo(dst)
				if ptr > k {
					dst = append(dst, ',')
				}
			}
		}
		i += n
	}
	return dst
}

// appendIPv6Group appends tcpdump -v's "(class 0x10, flowlabel 0x12345,
// hlim 64, next-header TCP (6) payload length: 40) " for ip.
func appendIPv6Group(dst []byte, ip *IPv6) []byte {
	dst = append(dst, '(')
	if ip.TrafficClass != 0 {
		dst = append(dst, "class 0x"...)
		dst = appendHex8(dst, ip.TrafficClass)
		dst = append(dst, ", "...)
	}
	if ip.FlowLabel != 0 {
		dst = append(dst, "flowlabel 0x"...)
		s := strconv.FormatUint(uint64(ip.FlowLabel), 16)
		for i := len(s); i < 5; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, s...)
		dst = append(dst, ", "...)
	}
	dst = append(dst, "hlim "...)
	dst = strconv.AppendUint(dst, uint64(ip.HopLimit), 10)
	dst = append(dst, ", next-header "...)
	dst = append(dst, ipProtoName(ip.NextHeader)...)
	dst = append(dst, " ("...)
	dst = strconv.AppendUint(dst, uint64(ip.NextHeader), 10)
	dst = append(dst, ") payload length: "...)
	dst = strconv.AppendUint(dst, uint64(ip.PayloadLength), 10)
	return append(dst, ") "...)
}

func appendHex8(dst []byte, v uint8) []byte {
	const digits = "0123456789abcdef"
	return append(dst, digits[v>>4], digits[v&0xf])
}

// appendIPv6Ext appends the extension headers as tcpdump prints them
// between "src > dst: " and the upper layer, each followed by a space:
// "HBH ", "DSTOPT ", "RT6 (len=2, type=0 ...) ", "frag (0|40) ". Verbose
// adds the options of HBH/DSTOPT, the reserved fields of RT6 and the
// fragment identification. upperLen is the length of what follows the
// last header.
func appendIPv6Ext(dst []byte, exts []IPv6Ext, upperLen int, verbose bool) []byte {
	for i, e := range exts {
		switch e.Kind {
		case IPv6HopByHop, IPv6DestOpts:
			dst = append(dst, e.Name()...)
			dst = append(dst, ' ')
			if verbose {
				dst = appendIPv6Options(dst, e.Data[2:])
				dst = append(dst, ' ')
			}
		case IPv6Routing:
			dst = appendRT6(dst, e.Data, verbose)
		case IPv6Fragment:
			off, _, id, _ := e.Fragment()
			// tcpdump prints the bytes after the fragment header.
			after := upperLen
			for _, later := range exts[i+1:] {
				after += len(later.Data)
			}
			dst = append(dst, "frag ("...)
			if verbose {
				dst = append(dst, "0x"...)
				s := strconv.FormatUint(uint64(id), 16)
				for k := len(s); k < 8; k++ {
					dst = append(dst, '0')
				}
				dst = append(dst, s...)
				dst = append(dst, ':')
			}
			dst = strconv.AppendUint(dst, uint64(off)*8, 10)
			dst = append(dst, '|')
			dst = strconv.AppendUint(dst, uint64(after), 10)
			dst = append(dst, ") "...)
		}
	}
	return dst
}

// appendIPv6Options prints hop-by-hop/destination options as tcpdump -v
// (RFC 8200 §4.2, RFC 2711 router alert, RFC 2675 jumbo).
func appendIPv6Options(dst []byte, b []byte) []byte {
	for i := 0; i < len(b); {
		t := b[i]
		if t == 0 {
			dst = append(dst, "(pad1)"...)
			i++
			continue
		}
		if i+1 >= len(b) || i+2+int(b[i+1]) > len(b) {
			return append(dst, "[trunc]"...)
		}
		n := int(b[i+1])
		data := b[i+2 : i+2+n]
		switch {
		case t == 1:
			dst = append(dst, "(padn)"...)
		case t == 5 && n == 2:
			dst = append(dst, "(rtalert: "...)
			dst = appendHex16(dst, binary.BigEndian.Uint16(data))
			dst = append(dst, ") "...)
		case t == 0xc2 && n == 4:
			dst = append(dst, "(jumbo: "...)
			dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint32(data)), 10)
			dst = append(dst, ") "...)
		default:
			dst = append(dst, "(opt_type 0x"...)
			dst = appendHex8(dst, t)
			dst = append(dst, ": len="...)
			dst = strconv.AppendUint(dst, uint64(n), 10)
			dst = append(dst, ')')
		}
		i += 2 + n
	}
	return dst
}

// appendRT6 prints a routing header as tcpdump does: "RT6 (len=2, type=0
// [Deprecated], segleft=1, [0]fd00::99) ".
func appendRT6(dst []byte, b []byte, verbose bool) []byte {
	dst = append(dst, "RT6 (len="...)
	dst = strconv.AppendUint(dst, uint64(b[1]), 10)
	dst = append(dst, ", type="...)
	dst = strconv.AppendUint(dst, uint64(b[2]), 10)
	if b[2] == 0 {
		dst = append(dst, " [Deprecated]"...)
	}
	dst = append(dst, ", segleft="...)
	dst = strconv.AppendUint(dst, uint64(b[3]), 10)
	addrs := b[8:]
	switch b[2] {
	case 0, 2:
		if verbose {
			dst = append(dst, ", rsv=0x"...)
			dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint32(b[4:8])), 16)
		}
	case 4:
		dst = append(dst, ", last-entry="...)
		dst = strconv.AppendUint(dst, uint64(b[4]), 10)
		if verbose {
			dst = append(dst, ", flags=0x"...)
			dst = strconv.AppendUint(dst, uint64(b[5]), 16)
		}
		dst = append(dst, ", tag="...)
		dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint16(b[6:8])), 16)
	default:
		return append(dst, ") "...)
	}
	for k := 0; k+16 <= len(addrs); k += 16 {
		dst = append(dst, ", ["...)
		dst = strconv.AppendUint(dst, uint64(k/16), 10)
		dst = append(dst, ']')
		dst = netip.AddrFrom16([16]byte(addrs[k : k+16])).AppendTo(dst)
	}
	return append(dst, ") "...)
}
