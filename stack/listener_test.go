package stack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// A connection reset by its peer while it waits in the accept queue keeps
// its backlog slot until Accept takes it out. Freeing the slot at once let
// a new connection into a channel still holding the stale one: the reader
// then blocked in ready, holding the stack's lock, until somebody called
// Accept — the whole stack stood still.
func TestResetInAcceptQueueKeepsItsSlot(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 1)
	ctx := testContext(t)
	remote := netip.AddrPortFrom(serverIP, 80)

	first, err := p.client.Dial(ctx, remote, 46000)
	if err != nil {
		t.Fatal(err)
	}
	first.Abort() // RST: the server's queued connection is CLOSED
	eventually(t, "the reset connection to be forgotten", func() bool { return p.server.Conns() == 0 })

	// The queue still holds the reset connection, so a new SYN is beyond
	// the backlog: dropped, and the stack stays responsive.
	dialCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = p.client.Dial(dialCtx, remote, 46001)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial while the queue holds a reset connection: %v, want it to go unanswered", err)
	}
	select {
	case <-async(func() int { return p.server.Conns() }):
	case <-time.After(5 * time.Second):
		// Unblock the stack (Accept empties the channel) so that the
		// test can end, then fail.
		_, _ = l.Accept(ctx)
		_, _ = l.Accept(ctx)
		t.Fatal("the server stack stood still: its lock was held (ready blocked on a full accept channel)")
	}

	// Accept hands out the reset connection (as Linux's accept does), its
	// Read reports the reset, and its slot is free again.
	stale, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stale.RemoteAddr().Port() != 46000 {
		t.Errorf("Accept returned the connection from %v, want the reset one from :46000", stale.RemoteAddr())
	}
	if _, err := stale.Read(ctx, make([]byte, 1)); !errors.Is(err, fsm.ErrReset) {
		t.Errorf("Read on the reset connection: %v, want %v", err, fsm.ErrReset)
	}
	client, server := p.connect(t, l, 46002)
	if _, err := client.Write(ctx, []byte("in")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := server.Read(ctx, buf); err != nil || string(buf[:n]) != "in" {
		t.Errorf("the connection after the slot was freed read %q, %v", buf[:n], err)
	}
}

// Closing a listener resets the connections it has not handed out yet,
// half-open or queued (as Linux does for a closed listening socket), so
// that no peer stays connected to nobody; accepted ones go on.
func TestListenerCloseResetsUnaccepted(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 8)
	ctx := testContext(t)
	remote := netip.AddrPortFrom(serverIP, 80)

	accClient, accServer := p.connect(t, l, 47000)
	queued, err := p.client.Dial(ctx, remote, 47001) // established, never accepted
	if err != nil {
		t.Fatal(err)
	}
	// A half-open one: the client's ACK of the SYN-ACK is lost.
	p.clientLink.setDrop(func(pkt []byte) bool {
		var q craft.Packet
		return craft.ParsePacket(craft.LinkRaw, pkt, &q, craft.PacketOptions{}) == nil &&
			q.TCP.SrcPort == 47002 && q.TCP.Flags == craft.FlagACK
	})
	halfCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	half := async(func() error { _, err := p.client.Dial(halfCtx, remote, 47002); return err })
	eventually(t, "the server to hold three connections", func() bool { return p.server.Conns() == 3 })

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := queued.Read(ctx, make([]byte, 1)); !errors.Is(err, fsm.ErrReset) {
		t.Errorf("the queued connection after Close: Read %v, want %v", err, fsm.ErrReset)
	}
	eventually(t, "the half-open and queued connections to be gone", func() bool { return p.server.Conns() == 1 })
	if _, err := l.Accept(ctx); err == nil {
		t.Error("Accept after Close returned a connection")
	}
	cancel()
	<-half

	if _, err := accClient.Write(ctx, []byte("still")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := accServer.Read(ctx, buf); err != nil || string(buf[:n]) != "still" {
		t.Errorf("the accepted connection after Close read %q, %v", buf[:n], err)
	}
}

// dropTracer records the SegmentDropped events the stack reports.
type dropTracer struct {
	mu    sync.Mutex
	drops []fsm.Cause
}

func (d *dropTracer) Segment(Direction, time.Time, *craft.Packet, []byte, error) {}
func (d *dropTracer) Event(_ time.Time, _, _ netip.AddrPort, ev fsm.Event) {
	if ev.Kind == fsm.SegmentDropped {
		d.mu.Lock()
		d.drops = append(d.drops, ev.Cause)
		d.mu.Unlock()
	}
}

