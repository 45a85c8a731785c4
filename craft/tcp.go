package craft

// TCP header flags as they sit in bytes 12-13 of the header (RFC 9293 §3.1,
// RFC 3168 for ECE/CWR, RFC 3540 for NS, now "AE" in RFC 9768). The three
// reserved bits above NS are kept too, so a crafted header round-trips
// exactly.
type Flags uint16

const (
	FlagFIN Flags = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
	FlagNS
	FlagReserved1 // bit 9: the lowest reserved bit
	FlagReserved2
	FlagReserved3

	// FlagsMask covers every bit that Flags may hold.
	FlagsMask Flags = 0x0fff
)

// Has reports whether every flag in m is set.
func (f Flags) Has(m Flags) bool { return f&m == m }

// TCP is a parsed, validated TCP segment (smoltcp's "Repr" idea): plain
// fields that can be inspected and changed, emitted back to bytes by Emit.
type TCP struct {
	SrcPort, DstPort uint16
	Seq, Ack         Seq
	// DataOffset is the header length in 32-bit words. On Emit, zero means
	// "compute from the options"; a non-zero value is written as given, so a
	// tester can craft a lying header.
	DataOffset uint8
	Flags      Flags
	Window     uint16
	// Checksum as found on the wire after Parse. On Emit it is computed
	// unless the caller asks for it to be kept (see EmitOptions).
	Checksum uint16
	Urgent   uint16
	Options  []Option
	Payload  []byte
}

// OptionKind is the kind byte of a TCP option (IANA "TCP Option Kind Numbers").
type OptionKind uint8

const (
	OptEOL           OptionKind = 0 // RFC 9293 §3.2
	OptNOP           OptionKind = 1 // RFC 9293 §3.2
	OptMSS           OptionKind = 2 // RFC 9293 §3.2, §3.7.1
	OptWindowScale   OptionKind = 3 // RFC 7323 §2
	OptSACKPermitted OptionKind = 4 // RFC 2018 §2
	OptSACK          OptionKind = 5 // RFC 2018 §3
	OptTimestamps    OptionKind = 8 // RFC 7323 §3

	// Kinds this package keeps as raw Data; the grammar writes them by
	// packetdrill's names (md5, FO, FOEXP).
	OptMD5          OptionKind = 19  // RFC 2385
	OptFastOpen     OptionKind = 34  // RFC 7413
	OptExperimental OptionKind = 254 // RFC 6994
)

// SACKBlock is one block of a SACK option: the bytes [Left, Right) were
// received (RFC 2018 §3).
type SACKBlock struct {
	Left, Right Seq
}

// Option is one TCP option. Only the fields that belong to Kind are used.
type Option struct {
	Kind OptionKind
	// MSS for OptMSS.
	MSS uint16
	// Shift for OptWindowScale.
	Shift uint8
	// Blocks for OptSACK (1 to 4).
	Blocks []SACKBlock
	// TSVal and TSEcr for OptTimestamps.
	TSVal, TSEcr uint32
	// Data holds the option's bytes after kind and length for kinds this
	// package does not know. For OptEOL it holds the bytes that followed the
	// EOL up to the end of the header (padding), so parsing and emitting
	// round-trip exactly.
	Data []byte
}
