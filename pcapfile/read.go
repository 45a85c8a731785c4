package pcapfile

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// Format is the container format of a capture file.
type Format int

const (
	// FormatPcap is the classic libpcap file (pcap-savefile(5)).
	FormatPcap Format = iota + 1
	// FormatPcapng is the pcapng file (draft-ietf-opsawg-pcapng).
	FormatPcapng
)

// LinkType is a LINKTYPE_ number (https://www.tcpdump.org/linktypes.html):
// what framing surrounds the bytes of a record. craft.LinkType has the
// same values.
type LinkType uint32

// LinkTypeRaw is LINKTYPE_RAW: a bare IPv4 or IPv6 packet.
const LinkTypeRaw LinkType = 101

// CaptureInfo describes one record.
type CaptureInfo struct {
	// Timestamp is the capture time, in UTC; zero for a pcapng Simple
	// Packet Block, which has none.
	Timestamp time.Time
	// CaptureLength is the number of bytes stored (len of the data).
	CaptureLength int
	// Length is the packet's length on the wire; more than CaptureLength
	// when the capture cut it short.
	Length int
	// LinkType is the framing of the data: the file's, or in pcapng the
	// record's interface's.
	LinkType LinkType
	// Interface is the pcapng interface index within its section (0 for
	// classic pcap).
	Interface int
}

// Limits on what a file may make the reader allocate. A length a file
// states is believed only as far as the bytes behind it go (see fill); these
// cap even that.
const (
	// minRecordLimit is the longest classic pcap record accepted whatever
	// the file's snap length: 256 KiB, libpcap's MAXIMUM_SNAPLEN and
	// gopacket's limit, which files with a snap length of 0 or 65535 and
	// longer (GSO) records rely on.
	minRecordLimit = 256 << 10
	// MaxRecord is the longest record, and the longest pcapng block, the
	// reader accepts: 16 MiB, 64 times the longest snap length libpcap
	// gives TCP/IP link types.
	MaxRecord = 16 << 20
)

// Block types and option codes of pcapng (draft-ietf-opsawg-pcapng).
const (
	ngSectionHeader    = 0x0a0d0d0a // §4.1; the same in both byte orders
	ngInterfaceDesc    = 1          // §4.2
	ngObsoletePacket   = 2          // Appendix A (Packet Block)
	ngSimplePacket     = 3          // §4.4
	ngEnhancedPacket   = 6          // §4.3
	ngByteOrderMagic   = 0x1a2b3c4d // §4.1
	ngOptEnd           = 0
	ngOptIfTsresol     = 9  // §4.2: units of a timestamp, 10^-n or 2^-n s
	ngOptIfTsoffset    = 14 // §4.2: seconds added to every timestamp
	ngMinBlock         = 12 // type, length, trailing length
	ngMinSectionHeader = 28
)

// Classic pcap magic numbers as read little-endian (pcap-savefile(5)).
const (
	pcapMicro        = 0xa1b2c3d4
	pcapNano         = 0xa1b23c4d
	pcapMicroSwapped = 0xd4c3b2a1
	pcapNanoSwapped  = 0x4d3cb2a1
)

// ngInterface is what a pcapng Interface Description Block says that
// records need.
type ngInterface struct {
	link    LinkType
	snapLen uint32
	// units is the timestamp's units per second (10^n or 2^n); offset the
	// seconds to add (if_tsoffset).
	units  uint64
	offset int64
}

// Reader reads the records of a classic pcap or a pcapng file (gzipped or
// not), in file order.
//
// The data ReadPacket returns is the reader's own buffer: valid until the
// next call. A Reader is not safe for concurrent use. After an error (io.EOF
// included) every later call returns it again: after a malformed record the
// position in the file is lost.
type Reader struct {
	r      *bufio.Reader
	format Format
	err    error  // sticky
	buf    []byte // the current record (pcap) or block body (pcapng)
	hdr    [24]byte

	// The byte order: the classic file's, or the current pcapng section's.
	order binary.ByteOrder

	// Classic pcap.
	link      LinkType
	snapLen   uint32
	fracScale int64 // nanoseconds per unit of the fraction: 1000 or 1
	maxRecord int

	// pcapng: the current section's interfaces.
	ifaces []ngInterface
	blocks int // blocks read, for error messages
	// skipping is set while in a section of a version this reader does
	// not know; skipped names the first such version, packets counts the
	// records returned, so that a file of nothing else can say why it
	// has no packets.
	skipping bool
	skipped  string
	packets  int
}

