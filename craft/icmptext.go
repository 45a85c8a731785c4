package craft

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// AppendICMPText appends the text line of an ICMP error, worded as
// tcpdump 4.99 -nn prints it (print-icmp.c, print-icmp6.c), e.g.
//
//	IP 10.0.1.1 > 10.0.2.21: ICMP 10.0.2.20 unreachable - need to frag (mtu 1200), length 36 [quote 10.0.2.21.40000 > 10.0.2.20.80: Flags [S], seq 1000]
//
// followed by what tcpdump shows only with -v, here on the same line: the
// quoted datagram's 4-tuple, flags and sequence number as far as they are
// quoted ("[quote ...]"; with Verbose also its IP header group). A wrong
// ICMP checksum appends " [bad icmp cksum 0xA -> 0xB]"; with Verbose the
// IP group of the error packet comes first, as with TCP, and ICMPv6 says
// "[icmp6 sum ok]" as tcpdump -v does. Unlike tcpdump, an unknown code is
// not followed by a hex dump.
func (f *Formatter) AppendICMPText(dst []byte, e *ICMPError) []byte {
	if f.IPPrefix {
		if e.IPVersion == 6 {
			dst = append(dst, "IP6 "...)
		} else {
			dst = append(dst, "IP "...)
		}
	}
	if f.Verbose || (e.IPVersion == 4 && unusualIP(&Packet{IPVersion: 4, IPv4: e.IPv4})) || (e.IPVersion == 6 && e.IPv6.TrafficClass != 0) {
		if e.IPVersion == 6 {
			dst = appendIPv6Group(dst, &e.IPv6)
		} else {
			dst = appendIPv4Group(dst, &e.IPv4, ChecksumStatus{}, false)
		}
	}
	dst = e.From().AppendTo(dst)
	dst = append(dst, " > "...)
	dst = e.To().AppendTo(dst)
	dst = append(dst, ": "...)
	msgLen := len(e.Quote.Bytes) + icmpHeaderLen
	if e.IPVersion == 6 {
		if len(e.IPv6.Ext) > 0 {
			dst = appendIPv6Ext(dst, e.IPv6.Ext, msgLen, f.Verbose)
		}
		if f.Verbose {
			if e.Checksum.State == ChecksumBad {
				dst = append(dst, "[bad icmp6 cksum "...)
				dst = appendHex16(dst, e.Checksum.Value)
				dst = append(dst, " -> "...)
				dst = appendHex16(dst, e.Checksum.Expected)
				dst = append(dst, "!] "...)
			} else {
				dst = append(dst, "[icmp6 sum ok] "...)
			}
		}
		dst = appendICMPv6Body(dst, e)
		if !f.Verbose && !(e.Type == ICMPv6Unreachable && e.Code > 4) {
			dst = append(dst, ", length "...)
			dst = strconv.AppendUint(dst, uint64(msgLen), 10)
		}
	} else {
		dst = append(dst, "ICMP "...)
		dst = appendICMPv4Body(dst, e)
		dst = append(dst, ", length "...)
		dst = strconv.AppendUint(dst, uint64(msgLen), 10)
		if f.Verbose && e.Checksum.State == ChecksumBad {
			dst = append(dst, " (wrong icmp cksum "...)
			dst = strconv.AppendUint(dst, uint64(e.Checksum.Value), 16)
			dst = append(dst, " (->"...)
			dst = strconv.AppendUint(dst, uint64(e.Checksum.Expected), 16)
			dst = append(dst, ")!)"...)
		}
	}
	dst = f.appendQuote(dst, &e.Quote)
	if e.IPChecksum.State == ChecksumBad {
		dst = appendBadChecksum(dst, "ip", e.IPChecksum)
	}
	if e.Checksum.State == ChecksumBad && !f.Verbose {
		dst = appendBadChecksum(dst, "icmp", e.Checksum)
	}
	return dst
}

// appendQuotedPort appends "tcp port 80" for a quoted TCP/UDP
// destination port, or "port 80".
func appendQuotedPort(dst []byte, q *Quote) []byte {
	switch q.Protocol {
	case ProtocolTCP:
		dst = append(dst, "tcp "...)
	case ProtocolUDP:
		dst = append(dst, "udp "...)
	}
	dst = append(dst, "port "...)
	return strconv.AppendUint(dst, uint64(q.DstPort), 10)
}

