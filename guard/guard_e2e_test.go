package guard

// End-to-end tests: guards installed in lab namespaces (labtest: fresh,
// uniquely named, removed at cleanup), judged by what the kernel does with
// SYNs from the other namespace, and by what `nft` lists. Nothing here
// touches the root namespace's firewall (checkRootUntouched), and nothing
// sweeps a namespace the test did not make.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// helperEnv selects what the test binary does when a test re-executes it
// (see TestMain).
const helperEnv = "TCPCRAFT_GUARD_TEST_HELPER"

func TestMain(m *testing.M) {
	switch v := os.Getenv(helperEnv); {
	case v == "":
		os.Exit(m.Run())
	case strings.HasPrefix(v, "hold "):
		// hold NS ADDRPORT: install a guard in NS, say its table's name,
		// and wait to be killed.
		f := strings.Fields(v)
		var g *Guard
		err := lab.Do(f[1], func() (err error) {
			g, err = Install(context.Background(), netip.MustParseAddrPort(f[2]))
			return err
		})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(g.Table())
		select {}
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, v)
		os.Exit(2)
	}
}

// newLab is a lab for a guard test, with its IPv6 addresses beside the
// IPv4 ones (fd00:2::21/64 and fd00:2::20/64, as every lab has),
// and a check that the root namespace's firewall is the same at the end.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	labtest.RequireTools(t, "nft", "ip")
	l := labtest.New(t)
	checkRootUntouched(t)
	if l.ClientIP6().String() != "fd00:2::21" || l.ServerIP6().String() != "fd00:2::20" {
		t.Fatalf("lab IPv6 addresses %v and %v, want fd00:2::21 and fd00:2::20", l.ClientIP6(), l.ServerIP6())
	}
	return l
}

var (
	client6 = netip.MustParseAddr("fd00:2::21")
	server6 = netip.MustParseAddr("fd00:2::20")
)

// rootRuleset is the root namespace's firewall as nft and iptables-save
// print it (without iptables-save's timestamped comment lines).
func rootRuleset(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "ruleset").Output()
	if err != nil {
		t.Fatalf("nft list ruleset in the root namespace: %v", err)
	}
	if ipt, err := exec.Command("iptables-save").Output(); err == nil {
		for _, l := range strings.Split(string(ipt), "\n") {
			if !strings.HasPrefix(l, "#") {
				out = append(out, l+"\n"...)
			}
		}
	}
	return string(out)
}

// checkRootUntouched fails the test if the root namespace's firewall
// changed while it ran in a way that names tcpcraft pids of this process.
// (Other tests on the machine may change the root's firewall meanwhile;
// only this process's traces count.)
func checkRootUntouched(t *testing.T) {
	t.Helper()
	mine := fmt.Sprintf("tcpcraft pid=%d ", os.Getpid())
	table := fmt.Sprintf("%s%d-", TablePrefix, os.Getpid())
	before := rootRuleset(t)
	t.Cleanup(func() {
		after := rootRuleset(t)
		for _, line := range strings.Split(after, "\n") {
			if (strings.Contains(line, mine) || strings.Contains(line, table)) && !strings.Contains(before, line) {
				t.Errorf("the root namespace's firewall holds a guard of this test process: %s", line)
			}
		}
	})
}

// inNS runs fn on a thread inside namespace ns and fails the test on error.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := lab.Do(ns, fn); err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// install installs f's guard for local inside ns and removes it (from the
// test's goroutine, outside ns: a guard removes itself from its own
// namespace) when the test ends.
func install(t *testing.T, ns string, f Firewall, local netip.AddrPort) *Guard {
	t.Helper()
	var g *Guard
	inNS(t, ns, func() (err error) {
		g, err = f.Install(context.Background(), local)
		return err
	})
	t.Cleanup(func() {
		if err := g.Remove(context.Background()); err != nil {
			t.Errorf("removing %s: %v", g.Table(), err)
		}
	})
	return g
}

// tcpcraftTables lists the tcpcraft tables in ns, read over netlink.
func tcpcraftTables(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	inNS(t, ns, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		for _, tb := range ts {
			if strings.HasPrefix(tb.Name, TablePrefix) {
				names = append(names, tb.Name)
			}
		}
		return err
	})
	return names
}

