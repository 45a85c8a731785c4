package stack

// Test helpers: an in-memory wire (memLink pairs), two Stacks wired back to
// back through it, and a Tracer that records what it is told.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// memLink is one end of an in-memory wire: what one end Sends, the other
// end's ReadFrame returns, in order. The queue is unbounded, so Send (called
// with a stack's lock held) never blocks and two stacks cannot deadlock on a
// full wire. A drop function, if set, loses packets on their way out.
type memLink struct {
	peer *memLink

	mu     sync.Mutex
	queue  [][]byte
	drop   func(pkt []byte) bool
	sent   [][]byte // every packet this end sent (dropped ones too)
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once
	broken error // ReadFrame fails with this once set
}

// newWire returns the two ends of a wire.
func newWire() (a, b *memLink) {
	a = &memLink{wake: make(chan struct{}, 1), closed: make(chan struct{})}
	b = &memLink{wake: make(chan struct{}, 1), closed: make(chan struct{})}
	a.peer, b.peer = b, a
	return a, b
}

func (l *memLink) ReadFrame(ctx context.Context) (capture.Frame, error) {
	for {
		if f, ok, err := l.take(); ok || err != nil {
			return f, err
		}
		select {
		case <-ctx.Done():
			return capture.Frame{}, ctx.Err()
		case <-l.closed:
			return capture.Frame{}, net.ErrClosed
		case <-l.wake:
		}
	}
}

// take returns the next queued frame without waiting (ok false: none), or
// the error the link was broken with. Links that are BurstReaders use it
// as their TryReadFrame; memLink itself is not one, so the plain tests
// read frame by frame.
func (l *memLink) take() (capture.Frame, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return capture.Frame{}, false, l.broken
	}
	if len(l.queue) == 0 {
		return capture.Frame{}, false, nil
	}
	pkt := l.queue[0]
	l.queue = l.queue[1:]
	return capture.Frame{Data: pkt, Time: time.Now(), Length: len(pkt)}, true, nil
}

func (l *memLink) Send(pkt []byte) error {
	p := bytes.Clone(pkt) // the stack reuses its buffer
	l.mu.Lock()
	l.sent = append(l.sent, p)
	drop := l.drop != nil && l.drop(p)
	l.mu.Unlock()
	if !drop {
		l.peer.deliver(p)
	}
	return nil
}

