package probe

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestLiveFastOpenAndCode: TCP Fast Open both ways (FO options built and
// matched, data on the SYN, sendto(MSG_FASTOPEN), AF_UNSPEC, a NULL
// buffer) and code blocks over TCP_INFO, against the real kernel.
func TestLiveFastOpenAndCode(t *testing.T) {
	for _, name := range []string{"tfo-client.pkt", "tfo-server.pkt"} {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			if err := runLive(t, name, src); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		line int
		msg  string
	}{
		{"must-fail-tfo-cookie.pkt", 10, "error handling packet: bad value in outbound TCP option (kind=34): expected: FO 0000000000000000 actual: FO "},
		{"must-fail-code.pkt", 4, "runtime error in code: assertion failed: tcpi_snd_cwnd == 1234 (tcpi_snd_cwnd = 10)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.ReadFile("testdata/" + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			err = runLive(t, tc.name, src)
			var f *Failure
			if !errors.As(err, &f) || f.Line != tc.line || !strings.HasPrefix(f.Msg, tc.msg) {
				t.Errorf("got %v, want line %d: %s", err, tc.line, tc.msg)
			}
		})
	}
}
