package stack

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// stallLink is a memLink whose ReadFrame can be held (the reader goroutine
// then takes nothing) while TryReadFrame still hands frames over: only an
// application call's drainInline can take them.
type stallLink struct {
	*memLink
	stall atomic.Bool
}

func (l *stallLink) ReadFrame(ctx context.Context) (capture.Frame, error) {
	for {
		if !l.stall.Load() {
			if f, ok, err := l.take(); ok || err != nil {
				return f, err
			}
		}
		select {
		case <-ctx.Done():
			return capture.Frame{}, ctx.Err()
		case <-l.closed:
			return capture.Frame{}, net.ErrClosed
		case <-l.wake:
		case <-time.After(time.Millisecond):
		}
	}
}

func (l *stallLink) TryReadFrame() (capture.Frame, bool, error) { return l.memLink.take() }

// TestInlineDrainWakesItsOwnCaller: a Write that finds the send buffer
// full, then takes (in drainInline) the ACKs that make room, must go on
// writing instead of waiting for a wake-up that already happened. (The
// first version of drainInline lost that wake-up; an echo server that
// drained inline in Read hung the same way.)
func TestInlineDrainWakesItsOwnCaller(t *testing.T) {
	sl, cl := newWire()
	clientLink := &stallLink{memLink: cl}
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = 16 << 10
	p := &pair{serverLink: sl, clientLink: cl, serverTrace: newRecorder(), clientTrace: newRecorder()}
	p.server = startStack(t, sl, serverIP, testConnConfig(), p.serverTrace)
	p.client = startStack(t, clientLink, clientIP, clientCfg, p.clientTrace)
	l := listen(t, p.server, 80, 4)
	client, srv := p.connect(t, l, 48000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Hold the client's reader: from now on only TryReadFrame, which the
	// reader goroutine calls only after a frame from ReadFrame, hands
	// frames over.
	clientLink.stall.Store(true)
	if n, err := client.Write(ctx, make([]byte, 16<<10)); n != 16<<10 || err != nil {
		t.Fatalf("first Write = %d, %v", n, err)
	}
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 64<<10)
		total := 0
		for total < 16<<10+1000 {
			n, err := srv.Read(ctx, buf)
			if err != nil {
				break
			}
			total += n
		}
		got <- total
	}()
	// The server's ACKs (delayed ones too) pile up, untaken, in the
	// client's queue.
	time.Sleep(100 * time.Millisecond)
	cl.mu.Lock()
	queued := len(cl.queue)
	cl.mu.Unlock()
	if queued == 0 {
		t.Fatal("no ACK reached the client's queue")
	}
	// The buffer is full until those ACKs are taken: only this Write's
	// drainInline can take them.
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	if n, err := client.Write(wctx, make([]byte, 1000)); n != 1000 || err != nil {
		t.Fatalf("second Write = %d, %v; want 1000 bytes written once the ACKs taken inline made room (the reader goroutine is held)", n, err)
	}
	clientLink.stall.Store(false)
	if total := <-got; total != 16<<10+1000 {
		t.Fatalf("the server read %d bytes, want %d", total, 16<<10+1000)
	}
}

// TestCommitSendCloseTakesThePeersFINFirst: a peer's FIN that is waiting
// when the last data and our FIN are committed is taken first, so ours
// answers it (CLOSE-WAIT to LAST-ACK: no TIME-WAIT) and goes with the data.
func TestCommitSendCloseTakesThePeersFINFirst(t *testing.T) {
	sl, cl := newWire()
	clientLink := &stallLink{memLink: cl}
	p := &pair{serverLink: sl, clientLink: cl, serverTrace: newRecorder(), clientTrace: newRecorder()}
	p.server = startStack(t, sl, serverIP, testConnConfig(), p.serverTrace)
	p.client = startStack(t, clientLink, clientIP, testConnConfig(), p.clientTrace)
	l := listen(t, p.server, 80, 4)
	client, srv := p.connect(t, l, 48000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	clientLink.stall.Store(true) // only drainInline takes frames now
	if err := srv.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		cl.mu.Lock()
		waiting := len(cl.queue)
		cl.mu.Unlock()
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's FIN never reached the client's link")
		}
	}
	if s := client.State(); s != fsm.Established {
		t.Fatalf("before the commit the client is %v, want ESTABLISHED (the FIN not yet taken)", s)
	}
	loan, err := client.SendSpace(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	copy(loan, "last")
	if err := client.CommitSendClose(4); err != nil {
		t.Fatal(err)
	}
	if s := client.State(); s != fsm.LastAck && s != fsm.Closed {
		t.Errorf("after CommitSendClose the client is %v, want LAST-ACK (the peer's FIN taken first)", s)
	}
	clientLink.stall.Store(false)
	buf := make([]byte, 16)
	n, _ := srv.Read(ctx, buf)
	if string(buf[:n]) != "last" {
		t.Errorf("the server read %q, want %q", buf[:n], "last")
	}
}
