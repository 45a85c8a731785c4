package cmd

// A three-namespace routed lab for the prober's tests of traceroute and
// ICMP: client — router — server, the router forwarding IPv4 and IPv6, so
// that a TTL of 1 expires at the router and the router's firewall can
// answer for the server. Built by the test with unique names and removed
// at its end, whatever happens.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// routedLab is an e2eLab (client and server namespaces) with a router
// between them.
type routedLab struct {
	*e2eLab
	RouterNS string
	// Router addresses on the client's and the server's side.
	Router4C, Router4S netip.Addr
	Router6C, Router6S netip.Addr
	Server6            netip.Addr
	Client6            netip.Addr
}

// newRoutedLab builds client (10.0.2.21, fd00:2::21) — router (10.0.2.1,
// fd00:2::1 | 10.9.2.1, fd00:9:2::1) — server (10.9.2.20, fd00:9:2::20).
func newRoutedLab(t *testing.T) *routedLab {
	t.Helper()
	return newRoutedLabMTU(t, 0)
}

// newRoutedLabMTU is newRoutedLab with the MTU of the router's far link
// (its end towards the server) set to farMTU when it is not 0: a path
// narrower than the links at either end, where path MTU discovery is
// needed. The server's own end keeps 1500, so its MSS does not say so.
func newRoutedLabMTU(t *testing.T, farMTU int) *routedLab {
	t.Helper()
	labtest.RequireRoot(t)
	labtest.RequireTools(t, "ip", "iptables", "ip6tables", "nft", "sysctl")
	bin := tcpcraftBinary(t)
	labtest.SweepStale(t)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b[:])
	base := fmt.Sprintf("%s-%d-%s", labtest.Prefix, os.Getpid(), id)
	cfg := lab.DefaultConfig()
	cfg.ClientNS, cfg.ServerNS = base+"-client", base+"-server"
	cfg.ClientIf, cfg.ServerIf = labtest.Prefix+id+"c", labtest.Prefix+id+"s"
	cfg.ClientAddr = netip.MustParsePrefix("10.0.2.21/24")
	cfg.ServerAddr = netip.MustParsePrefix("10.9.2.20/24")
	cfg.ClientAddr6 = netip.MustParsePrefix("fd00:2::21/64")
	cfg.ServerAddr6 = netip.MustParsePrefix("fd00:9:2::20/64")
	r := &routedLab{
		e2eLab:   &e2eLab{Lab: &lab.Lab{Config: cfg}, bin: bin},
		RouterNS: base + "-router",
		Router4C: netip.MustParseAddr("10.0.2.1"), Router4S: netip.MustParseAddr("10.9.2.1"),
		Router6C: netip.MustParseAddr("fd00:2::1"), Router6S: netip.MustParseAddr("fd00:9:2::1"),
		Server6: netip.MustParseAddr("fd00:9:2::20"), Client6: netip.MustParseAddr("fd00:2::21"),
	}
	rc, rs := labtest.Prefix+id+"rc", labtest.Prefix+id+"rs" // the router's ends
	namespaces := []string{cfg.ClientNS, r.RouterNS, cfg.ServerNS}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, ns := range namespaces {
			if out, err := exec.CommandContext(ctx, "ip", "netns", "delete", ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
				t.Errorf("removing namespace %s: %v: %s", ns, err, out)
			}
		}
		for _, dev := range []string{cfg.ClientIf, cfg.ServerIf, rc, rs} {
			if exec.Command("ip", "link", "show", dev).Run() == nil {
				t.Errorf("interface %s left in the root namespace", dev)
			}
		}
	})
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	in := func(ns string, args ...string) {
		t.Helper()
		run(append([]string{"ip", "netns", "exec", ns}, args...)...)
	}
	for _, ns := range namespaces {
		run("ip", "netns", "add", ns)
		in(ns, "ip", "link", "set", "lo", "up")
	}
	// Each veth pair is made inside its namespaces: the root namespace
	// never holds an end.
	run("ip", "-n", cfg.ClientNS, "link", "add", cfg.ClientIf, "type", "veth", "peer", "name", rc, "netns", r.RouterNS)
	run("ip", "-n", r.RouterNS, "link", "add", rs, "type", "veth", "peer", "name", cfg.ServerIf, "netns", cfg.ServerNS)
	for _, a := range []struct{ ns, dev, addr string }{
		{cfg.ClientNS, cfg.ClientIf, "10.0.2.21/24"}, {cfg.ClientNS, cfg.ClientIf, "fd00:2::21/64"},
		{r.RouterNS, rc, "10.0.2.1/24"}, {r.RouterNS, rc, "fd00:2::1/64"},
		{r.RouterNS, rs, "10.9.2.1/24"}, {r.RouterNS, rs, "fd00:9:2::1/64"},
		{cfg.ServerNS, cfg.ServerIf, "10.9.2.20/24"}, {cfg.ServerNS, cfg.ServerIf, "fd00:9:2::20/64"},
	} {
		args := []string{"ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev}
		if strings.Contains(a.addr, ":") {
			args = append(args, "nodad")
		}
		run(args...)
	}
	for _, l := range []struct{ ns, dev string }{{cfg.ClientNS, cfg.ClientIf}, {r.RouterNS, rc}, {r.RouterNS, rs}, {cfg.ServerNS, cfg.ServerIf}} {
		run("ip", "-n", l.ns, "link", "set", l.dev, "up")
	}
	if farMTU > 0 {
		run("ip", "-n", r.RouterNS, "link", "set", "dev", rs, "mtu", fmt.Sprint(farMTU))
	}
	in(r.RouterNS, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	run("ip", "-n", cfg.ClientNS, "route", "add", "default", "via", "10.0.2.1")
	run("ip", "-n", cfg.ClientNS, "-6", "route", "add", "default", "via", "fd00:2::1")
	run("ip", "-n", cfg.ServerNS, "route", "add", "default", "via", "10.9.2.1")
	run("ip", "-n", cfg.ServerNS, "-6", "route", "add", "default", "via", "fd00:9:2::1")
	// The client's guard check of newE2ELab, for this lab too.
	t.Cleanup(func() {
		if rules := guardRules(t, r.e2eLab, cfg.ClientNS); len(rules) > 0 {
			t.Errorf("firewall rules of tcpcraft left in %s:\n%s", cfg.ClientNS, strings.Join(rules, "\n"))
		}
	})
	return r
}
