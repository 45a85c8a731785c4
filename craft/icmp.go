package craft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ICMP and ICMPv6 errors that matter to TCP: destination unreachable
// (all codes, fragmentation needed with the next-hop MTU), time exceeded,
// packet too big and parameter problem, each with the start of the
// datagram it complains about.
//
// The messages are parsed and marshalled by golang.org/x/net/icmp (type
// constants from x/net/ipv4 and x/net/ipv6). This file adds what x/net
// leaves out: the next-hop MTU of an ICMPv4 fragmentation-needed message
// (RFC 1191 §4), which x/net's DstUnreach drops, is read from and written
// to bytes 6-7 of the message; the checksums are verified (x/net does not
// verify); and the quoted datagram, which x/net hands back as bytes, is
// read here down to the TCP ports and sequence number.

// ICMP types this package reads as errors (IANA "ICMP Type Numbers",
// "ICMPv6 Type Numbers").
const (
	ICMPUnreachable    = uint8(ipv4.ICMPTypeDestinationUnreachable) // RFC 792
	ICMPTimeExceeded   = uint8(ipv4.ICMPTypeTimeExceeded)           // RFC 792
	ICMPParamProblem   = uint8(ipv4.ICMPTypeParameterProblem)       // RFC 792
	ICMPv6Unreachable  = uint8(ipv6.ICMPTypeDestinationUnreachable) // RFC 4443 §3.1
	ICMPv6PacketTooBig = uint8(ipv6.ICMPTypePacketTooBig)           // RFC 4443 §3.2
	ICMPv6TimeExceeded = uint8(ipv6.ICMPTypeTimeExceeded)           // RFC 4443 §3.3
	ICMPv6ParamProblem = uint8(ipv6.ICMPTypeParameterProblem)       // RFC 4443 §3.4

	// ICMPFragNeeded is the destination-unreachable code that carries a
	// next-hop MTU (RFC 1191 §4).
	ICMPFragNeeded uint8 = 4
)

// ErrNotICMPError is wrapped by ParseICMPError's error for a packet that
// is not an ICMP or ICMPv6 error message of a type listed above (not
// ICMP at all, or an echo, a neighbour discovery message, ...).
var ErrNotICMPError = errors.New("not an ICMP error")

// icmpHeaderLen is the type, code, checksum and the 4-byte field after
// them that every error message has (RFC 792, RFC 4443 §2.1).
const icmpHeaderLen = 8

// ICMPError is an ICMP (RFC 792) or ICMPv6 (RFC 4443) error message: what
// a router or host reports about a datagram it could not deliver, and the
// start of that datagram as the message quotes it. ParseICMPError fills
// it; AppendICMPError builds one (the Repr of the message).
type ICMPError struct {
	// IPVersion is 4 (ICMP over IPv4) or 6 (ICMPv6); it says which of
	// IPv4 and IPv6, the header of the packet carrying the message, is
	// set.
	IPVersion uint8
	IPv4      IPv4
	IPv6      IPv6
	// IPChecksum is the IPv4 header checksum's status (ChecksumNone for
	// IPv6).
	IPChecksum ChecksumStatus
	// Type and Code as on the wire.
	Type, Code uint8
	// Checksum is the ICMP checksum's status (over the pseudo-header for
	// ICMPv6, RFC 4443 §2.3). The builder computes it.
	Checksum ChecksumStatus
	// MTU is the next-hop MTU of a fragmentation-needed (RFC 1191 §4) or
	// packet-too-big (RFC 8201 §4, RFC 4443 §3.2) message, 0 otherwise.
	MTU uint32
	// Pointer is the octet offset a parameter problem points at.
	Pointer uint32
	// Quote is the quoted datagram. To build, only Quote.Bytes is used.
	Quote Quote
}

