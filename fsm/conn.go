package fsm

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Conn is one TCP connection (one 4-tuple) as a state machine. It is not
// safe for concurrent use: the driver serialises all calls.
//
// Every method that takes now may produce segments (drain them with Output
// or AppendOutput) and events (Events or AppendEvents).
type Conn struct {
	cfg     Config
	state   State
	passive bool // opened by Listen: RST in SYN-RECEIVED returns to LISTEN

	snd sendSide // what we send (sendside.go)
	rcv recvSide // what we receive (recvside.go)
	opt agreed   // options agreed in the handshake
	rtt rttEstimator
	tmr timers // every deadline, and the counts of the probes they send

	// Congestion control (congestion.go); nil until our SYN is
	// acknowledged, when the send MSS is known.
	cc CongestionControl

	// Loss detection and recovery (recovery.go).
	sb   scoreboard // every segment in flight
	rec  recovery   // the recovery in progress, and the ACK counts that start one
	rack rackState  // RFC 8985 §6
	undo undoState  // RFC 2883 §5, RFC 4015
	tlp  tlpState   // RFC 8985 §7

	// The connection's clock starts at the first time it sees: the
	// timestamps option and the scoreboard's send times count from it.
	clockBase time.Time
	clockSet  bool

	chal challengeLimit // RFC 5961 §7

	err    error // terminal error reported to Read and Write
	out    []craft.TCP
	events []Event
	stats  Stats
	slab   slab
}

// agreed holds the options agreed in the handshake (RFC 7323, RFC 2018)
// and the timestamp state they bring (RFC 7323 §4.3, §5).
type agreed struct {
	ws, sack, ts bool
	// tsRecent is TS.Recent, valid since tsRecentAt when tsRecentValid.
	tsRecent      uint32
	tsRecentValid bool
	tsRecentAt    time.Time
	tsOffset      uint32 // our timestamp clock's random start (RFC 7323 §7.1)
}

// challengeLimit counts the challenge ACKs of the current second (RFC
// 5961 §7).
type challengeLimit struct {
	window time.Time
	count  int
}

// seqRange is a half-open range of sequence numbers [start, end).
type seqRange struct{ start, end craft.Seq }

// maxOOORanges bounds the bookkeeping of out-of-order data: a segment that
// would open one hole too many is dropped (the peer resends it).
const maxOOORanges = 64

// NewConn validates cfg and returns a connection in the CLOSED state.
func NewConn(cfg Config) (*Conn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Conn{cfg: cfg, state: Closed}
	c.rcv.offShift = cfg.WindowScale
	var rnd [8]byte
	if !cfg.FixedISS || !cfg.FixedTSOffset {
		src := cfg.Rand
		if src == nil {
			src = rand.Reader
		}
		if _, err := io.ReadFull(src, rnd[:]); err != nil {
			return nil, fmt.Errorf("fsm: drawing the initial sequence number: %w", err)
		}
	}
	c.snd.iss = craft.Seq(binary.BigEndian.Uint32(rnd[0:4]))
	if cfg.FixedISS {
		c.snd.iss = cfg.ISS
	}
	c.opt.tsOffset = binary.BigEndian.Uint32(rnd[4:8])
	if cfg.FixedTSOffset {
		c.opt.tsOffset = cfg.TSOffset
	}
	c.snd.una, c.snd.nxt, c.snd.max = c.snd.iss, c.snd.iss, c.snd.iss
	c.snd.bufSeq = c.snd.iss.Add(1)
	c.snd.buf.max = cfg.SendBufferSize
	c.slab.reuse = cfg.ReuseOutput
	c.rcv.buf.max = cfg.RecvBufferSize
	c.rtt = newRTTEstimator(&cfg)
	c.snd.peerMSS = 536 // RFC 9293 §3.7.1: assume 536 until told otherwise
	c.snd.mss = c.effectiveMSS()
	c.rack.reoWndMult = 1
	c.rack.reordering = dupThresh
	c.stats.RTO = c.rtt.rto
	return c, nil
}

// Config returns the configuration in use (defaults filled in).
func (c *Conn) Config() Config { return c.cfg }

// State returns the current state.
func (c *Conn) State() State { return c.state }

// ISS returns our initial send sequence number.
func (c *Conn) ISS() craft.Seq { return c.snd.iss }

