package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
	"github.com/tcpcraft/tcpcraft/pcapfile"
)

// quiet is how long a test waits to be sure no (further) frame arrives.
const quiet = 300 * time.Millisecond

// readOne reads a frame or fails the test.
func readOne(t testing.TB, c *Capture, what string) Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := c.ReadFrame(ctx)
	if err != nil {
		t.Fatalf("waiting for %s on %s: %v", what, c.Flow(), err)
	}
	return f
}

// expectNothing fails the test if a frame arrives within quiet.
func expectNothing(t testing.TB, c *Capture, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	f, err := c.ReadFrame(ctx)
	if err == nil {
		t.Fatalf("%s: unexpected frame on %s: %x", why, c.Flow(), f.Data)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: ReadFrame: %v, want context.DeadlineExceeded", why, err)
	}
}

// checkChecksum asserts the frame's TCP checksum verifies unless the
// kernel said it was left for offload, and returns which case it was.
func checkChecksum(t testing.TB, f Frame) string {
	t.Helper()
	if f.ChecksumNotReady {
		return "not ready (partial, offloaded)"
	}
	if !tcpChecksumOK(f.Data) {
		t.Fatalf("frame not flagged CSUMNOTREADY but its TCP checksum is wrong: %x", f.Data)
	}
	return "verified"
}

// clientSide is what a test opens inside the client namespace.
type clientSide struct {
	route Route
	port  uint16
	guard *guard.Guard
	inj   *Injector
}

func openClientSide(t testing.TB, l *lab.Lab, ctx context.Context, server netip.Addr) *clientSide {
	t.Helper()
	cs := &clientSide{}
	err := lab.Do(l.ClientNS, func() (err error) {
		if cs.route, err = LookupRoute(server); err != nil {
			return err
		}
		// /proc/thread-self: the client namespace's sockets and range.
		if cs.port, err = EphemeralPort(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))); err != nil {
			return err
		}
		if cs.guard, err = guard.Install(ctx, netip.AddrPortFrom(cs.route.Source, cs.port)); err != nil {
			return err
		}
		cs.inj, err = OpenInjector()
		return err
	})
	t.Cleanup(func() { cs.inj.Close() })
	removeOnCleanup(t, cs.guard)
	if err != nil {
		t.Fatalf("client namespace: %v", err)
	}
	return cs
}