// Quote is what an ICMP error quotes of the datagram that caused it: its
// IP header and the start of what it carried. RFC 792 promises the IP
// header and 8 bytes, enough for the TCP ports and sequence number;
// Linux quotes up to 576 bytes (RFC 1812 §4.3.2.3), ICMPv6 up to the
// minimum MTU (RFC 4443 §2.4(c)). The fields are read as far as the quote
// goes: Has* say which are there.
type Quote struct {
	// Bytes is the quote, from its IP header on (a sub-slice of the
	// frame after a parse; what the builder writes).
	Bytes []byte
	// IPVersion is the quoted header's version, 4 or 6.
	IPVersion uint8
	// IPv4 or IPv6 holds the quoted IP header's fields; their length
	// fields tell the datagram's full size, not the quote's. For IPv6,
	// Ext holds the extension headers the quote holds whole.
	IPv4 IPv4
	IPv6 IPv6
	// Protocol is the quoted upper layer (after IPv6 extension headers).
	Protocol uint8
	// HasPorts: at least 4 bytes of a TCP, UDP, SCTP or DCCP header are
	// quoted (not for a fragment other than the first).
	HasPorts         bool
	SrcPort, DstPort uint16
	// HasSeq: at least 8 bytes of a TCP header are quoted.
	HasSeq bool
	Seq    Seq
	// HasTCPHeader: the fixed 20-byte TCP header is quoted; Ack, Flags
	// and Window are set.
	HasTCPHeader bool
	Ack          Seq
	Flags        Flags
	Window       uint16
	// UpperLen is the number of upper-layer bytes quoted.
	UpperLen int
}

// Src returns the quoted datagram's source address.
func (q *Quote) Src() netip.Addr {
	if q.IPVersion == 6 {
		return q.IPv6.Src
	}
	return q.IPv4.Src
}

// Dst returns the quoted datagram's destination address.
func (q *Quote) Dst() netip.Addr {
	if q.IPVersion == 6 {
		return q.IPv6.Dst
	}
	return q.IPv4.Dst
}

// Tuple returns the quoted datagram's 4-tuple as its sender saw it (for
// a probe tcpcraft sent: our address and port first). Ports are zero
// when not quoted.
func (q *Quote) Tuple() FourTuple {
	return FourTuple{
		Src: netip.AddrPortFrom(q.Src(), q.SrcPort),
		Dst: netip.AddrPortFrom(q.Dst(), q.DstPort),
	}
}

// From returns the reporter: the address that sent the error (a router
// on the path, or the destination host).
func (e *ICMPError) From() netip.Addr {
	if e.IPVersion == 6 {
		return e.IPv6.Src
	}
	return e.IPv4.Src
}

// To returns the error's destination (normally the quoted datagram's
// source).
func (e *ICMPError) To() netip.Addr {
	if e.IPVersion == 6 {
		return e.IPv6.Dst
	}
	return e.IPv4.Dst
}

// TTL returns the TTL or hop limit the error arrived with.
func (e *ICMPError) TTL() uint8 {
	if e.IPVersion == 6 {
		return e.IPv6.HopLimit
	}
	return e.IPv4.TTL
}

// isICMPErrorType reports whether typ is one of the error types read here.
func isICMPErrorType(version, typ uint8) bool {
	if version == 6 {
		return typ >= ICMPv6Unreachable && typ <= ICMPv6ParamProblem
	}
	return typ == ICMPUnreachable || typ == ICMPTimeExceeded || typ == ICMPParamProblem
}