// deliver queues pkt for this end's ReadFrame.
func (l *memLink) deliver(pkt []byte) {
	l.mu.Lock()
	l.queue = append(l.queue, pkt)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// setDrop makes this end lose the packets for which drop returns true.
func (l *memLink) setDrop(drop func(pkt []byte) bool) {
	l.mu.Lock()
	l.drop = drop
	l.mu.Unlock()
}

// fail makes ReadFrame fail with err, as a broken capture would.
func (l *memLink) fail(err error) {
	l.mu.Lock()
	l.broken = err
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *memLink) close() { l.once.Do(func() { close(l.closed) }) }

// sentSegments returns the TCP headers of every packet this end sent.
func (l *memLink) sentSegments(t testing.TB) []craft.TCP {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var segs []craft.TCP
	for _, raw := range l.sent {
		var p craft.Packet
		if err := craft.ParsePacket(craft.LinkRaw, raw, &p, craft.PacketOptions{}); err != nil {
			t.Fatalf("the stack sent an unparsable packet: %v", err)
		}
		seg := p.TCP
		seg.Payload = bytes.Clone(seg.Payload)
		segs = append(segs, seg)
	}
	return segs
}

// Test addresses: the listening side and the dialling side.
var (
	serverIP = netip.MustParseAddr("192.0.2.1")
	clientIP = netip.MustParseAddr("192.0.2.2")
)

// testConnConfig is the fsm template of the tests: short TIME-WAIT and
// retransmission timeouts, so that closes and losses take milliseconds.
func testConnConfig() fsm.Config {
	cfg := fsm.DefaultConfig()
	cfg.TimeWait = 20 * time.Millisecond
	cfg.InitialRTO = 200 * time.Millisecond
	cfg.MinRTO = 20 * time.Millisecond
	return cfg
}

// startStack creates a Stack on link and runs it until the test ends; at the
// end it checks that Run returned nil.
func startStack(t *testing.T, link Link, local netip.Addr, cfg fsm.Config, tr Tracer) *Stack {
	t.Helper()
	return startStackWith(t, link, local, cfg, tr, (*Stack).Run)
}

// runWithoutTimers runs only the stack's read loop: segments are processed
// but no timer ever fires (no retransmission, probe or delayed ACK), so the
// only wake-ups of its connections are the ones the test causes.
func runWithoutTimers(s *Stack, ctx context.Context) error {
	err := s.readLoop(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func startStackWith(t *testing.T, link Link, local netip.Addr, cfg fsm.Config, tr Tracer, run func(*Stack, context.Context) error) *Stack {
	t.Helper()
	s, err := New(link, Config{Local: local, Conn: cfg, Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(s, ctx) }()
	t.Cleanup(func() {
		s.Shutdown()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return s
}

// pair is two stacks wired back to back.
type pair struct {
	server, client         *Stack
	serverLink, clientLink *memLink
	serverTrace            *recorder
	clientTrace            *recorder
}

func newPair(t *testing.T, serverCfg, clientCfg fsm.Config) *pair {
	t.Helper()
	return newPairWith(t, serverCfg, clientCfg, (*Stack).Run)
}

// newPairWith is newPair with the client stack run by runClient.
func newPairWith(t *testing.T, serverCfg, clientCfg fsm.Config, runClient func(*Stack, context.Context) error) *pair {
	t.Helper()
	sl, cl := newWire()
	p := &pair{serverLink: sl, clientLink: cl, serverTrace: newRecorder(), clientTrace: newRecorder()}
	p.server = startStack(t, sl, serverIP, serverCfg, p.serverTrace)
	p.client = startStackWith(t, cl, clientIP, clientCfg, p.clientTrace, runClient)
	return p
}

// connect has the client dial the server's port from lport and the server
// accept it.
func (p *pair) connect(t *testing.T, l *Listener, lport uint16) (client, server *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := p.client.Dial(ctx, netip.AddrPortFrom(serverIP, l.port), lport)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	server, err = l.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if server.RemoteAddr() != client.LocalAddr() || client.RemoteAddr() != server.LocalAddr() {
		t.Fatalf("the two ends disagree: client %v -> %v, server %v <- %v",
			client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr())
	}
	return client, server
}

// recorder is a Tracer that keeps what it is told.
type recorder struct {
	mu     sync.Mutex
	segs   []tracedSegment
	states map[string][]string // "local remote" -> states passed, in order
	errs   []error
	// cookies are the causes of the SYNCookie events, in order.
	cookies []fsm.Cause
}

type tracedSegment struct {
	dir        Direction
	flags      craft.Flags
	src, dst   netip.AddrPort
	payload    int
	ipLen      int // IPv4 total length as traced
	dataOffset int
	rawLen     int
	checksum   craft.ChecksumState
	err        error
}

func newRecorder() *recorder { return &recorder{states: make(map[string][]string)} }

func (r *recorder) Segment(dir Direction, _ time.Time, p *craft.Packet, raw []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := tracedSegment{dir: dir, rawLen: len(raw), err: err}
	if p != nil {
		s.flags = p.TCP.Flags
		s.src = netip.AddrPortFrom(p.Src(), p.TCP.SrcPort)
		s.dst = netip.AddrPortFrom(p.Dst(), p.TCP.DstPort)
		s.payload = len(p.TCP.Payload)
		s.ipLen = int(p.IPv4.TotalLength)
		s.dataOffset = int(p.TCP.DataOffset)
		s.checksum = p.TCPChecksum.State
	}
	r.segs = append(r.segs, s)
}

func (r *recorder) Event(_ time.Time, local, remote netip.AddrPort, ev fsm.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Kind {
	case fsm.StateChange:
		key := local.String() + " " + remote.String()
		path := r.states[key]
		if len(path) == 0 || path[len(path)-1] != ev.From.String() {
			path = append(path, ev.From.String())
		}
		r.states[key] = append(path, ev.To.String())
	case fsm.Error:
		r.errs = append(r.errs, ev.Err)
	case fsm.SYNCookie:
		r.cookies = append(r.cookies, ev.Cause)
	}
}

// path returns the states the connection local<->remote passed through.
func (r *recorder) path(local, remote netip.AddrPort) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.states[local.String()+" "+remote.String()], " ")
}

func (r *recorder) segments() []tracedSegment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tracedSegment(nil), r.segs...)
}

// eventually polls cond until it holds, failing t after a generous timeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// everyNth is a drop function for memLink.setDrop that drops every nth
// frame (safe for concurrent use).
func everyNth(n int) func([]byte) bool {
	var mu sync.Mutex
	count := 0
	return func([]byte) bool {
		mu.Lock()
		defer mu.Unlock()
		count++
		return count%n == 0
	}
}

// async runs fn in a goroutine and returns a channel with its result.
func async[T any](fn func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	return ch
}

// await waits for a result from ch, failing t if none comes in time.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
		var zero T
		return zero
	}
}

// notYet fails t if ch already delivered.
func notYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s returned early: %v", what, v)
	default:
	}
}

// ioResult is the outcome of a Read or Write.
type ioResult struct {
	n   int
	err error
}

func (r ioResult) String() string { return fmt.Sprintf("n=%d err=%v", r.n, r.err) }

// readAll reads from c until EOF or an error.
func readAll(ctx context.Context, c *Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(ctx, buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
