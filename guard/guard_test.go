package guard

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

func TestSplitRuleLine(t *testing.T) {
	cases := []struct {
		line string
		want []string
	}{
		{`-A INPUT -d 10.0.2.21/32 -p tcp -m tcp --dport 40000 -m comment --comment "tcpcraft pid=12 start=34 guard 10.0.2.21:40000" -j DROP`,
			[]string{"-A", "INPUT", "-d", "10.0.2.21/32", "-p", "tcp", "-m", "tcp", "--dport", "40000", "-m", "comment", "--comment", "tcpcraft pid=12 start=34 guard 10.0.2.21:40000", "-j", "DROP"}},
		{`-A INPUT -m comment --comment "say \"hi\" \\ there" -j ACCEPT`,
			[]string{"-A", "INPUT", "-m", "comment", "--comment", `say "hi" \ there`, "-j", "ACCEPT"}},
		{`-P INPUT ACCEPT`, []string{"-P", "INPUT", "ACCEPT"}},
		{``, nil},
	}
	for _, c := range cases {
		got, err := splitRuleLine(c.line)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitRuleLine(%q) = %q, %v; want %q", c.line, got, err, c.want)
		}
	}
	if _, err := splitRuleLine(`-A INPUT --comment "open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestOwnerFromComment(t *testing.T) {
	cases := []struct {
		comment string
		pid     int
		start   string
		ok      bool
	}{
		{"tcpcraft pid=12 start=34 guard 10.0.2.21:40000", 12, "34", true},
		{"tcpcraft pid=12 guard *:80", 12, "", true},
		{"tcpcraft pid=12", 12, "", true},
		{"tcpcraft pid=12x", 0, "", false},
		{"not tcpcraft pid=12", 0, "", false},
		{"tcpcraftpid=12", 0, "", false},
		{"tcpcraft pid=99999999999999999999999", 0, "", false},
	}
	for _, c := range cases {
		pid, start, ok := owner(c.comment)
		if pid != c.pid || start != c.start || ok != c.ok {
			t.Errorf("owner(%q) = %d, %q, %v; want %d, %q, %v", c.comment, pid, start, ok, c.pid, c.start, c.ok)
		}
	}
}

func TestTableNamePattern(t *testing.T) {
	name, err := tableName(4242)
	if err != nil {
		t.Fatal(err)
	}
	m := tableNamePattern().FindStringSubmatch(name)
	if m == nil || m[1] != "4242" || len(name) != len("tcpcraft-4242-")+8 {
		t.Fatalf("tableName(4242) = %q, pattern match %q", name, m)
	}
	other, _ := tableName(4242)
	if other == name {
		t.Fatalf("two table names of one pid are equal: %q", name)
	}
	for _, bad := range []string{"tcpcraft-x-00", "tcpcraft-12", "tcpcraftx-12-00", "other"} {
		if tableNamePattern().MatchString(bad) {
			t.Errorf("%q taken for a tcpcraft table name", bad)
		}
	}
}

func TestProcessStart(t *testing.T) {
	root := t.TempDir()
	write := func(pid int, stat string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// comm with spaces and a ')' inside; starttime (field 22) is 987654.
	tail := " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21\n"
	write(100, "100 (my (odd) prog) S"+tail)
	write(101, "101 (zombie) Z"+tail)
	write(102, "102 (short) S 1 2\n")

	if got, err := processStart(root, 100); err != nil || got != "987654" {
		t.Errorf("processStart(100) = %q, %v; want 987654", got, err)
	}
	if _, err := processStart(root, 101); err == nil {
		t.Error("a zombie counts as alive")
	}
	if _, err := processStart(root, 102); err == nil {
		t.Error("a short stat line was accepted")
	}
	if _, err := processStart(root, 103); err == nil {
		t.Error("a missing process counts as alive")
	}
	if _, err := processStart("/proc", os.Getpid()); err != nil {
		t.Errorf("processStart(self): %v", err)
	}

	fw := Firewall{ProcRoot: root}
	for _, c := range []struct {
		pid   int
		start string
		alive bool
	}{{100, "987654", true}, {100, "", true}, {100, "1", false}, {101, "", false}, {103, "", false}, {0, "", false}, {-1, "", false}} {
		if got := fw.ownerAlive(c.pid, c.start); got != c.alive {
			t.Errorf("ownerAlive(%d, %q) = %v, want %v", c.pid, c.start, got, c.alive)
		}
	}
}

func TestUdataComment(t *testing.T) {
	cases := []struct {
		in   []byte
		want string
	}{
		{append([]byte{0, 6}, "hello\x00"...), "hello"},
		{append([]byte{1, 2, 'x', 'y', 0, 3}, "ab\x00"...), "ab"}, // another TLV first
		{[]byte{0, 200, 'a'}, ""},                                 // length beyond the data
		{[]byte{1, 5, 'a'}, ""},
		{[]byte{0}, ""},
		{nil, ""},
	}
	for _, c := range cases {
		if got := udataComment(c.in); got != c.want {
			t.Errorf("udataComment(%x) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzUdataComment: the user data of rules comes from whoever wrote them;
// reading it must never panic, and a comment it finds is a part of it.
func FuzzUdataComment(f *testing.F) {
	f.Add(append([]byte{0, 6}, "hello\x00"...))
	f.Add([]byte{1, 2, 'x', 'y', 0, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c := udataComment(b); c != "" && !strings.Contains(string(b), c) {
			t.Fatalf("comment %q is not in %x", c, b)
		}
	})
}

// A scope of several addresses and a port range: described address by
// address, one match each with the range as nft prints it, and a range
// expression over the destination port.
func TestDescribeScope(t *testing.T) {
	s := Scope{Addrs: []netip.Addr{netip.MustParseAddr("10.0.2.21"), netip.MustParseAddr("fd00:2::21")}, PortLow: 40000, PortHigh: 40063}
	if got, want := describeScope(s), "10.0.2.21:40000-40063,[fd00:2::21]:40000-40063"; got != want {
		t.Errorf("describeScope = %q, want %q", got, want)
	}
	if got, want := ruleMatch(s.Addrs[1], 40000, 40063), "ip6 daddr fd00:2::21 tcp dport 40000-40063"; got != want {
		t.Errorf("ruleMatch = %q, want %q", got, want)
	}
	exprs := ruleExprs(s.Addrs[0], 40000, 40063)
	var r *expr.Range
	for _, e := range exprs {
		if e, ok := e.(*expr.Range); ok {
			r = e
		}
	}
	if r == nil || r.Op != expr.CmpOpEq || string(r.FromData) != "\x9c\x40" || string(r.ToData) != "\x9c\x7f" {
		t.Errorf("ruleExprs for a range: %#v", r)
	}
	if one := ruleExprs(s.Addrs[0], 40000, 40000); slices.ContainsFunc(one, func(e expr.Any) bool { _, ok := e.(*expr.Range); return ok }) {
		t.Error("a single port got a range expression")
	}
}

func TestDescribeAndMatch(t *testing.T) {
	cases := []struct {
		local       netip.AddrPort
		what, match string
		family      byte // 0: no family check
		addrLen     uint32
	}{
		{netip.MustParseAddrPort("10.0.2.21:40000"), "10.0.2.21:40000", "ip daddr 10.0.2.21 tcp dport 40000", 2, 4},
		{netip.MustParseAddrPort("[fd00:2::21]:80"), "[fd00:2::21]:80", "ip6 daddr fd00:2::21 tcp dport 80", 10, 16},
		{netip.MustParseAddrPort("0.0.0.0:81"), "0.0.0.0:81", "meta nfproto ipv4 tcp dport 81", 2, 0},
		{netip.MustParseAddrPort("[::]:82"), "[::]:82", "meta nfproto ipv6 tcp dport 82", 10, 0},
		{netip.AddrPortFrom(netip.Addr{}, 83), "*:83", "tcp dport 83", 0, 0},
	}
	for _, c := range cases {
		if got := describe(c.local); got != c.what {
			t.Errorf("describe(%v) = %q, want %q", c.local, got, c.what)
		}
		if got := ruleMatch(c.local.Addr(), c.local.Port(), c.local.Port()); got != c.match {
			t.Errorf("ruleMatch(%v) = %q, want %q", c.local, got, c.match)
		}
		// The expressions check what the match says, and end in drop.
		exprs := ruleExprs(c.local.Addr(), c.local.Port(), c.local.Port())
		var family byte
		var addrLen uint32
		var port []byte
		for i, e := range exprs {
			switch e := e.(type) {
			case *expr.Meta:
				if e.Key == expr.MetaKeyNFPROTO {
					family = exprs[i+1].(*expr.Cmp).Data[0]
				}
			case *expr.Payload:
				if e.Base == expr.PayloadBaseNetworkHeader {
					addrLen = e.Len
				} else if e.Base == expr.PayloadBaseTransportHeader && e.Offset == 2 {
					port = exprs[i+1].(*expr.Cmp).Data
				}
			}
		}
		if family != c.family || addrLen != c.addrLen || len(port) != 2 || int(port[0])<<8|int(port[1]) != int(c.local.Port()) {
			t.Errorf("ruleExprs(%v): family %d, address of %d bytes, port %x", c.local, family, addrLen, port)
		}
		if v, ok := exprs[len(exprs)-1].(*expr.Verdict); !ok || v.Kind != expr.VerdictDrop {
			t.Errorf("ruleExprs(%v) does not end in drop: %#v", c.local, exprs[len(exprs)-1])
		}
	}
}

func TestInstallRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	// Refused before any socket is opened: the injected failure at the
	// first step would show if it were reached.
	reached := errors.New("reached the first step")
	fw := Firewall{fail: func(string) error { return reached }}
	for _, ap := range []netip.AddrPort{
		netip.MustParseAddrPort("10.0.2.21:0"),
		netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 80),
	} {
		if _, err := fw.Install(ctx, ap); err == nil || errors.Is(err, reached) {
			t.Errorf("Install(%v) = %v, want a refusal before any step", ap, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := fw.Install(cancelled, netip.MustParseAddrPort("10.0.2.21:1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Install with a cancelled context: %v", err)
	}
}

func TestNilGuardRemove(t *testing.T) {
	var g *Guard
	if err := g.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// FuzzSplitRuleLine: `iptables -S` output comes from whatever rules the
// namespace holds; splitting a line must never panic, and a line without
// quotes or backslashes splits like strings.Fields.
func FuzzSplitRuleLine(f *testing.F) {
	f.Add(`-A INPUT -d 10.0.2.21/32 -p tcp -m tcp --dport 40000 -m comment --comment "tcpcraft pid=12 start=34 guard 10.0.2.21:40000" -j DROP`)
	f.Add(`-A INPUT -m comment --comment "say \"hi\" \\ there" -j ACCEPT`)
	f.Fuzz(func(t *testing.T, line string) {
		args, err := splitRuleLine(line)
		if strings.ContainsAny(line, "\"\\") {
			return
		}
		if err != nil {
			t.Fatalf("splitRuleLine(%q): %v", line, err)
		}
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' })
		if len(fields) == 0 {
			fields = nil
		}
		if !reflect.DeepEqual(args, fields) {
			t.Fatalf("splitRuleLine(%q) = %q, want %q", line, args, fields)
		}
	})
}
