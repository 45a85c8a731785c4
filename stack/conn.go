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
	halfOpen      bool      // counted in its listener's SYN queue (SYN-RECEIVED)
	queued        bool      // handed to the listener's accept queue
	accepted      bool      // returned by Accept

	// wake[k] is closed (and forgotten) when something changed that a
	// blocked waiter of kind k may be waiting for: a broadcast, since
	// several may wait at once. A waiter takes it under the stack's lock
	// in the same critical section as its check, so no change can slip
	// between check and wait. Readers and writers wait apart: woken by
	// every event, a bulk upload's input goroutine and its idle output
	// goroutine would both wake for each ACK only to find nothing to do.
	wake [waitKinds]chan struct{}
	// writeWant is the least free send buffer a waiting writer needs;
	// ACKs that leave less free do not wake it.
	writeWant int
	done      chan struct{} // closed when the machine reached CLOSED
	removed   bool
	dirty     bool // fed a frame of the current burst, flush pending
	err       error
}

func newConn(s *Stack, fc *fsm.Conn, local, remote netip.AddrPort, l *Listener) *Conn {
	return &Conn{
		s: s, fc: fc, local: local, remote: remote, listener: l,
		done: make(chan struct{}),
	}
}

// waitKind says what a blocked goroutine waits for.
type waitKind int

const (
	waitAny   waitKind = iota // any event: a state, the handshake's end
	waitRead                  // bytes to read, EOF or an error
	waitWrite                 // free send buffer or an error
	waitKinds
)

// signal wakes the goroutines blocked waiting for kind. Called with the
// stack's lock held.
func (c *Conn) signal(kind waitKind) {
	if c.wake[kind] != nil {
		close(c.wake[kind])
		c.wake[kind] = nil
	}
}

// changes returns the channel closed at the next signal of kind. Called
// with the stack's lock held.
func (c *Conn) changes(kind waitKind) <-chan struct{} {
	if c.wake[kind] == nil {
		c.wake[kind] = make(chan struct{})
	}
	return c.wake[kind]
}

// writeChanges is changes(waitWrite) for a writer that needs want bytes
// of free send buffer. The threshold is the least of the writers waiting
// since the last wake-up; one that gave up (its context ended) leaves its
// own behind until then, so that another may wake once too often, never
// too late.
func (c *Conn) writeChanges(want int) <-chan struct{} {
	if c.wake[waitWrite] == nil || want < c.writeWant {
		c.writeWant = want
	}
	return c.changes(waitWrite)
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
		changed := c.changes(waitAny)
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
		changed := c.changes(waitRead)
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
		changed := c.writeChanges(1)
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

// SendSpace lends up to size bytes of the send buffer's free space for the
// caller to fill, so that input can be read straight into the buffer
// rather than copied in by Write (see fsm.Conn.SendSpace). It blocks until
// size bytes, or a quarter of the buffer, are free (large reads keep a bulk
// sender's segments full), the connection can no longer take data (its
// error), or ctx ends. The slice may be shorter than asked where the
// buffer wraps. The loan ends with CommitSend; until then Write fails
// with fsm.ErrLent, while Read and everything else go on as usual. A size
// of 0 or less lends nothing and returns at once, and so does a SendSpace
// while a loan is out, with fsm.ErrLent.
func (c *Conn) SendSpace(ctx context.Context, size int) ([]byte, error) {
	return c.sendSpace(ctx, size, false)
}

// ExtendSendSpace is SendSpace that, while a loan is out, grows it by up
// to size bytes, those that follow it in the buffer (see
// fsm.Conn.ExtendSendSpace), waiting for room as SendSpace does. One
// goroutine can so read ahead while another commits the parts filled
// before (CommitSendPart), and neither waits for the other at the end of
// a loan.
func (c *Conn) ExtendSendSpace(ctx context.Context, size int) ([]byte, error) {
	return c.sendSpace(ctx, size, true)
}

func (c *Conn) sendSpace(ctx context.Context, size int, extend bool) ([]byte, error) {
	lend := c.fc.SendSpace
	if extend {
		lend = c.fc.ExtendSendSpace
	}
	for {
		c.s.mu.Lock()
		want := max(1, min(size, c.fc.Config().SendBufferSize/4))
		if c.removed {
			err := c.errOrEOFLocked()
			c.s.mu.Unlock()
			if errors.Is(err, io.EOF) {
				err = fsm.ErrNotConnected
			}
			return nil, err
		}
		if size <= 0 || (!extend && c.fc.Lent() > 0) {
			// Nothing to wait for: an empty request lends nothing (as
			// an empty io.Reader Read), and a second loan is refused
			// with fsm.ErrLent however much is free. fsm says so, or
			// why the connection takes no data.
			p, err := lend(size)
			c.s.mu.Unlock()
			return p, err
		}
		if free := c.fc.Writable(); free >= want || free == 0 {
			// free == 0 is a full buffer, or a connection that cannot
			// take data: fsm says which.
			p, err := lend(size)
			if err != nil || len(p) > 0 {
				c.s.mu.Unlock()
				return p, err
			}
		}
		changed := c.writeChanges(want)
		c.s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-c.done:
		}
	}
}

// CommitSend queues the first n bytes of the space SendSpace lent, ends the
// loan, and sends what the windows allow. n may be 0 (nothing was read).
// When the connection can no longer send, the bytes are dropped and the
// error says why.
func (c *Conn) CommitSend(n int) error { return c.commitSend(n, true, false) }

// CommitSendPart is CommitSend that keeps the rest of the loan lent (see
// fsm.Conn.CommitSendPart): one goroutine may commit, and send, the part
// of the loan already filled while another goes on filling the rest.
func (c *Conn) CommitSendPart(n int) error { return c.commitSend(n, false, false) }

// CommitSendMore is CommitSendPart for a caller that knows more data
// follows at once (its read filled all it asked for): a last segment short
// of a full MSS waits for the next commit (see fsm.Conn.CommitSendMore).
func (c *Conn) CommitSendMore(n int) error { return c.commitSend(n, false, true) }

func (c *Conn) commitSend(n int, end, more bool) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	now := c.s.now()
	var err error
	switch {
	case end:
		_, err = c.fc.CommitSend(n, now)
	case more:
		_, err = c.fc.CommitSendMore(n, now)
	default:
		_, err = c.fc.CommitSendPart(n, now)
	}
	c.s.flush(c, now)
	c.s.drainInline()
	if err != nil && c.err != nil {
		err = c.err
	}
	return err
}

// CommitSendClose is CommitSend and CloseWrite in one step, for a caller
// whose input has ended: the FIN goes in the last data segment where the
// windows allow (fsm.Conn.CommitSendClose). n may be 0.
func (c *Conn) CommitSendClose(n int) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	// What has come in meanwhile is taken first: the peer's FIN among it
	// makes ours the answer (CLOSE-WAIT to LAST-ACK, no TIME-WAIT), as it
	// was when the last commit and the close were two steps, and the
	// frames waiting were taken between them.
	c.s.drainInline()
	now := c.s.now()
	_, err := c.fc.CommitSendClose(n, now)
	c.s.flush(c, now)
	c.s.drainInline()
	if err != nil && c.err != nil {
		err = c.err
	}
	return err
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
