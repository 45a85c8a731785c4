package capture

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// TestTxStamps: with transmit timestamps on, the link sender and the raw
// injector each give back one timestamp per packet sent, with the packet
// as it was sent (IPv4 and IPv6, through both), taken after the send
// began and before it returned (the veth's driver takes the packet
// inside the send), on the clock of the capture: the SYN-ACK each SYN
// drew was captured after its SYN's timestamp. The link sender is tried
// with its transmit ring and without (sendmmsg).
func TestTxStamps(t *testing.T) {
	for _, lc := range []LinkConfig{{}, {NoRing: true}} {
		t.Run(linkMode(lc), func(t *testing.T) { testTxStamps(t, lc) })
	}
}

func testTxStamps(t *testing.T, lc LinkConfig) {
	l := gsoLab(t)
	for _, addr := range []string{l.ServerIP().String() + ":8091", "[" + server6.String() + "]:8091"} {
		ln := labtest.Listen(t, l, l.ServerNS, addr)
		defer ln.Close()
	}
	p := openProberSide(t, l, 4, lc)
	if err := p.link.EnableTxStamps(); err != nil {
		t.Fatal(err)
	}
	if err := p.inj.EnableTxStamps(); err != nil {
		t.Fatal(err)
	}
	mac4, mac6 := p.resolve(t, l.ServerIP()), p.resolve(t, server6)
	s4, s6 := netip.AddrPortFrom(l.ServerIP(), 8091), netip.AddrPortFrom(server6, 8091)

	sent := map[uint16][]byte{}
	times := map[uint16][2]time.Time{} // our port: before and after the send
	stamps := map[uint16]time.Time{}
	collect := func(what string) func(TxStamp) {
		return func(ts TxStamp) {
			var pkt craft.Packet
			if err := craft.ParsePacket(craft.LinkRaw, ts.Packet, &pkt, craft.PacketOptions{PartialChecksum: true}); err != nil {
				t.Errorf("%s: a timestamp of something else: %x (%v)", what, ts.Packet, err)
				return
			}
			port := pkt.TCP.SrcPort
			if !bytes.Equal(ts.Packet, sent[port]) {
				t.Errorf("%s: timestamp's packet\n%x\nwant what was sent\n%x", what, ts.Packet, sent[port])
			}
			if _, dup := stamps[port]; dup {
				t.Errorf("%s: two timestamps of port %d's packet", what, port)
			}
			stamps[port] = ts.Time
		}
	}

	link := []LinkPacket{{p.syn(t, p.low, s4, 1, false), mac4}, {p.syn(t, p.low+1, s6, 2, false), mac6}}
	raw := [][]byte{p.syn(t, p.low+2, s4, 3, false), p.syn(t, p.low+3, s6, 4, false)}
	for i, lp := range link {
		sent[p.low+uint16(i)] = lp.Data
	}
	for i, r := range raw {
		sent[p.low+2+uint16(i)] = r
	}
	before := time.Now()
	if n, err := p.link.SendBatch(link); n != len(link) || err != nil {
		t.Fatalf("link SendBatch: %d, %v", n, err)
	}
	after := time.Now()
	times[p.low], times[p.low+1] = [2]time.Time{before, after}, [2]time.Time{before, after}
	if n, err := p.link.TxStamps(collect("link")); n != 2 || err != nil {
		t.Errorf("link TxStamps: %d, %v; want 2", n, err)
	}
	before = time.Now()
	if n, err := p.inj.SendBatch(raw); n != len(raw) || err != nil {
		t.Fatalf("injector SendBatch: %d, %v", n, err)
	}
	after = time.Now()
	times[p.low+2], times[p.low+3] = [2]time.Time{before, after}, [2]time.Time{before, after}
	if n, err := p.inj.TxStamps(collect("injector")); n != 2 || err != nil {
		t.Errorf("injector TxStamps: %d, %v; want 2", n, err)
	}
	for port, w := range times {
		if at, ok := stamps[port]; !ok || at.Before(w[0]) || at.After(w[1]) {
			t.Errorf("port %d: timestamp %v (%v), want within the send, %v to %v", port, at.Format(time.StampNano), ok, w[0].Format(time.StampNano), w[1].Format(time.StampNano))
		}
	}

	// Every SYN-ACK was captured after its SYN went.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for got := 0; got < 4; {
		f, err := p.cap.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("%d SYN-ACKs of 4: %v", got, err)
		}
		var pkt craft.Packet
		if craft.ParsePacket(craft.LinkRaw, f.Data, &pkt, craft.PacketOptions{PartialChecksum: f.ChecksumNotReady}) != nil {
			continue
		}
		got++
		if at := stamps[pkt.TCP.DstPort]; !f.Time.After(at) {
			t.Errorf("port %d: SYN-ACK captured at %v, not after its SYN's timestamp %v", pkt.TCP.DstPort, f.Time.Format(time.StampNano), at.Format(time.StampNano))
		}
	}
	// Nothing more: one timestamp a packet.
	if n, _ := p.link.TxStamps(collect("link")); n != 0 {
		t.Errorf("link: %d more timestamps", n)
	}
}
