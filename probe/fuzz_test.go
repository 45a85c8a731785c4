package probe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: the parser never panics, every error is a *SyntaxError that
// points inside the input, and every packet it accepts renders (String)
// to a line that parses back to the same packet. The corpus is
// testdata/fuzz/FuzzParse plus the project's scripts.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.pkt")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse("f.pkt", src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SyntaxError", err)
			}
			lines := strings.Count(string(src), "\n") + 1
			if se.Pos.Line < 1 || se.Pos.Line > lines || se.Pos.Col < 1 {
				t.Fatalf("error position %v outside the input (%d lines): %v", se.Pos, lines, err)
			}
			return
		}
		_ = Validate(s, false)
		for _, ev := range s.Events {
			if ev.Packet == nil {
				continue
			}
			line := ev.Packet.String()
			again, err := Parse("again.pkt", []byte("0 "+line))
			if err != nil {
				t.Fatalf("rendered packet %q does not parse: %v", line, err)
			}
			if got := again.Events[0].Packet.String(); got != line {
				t.Fatalf("round trip: %q became %q", line, got)
			}
		}
	})
}

// FuzzRunCode: the code-block evaluator never panics and never loops; any
// failure is an error (an assertion, an unknown name, or a block left to
// python3). The corpus is testdata/fuzz/FuzzRunCode.
func FuzzRunCode(f *testing.F) {
	for _, s := range []string{
		"assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd",
		"assert (tcpi_options & TCPI_OPT_SYN_DATA) != 0, tcpi_options",
		"print(tcpi_snd_cwnd); cwnd += 10; assert tcpi_snd_cwnd == cwnd, tcpi_snd_cwnd",
		"assert 328000 <= tcpi_busy_time <= 340000, tcpi_busy_time;\\\n assert not 1 or 2 and 3",
		"x = -7 // 2 % 3 << 2 >> 1 ^ ~5 | 1; assert x, 'x=%d' % x",
	} {
		f.Add(s)
	}
	info := decodeTCPInfo(nil)
	f.Fuzz(func(t *testing.T, code string) {
		vars := map[string]int64{"cwnd": 1}
		env := func(n string) (int64, bool) {
			if v, ok := vars[n]; ok {
				return v, true
			}
			if v, ok := info[n]; ok {
				return v, true
			}
			v, ok := codeSymbols[n]
			return v, ok
		}
		_, _ = runCode(code, env, vars)
	})
}

// FuzzSettings: packetdrill's options from a command line or a script
// never panic, and an accepted set of addresses either fits together or
// says why not. The corpus is testdata/fuzz/FuzzSettings.
func FuzzSettings(f *testing.F) {
	f.Add("ip_version", "ipv6", "remote_ip", "fd3d:fa7b:d17d::1/48")
	f.Add("netmask_ip", "255.255.255.0", "local_ip", "192.168.7.1")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		var s Settings
		_ = s.Set(n1, v1)
		_ = s.Set(n2, v2)
		local, remote, gw, err := s.Addrs()
		if err == nil && (!local.IsValid() || !remote.IsValid() || !gw.IsValid() || local.Contains(remote)) {
			t.Fatalf("Addrs() = %v %v %v without an error", local, remote, gw)
		}
	})
}
