package stack

import (
	"context"
	"errors"
	"io"
	"net/netip"

	"github.com/tcpcraft/tcpcraft/fsm"
)

// Conn is one connection of a Stack seen from the application: a byte
// stream with blocking, cancellable Read and Write. Read and Write may be
// called from different goroutines at once.
type Conn struct {
	s             *Stack
	fc            *fsm.Conn
	local, remote netip.AddrPort
	listener      *Listener // set for connections a listener accepted
	queued        bool      // handed to the listener's accept queue
	accepted      bool      // returned by Accept

	// changed is closed (and forgotten) when something changed that a
	// blocked Read, Write or Wait may be waiting for: a broadcast, since
	// a reader and a writer may wait at once. A waiter takes it under the
	// stack's lock in the same critical section as its check, so no
	// change can slip between check and wait.
	changed chan struct{}
	done    chan struct{} // closed when the machine reached CLOSED
	removed bool
	dirty   bool // fed a frame of the current burst, flush pending
	err     error
}

func newConn(s *Stack, fc *fsm.Conn, local, remote netip.AddrPort, l *Listener) *Conn {
	return &Conn{
		s: s, fc: fc, local: local, remote: remote, listener: l,
		done: make(chan struct{}),
	}
}

// signal wakes every goroutine blocked in Read, Write or Wait. Called with
// the stack's lock held.
func (c *Conn) signal() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// changes returns the channel closed at the next signal. Called with the
// stack's lock held.
func (c *Conn) changes() <-chan struct{} {
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

// LocalAddr is tcpcraft's end of the connection.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// RemoteAddr is the peer's end.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }

// State returns the connection's RFC 9293 state.
func (c *Conn) State() fsm.State {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.fc.State()
}

// Stats returns the machine's counters.
func (c *Conn) Stats() fsm.Stats {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.fc.Stats()
}

// Err returns the error that ended the connection (reset, refused, timeout),
// or nil.
func (c *Conn) Err() error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.err
}

// Done is closed once the connection reached CLOSED (after TIME-WAIT if we
// closed first).
func (c *Conn) Done() <-chan struct{} { return c.done }

// waitFor blocks until cond (evaluated with the lock held) is true, the
// connection is gone, or ctx ends.
func (c *Conn) waitFor(ctx context.Context, cond func() bool) error {
	for {
		c.s.mu.Lock()
		ok := cond() || c.removed
		changed := c.changes()
		c.s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-c.done:
		}
	}
}

// Read reads received in-order bytes, blocking until some arrive. It
// returns io.EOF after the peer's FIN, and the connection's error after a
// reset or timeout.
func (c *Conn) Read(ctx context.Context, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		c.s.mu.Lock()
		now := c.s.now()
		n, err := c.fc.Read(p, now)
		c.s.flush(c, now) // reading may open the window: a window update goes out
		if n == 0 && err == nil && c.removed {
			err = c.errOrEOFLocked()
		}
		if err != nil && !errors.Is(err, io.EOF) && c.err != nil {
			err = c.err
		}
		changed := c.changes()
		c.s.mu.Unlock()
		if n > 0 || err != nil {
			return n, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-changed:
		case <-c.done:
		}
	}
}

func (c *Conn) errOrEOFLocked() error {
	if c.err != nil {
		return c.err
	}
	return io.EOF
}

// Write queues all of p for sending, blocking while the send buffer is full.
func (c *Conn) Write(ctx context.Context, p []byte) (int, error) {
	written := 0
	for written < len(p) {
		c.s.mu.Lock()
		now := c.s.now()
		n, err := c.fc.Write(p[written:], now)
		c.s.flush(c, now)
		if c.s.drainInline() && n == 0 && err == nil {
			c.s.mu.Unlock()
			continue // ACKs in those frames may have made room
		}
		if err == nil && n == 0 && c.removed {
			err = c.errOrEOFLocked()
		}
		if err != nil && c.err != nil {
			err = c.err
		}
		changed := c.changes()
		c.s.mu.Unlock()
		written += n
		if err != nil {
			return written, err
		}
		if written == len(p) {
			break
		}
		if n == 0 {
			select {
			case <-ctx.Done():
				return written, ctx.Err()
			case <-changed:
			case <-c.done:
			}
		}
	}
	return written, nil
}

// CloseWrite sends FIN after the queued data (half-close: Read goes on).
func (c *Conn) CloseWrite() error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	now := c.s.now()
	err := c.fc.Close(now)
	c.s.flush(c, now)
	return err
}

// Abort resets the connection (RST to the peer if it is synchronized) and
// forgets it.
func (c *Conn) Abort() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.removed {
		return
	}
	now := c.s.now()
	c.fc.Abort(now)
	c.s.flush(c, now)
}

// Wait blocks until the connection reached CLOSED or ctx ends.
func (c *Conn) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitState blocks until the connection is in one of states (or gone).
func (c *Conn) WaitState(ctx context.Context, states ...fsm.State) error {
	return c.waitFor(ctx, func() bool {
		st := c.fc.State()
		for _, want := range states {
			if st == want {
				return true
			}
		}
		return false
	})
}
