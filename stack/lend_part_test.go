package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// The way connect feeds its input: one goroutine borrows free send buffer
// (SendSpace) and fills it a chunk at a time while another commits each
// filled chunk (CommitSendPart, CommitSend for the loan's last one), so the
// filling of one chunk overlaps the sending of the one before. Over a wire
// that loses data segments and ACKs, with a send buffer of odd size (the
// ring wraps everywhere), the peer reads exactly what was filled in.
func TestFillAndCommitPartsConcurrently(t *testing.T) {
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = 100_003
	p := newPair(t, testConnConfig(), clientCfg)
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47100)
	ctx := testContext(t)

	// Every 13th data frame and every 11th ACK is lost.
	dropData := everyNth(13)
	p.clientLink.setDrop(func(pkt []byte) bool {
		var pp craft.Packet
		if craft.ParsePacket(craft.LinkRaw, pkt, &pp, craft.PacketOptions{}) != nil || len(pp.TCP.Payload) == 0 {
			return false
		}
		return dropData(pkt)
	})
	p.serverLink.setDrop(everyNth(11))

	data := randomData(t, 1<<20)
	type part struct {
		n    int
		last bool
	}
	parts := make(chan part, 4)
	loanDone := make(chan struct{})
	commitErr := make(chan error, 1)
	go func() { // the committer
		for pt := range parts {
			var err error
			if pt.last {
				err = client.CommitSend(pt.n)
			} else {
				err = client.CommitSendPart(pt.n)
			}
			if err != nil {
				commitErr <- err
				return
			}
			if pt.last {
				loanDone <- struct{}{}
			}
		}
		commitErr <- client.CloseWrite()
	}()
	go func() { // the filler
		defer close(parts)
		off := 0
		for chunk := 1; off < len(data); chunk++ {
			loan, err := client.SendSpace(ctx, math.MaxInt)
			if err != nil {
				t.Errorf("SendSpace: %v", err)
				return
			}
			for used := 0; used < len(loan) && off < len(data); {
				// Odd chunk sizes, so parts end anywhere in a segment.
				n := copy(loan[used:min(used+997*chunk%7919+1, len(loan))], data[off:])
				used += n
				off += n
				parts <- part{n, used == len(loan) || off == len(data)}
				if used == len(loan) || off == len(data) {
					break
				}
			}
			<-loanDone
		}
	}()
	got, err := readAll(ctx, server)
	if err != nil {
		t.Fatalf("server read: %v (after %d bytes)", err, len(got))
	}
	if err := <-commitErr; err != nil {
		t.Fatalf("committer: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes that differ from the %d filled in", len(got), len(data))
	}
	if st := client.Stats(); st.Retransmits == 0 {
		t.Errorf("segments were lost but none was retransmitted: %+v", st)
	}
}

// serverReader adapts Conn.Read to io.Reader with a context.
type serverReader struct {
	ctx context.Context
	c   *Conn
}

func (r serverReader) Read(p []byte) (int, error) { return r.c.Read(r.ctx, p) }

type spaceResult struct {
	p   []byte
	err error
}

// SendSpace waits while the send buffer is full (the peer does not read),
// returns once the peer reads and ACKs free the buffer, gives up with
// ctx's error when ctx ends, and returns the connection's error once the
// peer resets it. While a loan is out, Write is refused (fsm.ErrLent).
func TestSendSpaceWaitsForRoom(t *testing.T) {
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = 16 << 10
	serverCfg := testConnConfig()
	serverCfg.RecvBufferSize = 8 << 10
	p := newPair(t, serverCfg, clientCfg)
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47200)
	ctx := testContext(t)

	writable := func() int {
		client.s.mu.Lock()
		defer client.s.mu.Unlock()
		return client.fc.Writable()
	}
	// fill borrows all the free buffer and commits it, then waits until
	// done says the peer's ACKs did what they should.
	fill := func(what string, done func(free int) bool) {
		t.Helper()
		loan, err := client.SendSpace(ctx, math.MaxInt)
		if err != nil {
			t.Fatalf("SendSpace: %v", err)
		}
		if _, err := client.Write(ctx, []byte("x")); !errors.Is(err, fsm.ErrLent) {
			t.Fatalf("Write during a loan: %v, want fsm.ErrLent", err)
		}
		for i := range loan {
			loan[i] = 'y'
		}
		if err := client.CommitSend(len(loan)); err != nil {
			t.Fatalf("CommitSend: %v", err)
		}
		eventually(t, what, func() bool { return done(writable()) })
	}
	// 16 KiB queued: the peer's 8 KiB window takes and ACKs most of it.
	fill("the peer's ACK of its window's worth", func(free int) bool { return free >= 4<<10 })
	// Then the buffer is full (the peer's window is shut): less than the
	// quarter SendSpace waits for is free, and stays so.
	settled := func(free int) bool { time.Sleep(30 * time.Millisecond); return free < 4<<10 && writable() == free }
	fill("a full buffer", settled)
	waiting := async(func() spaceResult { s, err := client.SendSpace(ctx, math.MaxInt); return spaceResult{s, err} })
	time.Sleep(50 * time.Millisecond)
	notYet(t, waiting, "SendSpace with the buffer full")
	if _, err := io.ReadFull(serverReader{ctx, server}, make([]byte, 8<<10)); err != nil {
		t.Fatal(err)
	}
	r := await(t, waiting, "SendSpace after the peer read")
	if r.err != nil || len(r.p) < 4<<10 {
		t.Fatalf("SendSpace after the peer read: %d bytes, %v; want at least a quarter of the buffer", len(r.p), r.err)
	}
	if err := client.CommitSend(0); err != nil {
		t.Fatal(err)
	}
	fill("a full buffer again", settled) // the peer holds 8 KiB unread

	cctx, cancel := context.WithCancel(ctx)
	waiting = async(func() spaceResult { s, err := client.SendSpace(cctx, math.MaxInt); return spaceResult{s, err} })
	time.Sleep(20 * time.Millisecond)
	notYet(t, waiting, "SendSpace with the buffer full")
	cancel()
	if r := await(t, waiting, "SendSpace after cancel"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("SendSpace after cancel: %v, want context.Canceled", r.err)
	}

	// The peer resets: a waiting SendSpace ends with the reset.
	waiting = async(func() spaceResult { s, err := client.SendSpace(ctx, math.MaxInt); return spaceResult{s, err} })
	time.Sleep(20 * time.Millisecond)
	notYet(t, waiting, "SendSpace with the buffer full")
	server.Abort()
	if r := await(t, waiting, "SendSpace after a reset"); !errors.Is(r.err, fsm.ErrReset) {
		t.Fatalf("SendSpace after the peer's reset: %v, want fsm.ErrReset", r.err)
	}
	if err := client.CommitSend(0); err == nil {
		t.Fatal("CommitSend on a reset connection: no error")
	}
}
