package craft

import (
	"encoding/binary"
	"fmt"
)

// Option lengths of the kinds with a fixed length (RFC 9293 §3.2, RFC 7323,
// RFC 2018).
const (
	optLenMSS           = 4
	optLenWindowScale   = 3
	optLenSACKPermitted = 2
	optLenTimestamps    = 10
	sackBlockLen        = 8
	// MaxSACKBlocks is the most SACK blocks that fit in the 40 option bytes
	// (RFC 2018 §3: 2 + 8*4 = 34).
	MaxSACKBlocks = 4
)

// String returns the option kind's name as tcpdump prints it ("mss",
// "wscale", "sackOK", "sack", "TS", "nop", "eol") or "unknown-N".
func (k OptionKind) String() string {
	switch k {
	case OptEOL:
		return "eol"
	case OptNOP:
		return "nop"
	case OptMSS:
		return "mss"
	case OptWindowScale:
		return "wscale"
	case OptSACKPermitted:
		return "sackOK"
	case OptSACK:
		return "sack"
	case OptTimestamps:
		return "TS"
	}
	return fmt.Sprintf("unknown-%d", uint8(k))
}

// fixedOptionLen returns the length a known fixed-size kind must have, or 0.
func fixedOptionLen(k OptionKind) int {
	switch k {
	case OptMSS:
		return optLenMSS
	case OptWindowScale:
		return optLenWindowScale
	case OptSACKPermitted:
		return optLenSACKPermitted
	case OptTimestamps:
		return optLenTimestamps
	}
	return 0
}

// ParseTCPOptions parses TCP option bytes (the header bytes from offset 20 to
// the data offset) and appends the options to dst. An option slot being
// reused (dst has capacity beyond its length) gives its SACK block storage
// to a SACK option parsed into it, so steady-state parsing does not
// allocate.
//
// Every byte is accounted for: EOL ends the list and keeps the bytes after
// it in its Data; unknown kinds keep their bytes in Data. A malformed option
// is an *OptionError whose Offset assumes b starts at header offset 20; the
// options before it are returned.
func ParseTCPOptions(dst []Option, b []byte) ([]Option, error) {
	const base = TCPMinHeaderLen
	for i := 0; i < len(b); {
		kind := OptionKind(b[i])
		switch kind {
		case OptEOL:
			// RFC 9293 §3.2: EOL ends the option list; what follows is
			// padding. Keep it so emitting reproduces the bytes.
			var o *Option
			dst, o = nextOption(dst, kind)
			if rest := b[i+1:]; len(rest) > 0 {
				o.Data = rest
			}
			return dst, nil
		case OptNOP:
			dst, _ = nextOption(dst, kind)
			i++
			continue
		}
		if i+1 >= len(b) {
			return dst, &OptionError{Offset: base + i, Kind: kind, Reason: fmt.Sprintf("kind %d has no length byte before the end of the header", kind)}
		}
		n := int(b[i+1])
		if n < 2 {
			return dst, &OptionError{Offset: base + i, Kind: kind, Reason: fmt.Sprintf("length %d is less than 2", n)}
		}
		if i+n > len(b) {
			return dst, &OptionError{Offset: base + i, Kind: kind, Reason: fmt.Sprintf("length %d runs past the end of the header (%d bytes left)", n, len(b)-i)}
		}
		body := b[i+2 : i+n]
		if want := fixedOptionLen(kind); want != 0 && n != want {
			return dst, &OptionError{Offset: base + i, Kind: kind, Reason: fmt.Sprintf("%s option length %d, want %d", kind, n, want)}
		}
		var o *Option
		switch kind {
		case OptMSS:
			dst, o = nextOption(dst, kind)
			o.MSS = binary.BigEndian.Uint16(body)
		case OptWindowScale:
			dst, o = nextOption(dst, kind)
			o.Shift = body[0]
		case OptSACKPermitted:
			dst, _ = nextOption(dst, kind)
		case OptTimestamps:
			dst, o = nextOption(dst, kind)
			o.TSVal = binary.BigEndian.Uint32(body)
			o.TSEcr = binary.BigEndian.Uint32(body[4:])
		case OptSACK:
			// RFC 2018 §3: length 8*n+2. More than 4 blocks cannot fit in a
			// header; refusing them keeps every parse emittable.
			if len(body) == 0 || len(body)%sackBlockLen != 0 || len(body)/sackBlockLen > MaxSACKBlocks {
				return dst, &OptionError{Offset: base + i, Kind: kind, Reason: fmt.Sprintf("sack option length %d, want 2 + 8*n with n from 1 to %d", n, MaxSACKBlocks)}
			}
			var blocks []SACKBlock
			if len(dst) < cap(dst) {
				blocks = dst[:len(dst)+1][len(dst)].Blocks[:0]
			}
			if blocks == nil {
				blocks = make([]SACKBlock, 0, MaxSACKBlocks)
			}
			for j := 0; j < len(body); j += sackBlockLen {
				blocks = append(blocks, SACKBlock{
					Left:  Seq(binary.BigEndian.Uint32(body[j:])),
					Right: Seq(binary.BigEndian.Uint32(body[j+4:])),
				})
			}
			dst, o = nextOption(dst, kind)
			o.Blocks = blocks
		default:
			dst, o = nextOption(dst, kind)
			o.Data = body
		}
		i += n
	}
	return dst, nil
}

