package prober

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in     string
		prefix string // "" for a name
		name   string
		ports  string
		hosts  int
	}{
		{"10.0.2.20:80", "10.0.2.20/32", "", "[{80 80}]", 1},
		{"10.0.2.20:1-1024", "10.0.2.20/32", "", "[{1 1024}]", 1},
		{"10.0.2.20:22,80,443-445", "10.0.2.20/32", "", "[{22 22} {80 80} {443 445}]", 1},
		{"10.0.2.0/28:80", "10.0.2.0/28", "", "[{80 80}]", 16},
		{"10.0.2.7/28:80", "10.0.2.0/28", "", "[{80 80}]", 16}, // masked, as nmap reads it
		{"[fd00:2::20]:80", "fd00:2::20/128", "", "[{80 80}]", 1},
		{"[fd00:2::/120]:443", "fd00:2::/120", "", "[{443 443}]", 256},
		{"[::ffff:10.0.2.20]:80", "10.0.2.20/32", "", "[{80 80}]", 1},
		{"server.example:8080", "", "server.example", "[{8080 8080}]", 1},
		{"localhost.:1", "", "localhost", "[{1 1}]", 1},
		{"10.0.2.20:65535", "10.0.2.20/32", "", "[{65535 65535}]", 1},
	} {
		s, err := ParseTarget(c.in)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", c.in, err)
			continue
		}
		prefix := ""
		if s.Prefix.IsValid() {
			prefix = s.Prefix.String()
		}
		if prefix != c.prefix || s.Name != c.name || fmt.Sprint(s.Ports) != c.ports || s.Hosts() != c.hosts || s.Text != c.in {
			t.Errorf("ParseTarget(%q) = prefix %q name %q ports %v hosts %d", c.in, prefix, s.Name, s.Ports, s.Hosts())
		}
	}
}

func TestParseTargetErrors(t *testing.T) {
	for _, c := range []struct{ in, says string }{
		{"", "empty"},
		{"10.0.2.20", "no port"},
		{"10.0.2.20:", "no port"},
		{"[fd00::1]", "no port"},
		{":80", "no host"},
		{"10.0.2.20:0", `port "0" is not a number 1-65535`},
		{"10.0.2.20:65536", `port "65536"`},
		{"10.0.2.20:http", `port "http"`},
		{"10.0.2.20:100-1", "runs backwards"},
		{"10.0.2.20:22,,80", "an empty port"},
		{"10.0.2.20:1-2-3", `port "2-3"`},
		{"fd00::1:80", "in brackets"},
		{"[fd00::1:80", "no ]"},
		{"[fd00::1]80", "want : and the ports"},
		{"[10.0.2.20]:80", "brackets are for IPv6"},
		{"10.0.2.0/33:80", "not an address prefix"},
		{"10.0.0.0/8:1-65535", "split the run"},
		{"[fd00::/64]:80", "2^64 addresses"},
		{"bad_host!:80", "neither an address nor a host name"},
		{"1.2.3:80", "neither an address nor a host name"},
		{"-bad.example:80", "neither"},
		{"[fe80::1%eth0]:80", "zone"},
	} {
		_, err := ParseTarget(c.in)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseTarget(%q) = %v, want an error saying %q", c.in, err, c.says)
		}
	}
	if _, err := ParseTarget("10.0.2.20"); !errors.Is(err, ErrNoPort) {
		t.Errorf("no port: %v does not wrap ErrNoPort", err)
	}
}