// NewReader reads the file header of a classic pcap or pcapng file (either
// possibly gzip-compressed) from r and returns a reader of its records.
// The error says which format the file seemed to be, in the words decode
// shows users ("not a pcap or pcapng file: ...", "not a readable pcapng
// file: ...").
func NewReader(r io.Reader) (*Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	magic, err := br.Peek(4)
	if len(magic) == 4 && magic[0] == 0x1f && magic[1] == 0x8b {
		// RFC 1952 §2.3.1: ID1, ID2. gopacket read gzipped captures
		// (capture.pcap.gz) and so did decode.
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			return nil, fmt.Errorf("not a pcap or pcapng file: gzip: %w", zerr)
		}
		br = bufio.NewReaderSize(zr, 64<<10)
		magic, err = br.Peek(4)
	}
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("not a pcap or pcapng file: only %d bytes", len(magic))
		}
		return nil, fmt.Errorf("not a pcap or pcapng file: %w", err)
	}
	p := &Reader{r: br}
	if binary.BigEndian.Uint32(magic) == ngSectionHeader {
		p.format = FormatPcapng
		if err := p.readSectionHeader(); err != nil {
			return nil, fmt.Errorf("not a readable pcapng file: %w", err)
		}
		return p, nil
	}
	p.format = FormatPcap
	if err := p.readPcapHeader(); err != nil {
		return nil, fmt.Errorf("not a pcap or pcapng file: %w", err)
	}
	return p, nil
}

// Format reports whether the file is classic pcap or pcapng.
func (p *Reader) Format() Format { return p.format }

// ReadPacket returns the next record's bytes and what the file says of it,
// or io.EOF after the last record. A file that ends inside a record gives
// an error that wraps io.ErrUnexpectedEOF. The bytes are valid until the
// next call (the reader reuses its buffer: no allocation per record).
func (p *Reader) ReadPacket() ([]byte, CaptureInfo, error) {
	if p.err != nil {
		return nil, CaptureInfo{}, p.err
	}
	var data []byte
	var ci CaptureInfo
	var err error
	if p.format == FormatPcapng {
		data, ci, err = p.readNgPacket()
		if err == io.EOF && p.packets == 0 && p.skipped != "" {
			err = fmt.Errorf("no section of a version this reader knows (1.0), only %s", p.skipped)
		}
	} else {
		data, ci, err = p.readPcapRecord()
	}
	if err != nil {
		p.err = err
		return nil, CaptureInfo{}, err
	}
	p.packets++
	return data, ci, nil
}

// readPcapHeader reads the 24-byte file header of pcap-savefile(5).
func (p *Reader) readPcapHeader() error {
	h := p.hdr[:24]
	if _, err := io.ReadFull(p.r, h); err != nil {
		return fmt.Errorf("file header: %w", eofIsUnexpected(err))
	}
	switch binary.LittleEndian.Uint32(h) {
	case pcapMicro:
		p.order, p.fracScale = binary.LittleEndian, 1000
	case pcapNano:
		p.order, p.fracScale = binary.LittleEndian, 1
	case pcapMicroSwapped:
		p.order, p.fracScale = binary.BigEndian, 1000
	case pcapNanoSwapped:
		p.order, p.fracScale = binary.BigEndian, 1
	default:
		return fmt.Errorf("unknown magic number %#08x", binary.LittleEndian.Uint32(h))
	}
	// Version 2.4 is current; 2.3 differs only in how some old writers
	// filled the header's unused fields.
	if major, minor := p.order.Uint16(h[4:]), p.order.Uint16(h[6:]); major != 2 || (minor != 4 && minor != 3) {
		return fmt.Errorf("unsupported pcap version %d.%d (want 2.4)", major, minor)
	}
	p.snapLen = p.order.Uint32(h[16:])
	// The link type is the low 16 bits; the high ones say whether frames
	// end with an FCS, which craft's parsers ignore after the IP packet.
	p.link = LinkType(p.order.Uint32(h[20:]) & 0xffff)
	p.maxRecord = minRecordLimit
	if p.snapLen > minRecordLimit {
		p.maxRecord = int(min(p.snapLen, MaxRecord))
	}
	return nil
}

