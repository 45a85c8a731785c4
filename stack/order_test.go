package stack

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// slowTakeLink is a memLink that is a FrameWaiter, whose ReadFrame holds
// each frame it took for a millisecond before returning it: the moment in
// which a reader that takes frames outside the stack's lock lets an
// application call's drainInline handle later frames first.
type slowTakeLink struct{ *memLink }

func (l *slowTakeLink) ReadFrame(ctx context.Context) (capture.Frame, error) {
	f, err := l.memLink.ReadFrame(ctx)
	time.Sleep(time.Millisecond)
	return f, err
}

func (l *slowTakeLink) TryReadFrame() (capture.Frame, bool, error) { return l.memLink.take() }

func (l *slowTakeLink) WaitFrame(ctx context.Context) error {
	for {
		l.mu.Lock()
		ready := len(l.queue) > 0 || l.broken != nil
		l.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.closed:
			return net.ErrClosed
		case <-l.wake:
		}
	}
}

// ackTracer records the acknowledgement numbers of the segments a stack
// handles, in the order it handles them.
type ackTracer struct {
	mu   sync.Mutex
	acks []craft.Seq
}

func (a *ackTracer) Segment(dir Direction, _ time.Time, p *craft.Packet, _ []byte, _ error) {
	if dir != In || p == nil || !p.TCP.Flags.Has(craft.FlagACK) {
		return
	}
	a.mu.Lock()
	a.acks = append(a.acks, p.TCP.Ack)
	a.mu.Unlock()
}

func (a *ackTracer) Event(time.Time, netip.AddrPort, netip.AddrPort, fsm.Event) {}

// connectOver runs a server stack on serverLink and a client stack on
// clientLink (traced by clientTracer) and connects them from port lport;
// it returns the test's context and both ends.
func connectOver(t *testing.T, serverLink, clientLink Link, clientTracer Tracer, lport uint16) (ctx context.Context, client, server *Conn) {
	t.Helper()
	s := startStack(t, serverLink, serverIP, testConnConfig(), newRecorder())
	c := startStack(t, clientLink, clientIP, testConnConfig(), clientTracer)
	l := listen(t, s, 80, 4)
	ctx = testContext(t)
	client, err := c.Dial(ctx, netip.AddrPortFrom(serverIP, 80), lport)
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, client, server
}

// The frames of a flow are handled in the order they came, even while an
// application's writes take frames inline (drainInline) beside the read
// loop: the peer's ACKs, sent in order, are handled in order. Taking a
// frame before the stack's lock, the read loop used to handle it after
// later ones; a last ACK of data then came after the ACK of the FIN, found
// its connection gone and drew a RST (a listener under load sent dozens).
func TestFramesHandledInArrivalOrder(t *testing.T) {
	sl, cl := newWire()
	acks := &ackTracer{}
	ctx, conn, peer := connectOver(t, sl, &slowTakeLink{cl}, acks, 47300)
	data := randomData(t, 4<<20)
	go func() {
		for off := 0; off < len(data); off += 16 << 10 {
			if _, err := conn.Write(ctx, data[off:off+16<<10]); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
		}
		_ = conn.CloseWrite()
	}()
	got, err := readAll(ctx, peer)
	if err != nil || len(got) != len(data) {
		t.Fatalf("the peer read %d bytes, %v", len(got), err)
	}
	acks.mu.Lock()
	defer acks.mu.Unlock()
	if len(acks.acks) < 100 {
		t.Fatalf("only %d ACKs handled: the test did not exercise the read loop", len(acks.acks))
	}
	for i := 1; i < len(acks.acks); i++ {
		if acks.acks[i].LessThan(acks.acks[i-1]) {
			t.Fatalf("ACK %d (ack %d) handled after ACK %d (ack %d): frames out of order", i, acks.acks[i], i-1, acks.acks[i-1])
		}
	}
}

// scribbleLink hands frames over in place (FrameTaker) and, like a capture
// ring that gives the slot back to the kernel, overwrites each frame's
// bytes as soon as the handler returns.
type scribbleLink struct{ slowTakeLink }

func (l *scribbleLink) TakeFrame(fn func(capture.Frame)) (bool, error) {
	f, ok, err := l.memLink.take()
	if !ok || err != nil {
		return ok, err
	}
	fn(f)
	for i := range f.Data {
		f.Data[i] = 0xAA
	}
	return true, nil
}

// Frames taken in place are not kept past their handling: data both ways,
// over links that overwrite every frame once handled, arrives intact.
func TestFramesTakenInPlaceAreNotKept(t *testing.T) {
	sl, cl := newWire()
	ctx, conn, peer := connectOver(t, &scribbleLink{slowTakeLink{sl}}, &scribbleLink{slowTakeLink{cl}}, newRecorder(), 47400)
	up, down := randomData(t, 1<<20), randomData(t, 1<<20)
	go func() {
		if _, err := conn.Write(ctx, up); err != nil {
			t.Errorf("client Write: %v", err)
		}
		_ = conn.CloseWrite()
	}()
	go func() {
		if _, err := peer.Write(ctx, down); err != nil {
			t.Errorf("server Write: %v", err)
		}
		_ = peer.CloseWrite()
	}()
	gotUp, err := readAll(ctx, peer)
	if err != nil || !bytes.Equal(gotUp, up) {
		t.Fatalf("server read %d bytes (%v), intact: %v", len(gotUp), err, bytes.Equal(gotUp, up))
	}
	gotDown, err := readAll(ctx, conn)
	if err != nil || !bytes.Equal(gotDown, down) {
		t.Fatalf("client read %d bytes (%v), intact: %v", len(gotDown), err, bytes.Equal(gotDown, down))
	}
}
