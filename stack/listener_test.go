package stack

import (
	"context"
	"errors"
	"net/netip"
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
