package cmd

import (
	"strings"
	"testing"

	"github.com/tcpcraft/tcpcraft/probe"
)

// TestDecodePkt: decode --pkt writes a script probe's parser takes, for
// either role, picks connections with --conn, and says on standard error
// what it wrote.
func TestDecodePkt(t *testing.T) {
	for _, tc := range []struct {
		args               []string
		first, expect, say string
	}{
		// The first connection by default, the kernel as the server.
		{[]string{"--pkt", "testdata/linux-http.pcap"},
			"0          socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", "+0         accept(3, ..., ...) = 4",
			"connection 0 (10.0.2.21:53888 > 10.0.2.20:80), the kernel as the server: 6 packets to send, 6 to expect, 9 system calls"},
		{[]string{"--pkt", "--side", "client", "--conn", "0", "testdata/linux-http.pcap"},
			"0          socket(..., SOCK_STREAM, IPPROTO_TCP) = 3", "+0         connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)",
			"the kernel as the client: 6 packets to send, 6 to expect"},
		// The refused connection: the server had no listener.
		{[]string{"--pkt", "--conn", "10.0.2.20:81", "testdata/linux-http.pcap"},
			"0          < S 0:0(0) win 64240", "> R. 0:0(0) ack 1",
			"connection 1 (10.0.2.21:45732 > 10.0.2.20:81), the kernel as the server: 1 packets to send, 1 to expect, 0 system calls"},
	} {
		r := runDecodeCmd(t, "", tc.args...)
		if r.code != 0 {
			t.Errorf("%q: exit %d, stderr %q", tc.args, r.code, r.stderr)
			continue
		}
		s, err := probe.Parse("decode.pkt", []byte(r.stdout))
		if err != nil {
			t.Errorf("%q: the script does not parse: %v\n%s", tc.args, err, r.stdout)
			continue
		}
		if err := probe.Validate(s, false); err != nil {
			t.Errorf("%q: %v", tc.args, err)
		}
		var body []string
		for _, l := range lines(r.stdout) {
			if l != "" && !strings.HasPrefix(l, "//") {
				body = append(body, l)
			}
		}
		if len(body) == 0 || !strings.HasPrefix(body[0], tc.first) || !strings.Contains(r.stdout, tc.expect) ||
			!strings.Contains(r.stderr, tc.say) || !strings.Contains(r.stdout, "// Connection ") {
			t.Errorf("%q: stdout\n%s\nstderr %q; want it to start with %q, hold %q and say %q", tc.args, r.stdout, r.stderr, tc.first, tc.expect, tc.say)
		}
	}
}

func TestDecodePktErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--pkt", "--conn", "2", "testdata/linux-http.pcap"}, 1, "IPv6"},
		{[]string{"--pkt", "--conn", "9", "testdata/linux-http.pcap"}, 1, "connection 9"},
		{[]string{"--pkt", "--follow", "testdata/linux-http.pcap"}, 2, "one of them"},
		{[]string{"--pkt", "--hex", "4500"}, 2, "not --hex"},
		{[]string{"--pkt"}, 2, "give a pcap/pcapng file"},
		{[]string{"--pkt", "--absolute", "testdata/linux-http.pcap"}, 2, "do not go with --pkt"},
		{[]string{"--pkt", "--side", "both", "testdata/linux-http.pcap"}, 2, "--side both: want client or server"},
		{[]string{"--pkt", "testdata/draw"}, 1, "is a directory"},
	} {
		r := runDecodeCmd(t, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d saying %q", tc.args, r.code, r.stdout, r.stderr, tc.code, tc.want)
		}
	}
}
