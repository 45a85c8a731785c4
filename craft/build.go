package craft

import (
	"encoding/binary"
	"fmt"
)

// BuildOptions controls which computed fields a builder leaves as given.
type BuildOptions struct {
	// KeepIPChecksum writes ip.Checksum as given (IPv4 only).
	KeepIPChecksum bool
	// KeepTCPChecksum writes tcp.Checksum as given.
	KeepTCPChecksum bool
	// BadIPChecksum and BadTCPChecksum write a wrong checksum on purpose
	// (hping3's --badcksum): the right one with its lowest bit flipped, so
	// it is wrong whatever the packet, never the 0x0000/0xffff pair that
	// ones' complement counts as equal. BadIPChecksum is IPv4 only.
	BadIPChecksum  bool
	BadTCPChecksum bool
}

// badChecksum turns a right checksum into a wrong one (see BuildOptions).
func badChecksum(right uint16) uint16 { return right ^ 1 }

// AppendIPv4TCP appends a complete IPv4 packet carrying tcp to dst and
// returns the extended slice. IHL, total length, both checksums and the TCP
// data offset are computed unless set (see IPv4, TCP and opts); a zero
// ip.Protocol becomes 6 (TCP). It does not allocate when dst has room for
// the packet, which makes it suitable for a send path that reuses a buffer.
func AppendIPv4TCP(dst []byte, ip *IPv4, tcp *TCP, opts BuildOptions) ([]byte, error) {
	start := len(dst)
	dst, err := AppendIPv4TCPHeaders(dst, ip, tcp, [][]byte{tcp.Payload}, opts)
	if err != nil {
		return dst[:start], err
	}
	return append(dst, tcp.Payload...), nil
}

// AppendIPv4TCPHeaders is AppendIPv4TCP without the payload: it appends the
// IPv4 and TCP headers of the packet that carries tcp with the payload
// made of the pieces in payload (tcp.Payload is not used), and leaves the
// payload for the caller to send from where it lies (a scatter-gather
// send, no copy). Lengths count the pieces; the TCP checksum covers them,
// pieces of odd length included, unless opts.KeepTCPChecksum (then
// tcp.Checksum is written, e.g. for a segmentation offload that computes
// its own).
func AppendIPv4TCPHeaders(dst []byte, ip *IPv4, tcp *TCP, payload [][]byte, opts BuildOptions) ([]byte, error) {
	hl, err := tcp.HeaderLen()
	if err != nil {
		return dst, err
	}
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	hdr := *ip
	if hdr.Protocol == 0 {
		hdr.Protocol = ProtocolTCP
	}
	start := len(dst)
	dst, err = hdr.AppendHeader(dst, hl+n, EmitOptions{KeepChecksum: opts.KeepIPChecksum})
	if err != nil {
		return dst, err
	}
	if opts.BadIPChecksum {
		h := dst[start:]
		binary.BigEndian.PutUint16(h[10:], badChecksum(binary.BigEndian.Uint16(h[10:])))
	}
	tcpStart := len(dst)
	if dst, err = tcp.appendHeader(dst, hl); err != nil {
		return dst[:start], fmt.Errorf("tcp: %w", err)
	}
	if !opts.KeepTCPChecksum {
		if err := checkPseudoAddrs(hdr.Src, hdr.Dst); err != nil {
			return dst[:start], fmt.Errorf("tcp: %w", err)
		}
		putTCPChecksum(dst[tcpStart:], PseudoHeaderSum(hdr.Src, hdr.Dst, ProtocolTCP, uint32(hl+n)), payload, opts.BadTCPChecksum)
	}
	return dst, nil
}