// IRS returns the peer's initial sequence number (zero before its SYN).
func (c *Conn) IRS() craft.Seq { return c.rcv.irs }

// Err returns the error that ended the connection, if any.
func (c *Conn) Err() error { return c.err }

// touch starts the timestamp clock at the first time the connection sees.
func (c *Conn) touch(now time.Time) {
	if !c.clockSet {
		c.clockBase = now
		c.clockSet = true
		c.chal.window = now
	}
}

// tsNow is our timestamp clock: milliseconds since the connection began,
// from a random offset (RFC 7323 §5.4: 1 ms to 1 s per tick; §7.1).
func (c *Conn) tsNow(now time.Time) uint32 {
	d := now.Sub(c.clockBase)
	if d < 0 {
		d = 0 // a caller's clock that stepped back must not jump ours
	}
	return c.opt.tsOffset + uint32(d/time.Millisecond)
}

// Connect performs the active OPEN (RFC 9293 §3.10.1): queue a SYN and enter
// SYN-SENT.
func (c *Conn) Connect(now time.Time) error {
	if c.state != Closed || c.err != nil || c.snd.synAcked {
		return fmt.Errorf("fsm: connect: %w", ErrExists)
	}
	c.touch(now)
	c.setState(SynSent, CauseConnect)
	c.transmit(now)
	return nil
}

// Listen performs the passive OPEN (RFC 9293 §3.10.1): enter LISTEN and wait
// for the SYN the driver feeds in.
func (c *Conn) Listen() error {
	if c.state != Closed || c.err != nil || c.snd.synAcked {
		return fmt.Errorf("fsm: listen: %w", ErrExists)
	}
	c.passive = true
	c.setState(Listen, CauseListen)
	return nil
}

// Write queues application data (RFC 9293 §3.10.2 SEND). It returns how many
// bytes fit in the send buffer, which is less than len(p) when the buffer is
// full; it never blocks. Data written before the handshake completes is sent
// once the connection is established.
func (c *Conn) Write(p []byte, now time.Time) (int, error) {
	c.touch(now)
	if err := c.writeAllowed(); err != nil {
		return 0, err
	}
	if c.snd.buf.lent > 0 {
		return 0, fmt.Errorf("fsm: write: %w", ErrLent)
	}
	c.uncork()
	c.ownPendingPayloads()
	n := c.snd.buf.write(p)
	if n > 0 {
		c.transmit(now)
	}
	return n, nil
}

// ownPendingPayloads gives segments not yet drained their own copy of
// payload bytes they borrow from the send buffer: an ACK may since have
// freed those bytes, and new data may now be put there (a driver that
// drains after every call never needs it).
func (c *Conn) ownPendingPayloads() {
	if !c.slab.reuse || len(c.out) == 0 {
		return
	}
	for i := range c.out {
		if p := c.out[i].Payload; len(p) > 0 {
			own := c.slab.payload(len(p))
			copy(own, p)
			c.out[i].Payload = own
		}
	}
}

// SendSpace lends the driver up to max bytes of free send buffer to fill
// with application data, so that input can be read straight into the
// buffer instead of being copied in by Write: that copy sits on a bulk
// sender's critical path. The slice stops where the buffer
// wraps, so it may be shorter than max; it is empty when the buffer is
// full or the connection cannot take data (then the error says why, as
// Write's would). The loan ends with CommitSend. Until then the driver
// may fill the slice from another goroutine while it goes on calling
// into the Conn, except Write (which fails with ErrLent) and SendSpace.
func (c *Conn) SendSpace(max int) ([]byte, error) {
	if err := c.writeAllowed(); err != nil {
		return nil, err
	}
	if c.snd.buf.lent > 0 {
		return nil, fmt.Errorf("fsm: send space: %w", ErrLent)
	}
	c.ownPendingPayloads()
	return c.snd.buf.space(max), nil
}

// ExtendSendSpace is SendSpace that, while a loan is out, lends up to max
// more bytes: those that follow the loan in the send buffer. The loan
// grows, and its parts are still committed in order from its front, so a
// driver can read ahead into the buffer while the part it read before is
// being committed and sent, without waiting for the loan to end (which
// would idle the sender once per loan). The slice is empty when
// nothing more is free (or, under a loan, when the buffer would have to
// grow: lent bytes do not move).
func (c *Conn) ExtendSendSpace(max int) ([]byte, error) {
	if err := c.writeAllowed(); err != nil {
		return nil, err
	}
	c.ownPendingPayloads()
	return c.snd.buf.extend(max), nil
}

