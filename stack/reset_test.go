package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// peerEnd is the far end of a single stack's wire, driven by the test: it
// sends hand-made segments and reads what the stack answers.
type peerEnd struct {
	t    *testing.T
	link *memLink
	addr netip.Addr
}

// send delivers seg from the peer (src port in seg) to dst.
func (p peerEnd) send(dst netip.Addr, seg craft.TCP, corrupt bool) {
	p.t.Helper()
	ip := craft.IPv4{TTL: 64, ID: 1, Protocol: craft.ProtocolTCP, Src: p.addr, Dst: dst}
	pkt, err := craft.AppendIPv4TCP(nil, &ip, &seg, craft.BuildOptions{})
	if err != nil {
		p.t.Fatal(err)
	}
	if corrupt {
		pkt[20+16] ^= 0xff // the TCP checksum
	}
	if err := p.link.Send(pkt); err != nil {
		p.t.Fatal(err)
	}
}

// next returns the next segment the stack sent.
func (p peerEnd) next() craft.Packet {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := p.link.ReadFrame(ctx)
	if err != nil {
		p.t.Fatalf("no answer from the stack: %v", err)
	}
	var pkt craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, f.Data, &pkt, craft.PacketOptions{}); err != nil {
		p.t.Fatalf("the stack sent an unparsable packet: %v", err)
	}
	if pkt.TCPChecksum.State != craft.ChecksumGood || pkt.IPChecksum.State != craft.ChecksumGood {
		p.t.Errorf("the stack's answer has bad checksums: %+v %+v", pkt.IPChecksum, pkt.TCPChecksum)
	}
	return pkt
}

// A segment for which no connection exists is answered as RFC 9293
// §3.10.7.1 says; an RST and a corrupt segment are not answered at all.
// (Segments to addresses that are not ours: TestSegmentsForOtherAddressesIgnored.)
func TestSegmentsWithoutConnection(t *testing.T) {
	stackEnd, far := newWire()
	s := startStack(t, stackEnd, serverIP, testConnConfig(), nil)
	listen(t, s, 80, 4)
	peer := peerEnd{t: t, link: far, addr: clientIP}

	// probe is answered with a RST whose seq is the probe's ACK; sending it
	// after a segment that must go unanswered proves, without waiting for
	// a timeout, that nothing came back for that one (the wire keeps order).
	probe := func(t *testing.T, ack craft.Seq) {
		t.Helper()
		peer.send(serverIP, craft.TCP{SrcPort: 5555, DstPort: 9999, Seq: 1, Ack: ack, Flags: craft.FlagACK, Window: 100}, false)
		got := peer.next()
		if got.TCP.Flags != craft.FlagRST || got.TCP.Seq != ack {
			t.Fatalf("want the RST answering the probe (seq %d), got flags %v seq %d: an earlier segment was answered", ack, got.TCP.Flags, got.TCP.Seq)
		}
	}

	t.Run("ACK to a closed port", func(t *testing.T) {
		peer.send(serverIP, craft.TCP{SrcPort: 5000, DstPort: 81, Seq: 100, Ack: 777, Flags: craft.FlagACK, Window: 100, Payload: []byte("data")}, false)
		got := peer.next()
		// <SEQ=SEG.ACK><CTL=RST>
		if got.TCP.Flags != craft.FlagRST || got.TCP.Seq != 777 || got.TCP.SrcPort != 81 || got.TCP.DstPort != 5000 {
			t.Errorf("answer: flags %v seq %d ports %d->%d; want RST seq 777 81->5000", got.TCP.Flags, got.TCP.Seq, got.TCP.SrcPort, got.TCP.DstPort)
		}
		if got.Src() != serverIP || got.Dst() != clientIP {
			t.Errorf("answer addressed %v -> %v", got.Src(), got.Dst())
		}
	})
	t.Run("SYN to a closed port", func(t *testing.T) {
		peer.send(serverIP, craft.TCP{SrcPort: 5001, DstPort: 82, Seq: 1000, Flags: craft.FlagSYN, Window: 100}, false)
		got := peer.next()
		// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; a SYN counts one.
		if got.TCP.Flags != craft.FlagRST|craft.FlagACK || got.TCP.Seq != 0 || got.TCP.Ack != 1001 {
			t.Errorf("answer: flags %v seq %d ack %d; want RST,ACK seq 0 ack 1001", got.TCP.Flags, got.TCP.Seq, got.TCP.Ack)
		}
	})
	t.Run("ACK to a listening port", func(t *testing.T) {
		// RFC 9293 §3.10.7.2: in LISTEN an ACK is answered with a RST.
		peer.send(serverIP, craft.TCP{SrcPort: 5002, DstPort: 80, Seq: 5, Ack: 4242, Flags: craft.FlagACK, Window: 100}, false)
		got := peer.next()
		if got.TCP.Flags != craft.FlagRST || got.TCP.Seq != 4242 {
			t.Errorf("answer: flags %v seq %d; want RST seq 4242", got.TCP.Flags, got.TCP.Seq)
		}
		if s.Conns() != 0 {
			t.Errorf("an ACK to a listener created a connection")
		}
	})
	t.Run("RST is not answered", func(t *testing.T) {
		peer.send(serverIP, craft.TCP{SrcPort: 5003, DstPort: 81, Seq: 5, Flags: craft.FlagRST}, false)
		peer.send(serverIP, craft.TCP{SrcPort: 5003, DstPort: 80, Seq: 5, Flags: craft.FlagRST}, false)
		probe(t, 11)
	})
	t.Run("bad checksum is dropped", func(t *testing.T) {
		peer.send(serverIP, craft.TCP{SrcPort: 5004, DstPort: 81, Seq: 5, Ack: 6, Flags: craft.FlagACK, Window: 100}, true)
		peer.send(serverIP, craft.TCP{SrcPort: 5004, DstPort: 80, Seq: 5, Flags: craft.FlagSYN, Window: 100}, true)
		probe(t, 12)
		if s.Conns() != 0 {
			t.Errorf("a SYN with a bad checksum created a connection")
		}
	})
	t.Run("SYN to a listening port opens a connection", func(t *testing.T) {
		peer.send(serverIP, craft.TCP{SrcPort: 5006, DstPort: 80, Seq: 2000, Flags: craft.FlagSYN, Window: 65535,
			Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}}, false)
		got := peer.next()
		if got.TCP.Flags != craft.FlagSYN|craft.FlagACK || got.TCP.Ack != 2001 {
			t.Errorf("answer: flags %v ack %d; want SYN,ACK ack 2001", got.TCP.Flags, got.TCP.Ack)
		}
		if s.Conns() != 1 {
			t.Errorf("stack holds %d connections, want the half-open one", s.Conns())
		}
	})
}

