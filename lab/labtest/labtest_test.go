package labtest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// helperEnv makes this test binary act as a failing test (see
// TestHelperFailingLab) instead of running the suite.
const helperEnv = "LABTEST_HELPER_MODE"

func TestTwoLabsAtOnce(t *testing.T) {
	a, b := labtest.New(t), labtest.New(t)
	for _, pair := range [][2]string{{a.ClientNS, b.ClientNS}, {a.ServerNS, b.ServerNS}, {a.ClientIf, b.ClientIf}, {a.ServerIf, b.ServerIf}} {
		if pair[0] == pair[1] {
			t.Errorf("two labs share the name %q", pair[0])
		}
	}
	for _, l := range []*lab.Lab{a, b} {
		if l.ClientIP() != netip.MustParseAddr("10.0.2.21") || l.ServerIP() != netip.MustParseAddr("10.0.2.20") {
			t.Errorf("lab %s has addresses %v/%v, want 10.0.2.21/10.0.2.20", l.ClientNS, l.ClientIP(), l.ServerIP())
		}
		if len(l.ClientIf) > 15 || len(l.ServerIf) > 15 {
			t.Errorf("veth names %q/%q exceed IFNAMSIZ", l.ClientIf, l.ServerIf)
		}
	}
	// Both labs use the same addresses at the same time; each connection
	// must stay within its own lab.
	for i, l := range []*lab.Lab{a, b} {
		ln := labtest.Listen(t, l, l.ServerNS, "10.0.2.20:7000")
		greeting := fmt.Sprintf("lab %d", i)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.WriteString(c, greeting)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, err := l.Dial(ctx, l.ClientNS, "tcp", "10.0.2.20:7000")
		cancel()
		if err != nil {
			t.Fatalf("lab %d: %v", i, err)
		}
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || string(got) != greeting {
			t.Errorf("lab %d: read %q, %v; want %q", i, got, err, greeting)
		}
	}
	// Programs run by Command live in the lab too: socat in the client
	// namespace reads from a listener in the server namespace.
	labtest.RequireTools(t, "socat")
	ln := labtest.Listen(t, a, a.ServerNS, "10.0.2.20:7001")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "from the server namespace")
	}()
	if got := labtest.Run(t, a, a.ClientNS, "socat", "-u", "TCP:10.0.2.20:7001", "STDOUT"); got != "from the server namespace" {
		t.Errorf("socat read %q", got)
	}
}

func TestUpTwiceIsIdempotent(t *testing.T) {
	l := labtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	again, err := lab.Up(ctx, l.Config)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changes) != 0 {
		t.Errorf("Up on a complete lab changed %q", again.Changes)
	}
}

func TestRemoveTakesEverything(t *testing.T) {
	l := labtest.New(t)
	labtest.Remove(t, l.Config)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := lab.Status(ctx, l.Config)
	if err != nil {
		t.Fatal(err)
	}
	if st.State() != lab.StateDown {
		t.Errorf("after Remove:\n%s", st)
	}
}

// TestHelperFailingLab is not a test on its own: run by
// TestCleanupAfterFailure in a child process, it builds a lab, prints its
// names and then fails or panics.
func TestHelperFailingLab(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // only meaningful as TestCleanupAfterFailure's child
	}
	l := labtest.New(t)
	fmt.Printf("LAB %s %s\n", l.ClientNS, l.ServerNS)
	switch mode {
	case "fatal":
		t.Fatal("failing on purpose")
	case "panic":
		panic("panicking on purpose")
	}
}

func TestCleanupAfterFailure(t *testing.T) {
	labtest.RequireRoot(t)
	for _, mode := range []string{"fatal", "panic"} {
		t.Run(mode, func(t *testing.T) {
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, "-test.run=^TestHelperFailingLab$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("helper passed, want it to fail:\n%s", out)
			}
			var names []string
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(sc.Text(), "LAB "); ok {
					names = strings.Fields(rest)
				}
			}
			if len(names) != 2 {
				t.Fatalf("helper did not report its lab:\n%s", out)
			}
			cfg := lab.DefaultConfig()
			cfg.ClientNS, cfg.ServerNS = names[0], names[1]
			t.Cleanup(func() { labtest.Remove(t, cfg) }) // in case the check below fails
			for _, ns := range names {
				if _, err := os.Stat("/var/run/netns/" + ns); err == nil {
					t.Errorf("namespace %s survived the helper's %s", ns, mode)
				}
			}
		})
	}
}

// TestSweepStale plants a namespace named as if a dead test process had
// left it, and one of a living process, and checks only the first goes.
func TestSweepStale(t *testing.T) {
	labtest.RequireRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s-%d-abcdef-client", labtest.Prefix, dead.Process.Pid)
	alive := fmt.Sprintf("%s-%d-abcdef-server", labtest.Prefix, os.Getpid())
	for _, ns := range []string{stale, alive} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	}
	labtest.SweepStale(t)
	if _, err := os.Stat("/var/run/netns/" + stale); err == nil {
		t.Errorf("stale namespace %s of dead process %s was not removed", stale, strconv.Itoa(dead.Process.Pid))
	}
	if _, err := os.Stat("/var/run/netns/" + alive); err != nil {
		t.Errorf("namespace %s of this living process was removed", alive)
	}
}

// fakeTB records how Need ended a test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.skip = fmt.Sprintf(format, args...) }

func TestNeedFailsUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	var f fakeTB
	labtest.Need(&f, "tool %s", "x")
	if f.skip != "" || !strings.Contains(f.fatal, "tool x") {
		t.Errorf("under CI=true: fatal %q, skip %q; want fatal", f.fatal, f.skip)
	}

	t.Setenv("CI", "")
	f = fakeTB{}
	labtest.Need(&f, "tool %s", "y")
	if f.fatal != "" || !strings.Contains(f.skip, "tool y") {
		t.Errorf("outside CI: fatal %q, skip %q; want skip", f.fatal, f.skip)
	}
}
