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
// a SYN cookie, or a connection of its own (an fsm.Conn in SYN-RECEIVED,
// or ESTABLISHED from a cookie's ACK) that the Listener then hands to
// Accept once established.
type Listener struct {
	s        *Stack
	fl       *fsm.Listener
	addr     netip.Addr // see Listen; matchesLocal
	port     uint16
	pending  int // connections in SYN-RECEIVED or established but not accepted
	halfOpen int // those of pending in SYN-RECEIVED: the SYN queue
	// accept holds established connections until Accept takes them.
	// Its capacity is twice the backlog: fsm.Listener admits a SYN
	// while both queues are below the backlog and a cookie's ACK while
	// the accept queue is, so half-open plus queued never exceeds
	// 2*backlog, and ready never blocks.
	accept chan *Conn
	closed bool
	conns  map[*Conn]bool // every connection this listener created, until CLOSED
}

// Listen starts accepting connections to addr:port: addr one of our
// addresses, 0.0.0.0 (any IPv4 address), :: (any IPv6 address) or the
// zero netip.Addr (any address of either family, as a kernel socket on
// [::] without IPV6_V6ONLY). backlog bounds the connections that
// are half-open (the SYN queue) and, apart, those established but not yet
// accepted (the accept queue), as listen(2)'s does in Linux. A SYN the
// SYN queue has no room for gets a SYN cookie; one that comes while the
// accept queue is full is dropped without an answer, as Linux does
// (net.ipv4.tcp_abort_on_overflow = 0), so the client retries its SYN.
func (s *Stack) Listen(addr netip.Addr, port uint16, backlog int) (*Listener, error) {
	return s.ListenWith(addr, port, fsm.ListenConfig{Backlog: backlog})
}

// ListenWith is Listen with the fsm.Listener's whole configuration: the
// backlog (0: 128) and when to answer with SYN cookies.
func (s *Stack) ListenWith(addr netip.Addr, port uint16, lc fsm.ListenConfig) (*Listener, error) {
	if port == 0 {
		return nil, fmt.Errorf("stack: listen: port 0")
	}
	if lc.Backlog <= 0 {
		lc.Backlog = 128
	}
	backlog := lc.Backlog
	addr = addr.Unmap()
	cfg := s.connConfig()
	cfg.LocalPort = port
	fl, err := fsm.NewListener(cfg, lc)
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
	l := &Listener{s: s, fl: fl, addr: addr, port: port, accept: make(chan *Conn, 2*backlog), conns: make(map[*Conn]bool)}
	s.listeners[port] = l
	return l, nil
}

func (l *Listener) accepts(dst netip.Addr) bool {
	return matchesLocal(l.addr, dst)
}

// input hands a segment to the listening port from a 4-tuple without a
// connection to the fsm.Listener and does what it says. Called with the
// stack lock held.
func (l *Listener) input(pkt *craft.Packet, now time.Time) {
	local := netip.AddrPortFrom(pkt.Dst(), l.port)
	remote := netip.AddrPortFrom(pkt.Src(), pkt.TCP.SrcPort)
	q := fsm.ListenQueue{HalfOpen: l.halfOpen, Accept: l.pending - l.halfOpen}
	res, err := l.fl.Input(&pkt.TCP, pkt.Src(), pkt.Dst(), q, now)
	if err != nil {
		l.s.traceSegment(In, now, nil, nil, fmt.Errorf("listen: %w", err))
		return
	}
	ev, hasEvent := res.Event()
	switch res.Verdict {
	case fsm.ListenOpen:
		c := newConn(l.s, res.Conn, local, remote, l)
		l.s.conns[craft.FourTuple{Src: remote, Dst: local}] = c
		l.conns[c] = true
		l.pending++
		if res.Conn.State() == fsm.SynReceived {
			c.halfOpen = true
			l.halfOpen++
		}
		l.s.flush(c, now)
		return
	case fsm.ListenReply:
		if res.Cookie && hasEvent && l.s.tracer != nil {
			// In cause order, as flush reports a Conn's: why, then
			// the SYN-ACK.
			l.s.tracer.Event(now, local, remote, ev)
			hasEvent = false
		}
		l.s.sendListenReply(local.Addr(), remote.Addr(), &res.Reply, now)
	}
	if hasEvent && l.s.tracer != nil {
		l.s.tracer.Event(now, local, remote, ev)
	}
}

// Stats returns the counters of the port's fsm.Listener: SYNs, SYN
// cookies sent and taken back, queue drops.
func (l *Listener) Stats() fsm.ListenStats {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.fl.Stats()
}

// ready queues an established connection for Accept. Called with the lock held.
func (l *Listener) ready(c *Conn) {
	c.queued = true
	if c.halfOpen {
		c.halfOpen = false
		l.halfOpen--
	}
	if l.closed {
		return
	}
	// Never blocks: every connection in the channel holds one of the
	// pending slots until Accept takes it out (see forget), so the
	// channel holds at most pending <= 2*backlog = cap(accept) (see
	// the field).
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
	if c.halfOpen {
		c.halfOpen = false
		l.halfOpen--
	}
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
