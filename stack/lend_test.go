package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/fsm"
)

// Tests of Conn.SendSpace and Conn.CommitSend: the application borrows free
// send buffer, reads its input straight into it, and commits what it read.

// lendResult is the outcome of a SendSpace.
type lendResult struct {
	p   []byte
	err error
}

func (r lendResult) String() string { return fmt.Sprintf("%d bytes, err=%v", len(r.p), r.err) }

// asyncSendSpace runs c.SendSpace(ctx, size) in a goroutine.
func asyncSendSpace(ctx context.Context, c *Conn, size int) <-chan lendResult {
	return async(func() lendResult { p, err := c.SendSpace(ctx, size); return lendResult{p, err} })
}

// lendWritable is what the connection's send buffer has free now.
func lendWritable(c *Conn) int {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.fc.Writable()
}

// lossyDrop is a drop function for memLink.setDrop that loses each frame
// with probability rate, drawn from a seeded generator (safe for concurrent
// use), and counts what it dropped.
type lossyDrop struct {
	mu      sync.Mutex
	rng     *rand.Rand
	rate    float64
	dropped int
}

func newLossyDrop(seed uint64, rate float64) *lossyDrop {
	return &lossyDrop{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), rate: rate}
}

func (d *lossyDrop) drop([]byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rng.Float64() < d.rate {
		d.dropped++
		return true
	}
	return false
}

func (d *lossyDrop) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dropped
}

// jerkyReader is an input like a pipe or socket: each Read returns a
// pseudo-random amount (sometimes nothing at all, sometimes one byte,
// sometimes all that fits), then io.EOF once everything was read.
type jerkyReader struct {
	data []byte
	off  int
	rng  *rand.Rand
}

func (r *jerkyReader) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	var n int
	switch r.rng.IntN(6) {
	case 0:
		n = 0 // a read that found nothing (CommitSend(0))
	case 1:
		n = 1
	case 2:
		n = 1 + r.rng.IntN(3000)
	default:
		n = len(p)
	}
	n = copy(p[:min(n, len(p))], r.data[r.off:])
	r.off += n
	return n, nil
}

// A few megabytes written only through SendSpace, a read straight into the
// loan and CommitSend, with loans of odd, varying sizes and reads that fill
// them partly (or not at all), into a send buffer of odd size (the ring
// wraps under the loans), over a wire that loses a few percent of the
// frames both ways: the peer reads exactly the input, then EOF after
// CloseWrite.
func TestLendBulkTransferOverLossyWire(t *testing.T) {
	const sendBuffer = 100_003
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = sendBuffer
	p := newPair(t, testConnConfig(), clientCfg)
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47300)
	ctx := testContext(t)

	clientLoss, serverLoss := newLossyDrop(1, 0.03), newLossyDrop(2, 0.03)
	p.clientLink.setDrop(clientLoss.drop)
	p.serverLink.setDrop(serverLoss.drop)

	data := randomData(t, 3<<20)
	src := &jerkyReader{data: data, rng: rand.New(rand.NewPCG(3, 4))}
	// Odd sizes, some below a quarter of the buffer (SendSpace then waits
	// for all of them), some above (it waits for a quarter).
	sizes := []int{1, 7, 1447, 4099, 9973, 24_999, 65_537, math.MaxInt, 3, 13_001}
	type senderResult struct {
		loans, wrapped, zero int
		err                  error
	}
	sending := async(func() (r senderResult) {
		defer func() {
			if r.err != nil {
				client.Abort() // the reader then stops at once
			}
		}()
		for i := 0; ; i++ {
			size := sizes[i%len(sizes)]
			loan, err := client.SendSpace(ctx, size)
			if err != nil {
				r.err = fmt.Errorf("SendSpace(%d) after %d loans: %w", size, r.loans, err)
				return r
			}
			r.loans++
			if len(loan) == 0 || len(loan) > size {
				r.err = fmt.Errorf("SendSpace(%d) lent %d bytes", size, len(loan))
				return r
			}
			if size <= sendBuffer/4 && len(loan) < size {
				// SendSpace waited for size bytes to be free: only the
				// end of the ring can have cut the loan short.
				r.wrapped++
			}
			n, rerr := src.Read(loan) // read(2) straight into the buffer
			if n == 0 {
				r.zero++
			}
			if err := client.CommitSend(n); err != nil {
				r.err = fmt.Errorf("CommitSend(%d) of a %d-byte loan: %w", n, len(loan), err)
				return r
			}
			if errors.Is(rerr, io.EOF) {
				r.err = client.CloseWrite()
				return r
			}
		}
	})
	got, err := readAll(ctx, server)
	if err != nil {
		t.Fatalf("server read: %v (after %d bytes)", err, len(got))
	}
	r := await(t, sending, "the sender")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !bytes.Equal(got, data) {
		i := 0
		for i < min(len(got), len(data)) && got[i] == data[i] {
			i++
		}
		t.Fatalf("received %d bytes, sent %d; they differ from byte %d on", len(got), len(data), i)
	}
	// EOF again, not an error.
	if n, err := server.Read(ctx, make([]byte, 10)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("server Read after EOF: %d, %v; want 0, EOF", n, err)
	}
	st := client.Stats()
	t.Logf("%d loans (%d cut short by the ring's end, %d committed empty); %d client and %d server frames lost; %d retransmissions",
		r.loans, r.wrapped, r.zero, clientLoss.count(), serverLoss.count(), st.Retransmits)
	if clientLoss.count() == 0 || st.Retransmits == 0 {
		t.Errorf("the wire lost %d of the client's frames and %d were retransmitted: the loss was not exercised", clientLoss.count(), st.Retransmits)
	}
	if r.wrapped == 0 {
		t.Errorf("no loan was cut short by the end of the ring in %d loans: the wrap was not exercised", r.loans)
	}
	if r.zero == 0 {
		t.Errorf("no loan was committed empty in %d loans", r.loans)
	}
}

