package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// proberSide is what a prober opens in the client namespace: a block of
// source ports guarded as one, a scope capture, a link sender (with the
// ring or without, as lc says), the raw injector and the neighbour table.
type proberSide struct {
	low, high uint16
	route4    Route
	route6    Route
	cap       *Capture
	link      *LinkSender
	inj       *Injector
	neigh     *Neighbours
}

func openProberSide(t testing.TB, l *lab.Lab, ports int, lc LinkConfig) *proberSide {
	t.Helper()
	p := &proberSide{}
	var g *guard.Guard
	inNS(t, l.ClientNS, func() (err error) {
		if p.route4, err = LookupRoute(l.ServerIP()); err != nil {
			return err
		}
		if p.route6, err = LookupRoute(server6); err != nil {
			return err
		}
		// Outside ip_local_port_range (32768-60999 in a fresh
		// namespace), as tcpcraft's ports are.
		p.low = uint16(20000 + rand.IntN(5000))
		p.high = p.low + uint16(ports) - 1
		scope := Scope{Local: []netip.Addr{p.route4.Source, p.route6.Source}, PortLow: p.low, PortHigh: p.high}
		if g, err = guard.InstallScope(context.Background(), guard.Scope{Addrs: scope.Local, PortLow: p.low, PortHigh: p.high}); err != nil {
			return err
		}
		if p.cap, err = OpenScope(p.route4.Index, scope, Config{SnapLen: 1500, Frames: 8192}); err != nil {
			return err
		}
		if p.link, err = OpenLinkSender(p.route4.Index, lc); err != nil {
			return err
		}
		if p.inj, err = OpenInjector(); err != nil {
			return err
		}
		p.neigh, err = OpenNeighbours()
		return err
	})
	removeOnCleanup(t, g)
	t.Cleanup(func() {
		p.cap.Close()
		p.link.Close()
		p.inj.Close()
		p.neigh.Close()
	})
	return p
}

// resolve asks for addr's link-layer address and waits for it: nothing
// has talked to the server yet, so only Resolve can have put it there.
func (p *proberSide) resolve(t testing.TB, addr netip.Addr) [6]byte {
	t.Helper()
	lookup := func() ([6]byte, bool, error) {
		table, err := p.neigh.Table(p.route4.Index)
		mac, ok := table[addr]
		return mac, ok, err
	}
	if _, ok, err := lookup(); err != nil || ok {
		t.Fatalf("before Resolve: %v has a neighbour entry (%v, %v)", addr, ok, err)
	}
	if err := p.neigh.Resolve(p.route4.Index, addr); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mac, ok, err := lookup()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return mac
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%v not resolved within 5 s", addr)
	return [6]byte{}
}

