package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func listen(t *testing.T, s *Stack, port uint16, backlog int) *Listener {
	t.Helper()
	l, err := s.Listen(netip.Addr{}, port, backlog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewLocalAddresses(t *testing.T) {
	a, _ := newWire()
	for _, addr := range []netip.Addr{netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("ff02::1"), netip.MustParseAddr("224.0.0.1")} {
		if _, err := New(a, Config{Local: addr}); err == nil {
			t.Errorf("New with local address %v: no error", addr)
		}
	}
	for _, addr := range []netip.Addr{{}, netip.IPv4Unspecified(), netip.IPv6Unspecified(), serverIP, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:192.0.2.1")} {
		if _, err := New(a, Config{Local: addr}); err != nil {
			t.Errorf("New with local address %v: %v", addr, err)
		}
	}
}

func TestListenErrors(t *testing.T) {
	a, _ := newWire()
	s := startStack(t, a, serverIP, testConnConfig(), nil)
	if _, err := s.Listen(netip.Addr{}, 0, 1); err == nil {
		t.Error("Listen on port 0: no error")
	}
	listen(t, s, 80, 1)
	if _, err := s.Listen(netip.Addr{}, 80, 1); err == nil {
		t.Error("a second Listen on port 80: no error")
	}
	s.Shutdown()
	if _, err := s.Listen(netip.Addr{}, 81, 1); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after Shutdown: %v, want net.ErrClosed", err)
	}
	if _, err := s.Dial(testContext(t), netip.MustParseAddrPort("192.0.2.9:80"), 4000); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Shutdown: %v, want net.ErrClosed", err)
	}
}

// Data flows both ways at once, intact, then both ends close and are
// forgotten by their stacks.
func TestDataBothWaysThenClose(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 40000)
	ctx := testContext(t)

	up, down := randomData(t, 1<<20), randomData(t, 1<<20)
	var wg sync.WaitGroup
	var upErr, downErr error
	var gotUp, gotDown []byte
	var upReadErr, downReadErr error
	wg.Add(4)
	go func() {
		defer wg.Done()
		_, upErr = client.Write(ctx, up)
		upErr = errors.Join(upErr, client.CloseWrite())
	}()
	go func() {
		defer wg.Done()
		_, downErr = server.Write(ctx, down)
		downErr = errors.Join(downErr, server.CloseWrite())
	}()
	go func() { defer wg.Done(); gotUp, upReadErr = readAll(ctx, server) }()
	go func() { defer wg.Done(); gotDown, downReadErr = readAll(ctx, client) }()
	wg.Wait()
	for _, err := range []error{upErr, downErr, upReadErr, downReadErr} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(gotUp, up) {
		t.Errorf("server received %d bytes, not the %d sent", len(gotUp), len(up))
	}
	if !bytes.Equal(gotDown, down) {
		t.Errorf("client received %d bytes, not the %d sent", len(gotDown), len(down))
	}
	for _, c := range []*Conn{client, server} {
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if err := c.Err(); err != nil {
			t.Errorf("a clean close left error %v", err)
		}
		if st := c.State(); st != fsm.Closed {
			t.Errorf("state after Wait: %v", st)
		}
	}
	if n := p.client.Conns() + p.server.Conns(); n != 0 {
		t.Errorf("%d connections still held after both closed", n)
	}
	st := client.Stats()
	if st.BytesAcked != uint64(len(up)) || st.BytesReceived != uint64(len(down)) {
		t.Errorf("client stats: acked %d received %d", st.BytesAcked, st.BytesReceived)
	}
	// Read after the end says EOF, not an error; Write says the connection
	// is closing or gone.
	if n, err := client.Read(ctx, make([]byte, 10)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("Read after close: %d, %v; want 0, EOF", n, err)
	}
	if _, err := client.Write(ctx, []byte("late")); err == nil {
		t.Error("Write after close: no error")
	}
}

