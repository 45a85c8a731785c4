package lab_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestDefaultConfig(t *testing.T) {
	cfg := lab.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	l := lab.Lab{Config: cfg}
	if got, want := l.ClientIP(), netip.MustParseAddr("10.0.2.21"); got != want {
		t.Errorf("ClientIP = %v, want %v", got, want)
	}
	if got, want := l.ServerIP(), netip.MustParseAddr("10.0.2.20"); got != want {
		t.Errorf("ServerIP = %v, want %v", got, want)
	}
	if cfg.ClientNS != "tcpcraft-client" || cfg.ServerNS != "tcpcraft-server" || cfg.ClientIf != "tcv-client" || cfg.ServerIf != "tcv-server" {
		t.Errorf("default names = %+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*lab.Config)
		want   string
	}{
		{"empty namespace", func(c *lab.Config) { c.ClientNS = "" }, "client namespace: empty name"},
		{"slash in namespace", func(c *lab.Config) { c.ServerNS = "a/b" }, "not usable as a file name"},
		{"dot-dot namespace", func(c *lab.Config) { c.ServerNS = ".." }, "not usable as a file name"},
		{"space in namespace", func(c *lab.Config) { c.ServerNS = "a b" }, "white space"},
		{"same namespaces", func(c *lab.Config) { c.ServerNS = c.ClientNS }, "must differ"},
		{"long interface", func(c *lab.Config) { c.ClientIf = "sixteen-chars-xx" }, "at most 15"},
		{"colon in interface", func(c *lab.Config) { c.ServerIf = "a:b" }, "not a valid interface name"},
		{"same interfaces", func(c *lab.Config) { c.ServerIf = c.ClientIf }, "must differ"},
		{"missing address", func(c *lab.Config) { c.ClientAddr = netip.Prefix{} }, "client address"},
		{"IPv6 address", func(c *lab.Config) { c.ServerAddr = netip.MustParsePrefix("fd00::1/64") }, "IPv4"},
		{"no room", func(c *lab.Config) { c.ServerAddr = netip.MustParsePrefix("10.0.2.20/32") }, "no room"},
		{"same address", func(c *lab.Config) { c.ServerAddr = c.ClientAddr }, "both 10.0.2.21"},
		{"other subnet", func(c *lab.Config) { c.ServerAddr = netip.MustParsePrefix("10.0.3.20/24") }, "not in one subnet"},
		{"one IPv6 address", func(c *lab.Config) { c.ClientAddr6 = netip.Prefix{} }, "client IPv6 address"},
		{"IPv4 as IPv6", func(c *lab.Config) { c.ServerAddr6 = netip.MustParsePrefix("10.0.2.9/24") }, "want an IPv6 address"},
		{"mapped IPv6", func(c *lab.Config) { c.ServerAddr6 = netip.MustParsePrefix("::ffff:10.0.2.9/120") }, "want an IPv6 address"},
		{"link-local IPv6", func(c *lab.Config) { c.ServerAddr6 = netip.MustParsePrefix("fe80::20/64") }, "global or unique local"},
		{"IPv6 no room", func(c *lab.Config) { c.ServerAddr6 = netip.MustParsePrefix("fd00:2::20/127") }, "no room"},
		{"same IPv6", func(c *lab.Config) { c.ServerAddr6 = c.ClientAddr6 }, "both fd00:2::21"},
		{"IPv6 other subnet", func(c *lab.Config) { c.ServerAddr6 = netip.MustParsePrefix("fd00:3::20/64") }, "not in one subnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lab.DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			// Up must refuse it the same way, before touching anything.
			if _, upErr := lab.Up(context.Background(), cfg); upErr == nil || upErr.Error() != err.Error() {
				t.Errorf("Up() = %v, want %v", upErr, err)
			}
		})
	}
}