// nftList is `nft list ruleset` in ns.
func nftList(t *testing.T, l *lab.Lab, ns string) string {
	t.Helper()
	return labtest.Run(t, l, ns, "nft", "list", "ruleset")
}

// dialOutcome dials addr from ns and classifies the result: "refused" (the
// kernel answered RST), "timeout" (the SYN was dropped) or "connected".
func dialOutcome(t *testing.T, l *lab.Lab, ns, addr string, wait time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := l.Dial(ctx, ns, "tcp", addr)
	var ne net.Error
	switch {
	case err == nil:
		conn.Close()
		return "connected"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	t.Fatalf("dial %s from %s: unexpected error %v", addr, ns, err)
	return ""
}

// expectDials dials each address from the server namespace and compares
// the outcomes ("refused" answers at once; "timeout" is judged after 1.5 s).
func expectDials(t *testing.T, l *lab.Lab, when string, want map[string]string) {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	var wg sync.WaitGroup
	for addr := range want {
		wg.Go(func() {
			o := dialOutcome(t, l, l.ServerNS, addr, 1500*time.Millisecond)
			mu.Lock()
			got[addr] = o
			mu.Unlock()
		})
	}
	wg.Wait()
	for addr, w := range want {
		if got[addr] != w {
			t.Errorf("%s: dial %s = %s, want %s", when, addr, got[addr], w)
		}
	}
}

func TestGuardIPv4(t *testing.T) {
	l := newLab(t)
	guarded := netip.AddrPortFrom(l.ClientIP(), 40000)
	target, other := guarded.String(), netip.AddrPortFrom(l.ClientIP(), 40001).String()
	target6 := netip.AddrPortFrom(client6, 40000).String()
	expectDials(t, l, "before the guard", map[string]string{target: "refused", other: "refused", target6: "refused"})

	g := install(t, l.ClientNS, Firewall{}, guarded)
	if !g.Owned() {
		t.Error("the guard's table is not owned (this kernel has owner flags)")
	}
	ruleset := nftList(t, l, l.ClientNS)
	comment := fmt.Sprintf(`tcpcraft pid=%d start=[0-9]+ guard 10\.0\.2\.21:40000`, os.Getpid())
	want := regexp.MustCompile(`(?s)table inet ` + regexp.QuoteMeta(g.Table()) + ` \{.*` +
		`flags owner.*comment "` + comment + `".*chain guard \{\s*type filter hook input priority filter; policy accept;\s*` +
		`ip daddr 10\.0\.2\.21 tcp dport 40000 drop comment "` + comment + `"\s*\}`)
	if !want.MatchString(ruleset) {
		t.Fatalf("the client namespace's ruleset does not hold the guard as expected:\n%s", ruleset)
	}
	if !regexp.MustCompile(`^`+comment+`$`).MatchString(g.Comment()) || g.Local() != guarded {
		t.Errorf("Comment() = %q, Local() = %v", g.Comment(), g.Local())
	}
	if got := g.Rule(); !strings.Contains(got, "nft add rule inet "+g.Table()+" guard ip daddr 10.0.2.21 tcp dport 40000 drop comment") {
		t.Errorf("Rule() = %q", got)
	}
	if strings.Contains(nftList(t, l, l.ServerNS), "tcpcraft") {
		t.Fatal("the guard landed in the server namespace")
	}
	// Exactly that address and port: another port, and the same port
	// over IPv6, still draw the kernel's RST.
	expectDials(t, l, "with the guard", map[string]string{target: "timeout", other: "refused", target6: "refused"})

	// Removed from this goroutine, which is not in the namespace.
	if err := g.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tcpcraftTables(t, l.ClientNS); len(got) > 0 {
		t.Fatalf("tables left after Remove: %q", got)
	}
	expectDials(t, l, "after Remove", map[string]string{target: "refused"})
	if err := g.Remove(context.Background()); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestGuardIPv6(t *testing.T) {
	l := newLab(t)
	guarded := netip.AddrPortFrom(client6, 40010)
	target, other := guarded.String(), netip.AddrPortFrom(client6, 40011).String()
	target4 := netip.AddrPortFrom(l.ClientIP(), 40010).String()
	expectDials(t, l, "before the guard", map[string]string{target: "refused", other: "refused", target4: "refused"})

	g := install(t, l.ClientNS, Firewall{}, guarded)
	want := regexp.MustCompile(`ip6 daddr fd00:2::21 tcp dport 40010 drop comment "tcpcraft pid=[0-9]+ start=[0-9]+ guard \[fd00:2::21\]:40010"`)
	if ruleset := nftList(t, l, l.ClientNS); !want.MatchString(ruleset) {
		t.Fatalf("IPv6 guard not found:\n%s", ruleset)
	}
	expectDials(t, l, "with the IPv6 guard", map[string]string{target: "timeout", other: "refused", target4: "refused"})
	if err := g.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectDials(t, l, "after Remove", map[string]string{target: "refused"})
}

// A scope guard — two addresses, a block of four ports — hides exactly
// those ports of those addresses, both families, in one table with a rule
// per address, and goes as one.
func TestGuardScope(t *testing.T) {
	l := newLab(t)
	v4, v6 := func(p uint16) string { return netip.AddrPortFrom(l.ClientIP(), p).String() },
		func(p uint16) string { return netip.AddrPortFrom(client6, p).String() }
	var g *Guard
	inNS(t, l.ClientNS, func() (err error) {
		g, err = InstallScope(context.Background(), Scope{Addrs: []netip.Addr{l.ClientIP(), client6}, PortLow: 40100, PortHigh: 40103})
		return err
	})
	t.Cleanup(func() { g.Remove(context.Background()) })
	ruleset := nftList(t, l, l.ClientNS)
	for _, want := range []string{
		`ip daddr 10\.0\.2\.21 tcp dport 40100-40103 drop comment "tcpcraft pid=[0-9]+ start=[0-9]+ guard 10\.0\.2\.21:40100-40103,\[fd00:2::21\]:40100-40103"`,
		`ip6 daddr fd00:2::21 tcp dport 40100-40103 drop`,
	} {
		if !regexp.MustCompile(want).MatchString(ruleset) {
			t.Fatalf("want %s in the ruleset:\n%s", want, ruleset)
		}
	}
	if n := len(tcpcraftTables(t, l.ClientNS)); n != 1 {
		t.Errorf("%d tcpcraft tables, want 1", n)
	}
	if got := g.Scope(); got.PortLow != 40100 || got.PortHigh != 40103 || len(got.Addrs) != 2 {
		t.Errorf("Scope() = %+v", got)
	}
	expectDials(t, l, "with the scope guard", map[string]string{
		v4(40100): "timeout", v4(40103): "timeout", v6(40101): "timeout",
		v4(40099): "refused", v4(40104): "refused", v6(40104): "refused",
	})
	if err := g.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tcpcraftTables(t, l.ClientNS); len(got) > 0 {
		t.Fatalf("tables left after Remove: %q", got)
	}
	expectDials(t, l, "after Remove", map[string]string{v4(40100): "refused", v6(40103): "refused"})
}

func TestGuardAllAddresses(t *testing.T) {
	l := newLab(t)
	v4, v6 := func(p uint16) string { return netip.AddrPortFrom(l.ClientIP(), p).String() },
		func(p uint16) string { return netip.AddrPortFrom(client6, p).String() }

	// A kernel listener on both families shows what each guard hides.
	labtest.Listen(t, l, l.ClientNS, "[::]:40020")
	expectDials(t, l, "before the guards", map[string]string{v4(40020): "connected", v6(40020): "connected"})

	g4 := install(t, l.ClientNS, Firewall{}, netip.MustParseAddrPort("0.0.0.0:40020"))
	expectDials(t, l, "guard 0.0.0.0", map[string]string{v4(40020): "timeout", v6(40020): "connected", v4(40021): "refused"})
	g4.Remove(context.Background())

	g6 := install(t, l.ClientNS, Firewall{}, netip.MustParseAddrPort("[::]:40020"))
	expectDials(t, l, "guard ::", map[string]string{v4(40020): "connected", v6(40020): "timeout", v6(40021): "refused"})
	g6.Remove(context.Background())

	both := install(t, l.ClientNS, Firewall{}, netip.AddrPortFrom(netip.Addr{}, 40020))
	if ruleset := nftList(t, l, l.ClientNS); !strings.Contains(ruleset, "\t\ttcp dport 40020 drop comment") || !strings.Contains(ruleset, "guard *:40020") {
		t.Fatalf("both-family guard not found:\n%s", ruleset)
	}
	expectDials(t, l, "guard *", map[string]string{v4(40020): "timeout", v6(40020): "timeout", v4(40021): "refused", v6(40021): "refused"})
	both.Remove(context.Background())
	expectDials(t, l, "after the guards", map[string]string{v4(40020): "connected", v6(40020): "connected"})
}

// TestGuardGoesWithItsProcess: the owned table is the kernel's to delete
// when the process that holds its socket dies, even by SIGKILL.
func TestGuardGoesWithItsProcess(t *testing.T) {
	l := newLab(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=hold "+l.ClientNS+" 10.0.2.21:40030")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, TablePrefix) {
		t.Fatalf("helper said %q, %v", line, err)
	}
	table := strings.TrimSpace(line)
	if got := tcpcraftTables(t, l.ClientNS); !slices.Contains(got, table) {
		t.Fatalf("the helper's table %s is not there: %q", table, got)
	}
	expectDials(t, l, "while the helper lives", map[string]string{"10.0.2.21:40030": "timeout"})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if got := tcpcraftTables(t, l.ClientNS); len(got) > 0 {
		t.Fatalf("after SIGKILL, tables left: %q", got)
	}
	expectDials(t, l, "after SIGKILL", map[string]string{"10.0.2.21:40030": "refused"})
}

// TestGuardOthersCannotRemoveIt: another socket (another tcpcraft's
// cleanup, `nft delete table`, `nft flush ruleset`) cannot take an owned
// guard away.
func TestGuardOthersCannotRemoveIt(t *testing.T) {
	l := newLab(t)
	g := install(t, l.ClientNS, Firewall{}, netip.MustParseAddrPort("10.0.2.21:40040"))
	cmd := l.Command(context.Background(), l.ClientNS, "nft", "delete", "table", "inet", g.Table())
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("nft delete table of an owned guard succeeded: %s", out)
	}
	labtest.Run(t, l, l.ClientNS, "nft", "flush", "ruleset")
	if got := tcpcraftTables(t, l.ClientNS); !slices.Contains(got, g.Table()) {
		t.Fatalf("the owned table went: %q", got)
	}
	// Nor does a sweep, for the owner is alive; and an owned table whose
	// comment names a pid this sweep cannot see (a run in another pid
	// namespace, say) is passed by, without an error: its socket is alive
	// by definition.
	foreign := install(t, l.ClientNS, Firewall{PID: deadPid(t)}, netip.MustParseAddrPort("10.0.2.21:40041"))
	inNS(t, l.ClientNS, func() error {
		removed, err := Firewall{}.CleanupStale(context.Background())
		if len(removed) > 0 {
			return fmt.Errorf("CleanupStale removed %q", removed)
		}
		return err
	})
	if got := tcpcraftTables(t, l.ClientNS); !slices.Contains(got, foreign.Table()) {
		t.Fatalf("the owned table of an unseen pid went: %q", got)
	}
	expectDials(t, l, "after the attempts", map[string]string{"10.0.2.21:40040": "timeout"})
}

// deadPid is a pid that belonged to a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	return dead.Process.Pid
}