// The closing side passes FIN-WAIT and TIME-WAIT, the other CLOSE-WAIT and
// LAST-ACK (RFC 9293 §3.6).
func TestCloseStatePaths(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 40001)
	ctx := testContext(t)

	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := server.WaitState(ctx, fsm.CloseWait); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(ctx, make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("server Read after the client's FIN: %d, %v; want EOF", n, err)
	}
	if err := server.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Read(ctx, make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("client Read after the server's FIN: %d, %v; want EOF", n, err)
	}
	for _, c := range []*Conn{client, server} {
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clientPath := p.clientTrace.path(client.LocalAddr(), client.RemoteAddr())
	valid := map[string]bool{
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT CLOSED": true,
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 CLOSING TIME-WAIT CLOSED":    true,
	}
	if !valid[clientPath] {
		t.Errorf("client state path %q", clientPath)
	}
	serverPath := p.serverTrace.path(server.LocalAddr(), server.RemoteAddr())
	if !strings.HasSuffix(serverPath, "LISTEN SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED") {
		t.Errorf("server state path %q", serverPath)
	}
}

// An abort on one side reaches the other as "connection reset by peer".
func TestAbortResetsPeer(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 40002)
	ctx := testContext(t)

	reading := async(func() ioResult { n, err := client.Read(ctx, make([]byte, 100)); return ioResult{n, err} })
	server.Abort()
	r := await(t, reading, "Read on the reset connection")
	if r.n != 0 || !errors.Is(r.err, fsm.ErrReset) {
		t.Errorf("client Read: %v, want connection reset by peer", r)
	}
	if err := client.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(client.Err(), fsm.ErrReset) {
		t.Errorf("client Err: %v", client.Err())
	}
	if _, err := client.Write(ctx, []byte("x")); !errors.Is(err, fsm.ErrReset) {
		t.Errorf("client Write after the reset: %v, want connection reset by peer", err)
	}
	if !errors.Is(server.Err(), fsm.ErrAborted) && server.Err() != nil {
		t.Errorf("server Err after its own abort: %v", server.Err())
	}
	var rsts int
	for _, s := range p.serverLink.sentSegments(t) {
		if s.Flags.Has(craft.FlagRST) {
			rsts++
		}
	}
	if rsts != 1 {
		t.Errorf("the aborting side sent %d RSTs, want 1", rsts)
	}
	if n := p.client.Conns() + p.server.Conns(); n != 0 {
		t.Errorf("%d connections still held after the reset", n)
	}
}

// Shutdown resets every open connection (no peer is left half-open).
func TestShutdownResetsPeers(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	ctx := testContext(t)
	var servers []*Conn
	for i := range 3 {
		_, s := p.connect(t, l, uint16(41000+i))
		servers = append(servers, s)
	}
	p.client.Shutdown()
	for _, s := range servers {
		if n, err := s.Read(ctx, make([]byte, 10)); n != 0 || !errors.Is(err, fsm.ErrReset) {
			t.Errorf("server Read after the client's Shutdown: %d, %v", n, err)
		}
	}
	if p.client.Conns() != 0 {
		t.Errorf("client holds %d connections after Shutdown", p.client.Conns())
	}
}

// A SYN to a port nobody listens on is refused.
func TestDialRefused(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	_, err := p.client.Dial(testContext(t), netip.AddrPortFrom(serverIP, 81), 40003)
	if !errors.Is(err, fsm.ErrRefused) {
		t.Fatalf("Dial to a closed port: %v, want connection refused", err)
	}
	if p.client.Conns() != 0 {
		t.Errorf("the refused connection is still held")
	}
}

func TestDialSameTupleTwice(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	p.connect(t, l, 40004)
	if _, err := p.client.Dial(testContext(t), netip.AddrPortFrom(serverIP, 80), 40004); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("a second Dial on the same 4-tuple: %v", err)
	}
}