// Lent is how many bytes of send buffer SendSpace has lent and CommitSend
// has not yet taken back: 0 when no loan is out.
func (c *Conn) Lent() int { return c.snd.buf.lent }

// CommitSend queues the first n bytes of the space SendSpace lent, as
// Write would have queued them (RFC 9293 §3.10.2 SEND), and ends the loan.
// If the connection can no longer send (closed, reset, our FIN queued
// meanwhile) the bytes are dropped and the error says why, as Write's
// would.
func (c *Conn) CommitSend(n int, now time.Time) (int, error) {
	return c.commitSend(n, true, false, now)
}

// CommitSendMore is CommitSendPart for a driver that knows more data
// follows at once (its read of the input filled all it asked for): a last
// segment short of a full MSS is held back, for the next commit to fill,
// as Linux's TCP_CORK and MSG_MORE do. Without it each commit of a bulk
// sender's chunks would end in a small segment, and every one of those
// costs about as much on both hosts as a full 64 KB burst. The held
// bytes go with the next commit, Write or Close, or after corkTimeout.
func (c *Conn) CommitSendMore(n int, now time.Time) (int, error) {
	return c.commitSend(n, false, true, now)
}

// CommitSendPart queues the first n bytes of what is still lent, like
// CommitSend, but keeps the rest of the loan: the driver may go on filling
// it (from another goroutine, meanwhile) and commit it later, in order.
// The loan ends when all of it is committed, or with CommitSend. On an
// error the loan ends too.
func (c *Conn) CommitSendPart(n int, now time.Time) (int, error) {
	return c.commitSend(n, false, false, now)
}

// uncork ends a cork (CommitSendMore): what it held may go.
func (c *Conn) uncork() {
	c.snd.corked = false
	c.tmr.corkAt = time.Time{}
}

// CommitSendClose is CommitSend followed by Close, in one step: a driver
// that knows its input has ended (the last read met the end) queues the
// last data and the FIN together, so the FIN goes in the data's last
// segment when both windows have room for it (as Linux's tcp_send_fin
// puts it on a segment still queued), not in a segment of its own after.
func (c *Conn) CommitSendClose(n int, now time.Time) (int, error) {
	if _, err := c.queueCommit(n, true, false, now); err != nil {
		return 0, err
	}
	return n, c.Close(now)
}

func (c *Conn) commitSend(n int, end, more bool, now time.Time) (int, error) {
	wasCorked, err := c.queueCommit(n, end, more, now)
	if err != nil {
		return 0, err
	}
	if n > 0 || wasCorked && !more {
		c.transmit(now)
	}
	return n, nil
}

// queueCommit queues n bytes of the loan (see commitSend) and reports
// whether a cork held bytes back before it; it sends nothing.
func (c *Conn) queueCommit(n int, end, more bool, now time.Time) (wasCorked bool, err error) {
	c.touch(now)
	wasCorked = c.snd.corked
	c.uncork()
	if n < 0 || n > c.snd.buf.lent {
		lent := c.snd.buf.lent
		c.snd.buf.lent = 0
		return wasCorked, fmt.Errorf("fsm: commit of %d bytes of a %d-byte loan", n, lent)
	}
	if err := c.writeAllowed(); err != nil {
		c.snd.buf.lent = 0
		return wasCorked, err
	}
	c.snd.buf.commit(n, end)
	// A cork's timer runs from the last commit: a bulk sender's next
	// one comes long before it, and fills the held segment.
	c.snd.corked = more
	return wasCorked, nil
}

// writeAllowed says why the connection cannot take data now, or nil.
func (c *Conn) writeAllowed() error {
	if c.err != nil {
		return c.err
	}
	switch c.state {
	case Closed:
		return fmt.Errorf("fsm: write: %w", ErrNotConnected)
	case Listen:
		return fmt.Errorf("fsm: write in LISTEN: %w", ErrNotConnected)
	case FinWait1, FinWait2, Closing, LastAck, TimeWait:
		return fmt.Errorf("fsm: write: %w", ErrClosing)
	}
	if c.snd.finQueued {
		return fmt.Errorf("fsm: write: %w", ErrClosing)
	}
	return nil
}

