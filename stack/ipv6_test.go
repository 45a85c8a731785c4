package stack

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

var (
	serverIP6 = netip.MustParseAddr("2001:db8::1")
	clientIP6 = netip.MustParseAddr("2001:db8::2")
)

// sentPackets parses every packet l sent.
func sentPackets(t *testing.T, l *memLink) []craft.Packet {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []craft.Packet
	for _, raw := range l.sent {
		var p craft.Packet
		if err := craft.ParsePacket(craft.LinkRaw, bytes.Clone(raw), &p, craft.PacketOptions{}); err != nil {
			t.Fatalf("the stack sent an unparsable packet: %v", err)
		}
		out = append(out, p)
	}
	return out
}

// Two stacks over IPv6: the server listens on every address of both
// families (the zero Addr), the client dials its IPv6 address; data flows
// both ways under loss, intact. Every packet is IPv6 with the hop limit
// of Config.TTL and the flow label of its connection (one per connection,
// not zero, both directions of a stack alike for one connection, another
// for the next); the SYNs advertise the IPv6 MSS.
func TestIPv6EndToEnd(t *testing.T) {
	sl, cl := newWire()
	srv, err := New(sl, Config{Conn: testConnConfig(), TTL: 33})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := New(cl, Config{Local: clientIP6, Conn: testConnConfig(), TTL: 17})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []*Stack{srv, cli} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	t.Cleanup(func() { srv.Shutdown(); cli.Shutdown(); cancel(); wg.Wait() })

	l := listen(t, srv, 80, 4)
	cl.setDrop(everyNth(9))
	tctx := testContext(t)
	ports := []uint16{40001, 40002}
	for _, port := range ports {
		client, err := cli.Dial(tctx, netip.AddrPortFrom(serverIP6, 80), port)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		server, err := l.Accept(tctx)
		if err != nil {
			t.Fatal(err)
		}
		if server.LocalAddr() != netip.AddrPortFrom(serverIP6, 80) || server.RemoteAddr() != netip.AddrPortFrom(clientIP6, port) {
			t.Fatalf("server end %v <- %v", server.LocalAddr(), server.RemoteAddr())
		}
		up, down := randomData(t, 300<<10), randomData(t, 300<<10)
		var gotUp []byte
		var upErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			gotUp, upErr = readAll(tctx, server)
		}()
		go func() {
			if _, err := server.Write(tctx, down); err != nil {
				t.Errorf("server Write: %v", err)
			}
			_ = server.CloseWrite()
		}()
		if _, err := client.Write(tctx, up); err != nil {
			t.Fatal(err)
		}
		_ = client.CloseWrite()
		gotDown, err := readAll(tctx, client)
		if err != nil {
			t.Fatal(err)
		}
		<-done
		if upErr != nil || !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
			t.Fatalf("port %d: up %d bytes (%v), down %d bytes: not what was sent", port, len(gotUp), upErr, len(gotDown))
		}
	}

	labels := map[uint16]uint32{} // client port -> flow label
	for _, side := range []struct {
		link *memLink
		hop  uint8
	}{{cl, 17}, {sl, 33}} {
		for _, p := range sentPackets(t, side.link) {
			if p.IPVersion != 6 || p.IPv6.HopLimit != side.hop || p.IPv6.FlowLabel == 0 {
				t.Fatalf("sent %v: version %d hop limit %d flow label %d; want 6, %d, a label", p.Tuple(), p.IPVersion, p.IPv6.HopLimit, p.IPv6.FlowLabel, side.hop)
			}
			port := p.TCP.SrcPort
			if port == 80 {
				port = p.TCP.DstPort
			}
			if lb, ok := labels[port]; ok && lb != p.IPv6.FlowLabel && side.link == cl {
				t.Errorf("connection from port %d: flow labels %#x and %#x", port, lb, p.IPv6.FlowLabel)
			}
			if side.link == cl {
				labels[port] = p.IPv6.FlowLabel
			}
			if p.TCP.Flags.Has(craft.FlagSYN) && synMSS(&p.TCP) != 1440 {
				t.Errorf("SYN %v advertises MSS %d, want 1460-20", p.Tuple(), synMSS(&p.TCP))
			}
		}
	}
	if len(labels) != 2 || labels[ports[0]] == labels[ports[1]] {
		t.Errorf("flow labels per connection %v: want two different ones", labels)
	}
}

func synMSS(seg *craft.TCP) uint16 {
	for _, o := range seg.Options {
		if o.Kind == craft.OptMSS {
			return o.MSS
		}
	}
	return 0
}

// A listener's address chooses the families it serves: the zero Addr
// both, 0.0.0.0 IPv4, :: IPv6, an address itself; an IPv4-mapped address
// in an IPv6 packet is IPv6's, not IPv4's.
func TestListenerFamilies(t *testing.T) {
	v4, v6 := serverIP, serverIP6
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	for _, tc := range []struct {
		listen netip.Addr
		want   map[netip.Addr]bool
	}{
		{netip.Addr{}, map[netip.Addr]bool{v4: true, v6: true, mapped: true}},
		{netip.IPv4Unspecified(), map[netip.Addr]bool{v4: true, v6: false, mapped: false}},
		{netip.IPv6Unspecified(), map[netip.Addr]bool{v4: false, v6: true, mapped: true}},
		{v4, map[netip.Addr]bool{v4: true, v6: false, mapped: false}},
		{v6, map[netip.Addr]bool{v4: false, v6: true, mapped: false}},
		{mapped, map[netip.Addr]bool{v4: true, v6: false, mapped: false}}, // given mapped: taken as IPv4
	} {
		a, _ := newWire()
		s := startStack(t, a, netip.Addr{}, testConnConfig(), nil)
		l, err := s.Listen(tc.listen, 80, 1)
		if err != nil {
			t.Fatal(err)
		}
		for dst, want := range tc.want {
			if got := l.accepts(dst); got != want {
				t.Errorf("listening on %v: accepts %v = %v, want %v", tc.listen, dst, got, want)
			}
		}
	}
}

// A Stack of one family ignores the other family's segments (no answer at
// all, not even an RST: they are not addressed to it).
func TestStackIgnoresOtherFamily(t *testing.T) {
	a, b := newWire()
	startStack(t, a, serverIP, testConnConfig(), nil)
	syn := craft.TCP{SrcPort: 1234, DstPort: 80, Seq: 1, Flags: craft.FlagSYN, Window: 1000}
	pkt, err := craft.BuildIPv6TCP(craft.IPv6{HopLimit: 64, Src: clientIP6, Dst: netip.MustParseAddr("::ffff:192.0.2.1")}, &syn)
	if err != nil {
		t.Fatal(err)
	}
	b.Send(pkt)
	time.Sleep(100 * time.Millisecond)
	if n := len(sentPackets(t, a)); n != 0 {
		t.Errorf("the IPv4 stack answered an IPv6 segment to a mapped address with %d packets", n)
	}
}