// ParseICMPError parses a frame of the given link type carrying an ICMP or
// ICMPv6 error message into e. A packet that is not such a message is an
// error wrapping ErrNotICMPError (use it after ParsePacket returned a
// *NotTCPError for protocol 1 or 58); a malformed message or quote is an
// error that says what is wrong; none panics. A wrong checksum is not an
// error: it is reported in e.Checksum. e's slices point into frame.
func ParseICMPError(link LinkType, frame []byte, e *ICMPError) error {
	ip, err := linkPayload(link, frame)
	if err != nil {
		return err
	}
	*e = ICMPError{IPv6: IPv6{Ext: e.IPv6.Ext[:0]}}
	if len(ip) == 0 {
		return fmt.Errorf("ip: empty packet: %w", ErrTruncated)
	}
	var msg []byte
	switch v := ip[0] >> 4; {
	case v == 4 && link != LinkIPv6:
		view, err := NewIPv4View(ip)
		if err != nil {
			return err
		}
		e.IPVersion = 4
		e.IPv4.FromView(view)
		ok, want := view.VerifyChecksum()
		e.IPChecksum = ChecksumStatus{State: ChecksumGood, Value: view.Checksum(), Expected: want}
		if !ok {
			e.IPChecksum.State = ChecksumBad
		}
		if view.Protocol() != ProtocolICMP {
			return fmt.Errorf("protocol %d: %w", view.Protocol(), ErrNotICMPError)
		}
		if view.IsFragment() {
			return &FragmentError{IPVersion: 4, Offset: view.FragmentOffset(), MoreFragments: view.MoreFragments(), ID: uint32(view.ID()), Protocol: ProtocolICMP}
		}
		msg = view.Payload()
	case v == 6 && link != LinkIPv4:
		view, err := NewIPv6View(ip)
		if err != nil {
			return err
		}
		e.IPVersion = 6
		e.IPv6.FromView(view)
		e.IPChecksum = ChecksumStatus{State: ChecksumNone}
		exts, proto, upper, err := WalkIPv6Ext(view.NextHeader(), view.Payload(), e.IPv6.Ext)
		e.IPv6.Ext = exts
		if err != nil {
			return err
		}
		if off, more, id, ok := e.IPv6.fragment(); ok && (off != 0 || more) {
			return &FragmentError{IPVersion: 6, Offset: off, MoreFragments: more, ID: id, Protocol: proto}
		}
		if proto != ProtocolICMPv6 {
			return fmt.Errorf("next header %d: %w", proto, ErrNotICMPError)
		}
		msg = upper
	default:
		return &NotIPError{Version: v, Bare: true}
	}
	if len(msg) < 4 {
		return fmt.Errorf("icmp: %d bytes, need 4 for type, code and checksum: %w", len(msg), ErrTruncated)
	}
	e.Type, e.Code = msg[0], msg[1]
	if !isICMPErrorType(e.IPVersion, e.Type) {
		return fmt.Errorf("icmp type %d (%s): %w", e.Type, icmpTypeName(e.IPVersion, e.Type), ErrNotICMPError)
	}
	if len(msg) < icmpHeaderLen {
		return fmt.Errorf("icmp %s: %d bytes, need %d: %w", icmpTypeName(e.IPVersion, e.Type), len(msg), icmpHeaderLen, ErrTruncated)
	}
	proto := 1
	if e.IPVersion == 6 {
		proto = 58
	}
	m, err := icmp.ParseMessage(proto, msg)
	if err != nil {
		return fmt.Errorf("icmp %s: %v", icmpTypeName(e.IPVersion, e.Type), err)
	}
	var data []byte
	switch b := m.Body.(type) {
	case *icmp.DstUnreach:
		data = b.Data
		if e.IPVersion == 4 && e.Code == ICMPFragNeeded {
			// x/net does not keep the next-hop MTU (RFC 1191 §4).
			e.MTU = uint32(binary.BigEndian.Uint16(msg[6:8]))
		}
	case *icmp.TimeExceeded:
		data = b.Data
	case *icmp.PacketTooBig:
		data, e.MTU = b.Data, uint32(b.MTU)
	case *icmp.ParamProb:
		data, e.Pointer = b.Data, uint32(b.Pointer)
	default:
		return fmt.Errorf("icmp type %d: unexpected body %T: %w", e.Type, m.Body, ErrNotICMPError)
	}
	// x/net copies the quote; point into the frame instead, where it
	// starts (it may have cut RFC 4884 extensions off the end).
	quote := msg[icmpHeaderLen:]
	if len(data) < len(quote) {
		quote = quote[:len(data)]
	}
	e.Checksum = icmpChecksumStatus(e, msg)
	return e.Quote.parse(quote)
}

// icmpChecksumStatus verifies the message's checksum.
func icmpChecksumStatus(e *ICMPError, msg []byte) ChecksumStatus {
	stored := binary.BigEndian.Uint16(msg[2:4])
	var sum uint32
	if e.IPVersion == 6 {
		sum = PseudoHeaderSum(e.IPv6.Src, e.IPv6.FinalDst(), ProtocolICMPv6, uint32(len(msg)))
	}
	sum = ChecksumAdd(sum, msg)
	sum = ChecksumAdd16(sum, ^stored)
	want := ChecksumFinish(sum)
	s := ChecksumStatus{State: ChecksumGood, Value: stored, Expected: want}
	if !checksumMatches(stored, want) {
		s.State = ChecksumBad
	}
	return s
}