// One listener accepts many connections, each its own byte stream.
func TestListenerAcceptsSeveral(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 16)
	ctx := testContext(t)
	const n = 8

	// The server echoes every connection it accepts.
	var serverWG sync.WaitGroup
	serverWG.Add(1)
	go func() {
		defer serverWG.Done()
		for range n {
			c, err := l.Accept(ctx)
			if err != nil {
				t.Errorf("Accept: %v", err)
				return
			}
			serverWG.Add(1)
			go func() {
				defer serverWG.Done()
				data, err := readAll(ctx, c)
				if err != nil {
					t.Errorf("server read: %v", err)
					return
				}
				if _, err := c.Write(ctx, data); err != nil {
					t.Errorf("server write: %v", err)
				}
				_ = c.CloseWrite()
			}()
		}
	}()

	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.client.Dial(ctx, netip.AddrPortFrom(serverIP, 80), uint16(42000+i))
			if err != nil {
				t.Errorf("Dial %d: %v", i, err)
				return
			}
			msg := bytes.Repeat([]byte{byte('a' + i)}, 10000*(i+1))
			if _, err := c.Write(ctx, msg); err != nil {
				t.Errorf("client %d write: %v", i, err)
				return
			}
			_ = c.CloseWrite()
			back, err := readAll(ctx, c)
			if err != nil || !bytes.Equal(back, msg) {
				t.Errorf("client %d: echo of %d bytes came back as %d bytes (%v)", i, len(msg), len(back), err)
			}
			_ = c.Wait(ctx)
		}()
	}
	wg.Wait()
	serverWG.Wait()
	eventually(t, "every connection to be forgotten", func() bool { return p.client.Conns() == 0 && p.server.Conns() == 0 })
}

// SYNs beyond the backlog are dropped without an answer; a slot freed by
// Accept lets the next client in.
func TestBacklogDropsExtraSYNs(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 2)
	ctx := testContext(t)
	remote := netip.AddrPortFrom(serverIP, 80)
	for i := range 2 {
		if _, err := p.client.Dial(ctx, remote, uint16(43000+i)); err != nil {
			t.Fatalf("Dial %d within the backlog: %v", i, err)
		}
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := p.client.Dial(short, remote, 43002)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial beyond the backlog: %v, want it to go unanswered (deadline exceeded)", err)
	}
	var synsIn, answers int
	for _, s := range p.serverTrace.segments() {
		if s.dir == In && s.src.Port() == 43002 && s.flags&craft.FlagSYN != 0 {
			synsIn++
		}
		if s.dir == Out && s.dst.Port() == 43002 {
			answers++
		}
	}
	if synsIn == 0 || answers != 0 {
		t.Errorf("the server saw %d SYNs from the third client and answered %d times; want >0 and 0", synsIn, answers)
	}
	if got := p.server.Conns(); got != 2 {
		t.Errorf("server holds %d connections, want the 2 of the backlog", got)
	}

	if _, err := l.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.Dial(ctx, remote, 43003); err != nil {
		t.Fatalf("Dial after Accept freed a slot: %v", err)
	}
}