// fillSendBuffer writes pseudo-random bytes (Write, not loans) until the
// send buffer is full and stays so for a while: the peer does not read,
// its window is closed, and the ACKs of whatever was in flight are in. It
// returns the bytes written.
func fillSendBuffer(t *testing.T, ctx context.Context, c *Conn) []byte {
	t.Helper()
	chunk := randomData(t, 64<<10)
	var written []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		n, err := c.Write(wctx, chunk)
		cancel()
		written = append(written, chunk[:n]...)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Write filling the send buffer: %v", err)
		}
		// Nothing fitted for 100 ms (longer than a delayed ACK): no ACK
		// made room meanwhile, none is on its way.
		if n == 0 && lendWritable(c) == 0 {
			return written
		}
		if time.Now().After(deadline) {
			t.Fatalf("the send buffer did not stay full (%d bytes written)", len(written))
		}
	}
}

// SendSpace blocks while the send buffer is full (the peer does not read:
// its receive buffer is full, its window closed), whether a byte or a lot
// is asked for; a context that ends unblocks it with the context's error
// and leaves no loan out; once the peer reads, the ACKs make room and the
// waiting SendSpace returns a loan whose bytes reach the peer after the
// ones written before.
func TestLendSendSpaceBlocksWhileBufferFull(t *testing.T) {
	client, server, ctx := smallBuffersPair(t, 47400)

	want := fillSendBuffer(t, ctx, client)
	if len(want) < 16<<10 {
		t.Fatalf("only %d bytes were written before the buffer was full", len(want))
	}

	// Cancellation, asking for one byte: with none free it waits.
	cctx, cancel := context.WithCancel(ctx)
	waiting := asyncSendSpace(cctx, client, 1)
	time.Sleep(30 * time.Millisecond)
	notYet(t, waiting, "SendSpace(1) with the send buffer full")
	cancel()
	if r := await(t, waiting, "SendSpace after cancel"); !errors.Is(r.err, context.Canceled) || len(r.p) != 0 {
		t.Fatalf("SendSpace after cancel: %v, want no bytes and context.Canceled", r)
	}

	// A deadline, asking for as much as there is.
	dctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	r := await(t, asyncSendSpace(dctx, client, math.MaxInt), "SendSpace with a deadline")
	cancel()
	if !errors.Is(r.err, context.DeadlineExceeded) || len(r.p) != 0 {
		t.Fatalf("SendSpace past its deadline: %v, want no bytes and context.DeadlineExceeded", r)
	}

	// The abandoned SendSpaces left no loan out: Write is not refused, it
	// waits for room like any Write into a full buffer.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	extra := []byte("extra")
	n, err := client.Write(wctx, extra)
	cancel()
	want = append(want, extra[:n]...)
	if errors.Is(err, fsm.ErrLent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write after the cancelled SendSpaces: %d, %v; want it to wait for room (deadline exceeded), not fsm.ErrLent", n, err)
	}

	// Now one waits until the peer reads.
	waiting = asyncSendSpace(ctx, client, math.MaxInt)
	time.Sleep(30 * time.Millisecond)
	notYet(t, waiting, "SendSpace with the send buffer full")
	if w := lendWritable(client); w != 0 {
		t.Fatalf("the send buffer has %d bytes free while the peer does not read", w)
	}
	reading := async(func() ioResult {
		got, err := readAll(ctx, server)
		if err == nil && !bytes.Equal(got, want) {
			err = fmt.Errorf("received %d bytes that differ from the %d queued", len(got), len(want))
		}
		return ioResult{len(got), err}
	})
	r = await(t, waiting, "SendSpace after the peer read")
	if r.err != nil || len(r.p) == 0 {
		t.Fatalf("SendSpace after the peer read: %v", r)
	}
	fill := randomData(t, len(r.p))
	copy(r.p, fill)
	want = append(want, fill...) // before the reader can see the loan's bytes
	if err := client.CommitSend(len(r.p)); err != nil {
		t.Fatalf("CommitSend: %v", err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if res := await(t, reading, "the server's read to EOF"); res.err != nil {
		t.Fatalf("server: %v", res.err)
	}
}

// SendSpace(size) returns at once when size bytes are free, waits when
// fewer are, and a large request waits for a quarter of the send buffer,
// not for all of it: with the peer holding back most of what it received,
// the quarter its read frees is enough.
func TestLendSendSpaceWaitsForSizeOrQuarter(t *testing.T) {
	const sendBuffer, quarter = 16 << 10, 4 << 10
	client, server, ctx := smallBuffersPair(t, 47450)

	// The peer's window takes about 8 KiB and closes; the rest stays in
	// the send buffer, which then has about 3000 bytes free.
	want := randomData(t, 8<<10+sendBuffer-3000)
	if _, err := client.Write(ctx, want); err != nil {
		t.Fatal(err)
	}
	var free int
	eventually(t, "the send buffer to settle", func() bool {
		before := lendWritable(client)
		time.Sleep(100 * time.Millisecond) // longer than a delayed ACK
		free = lendWritable(client)
		return free == before
	})
	if free == 0 || free >= quarter {
		t.Fatalf("setup: %d bytes of the send buffer free, want some but less than a quarter (%d)", free, quarter)
	}

	// As much as is free: at once.
	r := await(t, asyncSendSpace(ctx, client, free), "SendSpace of what is free")
	if r.err != nil || len(r.p) == 0 || len(r.p) > free {
		t.Fatalf("SendSpace(%d) with %d bytes free: %v", free, free, r)
	}
	if err := client.CommitSend(0); err != nil {
		t.Fatal(err)
	}
	// One byte more than is free (and less than a quarter): it waits.
	cctx, cancel := context.WithCancel(ctx)
	waiting := asyncSendSpace(cctx, client, free+1)
	time.Sleep(30 * time.Millisecond)
	notYet(t, waiting, fmt.Sprintf("SendSpace(%d) with %d bytes free", free+1, free))
	cancel()
	if r := await(t, waiting, "SendSpace after cancel"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("SendSpace after cancel: %v, want context.Canceled", r)
	}

	// As much as there may be: it waits for a quarter of the buffer...
	waiting = asyncSendSpace(ctx, client, math.MaxInt)
	time.Sleep(30 * time.Millisecond)
	notYet(t, waiting, fmt.Sprintf("SendSpace(MaxInt) with %d bytes free", free))
	// ... which the peer's read of 6000 bytes frees (its window opens by
	// as much, the client sends, the ACKs come back), while the peer
	// still holds the rest of what it received: the whole buffer is
	// never free.
	got := make([]byte, 6000)
	if _, err := io.ReadFull(connReader{ctx, server}, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want[:len(got)]) {
		t.Fatal("the server read bytes that differ from the ones written")
	}
	r = await(t, waiting, "SendSpace(MaxInt) after the peer read a quarter's worth")
	if r.err != nil || len(r.p) == 0 {
		t.Fatalf("SendSpace(MaxInt) after the peer read: %v", r)
	}
	fill := randomData(t, len(r.p))
	copy(r.p, fill)
	want = append(want, fill...)
	if err := client.CommitSend(len(r.p)); err != nil {
		t.Fatal(err)
	}
	rest := closeAndReadRest(t, ctx, client, server)
	if got = append(got, rest...); !bytes.Equal(got, want) {
		t.Fatalf("server received %d bytes that differ from the %d queued", len(got), len(want))
	}
}

// While a loan is out, Write fails at once with an error wrapping
// fsm.ErrLent and queues nothing, the loan's bytes do not go out, and Read
// goes on working; CommitSend sends what it queued by itself; after
// CommitSend (of part of the loan, or of nothing) Write works again, and
// the peer reads the committed bytes, and only those, in order.
func TestLendWriteRefusedDuringLoan(t *testing.T) {
	// The client's timers are off, so that only CommitSend can send the
	// committed bytes (no timer flushes the connection meanwhile); it
	// acknowledges at once, having no delayed-ACK timer.
	clientCfg := testConnConfig()
	clientCfg.DelayedACK = 0
	p := newPairWith(t, testConnConfig(), clientCfg, runWithoutTimers)
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47500)
	ctx := testContext(t)

	var want []byte
	loan, err := client.SendSpace(ctx, 1000)
	if err != nil || len(loan) == 0 || len(loan) > 1000 {
		t.Fatalf("SendSpace(1000): %d bytes, %v", len(loan), err)
	}
	for i := range loan {
		loan[i] = 'L'
	}
	w := await(t, async(func() ioResult { n, err := client.Write(ctx, []byte("refused")); return ioResult{n, err} }), "Write during a loan")
	if w.n != 0 || !errors.Is(w.err, fsm.ErrLent) {
		t.Fatalf("Write during a loan: %v, want 0 bytes and fsm.ErrLent", w)
	}

	// Nothing of the loan goes out before it is committed.
	buf := make([]byte, 4096)
	reading := async(func() ioResult { n, err := server.Read(ctx, buf); return ioResult{n, err} })
	time.Sleep(50 * time.Millisecond)
	notYet(t, reading, "the server's Read before CommitSend")

	// Read works while the loan is out.
	if _, err := server.Write(ctx, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(connReader{ctx, client}, got); err != nil || string(got) != "ping" {
		t.Fatalf("client Read during a loan: %q, %v", got, err)
	}

	// Commit part of the loan: exactly that part arrives.
	k := (len(loan) + 1) / 2
	if err := client.CommitSend(k); err != nil {
		t.Fatalf("CommitSend(%d): %v", k, err)
	}
	want = append(want, loan[:k]...)
	first := await(t, reading, "the server's Read after CommitSend")
	if first.err != nil || first.n == 0 || first.n > len(want) || !bytes.Equal(buf[:first.n], want[:first.n]) {
		t.Fatalf("server Read after CommitSend(%d): %v %q", k, first, buf[:first.n])
	}
	received := append([]byte(nil), buf[:first.n]...)

	// The loan ended: Write works.
	if n, err := client.Write(ctx, []byte("after")); n != 5 || err != nil {
		t.Fatalf("Write after CommitSend: %d, %v", n, err)
	}
	want = append(want, "after"...)

	// A loan committed empty queues nothing and ends the loan too.
	loan, err = client.SendSpace(ctx, 300)
	if err != nil || len(loan) == 0 {
		t.Fatalf("SendSpace(300): %d bytes, %v", len(loan), err)
	}
	for i := range loan {
		loan[i] = 'X'
	}
	if _, err := client.Write(ctx, []byte("refused")); !errors.Is(err, fsm.ErrLent) {
		t.Fatalf("Write during the second loan: %v, want fsm.ErrLent", err)
	}
	if err := client.CommitSend(0); err != nil {
		t.Fatalf("CommitSend(0): %v", err)
	}
	if n, err := client.Write(ctx, []byte("again")); n != 5 || err != nil {
		t.Fatalf("Write after CommitSend(0): %d, %v", n, err)
	}
	want = append(want, "again"...)
	rest := closeAndReadRest(t, ctx, client, server)
	if received = append(received, rest...); !bytes.Equal(received, want) {
		t.Fatalf("server received %q, want %q", received, want)
	}
}

// A loan out while an ACK acknowledges every byte queued before it (the
// send buffer holds nothing but the loan) stays where it was lent: the
// peer reads what was filled in, after the bytes before it.
func TestLendLoanSurvivesAckOfEverythingBefore(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47550)
	ctx := testContext(t)

	// The server's ACKs are lost for now: the prefix stays unacknowledged.
	p.serverLink.setDrop(func([]byte) bool { return true })
	prefix := randomData(t, 3000)
	if _, err := client.Write(ctx, prefix); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(prefix))
	if _, err := io.ReadFull(connReader{ctx, server}, got); err != nil || !bytes.Equal(got, prefix) {
		t.Fatalf("server read of the prefix: %v", err)
	}
	if st := client.Stats(); st.BytesAcked != 0 {
		t.Fatalf("setup: %d bytes acknowledged through a wire that loses every ACK", st.BytesAcked)
	}
	loan, err := client.SendSpace(ctx, 5000)
	if err != nil || len(loan) == 0 {
		t.Fatalf("SendSpace: %d bytes, %v", len(loan), err)
	}
	// The ACKs get through again: the prefix is acknowledged, the buffer
	// holds only the loan.
	p.serverLink.setDrop(nil)
	if _, err := server.Write(ctx, []byte("pong")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the prefix to be acknowledged", func() bool { return client.Stats().BytesAcked == uint64(len(prefix)) })
	fill := randomData(t, len(loan))
	copy(loan, fill)
	if err := client.CommitSend(len(loan)); err != nil {
		t.Fatal(err)
	}
	rest := closeAndReadRest(t, ctx, client, server)
	if !bytes.Equal(rest, fill) {
		t.Fatalf("the server read %d bytes after the prefix that differ from the %d filled into the loan", len(rest), len(fill))
	}
}

// closeAndReadRest half-closes client and returns what server reads from
// then to EOF.
func closeAndReadRest(t *testing.T, ctx context.Context, client, server *Conn) []byte {
	t.Helper()
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := readAll(ctx, server)
	if err != nil {
		t.Fatalf("server read: %v (after %d bytes)", err, len(rest))
	}
	return rest
}

// smallBuffersPair connects a client with a 16 KiB send buffer to a
// server with an 8 KiB receive buffer, from client port port: a server
// that does not read soon shuts its window, and the client's buffer
// fills.
func smallBuffersPair(t *testing.T, port uint16) (client, server *Conn, ctx context.Context) {
	t.Helper()
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = 16 << 10
	serverCfg := testConnConfig()
	serverCfg.RecvBufferSize = 8 << 10
	p := newPair(t, serverCfg, clientCfg)
	l := listen(t, p.server, 80, 4)
	client, server = p.connect(t, l, port)
	return client, server, testContext(t)
}

// connReader adapts Conn.Read to io.Reader with a context.
type connReader struct {
	ctx context.Context
	c   *Conn
}

func (r connReader) Read(p []byte) (int, error) { return r.c.Read(r.ctx, p) }

// Once the connection is reset, by the peer or by us, SendSpace returns the
// connection's error at once (also when it was already waiting for room),
// and CommitSend of a loan taken before fails; the bytes do not arrive.
// Our own CloseWrite also ends a waiting SendSpace: the connection can no
// longer take data.
func TestLendAfterReset(t *testing.T) {
	setup := func(t *testing.T, clientCfg fsm.Config, serverCfg fsm.Config) (context.Context, *Conn, *Conn) {
		p := newPair(t, serverCfg, clientCfg)
		l := listen(t, p.server, 80, 4)
		client, server := p.connect(t, l, 47600)
		return testContext(t), client, server
	}
	// checkDead checks that a connection ended with want refuses
	// SendSpace and Write with it, whether a loan was out or not.
	checkDead := func(t *testing.T, ctx context.Context, c *Conn, want error) {
		t.Helper()
		r := await(t, asyncSendSpace(ctx, c, 100), "SendSpace on a reset connection")
		if len(r.p) != 0 || !errors.Is(r.err, want) {
			t.Errorf("SendSpace on the reset connection: %v, want no bytes and %v", r, want)
		}
		if _, err := c.Write(ctx, []byte("x")); !errors.Is(err, want) {
			t.Errorf("Write on the reset connection: %v, want %v", err, want)
		}
	}

	for _, tc := range []struct {
		name  string
		abort func(client, server *Conn)
		want  error
	}{
		{"peer aborts", func(_, server *Conn) { server.Abort() }, fsm.ErrReset},
		{"we abort", func(client, _ *Conn) { client.Abort() }, fsm.ErrAborted},
	} {
		t.Run(tc.name+" with a loan out", func(t *testing.T) {
			ctx, client, server := setup(t, testConnConfig(), testConnConfig())
			loan, err := client.SendSpace(ctx, 5000)
			if err != nil || len(loan) == 0 {
				t.Fatalf("SendSpace: %d bytes, %v", len(loan), err)
			}
			copy(loan, bytes.Repeat([]byte("lost"), len(loan)))
			tc.abort(client, server)
			if err := client.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			checkDead(t, ctx, client, tc.want)
			if err := client.CommitSend(len(loan)); !errors.Is(err, tc.want) {
				t.Errorf("CommitSend of a loan taken before the reset: %v, want %v", err, tc.want)
			}
			// The loan has ended: still the reset, not fsm.ErrLent.
			checkDead(t, ctx, client, tc.want)
			n, err := server.Read(ctx, make([]byte, 100))
			if n != 0 || err == nil || errors.Is(err, io.EOF) {
				t.Errorf("the server read %d bytes, %v, from the reset connection", n, err)
			}
		})
		t.Run(tc.name+" without a loan", func(t *testing.T) {
			ctx, client, server := setup(t, testConnConfig(), testConnConfig())
			tc.abort(client, server)
			if err := client.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			checkDead(t, ctx, client, tc.want)
			if err := client.CommitSend(0); err == nil {
				t.Error("CommitSend(0) on the reset connection: no error")
			}
		})
	}

	// A SendSpace waiting for room in a full send buffer.
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = 16 << 10
	serverCfg := testConnConfig()
	serverCfg.RecvBufferSize = 8 << 10
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, client, server *Conn)
		want error
	}{
		{"waiting SendSpace, peer aborts", func(_ *testing.T, _, server *Conn) { server.Abort() }, fsm.ErrReset},
		{"waiting SendSpace, we abort", func(_ *testing.T, client, _ *Conn) { client.Abort() }, fsm.ErrAborted},
		{"waiting SendSpace, we close", func(t *testing.T, client, _ *Conn) {
			if err := client.CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}, fsm.ErrClosing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, client, server := setup(t, clientCfg, serverCfg)
			fillSendBuffer(t, ctx, client)
			waiting := asyncSendSpace(ctx, client, math.MaxInt)
			time.Sleep(30 * time.Millisecond)
			notYet(t, waiting, "SendSpace with the send buffer full")
			tc.end(t, client, server)
			if r := await(t, waiting, "the waiting SendSpace"); len(r.p) != 0 || !errors.Is(r.err, tc.want) {
				t.Fatalf("the waiting SendSpace: %v, want no bytes and %v", r, tc.want)
			}
			if err := client.CommitSend(0); err == nil {
				t.Error("CommitSend(0) on a connection that cannot take data: no error")
			}
		})
	}
}

