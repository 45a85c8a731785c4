package probe

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestRunCode(t *testing.T) {
	info := map[string]int64{"tcpi_snd_cwnd": 10, "tcpi_options": 0x27, "tcpi_busy_time": 330000, "tcpi_ca_state": 3}
	env := func(vars map[string]int64) func(string) (int64, bool) {
		return func(n string) (int64, bool) {
			if v, ok := vars[n]; ok {
				return v, true
			}
			if v, ok := info[n]; ok {
				return v, true
			}
			v, ok := codeSymbols[n]
			return v, ok
		}
	}
	for _, tc := range []struct {
		code, err string
		python    bool
	}{
		{" assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd ", "", false},
		{"assert tcpi_snd_cwnd == 7, tcpi_snd_cwnd", "assertion failed: tcpi_snd_cwnd == 7 (tcpi_snd_cwnd = 10)", false},
		{"assert (tcpi_options & TCPI_OPT_SYN_DATA) != 0, tcpi_options", "", false},
		{"assert (tcpi_options & TCPI_OPT_SYN_DATA) == 0, tcpi_options", "assertion failed: ( tcpi_options & TCPI_OPT_SYN_DATA ) == 0 (tcpi_options = 39)", false},
		{"assert 328000 <= tcpi_busy_time <= 340000, tcpi_busy_time;\\\n assert tcpi_ca_state == TCP_CA_Recovery, tcpi_ca_state", "", false},
		{"assert 328000 <= tcpi_busy_time <= 329000", "assertion failed: 328000 <= tcpi_busy_time <= 329000", false},
		{"\nassert tcpi_snd_cwnd == 10, tcpi_snd_cwnd  # comment\nassert not tcpi_ca_state == TCP_CA_Open and 1 or 0\n", "", false},
		{"print(tcpi_snd_cwnd); cwnd = 5; cwnd += 5; assert tcpi_snd_cwnd == cwnd, tcpi_snd_cwnd", "", false},
		{"assert -7 // 2 == -4 and -7 % 2 == 1 and 1 << 4 == 16 and ~0 == -1", "", false},
		{"assert nosuch == 1", `name "nosuch" is not defined`, false},
		{"assert tcpi_snd_cwnd / 2 == 5", "", true},
		{"if tcpi_snd_cwnd: pass", "", true},
		{`print("x")`, "", true},
		{`assert tcpi_snd_cwnd == 10, 'cwnd=%d' % tcpi_snd_cwnd`, "", false},
		{`assert tcpi_snd_cwnd == 12, 'cwnd=%d' % tcpi_snd_cwnd`, `assertion failed: tcpi_snd_cwnd == 12 ('cwnd=%d' % tcpi_snd_cwnd)`, false},
		{`assert tcpi_snd_cwnd == "a"`, "", true},
		{"assert len([1]) == 1", "", true},
	} {
		vars := map[string]int64{}
		_, err := runCode(tc.code, env(vars), vars)
		var np errNeedPython
		switch {
		case tc.python:
			if !errors.As(err, &np) {
				t.Errorf("%q: %v, want it left to python", tc.code, err)
			}
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.code, err)
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("%q: %v, want %q", tc.code, err, tc.err)
		}
	}
	// Assignments persist from block to block, as in one Python program.
	vars := map[string]int64{}
	if _, err := runCode("TCP_INFINITE_SSTHRESH = 0x7fffffff", env(vars), vars); err != nil {
		t.Fatal(err)
	}
	if _, err := runCode("assert TCP_INFINITE_SSTHRESH == 2147483647", env(vars), vars); err != nil {
		t.Error(err)
	}
}

func TestDecodeTCPInfo(t *testing.T) {
	b := make([]byte, 104) // an older, shorter struct: the rest reads 0
	b[0], b[1], b[5], b[6] = 1, 3, 0x27, 0x87
	binary.NativeEndian.PutUint32(b[80:], 10)
	binary.NativeEndian.PutUint32(b[76:], 0x7fffffff)
	v := decodeTCPInfo(b)
	for name, want := range map[string]int64{"tcpi_state": 1, "tcpi_ca_state": 3, "tcpi_options": 0x27,
		"tcpi_snd_wscale": 7, "tcpi_rcv_wscale": 8, "tcpi_snd_cwnd": 10, "tcpi_snd_ssthresh": 0x7fffffff, "tcpi_delivered": 0} {
		if v[name] != want {
			t.Errorf("%s = %d, want %d", name, v[name], want)
		}
	}
}

func TestDedent(t *testing.T) {
	if got := dedent(" assert x "); got != "assert x " {
		t.Errorf("%q", got)
	}
	if got := dedent("\n  a\n    b\n  c\n"); !strings.HasPrefix(got, "a\n  b\nc") {
		t.Errorf("%q", got)
	}
}