// Closing a listener stops new connections (RST) but keeps accepted ones.
func TestListenerClose(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	ctx := testContext(t)
	client, server := p.connect(t, l, 44000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := p.client.Dial(ctx, netip.AddrPortFrom(serverIP, 80), 44001); !errors.Is(err, fsm.ErrRefused) {
		t.Errorf("Dial to a closed listener: %v, want refused", err)
	}
	if _, err := client.Write(ctx, []byte("still open")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := server.Read(ctx, buf)
	if err != nil || string(buf[:n]) != "still open" {
		t.Errorf("accepted connection after the listener closed: %q, %v", buf[:n], err)
	}
}

// A Read and a Write blocked on the same Conn at the same time both make
// progress when their condition changes, whichever changes first. (A single
// wake-up channel shared by both once lost one of the two wake-ups.)
func TestReadAndWriteBlockedTogether(t *testing.T) {
	cfg := testConnConfig()
	cfg.SendBufferSize = 8 << 10
	cfg.RecvBufferSize = 16 << 10
	// No window scaling: this test is about wake-ups, and a window that
	// fills up exposes the fsm's scaled-window rounding (see
	// TestAcceptedConnWindowFitsBuffer), which without the client's
	// retransmission timer would stall the transfer for good.
	cfg.WindowScale = -1
	for _, order := range []string{"window opens first", "data arrives first"} {
		t.Run(order, func(t *testing.T) {
			// The client's timers are off: no zero-window probe or
			// delayed ACK wakes its waiters now and then, which would
			// hide a lost wake-up behind a late one. Its ISS is fixed
			// where the server's window bookkeeping works (see
			// TestAcceptedConnWindowFitsBuffer): without timers, data
			// the server drops could never be retransmitted.
			// It acknowledges at once, or the server would retransmit
			// (and so wake the client again).
			clientCfg := cfg
			clientCfg.ISS, clientCfg.FixedISS = 0x10000000, true
			clientCfg.DelayedACK = 0
			p := newPairWith(t, cfg, clientCfg, runWithoutTimers)
			l := listen(t, p.server, 80, 4)
			client, server := p.connect(t, l, 45000)
			ctx := testContext(t)

			payload := randomData(t, 200<<10)
			readBuf := make([]byte, 100)
			startReading := func() <-chan ioResult {
				r := async(func() ioResult { n, err := client.Read(ctx, readBuf); return ioResult{n, err} })
				time.Sleep(20 * time.Millisecond) // let it reach its select
				return r
			}
			// The Read blocks before the Write when the window is to open
			// first, after it when data is to arrive first: with a
			// single-token wake-up, handed to waiters in the order they
			// blocked, the token for the one condition that changes
			// goes to the wrong waiter, which strands the right one.
			var reading <-chan ioResult
			if order == "window opens first" {
				reading = startReading()
			}
			writing := async(func() ioResult { n, err := client.Write(ctx, payload); return ioResult{n, err} })
			// The Write blocks once the peer's receive buffer and our
			// send buffer are full.
			eventually(t, "the writer to fill both buffers", func() bool {
				p.client.mu.Lock()
				defer p.client.mu.Unlock()
				p.server.mu.Lock()
				defer p.server.mu.Unlock()
				return client.fc.Writable() == 0 && server.fc.Readable() > 0 && client.wake[waitWrite] != nil
			})
			// Wait until nothing is on its way: the server has no delayed
			// ACK pending, so no segment will reach the client (and wake
			// its waiters) until the test sends one.
			eventually(t, "the server to have no timer running", func() bool {
				p.server.mu.Lock()
				defer p.server.mu.Unlock()
				_, pending := server.fc.NextDeadline()
				return !pending
			})
			time.Sleep(20 * time.Millisecond) // let the writer reach its select
			if reading == nil {
				reading = startReading()
			}
			notYet(t, writing, "Write")
			notYet(t, reading, "Read")

			drain := func() {
				var got []byte
				buf := make([]byte, 64<<10)
				for len(got) < len(payload) {
					n, err := server.Read(ctx, buf)
					if err != nil {
						t.Errorf("server Read: %v", err)
						return
					}
					got = append(got, buf[:n]...)
				}
				if !bytes.Equal(got, payload) {
					t.Errorf("server received %d bytes that differ from the %d written", len(got), len(payload))
				}
			}
			if order == "window opens first" {
				drained := async(func() bool { drain(); return true })
				w := await(t, writing, "the blocked Write after the window opened")
				if w.err != nil || w.n != len(payload) {
					t.Fatalf("Write: %v", w)
				}
				await(t, drained, "draining")
				notYet(t, reading, "Read (nothing was sent to it)")
				if _, err := server.Write(ctx, []byte("hi")); err != nil {
					t.Fatal(err)
				}
				r := await(t, reading, "the blocked Read after data arrived")
				if r.err != nil || string(readBuf[:r.n]) != "hi"[:r.n] || r.n == 0 {
					t.Fatalf("Read: %v %q", r, readBuf[:r.n])
				}
			} else {
				if _, err := server.Write(ctx, []byte("hi")); err != nil {
					t.Fatal(err)
				}
				r := await(t, reading, "the blocked Read after data arrived")
				if r.err != nil || r.n == 0 || string(readBuf[:r.n]) != "hi"[:r.n] {
					t.Fatalf("Read: %v %q", r, readBuf[:r.n])
				}
				notYet(t, writing, "Write (the window is still closed)")
				drained := async(func() bool { drain(); return true })
				w := await(t, writing, "the blocked Write after the window opened")
				if w.err != nil || w.n != len(payload) {
					t.Fatalf("Write: %v", w)
				}
				await(t, drained, "draining")
			}
		})
	}
}

// Cancelling the context unblocks Read, Write and Dial.
func TestContextCancellationUnblocks(t *testing.T) {
	cfg := testConnConfig()
	cfg.SendBufferSize = 4 << 10
	cfg.RecvBufferSize = 8 << 10
	p := newPair(t, cfg, cfg)
	l := listen(t, p.server, 80, 4)
	client, _ := p.connect(t, l, 46000)

	t.Run("Read", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		reading := async(func() ioResult { n, err := client.Read(ctx, make([]byte, 10)); return ioResult{n, err} })
		time.Sleep(20 * time.Millisecond)
		notYet(t, reading, "Read with nothing to read")
		cancel()
		if r := await(t, reading, "Read after cancel"); r.n != 0 || !errors.Is(r.err, context.Canceled) {
			t.Errorf("Read: %v, want context.Canceled", r)
		}
	})
	t.Run("Write", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		big := make([]byte, 1<<20) // far beyond both buffers; the server does not read
		writing := async(func() ioResult { n, err := client.Write(ctx, big); return ioResult{n, err} })
		time.Sleep(50 * time.Millisecond)
		notYet(t, writing, "Write into full buffers")
		cancel()
		w := await(t, writing, "Write after cancel")
		if !errors.Is(w.err, context.Canceled) || w.n >= len(big) || w.n == 0 {
			t.Errorf("Write: %v, want context.Canceled after a partial write", w)
		}
	})
	t.Run("Dial", func(t *testing.T) {
		// The server's answers are lost, so the handshake cannot finish.
		p.serverLink.setDrop(func([]byte) bool { return true })
		defer p.serverLink.setDrop(nil)
		before := p.client.Conns()
		ctx, cancel := context.WithCancel(context.Background())
		dialing := async(func() error {
			_, err := p.client.Dial(ctx, netip.AddrPortFrom(serverIP, 80), 46001)
			return err
		})
		time.Sleep(50 * time.Millisecond)
		notYet(t, dialing, "Dial without answers")
		cancel()
		if err := await(t, dialing, "Dial after cancel"); !errors.Is(err, context.Canceled) {
			t.Errorf("Dial: %v, want context.Canceled", err)
		}
		if got := p.client.Conns(); got != before {
			t.Errorf("the cancelled dial is still held: %d connections, %d before", got, before)
		}
	})
	t.Run("Wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		waiting := async(func() error { return client.Wait(ctx) })
		notYet(t, waiting, "Wait on an open connection")
		cancel()
		if err := await(t, waiting, "Wait after cancel"); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait: %v", err)
		}
	})
}

