package stack

import (
	"bytes"
	"io"
	"math"
	"testing"
	"time"
)

// wakeChannel is the channel waiters of kind wait on now (nil: none waits).
func wakeChannel(c *Conn, kind waitKind) chan struct{} {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.wake[kind]
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A Read blocked for want of data is not woken by the ACKs of the data
// its connection sends (a bulk upload's idle output goroutine used to
// wake for each of them), and is woken by data.
func TestBlockedReadSleepsThroughACKs(t *testing.T) {
	p := newPair(t, testConnConfig(), testConnConfig())
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47700)
	ctx := testContext(t)

	buf := make([]byte, 100)
	reading := async(func() ioResult { n, err := client.Read(ctx, buf); return ioResult{n, err} })
	var readers chan struct{}
	eventually(t, "the Read to wait", func() bool { readers = wakeChannel(client, waitRead); return readers != nil })

	data := randomData(t, 200<<10)
	if _, err := client.Write(ctx, data); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := io.ReadFull(connReader{ctx, server}, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("server read: %v", err)
	}
	eventually(t, "the data to be acknowledged", func() bool { return client.Stats().BytesAcked == uint64(len(data)) })
	if closed(readers) {
		t.Fatal("the ACKs woke the blocked Read")
	}
	notYet(t, reading, "Read with nothing received")

	if _, err := server.Write(ctx, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if r := await(t, reading, "Read after the peer wrote"); r.err != nil || string(buf[:r.n]) != "ping" {
		t.Fatalf("Read: %q, %v", buf[:r.n], r.err)
	}
}

// A SendSpace waiting for a quarter of the send buffer is not woken by an
// ACK that frees less than that, and is woken once one frees enough.
func TestWaitingSendSpaceSleepsUntilEnoughIsFree(t *testing.T) {
	const quarter = 4 << 10 // of smallBuffersPair's 16 KiB send buffer
	client, server, ctx := smallBuffersPair(t, 47750)

	// Fill the buffer with loans of what is free, which never wait: a
	// Write that waited and gave up would leave its threshold of one
	// byte behind (see writeChanges).
	eventually(t, "a full send buffer", func() bool {
		if free := lendWritable(client); free > 0 {
			loan, err := client.SendSpace(ctx, free)
			if err != nil || len(loan) == 0 {
				t.Fatalf("SendSpace(%d): %d bytes, %v", free, len(loan), err)
			}
			if err := client.CommitSend(len(loan)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond) // longer than a delayed ACK
		return lendWritable(client) == 0
	})
	waiting := asyncSendSpace(ctx, client, math.MaxInt)
	var writers chan struct{}
	eventually(t, "SendSpace to wait", func() bool { writers = wakeChannel(client, waitWrite); return writers != nil })

	// The peer reads a little: its window opens by less than a quarter
	// of our buffer, and the ACKs of what that lets through free as much.
	small := make([]byte, 3000)
	if _, err := io.ReadFull(connReader{ctx, server}, small); err != nil {
		t.Fatal(err)
	}
	acked := client.Stats().BytesAcked
	eventually(t, "an ACK that frees a little", func() bool {
		time.Sleep(50 * time.Millisecond) // past a delayed ACK
		return client.Stats().BytesAcked > acked
	})
	if free := lendWritable(client); free == 0 || free >= quarter {
		t.Fatalf("setup: %d bytes free, want some but less than a quarter (%d)", free, quarter)
	}
	if closed(writers) {
		t.Fatal("an ACK that freed less than a quarter woke SendSpace")
	}
	notYet(t, waiting, "SendSpace with less than a quarter free")

	// The peer reads the rest: enough is freed, and SendSpace returns.
	if _, err := io.ReadFull(connReader{ctx, server}, make([]byte, 8<<10)); err != nil {
		t.Fatal(err)
	}
	if r := await(t, waiting, "SendSpace after the peer read"); r.err != nil || len(r.p) < quarter {
		t.Fatalf("SendSpace: %v", r)
	}
}
