package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/stack"
)

func connectFlags() []cli.Flag {
	flags := append(linkFlags(), connFlags()...)
	flags = append(flags, familyFlags("a HOST name resolves to addresses of this family only")...)
	flags = append(flags, ladderFlags()...)
	return append(flags, statsFlag(),
		&durationFlag{Name: "timeout", Aliases: []string{"w"}, Value: 10 * time.Second, Usage: "give up if the handshake has not completed after this long; 0: only the SYN retry limit"},
	)
}

// runConnect is the action of "tcpcraft connect HOST:PORT".
func runConnect(ctx context.Context, c *cli.Command) error {
	if c.NArg() != 1 {
		return usagef("want exactly one HOST:PORT argument, got %d (%s)", c.NArg(), quoteArgs(c.Args().Slice()))
	}
	// Check every flag before anything on the system changes.
	startupClockOf(c).mark("flags")
	if err := checkTraceFlags(c); err != nil {
		return err
	}
	if _, err := connConfig(c, 0); err != nil {
		return err
	}
	if _, err := faultSpecs(c); err != nil {
		return err
	}
	if err := exclusive(c, "ipv4", "ipv6"); err != nil {
		return err
	}
	remote, err := parsePeer(ctx, c.Args().First(), familyOf(c))
	if err != nil {
		return err
	}
	ladder, err := ladderFromFlags(c, true, time.Now())
	if err != nil {
		return err
	}
	if err := checkOutputPath("--stats", statsPath(c)); err != nil {
		return err
	}
	sess, err := openSession(ctx, c, sessionSpec{remote: remote}, func(mtu int) (fsm.Config, error) { return connConfig(c, mtu) })
	if err != nil {
		return err
	}
	defer sess.close()
	statsOut, closeStats, err := openStats(c)
	if err != nil {
		return err
	}
	defer closeStats()
	sess.trace.attach(ladder, statsOut)
	sess.trace.note("connecting %v -> %v on %s", sess.local, remote, sess.route.Interface)

	dialCtx, cancel := withOptionalTimeout(ctx, flagDuration(c, "timeout"))
	sess.clock.mark("dial")
	conn, err := sess.stack.Dial(dialCtx, remote, sess.local.Port())
	cancel()
	sess.clock.mark("established")
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err() // interrupted: exit 130 after close() resets the peer
	case errors.Is(err, context.DeadlineExceeded):
		return exitFailure(fmt.Errorf("connect to %v: no answer after %v (connection timed out)", remote, flagDuration(c, "timeout")))
	default:
		return exitFailure(fmt.Errorf("connect to %v: %w", remote, err))
	}
	sess.acts.register(conn)

	err = pipe(ctx, conn, finLimit(sess.specs, stdin(c)), stdout(c))
	sess.clock.mark("stream")
	sess.trace.summary(conn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if f := sess.acts.abortedBy(conn); f != "" && errors.Is(err, fsm.ErrAborted) {
		return exitFailure(fmt.Errorf("%v: reset on purpose (--fault %s)", remote, f))
	}
	if err != nil {
		return exitFailure(fmt.Errorf("%v: %w", remote, err))
	}
	if cerr := sess.close(); cerr != nil {
		return exitFailure(cerr)
	}
	sess.clock.mark("closed")
	sess.clock.print(stderr(c))
	return nil
}

// inputChunk is the most pipe reads from its input at once: with 64 KiB
// reads a bulk upload sent a sub-MSS segment after every 45 full ones, and
// ran about a quarter slower (docs/PERFORMANCE.md).
const inputChunk = 1 << 20

// firstInputChunk is pipe's first read from its input.
const firstInputChunk = 64 << 10

