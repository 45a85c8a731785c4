package stack

import (
	"net/netip"
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
	// SendGSO sends pkt as segments of mss payload bytes.
	SendGSO(pkt []byte, mss int) error
}

// maxSuperPayload keeps a super-segment with the largest headers (60 + 60
// bytes) inside the 65535-byte IPv4 total length.
const maxSuperPayload = 65535 - 120

// sendSegments sends s.segBuf for c, coalescing where it can. Called with
// s.mu held.
func (s *Stack) sendSegments(c *Conn, now time.Time) {
	gl, ok := s.link.(GSOLink)
	segs := s.segBuf
	src, dst := c.local.Addr(), c.remote.Addr()
	for i := 0; i < len(segs); {
		j := i + 1
		if ok && !s.gsoOff {
			for j < len(segs) && mergeable(&segs[i], &segs[j-1], &segs[j]) {
				j++
			}
		}
		if j-i < 2 {
			s.send(src, dst, &segs[i], now)
			i++
			continue
		}
		if !s.sendSuper(gl, src, dst, segs[i:j], now) {
			s.gsoOff = true
			for k := i; k < j; k++ {
				s.send(src, dst, &segs[k], now)
			}
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
	if next.Seq != last.Seq.Add(uint32(len(last.Payload))) || next.Ack != first.Ack || next.Window != first.Window || next.Urgent != 0 || first.Urgent != 0 {
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

// sendSuper builds segs as one super-segment and sends it; false if the
// link refused (the caller falls back).
func (s *Stack) sendSuper(gl GSOLink, src, dst netip.Addr, segs []craft.TCP, now time.Time) bool {
	super := segs[0]
	s.gsoPayload = s.gsoPayload[:0]
	for k := range segs {
		s.gsoPayload = append(s.gsoPayload, segs[k].Payload...)
		super.Flags |= segs[k].Flags & craft.FlagPSH
	}
	super.Payload = s.gsoPayload
	id := s.ipID + 1
	if id == 0 {
		id = 1
	}
	ip := craft.IPv4{TTL: s.cfg.TTL, ID: id, DontFragment: true, Protocol: craft.ProtocolTCP, Src: src, Dst: dst}
	// Checksums complete, so that traces and pcap files show a valid
	// packet; the kernel recomputes each segment's (tcp_gso_segment).
	pkt, err := craft.AppendIPv4TCP(s.pktBuf[:0], &ip, &super, craft.BuildOptions{})
	if err != nil {
		return false
	}
	s.pktBuf = pkt[:0]
	if err := gl.SendGSO(pkt, len(segs[0].Payload)); err != nil {
		// Not worth a line in the trace: nothing was sent, the
		// segments go out one by one instead, and nothing is lost.
		return false
	}
	s.ipID = id + uint16(len(segs)) - 1 // the kernel numbers the segments on
	if s.ipID == 0 {
		s.ipID = 1
	}
	if s.tracer != nil {
		if err := craft.ParsePacket(craft.LinkRaw, pkt, &s.outPkt, craft.PacketOptions{}); err == nil {
			s.tracer.Segment(Out, now, &s.outPkt, pkt, nil)
		}
	}
	return true
}
