package stack

import (
	"bytes"
	"math"
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