func openIn(t testing.TB, ns string, ifindex int, flow Flow, cfg Config) *Capture {
	t.Helper()
	var c *Capture
	if err := lab.Do(ns, func() (err error) {
		c, err = Open(ifindex, flow, cfg)
		return err
	}); err != nil {
		t.Fatalf("opening capture for %s in %s: %v", flow, ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// noise keeps kernel TCP traffic flowing between the namespaces on the
// same veth — to the very server port the test uses, from a kernel-chosen
// port — until the test ends, so the filter has something to refuse. It
// returns the client end's address.
func noise(t testing.TB, l *lab.Lab, server string) netip.AddrPort {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := l.Dial(ctx, l.ClientNS, "tcp", server)
	if err != nil {
		cancel()
		t.Fatalf("noise connection: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64)
		for ctx.Err() == nil {
			conn.SetDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write([]byte("noise")); err != nil {
				return
			}
			if _, err := io.ReadFull(conn, buf[:5]); err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); conn.Close(); wg.Wait() })
	local, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return local
}

// echoServer accepts on ln: connections from want's port go to the
// returned channel, every other connection is echoed (noise).
func echoServer(t testing.TB, ln net.Listener, wantPort uint16) <-chan net.Conn {
	t.Helper()
	ours := make(chan net.Conn, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil && ap.Port() == wantPort {
				ours <- c
				continue
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ours
}

// TestLinkAgainstKernelListener is the whole link in one conversation with
// a real kernel, over IPv4 and over IPv6: inject a SYN, capture the
// SYN-ACK, finish the handshake, capture data the kernel sends, reset —
// with unrelated kernel traffic on the same link throughout.
//
// Each runs with both of Capture's ways to read: the ring, and the socket's
// queue (Config.Queue), which must deliver the same frames with the same
// fields.
func TestLinkAgainstKernelListener(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { linkAgainstKernelListener(t, false, false) })
	t.Run("IPv6", func(t *testing.T) { linkAgainstKernelListener(t, true, false) })
	t.Run("IPv4-queue", func(t *testing.T) { linkAgainstKernelListener(t, false, true) })
	t.Run("IPv6-queue", func(t *testing.T) { linkAgainstKernelListener(t, true, true) })
}

func linkAgainstKernelListener(t *testing.T, ipv6, queue bool) {
	labtest.RequireTools(t, "nft")
	l := labtest.New(t)
	checkRootUntouched(t)
	ctx := context.Background()
	server := netip.AddrPortFrom(l.ServerIP(), 8080)
	if ipv6 {
		addIPv6(t, l)
		server = netip.AddrPortFrom(server6, 8080)
	}

	cs := openClientSide(t, l, ctx, server.Addr())
	local := netip.AddrPortFrom(cs.route.Source, cs.port)
	ln := labtest.Listen(t, l, l.ServerNS, server.String())
	accepted := echoServer(t, ln, cs.port)
	noise(t, l, server.String())

	flow := Flow{Local: local, Remote: server}
	reverse := Flow{Local: server, Remote: local} // matches what WE send
	capture := openIn(t, l.ClientNS, cs.route.Index, flow, Config{Queue: queue})
	small := openIn(t, l.ClientNS, cs.route.Index, flow, Config{SnapLen: 100, Queue: queue})
	outIgnored := openIn(t, l.ClientNS, cs.route.Index, reverse, Config{Queue: queue})
	outKept := openIn(t, l.ClientNS, cs.route.Index, reverse, Config{KeepOutgoing: true, Queue: queue})

	pcapPath := filepath.Join(t.TempDir(), "link.pcap")
	pw, err := pcapfile.Create(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	send := func(s segment) []byte {
		t.Helper()
		b := s.bytes()
		now := time.Now()
		if err := cs.inj.Send(b); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if err := pw.WritePacket(now, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	recv := func(what string) (Frame, decoded) {
		t.Helper()
		f := readOne(t, capture, what)
		if err := pw.WriteTruncated(f.Time, f.Data, f.Length); err != nil {
			t.Fatal(err)
		}
		d := decode(t, f.Data)
		if d.src != server || d.dst != local {
			t.Fatalf("%s: frame %v -> %v is not of flow %s", what, d.src, d.dst, flow)
		}
		if f.Truncated() || f.Length != len(f.Data) {
			t.Fatalf("%s: frame of %d bytes kept as %d", what, f.Length, len(f.Data))
		}
		if f.Interface != cs.route.Index {
			t.Errorf("%s: Interface = %d, want %d", what, f.Interface, cs.route.Index)
		}
		return f, d
	}

	const iss = 1_000_000
	sentAt := time.Now()
	syn := send(segment{src: local, dst: server, seq: iss, flags: tcpSYN, options: paddedSYNOptions()})

	synAck, d := recv("SYN-ACK")
	if !d.isSYN || !d.isACK || d.ack != iss+1 {
		t.Fatalf("want SYN-ACK acking %d, got %+v", iss+1, d)
	}
	t.Logf("SYN-ACK checksum: %s; captured %v after sending (kernel timestamp %v)",
		checkChecksum(t, synAck), time.Since(sentAt), synAck.Time.Sub(sentAt))
	if synAck.Time.IsZero() {
		t.Error("frame without capture time")
	}

	// PACKET_IGNORE_OUTGOING: our own SYN is not read back; without it
	// (KeepOutgoing) the very bytes we sent are.
	expectNothing(t, outIgnored, "ignore-outgoing capture")
	if got := readOne(t, outKept, "our SYN, seen outgoing"); !bytes.Equal(got.Data, syn) || !got.Outgoing {
		t.Fatalf("outgoing capture saw %x (outgoing %v), want the SYN we sent %x", got.Data, got.Outgoing, syn)
	}
	if synAck.Outgoing {
		t.Error("the SYN-ACK is flagged outgoing")
	}

	// Finish the handshake; the kernel hands the connection to accept.
	send(segment{src: local, dst: server, seq: iss + 1, ack: d.seq + 1, flags: tcpACK})
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the kernel never accepted the handshake")
	}
	defer conn.Close()

	// The kernel sends data: far more than one MSS, so with TSO/GSO on the
	// veth it may hand over segments larger than the MSS.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 16000) // 256000 bytes
	writeErr := make(chan error, 1)
	go func() {
		conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := conn.Write(payload)
		writeErr <- err
	}()
	var got []byte
	var largest int
	nextSeq := d.seq + 1
	for len(got) < len(payload) {
		f, dd := recv("data")
		if dd.seq != nextSeq {
			// A retransmission or reordering would be TCP's business;
			// here we ACK everything at once, so it would be a bug.
			t.Fatalf("data at seq %d, want %d", dd.seq, nextSeq)
		}
		checkChecksum(t, f)
		got = append(got, dd.payload...)
		largest = max(largest, len(dd.payload))
		nextSeq += uint32(len(dd.payload))
		send(segment{src: local, dst: server, seq: iss + 1, ack: nextSeq, flags: tcpACK})
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("kernel write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("captured %d payload bytes that differ from the %d the kernel sent", len(got), len(payload))
	}
	t.Logf("largest captured segment payload: %d bytes (MSS 1460)", largest)

	// The small-snaplen capture saw the same frames, cut short but with
	// their true length.
	var truncated bool
	for {
		sctx, cancel := context.WithTimeout(ctx, quiet)
		f, err := small.ReadFrame(sctx)
		cancel()
		if err != nil {
			break
		}
		// The ring slot rounds the snap length up a little (16-byte
		// alignment), never down.
		if want := min(f.Length, 100); len(f.Data) < want || len(f.Data) > max(want, 128) {
			t.Fatalf("snap length 100 kept %d bytes of a %d-byte frame", len(f.Data), f.Length)
		}
		if f.Length > len(f.Data) {
			truncated = true
			if !f.Truncated() {
				t.Fatal("Truncated() false for a cut frame")
			}
		}
	}
	if !truncated {
		t.Fatal("no data frame was truncated at snap length 100")
	}

	// Reset the connection; the kernel's socket sees ECONNRESET.
	send(segment{src: local, dst: server, seq: iss + 1, flags: tcpRST})
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("kernel socket after RST: Read error %v, want a reset", err)
	}
	// Nothing else of the flow, and none of the noise, came through.
	expectNothing(t, capture, "after RST")

	st, err := capture.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Drops != 0 || st.Packets == 0 {
		t.Errorf("Stats = %+v, want packets and no drops", st)
	}

	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	checkPcapWithTshark(t, pcapPath, local.Addr())
}

// checkPcapWithTshark runs tshark over the file: it must read it without
// "malformed" and find good IP (IPv4) and TCP checksums on the segments we
// sent from ours (received ones may carry partial, offloaded checksums).
func checkPcapWithTshark(t testing.TB, path string, ours netip.Addr) {
	t.Helper()
	labtest.RequireTools(t, "tshark")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tshark", "-r", path, "-n",
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=|",
		"-e", "ip.src", "-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "_ws.malformed", "-e", "_ws.expert.message", "-e", "ipv6.src").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tshark: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 4 {
		t.Fatalf("tshark saw %d packets:\n%s", len(lines), out)
	}
	n := 0
	for _, line := range lines {
		f := strings.Split(line, "|")
		if len(f) < 6 {
			t.Fatalf("tshark line %q", line)
		}
		if f[3] != "" || strings.Contains(strings.ToLower(f[4]), "malformed") {
			t.Errorf("tshark: malformed packet: %q", line)
		}
		if f[0] == ours.String() || f[5] == ours.String() { // sent by us
			n++
			ipGood := f[1] == "1" || (ours.Is6() && f[1] == "") // IPv6 has no header checksum
			if !ipGood || f[2] != "1" {
				t.Errorf("tshark: our segment's checksums not good (ip=%s tcp=%s; 1 means good): %q", f[1], f[2], line)
			}
		}
	}
	if n == 0 {
		t.Fatalf("tshark found none of our segments:\n%s", out)
	}
	t.Logf("tshark read %d packets, %d of them ours with good checksums", len(lines), n)
}

// A listener's flow (any remote, any local address, every interface)
// captures the SYNs kernel clients send: 0.0.0.0 those over IPv4, :: those
// over IPv6, no address those of both families (bound to ETH_P_ALL), each
// behind the guard of the same scope.
func TestLinkListenerFlowCapturesKernelSYN(t *testing.T) {
	labtest.RequireTools(t, "nft")
	l := labtest.New(t)
	addIPv6(t, l)
	checkRootUntouched(t)
	ctx := context.Background()
	v4, v6 := l.ClientIP(), client6
	for i, c := range []struct {
		name      string
		local     netip.Addr
		want, not []netip.Addr
	}{
		{"0.0.0.0", netip.IPv4Unspecified(), []netip.Addr{v4}, []netip.Addr{v6}},
		{"::", netip.IPv6Unspecified(), []netip.Addr{v6}, []netip.Addr{v4}},
		{"both families", netip.Addr{}, []netip.Addr{v4, v6}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			port := uint16(40100 + i)
			listen := netip.AddrPortFrom(c.local, port)
			var g *guard.Guard
			inNS(t, l.ClientNS, func() (err error) {
				g, err = guard.Install(ctx, listen)
				return err
			})
			removeOnCleanup(t, g)
			capture := openIn(t, l.ClientNS, 0, Flow{Local: listen}, Config{})
			dial := func(to netip.Addr) <-chan error {
				dialCtx, cancel := context.WithTimeout(ctx, time.Second)
				done := make(chan error, 1)
				go func() {
					defer cancel()
					c, err := l.Dial(dialCtx, l.ServerNS, "tcp", netip.AddrPortFrom(to, port).String())
					if err == nil {
						c.Close()
					}
					done <- err
				}()
				return done
			}
			for _, to := range c.want {
				done := dial(to)
				f := readOne(t, capture, "kernel SYN to "+to.String())
				d := decode(t, f.Data)
				if !d.isSYN || d.isACK || d.dst != netip.AddrPortFrom(to, port) {
					t.Fatalf("captured %+v, want a SYN to %s", d, netip.AddrPortFrom(to, port))
				}
				t.Logf("kernel SYN to %s: checksum %s", to, checkChecksum(t, f))
				if err := <-done; err == nil {
					t.Fatalf("the dial to %s connected: the guard let the SYN through", to)
				}
				// The kernel client retransmitted its SYN meanwhile.
				for {
					qctx, cancel := context.WithTimeout(ctx, quiet)
					f, err := capture.ReadFrame(qctx)
					cancel()
					if err != nil {
						break
					}
					if d := decode(t, f.Data); !d.isSYN || d.dst != netip.AddrPortFrom(to, port) {
						t.Fatalf("captured %+v, want only retransmitted SYNs to %s", d, netip.AddrPortFrom(to, port))
					}
				}
			}
			for _, to := range c.not {
				// Not guarded: the kernel refuses at once, and the
				// capture sees nothing.
				if err := <-dial(to); err == nil || !strings.Contains(err.Error(), "refused") {
					t.Fatalf("dial to %s (outside the guard): %v, want connection refused", to, err)
				}
				expectNothing(t, capture, "SYN of the other family")
			}
		})
	}
}

// On loopback every frame passes the capture point twice (out and in);
// with PACKET_IGNORE_OUTGOING the SYN-ACK is read once.
func TestLinkLoopback(t *testing.T) {
	bothReads(t, func(t *testing.T, read Config) {
		labtest.RequireTools(t, "nft")
		l := labtest.New(t)
		checkRootUntouched(t)
		ctx := context.Background()
		loop := netip.MustParseAddr("127.0.0.1")
		server := netip.AddrPortFrom(loop, 8081)
		labtest.Listen(t, l, l.ClientNS, server.String())

		route, inj, port := loopbackInjector(t, ctx, l.ClientNS, 9)
		if route.Interface != "lo" {
			t.Fatalf("route to %s via %q, want lo", loop, route.Interface)
		}
		local := netip.AddrPortFrom(route.Source, port)
		flow := Flow{Local: local, Remote: server}
		once := openIn(t, l.ClientNS, route.Index, flow, read)
		twice := openIn(t, l.ClientNS, route.Index, flow, Config{KeepOutgoing: true, Queue: read.Queue})

		const iss = 5000
		if err := inj.Send(segment{src: local, dst: server, seq: iss, flags: tcpSYN, options: paddedSYNOptions()}.bytes()); err != nil {
			t.Fatal(err)
		}
		f := readOne(t, once, "SYN-ACK on lo")
		d := decode(t, f.Data)
		if !d.isSYN || !d.isACK || d.ack != iss+1 {
			t.Fatalf("want SYN-ACK, got %+v", d)
		}
		// Reset at once, before the kernel retransmits its SYN-ACK (1 s).
		if err := inj.Send(segment{src: local, dst: server, seq: iss + 1, flags: tcpRST}.bytes()); err != nil {
			t.Fatal(err)
		}
		t.Logf("loopback SYN-ACK checksum: %s", checkChecksum(t, f))
		if f.Outgoing || f.Interface != route.Index {
			t.Errorf("SYN-ACK on lo: Outgoing %v, Interface %d (want false, %d)", f.Outgoing, f.Interface, route.Index)
		}
		a, b := readOne(t, twice, "SYN-ACK, outgoing copy"), readOne(t, twice, "SYN-ACK, incoming copy")
		if !bytes.Equal(a.Data, f.Data) || !bytes.Equal(b.Data, f.Data) || !a.Outgoing || b.Outgoing {
			t.Fatalf("the KeepOutgoing capture did not see the SYN-ACK leave and arrive: outgoing=%v %x, outgoing=%v %x",
				a.Outgoing, a.Data, b.Outgoing, b.Data)
		}
		expectNothing(t, once, "ignore-outgoing capture on lo after one SYN-ACK")
		expectNothing(t, twice, "keep-outgoing capture on lo after both copies")
	})
}

// With kernel traffic flowing before and while the socket is set up, a
// capture for a silent flow never delivers a frame: nothing is queued
// before the filter is in place.
func TestCaptureNothingBeforeFilter(t *testing.T) {
	bothReads(t, func(t *testing.T, read Config) {
		l := labtest.New(t)
		server := netip.AddrPortFrom(l.ServerIP(), 8082)
		ln := labtest.Listen(t, l, l.ServerNS, server.String())
		echoServer(t, ln, 0)
		noiseLocal := noise(t, l, server.String())
		for i := range 20 {
			// The silent flow shares the server address and port with the noise.
			flow := Flow{Local: netip.AddrPortFrom(l.ClientIP(), noiseLocal.Port()+1+uint16(i)), Remote: server}
			c := openIn(t, l.ClientNS, 0, flow, read)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			f, err := c.ReadFrame(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("capture %d for silent flow %s: ReadFrame = %x, %v; want nothing", i, flow, f.Data, err)
			}
			st, err := c.Stats()
			if err != nil || st.Packets != 0 {
				t.Fatalf("capture %d: Stats = %+v, %v; want no packets", i, st, err)
			}
			c.Close()
		}
		// A capture for the noise itself does see it, so the silence above is
		// the filter's doing.
		c := openIn(t, l.ClientNS, 0, Flow{Local: noiseLocal, Remote: server}, read)
		d := decode(t, readOne(t, c, "noise").Data)
		if d.src != server || d.dst != noiseLocal {
			t.Fatalf("noise capture got %v -> %v", d.src, d.dst)
		}
	})
}

func TestCaptureCloseAndCancel(t *testing.T) {
	bothReads(t, func(t *testing.T, read Config) {
		l := labtest.New(t)
		flow := Flow{Local: netip.AddrPortFrom(l.ClientIP(), 40200)}
		c := openIn(t, l.ClientNS, 0, flow, read)

		// Cancellation wakes a blocked read.
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := c.ReadFrame(ctx); errc <- err }()
		time.Sleep(50 * time.Millisecond)
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("after cancel: %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("cancel did not wake ReadFrame")
		}

		// A later read with a live context still works (the deadline the
		// cancellation set is not left behind).
		ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel2()
		if _, err := c.ReadFrame(ctx2); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second read: %v, want context.DeadlineExceeded", err)
		}

		// Close wakes a blocked read.
		go func() { _, err := c.ReadFrame(context.Background()); errc <- err }()
		time.Sleep(50 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake ReadFrame")
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := c.ReadFrame(context.Background()); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrame after Close: %v, want net.ErrClosed", err)
		}
		if _, err := c.Stats(); err == nil {
			t.Fatal("Stats after Close succeeded")
		}
	})
}

func TestOpenErrors(t *testing.T) {
	l := labtest.New(t)
	good := Flow{Local: netip.AddrPortFrom(l.ClientIP(), 40300)}
	cases := []struct {
		name    string
		ifindex int
		flow    Flow
		cfg     Config
		want    string
	}{
		{"no local port", 0, Flow{Local: netip.AddrPortFrom(l.ClientIP(), 0)}, Config{}, "local port is 0"},
		{"negative interface", -1, good, Config{}, "bad interface index"},
		{"missing interface", 999999, good, Config{}, "binding to interface index 999999"},
		{"snap length too small", 0, good, Config{SnapLen: 10}, "snap length"},
		{"snap length too big", 0, good, Config{SnapLen: 70000}, "snap length"},
		{"ring too big", 0, good, Config{Frames: 1 << 20}, "ring of"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := lab.Do(l.ClientNS, func() error {
				capture, err := Open(c.ifindex, c.flow, c.cfg)
				if err == nil {
					capture.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestInjectorErrors(t *testing.T) {
	l := labtest.New(t)
	addIPv6(t, l)
	var inj *Injector
	inNS(t, l.ClientNS, func() (err error) {
		inj, err = OpenInjector()
		return err
	})
	defer inj.Close()
	src := netip.AddrPortFrom(l.ClientIP(), 40400)
	dst := netip.AddrPortFrom(l.ServerIP(), 9)
	src6, dst6 := netip.AddrPortFrom(client6, 40400), netip.AddrPortFrom(server6, 9)
	big := segment{src: src, dst: dst, flags: tcpACK, payload: make([]byte, 2000)}.bytes()
	big6 := segment{src: src6, dst: dst6, flags: tcpACK, payload: make([]byte, 2000)}.bytes()
	longer6 := append(segment{src: src6, dst: dst6, flags: tcpACK}.bytes(), 0) // a byte beyond the payload length
	mapped6 := segment{src: src6, dst: dst6, flags: tcpACK}.bytes()
	copy(mapped6[24:40], netip.MustParseAddr("::ffff:10.0.2.20").AsSlice())
	for _, c := range []struct {
		name string
		pkt  []byte
		want string
	}{
		{"empty", nil, "empty packet"},
		{"version 0", make([]byte, 40), "IP version 0, want 4 or 6"},
		{"short IPv4", append([]byte{0x45}, make([]byte, 18)...), "shorter than an IPv4 header"},
		{"short IPv6", append([]byte{0x60}, make([]byte, 38)...), "shorter than an IPv6 header"},
		{"IHL beyond the packet", append([]byte{0x4f}, make([]byte, 39)...), "does not fit"},
		{"IPv6 payload length wrong", longer6, "does not match"},
		{"IPv4-mapped IPv6 destination", mapped6, "IPv4-mapped"},
		{"above the MTU", big, "exceed the MTU"},
		{"IPv6 above the MTU", big6, "exceed the MTU"},
	} {
		if err := inj.Send(c.pkt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Send error %v, want one containing %q", c.name, err, c.want)
		}
	}
	n, err := inj.SendBatch([][]byte{segment{src: src, dst: dst, flags: tcpRST}.bytes(), nil})
	if n != 1 || err == nil {
		t.Errorf("SendBatch with a bad second packet = %d, %v; want 1 and an error", n, err)
	}
	if err := inj.Close(); err != nil {
		t.Fatal(err)
	}
	if err := inj.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := inj.Send(segment{src: src, dst: dst, flags: tcpRST}.bytes()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Send after Close: %v, want net.ErrClosed", err)
	}
	if err := inj.Send(segment{src: src6, dst: dst6, flags: tcpRST}.bytes()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("IPv6 Send after Close: %v, want net.ErrClosed", err)
	}
}

func TestLookupRoute(t *testing.T) {
	l := labtest.New(t)
	labtest.Run(t, l, l.ClientNS, "ip", "route", "add", "192.0.2.0/24", "via", l.ServerIP().String())
	labtest.Run(t, l, l.ClientNS, "ip", "route", "add", "198.51.100.0/24", "via", l.ServerIP().String(), "mtu", "lock", "1400")

	type result struct {
		r   Route
		err error
	}
	results := map[string]result{}
	inNS(t, l.ClientNS, func() error {
		for _, a := range []string{"10.0.2.20", "127.0.0.1", "10.0.2.21", "192.0.2.7", "198.51.100.1", "203.0.113.1"} {
			r, err := LookupRoute(netip.MustParseAddr(a))
			results[a] = result{r, err}
		}
		return nil
	})
	get := func(a string) Route {
		t.Helper()
		res := results[a]
		if res.err != nil {
			t.Fatalf("LookupRoute(%s): %v", a, res.err)
		}
		return res.r
	}

	r := get("10.0.2.20")
	veth, err := ifaceIn(t, l.ClientNS, l.ClientIf)
	if err != nil {
		t.Fatal(err)
	}
	if r.Interface != l.ClientIf || r.Index != veth.Index || r.Source != l.ClientIP() || r.Local ||
		r.Gateway.IsValid() || r.NextHop() != l.ServerIP() || r.MTU != veth.MTU {
		t.Errorf("route to 10.0.2.20 = %+v; want %s (index %d, MTU %d), source %s, on-link", r, l.ClientIf, veth.Index, veth.MTU, l.ClientIP())
	}

	for _, a := range []string{"127.0.0.1", "10.0.2.21"} {
		r := get(a)
		if r.Interface != "lo" || !r.Local || r.MTU != 65536 || r.NextHop() != netip.MustParseAddr(a) {
			t.Errorf("route to %s = %+v; want local via lo, MTU 65536", a, r)
		}
	}
	if r := get("127.0.0.1"); r.Source != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("route to 127.0.0.1: source %s", r.Source)
	}

	r = get("192.0.2.7")
	if r.Gateway != l.ServerIP() || r.NextHop() != l.ServerIP() || r.Interface != l.ClientIf || r.MTU != veth.MTU {
		t.Errorf("route to 192.0.2.7 = %+v; want via %s on %s", r, l.ServerIP(), l.ClientIf)
	}
	if r := get("198.51.100.1"); r.MTU != 1400 {
		t.Errorf("route with mtu lock 1400: MTU = %d", r.MTU)
	}
	if err := results["203.0.113.1"].err; err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("route to 203.0.113.1 with no default route: %v, want network unreachable", err)
	}
}

func TestLookupRouteIPv6(t *testing.T) {
	l := labtest.New(t)
	addIPv6(t, l)
	labtest.Run(t, l, l.ClientNS, "ip", "-6", "route", "add", "2001:db8:1::/64", "via", server6.String())
	labtest.Run(t, l, l.ClientNS, "ip", "-6", "route", "add", "2001:db8:2::/64", "via", server6.String(), "mtu", "lock", "1400")
	veth, err := ifaceIn(t, l.ClientNS, l.ClientIf)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   Route
		err error
	}
	results := map[string]result{}
	inNS(t, l.ClientNS, func() error {
		for _, a := range []string{"fd00:2::20", "::1", "fd00:2::21", "2001:db8:1::7", "2001:db8:2::7", "2001:db8:99::1", "fe80::1", "::"} {
			r, err := LookupRoute(netip.MustParseAddr(a))
			results[a] = result{r, err}
		}
		return nil
	})
	get := func(a string) Route {
		t.Helper()
		res := results[a]
		if res.err != nil {
			t.Fatalf("LookupRoute(%s): %v", a, res.err)
		}
		return res.r
	}
	// On the link: the kernel chose fd00:2::21 as source (not the
	// link-local address the veth also has).
	if r := get("fd00:2::20"); r.Interface != l.ClientIf || r.Index != veth.Index || r.Source != client6 || r.Local ||
		r.Gateway.IsValid() || r.NextHop() != server6 || r.MTU != veth.MTU {
		t.Errorf("route to fd00:2::20 = %+v; want %s (index %d, MTU %d), source %s, on-link", r, l.ClientIf, veth.Index, veth.MTU, client6)
	}
	for _, a := range []string{"::1", "fd00:2::21"} {
		r := get(a)
		if r.Interface != "lo" || !r.Local || r.NextHop() != netip.MustParseAddr(a) {
			t.Errorf("route to %s = %+v; want local via lo", a, r)
		}
	}
	if r := get("2001:db8:1::7"); r.Gateway != server6 || r.NextHop() != server6 || r.Source != client6 || r.Interface != l.ClientIf {
		t.Errorf("route to 2001:db8:1::7 = %+v; want via %s on %s from %s", r, server6, l.ClientIf, client6)
	}
	if r := get("2001:db8:2::7"); r.MTU != 1400 {
		t.Errorf("route with mtu lock 1400: MTU = %d", r.MTU)
	}
	if err := results["2001:db8:99::1"].err; err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("route to 2001:db8:99::1 with no default route: %v, want network unreachable", err)
	}
	if err := results["fe80::1"].err; err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("route to fe80::1: %v, want link-local refused", err)
	}
	if err := results["::"].err; err == nil {
		t.Error("route to :: succeeded")
	}
}

// TestInterfaceAndAddressRoutes: the lookups behind --iface and `listen
// ADDR:PORT`, and the set of this host's addresses a listener on every
// address answers for.
func TestInterfaceAndAddressRoutes(t *testing.T) {
	l := labtest.New(t)
	addIPv6(t, l)
	// A second veth pair inside the client namespace whose only global
	// IPv6 address is still tentative (duplicate address detection, made
	// to last 30 s by 30 probes a second apart): it has no usable IPv6
	// source yet.
	labtest.Run(t, l, l.ClientNS, "ip", "link", "add", "tcdad0", "type", "veth", "peer", "name", "tcdad1")
	labtest.Run(t, l, l.ClientNS, "sysctl", "-q", "-w", "net.ipv6.conf.tcdad0.dad_transmits=30")
	labtest.Run(t, l, l.ClientNS, "ip", "link", "set", "tcdad0", "up")
	labtest.Run(t, l, l.ClientNS, "ip", "link", "set", "tcdad1", "up")
	labtest.Run(t, l, l.ClientNS, "ip", "-6", "addr", "add", "fd00:9::1/64", "dev", "tcdad0")
	veth, err := ifaceIn(t, l.ClientNS, l.ClientIf)
	if err != nil {
		t.Fatal(err)
	}
	var r4, r6, rAddr4, rAddr6, rLo Route
	var errTentative, errMissing, errNoAddr error
	var own func(netip.Addr) bool
	inNS(t, l.ClientNS, func() (err error) {
		if r4, err = InterfaceRoute(l.ClientIf, netip.Addr{}); err != nil {
			return err
		}
		if r6, err = InterfaceRoute(l.ClientIf, server6); err != nil {
			return err
		}
		if rLo, err = InterfaceRoute("lo", netip.Addr{}); err != nil {
			return err
		}
		_, errTentative = InterfaceRoute("tcdad0", server6)
		_, errMissing = InterfaceRoute("tcnosuch0", netip.Addr{})
		if rAddr4, err = AddressRoute(l.ClientIP()); err != nil {
			return err
		}
		if rAddr6, err = AddressRoute(client6); err != nil {
			return err
		}
		_, errNoAddr = AddressRoute(server6)
		own, err = HostAddresses()
		return err
	})
	for _, c := range []struct {
		name string
		r    Route
		src  netip.Addr
	}{{"InterfaceRoute IPv4", r4, l.ClientIP()}, {"InterfaceRoute IPv6", r6, client6},
		{"AddressRoute IPv4", rAddr4, l.ClientIP()}, {"AddressRoute IPv6", rAddr6, client6}} {
		if c.r.Interface != l.ClientIf || c.r.Index != veth.Index || c.r.MTU != veth.MTU || c.r.Source != c.src || c.r.Local {
			t.Errorf("%s = %+v; want %s (index %d, MTU %d) with source %s", c.name, c.r, l.ClientIf, veth.Index, veth.MTU, c.src)
		}
	}
	if rLo.Interface != "lo" || !rLo.Local || rLo.Source != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("InterfaceRoute(lo) = %+v", rLo)
	}
	if errTentative == nil || !strings.Contains(errTentative.Error(), "no usable IPv6 address") {
		t.Errorf("InterfaceRoute of an interface with only a tentative address: %v", errTentative)
	}
	if !errors.Is(errMissing, ErrNoSuchInterface) {
		t.Errorf("InterfaceRoute of a missing interface: %v, want ErrNoSuchInterface", errMissing)
	}
	if errNoAddr == nil {
		t.Error("AddressRoute of the server's address (not ours) succeeded")
	}
	for a, want := range map[string]bool{"10.0.2.21": true, "fd00:2::21": true, "127.0.0.1": true, "::1": true,
		"::ffff:10.0.2.21": true, "10.0.2.20": false, "fd00:2::20": false} {
		if got := own(netip.MustParseAddr(a)); got != want {
			t.Errorf("HostAddresses(%s) = %v, want %v", a, got, want)
		}
	}
}

func ifaceIn(t *testing.T, ns, name string) (*net.Interface, error) {
	t.Helper()
	var ifc *net.Interface
	err := lab.Do(ns, func() (err error) {
		ifc, err = net.InterfaceByName(name)
		return err
	})
	return ifc, err
}

// BenchmarkSYNToSYNACK measures the link's latency, over IPv4 and IPv6:
// inject a SYN through the raw socket, read the kernel listener's SYN-ACK
// from the ring, reset. Run with
// `go test -run '^$' -bench SYNToSYNACK ./capture/`.
func BenchmarkSYNToSYNACK(b *testing.B) {
	b.Run("IPv4", func(b *testing.B) { benchSYNToSYNACK(b, false) })
	b.Run("IPv6", func(b *testing.B) { benchSYNToSYNACK(b, true) })
}

func benchSYNToSYNACK(b *testing.B, ipv6 bool) {
	labtest.RequireTools(b, "nft")
	l := labtest.New(b)
	ctx := context.Background()
	server := netip.AddrPortFrom(l.ServerIP(), 8080)
	if ipv6 {
		addIPv6(b, l)
		server = netip.AddrPortFrom(server6, 8080)
	}
	cs := openClientSide(b, l, ctx, server.Addr())
	local := netip.AddrPortFrom(cs.route.Source, cs.port)
	labtest.Listen(b, l, l.ServerNS, server.String())
	capture := openIn(b, l.ClientNS, cs.route.Index, Flow{Local: local, Remote: server}, Config{})

	var kernelDelay, readDelay time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		iss := uint32(i) * 1_000_000
		sent := time.Now()
		if err := cs.inj.Send(segment{src: local, dst: server, seq: iss, flags: tcpSYN, options: paddedSYNOptions()}.bytes()); err != nil {
			b.Fatal(err)
		}
		f := readOne(b, capture, "SYN-ACK")
		readDelay += time.Since(sent)
		kernelDelay += f.Time.Sub(sent)
		if err := cs.inj.Send(segment{src: local, dst: server, seq: iss + 1, flags: tcpRST}.bytes()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// send -> kernel capture timestamp (the kernel's share), and send ->
	// ReadFrame returning (adds the ring wakeup through the Go poller).
	b.ReportMetric(float64(kernelDelay.Nanoseconds())/float64(b.N), "ns-to-capture/op")
	b.ReportMetric(float64(readDelay.Nanoseconds())/float64(b.N), "ns-to-read/op")
}

// WaitFrame waits for a frame without taking it: the one SYN that arrives
// is still there for TryReadFrame, and only once. It honours its context
// and ends with net.ErrClosed once the capture is closed.
func TestWaitFrameLeavesTheFrame(t *testing.T) {
	bothReads(t, func(t *testing.T, read Config) {
		l := labtest.New(t)
		server := netip.AddrPortFrom(l.ServerIP(), 8099) // nobody listens: one SYN, one RST
		c := openIn(t, l.ServerNS, 0, Flow{Local: server}, read)

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := c.WaitFrame(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitFrame on a silent flow: %v, want context.DeadlineExceeded", err)
		}

		waited := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			waited <- c.WaitFrame(ctx)
		}()
		time.Sleep(20 * time.Millisecond)
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		if conn, err := l.Dial(dctx, l.ClientNS, "tcp", server.String()); err == nil {
			conn.Close()
			t.Fatal("a connection to a port nobody listens on succeeded")
		}
		dcancel()
		if err := <-waited; err != nil {
			t.Fatalf("WaitFrame: %v", err)
		}
		f, ok, err := c.TryReadFrame()
		if !ok || err != nil {
			t.Fatalf("TryReadFrame after WaitFrame: ok %v, %v; the frame WaitFrame saw is gone", ok, err)
		}
		if d := decode(t, f.Data); d.dst != server {
			t.Fatalf("frame to %v, want the SYN to %v", d.dst, server)
		}
		if _, ok, _ := c.TryReadFrame(); ok {
			t.Fatal("a second frame for one SYN")
		}

		go func() { waited <- c.WaitFrame(context.Background()) }()
		time.Sleep(20 * time.Millisecond)
		c.Close()
		select {
		case err := <-waited:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("WaitFrame after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake WaitFrame")
		}
		if err := c.WaitFrame(context.Background()); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("WaitFrame on a closed capture: %v, want net.ErrClosed", err)
		}
	})
}

// TakeFrame hands a frame over in place, once: the SYN decodes inside the
// call, and the slot is given back (nothing more to take). Closed, it
// says so.
func TestTakeFrameInPlace(t *testing.T) {
	bothReads(t, func(t *testing.T, read Config) {
		l := labtest.New(t)
		server := netip.AddrPortFrom(l.ServerIP(), 8098) // nobody listens: one SYN, one RST
		c := openIn(t, l.ServerNS, 0, Flow{Local: server}, read)
		if ok, err := c.TakeFrame(func(Frame) { t.Error("a frame on a silent flow") }); ok || err != nil {
			t.Fatalf("TakeFrame on a silent flow: %v, %v", ok, err)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		if conn, err := l.Dial(dctx, l.ClientNS, "tcp", server.String()); err == nil {
			conn.Close()
			t.Fatal("a connection to a port nobody listens on succeeded")
		}
		dcancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.WaitFrame(ctx); err != nil {
			t.Fatalf("WaitFrame: %v", err)
		}
		var dst netip.AddrPort
		calls := 0
		ok, err := c.TakeFrame(func(f Frame) {
			calls++
			dst = decode(t, f.Data).dst
		})
		if !ok || err != nil || calls != 1 || dst != server {
			t.Fatalf("TakeFrame: ok %v, %v, %d calls, frame to %v; want the SYN to %v once", ok, err, calls, dst, server)
		}
		if ok, _ := c.TakeFrame(func(Frame) { t.Error("the SYN handed over twice") }); ok {
			t.Fatal("a second frame for one SYN")
		}
		c.Close()
		if _, err := c.TakeFrame(func(Frame) {}); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("TakeFrame after Close: %v, want net.ErrClosed", err)
		}
	})
}

// SendBatch sends every packet of a batch (one sendmmsg), in order: SYNs
// to five closed ports on loopback draw the kernel's five RSTs, in the
// order the SYNs went.
func TestInjectorSendBatch(t *testing.T) {
	labtest.RequireTools(t, "nft")
	l := labtest.New(t)
	checkRootUntouched(t)
	ctx := context.Background()
	loop := netip.MustParseAddr("127.0.0.1")
	route, inj, port := loopbackInjector(t, ctx, l.ClientNS, 7)
	local := netip.AddrPortFrom(route.Source, port)
	capt := openIn(t, l.ClientNS, route.Index, Flow{Local: local}, Config{})

	var batch [][]byte
	for i := range 5 {
		batch = append(batch, segment{src: local, dst: netip.AddrPortFrom(loop, uint16(9101+i)), seq: uint32(1000 * (i + 1)), flags: tcpSYN}.bytes())
	}
	if n, err := inj.SendBatch(batch); n != 5 || err != nil {
		t.Fatalf("SendBatch = %d, %v; want 5, nil", n, err)
	}
	for i := range 5 {
		d := decode(t, readOne(t, capt, "an RST").Data)
		if !d.isRST || d.src.Port() != uint16(9101+i) || d.ack != uint32(1000*(i+1)+1) {
			t.Errorf("answer %d: %+v, want the RST of port %d acknowledging %d", i, d, 9101+i, 1000*(i+1)+1)
		}
	}
	expectNothing(t, capt, "after the five RSTs")
}

// With a snap length far below the peer's segments and LongFramesWhole,
// a kernel client's upload still arrives whole and in order: its 64 KB
// TSO segments come through the socket's queue for their ring slots
// marked TP_STATUS_COPY, the small ones from the ring. Without
// LongFramesWhole the same upload arrives truncated (the control).
func TestLongFramesWhole(t *testing.T) {
	l := labtest.New(t)
	for _, whole := range []bool{true, false} {
		t.Run(fmt.Sprintf("whole=%v", whole), func(t *testing.T) {
			port := uint16(8096)
			if !whole {
				port = 8095
			}
			server := netip.AddrPortFrom(l.ServerIP(), port)
			const snap = 200
			c := openIn(t, l.ServerNS, 0, Flow{Local: server}, Config{SnapLen: snap, Frames: 512, LongFramesWhole: whole})
			ln, err := l.Listen(l.ServerNS, "tcp", server.String())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const size = 1 << 20
			got := make(chan int, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					got <- -1
					return
				}
				defer conn.Close()
				n, _ := io.Copy(io.Discard, conn)
				got <- int(n)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := l.Dial(ctx, l.ClientNS, "tcp", server.String())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(make([]byte, size)); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			if n := <-got; n != size {
				t.Fatalf("the server read %d bytes, want %d", n, size)
			}

			// Every byte of the upload, by sequence number, from the
			// captured frames; the largest frame; truncated frames.
			var isn uint32
			seen := make([]bool, size)
			largest, truncated := 0, 0
			for {
				f, ok, err := c.TryReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if f.Truncated() {
					truncated++
					continue
				}
				d := decode(t, f.Data)
				if d.isSYN {
					isn = d.seq + 1
					continue
				}
				largest = max(largest, len(f.Data))
				off := int(d.seq - isn)
				for i := range d.payload {
					if off+i >= 0 && off+i < size {
						seen[off+i] = true
					}
				}
			}
			missing := 0
			for _, s := range seen {
				if !s {
					missing++
				}
			}
			if !whole {
				if truncated == 0 {
					t.Fatalf("no frame truncated to %d bytes: the kernel sent no segment longer than the snap length, so the test shows nothing", snap)
				}
				return
			}
			if truncated != 0 || missing != 0 {
				t.Fatalf("%d frames truncated, %d of %d bytes missing; want every frame whole", truncated, missing, size)
			}
			if largest <= snap {
				t.Fatalf("largest frame %d bytes: no frame longer than the snap length %d came through the copy path", largest, snap)
			}
			t.Logf("largest frame %d bytes with a snap length of %d", largest, snap)
		})
	}
}

// loopbackInjector, in namespace ns, looks up the route to 127.0.0.1,
// picks a port (from a generator seeded seed), guards it and opens an
// injector; the injector and the guard go at cleanup.
func loopbackInjector(t *testing.T, ctx context.Context, ns string, seed uint64) (Route, *Injector, uint16) {
	t.Helper()
	var route Route
	var inj *Injector
	var g *guard.Guard
	var port uint16
	inNS(t, ns, func() (err error) {
		if route, err = LookupRoute(netip.MustParseAddr("127.0.0.1")); err != nil {
			return err
		}
		if port, err = EphemeralPort(rand.New(rand.NewPCG(seed, seed))); err != nil {
			return err
		}
		if g, err = guard.Install(ctx, netip.AddrPortFrom(route.Source, port)); err != nil {
			return err
		}
		inj, err = OpenInjector()
		return err
	})
	t.Cleanup(func() { inj.Close() })
	removeOnCleanup(t, g)
	return route, inj, port
}
