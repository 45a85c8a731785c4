// Package pcapfile writes pcap files of the packets tcpcraft sends and
// receives: LINKTYPE_RAW (101), each record starting at the IP header
// (IPv4 or IPv6, told apart by the version nibble, as Wireshark and tcpdump
// read it), with nanosecond timestamps. The records are what capture
// delivers and what the injector sends.
//
// Why a package of its own: writing a file format is a job apart from the
// link (capture) that produces the packets; cmd hands the writer to the
// tracer and to send, and neither needs a socket to do so.
//
// What it must not do: open sockets or parse packets (it stores bytes as
// they are; decoding is craft's), or be written to from several
// goroutines at once (see Writer).
package pcapfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// SnapLen is the snap length in the file header, and the longest record
// stored whole: 256 KiB, tcpdump's default, more than any IPv4 packet and
// any IPv6 packet without a jumbo payload (65535 + 40 bytes).
const SnapLen = 256 << 10

// Writer writes a pcap file with pcapgo (LINKTYPE_RAW, nanosecond
// timestamps), buffered.
//
// A Writer is NOT safe for concurrent use: call it from one goroutine
// (the stack's, which sees every segment in and out in order). Close is
// safe to call more than once.
type Writer struct {
	buf    *bufio.Writer
	w      *pcapgo.Writer
	closer io.Closer // the file Create opened; nil for NewWriter
	closed bool
	err    error // first write error; later writes return it
}

// NewWriter writes the pcap file header to w and returns a writer for the
// packets. Output is buffered: call Flush or Close. Close does not close w.
func NewWriter(w io.Writer) (*Writer, error) {
	buf := bufio.NewWriterSize(w, 64<<10)
	pw := &Writer{buf: buf, w: pcapgo.NewWriterNanos(buf)}
	if err := pw.w.WriteFileHeader(SnapLen, layers.LinkTypeRaw); err != nil {
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
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(data), Length: length}
	if err := p.w.WritePacket(ci, data); err != nil {
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
