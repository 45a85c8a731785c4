package craft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// TCP header sizes (RFC 9293 §3.1).
const (
	TCPMinHeaderLen  = 20
	TCPMaxHeaderLen  = 60
	TCPMaxOptionsLen = TCPMaxHeaderLen - TCPMinHeaderLen
)

// TCPView is a checked view of a TCP segment (header and payload) in a byte
// slice. A view made by NewTCPView has been checked so that no accessor can
// panic; the zero TCPView is not valid. The options are not checked by the
// constructor: Options reports malformed ones.
type TCPView struct {
	b []byte
}

// NewTCPView checks that b holds a TCP header whose data offset is at least
// 5 words and fits in b, and returns a view of the segment. The segment is
// all of b: the IP layer delimits it.
func NewTCPView(b []byte) (TCPView, error) {
	if len(b) < TCPMinHeaderLen {
		return TCPView{}, fmt.Errorf("tcp: %d bytes, need at least %d for the header: %w", len(b), TCPMinHeaderLen, ErrTruncated)
	}
	hl := int(b[12]>>4) * 4
	if hl < TCPMinHeaderLen {
		return TCPView{}, fmt.Errorf("tcp: data offset %d (%d bytes) is less than 5 words", hl/4, hl)
	}
	if hl > len(b) {
		return TCPView{}, fmt.Errorf("tcp: data offset %d (%d bytes) exceeds the %d-byte segment: %w", hl/4, hl, len(b), ErrTruncated)
	}
	return TCPView{b: b}, nil
}

// Bytes returns the whole segment.
func (v TCPView) Bytes() []byte { return v.b }

// SrcPort returns the source port.
func (v TCPView) SrcPort() uint16 { return binary.BigEndian.Uint16(v.b[0:2]) }

// DstPort returns the destination port.
func (v TCPView) DstPort() uint16 { return binary.BigEndian.Uint16(v.b[2:4]) }

// Seq returns the sequence number.
func (v TCPView) Seq() Seq { return Seq(binary.BigEndian.Uint32(v.b[4:8])) }

// Ack returns the acknowledgment number (meaningful only with ACK set).
func (v TCPView) Ack() Seq { return Seq(binary.BigEndian.Uint32(v.b[8:12])) }

// DataOffset returns the header length in 32-bit words.
func (v TCPView) DataOffset() uint8 { return v.b[12] >> 4 }

// HeaderLen returns the header length in bytes.
func (v TCPView) HeaderLen() int { return int(v.b[12]>>4) * 4 }

// Flags returns all 12 flag bits: the 8 classic ones, NS and the three
// reserved bits.
func (v TCPView) Flags() Flags {
	return Flags(binary.BigEndian.Uint16(v.b[12:14])) & FlagsMask
}

// Window returns the window field (unscaled).
func (v TCPView) Window() uint16 { return binary.BigEndian.Uint16(v.b[14:16]) }

// Checksum returns the checksum field.
func (v TCPView) Checksum() uint16 { return binary.BigEndian.Uint16(v.b[16:18]) }

// Urgent returns the urgent pointer.
func (v TCPView) Urgent() uint16 { return binary.BigEndian.Uint16(v.b[18:20]) }

// OptionBytes returns the raw option bytes (header bytes 20 to HeaderLen).
func (v TCPView) OptionBytes() []byte { return v.b[TCPMinHeaderLen:v.HeaderLen()] }

// Payload returns the bytes after the header.
func (v TCPView) Payload() []byte { return v.b[v.HeaderLen():] }

// Options parses the options, appending them to dst[:0] (whose storage,
// SACK blocks included, is reused) and returns the result. A malformed
// option is an *OptionError naming its offset in the header.
func (v TCPView) Options(dst []Option) ([]Option, error) {
	return ParseTCPOptions(dst[:0], v.OptionBytes())
}

// VerifyChecksum reports whether the checksum is right for a segment sent
// from src to dst, and returns the value it should have.
func (v TCPView) VerifyChecksum(src, dst netip.Addr) (ok bool, want uint16) {
	return VerifyTCPChecksum(src, dst, v.b)
}

// SegmentLen returns the sequence space the segment occupies: the payload
// length plus one for SYN and one for FIN (RFC 9293 §3.4).
func (t *TCP) SegmentLen() uint32 {
	n := uint32(len(t.Payload))
	if t.Flags.Has(FlagSYN) {
		n++
	}
	if t.Flags.Has(FlagFIN) {
		n++
	}
	return n
}

// ParseTCP parses a TCP segment into a new TCP value. Payload and unknown
// option data are sub-slices of b. For the hot path use (*TCP).Parse, which
// reuses storage.
func ParseTCP(b []byte) (TCP, error) {
	var t TCP
	err := t.Parse(b)
	return t, err
}

// Parse sets t from the segment b (header and payload; the IP layer
// delimits it). It reuses the backing arrays of t.Options and of the SACK
// blocks in it, so it does not allocate once they are large enough; copy
// with Clone a TCP that must survive the next Parse into the same value.
// Payload, and the Data of unknown options, are sub-slices of b.
func (t *TCP) Parse(b []byte) error {
	v, err := NewTCPView(b)
	if err != nil {
		return err
	}
	return t.FromView(v)
}

