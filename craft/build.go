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
}

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
	tcpStart := len(dst)
	if dst, err = tcp.appendHeader(dst, hl); err != nil {
		return dst[:start], fmt.Errorf("tcp: %w", err)
	}
	if !opts.KeepTCPChecksum {
		if err := checkPseudoAddrs(hdr.Src, hdr.Dst); err != nil {
			return dst[:start], fmt.Errorf("tcp: %w", err)
		}
		h := dst[tcpStart:]
		binary.BigEndian.PutUint16(h[16:], 0)
		sum := PseudoHeaderSum(hdr.Src, hdr.Dst, ProtocolTCP, uint32(hl+n))
		// The header is a whole number of 32-bit words, so the payload
		// starts at an even offset; a piece after an odd-length one
		// starts at an odd offset, and its sum counts byte-swapped
		// (RFC 1071 §2(B)).
		sum = ChecksumAdd(sum, h)
		odd := false
		for _, p := range payload {
			part := foldTo16(ChecksumAdd(0, p))
			if odd {
				part = part>>8 | (part&0xff)<<8
			}
			sum += part
			odd = odd != (len(p)%2 == 1)
		}
		binary.BigEndian.PutUint16(h[16:], ChecksumFinish(sum))
	}
	return dst, nil
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

// AppendIPv6TCP appends a complete IPv6 packet carrying tcp to dst. The
// payload length and the TCP checksum are computed unless set; a zero
// ip.NextHeader becomes 6 (TCP).
func AppendIPv6TCP(dst []byte, ip *IPv6, tcp *TCP, opts BuildOptions) ([]byte, error) {
	hl, err := tcp.HeaderLen()
	if err != nil {
		return dst, err
	}
	hdr := *ip
	if hdr.NextHeader == 0 {
		hdr.NextHeader = ProtocolTCP
	}
	start := len(dst)
	dst, err = hdr.AppendHeader(dst, hl+len(tcp.Payload))
	if err != nil {
		return dst, err
	}
	dst, err = tcp.emit(dst, hdr.Src, hdr.Dst, EmitOptions{KeepChecksum: opts.KeepTCPChecksum}, hl)
	if err != nil {
		return dst[:start], fmt.Errorf("tcp: %w", err)
	}
	return dst, nil
}

// BuildIPv6TCP returns a new IPv6 packet carrying tcp; see AppendIPv6TCP.
func BuildIPv6TCP(ip IPv6, tcp *TCP) ([]byte, error) {
	n := IPv6HeaderLen + TCPMaxHeaderLen + len(tcp.Payload)
	return AppendIPv6TCP(make([]byte, 0, n), &ip, tcp, BuildOptions{})
}

// AppendEthernet appends an Ethernet II header (destination and source MAC,
// EtherType) to dst; the IP packet is appended after it by the caller.
func AppendEthernet(dst []byte, dstMAC, srcMAC [6]byte, etherType uint16) []byte {
	dst = append(dst, dstMAC[:]...)
	dst = append(dst, srcMAC[:]...)
	return binary.BigEndian.AppendUint16(dst, etherType)
}