// The stack answers a listening port's segments from unknown 4-tuples as
// its fsm.Listener says, and any other unknown segment as fsm.ResetFor
// says: nothing to FIN, NULL, Xmas or SYN+FIN (as a Linux listener), an
// RST to an ACK, a SYN-ACK to a SYN; an RST to a FIN for a closed port.
func TestListenerRepliesAreFSMs(t *testing.T) {
	wire, _ := newWire()
	tr := &dropTracer{}
	s := startStackWith(t, wire, serverIP, testConnConfig(), tr, runWithoutTimers)
	listen(t, s, 80, 8)
	send := func(dport, sport uint16, flags craft.Flags, ack craft.Seq) {
		t.Helper()
		ip := craft.IPv4{TTL: 64, Protocol: craft.ProtocolTCP, Src: clientIP, Dst: serverIP}
		pkt, err := craft.BuildIPv4TCP(ip, &craft.TCP{SrcPort: sport, DstPort: dport, Seq: 1000, Ack: ack, Flags: flags, Window: 1000})
		if err != nil {
			t.Fatal(err)
		}
		wire.deliver(pkt)
	}
	const (
		F, S, R, P, A, U = craft.FlagFIN, craft.FlagSYN, craft.FlagRST, craft.FlagPSH, craft.FlagACK, craft.FlagURG
	)
	for i, f := range []craft.Flags{F, 0, F | P | U, S | F, R, R | A} {
		send(80, uint16(40000+i), f, 0)
	}
	send(80, 40100, A, 777)  // RST seq 777
	send(80, 40101, S, 0)    // SYN-ACK
	send(81, 40102, F, 0)    // closed port: RST ack 1001
	send(81, 40103, R|A, 55) // closed port, an RST: nothing
	eventually(t, "the answers", func() bool { return len(wire.sentSegments(t)) >= 3 })
	time.Sleep(50 * time.Millisecond) // room for any answer that should not come
	var got []string
	for _, seg := range wire.sentSegments(t) {
		got = append(got, fmt.Sprintf("%d %s seq=%d ack=%d", seg.DstPort, seg.Flags, seg.Seq, seg.Ack))
	}
	s.mu.Lock()
	synack := fmt.Sprintf("40101 S. seq=%d ack=1001", s.conns[craft.FourTuple{Src: netip.AddrPortFrom(clientIP, 40101), Dst: netip.AddrPortFrom(serverIP, 80)}].fc.ISS())
	s.mu.Unlock()
	want := []string{"40100 R seq=777 ack=0", synack, "40102 R. seq=0 ack=1001"}
	if !slices.Equal(got, want) {
		t.Errorf("the stack sent\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	wantDrops := []fsm.Cause{fsm.CauseNoSYNInListen, fsm.CauseNoSYNInListen, fsm.CauseNoSYNInListen, fsm.CauseSYNFINInListen,
		fsm.CauseRSTInListen, fsm.CauseRSTInListen, fsm.CauseACKInListen}
	if !slices.Equal(tr.drops, wantDrops) {
		t.Errorf("drop events %v, want %v", tr.drops, wantDrops)
	}
}

// With the SYN queue full, a SYN gets a SYN cookie and the stack keeps
// nothing for it; the ACK that brings the cookie back makes a connection
// that Accept hands out established, with the ACK's data; the tracer hears
// of the cookie. The half-open connection that filled the queue still
// completes normally.
func TestSYNCookieWhenQueueFull(t *testing.T) {
	stackEnd, far := newWire()
	tr := newRecorder()
	s := startStack(t, stackEnd, serverIP, testConnConfig(), tr)
	l := listen(t, s, 80, 1)
	peer := peerEnd{t: t, link: far, addr: clientIP}
	syn := func(sport uint16, seq craft.Seq) craft.TCP {
		return craft.TCP{SrcPort: sport, DstPort: 80, Seq: seq, Flags: craft.FlagSYN, Window: 65535,
			Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}}
	}

	peer.send(serverIP, syn(6000, 100), false)
	first := peer.next()
	if first.TCP.Flags != craft.FlagSYN|craft.FlagACK || s.Conns() != 1 {
		t.Fatalf("first SYN: %v, %d connections", first.TCP.Flags, s.Conns())
	}
	// The SYN queue (1) is full: the next SYN gets a cookie, no state.
	peer.send(serverIP, syn(6001, 200), false)
	cookie := peer.next()
	if cookie.TCP.Flags != craft.FlagSYN|craft.FlagACK || cookie.TCP.Ack != 201 || cookie.TCP.DstPort != 6001 {
		t.Fatalf("SYN beyond the SYN queue: %v ack %d to %d, want a SYN-ACK (cookie)", cookie.TCP.Flags, cookie.TCP.Ack, cookie.TCP.DstPort)
	}
	if n := s.Conns(); n != 1 {
		t.Errorf("%d connections after a cookie, want 1 (the half-open one)", n)
	}
	// Its ACK, with data, makes the connection.
	peer.send(serverIP, craft.TCP{SrcPort: 6001, DstPort: 80, Seq: 201, Ack: cookie.TCP.Seq + 1, Flags: craft.FlagACK | craft.FlagPSH, Window: 1000, Payload: []byte("hi")}, false)
	ctx := testContext(t)
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr().Port() != 6001 || c.State() != fsm.Established {
		t.Fatalf("accepted %v in %v, want the cookie's connection from :6001", c.RemoteAddr(), c.State())
	}
	buf := make([]byte, 8)
	if n, err := c.Read(ctx, buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	if ack := peer.next(); ack.TCP.DstPort != 6001 || ack.TCP.Ack != 203 || ack.TCP.Seq != cookie.TCP.Seq+1 {
		t.Errorf("answer to the data: %v seq %d ack %d", ack.TCP.Flags, ack.TCP.Seq, ack.TCP.Ack)
	}
	// The first half-open connection completes too.
	peer.send(serverIP, craft.TCP{SrcPort: 6000, DstPort: 80, Seq: 101, Ack: first.TCP.Seq + 1, Flags: craft.FlagACK, Window: 1000}, false)
	if c2, err := l.Accept(ctx); err != nil || c2.RemoteAddr().Port() != 6000 {
		t.Fatalf("the half-open connection: %v %v", c2, err)
	}
	if st := l.Stats(); st.CookiesSent != 1 || st.CookiesRecv != 1 || st.SYNs != 2 {
		t.Errorf("listener stats %+v", st)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !slices.Equal(tr.cookies, []fsm.Cause{fsm.CauseSYNQueueFull}) {
		t.Errorf("cookie events %v", tr.cookies)
	}
	key := netip.AddrPortFrom(serverIP, 80).String() + " " + netip.AddrPortFrom(clientIP, 6001).String()
	if got := strings.Join(tr.states[key], " "); got != "CLOSED LISTEN SYN-RECEIVED ESTABLISHED" {
		t.Errorf("cookie connection's states: %s", got)
	}
}

// batchLink is a memLink that reads in bursts and sends batches, as
// capture.Link does (BurstReader, BatchSender); it records each batch.
type batchLink struct {
	*memLink
	mu      sync.Mutex
	batches []int
}

func (b *batchLink) TryReadFrame() (capture.Frame, bool, error) { return b.take() }

func (b *batchLink) SendBatch(pkts [][]byte) (int, error) {
	b.mu.Lock()
	b.batches = append(b.batches, len(pkts))
	b.mu.Unlock()
	for _, p := range pkts {
		if err := b.Send(p); err != nil {
			return 0, err
		}
	}
	return len(pkts), nil
}

// A burst of SYNs to a full SYN queue is answered with one batch of cookie
// SYN-ACKs (one sendmmsg through capture.Link), each right and in the
// order of the SYNs.
func TestListenerAnswersBurstInOneBatch(t *testing.T) {
	mem, _ := newWire()
	link := &batchLink{memLink: mem}
	s, err := New(link, Config{Local: serverIP, Conn: testConnConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListenWith(netip.Addr{}, 80, fsm.ListenConfig{Backlog: 1, SYNCookies: fsm.SYNCookiesAlways}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := range n {
		ip := craft.IPv4{TTL: 64, Protocol: craft.ProtocolTCP, Src: clientIP, Dst: serverIP}
		pkt, err := craft.BuildIPv4TCP(ip, &craft.TCP{SrcPort: uint16(30000 + i), DstPort: 80, Seq: craft.Seq(1000 * i), Flags: craft.FlagSYN, Window: 1000})
		if err != nil {
			t.Fatal(err)
		}
		mem.deliver(pkt)
	}
	// All n are queued before the stack runs: they are one burst.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); mem.close(); <-done }()
	eventually(t, "the answers", func() bool { return len(mem.sentSegments(t)) >= n })
	for i, seg := range mem.sentSegments(t) {
		if seg.Flags != craft.FlagSYN|craft.FlagACK || seg.DstPort != uint16(30000+i) || seg.Ack != craft.Seq(1000*i+1) {
			t.Errorf("answer %d: %v to %d ack %d", i, seg.Flags, seg.DstPort, seg.Ack)
		}
	}
	link.mu.Lock()
	defer link.mu.Unlock()
	if len(link.batches) != 1 || link.batches[0] != n {
		t.Errorf("batches %v, want one of %d", link.batches, n)
	}
}