// TestInstallFailureLeavesNothing makes every step of Install fail in
// turn, with owned and unowned tables, also when the undo's own deletion
// fails: the error comes back and no table is left (an unowned table
// whose deletion failed too is left to CleanupStale, which must find it).
func TestInstallFailureLeavesNothing(t *testing.T) {
	l := newLab(t)
	injected := errors.New("injected failure")
	local := netip.MustParseAddrPort("10.0.2.21:40050")
	steps := []string{stepSocket, stepCreate, stepCreateDone}
	for _, unowned := range []bool{false, true} {
		for _, step := range steps {
			for _, undoFails := range []bool{false, true} {
				name := fmt.Sprintf("unowned=%v/%s/undo-fails=%v", unowned, step, undoFails)
				var seen []string
				f := Firewall{Unowned: unowned, PID: deadPid(t), fail: func(s string) error {
					seen = append(seen, s)
					if s == step || (undoFails && s == stepDelete) {
						return injected
					}
					return nil
				}}
				var g *Guard
				err := lab.Do(l.ClientNS, func() (err error) {
					g, err = f.Install(context.Background(), local)
					return err
				})
				if !slices.Contains(seen, step) {
					t.Fatalf("%s: step never reached (steps: %q)", name, seen)
				}
				if g != nil || !errors.Is(err, injected) {
					t.Fatalf("%s: Install = %v, %v; want the injected error", name, g, err)
				}
				left := tcpcraftTables(t, l.ClientNS)
				if !unowned || !undoFails || step != stepCreateDone {
					if len(left) > 0 {
						t.Fatalf("%s: tables left: %q", name, left)
					}
					continue
				}
				// Unowned and committed, and the undo failed too: the
				// table is the one CleanupStale must find (its pid is dead).
				if len(left) != 1 {
					t.Fatalf("%s: want the one table the failed undo left, got %q", name, left)
				}
				inNS(t, l.ClientNS, func() error {
					removed, err := Firewall{}.CleanupStale(context.Background())
					if len(removed) != 1 || !strings.Contains(removed[0], left[0]) {
						return fmt.Errorf("CleanupStale removed %q (err %v), want %s", removed, err, left[0])
					}
					return err
				})
				if left := tcpcraftTables(t, l.ClientNS); len(left) > 0 {
					t.Fatalf("%s: tables left after CleanupStale: %q", name, left)
				}
			}
		}
	}
}