// syn builds a SYN from our address and port to dst with sequence number
// seq; bad breaks the IPv4 header checksum.
func (p *proberSide) syn(t testing.TB, port uint16, dst netip.AddrPort, seq uint32, bad bool) []byte {
	t.Helper()
	seg := craft.TCP{SrcPort: port, DstPort: dst.Port(), Seq: craft.Seq(seq), Flags: craft.FlagSYN, Window: 64240,
		Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}}
	var b []byte
	var err error
	if dst.Addr().Is4() {
		ip := craft.IPv4{TTL: 64, ID: 0, DontFragment: true, Src: p.route4.Source, Dst: dst.Addr()}
		b, err = craft.AppendIPv4TCP(nil, &ip, &seg, craft.BuildOptions{BadIPChecksum: bad})
	} else {
		ip := craft.IPv6{HopLimit: 64, Src: p.route6.Source, Dst: dst.Addr()}
		b, err = craft.AppendIPv6TCP(nil, &ip, &seg, craft.BuildOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// answers reads frames from the scope capture for up to 3 s until want
// are in, and returns what each (source, our port) drew: "S." "R." or an
// ICMP error's name, keyed "src>port".
func (p *proberSide) answers(t testing.TB, want int) map[string]string {
	t.Helper()
	got := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for len(got) < want {
		f, err := p.cap.ReadFrame(ctx)
		if err != nil {
			break
		}
		var pkt craft.Packet
		err = craft.ParsePacket(craft.LinkRaw, f.Data, &pkt, craft.PacketOptions{PartialChecksum: f.ChecksumNotReady})
		if err == nil {
			got[fmt.Sprintf("%s>%d", netip.AddrPortFrom(pkt.Src(), pkt.TCP.SrcPort), pkt.TCP.DstPort)] = pkt.TCP.Flags.String()
			continue
		}
		var e craft.ICMPError
		if ierr := craft.ParseICMPError(craft.LinkRaw, f.Data, &e); ierr == nil {
			got[fmt.Sprintf("%s>%d", e.Quote.Tuple().Dst, e.Quote.SrcPort)] = e.Name()
			continue
		}
		t.Errorf("a frame the scope should not have admitted: %x (%v)", f.Data, err)
	}
	return got
}

// TestProberSenders: from a block of guarded source ports, SYNs of both
// families in one batch — through the link sender to addresses Resolve
// found, and through the raw injector's sendmmsg — reach the server's
// kernel, and the scope capture brings back every answer: the SYN-ACK of a
// listener, the RST of a closed port, the ICMP errors of REJECT rules (for
// both families) quoting our probe; the guard keeps the client kernel
// from resetting anything (it would add RSTs to the server's count). A
// wrong IPv4 header checksum, which the raw socket would fix, reaches the
// server as sent through the link sender (and is dropped by its IP layer:
// no answer). The link sender is tried with its transmit ring and
// without (sendmmsg), each in a lab of its own.
func TestProberSenders(t *testing.T) {
	for _, lc := range []LinkConfig{{}, {NoRing: true}} {
		t.Run(linkMode(lc), func(t *testing.T) { testProberSenders(t, lc) })
	}
}

// linkMode names a LinkConfig in subtests.
func linkMode(lc LinkConfig) string {
	if lc.NoRing {
		return "no-ring"
	}
	return "ring"
}

func testProberSenders(t *testing.T, lc LinkConfig) {
	l := gsoLab(t)
	for _, addr := range []string{l.ServerIP().String() + ":8081", "[" + server6.String() + "]:8081"} {
		ln := labtest.Listen(t, l, l.ServerNS, addr)
		defer ln.Close()
	}
	labtest.Iptables(t, l, l.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "8083", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
	labtest.Run(t, l, l.ServerNS, "ip6tables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "8083", "-j", "REJECT", "--reject-with", "icmp6-port-unreachable")
	p := openProberSide(t, l, 8, lc)
	if p.link.HasRing() == lc.NoRing {
		t.Fatalf("link sender with a ring: %v, want %v", p.link.HasRing(), !lc.NoRing)
	}
	mac4, mac6 := p.resolve(t, l.ServerIP()), p.resolve(t, server6)
	s4 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(l.ServerIP(), port) }
	s6 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(server6, port) }

	// What the server's device receives of two of them, to compare
	// byte for byte: an IP ID of 0 and a bad header checksum, both of
	// which the raw socket would rewrite.
	var back Route
	inNS(t, l.ServerNS, func() (err error) {
		back, err = LookupRoute(l.ClientIP())
		return err
	})
	from := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(p.route4.Source, port) }
	seen := []*Capture{
		openIn(t, l.ServerNS, back.Index, Flow{Local: s4(8082), Remote: from(p.low + 2)}, Config{Queue: true}),
		openIn(t, l.ServerNS, back.Index, Flow{Local: s4(8082), Remote: from(p.low + 4)}, Config{Queue: true}),
	}

	// Through the link sender: ports low .. low+3 and one bad checksum.
	batch := []LinkPacket{
		{p.syn(t, p.low, s4(8081), 1, false), mac4},
		{p.syn(t, p.low+1, s6(8081), 2, false), mac6},
		{p.syn(t, p.low+2, s4(8082), 3, false), mac4},
		{p.syn(t, p.low+3, s6(8083), 4, false), mac6},
		{p.syn(t, p.low+4, s4(8082), 5, true), mac4},
	}
	if n, err := p.link.SendBatch(batch); n != len(batch) || err != nil {
		t.Fatalf("link SendBatch: %d, %v", n, err)
	}
	got := p.answers(t, 4)
	want := map[string]string{
		fmt.Sprintf("%s>%d", s4(8081), p.low):   "S.",
		fmt.Sprintf("%s>%d", s6(8081), p.low+1): "S.",
		fmt.Sprintf("%s>%d", s4(8082), p.low+2): "R.",
		fmt.Sprintf("%s>%d", s6(8083), p.low+3): "port-unreachable",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("link sender: answers %v, want %v", got, want)
	}
	if !p.link.NeedsAddress() {
		t.Error("a veth needs link-layer addresses")
	}
	for i, c := range seen {
		want := batch[2+2*i].Data
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		f, err := c.ReadFrame(ctx)
		cancel()
		if err != nil {
			t.Errorf("the server's device did not see the packet from port %d: %v", p.low+2+uint16(2*i), err)
			continue
		}
		if !bytes.Equal(f.Data, want) {
			t.Errorf("the server received\n%x\nwant what was sent\n%x", f.Data, want)
		}
	}

	// Through the raw injector, mixed families in one batch.
	raw := [][]byte{
		p.syn(t, p.low+5, s6(8082), 6, false),
		p.syn(t, p.low+6, s4(8083), 7, false),
		p.syn(t, p.low+7, s4(8081), 8, false),
	}
	if n, err := p.inj.SendBatch(raw); n != len(raw) || err != nil {
		t.Fatalf("injector SendBatch: %d, %v", n, err)
	}
	got = p.answers(t, 3)
	want = map[string]string{
		fmt.Sprintf("%s>%d", s6(8082), p.low+5): "R.",
		fmt.Sprintf("%s>%d", s4(8083), p.low+6): "admin-prohibited",
		fmt.Sprintf("%s>%d", s4(8081), p.low+7): "S.",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("injector: answers %v, want %v", got, want)
	}
	// The server saw the bad checksum: its IP layer counts it.
	out := labtest.Run(t, l, l.ServerNS, "cat", "/proc/net/snmp")
	if !strings.Contains(out, "Ip:") || ipInHdrErrors(t, out) < 1 {
		t.Errorf("the server counted no IP header error for the bad checksum:\n%s", out)
	}
	// A batch that holds something else than an IP packet stops there.
	if n, err := p.inj.SendBatch([][]byte{raw[0], {0x10}}); n != 1 || err == nil {
		t.Errorf("injector SendBatch with junk second: %d, %v", n, err)
	}
}

// ipInHdrErrors reads InHdrErrors from /proc/net/snmp's Ip lines.
func ipInHdrErrors(t testing.TB, snmp string) int {
	t.Helper()
	var names, values []string
	for _, line := range strings.Split(snmp, "\n") {
		if rest, ok := strings.CutPrefix(line, "Ip: "); ok {
			if names == nil {
				names = strings.Fields(rest)
			} else {
				values = strings.Fields(rest)
			}
		}
	}
	for i, n := range names {
		if n == "InHdrErrors" && i < len(values) {
			v, _ := strconv.Atoi(values[i])
			return v
		}
	}
	return -1
}

// BenchmarkSenders measures the ways a prober can send SYNs to a closed
// port of the server namespace, each in interleaved rounds, with what the
// prober has on the receiving side (the guard of a port block, a scope
// capture read by a goroutine): one sendto per packet on the raw socket,
// sendmmsg on the raw socket, sendmmsg on an AF_PACKET socket with
// PACKET_QDISC_BYPASS, and the same socket type with a PACKET_TX_RING
// (LinkSender), and LinkSender without its ring (LinkConfig.NoRing, 256
// packets a SendBatch as with the ring). The rate is counted by an nft
// counter in the server namespace. TCPCRAFT_BENCH_PACKETS sets the packets per round (default
// 200000), TCPCRAFT_BENCH_ROUNDS the rounds (default 3).
func BenchmarkSenders(b *testing.B) {
	l := gsoLab(b)
	labtest.Run(b, l, l.ServerNS, "nft", "add table inet bench { chain in { type filter hook input priority -10; tcp dport 9 counter; }; }")
	p := openProberSide(b, l, 1024, LinkConfig{})
	mac := p.resolve(b, l.ServerIP())
	packets, rounds := 200000, 3
	if v, err := strconv.Atoi(os.Getenv("TCPCRAFT_BENCH_PACKETS")); err == nil && v > 0 {
		packets = v
	}
	if v, err := strconv.Atoi(os.Getenv("TCPCRAFT_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	var replies atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if ok, _ := p.cap.TakeFrame(func(Frame) { replies.Add(1) }); !ok {
				time.Sleep(200 * time.Microsecond)
			}
		}
	}()
	defer close(stop)
	counted := func() int {
		out := labtest.Run(b, l, l.ServerNS, "nft", "list", "table", "inet", "bench")
		i := strings.Index(out, "counter packets ")
		n, _ := strconv.Atoi(strings.Fields(out[i+len("counter packets "):])[0])
		return n
	}
	dst := netip.AddrPortFrom(l.ServerIP(), 9)
	pkts := make([][]byte, 1024)
	for i := range pkts {
		pkts[i] = p.syn(b, p.low+uint16(i), dst, uint32(i), false)
	}
	var direct *LinkSender
	inNS(b, l.ClientNS, func() (err error) {
		direct, err = OpenLinkSender(p.route4.Index, LinkConfig{NoRing: true})
		return err
	})
	defer direct.Close()
	linkBatches := func(link *LinkSender) func() error {
		return func() error {
			batch := make([]LinkPacket, 256)
			for i := 0; i < packets; i += len(batch) {
				batch = batch[:min(256, packets-i)]
				for k := range batch {
					batch[k] = LinkPacket{pkts[(i+k)%len(pkts)], mac}
				}
				if _, err := link.SendBatch(batch); err != nil && !errors.Is(err, unix.ENOBUFS) {
					return err
				}
			}
			return nil
		}
	}
	methods := []struct {
		name string
		send func() error
	}{
		{"raw-sendto", func() error {
			for i := range packets {
				if err := p.inj.Send(pkts[i%len(pkts)]); err != nil {
					return err
				}
			}
			return nil
		}},
		{"raw-sendmmsg", func() error {
			for i := 0; i < packets; i += 64 {
				if _, err := p.inj.SendBatch(pkts[i%len(pkts) : i%len(pkts)+64]); err != nil {
					return err
				}
			}
			return nil
		}},
		{"link-sendmmsg", func() error { return packetSendmmsg(p.route4.Index, mac, pkts, packets) }},
		{"link-noring", linkBatches(direct)},
		{"link-txring", linkBatches(p.link)},
	}
	rates := map[string][]float64{}
	for round := range rounds {
		for _, m := range methods {
			before := counted()
			start := time.Now()
			var err error
			inNS(b, l.ClientNS, func() error { err = m.send(); return nil })
			elapsed := time.Since(start)
			if err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
			time.Sleep(50 * time.Millisecond)
			n := counted() - before
			rate := float64(n) / elapsed.Seconds()
			rates[m.name] = append(rates[m.name], rate)
			b.Logf("round %d %-14s %7d of %d counted in %v: %.0f/s", round+1, m.name, n, packets, elapsed.Round(time.Millisecond), rate)
		}
	}
	for _, m := range methods {
		b.ReportMetric(median(rates[m.name]), m.name+"-pkt/s")
	}
	b.ReportMetric(median(rates["link-txring"])/median(rates["raw-sendto"]), "link-txring/raw-sendto")
	b.ReportMetric(median(rates["link-txring"])/median(rates["link-sendmmsg"]), "link-txring/link-sendmmsg")
	b.ReportMetric(median(rates["link-txring"])/median(rates["link-noring"]), "link-txring/link-noring")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// packetSendmmsg sends count packets (cycling through pkts) to mac on
// ifindex through an AF_PACKET socket with PACKET_QDISC_BYPASS, 64 per
// sendmmsg(2): the alternative BenchmarkSenders weighs LinkSender's
// transmit ring against, kept here with the measurement.
func packetSendmmsg(ifindex int, mac [6]byte, pkts [][]byte, count int) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		return err
	}
	to := unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(ethPIP), Ifindex: int32(ifindex), Halen: 6}
	copy(to.Addr[:6], mac[:])
	const batch = 64
	msgs := make([]unix.Mmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	for sent := 0; sent < count; {
		n := min(batch, count-sent)
		for i := range n {
			p := pkts[(sent+i)%len(pkts)]
			iovs[i] = unix.Iovec{Base: &p[0]}
			iovs[i].SetLen(len(p))
			msgs[i] = unix.Mmsghdr{}
			msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&to))
			msgs[i].Hdr.Namelen = uint32(unsafe.Sizeof(to))
			msgs[i].Hdr.Iov = &iovs[i]
			msgs[i].Hdr.SetIovlen(1)
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(n), 0, 0, 0)
		if errno != 0 && errno != unix.ENOBUFS {
			return errno
		}
		sent += max(int(r), 1)
	}
	return nil
}
