package stack

import (
	"errors"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
)

// Path MTU discovery (RFC 1191 for IPv4, RFC 8201 for IPv6): our IPv4
// packets carry DF and IPv6 routers never fragment, so a router whose next
// link is too small for a segment drops it and says so, with the MTU that
// link takes: ICMP "fragmentation needed" or ICMPv6 "packet too big". The
// link hands such errors in with the segments (capture.Flow.PathMTU); the
// stack finds the connection the quoted segment belongs to and lets its
// machine judge the quoted sequence number (fsm.Conn.PathMTUExceeded).

// Smallest path MTUs believed: 552, Linux's net.ipv4.route.min_pmtu
// (RFC 1191 allows 68, but a forged error would then make every segment
// a few bytes long, RFC 5927 §5.2), and for IPv6 its minimum link MTU,
// 1280 (RFC 8201 §4: a smaller report still means 1280).
const (
	minPathMTU4 = 552
	minPathMTU6 = 1280
)

// icmpInput handles a frame that is not TCP: if it is a path MTU error
// about one of our connections, that connection's machine takes it. It
// reports true for any well-formed path MTU error, ours or not: one about
// a connection of the host's kernel (a listener on every address admits
// all of them) is the kernel's business, not an error of the trace.
// Called with s.mu held.
func (s *Stack) icmpInput(f capture.Frame, parseErr error, now time.Time) bool {
	var notTCP *craft.NotTCPError
	if !errors.As(parseErr, &notTCP) || notTCP.Protocol != craft.ProtocolICMP && notTCP.Protocol != craft.ProtocolICMPv6 {
		return false
	}
	e := &s.icmpErr
	if craft.ParseICMPError(craft.LinkRaw, f.Data, e) != nil || e.Checksum.State == craft.ChecksumBad {
		return false
	}
	var mtu, ipHeader int
	switch {
	case e.IPVersion == 4 && e.Type == craft.ICMPUnreachable && e.Code == craft.ICMPFragNeeded:
		// A router from before RFC 1191 names no MTU: nothing to go by.
		if e.MTU == 0 {
			return false
		}
		mtu, ipHeader = max(int(e.MTU), minPathMTU4), 20
	case e.IPVersion == 6 && e.Type == craft.ICMPv6PacketTooBig:
		mtu, ipHeader = max(int(e.MTU), minPathMTU6), 40
	default:
		return false
	}
	q := &e.Quote
	if !s.addressedToUs(e.To()) || q.Protocol != craft.ProtocolTCP || !q.HasSeq || q.Src() != e.To() {
		return true
	}
	c, ok := s.conns[craft.FourTuple{Src: q.Tuple().Dst, Dst: q.Tuple().Src}]
	if !ok {
		return true
	}
	// The MSS counts TCP's payload without options (RFC 9293 §3.7.1):
	// the MTU less the IP header and the fixed TCP header.
	c.fc.PathMTUExceeded(mtu-ipHeader-craft.TCPMinHeaderLen, q.Seq, now)
	if s.burst {
		if !c.dirty {
			c.dirty = true
			s.dirty = append(s.dirty, c)
		}
		return true
	}
	s.flush(c, now)
	return true
}