// Writable returns how many bytes Write would accept now.
func (c *Conn) Writable() int {
	switch c.state {
	case SynSent, SynReceived, Established, CloseWait:
		if c.snd.finQueued || c.err != nil {
			return 0
		}
		return c.snd.buf.free()
	}
	return 0
}

// Readable returns how many in-order bytes Read can return now.
func (c *Conn) Readable() int { return c.rcv.buf.n }

// Read copies in-order received data into p (RFC 9293 §3.10.3 RECEIVE). It
// returns 0, nil when nothing is available yet, and io.EOF once the peer's
// FIN has been received and every byte before it read. Reading opens the
// receive window, which may queue a window update.
func (c *Conn) Read(p []byte, now time.Time) (int, error) {
	c.touch(now)
	if c.rcv.buf.n == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.rcv.closed {
			return 0, io.EOF
		}
		if c.state == Closed {
			return 0, fmt.Errorf("fsm: read: %w", ErrNotConnected)
		}
		return 0, nil
	}
	n := len(p)
	if n > c.rcv.buf.n {
		n = c.rcv.buf.n
	}
	c.rcv.buf.readAt(0, p[:n])
	c.rcv.buf.advance(n)
	c.rcv.buf.n -= n
	c.maybeWindowUpdate(now)
	c.transmit(now)
	return n, nil
}

// Close performs the CLOSE call (RFC 9293 §3.10.4): a FIN follows the data
// already queued; we can still receive (half-close).
func (c *Conn) Close(now time.Time) error {
	c.touch(now)
	c.uncork()
	switch c.state {
	case Closed:
		// RFC 9293 §3.10.4 CLOSED: "connection does not exist".
		if c.err != nil {
			return c.err
		}
		return fmt.Errorf("fsm: close: %w", ErrNotConnected)
	case Listen, SynSent:
		// §3.10.4 LISTEN/SYN-SENT: delete the TCB, enter CLOSED.
		c.setState(Closed, CauseClose)
		c.stopTimers()
		return nil
	case SynReceived, Established:
		// §3.10.4 SYN-RECEIVED/ESTABLISHED: queue FIN, enter FIN-WAIT-1.
		// (In SYN-RECEIVED the FIN goes out after the SYN-ACK, which is
		// what "queue for processing after entering ESTABLISHED" amounts
		// to for a FIN that needs our SYN acknowledged first.)
		c.snd.finQueued = true
		c.setState(FinWait1, CauseClose)
	case CloseWait:
		// §3.10.4 CLOSE-WAIT: queue FIN, enter LAST-ACK.
		c.snd.finQueued = true
		c.setState(LastAck, CauseClose)
	default:
		// §3.10.4 FIN-WAIT-1/2, CLOSING, LAST-ACK, TIME-WAIT.
		return fmt.Errorf("fsm: close: %w", ErrClosing)
	}
	c.transmit(now)
	return nil
}

// Abort performs the ABORT call (RFC 9293 §3.10.5): in SYN-RECEIVED,
// ESTABLISHED, FIN-WAIT-1/2 and CLOSE-WAIT an RST goes out; in every case the
// connection ends in CLOSED and queued data is discarded.
func (c *Conn) Abort(now time.Time) {
	c.touch(now)
	switch c.state {
	case Closed:
		return
	case SynReceived, Established, FinWait1, FinWait2, CloseWait:
		// §3.10.5: <SEQ=SND.NXT><CTL=RST>.
		c.sendRST(c.snd.max, 0, false, now)
	}
	c.stopTimers()
	if c.err == nil {
		c.err = ErrAborted
	}
	c.setState(Closed, CauseAbort)
}

// Output drains the segments to send, in order. The returned segments own
// their payload and option slices (they are never reused by the Conn)
// unless Config.ReuseOutput is set: then they are valid until the next
// call into the Conn.
func (c *Conn) Output() []craft.TCP {
	if len(c.out) == 0 {
		return nil
	}
	o := make([]craft.TCP, len(c.out))
	copy(o, c.out)
	c.out = c.out[:0]
	c.slab.drained = c.slab.reuse
	return o
}

// AppendOutput appends the segments to send to dst and drains them; it
// avoids an allocation per call on the bulk path. Their memory is as
// Output's.
func (c *Conn) AppendOutput(dst []craft.TCP) []craft.TCP {
	dst = append(dst, c.out...)
	clear(c.out)
	c.out = c.out[:0]
	c.slab.drained = c.slab.reuse
	return dst
}