// parse reads the quoted datagram b.
func (q *Quote) parse(b []byte) error {
	*q = Quote{Bytes: b, IPv6: IPv6{Ext: q.IPv6.Ext[:0]}}
	if len(b) == 0 {
		return fmt.Errorf("icmp: no quoted datagram: %w", ErrTruncated)
	}
	var upper []byte
	first := true
	switch v := b[0] >> 4; v {
	case 4:
		if len(b) < IPv4MinHeaderLen {
			return fmt.Errorf("icmp: quoted IPv4 header cut to %d bytes: %w", len(b), ErrTruncated)
		}
		hl := int(b[0]&0x0f) * 4
		if hl < IPv4MinHeaderLen {
			return fmt.Errorf("icmp: quoted IPv4 header length %d is less than 20", hl)
		}
		if hl > len(b) {
			return fmt.Errorf("icmp: quoted IPv4 header of %d bytes cut to %d: %w", hl, len(b), ErrTruncated)
		}
		// The quote is shorter than the datagram's total length, so a
		// view (which checks it) cannot be made; read the header as
		// one whose total length is the quote's.
		h := make([]byte, hl)
		copy(h, b[:hl])
		binary.BigEndian.PutUint16(h[2:], uint16(hl))
		view, err := NewIPv4View(h)
		if err != nil {
			return fmt.Errorf("icmp: quoted %v", err)
		}
		q.IPVersion = 4
		q.IPv4.FromView(view)
		q.IPv4.TotalLength = binary.BigEndian.Uint16(b[2:4])
		q.IPv4.Options = b[IPv4MinHeaderLen:hl]
		q.Protocol = q.IPv4.Protocol
		upper = b[hl:]
		first = q.IPv4.FragmentOffset == 0
	case 6:
		if len(b) < IPv6HeaderLen {
			return fmt.Errorf("icmp: quoted IPv6 header cut to %d bytes: %w", len(b), ErrTruncated)
		}
		h := make([]byte, IPv6HeaderLen)
		copy(h, b)
		binary.BigEndian.PutUint16(h[4:], 0)
		view, err := NewIPv6View(h)
		if err != nil {
			return fmt.Errorf("icmp: quoted %v", err)
		}
		q.IPVersion = 6
		q.IPv6.FromView(view)
		q.IPv6.PayloadLength = binary.BigEndian.Uint16(b[4:6])
		exts, proto, rest, err := WalkIPv6Ext(q.IPv6.NextHeader, b[IPv6HeaderLen:], q.IPv6.Ext)
		q.IPv6.Ext = exts
		q.Protocol = proto
		if err != nil {
			// An extension header cut off by the quote: no upper
			// layer to read.
			return nil
		}
		if off, _, _, ok := q.IPv6.fragment(); ok && off != 0 {
			first = false
		}
		upper = rest
	default:
		return fmt.Errorf("icmp: quoted datagram has IP version %d", v)
	}
	q.UpperLen = len(upper)
	if !first {
		return nil
	}
	switch q.Protocol {
	case ProtocolTCP, ProtocolUDP, 33, 132: // TCP, UDP, DCCP, SCTP: ports first
		if len(upper) >= 4 {
			q.HasPorts = true
			q.SrcPort = binary.BigEndian.Uint16(upper[0:])
			q.DstPort = binary.BigEndian.Uint16(upper[2:])
		}
	}
	if q.Protocol != ProtocolTCP {
		return nil
	}
	if len(upper) >= 8 {
		q.HasSeq = true
		q.Seq = Seq(binary.BigEndian.Uint32(upper[4:]))
	}
	if len(upper) >= TCPMinHeaderLen {
		q.HasTCPHeader = true
		q.Ack = Seq(binary.BigEndian.Uint32(upper[8:]))
		q.Flags = Flags(binary.BigEndian.Uint16(upper[12:])) & FlagsMask
		q.Window = binary.BigEndian.Uint16(upper[14:])
	}
	return nil
}

