package stack

import (
	"testing"

	"github.com/tcpcraft/tcpcraft/craft"
)

func TestMergeable(t *testing.T) {
	ts := []craft.Option{{Kind: craft.OptTimestamps, TSVal: 7, TSEcr: 9}}
	seg := func(seq uint32, n int, f craft.Flags) craft.TCP {
		return craft.TCP{Seq: craft.Seq(seq), Ack: 100, Window: 500, Flags: f, Options: ts, Payload: make([]byte, n)}
	}
	a := seg(1000, 1448, craft.FlagACK)
	cases := []struct {
		name string
		last craft.TCP
		next craft.TCP
		want bool
	}{
		{"contiguous full", a, seg(2448, 1448, craft.FlagACK|craft.FlagPSH), true},
		{"short tail", a, seg(2448, 10, craft.FlagACK), true},
		{"gap", a, seg(2449, 1448, craft.FlagACK), false},
		{"longer than the first", a, seg(2448, 1449, craft.FlagACK), false},
		{"FIN", a, seg(2448, 10, craft.FlagACK|craft.FlagFIN), false},
		{"after a short one", seg(1000, 10, craft.FlagACK), seg(1010, 10, craft.FlagACK), false},
	}
	for _, c := range cases {
		first := a
		if got := mergeable(&first, &c.last, &c.next); got != c.want {
			t.Errorf("%s: mergeable = %v, want %v", c.name, got, c.want)
		}
	}
	other := seg(2448, 1448, craft.FlagACK)
	other.Options = []craft.Option{{Kind: craft.OptTimestamps, TSVal: 8, TSEcr: 9}}
	if mergeable(&a, &a, &other) {
		t.Errorf("segments with different timestamps merged")
	}
}
