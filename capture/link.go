package capture

import (
	"context"
	"net/netip"
	"sync/atomic"
)

// Link is one session's way to the wire in the shape the stack drives it:
// frames of the flow come from a Capture (read, tried, waited for or taken
// in place), packets leave through an Injector.
type Link struct {
	cap *Capture
	inj *Injector
}

// NewLink joins a capture and an injector into a Link. Both stay the
// caller's to close.
func NewLink(c *Capture, in *Injector) *Link { return &Link{cap: c, inj: in} }

// ReadFrame is Capture.ReadFrame.
func (l *Link) ReadFrame(ctx context.Context) (Frame, error) { return l.cap.ReadFrame(ctx) }

// TryReadFrame is Capture.TryReadFrame.
func (l *Link) TryReadFrame() (Frame, bool, error) { return l.cap.TryReadFrame() }

// WaitFrame is Capture.WaitFrame.
func (l *Link) WaitFrame(ctx context.Context) error { return l.cap.WaitFrame(ctx) }

// TakeFrame is Capture.TakeFrame.
func (l *Link) TakeFrame(fn func(Frame)) (bool, error) { return l.cap.TakeFrame(fn) }

// Send is Injector.Send.
func (l *Link) Send(pkt []byte) error { return l.inj.Send(pkt) }

// SendBatch is Injector.SendBatch.
func (l *Link) SendBatch(pkts [][]byte) (int, error) { return l.inj.SendBatch(pkts) }

// GSOLink is a Link with segmentation offload: SendGSO hands super-segments
// to a GSOSender, and Send too sends the small packets to the peer (ACKs,
// window updates) through it — straight to the device, where the raw
// socket takes each through routing and the firewall's hooks; a bulk
// download sends one ACK per 64 KB the kernel hands it. A SYN still goes
// the kernel's way, which looks the next hop up (ARP, neighbour
// discovery); after the handshake the neighbour table has the address the
// GSOSender needs. If the GSOSender fails a small packet, Send stops
// trying it and uses the raw socket from then on.
type GSOLink struct {
	*Link
	gso    *GSOSender
	peer   netip.Addr  // the one destination the GSO socket reaches
	failed atomic.Bool // the GSO socket could not send a small packet
}

// NewGSOLink adds g, a GSOSender towards peer's next hop, to a Link. The
// GSOSender stays the caller's to close.
func NewGSOLink(l *Link, g *GSOSender, peer netip.Addr) *GSOLink {
	return &GSOLink{Link: l, gso: g, peer: peer.Unmap()}
}

// SendGSO is GSOSender.Send (the stack's GSOLink).
func (l *GSOLink) SendGSO(hdr []byte, payload [][]byte, mss int) error {
	return l.gso.Send(hdr, payload, mss)
}

// Send sends a packet to the peer that is not a SYN through the GSO
// socket, everything else through the raw socket.
func (l *GSOLink) Send(pkt []byte) error {
	if !l.failed.Load() {
		if dst, flags, ok := tcpDestination(pkt); ok && dst == l.peer && flags&tcpFlagSYN == 0 {
			if err := l.gso.Send(pkt, nil, 0); err == nil {
				return nil
			}
			l.failed.Store(true)
		}
	}
	return l.inj.Send(pkt)
}

const tcpFlagSYN = 0x02 // RFC 9293 §3.1

// tcpDestination reads the destination address and the TCP flags of an
// IPv4 or IPv6 packet that carries TCP (for IPv6, right after the fixed
// header, as tcpcraft builds them); ok is false for anything else.
func tcpDestination(pkt []byte) (dst netip.Addr, flags byte, ok bool) {
	if len(pkt) == 0 {
		return netip.Addr{}, 0, false
	}
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl+14 || pkt[ipOffProtocol] != ipProtoTCP {
			return netip.Addr{}, 0, false
		}
		return netip.AddrFrom4([4]byte(pkt[ipOffDst : ipOffDst+4])), pkt[ihl+13], true
	case 6:
		if len(pkt) < ip6HeaderLen+14 || pkt[ip6OffNext] != ipProtoTCP {
			return netip.Addr{}, 0, false
		}
		return netip.AddrFrom16([16]byte(pkt[ip6OffDst : ip6OffDst+16])), pkt[ip6HeaderLen+13], true
	}
	return netip.Addr{}, 0, false
}