// linkPayload returns the IP packet inside a frame of the given link type.
func linkPayload(link LinkType, frame []byte) ([]byte, error) {
	var p Packet
	switch link {
	case LinkEthernet:
		return p.parseEthernet(frame)
	case LinkLinuxSLL, LinkLinuxSLL2:
		hl, typeOff := sllHeaderLen, 14
		if link == LinkLinuxSLL2 {
			hl, typeOff = sll2HeaderLen, 0
		}
		if len(frame) < hl {
			return nil, fmt.Errorf("%s: %d bytes, need %d for the header: %w", link, len(frame), hl, ErrTruncated)
		}
		et := binary.BigEndian.Uint16(frame[typeOff:])
		if et != EtherTypeIPv4 && et != EtherTypeIPv6 {
			return nil, &NotIPError{EtherType: et}
		}
		return frame[hl:], nil
	case LinkRaw, LinkIPv4, LinkIPv6:
		return frame, nil
	}
	return nil, fmt.Errorf("unsupported link type %d", uint32(link))
}

// AppendICMPError appends an IP packet carrying the ICMP or ICMPv6 error e
// to dst: the IP header of e.IPVersion (IPv4 or IPv6, lengths and IPv4
// checksum computed as the TCP builders do; a zero protocol/next header
// becomes ICMP/ICMPv6), then the message of e.Type and e.Code with e.MTU
// (fragmentation needed, packet too big) or e.Pointer (parameter problem)
// and e.Quote.Bytes as the quoted datagram, and the ICMP checksum. The
// caller chooses how much to quote (RFC 792: the IP header and 8 bytes at
// least). opts.BadIPChecksum applies to the IPv4 header; the other
// BuildOptions fields do not apply.
func AppendICMPError(dst []byte, e *ICMPError, opts BuildOptions) ([]byte, error) {
	if !isICMPErrorType(e.IPVersion, e.Type) {
		return dst, fmt.Errorf("icmp: type %d is not an error type of ICMPv%d this package builds", e.Type, e.IPVersion)
	}
	var m icmp.Message
	m.Code = int(e.Code)
	data := e.Quote.Bytes
	switch e.IPVersion {
	case 4:
		m.Type = ipv4.ICMPType(e.Type)
		if e.MTU != 0 && (e.Type != ICMPUnreachable || e.Code != ICMPFragNeeded) {
			return dst, errors.New("icmp: an MTU goes only with unreachable frag-needed")
		}
		if e.MTU > 0xffff {
			return dst, fmt.Errorf("icmp: next-hop MTU %d does not fit in 16 bits", e.MTU)
		}
		if e.Pointer > 0xff {
			return dst, fmt.Errorf("icmp: parameter problem pointer %d does not fit in 8 bits", e.Pointer)
		}
	case 6:
		m.Type = ipv6.ICMPType(e.Type)
		if e.MTU != 0 && e.Type != ICMPv6PacketTooBig {
			return dst, errors.New("icmp: an MTU goes only with packet-too-big")
		}
	default:
		return dst, fmt.Errorf("icmp: IP version %d", e.IPVersion)
	}
	if e.Pointer != 0 && e.Type != ICMPParamProblem && !(e.IPVersion == 6 && e.Type == ICMPv6ParamProblem) {
		return dst, errors.New("icmp: a pointer goes only with parameter-problem")
	}
	switch {
	case e.IPVersion == 6 && e.Type == ICMPv6PacketTooBig:
		m.Body = &icmp.PacketTooBig{MTU: int(e.MTU), Data: data}
	case e.Type == ICMPUnreachable && e.IPVersion == 4, e.Type == ICMPv6Unreachable && e.IPVersion == 6:
		m.Body = &icmp.DstUnreach{Data: data}
	case e.Type == ICMPTimeExceeded && e.IPVersion == 4, e.Type == ICMPv6TimeExceeded && e.IPVersion == 6:
		m.Body = &icmp.TimeExceeded{Data: data}
	default:
		m.Body = &icmp.ParamProb{Pointer: uintptr(e.Pointer), Data: data}
	}
	var psh []byte
	if e.IPVersion == 6 {
		if err := e.IPv6.check(); err != nil {
			return dst, err
		}
		psh = icmp.IPv6PseudoHeader(net.IP(e.IPv6.Src.AsSlice()), net.IP(e.IPv6.FinalDst().AsSlice()))
	}
	msg, err := m.Marshal(psh)
	if err != nil {
		return dst, fmt.Errorf("icmp: %v", err)
	}
	if e.IPVersion == 4 && e.MTU != 0 {
		// x/net writes zeros where RFC 1191 §4 puts the MTU.
		old := binary.BigEndian.Uint32(msg[4:8])
		binary.BigEndian.PutUint16(msg[6:8], uint16(e.MTU))
		cks := ChecksumUpdate32(binary.BigEndian.Uint16(msg[2:4]), old, binary.BigEndian.Uint32(msg[4:8]))
		binary.BigEndian.PutUint16(msg[2:4], cks)
	}
	start := len(dst)
	if e.IPVersion == 4 {
		hdr := e.IPv4
		if hdr.Protocol == 0 {
			hdr.Protocol = ProtocolICMP
		}
		if dst, err = hdr.AppendHeader(dst, len(msg), EmitOptions{KeepChecksum: opts.KeepIPChecksum}); err != nil {
			return dst[:start], err
		}
		if opts.BadIPChecksum {
			binary.BigEndian.PutUint16(dst[start+10:], badChecksum(binary.BigEndian.Uint16(dst[start+10:])))
		}
	} else if dst, err = e.IPv6.AppendHeaders(dst, ProtocolICMPv6, len(msg)); err != nil {
		return dst[:start], err
	}
	return append(dst, msg...), nil
}