// Events drains the events produced since the last call.
func (c *Conn) Events() []Event {
	if len(c.events) == 0 {
		return nil
	}
	e := make([]Event, len(c.events))
	copy(e, c.events)
	c.events = c.events[:0]
	return e
}

// AppendEvents appends the pending events to dst and drains them.
func (c *Conn) AppendEvents(dst []Event) []Event {
	dst = append(dst, c.events...)
	clear(c.events)
	c.events = c.events[:0]
	return dst
}

// setState moves to s and reports the change with its cause.
func (c *Conn) setState(s State, cause Cause) {
	if s == c.state {
		return
	}
	c.events = append(c.events, Event{Kind: StateChange, From: c.state, To: s, Cause: cause})
	c.state = s
}

// fail ends the connection with err.
func (c *Conn) fail(err error, cause Cause) {
	c.err = err
	c.events = append(c.events, Event{Kind: Error, Err: err, Cause: cause})
	c.stopTimers()
	c.setState(Closed, cause)
}

func (c *Conn) stopTimers() {
	c.tmr.stop()
	c.uncork()
	c.rcv.ackNow = false
}

// drop discards the arriving segment: its one verdict, counted once
// whatever else it draws (an ACK, a challenge ACK, an RST).
func (c *Conn) drop(cause Cause) {
	c.stats.SegsDropped++
	c.events = append(c.events, Event{Kind: SegmentDropped, Cause: cause})
}

// effectiveMSS is the payload we put in a segment: the smaller of the peer's
// MSS and ours (RFC 9293 §3.7.1 bounds it by the peer's), less the 12 bytes
// of the timestamps option carried on every segment (RFC 7323 §3.2; RFC 9293
// §3.7.1 "the MSS ... excluding TCP options" is why the option eats into it).
func (c *Conn) effectiveMSS() int {
	m := int(c.snd.peerMSS)
	if int(c.cfg.MSS) < m {
		m = int(c.cfg.MSS)
	}
	if c.snd.pathMSS != 0 && int(c.snd.pathMSS) < m {
		m = int(c.snd.pathMSS)
	}
	if c.opt.ts {
		m -= 12
	}
	// No room is reserved for SACK blocks: they ride on ACKs, and a data
	// segment carries them only when they fit (see segOptions).
	if m < 1 {
		m = 1
	}
	return m
}

// maybeWindowUpdate queues an ACK after a read that opened the window a lot:
// when the window left to the peer is at most half the largest window we
// can offer and the new one is at least twice as large (Linux's rule,
// tcp_cleanup_rbuf), and by at least the
// receiver's SWS threshold (RFC 9293 §3.8.6.2.2). The update goes out at
// once only when the peer is short of window (less than windowUpdateRoom
// full segments left); otherwise it may wait like a delayed ACK (RFC 9293
// §3.8.6.3) and ride on our next segment. That matters after the
// handshake: the SYN-ACK could offer at most 64 KiB (unscaled, RFC 7323
// §2.2), so the first read opens a larger buffer's window by a lot, and
// an application that answers what it read (an echo server, any
// request-response server) would send a pure window update just before
// its answer: two segments where one does.
func (c *Conn) maybeWindowUpdate(now time.Time) {
	switch c.state {
	case Established, FinWait1, FinWait2:
	default:
		return
	}
	cur := int(c.rcv.window())
	// The window can offer no more than the buffer, nor more than the
	// field carries at our scale (RFC 7323 §2.2: 65535 bytes unscaled):
	// Linux's window_clamp. Room beyond it opens nothing the peer sees.
	clamp := min(c.cfg.RecvBufferSize, 0xffff<<c.rcv.shift)
	free := min(c.freeSpace(), clamp)
	thresh := min(c.cfg.RecvBufferSize/2, int(c.cfg.MSS))
	if 2*cur <= clamp && free >= 2*cur && free-cur >= thresh {
		if c.cfg.DelayedACK > 0 && cur >= windowUpdateRoom*int(c.cfg.MSS) {
			if c.tmr.delackAt.IsZero() {
				c.tmr.delackAt = now.Add(c.cfg.DelayedACK)
			}
			return
		}
		c.rcv.ackNow = true
	}
}

// windowUpdateRoom is how many full segments of window the peer must still
// have for a window update to wait (maybeWindowUpdate).
const windowUpdateRoom = 8