func TestSnapshotStateAndProblems(t *testing.T) {
	want := lab.DefaultConfig()
	side := func(ns, dev string, addr netip.Prefix, self, peer int) lab.Side {
		return lab.Side{
			Namespace: ns, NamespaceExists: true, Want: addr,
			Loopback:  lab.Link{Name: "lo", Exists: true, Up: true, Carrier: true},
			Interface: lab.Link{Name: dev, Exists: true, Kind: "veth", Up: true, Carrier: true, Index: self, PeerIndex: peer, Addrs: []netip.Prefix{addr}},
		}
	}
	complete := lab.Snapshot{
		Client: side(want.ClientNS, want.ClientIf, want.ClientAddr, 2, 3),
		Server: side(want.ServerNS, want.ServerIf, want.ServerAddr, 3, 2),
	}
	if got := complete.State(); got != lab.StateUp {
		t.Errorf("complete lab: State = %v (problems %q), want up", got, complete.Problems())
	}
	down := lab.Snapshot{Client: lab.Side{Namespace: want.ClientNS}, Server: lab.Side{Namespace: want.ServerNS}}
	if got := down.State(); got != lab.StateDown {
		t.Errorf("no namespaces: State = %v, want down", got)
	}
	if !strings.Contains(down.String(), "client namespace tcpcraft-client: absent") || !strings.Contains(down.String(), "lab: down") {
		t.Errorf("down String() = %q", down.String())
	}

	for _, tc := range []struct {
		name   string
		change func(*lab.Snapshot)
		want   string
	}{
		{"server namespace missing", func(s *lab.Snapshot) { s.Server = lab.Side{Namespace: want.ServerNS} }, "namespace tcpcraft-server does not exist"},
		{"loopback down", func(s *lab.Snapshot) { s.Client.Loopback.Up = false }, "lo in tcpcraft-client is down"},
		{"veth down", func(s *lab.Snapshot) { s.Server.Interface.Up = false }, "tcv-server in tcpcraft-server is down"},
		{"address missing", func(s *lab.Snapshot) { s.Client.Interface.Addrs = nil }, "lacks address 10.0.2.21/24"},
		{"not a veth", func(s *lab.Snapshot) { s.Client.Interface.Kind = "bridge" }, `"bridge" device`},
		{"veth missing", func(s *lab.Snapshot) { s.Client.Interface = lab.Link{Name: want.ClientIf} }, "tcv-client does not exist"},
		{"not peers", func(s *lab.Snapshot) { s.Server.Interface.PeerIndex = 9 }, "not the two ends of one veth pair"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := complete
			s.Client.Interface.Addrs = append([]netip.Prefix(nil), complete.Client.Interface.Addrs...)
			tc.change(&s)
			if got := s.State(); got != lab.StatePartial {
				t.Errorf("State = %v, want partial", got)
			}
			if p := strings.Join(s.Problems(), "; "); !strings.Contains(p, tc.want) {
				t.Errorf("Problems = %q, want one containing %q", p, tc.want)
			}
			if !strings.Contains(s.String(), "problem: ") {
				t.Errorf("String() does not list the problem:\n%s", s)
			}
		})
	}
}

// TestUpDownStatus walks a lab through its life: absent, up, up again
// (nothing to do), broken by hand and repaired, down, down again.
func TestUpDownStatus(t *testing.T) {
	cfg := labtest.Config(t)
	ctx := testContext(t)

	st, err := lab.Status(ctx, cfg)
	if err != nil || st.State() != lab.StateDown {
		t.Fatalf("before Up: Status = %v, %v; want down", st.State(), err)
	}
	if err := lab.Down(ctx, cfg); err != nil {
		t.Fatalf("Down of an absent lab: %v", err)
	}

	l, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	if len(l.Changes) == 0 || !strings.Contains(strings.Join(l.Changes, "\n"), "created veth pair") {
		t.Errorf("first Up reported changes %q, want the veth pair among them", l.Changes)
	}
	st, err = lab.Status(ctx, cfg)
	if err != nil || st.State() != lab.StateUp {
		t.Fatalf("after Up: Status = %v, %v\n%s", st.State(), err, st)
	}
	if !st.Client.Interface.Carrier || !st.Server.Interface.Carrier {
		t.Errorf("veth has no carrier after Up:\n%s", st)
	}

	again, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if len(again.Changes) != 0 {
		t.Errorf("second Up changed %q, want nothing", again.Changes)
	}
	st2, err := lab.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Client.Interface.Index != st.Client.Interface.Index || len(st2.Client.Interface.Addrs) != len(st.Client.Interface.Addrs) {
		t.Errorf("second Up rebuilt or duplicated something:\nbefore\n%s\nafter\n%s", st, st2)
	}

	// Break it by hand; Up must repair exactly that.
	labtest.Run(t, l, cfg.ServerNS, "ip", "addr", "del", cfg.ServerAddr.String(), "dev", cfg.ServerIf)
	labtest.Run(t, l, cfg.ClientNS, "ip", "link", "set", "dev", cfg.ClientIf, "down")
	if st, err := lab.Status(ctx, cfg); err != nil || st.State() != lab.StatePartial {
		t.Fatalf("after breaking: State = %v, %v; want partial", st.State(), err)
	}
	fixed, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("Up on a broken lab: %v", err)
	}
	changes := strings.Join(fixed.Changes, "\n")
	for _, want := range []string{"added " + cfg.ServerAddr.String(), "set " + cfg.ClientIf + " up"} {
		if !strings.Contains(changes, want) {
			t.Errorf("repair changes %q lack %q", fixed.Changes, want)
		}
	}
	if strings.Contains(changes, "created") {
		t.Errorf("repair recreated something: %q", fixed.Changes)
	}

	// Removing one namespace takes the whole veth pair with it; Up rebuilds.
	labtest.Run(t, l, cfg.ClientNS, "true") // still usable before
	if out, err := exec.Command("ip", "netns", "delete", cfg.ServerNS).CombinedOutput(); err != nil {
		t.Fatalf("ip netns delete: %v: %s", err, out)
	}
	if _, err := lab.Up(ctx, cfg); err != nil {
		t.Fatalf("Up with one namespace gone: %v", err)
	}
	if st, err := lab.Status(ctx, cfg); err != nil || st.State() != lab.StateUp {
		t.Fatalf("after rebuilding: State = %v, %v", st.State(), err)
	}

	if err := lab.Down(ctx, cfg); err != nil {
		t.Fatalf("Down: %v", err)
	}
	labtest.AssertNoLeftovers(t, cfg)
	if err := lab.Down(ctx, cfg); err != nil {
		t.Fatalf("second Down: %v", err)
	}
}

