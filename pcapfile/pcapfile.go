// Package pcapfile writes pcap files of the packets tcpcraft sends and
// receives, and reads the pcap and pcapng files users give to decode,
// draw and the other commands that read captures.
//
// Writing: LINKTYPE_RAW (101), each record starting at the IP header
// (IPv4 or IPv6, told apart by the version nibble, as Wireshark and tcpdump
// read it), with nanosecond timestamps. The records are what capture
// delivers and what the injector sends.
//
// Reading: classic pcap (either byte order, microsecond or nanosecond
// magic) and pcapng (sections in either byte order, interfaces with their
// own link types and if_tsresol, Enhanced, Simple and obsolete Packet
// Blocks; other blocks skipped), either gzip-compressed. Each record comes
// with its link type; telling link types apart is craft's.
//
// Why hand-written: the formats are simple, and gopacket's pcapgo, which
// did this before, imports gopacket/layers, whose package initialisation
// (tables of 64 Ki entries, 2.6 MB of metadata whose pages are touched)
// was the largest of the binary and ran on every start, `tcpcraft connect`
// and `--version` included, though only --pcap and decode use files.
// Measured when it went: 0.23 ms of initialisers, and --version's page
// faults 581 -> 492, its binary 17.7 -> 14.9 MB (docs/PERFORMANCE.md, "pcap
// without gopacket"). gopacket stays in the tests, as an independent
// reader and writer to check this one against.
//
// Why a package of its own: a file format is a job apart from the link
// (capture) that produces the packets; cmd hands the writer to the tracer
// and to send, and neither needs a socket to do so.
//
// What it must not do: open sockets or parse packets (it stores and returns
// bytes as they are; decoding is craft's); import packages with costly
// initialisation (gopacket), since every run of tcpcraft pays for them;
// trust a length a file states beyond the bytes it holds and MaxRecord
// (allocations grow only as data arrives); panic on any input; or be used
// from several goroutines at once (see Writer and Reader).
package pcapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// SnapLen is the snap length in the file header, and the longest record
// stored whole: 256 KiB, tcpdump's default, more than any IPv4 packet and
// any IPv6 packet without a jumbo payload (65535 + 40 bytes).
const SnapLen = 256 << 10

// Writer writes a classic pcap file (pcap-savefile(5): LINKTYPE_RAW,
// nanosecond magic, little-endian), buffered.
//
// A Writer is NOT safe for concurrent use: call it from one goroutine
// (the stack's, which sees every segment in and out in order). Close is
// safe to call more than once.
type Writer struct {
	buf    *bufio.Writer
	hdr    [16]byte
	closer io.Closer // the file Create opened; nil for NewWriter
	closed bool
	err    error // first write error; later writes return it
}

// NewWriter writes the pcap file header to w and returns a writer for the
// packets. Output is buffered: call Flush or Close. Close does not close w.
func NewWriter(w io.Writer) (*Writer, error) {
	pw := &Writer{buf: bufio.NewWriterSize(w, 64<<10)}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], pcapNano)
	binary.LittleEndian.PutUint16(h[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	// h[8:16]: the time zone and accuracy fields, 0 as writers must leave them.
	binary.LittleEndian.PutUint32(h[16:], SnapLen)
	binary.LittleEndian.PutUint32(h[20:], uint32(LinkTypeRaw))
	if _, err := pw.buf.Write(h[:]); err != nil {
		return nil, fmt.Errorf("writing pcap header: %w", err)
	}
	return pw, nil
}

// Create creates (or truncates) the file at path and returns a writer for
// it; Close closes the file.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating pcap file: %w", err)
	}
	pw, err := NewWriter(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pw.closer = f
	return pw, nil
}

// WritePacket records one IP packet (header included) sent or received at
// time t.
func (p *Writer) WritePacket(t time.Time, pkt []byte) error {
	return p.write(t, pkt, len(pkt))
}

// WriteTruncated records the first bytes of a packet that was length
// bytes long on the wire (a captured frame cut to its snap length), with
// its capture time.
func (p *Writer) WriteTruncated(t time.Time, data []byte, length int) error {
	return p.write(t, data, max(length, len(data)))
}

func (p *Writer) write(t time.Time, data []byte, length int) error {
	if p.closed {
		return errors.New("writing pcap packet: writer is closed")
	}
	if p.err != nil {
		return p.err
	}
	if len(data) > SnapLen {
		// Readers refuse records above the header's snap length.
		data = data[:SnapLen]
	}
	// Seconds are unsigned 32-bit (valid to 2106); nanoseconds below 1e9.
	binary.LittleEndian.PutUint32(p.hdr[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(p.hdr[4:], uint32(t.Nanosecond()))
	binary.LittleEndian.PutUint32(p.hdr[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(p.hdr[12:], uint32(min(length, 1<<32-1)))
	if _, err := p.buf.Write(p.hdr[:]); err != nil {
		p.err = fmt.Errorf("writing pcap packet: %w", err)
		return p.err
	}
	if _, err := p.buf.Write(data); err != nil {
		p.err = fmt.Errorf("writing pcap packet: %w", err)
		return p.err
	}
	return nil
}

// Flush writes buffered packets to the underlying writer.
func (p *Writer) Flush() error {
	if p.closed {
		return nil
	}
	if err := p.buf.Flush(); err != nil {
		return fmt.Errorf("flushing pcap file: %w", err)
	}
	return nil
}

// Close flushes and, for a writer from Create, closes the file. Calling it
// again does nothing and returns nil.
func (p *Writer) Close() error {
	if p == nil || p.closed {
		return nil
	}
	err := p.Flush()
	p.closed = true
	if p.closer != nil {
		if cerr := p.closer.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing pcap file: %w", cerr)
		}
	}
	return err
}
