package stack

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/tcpcraft/tcpcraft/craft"
)

// ptbFor builds the ICMP error a router with a next link of mtu bytes
// sends about pkt, from router.
func ptbFor(t *testing.T, pkt []byte, mtu int, router netip.Addr) []byte {
	t.Helper()
	var p craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, pkt, &p, craft.PacketOptions{}); err != nil {
		t.Fatal(err)
	}
	quote := pkt[:min(len(pkt), 576-28)]
	e := craft.ICMPError{IPVersion: p.IPVersion, MTU: uint32(mtu), Quote: craft.Quote{Bytes: quote}}
	if p.IPVersion == 4 {
		e.Type, e.Code = craft.ICMPUnreachable, craft.ICMPFragNeeded
		e.IPv4 = craft.IPv4{TTL: 64, Src: router, Dst: p.Src()}
	} else {
		e.Type = craft.ICMPv6PacketTooBig
		e.IPv6 = craft.IPv6{HopLimit: 64, Src: router, Dst: p.Src()}
	}
	b, err := craft.AppendICMPError(nil, &e, craft.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A path narrower than the link: a "router" on the client's wire drops
// every packet larger than 1280 bytes and answers with the ICMP error of
// its family. The client's MSS falls, what was dropped goes again cut to
// size, and the data arrives intact; a forged error (a sequence number
// not in flight) changes nothing.
func TestPathMTUDiscovery(t *testing.T) {
	for _, fam := range []struct {
		name                   string
		server, client, router netip.Addr
		wantMSS                int // 1280 less the headers (no timestamps: no options)
	}{
		{"IPv4", serverIP, clientIP, netip.MustParseAddr("192.0.2.254"), 1280 - 40},
		{"IPv6", serverIP6, clientIP6, netip.MustParseAddr("2001:db8::fe"), 1280 - 60},
	} {
		t.Run(fam.name, func(t *testing.T) {
			sl, cl := newWire()
			cfg := testConnConfig()
			cfg.Timestamps = false
			srv := startStack(t, sl, fam.server, cfg, nil)
			cli := startStack(t, cl, fam.client, cfg, nil)
			l := listen(t, srv, 80, 4)
			ctx := testContext(t)
			client, err := cli.Dial(ctx, netip.AddrPortFrom(fam.server, 80), 41000)
			if err != nil {
				t.Fatal(err)
			}
			server, err := l.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// A forged error first: it quotes a sequence number far
			// from anything sent.
			var forged []byte
			{
				seg := craft.TCP{SrcPort: 41000, DstPort: 80, Seq: 12345, Flags: craft.FlagACK, Payload: make([]byte, 1400)}
				var pkt []byte
				if fam.client.Is4() {
					pkt, _ = craft.BuildIPv4TCP(craft.IPv4{TTL: 64, Protocol: craft.ProtocolTCP, Src: fam.client, Dst: fam.server}, &seg)
				} else {
					pkt, _ = craft.BuildIPv6TCP(craft.IPv6{HopLimit: 64, Src: fam.client, Dst: fam.server}, &seg)
				}
				forged = ptbFor(t, pkt, 600, fam.router)
			}
			cl.deliver(forged)

			var mu sync.Mutex
			var dropped int
			cl.setDrop(func(pkt []byte) bool {
				if len(pkt) <= 1280 {
					return false
				}
				mu.Lock()
				dropped++
				mu.Unlock()
				// Not now: the link's lock is held during drop.
				ptb := ptbFor(t, pkt, 1280, fam.router)
				go cl.deliver(ptb)
				return true
			})
			data := randomData(t, 200<<10)
			go func() {
				if _, err := client.Write(ctx, data); err != nil {
					t.Errorf("Write: %v", err)
				}
				_ = client.CloseWrite()
			}()
			got, err := readAll(ctx, server)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("server read %d bytes (%v), not the %d sent", len(got), err, len(data))
			}
			if st := client.Stats(); st.SndMSS != fam.wantMSS {
				t.Errorf("send MSS %d, want %d", st.SndMSS, fam.wantMSS)
			}
			mu.Lock()
			d := dropped
			mu.Unlock()
			if d == 0 || d > 20 {
				t.Errorf("%d packets too big were dropped: want a few (those in flight when the first error came)", d)
			}
			// After the first error nothing larger went out but the
			// few already on their way.
			big := 0
			for _, p := range sentPackets(t, cl) {
				if len(p.TCP.Payload) > fam.wantMSS {
					big++
				}
			}
			if big != d {
				t.Errorf("%d segments above the new MSS sent, %d dropped: later ones were not cut", big, d)
			}
			_ = server.CloseWrite()
		})
	}
}

// A path MTU error about a connection the stack does not have (the
// kernel's, or a forged one) changes nothing and is no error of the
// trace; other ICMP is reported as a frame that is not TCP.
func TestPathMTUNotOurs(t *testing.T) {
	a, b := newWire()
	rec := newRecorder()
	startStack(t, a, serverIP6, testConnConfig(), rec)
	seg := craft.TCP{SrcPort: 80, DstPort: 50000, Seq: 1, Flags: craft.FlagACK, Payload: make([]byte, 1400)}
	pkt, err := craft.BuildIPv6TCP(craft.IPv6{HopLimit: 64, Src: serverIP6, Dst: clientIP6}, &seg)
	if err != nil {
		t.Fatal(err)
	}
	b.Send(ptbFor(t, pkt, 1280, netip.MustParseAddr("2001:db8::fe")))
	e := craft.ICMPError{IPVersion: 6, Type: craft.ICMPv6Unreachable, Quote: craft.Quote{Bytes: pkt[:200]},
		IPv6: craft.IPv6{HopLimit: 64, Src: clientIP6, Dst: serverIP6}}
	unreach, err := craft.AppendICMPError(nil, &e, craft.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Send(unreach)
	// Frames are handled in order: once the unreachable (sent last) is
	// reported, the packet too big was handled too.
	failed := func() (errs []error, sawLast bool) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, s := range rec.segs {
			if s.err != nil {
				errs = append(errs, s.err)
				sawLast = sawLast || s.rawLen == len(unreach)
			}
		}
		return errs, sawLast
	}
	eventually(t, "the unreachable to be reported", func() bool { _, last := failed(); return last })
	if errs, _ := failed(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "not TCP") {
		t.Errorf("trace errors %v, want one, for the unreachable only", errs)
	}
	if n := len(sentPackets(t, a)); n != 0 {
		t.Errorf("the stack answered with %d packets", n)
	}
}