// icmpTypeName returns the name of an ICMP/ICMPv6 type: "unreachable",
// "time-exceeded", "parameter-problem", "packet-too-big", or x/net's name
// of the others ("echo request", ...), or "type-N".
func icmpTypeName(version, typ uint8) string {
	switch {
	case version == 4 && typ == ICMPUnreachable, version == 6 && typ == ICMPv6Unreachable:
		return "unreachable"
	case version == 4 && typ == ICMPTimeExceeded, version == 6 && typ == ICMPv6TimeExceeded:
		return "time-exceeded"
	case version == 4 && typ == ICMPParamProblem, version == 6 && typ == ICMPv6ParamProblem:
		return "parameter-problem"
	case version == 6 && typ == ICMPv6PacketTooBig:
		return "packet-too-big"
	}
	var s string
	if version == 6 {
		s = ipv6.ICMPType(typ).String()
	} else {
		s = ipv4.ICMPType(typ).String()
	}
	if s == "<nil>" || s == "" {
		return "type-" + strconv.Itoa(int(typ))
	}
	return strings.ToLower(s)
}

// icmpCodeNames are the codes of the error types, by version and type, in
// nmap's and hping3's spirit: short, hyphenated, the words of the RFCs
// (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1 for ICMPv4; RFC 4443
// §3 for ICMPv6).
var icmpCodeNames = map[[3]uint8]string{
	{4, 3, 0}: "net-unreachable", {4, 3, 1}: "host-unreachable", {4, 3, 2}: "protocol-unreachable",
	{4, 3, 3}: "port-unreachable", {4, 3, 4}: "frag-needed", {4, 3, 5}: "source-route-failed",
	{4, 3, 6}: "net-unknown", {4, 3, 7}: "host-unknown", {4, 3, 8}: "host-isolated",
	{4, 3, 9}: "net-prohibited", {4, 3, 10}: "host-prohibited", {4, 3, 11}: "net-tos-unreachable",
	{4, 3, 12}: "host-tos-unreachable", {4, 3, 13}: "admin-prohibited", {4, 3, 14}: "precedence-violation",
	{4, 3, 15}: "precedence-cutoff",
	{4, 11, 0}: "ttl-exceeded", {4, 11, 1}: "reassembly-timeout",
	{4, 12, 0}: "parameter-problem", {4, 12, 1}: "missing-option", {4, 12, 2}: "bad-length",
	{6, 1, 0}: "no-route", {6, 1, 1}: "admin-prohibited", {6, 1, 2}: "beyond-scope",
	{6, 1, 3}: "address-unreachable", {6, 1, 4}: "port-unreachable", {6, 1, 5}: "source-policy-failed",
	{6, 1, 6}: "reject-route", {6, 1, 7}: "source-routing-error",
	{6, 2, 0}: "packet-too-big",
	{6, 3, 0}: "hop-limit-exceeded", {6, 3, 1}: "reassembly-timeout",
	{6, 4, 0}: "header-field", {6, 4, 1}: "unknown-next-header", {6, 4, 2}: "unknown-option",
	{6, 4, 3}: "incomplete-header-chain",
}