// TestRemoveFailure: a failed deletion does not keep an owned table (the
// socket's close deletes it); an unowned guard reports it, keeps its
// socket, and a second Remove deletes the table.
func TestRemoveFailure(t *testing.T) {
	l := newLab(t)
	injected := errors.New("injected failure")
	for _, unowned := range []bool{false, true} {
		failing := true
		f := Firewall{Unowned: unowned, fail: func(s string) error {
			if s == stepDelete && failing {
				return injected
			}
			return nil
		}}
		g := install(t, l.ClientNS, f, netip.MustParseAddrPort("10.0.2.21:40060"))
		err := g.Remove(context.Background())
		if unowned {
			if !errors.Is(err, injected) {
				t.Fatalf("unowned: Remove = %v, want the injected error", err)
			}
			if got := tcpcraftTables(t, l.ClientNS); len(got) != 1 {
				t.Fatalf("unowned: after the failed Remove, tables %q, want the guard's", got)
			}
			failing = false
			if err := g.Remove(context.Background()); err != nil {
				t.Fatalf("unowned: second Remove: %v", err)
			}
		} else if err != nil {
			t.Fatalf("owned: Remove = %v, want nil (closing the socket deletes the table)", err)
		}
		if got := tcpcraftTables(t, l.ClientNS); len(got) > 0 {
			t.Fatalf("unowned=%v: tables left: %q", unowned, got)
		}
	}
}

