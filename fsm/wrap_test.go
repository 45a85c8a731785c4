package fsm

import (
	"fmt"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// A transfer whose ISS is 1 KB below 2^32 on both sides crosses the wrap of
// the sequence space early; the timestamp clocks start 100 ms below their
// wrap too. Everything must arrive intact, with and without loss.
func TestSequenceWrapAround(t *testing.T) {
	const iss = craft.Seq(1<<32 - 1024)
	for _, loss := range []float64{0, 0.05, 0.2} {
		t.Run(fmt.Sprintf("loss=%v", loss), func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= 5; seed++ {
				ca, cb := simConfig(40000, 80, seed), simConfig(80, 40000, seed)
				for _, c := range []*Config{&ca, &cb} {
					c.FixedISS, c.ISS = true, iss
					c.FixedTSOffset, c.TSOffset = true, 1<<32-100
					c.MaxSYNRetries = 20
				}
				a, b := testData(seed, 1<<20+7), testData(seed+50, 1<<19+3)
				lp := linkParams{loss: loss, dup: 0.01, delay: 5 * time.Millisecond, jitter: 3 * time.Millisecond}
				res := runSim(t, seed, lp, ca, cb, a, b)
				if res.delivered[0] != len(b) || res.delivered[1] != len(a) {
					t.Fatalf("delivered %v", res.delivered)
				}
				// The final sequence numbers lie past the wrap.
				for i, c := range res.conns {
					if una := uint32(c.snd.una); una >= uint32(iss) || una < 1000 {
						t.Fatalf("end %d: SND.UNA %d did not cross the wrap", i, una)
					}
				}
			}
		})
	}
}
