package capture

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

// pcapSnapLen is the snap length in the file header: any IPv4 packet.
const pcapSnapLen = maxIPv4Packet

// PcapWriter writes a pcap file of raw IPv4 packets (LINKTYPE_RAW, 101:
// each record starts at the IP header, like the frames Capture returns and
// the packets Injector sends) with nanosecond timestamps. Wireshark and
// tshark read it directly.
//
// A PcapWriter is NOT safe for concurrent use: call it from one goroutine
// (the stack's, which sees every segment in and out in order). Close is
// safe to call more than once.
type PcapWriter struct {
	buf    *bufio.Writer
	w      *pcapgo.Writer
	closer io.Closer // the file CreatePcap opened; nil for NewPcapWriter
	closed bool
	err    error // first write error; later writes return it
}

// NewPcapWriter writes the pcap file header to w and returns a writer for
// the packets. Output is buffered: call Flush or Close. Close does not close
// w.
func NewPcapWriter(w io.Writer) (*PcapWriter, error) {
	buf := bufio.NewWriterSize(w, 64<<10)
	pw := &PcapWriter{buf: buf, w: pcapgo.NewWriterNanos(buf)}
	if err := pw.w.WriteFileHeader(pcapSnapLen, layers.LinkTypeRaw); err != nil {
		return nil, fmt.Errorf("writing pcap header: %w", err)
	}
	return pw, nil
}

// CreatePcap creates (or truncates) the file at path and returns a writer
// for it; Close closes the file.
func CreatePcap(path string) (*PcapWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating pcap file: %w", err)
	}
	pw, err := NewPcapWriter(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pw.closer = f
	return pw, nil
}

// WritePacket records one IPv4 packet (header included) sent or received
// at time t.
func (p *PcapWriter) WritePacket(t time.Time, pkt []byte) error {
	return p.write(t, pkt, len(pkt))
}

// WriteFrame records a captured frame with its capture time, keeping its
// original length if it was truncated.
func (p *PcapWriter) WriteFrame(f Frame) error {
	length := f.Length
	if length < len(f.Data) {
		length = len(f.Data)
	}
	return p.write(f.Time, f.Data, length)
}

func (p *PcapWriter) write(t time.Time, data []byte, length int) error {
	if p.closed {
		return errors.New("writing pcap packet: writer is closed")
	}
	if p.err != nil {
		return p.err
	}
	if len(data) > pcapSnapLen {
		// Readers refuse records above the header's snap length.
		data = data[:pcapSnapLen]
	}
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(data), Length: length}
	if err := p.w.WritePacket(ci, data); err != nil {
		p.err = fmt.Errorf("writing pcap packet: %w", err)
		return p.err
	}
	return nil
}

// Flush writes buffered packets to the underlying writer.
func (p *PcapWriter) Flush() error {
	if p.closed {
		return nil
	}
	if err := p.buf.Flush(); err != nil {
		return fmt.Errorf("flushing pcap file: %w", err)
	}
	return nil
}

// Close flushes and, for a writer from CreatePcap, closes the file. Calling
// it again does nothing and returns nil.
func (p *PcapWriter) Close() error {
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