// FromView sets t from a checked view. It fails only on a malformed option;
// t then holds the header fields and the options before the bad one.
func (t *TCP) FromView(v TCPView) error {
	opts, err := v.Options(t.Options)
	t.SrcPort = v.SrcPort()
	t.DstPort = v.DstPort()
	t.Seq = v.Seq()
	t.Ack = v.Ack()
	t.DataOffset = v.DataOffset()
	t.Flags = v.Flags()
	t.Window = v.Window()
	t.Checksum = v.Checksum()
	t.Urgent = v.Urgent()
	t.Options = opts
	t.Payload = v.Payload()
	return err
}

// HeaderLen returns the number of header bytes Emit writes: 20 plus the
// options padded with zero bytes to a multiple of 4. It does not depend on
// DataOffset, which may lie.
func (t *TCP) HeaderLen() (int, error) {
	n, err := OptionsLen(t.Options)
	if err != nil {
		return 0, err
	}
	hl := TCPMinHeaderLen + (n+3)&^3
	if hl > TCPMaxHeaderLen {
		return 0, fmt.Errorf("tcp: options take %d bytes, more than the %d a header can hold", n, TCPMaxOptionsLen)
	}
	return hl, nil
}

// Emit appends the segment (header, options, payload) to dst. The checksum
// is computed for a segment sent from src to dstAddr unless
// opts.KeepChecksum (then src and dstAddr are not used). DataOffset is
// computed when zero and written as given otherwise. Options are padded with
// zero bytes to a 4-byte boundary (RFC 9293 §3.1 "Padding"). Emit does not
// allocate when dst has room.
func (t *TCP) Emit(dst []byte, src, dstAddr netip.Addr, opts EmitOptions) ([]byte, error) {
	hl, err := t.HeaderLen()
	if err != nil {
		return dst, err
	}
	return t.emit(dst, src, dstAddr, opts, hl)
}

// emit is Emit with the header length already computed by HeaderLen.
func (t *TCP) emit(dst []byte, src, dstAddr netip.Addr, opts EmitOptions, hl int) ([]byte, error) {
	start := len(dst)
	dst, err := t.appendHeader(dst, hl)
	if err != nil {
		return dst, err
	}
	dst = append(dst, t.Payload...)
	if !opts.KeepChecksum {
		if err := checkPseudoAddrs(src, dstAddr); err != nil {
			return dst[:start], err
		}
		seg := dst[start:]
		binary.BigEndian.PutUint16(seg[16:], TCPChecksum(src, dstAddr, seg))
	}
	return dst, nil
}

func checkPseudoAddrs(src, dst netip.Addr) error {
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return fmt.Errorf("tcp checksum: source %v and destination %v must be addresses of one family", src, dst)
	}
	return nil
}

// appendHeader appends the hl-byte header with the checksum field as
// t.Checksum.
func (t *TCP) appendHeader(dst []byte, hl int) ([]byte, error) {
	off := t.DataOffset
	if off == 0 {
		off = uint8(hl / 4)
	} else if off > 15 {
		return dst, fmt.Errorf("tcp: data offset %d does not fit in 4 bits", off)
	}
	if t.Flags&^FlagsMask != 0 {
		return dst, fmt.Errorf("tcp: flags %#x has bits outside the 12 flag bits", uint16(t.Flags))
	}
	start := len(dst)
	dst = grow(dst, TCPMinHeaderLen)
	h := dst[start:]
	binary.BigEndian.PutUint16(h[0:], t.SrcPort)
	binary.BigEndian.PutUint16(h[2:], t.DstPort)
	binary.BigEndian.PutUint32(h[4:], uint32(t.Seq))
	binary.BigEndian.PutUint32(h[8:], uint32(t.Ack))
	binary.BigEndian.PutUint16(h[12:], uint16(off)<<12|uint16(t.Flags))
	binary.BigEndian.PutUint16(h[14:], t.Window)
	binary.BigEndian.PutUint16(h[16:], t.Checksum)
	binary.BigEndian.PutUint16(h[18:], t.Urgent)
	dst, err := AppendOptions(dst, t.Options)
	if err != nil {
		return dst[:start], err
	}
	for len(dst)-start < hl {
		dst = append(dst, 0)
	}
	return dst, nil
}

// Clone returns a deep copy of t: options, SACK blocks, option data and
// payload no longer share storage with t.
func (t *TCP) Clone() TCP {
	c := *t
	if t.Options != nil {
		c.Options = make([]Option, len(t.Options))
		for i, o := range t.Options {
			c.Options[i] = o.Clone()
		}
	}
	if t.Payload != nil {
		c.Payload = append([]byte{}, t.Payload...)
	}
	return c
}

// Equal reports whether t and u hold the same header fields, options and
// payload. Nil and empty slices are equal.
func (t *TCP) Equal(u *TCP) bool {
	if t.SrcPort != u.SrcPort || t.DstPort != u.DstPort || t.Seq != u.Seq || t.Ack != u.Ack ||
		t.DataOffset != u.DataOffset || t.Flags != u.Flags || t.Window != u.Window ||
		t.Checksum != u.Checksum || t.Urgent != u.Urgent || len(t.Options) != len(u.Options) ||
		string(t.Payload) != string(u.Payload) {
		return false
	}
	for i := range t.Options {
		if !t.Options[i].Equal(&u.Options[i]) {
			return false
		}
	}
	return true
}