// A half-open connection reset by its peer goes back to LISTEN in the
// machine (RFC 9293 §3.10.7.4, SYN-RECEIVED from a passive open); the
// stack must forget it and give its backlog slot back. (Without SYN
// cookies, so that a full SYN queue drops a SYN: TestSYNCookieWhenQueueFull
// has them.)
func TestResetHalfOpenFreesBacklogSlot(t *testing.T) {
	stackEnd, far := newWire()
	s := startStack(t, stackEnd, serverIP, testConnConfig(), nil)
	if _, err := s.ListenWith(netip.Addr{}, 80, fsm.ListenConfig{Backlog: 1, SYNCookies: fsm.SYNCookiesNever}); err != nil {
		t.Fatal(err)
	}
	peer := peerEnd{t: t, link: far, addr: clientIP}
	syn := func(sport uint16, seq craft.Seq) craft.TCP {
		return craft.TCP{SrcPort: sport, DstPort: 80, Seq: seq, Flags: craft.FlagSYN, Window: 65535,
			Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}}
	}

	peer.send(serverIP, syn(6000, 100), false)
	if got := peer.next(); got.TCP.Flags != craft.FlagSYN|craft.FlagACK {
		t.Fatalf("first SYN: answered with %v, want SYN,ACK", got.TCP.Flags)
	}
	// The backlog (1) is full: a second client's SYN is dropped.
	peer.send(serverIP, syn(6001, 200), false)
	peer.send(serverIP, craft.TCP{SrcPort: 5555, DstPort: 9999, Seq: 1, Ack: 42, Flags: craft.FlagACK, Window: 100}, false)
	if got := peer.next(); got.TCP.Flags != craft.FlagRST || got.TCP.Seq != 42 {
		t.Fatalf("the SYN beyond the backlog was answered (%v seq %d)", got.TCP.Flags, got.TCP.Seq)
	}

	// RST at RCV.NXT ends the half-open connection.
	peer.send(serverIP, craft.TCP{SrcPort: 6000, DstPort: 80, Seq: 101, Flags: craft.FlagRST}, false)
	eventually(t, "the reset half-open connection to be forgotten", func() bool { return s.Conns() == 0 })

	peer.send(serverIP, syn(6002, 300), false)
	got := peer.next()
	if got.TCP.Flags != craft.FlagSYN|craft.FlagACK || got.TCP.Ack != 301 || got.TCP.DstPort != 6002 {
		t.Fatalf("after the slot was freed, a SYN got %v ack %d to port %d; want SYN,ACK ack 301 to 6002", got.TCP.Flags, got.TCP.Ack, got.TCP.DstPort)
	}
}

// Segments to an address that is not ours are not answered, neither by a
// stack bound to one address nor by a wildcard listener (which asks
// Config.IsLocal): on a forwarding or promiscuous host AF_PACKET also sees
// other hosts' traffic, and answering it would forge their replies.
func TestSegmentsForOtherAddressesIgnored(t *testing.T) {
	other := netip.MustParseAddr("10.0.2.99")
	for _, tc := range []struct {
		name    string
		local   netip.Addr
		isLocal func(netip.Addr) bool
	}{
		{"bound to one address", serverIP, nil},
		{"wildcard listener", netip.IPv4Unspecified(), func(a netip.Addr) bool { return a == serverIP }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stackEnd, far := newWire()
			s, err := New(stackEnd, Config{Local: tc.local, IsLocal: tc.isLocal, Conn: testConnConfig()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			t.Cleanup(func() { cancel(); stackEnd.close(); far.close(); <-done })
			listen(t, s, 80, 4)
			peer := peerEnd{t: t, link: far, addr: clientIP}

			// A SYN and an ACK to the other address: no answer. The SYN
			// to our own address afterwards must be the first thing
			// answered (the wire keeps order).
			peer.send(other, craft.TCP{SrcPort: 5000, DstPort: 80, Seq: 100, Flags: craft.FlagSYN, Window: 1000}, false)
			peer.send(other, craft.TCP{SrcPort: 5001, DstPort: 81, Seq: 100, Ack: 5, Flags: craft.FlagACK, Window: 1000}, false)
			peer.send(serverIP, craft.TCP{SrcPort: 5002, DstPort: 80, Seq: 100, Flags: craft.FlagSYN, Window: 1000}, false)
			got := peer.next()
			if got.IPv4.Src != serverIP || got.TCP.DstPort != 5002 || !got.TCP.Flags.Has(craft.FlagSYN|craft.FlagACK) {
				t.Fatalf("first answer: %v:%d flags %v to port %d; want the SYN-ACK from %v to port 5002",
					got.IPv4.Src, got.TCP.SrcPort, got.TCP.Flags, got.TCP.DstPort, serverIP)
			}
		})
	}
}
