package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
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

func TestCommentPattern(t *testing.T) {
	cases := []struct {
		comment, pid, start string
		match               bool
	}{
		{"tcpcraft pid=12 start=34 guard 10.0.2.21:40000", "12", "34", true},
		{"tcpcraft pid=12 guard *:80", "12", "", true},
		{"tcpcraft pid=12", "12", "", true},
		{"tcpcraft pid=12x", "", "", false},
		{"not tcpcraft pid=12", "", "", false},
		{"tcpcraftpid=12", "", "", false},
	}
	for _, c := range cases {
		m := commentPattern.FindStringSubmatch(c.comment)
		if (m != nil) != c.match {
			t.Errorf("%q: match = %v, want %v", c.comment, m != nil, c.match)
			continue
		}
		if m != nil && (m[1] != c.pid || m[2] != c.start) {
			t.Errorf("%q: pid, start = %q, %q; want %q, %q", c.comment, m[1], m[2], c.pid, c.start)
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
	// The real /proc: this process.
	if _, err := processStart("/proc", os.Getpid()); err != nil {
		t.Errorf("processStart(self): %v", err)
	}

	fw := Firewall{ProcRoot: root}
	for _, c := range []struct {
		pid   int
		start string
		alive bool
	}{{100, "987654", true}, {100, "", true}, {100, "1", false}, {101, "", false}, {103, "", false}, {0, "", false}} {
		if got := fw.ownerAlive(c.pid, c.start); got != c.alive {
			t.Errorf("ownerAlive(%d, %q) = %v, want %v", c.pid, c.start, got, c.alive)
		}
	}
}

func TestGuardWithoutIPTables(t *testing.T) {
	ctx := context.Background()
	local := netip.MustParseAddrPort("10.0.2.21:40000")
	const want = "iptables not found: install the iptables package"

	_, err := Firewall{IPTables: filepath.Join(t.TempDir(), "iptables")}.InstallGuard(ctx, local)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("InstallGuard with a missing iptables: %v; want %q", err, want)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := InstallGuard(ctx, local); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("InstallGuard with iptables off PATH: %v; want %q", err, want)
	}
	if _, err := CleanupStale(ctx); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("CleanupStale with iptables off PATH: %v; want %q", err, want)
	}
}

func TestGuardRejectsBadAddresses(t *testing.T) {
	ctx := context.Background()
	for _, ap := range []string{"10.0.2.21:0", "[2001:db8::1]:80"} {
		if _, err := InstallGuard(ctx, netip.MustParseAddrPort(ap)); err == nil {
			t.Errorf("InstallGuard(%s) succeeded", ap)
		}
	}
}

