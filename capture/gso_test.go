package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
	"golang.org/x/sys/unix"
)

// gsoMSS is the segment size of the test super-segments: Linux's MSS on a
// 1500-byte link with timestamps.
const gsoMSS = 1448

// gsoMSS6 is the same for IPv6, whose header is 20 bytes longer: a
// segment of gsoMSS bytes would not fit the veth's 1500-byte MTU once the
// kernel cut it in software, and the veth would drop it.
const gsoMSS6 = 1428

// mss is the setup's segment size.
func (s *gsoSetup) mss() int {
	if s.ipv6 {
		return gsoMSS6
	}
	return gsoMSS
}

// gsoLab builds the lab of a GSO test, with IPv6 addresses beside the
// IPv4 ones. The sender is opened inside lab.Do and used from the test's
// goroutine, which is not in the namespace, as tcpcraft's stack goroutines
// use it.
func gsoLab(t testing.TB) *lab.Lab {
	t.Helper()
	labtest.RequireTools(t, "nft")
	l := labtest.New(t)
	checkRootUntouched(t)
	addIPv6(t, l)
	return l
}

// gsoSetup is a GSOSender in the client namespace and, in the server
// namespace, a capture of the frames of one flow from the client to a
// server port nobody listens on (the server kernel answers with RSTs,
// which travel the other way and are not captured).
type gsoSetup struct {
	l              *lab.Lab
	ipv6           bool
	g              *GSOSender
	route          Route          // the client's route to the server
	client, server netip.AddrPort // the test packets go client -> server
	capture        *Capture       // in the server namespace: client -> server
}

// setupGSO resolves the server's address in the client namespace's
// neighbour table (a kernel TCP connection from the client namespace: no
// packet is ever sent from the root namespace) and opens the sender and
// the capture.
func setupGSO(t *testing.T, l *lab.Lab, ipv6 bool) *gsoSetup {
	t.Helper()
	s := &gsoSetup{l: l, ipv6: ipv6}
	serverIP, clientIP := l.ServerIP(), l.ClientIP()
	if ipv6 {
		serverIP, clientIP = server6, client6
	}
	var cport uint16
	inNS(t, l.ClientNS, func() (err error) {
		if s.route, err = LookupRoute(serverIP); err != nil {
			return err
		}
		// Outside ip_local_port_range and unbound: no kernel socket of
		// the client namespace uses it.
		cport, err = EphemeralPort(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3)))
		return err
	})
	s.client = netip.AddrPortFrom(s.route.Source, cport)
	s.server = netip.AddrPortFrom(serverIP, 8091) // nothing listens there

	resolveNeighbour(t, l, serverIP)
	inNS(t, l.ClientNS, func() (err error) {
		s.g, err = OpenGSOSender(s.route.Index, serverIP)
		return err
	})
	t.Cleanup(func() { s.g.Close() })

	var back Route
	inNS(t, l.ServerNS, func() (err error) {
		back, err = LookupRoute(clientIP)
		return err
	})
	// Flow: frames from Remote to Local, so this admits exactly what
	// the sender sends.
	s.capture = openIn(t, l.ServerNS, back.Index, Flow{Local: s.server, Remote: s.client}, Config{})
	return s
}