// nextOption appends a zero Option of the given kind to dst, reusing a slot
// beyond len(dst) when there is one.
func nextOption(dst []Option, kind OptionKind) ([]Option, *Option) {
	if len(dst) < cap(dst) {
		dst = dst[:len(dst)+1]
	} else {
		dst = append(dst, Option{})
	}
	o := &dst[len(dst)-1]
	*o = Option{Kind: kind}
	return dst, o
}

// Len returns the number of bytes the option takes on the wire. For known
// kinds a non-nil Data is written raw instead of the typed fields (see
// Append).
func (o *Option) Len() (int, error) {
	switch o.Kind {
	case OptEOL:
		return 1 + len(o.Data), nil
	case OptNOP:
		return 1, nil
	}
	if o.Data != nil || fixedOptionLen(o.Kind) == 0 && o.Kind != OptSACK {
		if len(o.Data) > 253 {
			return 0, fmt.Errorf("tcp option %s: %d data bytes do not fit a length byte", o.Kind, len(o.Data))
		}
		return 2 + len(o.Data), nil
	}
	if o.Kind == OptSACK {
		if len(o.Blocks) == 0 || len(o.Blocks) > MaxSACKBlocks {
			return 0, fmt.Errorf("tcp option sack: %d blocks, want 1 to %d", len(o.Blocks), MaxSACKBlocks)
		}
		return 2 + sackBlockLen*len(o.Blocks), nil
	}
	return fixedOptionLen(o.Kind), nil
}

// OptionsLen returns the number of bytes the options take, before padding.
func OptionsLen(opts []Option) (int, error) {
	n := 0
	for i := range opts {
		l, err := opts[i].Len()
		if err != nil {
			return 0, err
		}
		n += l
	}
	return n, nil
}

// Append appends the option's wire bytes to dst. EOL is written as the kind
// byte followed by Data (the padding after it); NOP as one byte; known kinds
// from their typed fields; unknown kinds as kind, length, Data. For a known
// kind other than EOL and NOP, a non-nil Data is written raw (kind,
// 2+len(Data), Data) in place of the typed fields, so a tester can craft a
// malformed option such as an MSS of length 3.
func (o *Option) Append(dst []byte) ([]byte, error) {
	n, err := o.Len()
	if err != nil {
		return dst, err
	}
	switch {
	case o.Kind == OptEOL:
		dst = append(dst, byte(OptEOL))
		return append(dst, o.Data...), nil
	case o.Kind == OptNOP:
		return append(dst, byte(OptNOP)), nil
	case o.Data != nil || fixedOptionLen(o.Kind) == 0 && o.Kind != OptSACK:
		dst = append(dst, byte(o.Kind), byte(n))
		return append(dst, o.Data...), nil
	}
	dst = append(dst, byte(o.Kind), byte(n))
	switch o.Kind {
	case OptMSS:
		dst = binary.BigEndian.AppendUint16(dst, o.MSS)
	case OptWindowScale:
		dst = append(dst, o.Shift)
	case OptTimestamps:
		dst = binary.BigEndian.AppendUint32(dst, o.TSVal)
		dst = binary.BigEndian.AppendUint32(dst, o.TSEcr)
	case OptSACK:
		for _, b := range o.Blocks {
			dst = binary.BigEndian.AppendUint32(dst, uint32(b.Left))
			dst = binary.BigEndian.AppendUint32(dst, uint32(b.Right))
		}
	}
	return dst, nil
}