// SendSpace returns at once when there is nothing to wait for: asked for
// no bytes it lends none (and no loan is out after it), and asked again
// while a loan is out it fails with fsm.ErrLent, also when less is free
// than it would otherwise wait for.
func TestLendEmptyAndSecondLoanReturnAtOnce(t *testing.T) {
	const sendBuffer = 16 << 10
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = sendBuffer
	p := newPair(t, testConnConfig(), clientCfg)
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47650)
	ctx := testContext(t)

	for _, size := range []int{0, -1} {
		r := await(t, asyncSendSpace(ctx, client, size), fmt.Sprintf("SendSpace(%d)", size))
		if r.err != nil || len(r.p) != 0 {
			t.Fatalf("SendSpace(%d): %v, want no bytes and no error", size, r)
		}
	}
	// No loan is out: Write works.
	want := []byte("first")
	if _, err := client.Write(ctx, want); err != nil {
		t.Fatalf("Write after SendSpace(0): %v", err)
	}

	// A loan of all but a little of the buffer: what is left is less than
	// the quarter a large request waits for.
	loan, err := client.SendSpace(ctx, sendBuffer-len(want)-100)
	if err != nil || len(loan) == 0 {
		t.Fatalf("SendSpace: %d bytes, %v", len(loan), err)
	}
	if free := lendWritable(client); free >= sendBuffer/4 {
		t.Fatalf("setup: %d bytes free beside the loan, want less than a quarter", free)
	}
	for _, size := range []int{1, 50, math.MaxInt, 0} {
		r := await(t, asyncSendSpace(ctx, client, size), fmt.Sprintf("SendSpace(%d) during a loan", size))
		if len(r.p) != 0 || !errors.Is(r.err, fsm.ErrLent) {
			t.Fatalf("SendSpace(%d) during a loan: %v, want no bytes and fsm.ErrLent", size, r)
		}
	}
	// The first loan is intact: its bytes arrive.
	fill := randomData(t, len(loan))
	copy(loan, fill)
	if err := client.CommitSend(len(loan)); err != nil {
		t.Fatal(err)
	}
	want = append(want, fill...)
	got := closeAndReadRest(t, ctx, client, server)
	if !bytes.Equal(got, want) {
		t.Fatalf("server received %d bytes that differ from the %d sent", len(got), len(want))
	}
}