// TestInstallCancelledAtAnyMoment cancels Install's context at many
// moments, from before the call to after it returned: every outcome is
// either an error with nothing installed, or a guard that Remove then
// takes away; nothing is ever left.
func TestInstallCancelledAtAnyMoment(t *testing.T) {
	l := newLab(t)
	local := netip.MustParseAddrPort("10.0.2.21:40070")
	installed, refused := 0, 0
	for i := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		delay := time.Duration(rand.IntN(i*10+1)) * time.Microsecond
		timer := time.AfterFunc(delay, cancel)
		var g *Guard
		err := lab.Do(l.ClientNS, func() (err error) {
			g, err = Install(ctx, local)
			return err
		})
		timer.Stop()
		cancel()
		switch {
		case err == nil && g != nil:
			installed++
			if err := g.Remove(ctx); err != nil {
				t.Fatalf("run %d: Remove: %v", i, err)
			}
		case err != nil && g == nil:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("run %d: Install failed otherwise than by cancellation: %v", i, err)
			}
			refused++
		default:
			t.Fatalf("run %d: Install returned %v and %v", i, g, err)
		}
		if left := tcpcraftTables(t, l.ClientNS); len(left) > 0 {
			t.Fatalf("run %d (cancel after %v): tables left: %q", i, delay, left)
		}
	}
	t.Logf("200 runs: %d installed and removed, %d cancelled before the first change", installed, refused)
	if installed == 0 || refused == 0 {
		t.Errorf("the cancellations did not fall on both sides of the first change (%d installed, %d refused): widen the delays", installed, refused)
	}
}