// AppendOptions appends the wire bytes of opts to dst, without padding.
func AppendOptions(dst []byte, opts []Option) ([]byte, error) {
	start := len(dst)
	for i := range opts {
		var err error
		if dst, err = opts[i].Append(dst); err != nil {
			return dst[:start], fmt.Errorf("option %d: %w", i, err)
		}
	}
	return dst, nil
}

// Clone returns a deep copy of o.
func (o Option) Clone() Option {
	if o.Blocks != nil {
		o.Blocks = append([]SACKBlock{}, o.Blocks...)
	}
	if o.Data != nil {
		o.Data = append([]byte{}, o.Data...)
	}
	return o
}

// Equal reports whether o and p are the same option: same kind, same
// fields, same blocks and data (nil equals empty).
func (o *Option) Equal(p *Option) bool {
	if o.Kind != p.Kind || o.MSS != p.MSS || o.Shift != p.Shift || o.TSVal != p.TSVal ||
		o.TSEcr != p.TSEcr || len(o.Blocks) != len(p.Blocks) || string(o.Data) != string(p.Data) {
		return false
	}
	for i := range o.Blocks {
		if o.Blocks[i] != p.Blocks[i] {
			return false
		}
	}
	return true
}

// FindOption returns the first option of the given kind in opts, or nil.
func FindOption(opts []Option, kind OptionKind) *Option {
	for i := range opts {
		if opts[i].Kind == kind {
			return &opts[i]
		}
	}
	return nil
}

// MSSOption returns an MSS option (RFC 9293 §3.7.1).
func MSSOption(mss uint16) Option { return Option{Kind: OptMSS, MSS: mss} }

// WindowScaleOption returns a window scale option (RFC 7323 §2.2).
func WindowScaleOption(shift uint8) Option { return Option{Kind: OptWindowScale, Shift: shift} }

// SACKPermittedOption returns a SACK-permitted option (RFC 2018 §2).
func SACKPermittedOption() Option { return Option{Kind: OptSACKPermitted} }

// TimestampsOption returns a timestamps option (RFC 7323 §3.2).
func TimestampsOption(val, ecr uint32) Option {
	return Option{Kind: OptTimestamps, TSVal: val, TSEcr: ecr}
}

// SACKOption returns a SACK option with the given blocks (RFC 2018 §3).
func SACKOption(blocks ...SACKBlock) Option { return Option{Kind: OptSACK, Blocks: blocks} }

// NOPOption returns a no-operation option.
func NOPOption() Option { return Option{Kind: OptNOP} }

// AppendLinuxSYNOptions appends to dst the options Linux puts on a SYN, in
// its order: MSS, SACK permitted, timestamps, NOP, window scale (20 bytes;
// see tcp_options_write in net/ipv4/tcp_output.c). A SYN without options
// makes Linux assume an MSS of 536, so a client should send these. For a
// SYN-ACK pass the peer's TSVal as tsEcr.
func AppendLinuxSYNOptions(dst []Option, mss uint16, wscale uint8, tsVal, tsEcr uint32) []Option {
	return append(dst,
		MSSOption(mss),
		SACKPermittedOption(),
		TimestampsOption(tsVal, tsEcr),
		NOPOption(),
		WindowScaleOption(wscale),
	)
}

// LinuxSYNOptions returns the Linux-like SYN option list; see
// AppendLinuxSYNOptions.
func LinuxSYNOptions(mss uint16, wscale uint8, tsVal, tsEcr uint32) []Option {
	return AppendLinuxSYNOptions(make([]Option, 0, 5), mss, wscale, tsVal, tsEcr)
}
