package stack

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
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
			if f, ok, _ := l.TryReadFrame(); ok {
				return f, nil
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

func (l *stallLink) TryReadFrame() (capture.Frame, bool, error) {
	m := l.memLink
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		return capture.Frame{}, false, nil
	}
	pkt := m.queue[0]
	m.queue = m.queue[1:]
	return capture.Frame{Data: pkt, Time: time.Now(), Length: len(pkt)}, true, nil
}

// TestInlineDrainWakesItsOwnCaller: a Read that finds nothing, then takes
// (in drainInline) the very frame that carries its data, must return that
// data instead of waiting for a wake-up that already happened. (The first
// version of drainInline lost that wake-up and an echo server hung; Write
// has the same guard for the room the ACKs it takes inline make.)
func TestInlineDrainWakesItsOwnCaller(t *testing.T) {
	sl, cl := newWire()
	server := &stallLink{memLink: sl}
	p := &pair{serverLink: sl, clientLink: cl, serverTrace: newRecorder(), clientTrace: newRecorder()}
	p.server = startStack(t, server, serverIP, testConnConfig(), p.serverTrace)
	p.client = startStack(t, cl, clientIP, testConnConfig(), p.clientTrace)
	l := listen(t, p.server, 80, 4)
	client, srv := p.connect(t, l, 48000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Hold the server's reader: from now on only TryReadFrame, which
	// the reader goroutine calls only after a frame from ReadFrame,
	// hands frames over.
	server.stall.Store(true)
	if _, err := client.Write(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	// The data segment waits in the server's queue, untaken.
	waitQueued := time.Now().Add(2 * time.Second)
	for {
		sl.mu.Lock()
		n := len(sl.queue)
		sl.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(waitQueued) {
			t.Fatal("the client's data never reached the server's queue")
		}
		time.Sleep(time.Millisecond)
	}
	buf := make([]byte, 16)
	n, err := srv.Read(ctx, buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v; want \"hello\" taken inline (the reader goroutine is held)", buf[:n], err)
	}
	server.stall.Store(false)
}