// readPcapRecord reads one record: a 16-byte header (seconds, fraction,
// captured and original length) and the captured bytes.
func (p *Reader) readPcapRecord() ([]byte, CaptureInfo, error) {
	h := p.hdr[:16]
	if _, err := io.ReadFull(p.r, h); err != nil {
		return nil, CaptureInfo{}, err // io.EOF between records ends the file
	}
	caplen, length := p.order.Uint32(h[8:]), p.order.Uint32(h[12:])
	if int64(caplen) > int64(p.maxRecord) {
		if caplen > p.snapLen {
			return nil, CaptureInfo{}, fmt.Errorf("capture length exceeds snap length: %d > %d", caplen, p.snapLen)
		}
		return nil, CaptureInfo{}, fmt.Errorf("capture length %d exceeds the %d-byte maximum record", caplen, MaxRecord)
	}
	if caplen > length {
		return nil, CaptureInfo{}, fmt.Errorf("capture length exceeds original packet length: %d > %d", caplen, length)
	}
	data, err := p.fill(int(caplen))
	if err != nil {
		return nil, CaptureInfo{}, eofIsUnexpected(err)
	}
	// Seconds are unsigned (pcap-savefile(5)); the fraction is in µs or ns.
	ts := time.Unix(int64(p.order.Uint32(h[0:])), int64(p.order.Uint32(h[4:]))*p.fracScale).UTC()
	return data, CaptureInfo{Timestamp: ts, CaptureLength: int(caplen), Length: int(length), LinkType: p.link}, nil
}