// resolveNeighbour makes the client namespace learn the link-layer address
// of the server's address server: a kernel TCP connection from the client
// namespace to a listener in the server namespace goes through ARP (IPv4)
// or neighbour discovery (IPv6).
func resolveNeighbour(t *testing.T, l *lab.Lab, server netip.Addr) {
	t.Helper()
	ln := labtest.Listen(t, l, l.ServerNS, netip.AddrPortFrom(server, 8090).String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := l.Dial(ctx, l.ClientNS, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("resolving the server's address: %v", err)
	}
	conn.Close()
}

// headers returns the IPv4 and TCP headers of a test packet from the
// client to the server with payload made of pieces; with keepTCPChecksum
// the TCP checksum field is left 0 (the kernel computes the checksums of
// a super-segment's segments itself), else it covers the pieces.
func (s *gsoSetup) headers(t *testing.T, seq uint32, flags craft.Flags, pieces [][]byte, keepTCPChecksum bool) ([]byte, *craft.TCP) {
	t.Helper()
	tcp := &craft.TCP{
		SrcPort: s.client.Port(), DstPort: s.server.Port(),
		Seq: craft.Seq(seq), Ack: 777_777, Flags: flags, Window: 501,
		// 12 bytes of options, as Linux sends on an established
		// connection: every segment must carry them.
		Options: []craft.Option{craft.NOPOption(), craft.NOPOption(), craft.TimestampsOption(123_456, 654_321)},
	}
	if s.ipv6 {
		// craft builds IPv6 packets whole: build it with the pieces
		// joined (the checksum then covers them) and keep the headers.
		whole := *tcp
		whole.Payload = bytes.Join(pieces, nil)
		pkt, err := craft.AppendIPv6TCP(nil, &craft.IPv6{HopLimit: 64, Src: s.client.Addr(), Dst: s.server.Addr()}, &whole, craft.BuildOptions{})
		if err != nil {
			t.Fatalf("building headers: %v", err)
		}
		return pkt[:len(pkt)-len(whole.Payload)], tcp
	}
	ip := craft.IPv4{TTL: 64, ID: 0x4242, DontFragment: true, Protocol: craft.ProtocolTCP, Src: s.client.Addr(), Dst: s.server.Addr()}
	hdr, err := craft.AppendIPv4TCPHeaders(nil, &ip, tcp, pieces, craft.BuildOptions{KeepTCPChecksum: keepTCPChecksum})
	if err != nil {
		t.Fatalf("building headers: %v", err)
	}
	return hdr, tcp
}

// packet builds a whole packet from the client to the server (checksums
// right) in the setup's family.
func (s *gsoSetup) packet(t *testing.T, tcp *craft.TCP) []byte {
	t.Helper()
	var pkt []byte
	var err error
	if s.ipv6 {
		pkt, err = craft.AppendIPv6TCP(nil, &craft.IPv6{HopLimit: 64, Src: s.client.Addr(), Dst: s.server.Addr()}, tcp, craft.BuildOptions{})
	} else {
		ip := craft.IPv4{TTL: 64, ID: 0x4343, DontFragment: true, Src: s.client.Addr(), Dst: s.server.Addr()}
		pkt, err = craft.AppendIPv4TCP(nil, &ip, tcp, craft.BuildOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// cut splits b into pieces of the given lengths (the rest goes to a last
// piece), as sub-slices of b.
func cut(b []byte, lens ...int) [][]byte {
	var pieces [][]byte
	for _, n := range lens {
		pieces = append(pieces, b[:n])
		b = b[n:]
	}
	if len(b) > 0 {
		pieces = append(pieces, b)
	}
	return pieces
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// readStream reads frames from c until it holds every byte of want, sent
// as one super-segment with the TCP header tmpl, and checks
// what the kernel made of it: one frame carrying everything, or segments of
// exactly mss bytes (the last one shorter) with consecutive sequence
// numbers, the header fields and options of the original, PSH only on the
// last one, IP checksums right and TCP checksums right unless left for
// offload.
func readStream(t *testing.T, c *Capture, tmpl *craft.TCP, want []byte, mss int) {
	t.Helper()
	var got []byte
	var lens []int
	var psh []bool
	var sums []string
	next := tmpl.Seq
	wantTS := craft.FindOption(tmpl.Options, craft.OptTimestamps)
	for len(got) < len(want) {
		f := readOne(t, c, fmt.Sprintf("payload byte %d of %d", len(got), len(want)))
		if f.Truncated() {
			t.Fatalf("frame of %d bytes truncated to %d", f.Length, len(f.Data))
		}
		var p craft.Packet
		if err := craft.ParsePacket(craft.LinkRaw, f.Data, &p, craft.PacketOptions{PartialChecksum: f.ChecksumNotReady}); err != nil {
			t.Fatalf("captured frame does not parse: %v\n%x", err, f.Data)
		}
		sums = append(sums, checkChecksum(t, f))
		if p.IPVersion == 6 {
			if int(p.IPv6.PayloadLength)+ip6HeaderLen != len(f.Data) {
				t.Errorf("frame at seq %d: IPv6 payload length %d, frame of %d bytes", p.TCP.Seq, p.IPv6.PayloadLength, len(f.Data))
			}
		} else {
			if p.IPChecksum.State != craft.ChecksumGood {
				t.Errorf("frame at seq %d: IP header checksum %s", p.TCP.Seq, p.IPChecksum.State)
			}
			if int(p.IPv4.TotalLength) != len(f.Data) {
				t.Errorf("frame at seq %d: IP total length %d, frame of %d bytes", p.TCP.Seq, p.IPv4.TotalLength, len(f.Data))
			}
		}
		seg := &p.TCP
		if seg.Seq != next {
			t.Fatalf("frame at seq %d, want %d (segments out of order, lost or repeated)", seg.Seq, next)
		}
		if seg.SrcPort != tmpl.SrcPort || seg.DstPort != tmpl.DstPort || seg.Ack != tmpl.Ack || seg.Window != tmpl.Window {
			t.Errorf("frame at seq %d: ports %d>%d ack %d window %d, want those of the super-segment %d>%d ack %d window %d",
				seg.Seq, seg.SrcPort, seg.DstPort, seg.Ack, seg.Window, tmpl.SrcPort, tmpl.DstPort, tmpl.Ack, tmpl.Window)
		}
		if seg.Flags&^craft.FlagPSH != craft.FlagACK {
			t.Errorf("frame at seq %d: flags %s, want ACK (and PSH on the last)", seg.Seq, seg.Flags)
		}
		if ts := craft.FindOption(seg.Options, craft.OptTimestamps); ts == nil || ts.TSVal != wantTS.TSVal || ts.TSEcr != wantTS.TSEcr {
			t.Errorf("frame at seq %d: options %v, want the super-segment's %v", seg.Seq, seg.Options, tmpl.Options)
		}
		if len(seg.Payload) == 0 {
			t.Fatalf("frame at seq %d carries no payload", seg.Seq)
		}
		got = append(got, seg.Payload...)
		lens = append(lens, len(seg.Payload))
		psh = append(psh, seg.Flags.Has(craft.FlagPSH))
		next = next.Add(craft.Size(len(seg.Payload)))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("received %d payload bytes that differ from the %d sent", len(got), len(want))
	}
	for i, n := range lens {
		last := i == len(lens)-1
		if len(lens) > 1 && (!last && n != mss || last && n > mss) {
			t.Errorf("segment payloads %v: the kernel should cut at exactly %d bytes", lens, mss)
			break
		}
		if psh[i] != last {
			t.Errorf("PSH on segments %v: tcp_gso_segment keeps it on the last one only", psh)
			break
		}
	}
	t.Logf("%d payload bytes arrived as %d frame(s) of %v bytes, checksums %v", len(want), len(lens), lens, sums)
}

// expectFrame reads one frame and checks it is exactly pkt.
func expectFrame(t *testing.T, c *Capture, pkt []byte, what string) {
	t.Helper()
	f := readOne(t, c, what)
	if !bytes.Equal(f.Data, pkt) {
		t.Fatalf("%s: captured\n%x\nwant the packet sent\n%x", what, f.Data, pkt)
	}
}

// TestGSOSenderDelivers sends a super-segment through a real veth and
// checks that the server namespace receives exactly its bytes, cut at the
// MSS (or whole, where the device passes it on so), and that packets that
// are not super-segments go out byte for byte, over IPv4
// (VIRTIO_NET_HDR_GSO_TCPV4) and IPv6 (VIRTIO_NET_HDR_GSO_TCPV6). It runs
// once with the veth's offloads as they come (TSO and checksum offload on)
// and once with them off, where the kernel segments and checksums in
// software, so both ways a super-segment can be handled are seen.
func TestGSOSenderDelivers(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { gsoSenderDelivers(t, false) })
	t.Run("IPv6", func(t *testing.T) { gsoSenderDelivers(t, true) })
}

func gsoSenderDelivers(t *testing.T, ipv6 bool) {
	labtest.RequireTools(t, "ethtool")
	l := gsoLab(t)
	s := setupGSO(t, l, ipv6)

	run := func(t *testing.T, seq uint32, seed byte) {
		// A super-segment: 3 full segments and a short one, the payload
		// in odd-length pieces (so the kernel's checksums have to cope
		// with pieces that start at odd offsets).
		payload := randomBytes(3*s.mss()+100, seed)
		pieces := cut(payload, 1001, 1447, 3)
		hdr, tmpl := s.headers(t, seq, craft.FlagACK|craft.FlagPSH, pieces, true)
		if err := s.g.Send(hdr, pieces, s.mss()); err != nil {
			t.Fatalf("Send of a super-segment: %v", err)
		}
		readStream(t, s.capture, tmpl, payload, s.mss())
		expectNothing(t, s.capture, "after the super-segment's last byte")
		seq += uint32(len(payload))

		// A whole packet in hdr, no pieces, mss 0: sent as it is.
		data := randomBytes(500, seed+1)
		pkt := s.packet(t, &craft.TCP{SrcPort: s.client.Port(), DstPort: s.server.Port(), Seq: craft.Seq(seq), Ack: 777_777,
			Flags: craft.FlagACK | craft.FlagPSH, Window: 501, Payload: data})
		if err := s.g.Send(pkt, nil, 0); err != nil {
			t.Fatalf("Send of a whole packet: %v", err)
		}
		expectFrame(t, s.capture, pkt, "whole packet, mss 0")
		seq += uint32(len(data))

		// Headers and odd pieces with an mss the payload does not
		// exceed: not a super-segment, sent as it is (its checksum,
		// computed by craft over the pieces, must be right as sent).
		small := cut(randomBytes(1001+3, seed+2), 1001)
		hdr, _ = s.headers(t, seq, craft.FlagACK, small, false)
		if err := s.g.Send(hdr, small, s.mss()); err != nil {
			t.Fatalf("Send of a packet within the MSS: %v", err)
		}
		expectFrame(t, s.capture, append(append(bytes.Clone(hdr), small[0]...), small[1]...), "packet within the MSS")
		seq += 1001 + 3

		// The most pieces a send takes (the kernel's UIO_MAXIOV, 1024
		// iovecs, less the prefix and hdr): one byte each.
		many := make([][]byte, maxIovecs-2)
		for i := range many {
			many[i] = []byte{byte(i)}
		}
		hdr, _ = s.headers(t, seq, craft.FlagACK, many, false)
		if err := s.g.Send(hdr, many, 0); err != nil {
			t.Fatalf("Send of %d pieces: %v", len(many), err)
		}
		want := bytes.Clone(hdr)
		for _, p := range many {
			want = append(want, p...)
		}
		expectFrame(t, s.capture, want, fmt.Sprintf("packet of %d pieces", len(many)))
	}

	t.Run("offloads on", func(t *testing.T) { run(t, 1_000_000, 1) })
	t.Run("offloads off", func(t *testing.T) {
		// Software segmentation and software checksums: every frame
		// then carries a complete TCP checksum that checkChecksum
		// verifies (none is flagged not ready).
		labtest.Run(t, l, l.ClientNS, "ethtool", "-K", l.ClientIf, "tso", "off", "gso", "off", "tx", "off")
		run(t, 2_000_000_000, 7)
	})
}

// TestGSOSenderErrors checks that Send refuses what is not one IPv4/TCP
// packet of the length its header claims, without sending anything, that
// OpenGSOSender refuses interfaces and next hops it cannot send to, and
// Close.
func TestGSOSenderErrors(t *testing.T) {
	l := gsoLab(t)
	s := setupGSO(t, l, false)

	pieces := cut(randomBytes(3*gsoMSS, 3), 1001, 1447)
	good, _ := s.headers(t, 5000, craft.FlagACK, pieces, true)
	mutate := func(f func(h []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tcpOff := 20 + 12 // the data offset byte
	cases := []struct {
		name   string
		hdr    []byte
		pieces [][]byte
		want   string
	}{
		{"empty", nil, pieces, "not an IPv4 packet"},
		{"shorter than an IPv4 header", good[:19], pieces, "not an IPv4 packet"},
		{"IPv6", mutate(func(h []byte) []byte { h[0] = 0x60; return h }), pieces, "not an IPv4 packet"},
		{"IHL below 5", mutate(func(h []byte) []byte { h[0] = 0x44; return h }), pieces, "not a TCP packet"},
		{"UDP", mutate(func(h []byte) []byte { h[9] = 17; return h }), pieces, "not a TCP packet"},
		{"no TCP header", good[:20], pieces, "not a TCP packet"},
		{"TCP header length 16", mutate(func(h []byte) []byte { h[tcpOff] = 4 << 4; return h }), pieces, "bad TCP header length"},
		{"TCP header beyond hdr", mutate(func(h []byte) []byte { h[tcpOff] = 15 << 4; return h }), pieces, "bad TCP header length"},
		{"a piece missing", good, pieces[:2], "total length"},
		{"a piece too many", good, append(append([][]byte{}, pieces...), []byte{1}), "total length"},
		{"total length one short", mutate(func(h []byte) []byte {
			binary.BigEndian.PutUint16(h[2:], binary.BigEndian.Uint16(h[2:])-1)
			return h
		}), pieces, "total length"},
	}
	for _, c := range cases {
		err := s.g.Send(c.hdr, c.pieces, gsoMSS)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Send = %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// One piece more than a send takes (maxIovecs less the prefix and
	// hdr), the headers otherwise right.
	many := make([][]byte, maxIovecs-1)
	for i := range many {
		many[i] = []byte{byte(i)}
	}
	hdr, _ := s.headers(t, 5000, craft.FlagACK, many, true)
	if err := s.g.Send(hdr, many, 0); err == nil || !strings.Contains(err.Error(), "payload pieces") {
		t.Errorf("Send of %d pieces = %v, want an error about payload pieces", len(many), err)
	}
	// None of those was sent. Several match the capture's flow well
	// enough to be seen if they had been.
	expectNothing(t, s.capture, "after refused sends")
	// ...and the capture does see a good send, so the silence above
	// means something.
	if err := s.g.Send(good, pieces, gsoMSS); err != nil {
		t.Fatalf("Send after the refused ones: %v", err)
	}
	if f := readOne(t, s.capture, "the good super-segment"); f.Truncated() {
		t.Fatalf("frame truncated")
	}

	// OpenGSOSender: no Ethernet address, no such interface. A next hop
	// with no neighbour entry, or an entry without an address (as ARP
	// leaves one it got no answer for: flags 0x0 in the table), opens
	// (the address is looked up at the first Send) but cannot send.
	var loErr, missingErr, noNeighErr, failedErr error
	stranger := netip.AddrFrom4([4]byte{10, 0, 2, 99}) // in the lab's /24, nobody's
	unanswered := netip.AddrFrom4([4]byte{10, 0, 2, 98})
	labtest.Run(t, l, l.ClientNS, "ip", "neigh", "add", unanswered.String(), "dev", l.ClientIf, "nud", "failed")
	var strangerG, unansweredG *GSOSender
	inNS(t, l.ClientNS, func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		g, err := OpenGSOSender(lo.Index, netip.MustParseAddr("127.0.0.1"))
		g.Close()
		loErr = err
		g, err = OpenGSOSender(999999, l.ServerIP())
		g.Close()
		missingErr = err
		if strangerG, err = OpenGSOSender(s.route.Index, stranger); err != nil {
			return fmt.Errorf("opening a sender to %v: %w", stranger, err)
		}
		if unansweredG, err = OpenGSOSender(s.route.Index, unanswered); err != nil {
			return fmt.Errorf("opening a sender to %v: %w", unanswered, err)
		}
		return nil
	})
	t.Cleanup(func() { strangerG.Close(); unansweredG.Close() })
	noNeighErr = strangerG.Send(good, pieces, gsoMSS)
	failedErr = unansweredG.Send(good, pieces, gsoMSS)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"loopback", loErr, "has no Ethernet address"},
		{"missing interface", missingErr, "interface 999999"},
		{"no neighbour entry", noNeighErr, fmt.Sprintf("no neighbour entry for %s on %s", stranger, l.ClientIf)},
		{"failed neighbour entry", failedErr, fmt.Sprintf("no neighbour entry for %s on %s", unanswered, l.ClientIf)},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, c.err, c.want)
		}
	}
	expectNothing(t, s.capture, "after sends without a neighbour entry")

	// Close is idempotent; a closed sender says so.
	if err := s.g.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.g.Send(good, pieces, gsoMSS); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v, want net.ErrClosed", err)
	}
	var nilSender *GSOSender
	if err := nilSender.Close(); err != nil {
		t.Fatalf("Close of a nil sender: %v", err)
	}
}

// TestOpenGSOSenderOnNamespacedThread opens a sender on a thread that
// lab.Do switched into the client namespace, with the server's address in
// that namespace's neighbour table, and sends with it from a goroutine that
// is not in the namespace (as tcpcraft's stack goroutines do): the address
// must be found in the namespace the sender was opened in. Everything else
// in this package that looks at a namespace does so on the calling thread
// (Open, LookupRoute, EphemeralPort through /proc/thread-self), and
// tcpcraft's commands run inside lab.Do in tests. The thread is kept off
// the process's main thread, where /proc/self and /proc/thread-self agree
// and the test would prove nothing.
func TestOpenGSOSenderOnNamespacedThread(t *testing.T) {
	l := labtest.New(t)
	resolveNeighbour(t, l, l.ServerIP())
	var route Route
	inNS(t, l.ClientNS, func() (err error) {
		route, err = LookupRoute(l.ServerIP())
		return err
	})
	var tid int
	var arp []byte
	var openErr error
	var g *GSOSender
	offMainThread(func() {
		openErr = lab.Do(l.ClientNS, func() (err error) {
			tid = unix.Gettid()
			arp, _ = os.ReadFile("/proc/thread-self/net/arp")
			g, err = OpenGSOSender(route.Index, l.ServerIP())
			return err
		})
	})
	t.Cleanup(func() { g.Close() })
	if tid == unix.Getpid() {
		t.Fatal("the sender was opened on the main thread after all")
	}
	if !bytes.Contains(arp, []byte(l.ServerIP().String())) {
		t.Fatalf("the client namespace has no neighbour entry for %s; its table:\n%s", l.ServerIP(), arp)
	}
	if openErr != nil {
		t.Fatalf("OpenGSOSender on thread %d (in %s, not the main thread): %v\n"+
			"though that thread's neighbour table (/proc/thread-self/net/arp) has the entry:\n%s"+
			"(/proc/net/arp is the main thread's namespace's table)", tid, l.ClientNS, openErr, arp)
	}
	// A lone SYN to a port nobody listens on (the server answers RST).
	pkt := segment{src: netip.AddrPortFrom(route.Source, 40999), dst: netip.AddrPortFrom(l.ServerIP(), 8092), seq: 1, flags: tcpSYN}.bytes()
	if err := g.Send(pkt, nil, 0); err != nil {
		t.Fatalf("Send from outside the namespace of a sender opened in %s on thread %d: %v\n"+
			"though that namespace's neighbour table has the entry:\n%s", l.ClientNS, tid, err, arp)
	}
}

// offMainThread runs fn on a goroutine locked to a thread that is not the
// process's main thread, and waits for it.
func offMainThread(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if unix.Gettid() != unix.Getpid() {
			fn()
			return
		}
		// This goroutine holds the main thread locked while it waits,
		// so the goroutine below cannot be run on it.
		inner := make(chan struct{})
		go func() {
			defer close(inner)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			fn()
		}()
		<-inner
	}()
	<-done
}