func appendICMPv4Body(dst []byte, e *ICMPError) []byte {
	q := &e.Quote
	qdst := q.Dst()
	switch e.Type {
	case ICMPUnreachable:
		net := func(prefix, suffix string) []byte {
			dst = append(dst, prefix...)
			dst = qdst.AppendTo(dst)
			return append(dst, suffix...)
		}
		switch e.Code {
		case 0:
			return net("net ", " unreachable")
		case 1:
			return net("host ", " unreachable")
		case 2:
			dst = net("", " protocol ")
			dst = strconv.AppendUint(dst, uint64(q.Protocol), 10)
			return append(dst, " unreachable"...)
		case 3:
			dst = net("", " ")
			if !q.HasPorts {
				return append(dst, "port unreachable"...)
			}
			dst = appendQuotedPort(dst, q)
			return append(dst, " unreachable"...)
		case 4:
			dst = net("", " unreachable - need to frag")
			if e.MTU != 0 {
				dst = append(dst, " (mtu "...)
				dst = strconv.AppendUint(dst, uint64(e.MTU), 10)
				dst = append(dst, ')')
			}
			return dst
		case 5:
			return net("", " unreachable - source route failed")
		case 6:
			return net("net ", " unreachable - unknown")
		case 7:
			return net("host ", " unreachable - unknown")
		case 8:
			return net("", " unreachable - source host isolated")
		case 9:
			return net("net ", " unreachable - admin prohibited")
		case 10:
			return net("host ", " unreachable - admin prohibited")
		case 11:
			return net("net ", " unreachable - tos prohibited")
		case 12:
			return net("host ", " unreachable - tos prohibited")
		case 13:
			return net("host ", " unreachable - admin prohibited filter")
		case 14:
			return net("host ", " unreachable - host precedence violation")
		case 15:
			return net("host ", " unreachable - precedence cutoff")
		}
		dst = net("", " unreachable - #")
		return strconv.AppendUint(dst, uint64(e.Code), 10)
	case ICMPTimeExceeded:
		switch e.Code {
		case 0:
			return append(dst, "time exceeded in-transit"...)
		case 1:
			return append(dst, "ip reassembly time exceeded"...)
		}
		dst = append(dst, "time exceeded-#"...)
		return strconv.AppendUint(dst, uint64(e.Code), 10)
	}
	if e.Code == 0 {
		dst = append(dst, "parameter problem - octet "...)
		return strconv.AppendUint(dst, uint64(e.Pointer), 10)
	}
	dst = append(dst, "parameter problem - code "...)
	return strconv.AppendUint(dst, uint64(e.Code), 10)
}

func appendICMPv6Body(dst []byte, e *ICMPError) []byte {
	q := &e.Quote
	switch e.Type {
	case ICMPv6Unreachable:
		dst = append(dst, "ICMP6, destination unreachable, "...)
		switch e.Code {
		case 0:
			dst = append(dst, "unreachable route "...)
			return q.Dst().AppendTo(dst)
		case 1:
			// Two spaces, as tcpdump prints it.
			dst = append(dst, " unreachable prohibited "...)
			return q.Dst().AppendTo(dst)
		case 2:
			dst = append(dst, "beyond scope "...)
			dst = q.Dst().AppendTo(dst)
			dst = append(dst, ", source address "...)
			return q.Src().AppendTo(dst)
		case 3:
			dst = append(dst, "unreachable address "...)
			return q.Dst().AppendTo(dst)
		case 4:
			dst = append(dst, "unreachable port, "...)
			dst = q.Dst().AppendTo(dst)
			if !q.HasPorts {
				return dst
			}
			dst = append(dst, ' ')
			return appendQuotedPort(dst, q)
		}
		dst = append(dst, "unknown unreach code ("...)
		dst = strconv.AppendUint(dst, uint64(e.Code), 10)
		return append(dst, ')')
	case ICMPv6PacketTooBig:
		dst = append(dst, "ICMP6, packet too big, mtu "...)
		return strconv.AppendUint(dst, uint64(e.MTU), 10)
	case ICMPv6TimeExceeded:
		switch e.Code {
		case 0:
			dst = append(dst, "ICMP6, time exceeded in-transit for "...)
			return q.Dst().AppendTo(dst)
		case 1:
			return append(dst, "ICMP6, time exceeded in-transit (reassembly)"...)
		}
		dst = append(dst, "ICMP6, time exceeded in-transit, unknown code ("...)
		dst = strconv.AppendUint(dst, uint64(e.Code), 10)
		return append(dst, ')')
	}
	dst = append(dst, "ICMP6, parameter problem, "...)
	switch e.Code {
	case 0:
		dst = append(dst, "erroneous"...)
	case 1:
		dst = append(dst, "next header"...)
	case 2:
		dst = append(dst, "option"...)
	case 3:
		dst = append(dst, "incomplete header chain"...)
	default:
		dst = append(dst, "code-#"...)
		dst = strconv.AppendUint(dst, uint64(e.Code), 10)
	}
	dst = append(dst, " - octet "...)
	return strconv.AppendUint(dst, uint64(e.Pointer), 10)
}

