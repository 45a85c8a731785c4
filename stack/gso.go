package stack

import (
	"net/netip"
	"slices"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// GSOLink is a Link that can also send a TCP super-segment for the kernel
// to cut into mss-byte segments (capture.GSOSender). A Stack whose Link
// has it coalesces the in-order data segments of one flush into
// super-segments; the first failure switches this off for good and the
// segments go out one by one, as with any Link.
//
// Why coalesce here and not in fsm: fsm produces exactly the segments TCP
// would put on the wire (MSS-sized, the unit of its accounting); merging
// consecutive ones that differ only in sequence number is a property of the
// link (TSO/GSO), the same split Linux makes between tcp_write_xmit and
// the device.
type GSOLink interface {
	Link
	// SendGSO sends the IPv4 or IPv6 packet made of hdr (its headers) and the
	// payload pieces, without copying them first. With mss > 0 and a
	// payload longer than mss it is a super-segment the link cuts into
	// segments of mss payload bytes (and checksums itself); otherwise it
	// is sent as it is.
	SendGSO(hdr []byte, payload [][]byte, mss int) error
}

// maxSuperPayload keeps a super-segment with the largest headers (60 + 60
// bytes) inside the 65535-byte IPv4 total length (and, with IPv6's 40 and
// TCP's 60, inside IPv6's 65535-byte payload length).
const maxSuperPayload = 65535 - 120

// sendSegments sends s.segBuf for c, coalescing where it can. Called with
// s.mu held. Through a GSOLink every data segment goes out by SendGSO, its
// payload straight from fsm's send buffer (fsm.Config.ReuseOutput lends
// it until the next call into the machine, and nothing calls it before
// the send returns); the first failure turns that off for good and
// segments go out one by one through Link.Send.
func (s *Stack) sendSegments(c *Conn, now time.Time) {
	gl, ok := s.link.(GSOLink)
	ok = ok && !s.gsoOff
	segs := s.segBuf
	src, dst := c.local.Addr(), c.remote.Addr()
	for i := 0; i < len(segs); {
		j := i + 1
		if ok {
			for j < len(segs) && mergeable(&segs[i], &segs[j-1], &segs[j]) {
				j++
			}
			if j-i > 1 || len(segs[i].Payload) > 0 {
				if s.sendVector(gl, src, dst, segs[i:j], now) {
					i = j
					continue
				}
				s.gsoOff, ok = true, false
			}
		}
		for k := i; k < j; k++ {
			s.send(src, dst, &segs[k], now)
		}
		i = j
	}
}

// mergeable reports whether next may join the super-segment that starts
// with first and ends (so far) with last: plain data segments (ACK, maybe
// PSH), contiguous, every one but the final one exactly as long as the
// first (the kernel cuts at that size), identical acknowledgement, window
// and options (timestamps are equal within one flush), and the whole
// within one IPv4 packet.
func mergeable(first, last, next *craft.TCP) bool {
	const plain = craft.FlagACK | craft.FlagPSH
	mss := len(first.Payload)
	if mss == 0 || len(last.Payload) != mss || len(next.Payload) == 0 || len(next.Payload) > mss {
		return false
	}
	if first.Flags&^plain != 0 || next.Flags&^plain != 0 || !next.Flags.Has(craft.FlagACK) {
		return false
	}
	if next.Seq != last.Seq.Add(craft.Size(len(last.Payload))) || next.Ack != first.Ack || next.Window != first.Window || next.Urgent != 0 || first.Urgent != 0 {
		return false
	}
	if int(next.Seq.Diff(first.Seq))+len(next.Payload) > maxSuperPayload {
		return false
	}
	return sameOptions(first.Options, next.Options)
}

func sameOptions(a, b []craft.Option) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true // fsm shares one options slice across a burst
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Kind != y.Kind || x.MSS != y.MSS || x.Shift != y.Shift || x.TSVal != y.TSVal || x.TSEcr != y.TSEcr ||
			len(x.Blocks) != len(y.Blocks) || string(x.Data) != string(y.Data) {
			return false
		}
		for k := range x.Blocks {
			if x.Blocks[k] != y.Blocks[k] {
				return false
			}
		}
	}
	return true
}

