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