// appendQuote appends " [quote SRC.PORT > DST.PORT: Flags [S], seq N]"
// with what the quote holds.
func (f *Formatter) appendQuote(dst []byte, q *Quote) []byte {
	dst = append(dst, " [quote "...)
	if f.Verbose {
		if q.IPVersion == 6 {
			dst = appendIPv6Group(dst, &q.IPv6)
		} else {
			dst = appendIPv4Group(dst, &q.IPv4, ChecksumStatus{}, false)
		}
	}
	dst = q.Src().AppendTo(dst)
	if q.HasPorts {
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, uint64(q.SrcPort), 10)
	}
	dst = append(dst, " > "...)
	dst = q.Dst().AppendTo(dst)
	if q.HasPorts {
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, uint64(q.DstPort), 10)
	}
	dst = append(dst, ": "...)
	switch {
	case q.HasTCPHeader:
		dst = append(dst, "Flags ["...)
		dst = AppendFlags(dst, q.Flags)
		dst = append(dst, "], seq "...)
		dst = strconv.AppendUint(dst, uint64(q.Seq), 10)
		if q.Flags.Has(FlagACK) {
			dst = append(dst, ", ack "...)
			dst = strconv.AppendUint(dst, uint64(q.Ack), 10)
		}
	case q.HasSeq:
		dst = append(dst, "seq "...)
		dst = strconv.AppendUint(dst, uint64(q.Seq), 10)
	default:
		if name := ProtocolName(q.Protocol); name != "" {
			dst = append(dst, name...)
		} else {
			dst = append(dst, "proto "...)
			dst = strconv.AppendUint(dst, uint64(q.Protocol), 10)
		}
	}
	return append(dst, ']')
}

// FormatICMP returns the text line of e; see AppendICMPText.
func (f *Formatter) FormatICMP(e *ICMPError) string { return string(f.AppendICMPText(nil, e)) }

// ICMPJSON is the JSON form of an ICMP error: {"type":"icmp", ...}, the
// reporter in "from", the code's name in "name", and what the quote holds
// in "quote".
type ICMPJSON struct {
	// Time is set by the caller, RFC 3339 with nanoseconds.
	Time      string `json:"time,omitempty"`
	Type      string `json:"type"` // "icmp"
	IPVersion uint8  `json:"ip_version"`
	// From is the reporter (the error's source); To its destination.
	From     string       `json:"from"`
	To       string       `json:"to"`
	TTL      uint8        `json:"ttl"`
	ICMPType uint8        `json:"icmp_type"`
	ICMPCode uint8        `json:"icmp_code"`
	TypeName string       `json:"type_name"`
	Name     string       `json:"name"`
	MTU      *uint32      `json:"mtu,omitempty"`
	Pointer  *uint32      `json:"pointer,omitempty"`
	Checksum ChecksumJSON `json:"checksum"`
	Quote    QuoteJSON    `json:"quote"`
}

// QuoteJSON is the quoted datagram: addresses, the upper protocol, and
// the ports, sequence number and flags when quoted.
type QuoteJSON struct {
	IPVersion uint8   `json:"ip_version"`
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	Protocol  uint8   `json:"proto"`
	TTL       uint8   `json:"ttl"`
	IPID      *uint16 `json:"ip_id,omitempty"`
	SPort     *uint16 `json:"sport,omitempty"`
	DPort     *uint16 `json:"dport,omitempty"`
	Seq       *uint32 `json:"seq,omitempty"`
	Ack       *uint32 `json:"ack,omitempty"`
	Flags     string  `json:"flags,omitempty"`
	// Len is the number of upper-layer bytes quoted.
	Len int `json:"len"`
}

// ICMPJSON returns the JSON form of e.
func (f *Formatter) ICMPJSON(e *ICMPError) ICMPJSON {
	j := ICMPJSON{
		Type:      "icmp",
		IPVersion: e.IPVersion,
		From:      e.From().String(),
		To:        e.To().String(),
		TTL:       e.TTL(),
		ICMPType:  e.Type,
		ICMPCode:  e.Code,
		TypeName:  e.TypeName(),
		Name:      e.Name(),
		Checksum:  checksumJSON(e.Checksum),
	}
	if e.MTU != 0 || (e.IPVersion == 6 && e.Type == ICMPv6PacketTooBig) || (e.IPVersion == 4 && e.Type == ICMPUnreachable && e.Code == ICMPFragNeeded) {
		m := e.MTU
		j.MTU = &m
	}
	if e.Type == ICMPParamProblem && e.IPVersion == 4 || e.Type == ICMPv6ParamProblem && e.IPVersion == 6 {
		p := e.Pointer
		j.Pointer = &p
	}
	q := &e.Quote
	j.Quote = QuoteJSON{IPVersion: q.IPVersion, Src: q.Src().String(), Dst: q.Dst().String(), Protocol: q.Protocol, Len: q.UpperLen}
	if q.IPVersion == 6 {
		j.Quote.TTL = q.IPv6.HopLimit
	} else {
		id := q.IPv4.ID
		j.Quote.IPID = &id
		j.Quote.TTL = q.IPv4.TTL
	}
	if q.HasPorts {
		s, d := q.SrcPort, q.DstPort
		j.Quote.SPort, j.Quote.DPort = &s, &d
	}
	if q.HasSeq {
		s := uint32(q.Seq)
		j.Quote.Seq = &s
	}
	if q.HasTCPHeader {
		j.Quote.Flags = q.Flags.String()
		if q.Flags.Has(FlagACK) {
			a := uint32(q.Ack)
			j.Quote.Ack = &a
		}
	}
	return j
}