// putTCPChecksum computes the checksum of the TCP header h (its checksum
// field is overwritten) followed by the payload pieces, from the
// pseudo-header sum, and stores it (made wrong when bad).
func putTCPChecksum(h []byte, pseudo uint32, payload [][]byte, bad bool) {
	binary.BigEndian.PutUint16(h[16:], 0)
	// The header is a whole number of 32-bit words, so the payload
	// starts at an even offset; a piece after an odd-length one starts
	// at an odd offset, and its sum counts byte-swapped (RFC 1071
	// §2(B)).
	sum := ChecksumAdd(pseudo, h)
	odd := false
	for _, p := range payload {
		part := foldTo16(ChecksumAdd(0, p))
		if odd {
			part = part>>8 | (part&0xff)<<8
		}
		sum += part
		odd = odd != (len(p)%2 == 1)
	}
	cks := ChecksumFinish(sum)
	if bad {
		cks = badChecksum(cks)
	}
	binary.BigEndian.PutUint16(h[16:], cks)
}

// foldTo16 folds a ones' complement accumulator to 16 bits.
func foldTo16(sum uint32) uint32 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum
}

// BuildIPv4TCP returns a new IPv4 packet carrying tcp with lengths and both
// checksums filled in; see AppendIPv4TCP.
func BuildIPv4TCP(ip IPv4, tcp *TCP) ([]byte, error) {
	n := ip.HeaderLen() + TCPMaxHeaderLen + len(tcp.Payload)
	return AppendIPv4TCP(make([]byte, 0, n), &ip, tcp, BuildOptions{})
}

// AppendIPv6TCP appends a complete IPv6 packet carrying tcp to dst: the
// fixed header, ip.Ext, the TCP header and payload. The payload length
// and the TCP checksum (over the pseudo-header of RFC 8200 §8.1, with the
// final destination when a routing header names one) are computed unless
// set; the next-header values are computed as IPv6.NextHeader says. It
// does not allocate when dst has
// room. ip's addresses must be IPv6 ones (see IPv6 for IPv4-mapped ones).
func AppendIPv6TCP(dst []byte, ip *IPv6, tcp *TCP, opts BuildOptions) ([]byte, error) {
	start := len(dst)
	dst, err := AppendIPv6TCPHeaders(dst, ip, tcp, [][]byte{tcp.Payload}, opts)
	if err != nil {
		return dst[:start], err
	}
	return append(dst, tcp.Payload...), nil
}

// AppendIPv6TCPHeaders is AppendIPv6TCP without the payload, for a
// scatter-gather send (see AppendIPv4TCPHeaders): the headers of the packet
// that carries tcp with the payload made of the pieces in payload.
func AppendIPv6TCPHeaders(dst []byte, ip *IPv6, tcp *TCP, payload [][]byte, opts BuildOptions) ([]byte, error) {
	hl, err := tcp.HeaderLen()
	if err != nil {
		return dst, err
	}
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	start := len(dst)
	dst, err = ip.AppendHeaders(dst, ProtocolTCP, hl+n)
	if err != nil {
		return dst, err
	}
	tcpStart := len(dst)
	if dst, err = tcp.appendHeader(dst, hl); err != nil {
		return dst[:start], fmt.Errorf("tcp: %w", err)
	}
	if !opts.KeepTCPChecksum {
		putTCPChecksum(dst[tcpStart:], PseudoHeaderSum(ip.Src, ip.FinalDst(), ProtocolTCP, uint32(hl+n)), payload, opts.BadTCPChecksum)
	}
	return dst, nil
}

// BuildIPv6TCP returns a new IPv6 packet carrying tcp; see AppendIPv6TCP.
func BuildIPv6TCP(ip IPv6, tcp *TCP) ([]byte, error) {
	n := IPv6HeaderLen + ip.ExtLen() + TCPMaxHeaderLen + len(tcp.Payload)
	return AppendIPv6TCP(make([]byte, 0, n), &ip, tcp, BuildOptions{})
}

// AppendEthernet appends an Ethernet II header (destination and source MAC,
// EtherType) to dst; the IP packet is appended after it by the caller.
func AppendEthernet(dst []byte, dstMAC, srcMAC [6]byte, etherType uint16) []byte {
	dst = append(dst, dstMAC[:]...)
	dst = append(dst, srcMAC[:]...)
	return binary.BigEndian.AppendUint16(dst, etherType)
}