func TestNilGuardRemove(t *testing.T) {
	var g *Guard
	if err := g.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// rootIPTablesSnapshot returns the root namespace's ruleset without the
// timestamped comment lines, to prove the tests never touched it.
func rootIPTablesSnapshot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save in the root namespace: %v", err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// checkRootUntouched registers a cleanup comparing the root namespace's
// iptables ruleset with the one at the start of the test.
func checkRootUntouched(t *testing.T) {
	t.Helper()
	before := rootIPTablesSnapshot(t)
	t.Cleanup(func() {
		if after := rootIPTablesSnapshot(t); after != before {
			t.Errorf("the root namespace's iptables rules changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// removeOnCleanup removes the guards from inside ns when the test ends
// (Remove must run in the namespace the rule is in). A namespace already
// gone took its rules with it.
func removeOnCleanup(t testing.TB, ns string, guards ...*Guard) {
	t.Helper()
	t.Cleanup(func() {
		err := lab.Do(ns, func() error {
			var errs []error
			for _, g := range guards {
				errs = append(errs, g.Remove(context.Background()))
			}
			return errors.Join(errs...)
		})
		if err != nil && !strings.Contains(err.Error(), "opening namespace") {
			t.Errorf("removing guards in %s: %v", ns, err)
		}
	})
}

// inNS runs fn on a thread inside namespace ns (lab.Do) and fails the test
// on error.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := lab.Do(ns, fn); err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

func nsRules(t *testing.T, l *lab.Lab, ns string) string {
	t.Helper()
	return labtest.Run(t, l, ns, "iptables-save")
}

// dialOutcome dials addr from ns and classifies the result: "refused" (the
// kernel answered RST), "timeout" (the SYN was dropped) or "connected".
func dialOutcome(t *testing.T, l *lab.Lab, ns, addr string, wait time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := l.Dial(ctx, ns, "tcp", addr)
	switch {
	case err == nil:
		conn.Close()
		return "connected"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timeout"
	}
	t.Fatalf("dial %s from %s: unexpected error %v", addr, ns, err)
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestGuardInNamespace(t *testing.T) {
	labtest.RequireTools(t, "iptables", "iptables-save")
	l := labtest.New(t)
	checkRootUntouched(t)
	ctx := context.Background()
	client := l.ClientIP()
	guarded := netip.AddrPortFrom(client, 40000)
	target := guarded.String()
	other := netip.AddrPortFrom(client, 40001).String()

	// Before: nothing listens, the kernel refuses both ports.
	if got := dialOutcome(t, l, l.ServerNS, target, 2*time.Second); got != "refused" {
		t.Fatalf("before the guard: dial %s = %s, want refused", target, got)
	}

	var g *Guard
	inNS(t, l.ClientNS, func() (err error) {
		g, err = InstallGuard(ctx, guarded)
		return err
	})
	removeOnCleanup(t, l.ClientNS, g)

	rules := nsRules(t, l, l.ClientNS)
	wantComment := fmt.Sprintf(`tcpcraft pid=%d start=[0-9]+ guard 10\.0\.2\.21:40000`, os.Getpid())
	wantRule := regexp.MustCompile(`(?m)^-A INPUT -d 10\.0\.2\.21/32 -p tcp -m tcp --dport 40000 -m comment --comment "` + wantComment + `" -j DROP$`)
	if !wantRule.MatchString(rules) {
		t.Fatalf("client namespace rules do not hold the guard:\n%s", rules)
	}
	if !regexp.MustCompile(`^` + wantComment + `$`).MatchString(g.Comment()) {
		t.Errorf("Comment() = %q", g.Comment())
	}
	if g.Local() != guarded {
		t.Errorf("Local() = %v, want %v", g.Local(), guarded)
	}
	if !strings.Contains(g.Rule(), "--dport 40000") || !strings.Contains(g.Rule(), "-j DROP") {
		t.Errorf("Rule() = %q", g.Rule())
	}
	if strings.Contains(nsRules(t, l, l.ServerNS), "tcpcraft") {
		t.Fatal("the guard landed in the server namespace")
	}

	// The kernel no longer sees SYNs to the guarded port: no RST, the
	// dialer times out. Another port is refused as usual.
	if got := dialOutcome(t, l, l.ServerNS, target, 1500*time.Millisecond); got != "timeout" {
		t.Fatalf("with the guard: dial %s = %s, want timeout (SYN dropped, no RST)", target, got)
	}
	if got := dialOutcome(t, l, l.ServerNS, other, 2*time.Second); got != "refused" {
		t.Fatalf("with the guard: dial %s = %s, want refused (other ports unaffected)", other, got)
	}

	// Remove from another namespace (this goroutine's, the root one) must
	// refuse rather than report success and leave the rule.
	if err := g.Remove(ctx); err == nil || !strings.Contains(err.Error(), "installed in network namespace") {
		t.Fatalf("Remove from the root namespace: %v, want a namespace mismatch error", err)
	}
	if !wantRule.MatchString(nsRules(t, l, l.ClientNS)) {
		t.Fatal("the refused Remove removed the rule anyway")
	}
	inNS(t, l.ClientNS, func() error { return g.Remove(ctx) })
	if strings.Contains(nsRules(t, l, l.ClientNS), "tcpcraft") {
		t.Fatalf("rule still present after Remove:\n%s", nsRules(t, l, l.ClientNS))
	}
	if got := dialOutcome(t, l, l.ServerNS, target, 2*time.Second); got != "refused" {
		t.Fatalf("after Remove: dial %s = %s, want refused", target, got)
	}
	// Idempotent, also when the rule vanished behind the guard's back.
	inNS(t, l.ClientNS, func() error { return g.Remove(ctx) })
	var g2 *Guard
	inNS(t, l.ClientNS, func() (err error) {
		g2, err = InstallGuard(ctx, guarded)
		return err
	})
	labtest.Iptables(t, l, l.ClientNS, "-D", "INPUT", "-d", "10.0.2.21", "-p", "tcp", "--dport", "40000",
		"-m", "comment", "--comment", g2.Comment(), "-j", "DROP")
	inNS(t, l.ClientNS, func() error { return g2.Remove(ctx) })
}

func TestGuardListenerAllAddresses(t *testing.T) {
	labtest.RequireTools(t, "iptables", "iptables-save")
	l := labtest.New(t)
	checkRootUntouched(t)
	ctx := context.Background()

	// A kernel listener on the port shows the guard hides it: without the
	// guard the dial connects, with it the SYN is dropped.
	labtest.Listen(t, l, l.ClientNS, "0.0.0.0:40002")
	target := netip.AddrPortFrom(l.ClientIP(), 40002).String()
	if got := dialOutcome(t, l, l.ServerNS, target, 2*time.Second); got != "connected" {
		t.Fatalf("before the guard: dial %s = %s, want connected", target, got)
	}

	var g *Guard
	inNS(t, l.ClientNS, func() (err error) {
		g, err = InstallGuard(ctx, netip.MustParseAddrPort("0.0.0.0:40002"))
		return err
	})
	removeOnCleanup(t, l.ClientNS, g)
	rules := nsRules(t, l, l.ClientNS)
	want := regexp.MustCompile(`(?m)^-A INPUT -p tcp -m tcp --dport 40002 -m comment --comment "tcpcraft pid=[0-9]+ start=[0-9]+ guard \*:40002" -j DROP$`)
	if !want.MatchString(rules) {
		t.Fatalf("listener guard (no -d) not found:\n%s", rules)
	}
	if got := dialOutcome(t, l, l.ServerNS, target, 1500*time.Millisecond); got != "timeout" {
		t.Fatalf("with the listener guard: dial %s = %s, want timeout", target, got)
	}
	inNS(t, l.ClientNS, func() error { return g.Remove(ctx) })
	if strings.Contains(nsRules(t, l, l.ClientNS), "tcpcraft") {
		t.Fatal("listener guard left behind")
	}
}

func TestCleanupStaleInNamespace(t *testing.T) {
	labtest.RequireTools(t, "iptables", "iptables-save")
	l := labtest.New(t)
	checkRootUntouched(t)
	ctx := context.Background()

	// A pid that surely belonged to a process that has exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := dead.Process.Pid

	var live, stale *Guard
	inNS(t, l.ClientNS, func() (err error) {
		if live, err = InstallGuard(ctx, netip.MustParseAddrPort("10.0.2.21:41000")); err != nil {
			return err
		}
		stale, err = Firewall{PID: deadPid}.InstallGuard(ctx, netip.MustParseAddrPort("10.0.2.21:41001"))
		return err
	})
	removeOnCleanup(t, l.ClientNS, live, stale)
	// Our own pid with a start time that is not ours: the pid was recycled.
	recycled := fmt.Sprintf("tcpcraft pid=%d start=1 guard 10.0.2.21:41002", os.Getpid())
	labtest.Iptables(t, l, l.ClientNS, "-I", "INPUT", "-p", "tcp", "--dport", "41002", "-m", "comment", "--comment", recycled, "-j", "DROP")
	// Not ours at all: must survive.
	labtest.Iptables(t, l, l.ClientNS, "-A", "INPUT", "-p", "tcp", "--dport", "41003", "-m", "comment", "--comment", "someone else pid=1", "-j", "ACCEPT")

	var removed []string
	inNS(t, l.ClientNS, func() (err error) {
		removed, err = CleanupStale(ctx)
		return err
	})
	if len(removed) != 2 {
		t.Fatalf("CleanupStale removed %d rules, want 2 (dead pid, recycled pid):\n%s", len(removed), strings.Join(removed, "\n"))
	}
	joined := strings.Join(removed, "\n")
	if !strings.Contains(joined, fmt.Sprintf("pid=%d guard", deadPid)) || !strings.Contains(joined, "start=1 guard") {
		t.Fatalf("CleanupStale removed the wrong rules:\n%s", joined)
	}
	rules := nsRules(t, l, l.ClientNS)
	for _, keep := range []string{live.Comment(), "someone else pid=1"} {
		if !strings.Contains(rules, keep) {
			t.Errorf("CleanupStale removed %q:\n%s", keep, rules)
		}
	}
	for _, gone := range []string{stale.Comment(), recycled} {
		if strings.Contains(rules, gone) {
			t.Errorf("CleanupStale kept %q:\n%s", gone, rules)
		}
	}

	// The stale guard's own Remove now finds nothing and is content; the
	// live one removes its rule; a second sweep finds nothing.
	inNS(t, l.ClientNS, func() error {
		if err := stale.Remove(ctx); err != nil {
			return err
		}
		if err := live.Remove(ctx); err != nil {
			return err
		}
		again, err := CleanupStale(ctx)
		if len(again) != 0 {
			return fmt.Errorf("second CleanupStale removed %q", again)
		}
		return err
	})
	labtest.Iptables(t, l, l.ClientNS, "-D", "INPUT", "-p", "tcp", "--dport", "41003", "-m", "comment", "--comment", "someone else pid=1", "-j", "ACCEPT")
	if rules := nsRules(t, l, l.ClientNS); strings.Contains(rules, "-A INPUT") {
		t.Fatalf("rules left in the namespace:\n%s", rules)
	}
}