// AppendFrame appends the text line of any frame this package can show:
// a TCP segment (AppendText), an ICMP error (AppendICMPText), or an IP
// fragment, which it shows as tcpdump does: the first one as the TCP
// segment it starts when the TCP header is whole in it (checksum not
// verified), any other as "SRC > DST: ip-proto-6" (IPv4; with the IP
// group, since fragment fields are unusual) or "SRC > DST: frag (8|16)"
// (IPv6). Anything else is the parse error, and nothing is appended.
func (f *Formatter) AppendFrame(dst []byte, link LinkType, frame []byte, p *Packet) ([]byte, error) {
	err := ParsePacket(link, frame, p, PacketOptions{})
	if err == nil {
		return f.AppendText(dst, p), nil
	}
	var nt *NotTCPError
	if errors.As(err, &nt) && (nt.Protocol == ProtocolICMP || nt.Protocol == ProtocolICMPv6) {
		var e ICMPError
		if ierr := ParseICMPError(link, frame, &e); ierr == nil {
			return f.AppendICMPText(dst, &e), nil
		} else if !errors.Is(ierr, ErrNotICMPError) {
			return dst, ierr
		}
		return dst, err
	}
	var fe *FragmentError
	if !errors.As(err, &fe) {
		return dst, err
	}
	ip, lerr := linkPayload(link, frame)
	if lerr != nil {
		return dst, err
	}
	return f.appendFragment(dst, ip, p, fe), nil
}

// appendFragment renders a fragment whose IP header fields are in p.
func (f *Formatter) appendFragment(dst []byte, ip []byte, p *Packet, fe *FragmentError) []byte {
	var upper []byte
	if fe.Offset == 0 {
		if p.IPVersion == 6 {
			if v, err := NewIPv6View(ip); err == nil {
				if _, _, u, err := WalkIPv6Ext(v.NextHeader(), v.Payload(), nil); err == nil {
					upper = u
				}
			}
		} else if v, err := NewIPv4View(ip); err == nil {
			upper = v.Payload()
		}
		// A first fragment shows the TCP segment it starts, when its
		// header is whole; its checksum cannot be verified.
		if fe.Protocol == ProtocolTCP && p.TCP.Parse(upper) == nil {
			p.TCPChecksum = ChecksumStatus{State: ChecksumUnverified, Value: p.TCP.Checksum}
			return f.AppendText(dst, p)
		}
	}
	if f.IPPrefix {
		if p.IPVersion == 6 {
			dst = append(dst, "IP6 "...)
		} else {
			dst = append(dst, "IP "...)
		}
	}
	ports := fe.Offset == 0 && fe.Protocol == ProtocolTCP && len(upper) >= 4
	if p.IPVersion == 6 {
		if f.Verbose || p.IPv6.TrafficClass != 0 {
			dst = appendIPv6Group(dst, &p.IPv6)
		}
		dst = p.IPv6.Src.AppendTo(dst)
		dst = append(dst, " > "...)
		dst = p.IPv6.Dst.AppendTo(dst)
		dst = append(dst, ": "...)
		rest := int(p.IPv6.PayloadLength) - p.IPv6.ExtLen()
		dst = appendIPv6Ext(dst, p.IPv6.Ext, rest, f.Verbose)
		if !ports {
			return dst[:len(dst)-1]
		}
		dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint16(upper)), 10)
		dst = append(dst, " > "...)
		dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint16(upper[2:])), 10)
		return append(dst, ":  [|tcp]"...)
	}
	dst = appendIPv4Group(dst, &p.IPv4, p.IPChecksum, f.Verbose)
	dst = p.IPv4.Src.AppendTo(dst)
	if ports {
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint16(upper)), 10)
	}
	dst = append(dst, " > "...)
	dst = p.IPv4.Dst.AppendTo(dst)
	if ports {
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, uint64(binary.BigEndian.Uint16(upper[2:])), 10)
		return append(dst, ":  [|tcp]"...)
	}
	dst = append(dst, ": ip-proto-"...)
	return strconv.AppendUint(dst, uint64(fe.Protocol), 10)
}
