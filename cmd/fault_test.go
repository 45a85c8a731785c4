package cmd

import (
	"strings"
	"testing"
)

// TestFaultFlagErrors: a bad --fault is a usage error found before
// anything on the system changes; a comma inside one SPEC does not split
// it (zero-window:after=64k,for=2s is one fault).
func TestFaultFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"connect", "10.0.2.20:80", "--fault", "lose:seg=1"}, `--fault: fault "lose:seg=1": unknown fault "lose"`},
		{[]string{"connect", "10.0.2.20:80", "--fault", "drop:seg=1", "--fault", "zero-window:after=64k"}, "zero-window needs for="},
		{[]string{"listen", ":8080", "--fault", "rst"}, `fault "rst": rst needs after=`},
		// Parsed whole: the error that stops the run is about another option.
		{[]string{"connect", "127.0.0.1:9", "--fault", "zero-window:after=64k,for=2s", "--ttl", "0"}, "--ttl"},
		{[]string{"listen", ":8080", "--fault", "drop:p=0.5,seed=3", "--echo", "--exec", "cat"}, "not both"},
	} {
		r := runAppWith(t, t.Context(), "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 saying %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