// The stack's timers retransmit what the wire lost: data arrives intact.
func TestLossyWireDeliversIntact(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47000)
	ctx := testContext(t)

	// Lose every 7th data segment the first time it is sent, and one of
	// the server's ACKs in 5.
	var mu sync.Mutex
	seen := map[craft.Seq]bool{}
	var dataCount int
	p.clientLink.setDrop(func(pkt []byte) bool {
		var pp craft.Packet
		if craft.ParsePacket(craft.LinkRaw, pkt, &pp, craft.PacketOptions{}) != nil || len(pp.TCP.Payload) == 0 {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[pp.TCP.Seq] {
			return false
		}
		seen[pp.TCP.Seq] = true
		dataCount++
		return dataCount%7 == 0
	})
	p.serverLink.setDrop(everyNth(5))
	data := randomData(t, 200<<10)
	go func() {
		if _, err := client.Write(ctx, data); err != nil {
			t.Errorf("Write: %v", err)
		}
		_ = client.CloseWrite()
	}()
	got, err := readAll(ctx, server)
	if err != nil {
		t.Fatalf("server read: %v (after %d bytes)", err, len(got))
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), len(data))
	}
	if st := client.Stats(); st.Retransmits == 0 {
		t.Errorf("segments were lost but none was retransmitted: %+v", st)
	}
}

