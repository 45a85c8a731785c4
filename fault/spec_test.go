package fault

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, canon string
		check     func(Spec) bool
	}{
		{"drop:seg=3", "drop:seg=3", func(s Spec) bool { return s.Kind == Drop && s.Seg == 3 }},
		{"drop:every=10,after=1m", "drop:every=10,after=1m", func(s Spec) bool { return s.Every == 10 && s.After == 1<<20 }},
		{"drop:p=0.05", "drop:p=0.05", func(s Spec) bool { return s.P == 0.05 && s.Seed == 1 }},
		{"drop:p=1,seed=0x10", "drop:p=1,seed=16", func(s Spec) bool { return s.P == 1 && s.Seed == 16 }},
		{"delay-ack:d=200ms", "delay-ack:d=200ms", func(s Spec) bool { return s.Kind == DelayACK && s.D == 200*time.Millisecond }},
		{"delay-ack: d = 0.5 , for=2s ", "delay-ack:d=500ms,for=2s", func(s Spec) bool { return s.D == 500*time.Millisecond && s.For == 2*time.Second }},
		{"drop-ack", "drop-ack", func(s Spec) bool { return s.Kind == DropACK && s.After == 0 && s.For == 0 }},
		{"drop-ack:after=10k,for=3s", "drop-ack:after=10k,for=3s", func(s Spec) bool { return s.After == 10240 && s.For == 3*time.Second }},
		{"drop-ack:after=FIN,for=150ms", "drop-ack:after=fin,for=150ms", func(s Spec) bool { return s.AfterFIN && s.After == 0 && s.For == 150*time.Millisecond }},
		{"rst:after=fin", "rst:after=fin", func(s Spec) bool { return s.Kind == Reset && s.AfterFIN }},
		{"reorder:seg=2", "reorder:seg=2", func(s Spec) bool { return s.Kind == Reorder && s.Seg == 2 }},
		{"dup:seg=1", "dup:seg=1", func(s Spec) bool { return s.Kind == Dup && s.Seg == 1 }},
		{"zero-window:after=64k,for=2s", "zero-window:after=64k,for=2s", func(s Spec) bool { return s.After == 65536 && s.For == 2*time.Second }},
		{"zero-window:for=1", "zero-window:for=1s", func(s Spec) bool { return s.After == 0 && s.For == time.Second }},
		{"mss:value=48", "mss:value=48", func(s Spec) bool { return s.Kind == MSS && s.Value == 48 }},
		{"rst:after=10k", "rst:after=10k", func(s Spec) bool { return s.Kind == Reset && s.After == 10240 }},
		{"rst:after=0", "rst:after=0", func(s Spec) bool { return s.Kind == Reset && s.After == 0 }},
		{"fin:after=1500", "fin:after=1500", func(s Spec) bool { return s.Kind == Fin && s.After == 1500 }},
		{"dead", "dead", func(s Spec) bool { return s.Kind == Dead }},
		{"dead:after=2G,for=100ms", "dead:after=2g,for=100ms", func(s Spec) bool { return s.After == 2<<30 && s.For == 100*time.Millisecond }},
		{"corrupt:seg=4", "corrupt:seg=4", func(s Spec) bool { return s.Kind == Corrupt && s.Seg == 4 }},
	} {
		s, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !tc.check(s) || s.String() != tc.canon {
			t.Errorf("Parse(%q) = %+v, String %q; want %q", tc.in, s, s.String(), tc.canon)
		}
		again, err := Parse(s.String())
		if err != nil || again.String() != s.String() {
			t.Errorf("Parse(%q) again: %v %q", s.String(), err, again.String())
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `unknown fault ""`},
		{"lose:seg=1", `unknown fault "lose" (known: drop, delay-ack`},
		{"drop", "drop needs one of seg, every, p"},
		{"drop:", "nothing after the colon"},
		{"drop:seg", `"seg": want NAME=VALUE`},
		{"drop:seg=", `"seg=": want NAME=VALUE`},
		{"drop:seg=0", "seg=0: want a whole number of at least 1"},
		{"drop:seg=-2", "seg=-2: want a whole number of at least 1"},
		{"drop:seg=1,every=2", "drop takes one of seg, every, p, not seg and every together"},
		{"drop:seg=1,seg=2", "seg given twice"},
		{"fin:after=fin", "fin closes our side after a byte count, not after the peer's FIN"},
		{"drop-ack:after=fins", "after=fins: want a byte count"},
		{"drop:p=0", "p=0: want a probability above 0, at most 1"},
		{"drop:p=1.5", "want a probability above 0, at most 1"},
		{"drop:p=NaN", "want a probability"},
		{"drop:every=3,seed=1", "seed goes with p"},
		{"drop:seg=3,after=1k", "after goes with every or p"},
		{"drop:seg=1,d=1s", `drop takes seg, every, p, seed, after, not "d"`},
		{"dead:seg=1", `dead takes after, for, not "seg"`},
		{"delay-ack", "delay-ack needs d="},
		{"delay-ack:d=0", "d=0: want a duration above 0"},
		{"delay-ack:d=-1s", "want a duration"},
		{"delay-ack:d=fast", "want a duration: seconds, or a number with a unit"},
		{"zero-window:after=64k", "zero-window needs for="},
		{"zero-window:for=2s,after=64x", "after=64x: want a byte count"},
		{"rst:after=-1", "after=-1: want a byte count"},
		{"rst", "rst needs after="},
		{"mss:value=70000", "an MSS is 1 to 65535"},
		{"mss:value=0", "want a whole number of at least 1"},
		{"rst:after=9999999999999999g", "want a byte count"},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "fault \""+tc.in+"\": ") {
			t.Errorf("Parse(%q): %v; want an error saying %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParse: Parse never panics; what it accepts, String writes back in a
// form Parse reads as the same fault.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"drop:seg=3", "zero-window:after=64k,for=2s", "rst:after=10k", "drop:p=0.1,seed=9,after=1m",
		"delay-ack:d=0.2,for=1s", "dead", "mss:value=48", "corrupt:seg=2", "dup:seg=1", "reorder:seg=5", "fin:after=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", in, s.String(), err)
		}
		if again.String() != s.String() || again.Kind != s.Kind || again.Seg != s.Seg || again.Every != s.Every ||
			again.P != s.P || again.Seed != s.Seed || again.After != s.After || again.For != s.For || again.D != s.D || again.Value != s.Value {
			t.Fatalf("Parse(%q) = %+v; its String %q parses to %+v", in, s, s.String(), again)
		}
	})
}