// sendVector sends segs, consecutive and mergeable, as one packet through
// gl: a super-segment when there are several, else the one segment. Only
// the headers are built; the payloads are handed over where they lie
// (pieces that are adjacent in memory, as consecutive ones from fsm's send
// buffer are, become one). It reports false if the link refused (the
// caller falls back).
func (s *Stack) sendVector(gl GSOLink, src, dst netip.Addr, segs []craft.TCP, now time.Time) bool {
	super := segs[0]
	super.Payload = nil
	s.pieces = s.pieces[:0]
	for k := range segs {
		super.Flags |= segs[k].Flags & craft.FlagPSH
		s.pieces = appendPiece(s.pieces, segs[k].Payload)
	}
	id := s.ipID + 1
	if id == 0 {
		id = 1
	}
	mss := 0
	if len(segs) > 1 {
		mss = len(segs[0].Payload)
	}
	// A super-segment's checksum is the kernel's to compute per segment
	// (tcp_gso_segment); a lone segment goes out as built, so it needs
	// one. A traced packet has a true one either way, for pcap readers,
	// unless the trace shows only headers (TraceHeadersOnly).
	opts := craft.BuildOptions{KeepTCPChecksum: mss > 0 && (!s.traceSegments() || s.cfg.TraceHeadersOnly)}
	var hdr []byte
	var err error
	if dst.Is4() {
		ip := craft.IPv4{TTL: s.cfg.TTL, ID: id, DontFragment: true, Protocol: craft.ProtocolTCP, Src: src, Dst: dst}
		hdr, err = craft.AppendIPv4TCPHeaders(s.pktBuf[:0], &ip, &super, s.pieces, opts)
	} else {
		ip := s.ipv6Header(src, dst, &super)
		hdr, err = craft.AppendIPv6TCPHeaders(s.pktBuf[:0], &ip, &super, s.pieces, opts)
	}
	if err != nil {
		return false
	}
	s.pktBuf = hdr[:0]
	if err := gl.SendGSO(hdr, s.pieces, mss); err != nil {
		// Not worth a line in the trace: nothing was sent, the
		// segments go out one by one instead, and nothing is lost.
		return false
	}
	if dst.Is4() {
		s.ipID = id + uint16(len(segs)) - 1 // the kernel numbers the segments on
		if s.ipID == 0 {
			s.ipID = 1
		}
	}
	if s.traceSegments() {
		// The trace shows the packet handed to the link, so it needs
		// the bytes in one piece (only traced runs pay for the copy).
		s.tracePkt = append(s.tracePkt[:0], hdr...)
		if s.cfg.TraceHeadersOnly {
			// Only the headers are read (the lengths come from them):
			// the payload's room is left as it is, not copied.
			n := 0
			for _, p := range s.pieces {
				n += len(p)
			}
			s.tracePkt = slices.Grow(s.tracePkt, n)[:len(hdr)+n]
		} else {
			for _, p := range s.pieces {
				s.tracePkt = append(s.tracePkt, p...)
			}
		}
		if err := craft.ParsePacket(craft.LinkRaw, s.tracePkt, &s.outPkt, craft.PacketOptions{PartialChecksum: s.cfg.TraceHeadersOnly}); err == nil {
			s.tracer.Segment(Out, now, &s.outPkt, s.tracePkt, nil)
		}
	}
	clear(s.pieces) // keep no reference to the machine's memory
	return true
}

// appendPiece adds p to the payload pieces, extending the last piece
// instead when p continues it in the same buffer (consecutive segments cut
// from one stretch of fsm's send buffer, whose payload slices have the
// rest of that buffer as capacity): fewer, larger pieces for the kernel to
// walk. Reslicing within the capacity never leaves the buffer.
func appendPiece(pieces [][]byte, p []byte) [][]byte {
	if len(p) == 0 {
		return pieces
	}
	if n := len(pieces); n > 0 {
		last := pieces[n-1]
		if k := len(last); cap(last) >= k+len(p) && &last[:k+1][k] == &p[0] {
			pieces[n-1] = last[:k+len(p)]
			return pieces
		}
	}
	return append(pieces, p)
}