// Expand lists hosts × ports in order, once each, resolves names (IPv4
// first), and skips a prefix's addresses that cannot be peers.
func TestExpand(t *testing.T) {
	specs := func(args ...string) []TargetSpec {
		var out []TargetSpec
		for _, a := range args {
			s, err := ParseTarget(a)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	lookup := func(_ context.Context, network, host string) ([]netip.Addr, error) {
		if network != "ip" {
			t.Errorf("lookup network %q", network)
		}
		switch host {
		case "both.example":
			return []netip.Addr{netip.MustParseAddr("fd00::7"), netip.MustParseAddr("10.0.0.7")}, nil
		case "six.example":
			return []netip.Addr{netip.MustParseAddr("fd00::8")}, nil
		}
		return nil, errors.New("no such host")
	}
	ctx := context.Background()
	got, err := Expand(ctx, specs("10.0.2.20:80,22", "10.0.2.20:22-23", "10.0.2.0/31:9", "both.example:1", "six.example:2"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.2.20:80 10.0.2.20:22 10.0.2.20:23 10.0.2.0:9 10.0.2.1:9 10.0.0.7:1 [fd00::8]:2]"
	if fmt.Sprint(got) != want {
		t.Errorf("Expand = %v\nwant     %v", got, want)
	}
	// Overlapping ranges in one argument: each port once.
	if got, _ := Expand(ctx, specs("10.0.2.20:1-3,2-4,3"), nil); fmt.Sprint(got) != "[10.0.2.20:1 10.0.2.20:2 10.0.2.20:3 10.0.2.20:4]" {
		t.Errorf("overlapping ranges: %v", got)
	}
	// 0.0.0.0/31 holds 0.0.0.0, which is skipped; alone it is an error.
	if got, err := Expand(ctx, specs("0.0.0.0/31:1"), nil); err != nil || fmt.Sprint(got) != "[0.0.0.1:1]" {
		t.Errorf("0.0.0.0/31: %v %v", got, err)
	}
	for _, bad := range []string{"0.0.0.0:1", "224.0.0.1:1", "255.255.255.255:1", "[::]:1"} {
		if _, err := Expand(ctx, specs(bad), nil); err == nil || !strings.Contains(err.Error(), "cannot be a TCP peer") {
			t.Errorf("Expand(%s): %v", bad, err)
		}
	}
	var ne *NameError
	if _, err := Expand(ctx, specs("nowhere.example:1"), lookup); !errors.As(err, &ne) || ne.Name != "nowhere.example" {
		t.Errorf("unresolvable name: %v", err)
	}
	// Too many in all, across arguments.
	if _, err := Expand(ctx, specs("10.0.0.0/16:1-20", "10.1.0.0/16:1-20"), nil); err == nil || !strings.Contains(err.Error(), "split the run") {
		t.Errorf("too many targets: %v", err)
	}
}

// FuzzParseTarget: any argument is parsed into a target or refused with an
// error naming it; never a panic, and what is accepted holds together:
// ports in range and in order, a masked prefix or a valid name, a number
// of targets within bounds, and an expansion (without resolving) that
// lists each pair once.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"10.0.2.20:80", "10.0.2.0/28:1-1024", "[fd00:2::/120]:22,80,443-445", "name.example:1",
		"[::ffff:1.2.3.4/120]:9", "10.0.2.20:", "[", "]:", "a:b:c", "10.0.2.20:1-65535,1-65535", "x:-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseTarget(in)
		if err != nil {
			if utf8.ValidString(in) && !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
				t.Fatalf("error %q does not name the argument %q", err, in)
			}
			return
		}
		if len(s.Ports) == 0 {
			t.Fatalf("%q: no ports", in)
		}
		for _, r := range s.Ports {
			if r.Low == 0 || r.Low > r.High {
				t.Fatalf("%q: bad range %v", in, r)
			}
		}
		if (s.Name == "") == !s.Prefix.IsValid() {
			t.Fatalf("%q: name %q and prefix %v", in, s.Name, s.Prefix)
		}
		if s.Prefix.IsValid() && (s.Prefix != s.Prefix.Masked() || s.Prefix.Addr().Is4In6()) {
			t.Fatalf("%q: prefix %v not masked or still mapped", in, s.Prefix)
		}
		if n := s.Hosts() * s.PortCount(); n > MaxTargets || n < 1 {
			t.Fatalf("%q: %d targets", in, n)
		}
		if s.Name != "" || s.Hosts()*s.PortCount() > 1<<16 {
			return
		}
		got, err := Expand(context.Background(), []TargetSpec{s}, nil)
		if err != nil {
			return // addresses that cannot be peers
		}
		seen := map[Target]bool{}
		for _, tg := range got {
			if seen[tg] || !s.Prefix.Contains(tg.Addr) {
				t.Fatalf("%q: %v twice or outside the prefix", in, tg)
			}
			seen[tg] = true
		}
	})
}