// pipe copies in to the connection and the connection to out, like nc -N:
// at the end of in it sends FIN and goes on reading; when the peer's FIN
// has been read it closes our side too. It returns when the connection is
// CLOSED (nil after a clean close, the connection's error after a reset or
// timeout) or ctx ends.
func pipe(ctx context.Context, conn *stack.Conn, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// sending guards the hand-over of input to the connection: once the
	// peer has closed, our FIN must not cut off a Write already under way
	// (that input was consumed and would be lost), and input read after
	// that point is not sent (like nc: the peer is gone).
	var sending sync.Mutex
	finished := false
	closeOurSide := func() {
		sending.Lock()
		defer sending.Unlock()
		if !finished {
			finished = true
			_ = conn.CloseWrite()
		}
	}
	outErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(ctx, buf)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					outErr <- fmt.Errorf("writing output: %w", werr)
					return
				}
			}
			if errors.Is(err, io.EOF) {
				// The peer is done sending (RFC 9293 §3.10.4): finish
				// our side once what is queued has gone. The output is
				// complete: its reader need not wait for our close
				// and TIME-WAIT.
				if e, ok := out.(interface{ endOutput() error }); ok {
					_ = e.endOutput()
				}
				closeOurSide()
				outErr <- nil
				return
			}
			if err != nil {
				outErr <- err
				return
			}
		}
	}()
	if in != nil {
		// The input is read straight into the connection's send buffer:
		// copying it in from a buffer of our own sat on a bulk upload's
		// critical path and cost a sixth of its speed. One
		// goroutine borrows as much free buffer as there is, reads into
		// it a chunk at a time, and extends the loan when it has filled
		// it; another commits each chunk as it is filled, which sends it.
		// So a bulk upload's read(2) of the next chunk overlaps the send
		// of the last one, and neither side waits for the other at the
		// end of a loan (waiting for the loan to end before borrowing
		// again left the sender idle for a read per loan: a fifth of a
		// 200 MB upload). Large reads (inputChunk): a bulk input (a file,
		// a fast pipe) reaches the connection in big pieces, so the
		// segment that ends a piece short of a full MSS (sent at once:
		// no Nagle by default) is rare. Interactive input still goes on
		// as soon as a read returns it.
		type filled struct {
			n    int
			full bool  // the read filled all it asked for: more follows
			err  error // the read's error (EOF): the last chunk
		}
		chunks := make(chan filled, 4)
		go func() {
			defer close(chunks)
			// While the committer has nothing queued (at the start, and
			// after the whole buffer was in flight and the ACKs freed
			// room) the reads are small and each twice the last, up to
			// inputChunk: the sender gets data after a 64 KiB read, not a
			// whole chunk's (a capture showed the sender idle for 0.4-0.8
			// ms each time, and the first 10 ms of an upload moving half
			// what the kernel's did).
			chunk := firstInputChunk
			// The first loan is one first read's worth: the whole send
			// buffer (megabytes, zeroed when first lent) for a request
			// of a few bytes cost a fifth of a short run's CPU time,
			// its page faults and the garbage collection that followed
			// (docs/PERFORMANCE.md). Once that has filled, the input is
			// bulk and the loans take all there is.
			ask := firstInputChunk
			for {
				loan, err := conn.ExtendSendSpace(ctx, ask)
				ask = math.MaxInt
				if err != nil {
					return // the connection's end is reported by Wait
				}
				for off := 0; off < len(loan); {
					if len(chunks) == 0 {
						chunk = firstInputChunk
					}
					want := min(chunk, len(loan)-off)
					chunk = min(2*chunk, inputChunk)
					n, rerr := in.Read(loan[off : off+want])
					if rerr == nil && n > 0 && n < want && readableNow(in) {
						// More, or the end, is there already (a
						// request from printf, whose pipe closed
						// behind it): taken now, so that the FIN
						// goes with the data rather than after
						// another round between these goroutines
						// and the stack. A peer that answers at our
						// FIN answers that much sooner, and one
						// that answers at the request and closes no
						// longer crosses our FIN with its own.
						m, err := in.Read(loan[off+n : off+want])
						n, rerr = n+m, err
					}
					off += n
					select {
					case chunks <- filled{n, n == want, rerr}:
					case <-ctx.Done():
						return
					}
					if rerr != nil {
						return
					}
				}
			}
		}()
		go func() {
			for c := range chunks {
				sending.Lock()
				if finished {
					// The peer closed and our FIN went out while we
					// read: like nc, input from then on is not sent.
					_ = conn.CommitSend(0)
					sending.Unlock()
					return
				}
				var cerr error
				switch {
				case c.err != nil:
					// EOF (or an unreadable input): the last data
					// and our FIN in one step (a half-close: the
					// peer's data is still read); the loan ends.
					finished = true
					cerr = conn.CommitSendClose(c.n)
				case c.full:
					// A bulk input: more is coming at once, so the
					// chunk's last bytes short of a full segment
					// wait for the next chunk rather than going
					// out as a small segment of their own.
					cerr = conn.CommitSendMore(c.n)
				default:
					cerr = conn.CommitSendPart(c.n)
				}
				sending.Unlock()
				if cerr != nil || c.err != nil {
					return
				}
			}
		}()
	} else {
		closeOurSide()
	}
	var readErr error
	select {
	case readErr = <-outErr:
	case <-ctx.Done():
		return ctx.Err()
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		if cerr := conn.Err(); cerr != nil {
			return cerr
		}
		conn.Abort()
		return readErr
	}
	if err := conn.Wait(ctx); err != nil {
		return err
	}
	return conn.Err()
}

// readableNow reports whether a read of in would return at once: data, or
// the end of a pipe whose writer has closed. Only for an input with a
// descriptor (standard input); false for anything else, and on any error.
func readableNow(in io.Reader) bool {
	sc, ok := in.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		ready = err == nil && n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0
	})
	return ready
}

// withOptionalTimeout is ctx with a timeout of d, or none when d <= 0.
func withOptionalTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