// Run returns the link's error when the link breaks (not a cancelled
// context), and nil when its context ends.
func TestRunReportsLinkFailure(t *testing.T) {
	a, _ := newWire()
	s, err := New(a, Config{Local: serverIP, Conn: testConnConfig()})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("capture broke")
	done := async(func() error { return s.Run(context.Background()) })
	a.fail(boom)
	if err := await(t, done, "Run on a broken link"); !errors.Is(err, boom) {
		t.Errorf("Run: %v, want the link's error", err)
	}

	b, _ := newWire()
	s2, err := New(b, Config{Local: serverIP, Conn: testConnConfig()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = async(func() error { return s2.Run(ctx) })
	cancel()
	if err := await(t, done, "Run after cancel"); err != nil {
		t.Errorf("Run after its context ended: %v, want nil", err)
	}
}

// The tracer sees every segment both ways, as it was on the wire.
func TestTracerSeesSegmentsAsSent(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 48000)
	ctx := testContext(t)
	if _, err := client.Write(ctx, []byte("traced")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(ctx, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	client.Abort()
	if err := server.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// A segment is traced just before the link sends it, and the client
	// stack may still be answering a late segment of the server's (with
	// a RST): take the trace and the link's record at a moment they agree.
	var segs []tracedSegment
	var sent int
	deadline := time.Now().Add(5 * time.Second)
	for {
		segs = p.clientTrace.segments()
		sent = len(p.clientLink.sentSegments(t))
		outs := 0
		for _, s := range segs {
			if s.dir == Out {
				outs++
			}
		}
		if outs == sent && len(p.clientTrace.segments()) == len(segs) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var in, out int
	for i, s := range segs {
		if s.err != nil {
			t.Errorf("segment %d: %v", i, s.err)
			continue
		}
		wantSrc, wantDst := client.LocalAddr(), client.RemoteAddr()
		if s.dir == In {
			in++
			wantSrc, wantDst = wantDst, wantSrc
		} else {
			out++
		}
		if s.src != wantSrc || s.dst != wantDst {
			t.Errorf("segment %d (%v): %v -> %v", i, s.dir, s.src, s.dst)
		}
		// What is traced is the packet as built: length, data offset and
		// checksum filled in.
		if s.ipLen != s.rawLen || s.dataOffset < 5 || s.ipLen != 20+4*s.dataOffset+s.payload {
			t.Errorf("segment %d (%v): ip length %d, raw %d bytes, data offset %d, payload %d", i, s.dir, s.ipLen, s.rawLen, s.dataOffset, s.payload)
		}
		if s.checksum != craft.ChecksumGood {
			t.Errorf("segment %d (%v): checksum %v", i, s.dir, s.checksum)
		}
	}
	if out != sent || in == 0 {
		t.Errorf("traced %d out and %d in; the link carried %d out", out, in, sent)
	}
}

// An accepted connection never advertises more window than its receive
// buffer can hold (RFC 9293 §3.8.6: the window is the buffer space the
// receiver has; RFC 7323 §2.3 scales it), whatever the client's ISS.
func TestAcceptedConnWindowFitsBuffer(t *testing.T) {
	const buffer = 16 << 10
	for _, iss := range []craft.Seq{0x10000000, 0x90000000, 0xfffffff0} {
		t.Run(fmt.Sprintf("client ISS %#x", uint32(iss)), func(t *testing.T) {
			cfg := testConnConfig()
			cfg.RecvBufferSize = buffer
			clientCfg := cfg
			clientCfg.ISS, clientCfg.FixedISS = iss, true
			p := newPair(t, cfg, clientCfg)
			l := listen(t, p.server, 80, 4)
			client, server := p.connect(t, l, 49000)
			ctx := testContext(t)
			// More than the buffer: the window has to close.
			go func() { _, _ = client.Write(ctx, make([]byte, 4*buffer)) }()
			eventually(t, "the server's buffer to fill", func() bool {
				p.server.mu.Lock()
				defer p.server.mu.Unlock()
				return server.fc.Readable() >= buffer-2*1448
			})
			time.Sleep(50 * time.Millisecond) // let the last ACKs go out
			// The application has read nothing: every right edge
			// offered must lie within buffer bytes of the first.
			const shift = 7 // both ends offer 7 (fsm.DefaultConfig)
			for i, seg := range p.serverLink.sentSegments(t) {
				if seg.Flags.Has(craft.FlagSYN) {
					if int(seg.Window) > buffer {
						t.Errorf("SYN-ACK offers %d bytes, the buffer holds %d", seg.Window, buffer)
					}
					continue
				}
				edge := int64(seg.Ack.Diff(iss+1)) + int64(seg.Window)<<shift
				if edge > buffer {
					t.Errorf("segment %d: ack %d (relative %d) window %d<<%d puts the right edge at %d, beyond the %d-byte buffer",
						i, uint32(seg.Ack), seg.Ack.Diff(iss+1), seg.Window, shift, edge, buffer)
				}
			}
		})
	}
}