// fill reads n bytes into the reader's buffer. The buffer grows only as
// the bytes arrive, in steps no larger than what has been read so far, so a
// file claiming a long record but ending early never costs more than twice
// what it holds.
func (p *Reader) fill(n int) ([]byte, error) {
	if n <= cap(p.buf) {
		b := p.buf[:n]
		_, err := io.ReadFull(p.r, b)
		return b, err
	}
	b := p.buf[:0]
	for len(b) < n {
		step := min(n-len(b), max(len(b), 64<<10))
		if cap(b)-len(b) < step {
			nb := make([]byte, len(b), len(b)+step)
			copy(nb, b)
			b = nb
		}
		m, err := io.ReadFull(p.r, b[len(b):len(b)+step])
		b = b[:len(b)+m]
		if err != nil {
			p.buf = b
			if len(b) > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	p.buf = b
	return b, nil
}

// eofIsUnexpected turns io.EOF into io.ErrUnexpectedEOF: where something
// must follow, the end of the file is a truncation.
func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readNgPacket reads blocks up to the next one holding a packet: Enhanced,
// Simple or (obsolete) Packet Blocks. Section Header and Interface
// Description Blocks update the state the packets need; every other block
// (statistics, name resolution, secrets, custom, unknown) is skipped.
func (p *Reader) readNgPacket() ([]byte, CaptureInfo, error) {
	for {
		typ, err := p.peekBlockType()
		if err != nil {
			return nil, CaptureInfo{}, err
		}
		switch {
		case typ == ngSectionHeader:
			if err := p.readSectionHeader(); err != nil {
				return nil, CaptureInfo{}, err
			}
		case p.skipping:
			if err := p.skipBlock(); err != nil {
				return nil, CaptureInfo{}, err
			}
		case typ == ngInterfaceDesc || typ == ngEnhancedPacket || typ == ngSimplePacket || typ == ngObsoletePacket:
			body, err := p.readBlock()
			if err != nil {
				return nil, CaptureInfo{}, err
			}
			if typ == ngInterfaceDesc {
				if err := p.addInterface(body); err != nil {
					return nil, CaptureInfo{}, p.blockError("interface description block", err)
				}
				continue
			}
			data, ci, err := p.packet(typ, body)
			if err != nil {
				return nil, CaptureInfo{}, p.blockError(ngBlockName(typ), err)
			}
			return data, ci, nil
		default:
			if err := p.skipBlock(); err != nil {
				return nil, CaptureInfo{}, err
			}
		}
	}
}

func ngBlockName(typ uint32) string {
	switch typ {
	case ngEnhancedPacket:
		return "enhanced packet block"
	case ngSimplePacket:
		return "simple packet block"
	case ngObsoletePacket:
		return "packet block"
	}
	return fmt.Sprintf("block type %#x", typ)
}

func (p *Reader) blockError(what string, err error) error {
	return fmt.Errorf("pcapng block %d (%s): %w", p.blocks, what, err)
}

// peekBlockType returns the type of the next block, io.EOF at the end of
// the file (only between blocks).
func (p *Reader) peekBlockType() (uint32, error) {
	b, err := p.r.Peek(4)
	if err != nil {
		if len(b) == 0 && err == io.EOF {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("pcapng block %d: %w", p.blocks+1, eofIsUnexpected(err))
	}
	return p.order.Uint32(b), nil
}

// blockHeader reads a block's type and total length and checks the
// length: at least the minimum, a multiple of 4 (§3.1), at most MaxRecord.
// It returns the length of the body (the total less type, length and the
// trailing copy of the length).
func (p *Reader) blockHeader(min uint32) (int, error) {
	p.blocks++
	h := p.hdr[:8]
	if _, err := io.ReadFull(p.r, h); err != nil {
		return 0, fmt.Errorf("pcapng block %d: %w", p.blocks, eofIsUnexpected(err))
	}
	total := p.order.Uint32(h[4:])
	switch {
	case total < min:
		return 0, fmt.Errorf("pcapng block %d: total length %d, below the %d bytes of its type", p.blocks, total, min)
	case total%4 != 0:
		return 0, fmt.Errorf("pcapng block %d: total length %d is not a multiple of 4", p.blocks, total)
	case total > MaxRecord:
		return 0, fmt.Errorf("pcapng block %d: total length %d exceeds the %d-byte maximum", p.blocks, total, MaxRecord)
	}
	return int(total) - ngMinBlock, nil
}

// blockTrailer reads the trailing total length and checks it against the
// leading one (§3.1): a mismatch means the lengths cannot be trusted.
func (p *Reader) blockTrailer(bodyLen int) error {
	t := p.hdr[8:12]
	if _, err := io.ReadFull(p.r, t); err != nil {
		return fmt.Errorf("pcapng block %d: %w", p.blocks, eofIsUnexpected(err))
	}
	if got, want := p.order.Uint32(t), uint32(bodyLen+ngMinBlock); got != want {
		return fmt.Errorf("pcapng block %d: trailing total length %d differs from the leading %d", p.blocks, got, want)
	}
	return nil
}

// readBlock reads a whole block (other than a Section Header Block) and
// returns its body, in the reader's buffer.
func (p *Reader) readBlock() ([]byte, error) {
	n, err := p.blockHeader(ngMinBlock)
	if err != nil {
		return nil, err
	}
	body, err := p.fill(n)
	if err != nil {
		return nil, fmt.Errorf("pcapng block %d: %w", p.blocks, eofIsUnexpected(err))
	}
	if err := p.blockTrailer(n); err != nil {
		return nil, err
	}
	return body, nil
}

// skipBlock passes over a block without keeping its body.
func (p *Reader) skipBlock() error {
	n, err := p.blockHeader(ngMinBlock)
	if err != nil {
		return err
	}
	if _, err := p.r.Discard(n); err != nil {
		return fmt.Errorf("pcapng block %d: %w", p.blocks, eofIsUnexpected(err))
	}
	return p.blockTrailer(n)
}

// readSectionHeader reads a Section Header Block (§4.1), which sets the
// byte order of every block up to the next one and starts a new list of
// interfaces. A section of another version is skipped to the next Section
// Header Block, as §3.4 requires of a reader that cannot read it; its
// blocks keep the general structure (§3.1).
func (p *Reader) readSectionHeader() error {
	p.blocks++
	h := p.hdr[:12]
	if _, err := io.ReadFull(p.r, h); err != nil {
		return fmt.Errorf("pcapng block %d (section header): %w", p.blocks, eofIsUnexpected(err))
	}
	switch {
	case binary.LittleEndian.Uint32(h[8:]) == ngByteOrderMagic:
		p.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[8:]) == ngByteOrderMagic:
		p.order = binary.BigEndian
	default:
		return fmt.Errorf("pcapng block %d (section header): byte-order magic %#08x, want 0x1a2b3c4d in either byte order", p.blocks, binary.BigEndian.Uint32(h[8:]))
	}
	total := p.order.Uint32(h[4:])
	switch {
	case total < ngMinSectionHeader:
		return fmt.Errorf("pcapng block %d (section header): total length %d, below the minimum %d", p.blocks, total, ngMinSectionHeader)
	case total%4 != 0:
		return fmt.Errorf("pcapng block %d (section header): total length %d is not a multiple of 4", p.blocks, total)
	case total > MaxRecord:
		return fmt.Errorf("pcapng block %d (section header): total length %d exceeds the %d-byte maximum", p.blocks, total, MaxRecord)
	}
	// The byte-order magic is read; the rest of the body: version, section
	// length, options (none needed).
	n := int(total) - ngMinBlock - 4
	body, err := p.fill(n)
	if err != nil {
		return fmt.Errorf("pcapng block %d (section header): %w", p.blocks, eofIsUnexpected(err))
	}
	major, minor := p.order.Uint16(body), p.order.Uint16(body[2:])
	if err := p.blockTrailer(n + 4); err != nil {
		return err
	}
	p.ifaces = p.ifaces[:0]
	// Version 1.0; 1.2 was written by old tools for the same format.
	p.skipping = major != 1 || (minor != 0 && minor != 2)
	if p.skipping && p.skipped == "" {
		p.skipped = fmt.Sprintf("version %d.%d (block %d)", major, minor, p.blocks)
	}
	return nil
}

// addInterface reads an Interface Description Block's body (§4.2): link
// type, snap length, and the options that change timestamps.
func (p *Reader) addInterface(body []byte) error {
	if len(body) < 8 {
		return fmt.Errorf("body of %d bytes, want at least 8", len(body))
	}
	in := ngInterface{link: LinkType(p.order.Uint16(body)), snapLen: p.order.Uint32(body[4:]), units: 1e6}
	opts := body[8:]
	for len(opts) > 0 {
		if len(opts) < 4 {
			return fmt.Errorf("%d bytes left, too few for an option header", len(opts))
		}
		code, n := p.order.Uint16(opts), int(p.order.Uint16(opts[2:]))
		if code == ngOptEnd {
			break
		}
		padded := (n + 3) &^ 3
		if 4+padded > len(opts) {
			return fmt.Errorf("option %d of %d bytes runs past the end of the block", code, n)
		}
		v := opts[4 : 4+n]
		opts = opts[4+padded:]
		switch code {
		case ngOptIfTsresol:
			if n != 1 {
				return fmt.Errorf("if_tsresol of %d bytes, want 1", n)
			}
			units, err := tsresolUnits(v[0])
			if err != nil {
				return err
			}
			in.units = units
		case ngOptIfTsoffset:
			if n != 8 {
				return fmt.Errorf("if_tsoffset of %d bytes, want 8", n)
			}
			in.offset = int64(p.order.Uint64(v))
		}
	}
	p.ifaces = append(p.ifaces, in)
	return nil
}

// tsresolUnits returns the units per second an if_tsresol value names:
// the high bit clear, 10^-v seconds; set, 2^-(v&0x7f). Units must fit in 64
// bits.
func tsresolUnits(v byte) (uint64, error) {
	if v&0x80 != 0 {
		e := v & 0x7f
		if e > 63 {
			return 0, fmt.Errorf("if_tsresol 2^-%d: finer than 2^-63 s is not supported", e)
		}
		return 1 << e, nil
	}
	if v > 19 {
		return 0, fmt.Errorf("if_tsresol 10^-%d: finer than 10^-19 s is not supported", v)
	}
	u := uint64(1)
	for range v {
		u *= 10
	}
	return u, nil
}

// packet decodes a packet block's body into its data (a slice of body)
// and capture info.
func (p *Reader) packet(typ uint32, body []byte) ([]byte, CaptureInfo, error) {
	if typ == ngSimplePacket {
		// §4.4: original length, then the data; the interface is the
		// section's first, and there is no timestamp. The captured length
		// is the smallest of the original length, the interface's snap
		// length and what the block holds.
		if len(p.ifaces) == 0 {
			return nil, CaptureInfo{}, errors.New("no interface description block before it in this section")
		}
		if len(body) < 4 {
			return nil, CaptureInfo{}, fmt.Errorf("body of %d bytes, want at least 4", len(body))
		}
		in := p.ifaces[0]
		length := p.order.Uint32(body)
		caplen := min(uint64(length), uint64(len(body)-4))
		if in.snapLen != 0 {
			caplen = min(caplen, uint64(in.snapLen))
		}
		return body[4 : 4+caplen], CaptureInfo{CaptureLength: int(caplen), Length: int(length), LinkType: in.link}, nil
	}
	// §4.3 (Enhanced) and Appendix A (Packet Block, whose 32-bit interface
	// field is a 16-bit interface and a 16-bit drop count): interface,
	// timestamp high and low, captured and original length, data padded
	// to 32 bits, options (ignored).
	if len(body) < 20 {
		return nil, CaptureInfo{}, fmt.Errorf("body of %d bytes, want at least 20", len(body))
	}
	var iface uint32
	if typ == ngObsoletePacket {
		iface = uint32(p.order.Uint16(body))
	} else {
		iface = p.order.Uint32(body)
	}
	if uint64(iface) >= uint64(len(p.ifaces)) {
		return nil, CaptureInfo{}, fmt.Errorf("interface %d, but the section describes %d", iface, len(p.ifaces))
	}
	in := p.ifaces[iface]
	ts := uint64(p.order.Uint32(body[4:]))<<32 | uint64(p.order.Uint32(body[8:]))
	caplen, length := p.order.Uint32(body[12:]), p.order.Uint32(body[16:])
	if (uint64(caplen)+3)&^3 > uint64(len(body)-20) {
		return nil, CaptureInfo{}, fmt.Errorf("captured length %d runs past the end of the block (%d bytes of data and options)", caplen, len(body)-20)
	}
	ci := CaptureInfo{
		Timestamp:     in.time(ts),
		CaptureLength: int(caplen),
		Length:        int(length),
		LinkType:      in.link,
		Interface:     int(iface),
	}
	return body[20 : 20+caplen], ci, nil
}

// time converts a timestamp in the interface's units to a time: seconds
// and the fraction scaled to nanoseconds, truncated, plus if_tsoffset.
func (in *ngInterface) time(ts uint64) time.Time {
	sec, frac := ts/in.units, ts%in.units
	var nsec uint64
	if in.units <= 1e9 && 1e9%in.units == 0 {
		nsec = frac * (1e9 / in.units)
	} else {
		// frac < units, so frac*1e9/units < 1e9 and the 128-bit
		// division cannot overflow.
		hi, lo := bits.Mul64(frac, 1e9)
		nsec, _ = bits.Div64(hi, lo, in.units)
	}
	return time.Unix(int64(sec)+in.offset, int64(nsec)).UTC()
}