// Name returns the code's name ("port-unreachable", "admin-prohibited",
// "frag-needed", "ttl-exceeded", "packet-too-big", ...), or
// "TYPE-code-N" for a code without one.
func (e *ICMPError) Name() string {
	if n, ok := icmpCodeNames[[3]uint8{e.IPVersion, e.Type, e.Code}]; ok {
		return n
	}
	return icmpTypeName(e.IPVersion, e.Type) + "-code-" + strconv.Itoa(int(e.Code))
}

// TypeName returns the type's name: "unreachable", "time-exceeded",
// "parameter-problem" or "packet-too-big".
func (e *ICMPError) TypeName() string { return icmpTypeName(e.IPVersion, e.Type) }

// packetdrillICMPNames are packetdrill's spellings (icmp_packet.c) that
// differ from ours.
var packetdrillICMPNames = map[string]string{
	"net_unreachable": "net-unreachable", "host_unreachable": "host-unreachable",
	"protocol_unreachable": "protocol-unreachable", "port_unreachable": "port-unreachable",
	"frag_needed": "frag-needed", "source_route_failed": "source-route-failed",
	"net_unknown": "net-unknown", "host_unknown": "host-unknown",
	"source_host_isolated": "host-isolated", "net_prohibited": "net-prohibited",
	"host_prohibited": "host-prohibited", "net_unreachable_for_tos": "net-tos-unreachable",
	"host_unreachable_for_tos": "host-tos-unreachable", "packet_filtered": "admin-prohibited",
	"precedence_violation": "precedence-violation", "precedence_cutoff": "precedence-cutoff",
	"no_route": "no-route", "admin_prohibited": "admin-prohibited", "not_neighbour": "beyond-scope",
	"address_unreachable": "address-unreachable", "exceeded_hop_limit": "hop-limit-exceeded",
	"exceeded_frag_time": "reassembly-timeout", "header_field": "header-field",
	"unknown_next_header": "unknown-next-header", "unknown_option": "unknown-option",
}

// ParseICMPKind reads an ICMP error's type and code names for IP version
// 4 or 6: this package's names ("unreachable" "port-unreachable",
// "time-exceeded" "ttl-exceeded", "packet-too-big") or packetdrill's
// ("unreachable" "frag_needed", "time_exceeded", "packet_too_big",
// "type_N", "code_N"), so a probe script's `icmp unreachable frag_needed`
// and a command line's `unreachable frag-needed` mean the same. An empty
// code is code 0, as in packetdrill.
func ParseICMPKind(version uint8, typ, code string) (uint8, uint8, error) {
	var t uint8
	found := false
	norm := strings.ReplaceAll(strings.ToLower(typ), "_", "-")
	if n, ok := strings.CutPrefix(norm, "type-"); ok {
		v, err := strconv.ParseUint(n, 10, 8)
		if err != nil {
			return 0, 0, fmt.Errorf("icmp type %q: want a number 0-255 after type_", typ)
		}
		t, found = uint8(v), true
	} else {
		for cand := 0; cand < 256; cand++ {
			if isICMPErrorType(version, uint8(cand)) && icmpTypeName(version, uint8(cand)) == norm {
				t, found = uint8(cand), true
				break
			}
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("icmp type %q: want unreachable, time-exceeded, parameter-problem%s, or type_N", typ, map[bool]string{true: ", packet-too-big"}[version == 6])
	}
	if code == "" {
		return t, 0, nil
	}
	cn := strings.ToLower(code)
	if n, ok := packetdrillICMPNames[cn]; ok {
		cn = n
	}
	cn = strings.ReplaceAll(cn, "_", "-")
	if n, ok := strings.CutPrefix(cn, "code-"); ok {
		v, err := strconv.ParseUint(n, 10, 8)
		if err != nil {
			return 0, 0, fmt.Errorf("icmp code %q: want a number 0-255 after code_", code)
		}
		return t, uint8(v), nil
	}
	for c := 0; c < 256; c++ {
		if icmpCodeNames[[3]uint8{version, t, uint8(c)}] == cn {
			return t, uint8(c), nil
		}
	}
	var names []string
	for c := 0; c < 256; c++ {
		if n, ok := icmpCodeNames[[3]uint8{version, t, uint8(c)}]; ok {
			names = append(names, n)
		}
	}
	return 0, 0, fmt.Errorf("icmp code %q for %s: want one of %s, or code_N", code, icmpTypeName(version, t), strings.Join(names, ", "))
}