// TestConcurrentGuards: runs in one namespace install and remove guards at
// the same time without disturbing each other (every table is its own).
func TestConcurrentGuards(t *testing.T) {
	l := newLab(t)
	// A long-lived guard of "another run" that must survive it all.
	keep := install(t, l.ClientNS, Firewall{}, netip.MustParseAddrPort("10.0.2.21:40080"))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				err := lab.Do(l.ClientNS, func() error {
					g, err := Install(context.Background(), netip.AddrPortFrom(l.ClientIP(), uint16(40100+w*100+i)))
					if err != nil {
						return err
					}
					return g.Remove(context.Background())
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := tcpcraftTables(t, l.ClientNS); len(got) != 1 || got[0] != keep.Table() {
		t.Fatalf("after the concurrent runs, tables %q, want only %s", got, keep.Table())
	}
	expectDials(t, l, "after the concurrent runs", map[string]string{"10.0.2.21:40080": "timeout"})
}

// TestCleanupStale: stale guards of every kind are removed — unowned
// tables of a dead pid and of a reused pid, an empty table named for a
// dead pid, iptables rules of older versions with a dead or reused pid —
// and nothing else: a live run's guards (owned and unowned), another
// program's table, another program's iptables rule.
func TestCleanupStale(t *testing.T) {
	l := newLab(t)
	labtest.RequireTools(t, "iptables", "iptables-save")
	dead := deadPid(t)

	// A fake /proc that gives this process another start time: a guard
	// installed through it looks like one of an earlier process with the
	// same pid.
	fakeProc := t.TempDir()
	self := fmt.Sprint(os.Getpid())
	if err := os.MkdirAll(filepath.Join(fakeProc, self), 0o755); err != nil {
		t.Fatal(err)
	}
	stat := self + " (tcpcraft) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 1 20 21\n"
	if err := os.WriteFile(filepath.Join(fakeProc, self, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}

	liveOwned := install(t, l.ClientNS, Firewall{}, netip.MustParseAddrPort("10.0.2.21:41000"))
	liveUnowned := install(t, l.ClientNS, Firewall{Unowned: true}, netip.MustParseAddrPort("10.0.2.21:41001"))
	staleDead := install(t, l.ClientNS, Firewall{Unowned: true, PID: dead}, netip.MustParseAddrPort("[fd00:2::21]:41002"))
	staleReused := install(t, l.ClientNS, Firewall{Unowned: true, ProcRoot: fakeProc}, netip.MustParseAddrPort("10.0.2.21:41003"))
	if !strings.Contains(staleReused.Comment(), " start=1 ") {
		t.Fatalf("the reused-pid guard's comment %q", staleReused.Comment())
	}
	emptyTable := fmt.Sprintf("%s%d-0000beef", TablePrefix, dead)
	labtest.Run(t, l, l.ClientNS, "nft", "add", "table", "inet", emptyTable)
	labtest.Run(t, l, l.ClientNS, "nft", "add", "table", "inet", "someone-else")
	labtest.Run(t, l, l.ClientNS, "nft", "add", "table", "inet", TablePrefix+"notapid")
	oldDead := fmt.Sprintf("tcpcraft pid=%d guard 10.0.2.21:41004", dead)
	oldReused := fmt.Sprintf("tcpcraft pid=%d start=1 guard 10.0.2.21:41005", os.Getpid())
	oldLive := fmt.Sprintf("tcpcraft pid=%d guard 10.0.2.21:41006", os.Getpid())
	for i, c := range []string{oldDead, oldReused, oldLive, "someone else pid=1"} {
		labtest.Iptables(t, l, l.ClientNS, "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(41004+i), "-m", "comment", "--comment", c, "-j", "DROP")
	}

	var removed []string
	inNS(t, l.ClientNS, func() (err error) {
		removed, err = Firewall{}.CleanupStale(context.Background())
		return err
	})
	joined := strings.Join(removed, "\n")
	for _, want := range []string{"table inet " + staleDead.Table() + ": " + staleDead.Comment(),
		"table inet " + staleReused.Table() + ": " + staleReused.Comment(),
		"table inet " + emptyTable, oldDead, oldReused} {
		if !strings.Contains(joined, want) {
			t.Errorf("CleanupStale did not report %q; it said:\n%s", want, joined)
		}
	}
	if len(removed) != 5 {
		t.Errorf("CleanupStale removed %d items, want 5:\n%s", len(removed), joined)
	}
	tables := tcpcraftTables(t, l.ClientNS)
	slices.Sort(tables)
	wantTables := []string{liveOwned.Table(), liveUnowned.Table(), TablePrefix + "notapid"}
	slices.Sort(wantTables)
	if !slices.Equal(tables, wantTables) {
		t.Errorf("tables after CleanupStale %q, want %q", tables, wantTables)
	}
	if r := nftList(t, l, l.ClientNS); !strings.Contains(r, "table inet someone-else") {
		t.Errorf("another program's table went:\n%s", r)
	}
	rules := labtest.Run(t, l, l.ClientNS, "iptables-save")
	for _, keep := range []string{oldLive, "someone else pid=1"} {
		if !strings.Contains(rules, keep) {
			t.Errorf("CleanupStale removed the rule %q:\n%s", keep, rules)
		}
	}
	for _, gone := range []string{oldDead, oldReused} {
		if strings.Contains(rules, gone) {
			t.Errorf("CleanupStale kept the rule %q", gone)
		}
	}
	// The stale guards' own Remove finds nothing and is content; a second
	// sweep finds nothing.
	for _, g := range []*Guard{staleDead, staleReused} {
		if err := g.Remove(context.Background()); err != nil {
			t.Errorf("Remove of a swept guard: %v", err)
		}
	}
	inNS(t, l.ClientNS, func() error {
		again, err := Firewall{}.CleanupStale(context.Background())
		if len(again) != 0 {
			return fmt.Errorf("second CleanupStale removed %q", again)
		}
		return err
	})
}

// TestSweepNamespaces: Sweep looks at the caller's namespace and every
// named one, each once, and with names at those only. The namespace
// directory is one of the test's own holding links to its two lab
// namespaces, so no other namespace on the machine is touched.
func TestSweepNamespaces(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	for _, ns := range []string{l.ClientNS, l.ServerNS} {
		if err := os.Symlink(filepath.Join(DefaultNetnsDir, ns), filepath.Join(dir, ns)); err != nil {
			t.Fatal(err)
		}
	}
	dead := deadPid(t)
	stale := func(ns string, port uint16) *Guard {
		return install(t, ns, Firewall{Unowned: true, PID: dead}, netip.MustParseAddrPort(fmt.Sprintf("0.0.0.0:%d", port)))
	}
	fw := Firewall{NetnsDir: dir, IPTables: "no-such-iptables"}

	// Only the server namespace.
	sc, ss := stale(l.ClientNS, 42000), stale(l.ServerNS, 42001)
	var reports []Report
	inNS(t, l.ClientNS, func() (err error) {
		reports, err = fw.Sweep(context.Background(), []string{l.ServerNS})
		return err
	})
	if len(reports) != 1 || reports[0].Namespace != l.ServerNS || len(reports[0].Removed) != 1 || !strings.Contains(reports[0].Removed[0], ss.Table()) {
		t.Fatalf("Sweep(server) reported %+v", reports)
	}
	if got := tcpcraftTables(t, l.ClientNS); !slices.Equal(got, []string{sc.Table()}) {
		t.Fatalf("Sweep(server) touched the client namespace: %q", got)
	}

	// Everything: from inside the client namespace, which is named in
	// dir, so it is reported once, under its name.
	stale(l.ServerNS, 42002)
	inNS(t, l.ClientNS, func() (err error) {
		reports, err = fw.Sweep(context.Background(), nil)
		return err
	})
	var looked []string
	total := 0
	for _, r := range reports {
		looked = append(looked, r.Namespace)
		total += len(r.Removed)
	}
	want := []string{l.ClientNS, l.ServerNS}
	slices.Sort(want)
	if !slices.Equal(looked, want) || total != 2 {
		t.Fatalf("Sweep(all) looked at %q and removed %d, want %q and 2: %+v", looked, total, want, reports)
	}
	for _, ns := range []string{l.ClientNS, l.ServerNS} {
		if got := tcpcraftTables(t, ns); len(got) > 0 {
			t.Fatalf("tables left in %s: %q", ns, got)
		}
	}

	if _, err := fw.Sweep(context.Background(), []string{"../etc"}); err == nil {
		t.Error("Sweep of a path, not a name, succeeded")
	}
	if _, err := fw.Sweep(context.Background(), []string{"tct-no-such-namespace"}); err == nil {
		t.Error("Sweep of a namespace that does not exist succeeded")
	}
}

// Delete takes the table away at once and leaves Remove only the socket;
// a Delete that failed leaves the table for Remove, which deletes it.
func TestGuardDeleteThenRemove(t *testing.T) {
	l := newLab(t)
	guarded := netip.MustParseAddrPort("10.0.2.21:40070")
	g := install(t, l.ClientNS, Firewall{}, guarded)
	g.Delete()
	if got := tcpcraftTables(t, l.ClientNS); len(got) > 0 {
		t.Fatalf("tables left after Delete: %q", got)
	}
	expectDials(t, l, "after Delete", map[string]string{guarded.String(): "refused"})
	g.Delete() // again: nothing to do
	if err := g.Remove(context.Background()); err != nil {
		t.Fatalf("Remove after Delete: %v", err)
	}

	injected := errors.New("injected failure")
	failing := true
	f := Firewall{Unowned: true, fail: func(s string) error {
		if s == stepDelete && failing {
			return injected
		}
		return nil
	}}
	g = install(t, l.ClientNS, f, guarded)
	g.Delete()
	if got := tcpcraftTables(t, l.ClientNS); len(got) != 1 {
		t.Fatalf("after a failed Delete, tables %q, want the guard's", got)
	}
	failing = false
	if err := g.Remove(context.Background()); err != nil {
		t.Fatalf("Remove after a failed Delete: %v", err)
	}
	if got := tcpcraftTables(t, l.ClientNS); len(got) > 0 {
		t.Fatalf("tables left after Remove: %q", got)
	}
}

// TestCreateBatchErrors: the table, chain and rule go in one batch with
// one acknowledgement, so an error must still name the message it was
// about (a taken table name: the table; a chain of a missing table: the
// chain), leave nothing of the batch behind, and leave no answer unread
// on the socket (the next batch on it succeeds).
func TestCreateBatchErrors(t *testing.T) {
	l := newLab(t)
	// Unowned: an owned table refuses every other socket (EPERM).
	taken := install(t, l.ClientNS, Firewall{Unowned: true}, netip.MustParseAddrPort("10.0.2.21:40080"))
	fresh := fmt.Sprintf("%s%d-batchtest", TablePrefix, os.Getpid())
	g := &Guard{
		scope:   Scope{Addrs: []netip.Addr{l.ClientIP()}, PortLow: 40081, PortHigh: 40081},
		comment: fmt.Sprintf("%s%d guard 10.0.2.21:40081", commentPrefix, os.Getpid()),
		table:   taken.Table(),
	}
	inNS(t, l.ClientNS, func() (err error) {
		g.conn, err = nftables.New(nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
			g.raw = c
			return nil
		}))
		return err
	})
	t.Cleanup(func() { _ = g.closeSocket() })

	err := g.create(true)
	if !errors.Is(err, syscall.EEXIST) || !strings.Contains(err.Error(), "creating table inet "+taken.Table()) {
		t.Fatalf("batch for a taken table name: %v, want EEXIST about the table", err)
	}

	g.table = fresh
	msgs, err := g.createMessages(true)
	if err != nil {
		t.Fatal(err)
	}
	badChain, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cString(TablePrefix + "no-such-table")},
		{Type: unix.NFTA_CHAIN_NAME, Data: cString(ChainName)},
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs = []netlink.Message{msgs[0], nftMessage(unix.NFT_MSG_NEWCHAIN, netlink.Create, badChain)}
	failed, err := g.sendBatch(msgs)
	if failed != 1 || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("batch whose chain names a missing table: message %d failed with %v, want message 1 with ENOENT", failed, err)
	}
	if got := tcpcraftTables(t, l.ClientNS); slices.Contains(got, fresh) {
		t.Fatalf("the failed batch's table was committed: %q", got)
	}

	if err := g.create(true); err != nil {
		t.Fatalf("a good batch on the same socket after the failures: %v", err)
	}
	if got := tcpcraftTables(t, l.ClientNS); !slices.Contains(got, fresh) {
		t.Fatalf("tables after the good batch: %q, want %s", got, fresh)
	}
	if out := nftList(t, l, l.ClientNS); !strings.Contains(out, "ip daddr 10.0.2.21 tcp dport 40081 drop comment") {
		t.Fatalf("the good batch's rule is not listed:\n%s", out)
	}
	if err := g.Remove(context.Background()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := tcpcraftTables(t, l.ClientNS); slices.Contains(got, fresh) {
		t.Fatalf("table left after Remove: %q", got)
	}
}