// TestUpRollsBackOnFailure makes Up fail after it created the client
// namespace and checks that exactly that namespace is removed again, while
// the server namespace, which existed before, is left as it was.
func TestUpRollsBackOnFailure(t *testing.T) {
	cfg := labtest.Config(t)
	ctx := testContext(t)
	for _, args := range [][]string{
		{"netns", "add", cfg.ServerNS},
		// A device of another kind under the veth's name: Up must refuse it.
		{"-n", cfg.ServerNS, "link", "add", "name", cfg.ServerIf, "type", "bridge"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			labtest.Need(t, "ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	_, err := lab.Up(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "not veth") {
		t.Fatalf("Up = %v, want an error about the non-veth device", err)
	}
	st, err := lab.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Client.NamespaceExists {
		t.Errorf("failed Up left the client namespace it created:\n%s", st)
	}
	if !st.Server.NamespaceExists || !st.Server.Interface.Exists || st.Server.Interface.Kind != "bridge" {
		t.Errorf("failed Up changed what existed before it:\n%s", st)
	}
}

func TestListenDialAcrossTheLab(t *testing.T) {
	l := labtest.New(t)
	ln, err := l.Listen(l.ServerNS, "tcp", netip.AddrPortFrom(l.ServerIP(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
			close(accepted)
			return
		}
		accepted <- c
	}()

	conn, err := l.Dial(testContext(t), l.ClientNS, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	server, ok := <-accepted
	if !ok {
		t.FailNow()
	}
	defer server.Close()

	if got := server.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); got != l.ClientIP() {
		t.Errorf("server sees the client as %v, want %v", got, l.ClientIP())
	}
	msg := []byte("hello across the veth")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("server read %q, want %q", got, msg)
	}
}

func TestDoRestoresTheThreadsNamespace(t *testing.T) {
	l := labtest.New(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	before := threadNetns(t)
	var inside string
	if err := lab.Do(l.ClientNS, func() error { inside = threadNetns(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside == before {
		t.Errorf("inside Do the thread is still in %s", before)
	}
	if after := threadNetns(t); after != before {
		t.Errorf("after Do the thread is in %s, want %s", after, before)
	}

	sentinel := errors.New("from fn")
	if err := lab.Do(l.ServerNS, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := lab.Do("tcpcraft-no-such-namespace", func() error { t.Error("fn ran"); return nil }); err == nil {
		t.Error("Do into a missing namespace succeeded")
	}
	if after := threadNetns(t); after != before {
		t.Errorf("after failed Do calls the thread is in %s, want %s", after, before)
	}
}

func threadNetns(t *testing.T) string {
	t.Helper()
	s, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUpWithoutPrivileges runs Up in a copy of this test binary as user
// nobody and checks it refuses with the privileges message and creates
// nothing.
func TestUpWithoutPrivileges(t *testing.T) {
	if os.Getenv("LAB_TEST_UNPRIVILEGED") == "1" {
		cfg := lab.DefaultConfig()
		cfg.ClientNS, cfg.ServerNS = os.Getenv("LAB_TEST_CLIENT_NS"), os.Getenv("LAB_TEST_SERVER_NS")
		_, err := lab.Up(context.Background(), cfg)
		if !errors.Is(err, lab.ErrNeedsPrivileges) || !strings.Contains(err.Error(), "needs root or CAP_NET_ADMIN") {
			t.Fatalf("Up as nobody = %v, want ErrNeedsPrivileges", err)
		}
		return
	}
	cfg := labtest.Config(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is private to root; nobody needs to reach the copy.
	dir, err := os.MkdirTemp("", "lab-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "lab.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(copyPath, "-test.run=^TestUpWithoutPrivileges$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LAB_TEST_UNPRIVILEGED=1", "LAB_TEST_CLIENT_NS="+cfg.ClientNS, "LAB_TEST_SERVER_NS="+cfg.ServerNS)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged run failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestUpWithoutPrivileges") {
		t.Fatalf("unprivileged run did not run the check:\n%s", out)
	}
	labtest.AssertNoLeftovers(t, cfg)
}
