package stack

import (
	"bytes"
	"math"
	"sync"
	"testing"

	"github.com/tcpcraft/tcpcraft/craft"
)

// The way connect feeds its input: one goroutine borrows free send buffer
// (SendSpace) and fills it a chunk at a time while another commits each
// filled chunk (CommitSendPart, CommitSend for the loan's last one), so the
// filling of one chunk overlaps the sending of the one before. Over a wire
// that loses data segments and ACKs, with a send buffer of odd size (the
// ring wraps everywhere), the peer reads exactly what was filled in.
func TestFillAndCommitPartsConcurrently(t *testing.T) {
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = 100_003
	p := newPair(t, testConnConfig(), clientCfg)
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47100)
	ctx := testContext(t)

	// Every 13th data frame and every 11th ACK is lost.
	dropData := everyNth(13)
	p.clientLink.setDrop(func(pkt []byte) bool {
		var pp craft.Packet
		if craft.ParsePacket(craft.LinkRaw, pkt, &pp, craft.PacketOptions{}) != nil || len(pp.TCP.Payload) == 0 {
			return false
		}
		return dropData(pkt)
	})
	p.serverLink.setDrop(everyNth(11))

	data := randomData(t, 1<<20)
	type part struct {
		n    int
		last bool
	}
	parts := make(chan part, 4)
	loanDone := make(chan struct{})
	commitErr := make(chan error, 1)
	go func() { // the committer
		for pt := range parts {
			var err error
			if pt.last {
				err = client.CommitSend(pt.n)
			} else {
				err = client.CommitSendPart(pt.n)
			}
			if err != nil {
				commitErr <- err
				return
			}
			if pt.last {
				loanDone <- struct{}{}
			}
		}
		commitErr <- client.CloseWrite()
	}()
	go func() { // the filler
		defer close(parts)
		off := 0
		for chunk := 1; off < len(data); chunk++ {
			loan, err := client.SendSpace(ctx, math.MaxInt)
			if err != nil {
				t.Errorf("SendSpace: %v", err)
				return
			}
			for used := 0; used < len(loan) && off < len(data); {
				// Odd chunk sizes, so parts end anywhere in a segment.
				n := copy(loan[used:min(used+997*chunk%7919+1, len(loan))], data[off:])
				used += n
				off += n
				parts <- part{n, used == len(loan) || off == len(data)}
				if used == len(loan) || off == len(data) {
					break
				}
			}
			<-loanDone
		}
	}()
	got, err := readAll(ctx, server)
	if err != nil {
		t.Fatalf("server read: %v (after %d bytes)", err, len(got))
	}
	if err := <-commitErr; err != nil {
		t.Fatalf("committer: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes that differ from the %d filled in", len(got), len(data))
	}
	if st := client.Stats(); st.Retransmits == 0 {
		t.Errorf("segments were lost but none was retransmitted: %+v", st)
	}
}

// The way connect feeds its input now: the filler extends its loan
// (ExtendSendSpace) instead of waiting for the committer to end it, and the
// committer commits each full read with CommitSendMore, so that a chunk's
// short tail waits for the next chunk instead of going out as a small
// segment. Over the same lossy wire the peer reads exactly what was
// filled in, and small data segments are rare.
func TestExtendAndCommitMoreConcurrently(t *testing.T) {
	clientCfg := testConnConfig()
	clientCfg.SendBufferSize = 100_003
	clientCfg.NoDelay = true // as connect: no Nagle to hold the short tails
	p := newPair(t, testConnConfig(), clientCfg)
	l := listen(t, p.server, 80, 4)
	client, server := p.connect(t, l, 47150)
	ctx := testContext(t)

	mss := client.Stats().SndMSS
	dropData := everyNth(13)
	var mu sync.Mutex
	var smallEnds []craft.Seq // where the data frames shorter than an MSS end
	p.clientLink.setDrop(func(pkt []byte) bool {
		var pp craft.Packet
		if craft.ParsePacket(craft.LinkRaw, pkt, &pp, craft.PacketOptions{}) != nil || len(pp.TCP.Payload) == 0 {
			return false
		}
		if len(pp.TCP.Payload) < mss {
			mu.Lock()
			smallEnds = append(smallEnds, pp.TCP.Seq.Add(craft.Size(len(pp.TCP.Payload))))
			mu.Unlock()
		}
		return dropData(pkt)
	})
	p.serverLink.setDrop(everyNth(11))

	data := randomData(t, 1<<20)
	type part struct {
		n    int
		last bool
	}
	parts := make(chan part, 4)
	commitErr := make(chan error, 1)
	go func() { // the committer
		for pt := range parts {
			var err error
			if pt.last {
				err = client.CommitSend(pt.n)
			} else {
				err = client.CommitSendMore(pt.n)
			}
			if err != nil {
				commitErr <- err
				return
			}
		}
		commitErr <- client.CloseWrite()
	}()
	nparts := 0
	go func() { // the filler
		defer close(parts)
		off := 0
		for chunk := 1; off < len(data); chunk++ {
			loan, err := client.ExtendSendSpace(ctx, math.MaxInt)
			if err != nil {
				t.Errorf("ExtendSendSpace: %v", err)
				return
			}
			for used := 0; used < len(loan) && off < len(data); {
				n := copy(loan[used:min(used+997*chunk%7919+1, len(loan))], data[off:])
				used += n
				off += n
				nparts++
				parts <- part{n, off == len(data)}
			}
		}
	}()
	got, err := readAll(ctx, server)
	if err != nil {
		t.Fatalf("server read: %v (after %d bytes)", err, len(got))
	}
	if err := <-commitErr; err != nil {
		t.Fatalf("committer: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes that differ from the %d filled in", len(got), len(data))
	}
	st := client.Stats()
	if st.Retransmits == 0 {
		t.Errorf("segments were lost but none was retransmitted: %+v", st)
	}
	// The last segment of the stream may be short (and be sent again);
	// no other should be.
	end := client.fc.ISS().Add(1 + craft.Size(len(data)))
	mu.Lock()
	defer mu.Unlock()
	inside := 0
	for _, e := range smallEnds {
		if e != end {
			inside++
		}
	}
	t.Logf("%d parts committed; %d data frames shorter than the %d-byte MSS, %d of them before the stream's end", nparts, len(smallEnds), mss, inside)
	if inside > 2 {
		t.Errorf("%d data frames shorter than an MSS before the stream's end, for %d parts: the short tails of the parts went out on their own", inside, nparts)
	}
}
