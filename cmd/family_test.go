package cmd

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// listen's address: both families without one, one family with -4/-6,
// 0.0.0.0 or [::], an address of either family; bad ones are usage errors.
func TestParseListenAddr(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		fam  family
		want string // netip.AddrPort's String, "*:PORT" for both families
		err  string
	}{
		{":8080", familyAny, "*:8080", ""},
		{"8080", familyAny, "*:8080", ""},
		{":8080", family4, "0.0.0.0:8080", ""},
		{"8080", family6, "[::]:8080", ""},
		{"0.0.0.0:80", familyAny, "0.0.0.0:80", ""},
		{"[::]:80", familyAny, "[::]:80", ""},
		{"[::1]:80", familyAny, "[::1]:80", ""},
		{"[fd00:2::20]:80", family6, "[fd00:2::20]:80", ""},
		{"[::ffff:10.0.2.20]:80", familyAny, "10.0.2.20:80", ""},
		{"10.0.2.20:80", familyAny, "10.0.2.20:80", ""},
		{"fd00:2::20:80", familyAny, "", "want [ADDR]:PORT"},
		{"[fd00:2::20]:80", family4, "", "-4 asks for IPv4"},
		{"10.0.2.20:80", family6, "", "-6 asks for IPv6"},
		{"[fe80::1]:80", familyAny, "", "link-local"},
		{"[fe80::1%eth0]:80", familyAny, "", "link-local"},
		{"[ff02::1]:80", familyAny, "", "multicast"},
		{"[fd00::1]:0", familyAny, "", "not a number 1-65535"},
		{"host:80", familyAny, "", "not an IP address"},
	} {
		got, err := parseListenAddr(tc.arg, tc.fam)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) || exitCode(err) != codeUsage {
				t.Errorf("%q (%d): %v, want a usage error saying %q", tc.arg, tc.fam, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q (%d): %v", tc.arg, tc.fam, err)
		case listenString(got) != tc.want:
			t.Errorf("%q (%d): %s, want %s", tc.arg, tc.fam, listenString(got), tc.want)
		}
	}
}

// connect's peer: addresses of both families, names by family; probe's
// parser (parseHostPort) still refuses IPv6.
func TestParsePeer(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		arg  string
		fam  family
		want string
		err  string
	}{
		{"[fd00:2::20]:80", familyAny, "[fd00:2::20]:80", ""},
		{"[fd00:2::20]:80", family6, "[fd00:2::20]:80", ""},
		{"10.0.2.20:80", family4, "10.0.2.20:80", ""},
		{"[::ffff:10.0.2.20]:80", family4, "10.0.2.20:80", ""},
		{"[fd00:2::20]:80", family4, "", "-4 asks for IPv4"},
		{"10.0.2.20:80", family6, "", "-6 asks for IPv6"},
		{"[::]:80", familyAny, "", "cannot be a TCP peer"},
		{"[ff02::1]:80", familyAny, "", "cannot be a TCP peer"},
		{"[fe80::1%lo]:80", familyAny, "", "link-local"},
		{"fd00:2::20:80", familyAny, "", "want HOST:PORT"},
		{"127.0.0.1:80", family6, "", "-6 asks for IPv6"},
	} {
		got, err := parsePeer(ctx, tc.arg, tc.fam)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) || exitCode(err) != codeUsage {
				t.Errorf("%q (%d): %v, want a usage error saying %q", tc.arg, tc.fam, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q (%d): %v", tc.arg, tc.fam, err)
		case got.String() != tc.want:
			t.Errorf("%q (%d): %s, want %s", tc.arg, tc.fam, got, tc.want)
		}
	}
	// "localhost" has no IPv6 address in this machine's /etc/hosts... or
	// has: either way -6 gives IPv6 or a runtime failure, never IPv4.
	if got, err := parsePeer(ctx, "localhost:80", family6); err == nil && !got.Addr().Is6() {
		t.Errorf("-6 localhost: %v", got)
	} else if err != nil && exitCode(err) != codeFailure {
		t.Errorf("-6 localhost: %v, want a runtime failure", err)
	}
	if got, err := parsePeer(ctx, "localhost:80", family4); err != nil || got.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("-4 localhost: %v %v", got, err)
	}
	if _, err := parseHostPort(ctx, "[fd00:2::20]:80"); err == nil || !strings.Contains(err.Error(), "only IPv4") {
		t.Errorf("parseHostPort of IPv6: %v", err)
	}
}

// -4 and -6 of connect and listen are spelled out before urfave/cli
// reads them (it takes them for negative numbers), and only there.
func TestFamilyShorthands(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tcpcraft connect -6 host:80", "tcpcraft connect --ipv6 host:80"},
		{"tcpcraft listen :80 -4 -k", "tcpcraft listen :80 --ipv4 -k"},
		{"tcpcraft connect host:80 -- -6", "tcpcraft connect host:80 -- -6"},
		{"tcpcraft send -4 x", "tcpcraft send -4 x"},
		{"tcpcraft", "tcpcraft"},
	} {
		if got := strings.Join(familyShorthands(strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
	// Through the app: -4 with an IPv6 literal is a usage error naming -4.
	r := runApp(t, context.Background(), "connect", "-4", "[::1]:80")
	if r.code != codeUsage || !strings.Contains(r.stderr, "-4 asks for IPv4") {
		t.Errorf("connect -4 [::1]:80: exit %d: %s", r.code, r.stderr)
	}
	r = runApp(t, context.Background(), "listen", "-4", "-6", ":80")
	if r.code != codeUsage || !slices.ContainsFunc([]string{"ipv4", "ipv6"}, func(s string) bool { return strings.Contains(r.stderr, s) }) {
		t.Errorf("listen -4 -6: exit %d: %s", r.code, r.stderr)
	}
}
