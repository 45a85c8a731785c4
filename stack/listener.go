package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// Listener accepts connections on one port (passive open, RFC 9293
// §3.10.1). Every segment to the port from a 4-tuple without a connection
// goes to its fsm.Listener, which decides what it gets: nothing, an RST,
// or a connection of its own (an fsm.Conn in SYN-RECEIVED) that the
// Listener then hands to Accept once established.
type Listener struct {
	s       *Stack
	fl      *fsm.Listener
	addr    netip.Addr // invalid: every local address
	port    uint16
	pending int        // connections in SYN-RECEIVED or established but not accepted
	accept  chan *Conn // capacity backlog
	closed  bool
	conns   map[*Conn]bool // every connection this listener created, until CLOSED
}

// Listen starts accepting connections to addr:port (addr invalid or
// unspecified: any local address). backlog bounds connections that are
// half-open or not yet accepted; SYNs beyond it are dropped without an
// answer, as Linux does when its accept queue is full
// (net.ipv4.tcp_abort_on_overflow = 0), so the client retries its SYN.
func (s *Stack) Listen(addr netip.Addr, port uint16, backlog int) (*Listener, error) {
	if port == 0 {
		return nil, fmt.Errorf("stack: listen: port 0")
	}
	if backlog <= 0 {
		backlog = 128
	}
	if addr.IsValid() && addr.IsUnspecified() {
		addr = netip.Addr{}
	}
	cfg := s.connConfig()
	cfg.LocalPort = port
	fl, err := fsm.NewListener(cfg, backlog)
	if err != nil {
		return nil, fmt.Errorf("stack: listen: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, net.ErrClosed
	}
	if _, dup := s.listeners[port]; dup {
		return nil, fmt.Errorf("stack: port %d is already listening", port)
	}
	l := &Listener{s: s, fl: fl, addr: addr, port: port, accept: make(chan *Conn, backlog), conns: make(map[*Conn]bool)}
	s.listeners[port] = l
	return l, nil
}

func (l *Listener) accepts(dst netip.Addr) bool {
	return !l.addr.IsValid() || l.addr == dst
}

// input hands a segment to the listening port from a 4-tuple without a
// connection to the fsm.Listener and does what it says. Called with the
// stack lock held.
func (l *Listener) input(pkt *craft.Packet, now time.Time) {
	local := netip.AddrPortFrom(pkt.Dst(), l.port)
	remote := netip.AddrPortFrom(pkt.Src(), pkt.TCP.SrcPort)
	res, err := l.fl.Input(&pkt.TCP, l.pending, now)
	if err != nil {
		l.s.traceSegment(In, now, nil, nil, fmt.Errorf("listen: %w", err))
		return
	}
	switch res.Verdict {
	case fsm.ListenOpen:
		c := newConn(l.s, res.Conn, local, remote, l)
		l.s.conns[craft.FourTuple{Src: remote, Dst: local}] = c
		l.conns[c] = true
		l.pending++
		l.s.flush(c, now)
		return
	case fsm.ListenReply:
		l.s.send(local.Addr(), remote.Addr(), &res.Reply, now)
	}
	if ev, ok := res.Event(); ok && l.s.tracer != nil {
		l.s.tracer.Event(now, local, remote, ev)
	}
}

// ready queues an established connection for Accept. Called with the lock held.
func (l *Listener) ready(c *Conn) {
	c.queued = true
	if l.closed {
		return
	}
	// Never blocks: every connection in the channel holds one of the
	// pending slots until Accept takes it out (see forget), so the
	// channel holds at most pending <= backlog = cap(accept).
	l.accept <- c
}

// forget drops c from the listener's books once it is CLOSED. Called with
// the lock held. A connection that closed while waiting in the accept queue
// (the peer reset it) keeps its slot until Accept takes it out: it is still
// in the channel, and freeing the slot now would let the channel overfill
// and ready block with the stack's lock held. (Linux, too, hands out such a
// connection from accept(); the application then sees the reset.)
func (l *Listener) forget(c *Conn) {
	if !l.conns[c] {
		return
	}
	delete(l.conns, c)
	if !c.queued {
		l.pending--
	}
}

// Accept waits for the next established connection.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	for {
		select {
		case c, ok := <-l.accept:
			if !ok {
				return nil, net.ErrClosed
			}
			l.s.mu.Lock()
			if l.closed {
				// Close reset the connections still queued.
				l.s.mu.Unlock()
				return nil, net.ErrClosed
			}
			c.accepted = true
			l.pending-- // its slot, held since the SYN (see forget)
			l.s.mu.Unlock()
			return c, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops accepting: later SYNs to the port are answered with RST,
// and connections not yet returned by Accept (half-open or queued) are
// reset, as Linux does when a listening socket is closed, so that no peer
// is left connected to nobody. Accepted connections go on.
func (l *Listener) Close() error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.closeLocked()
	return nil
}

func (l *Listener) closeLocked() {
	if l.closed {
		return
	}
	l.closed = true
	close(l.accept)
	delete(l.s.listeners, l.port)
	now := l.s.now()
	for c := range l.conns { // flush -> remove -> forget deletes c: safe in range
		if !c.accepted {
			c.fc.Abort(now) // RFC 9293 §3.10.5: RST to a synchronized peer
			l.s.flush(c, now)
		}
	}
}
