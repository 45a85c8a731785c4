package guard

// End-to-end tests of the port hold: held in a lab namespace, judged by
// what the kernel there does with segments from the other namespace
// (dials, and bare ACKs sent by hping3), by what `ss` lists, and by the
// absence of any nf_tables table.

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// hold holds local inside ns and lets it go when the test ends.
func hold(t *testing.T, ns string, local netip.AddrPort) *PortHold {
	t.Helper()
	var h *PortHold
	inNS(t, ns, func() (err error) {
		h, err = HoldPort(local)
		return err
	})
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("closing the hold of %v: %v", local, err)
		}
	})
	return h
}

// listeners is `ss -Hltn` in ns, one socket a line, spaces squeezed.
func listeners(t *testing.T, l *lab.Lab, ns string) string {
	t.Helper()
	var lines []string
	for _, line := range strings.Split(labtest.Run(t, l, ns, "ss", "-Hltn"), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			lines = append(lines, strings.Join(f, " "))
		}
	}
	return strings.Join(lines, "\n")
}

// acksAnswered sends three bare ACKs to addr from the server namespace
// (hping3) and returns how many the kernel answered: with RST, where no
// socket of its own, or only a listener without the hold's filter, takes
// them (a listener answers an ACK with RST). That is what a peer's SYN-ACK
// and data to tcpcraft's connection meet.
func acksAnswered(t *testing.T, l *lab.Lab, addr netip.AddrPort) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-A", "-c", "3", "-i", "u20000", "-p", strconv.Itoa(int(addr.Port())), addr.Addr().String()}
	if addr.Addr().Is6() {
		args = append([]string{"-6"}, args...)
	}
	out, _ := l.Command(ctx, l.ServerNS, "hping3", args...).CombinedOutput() // exits 1 when nothing came back
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`).FindStringSubmatch(string(out))
	if m == nil || m[1] != "3" {
		t.Fatalf("hping3 %s:\n%s", strings.Join(args, " "), out)
	}
	n, _ := strconv.Atoi(m[2])
	return n
}

func TestHoldPortIPv4(t *testing.T) {
	l := newLab(t)
	labtest.RequireTools(t, "hping3", "ss")
	held := netip.AddrPortFrom(l.ClientIP(), 40030)
	target, other := held.String(), netip.AddrPortFrom(l.ClientIP(), 40031).String()
	target6 := netip.AddrPortFrom(client6, 40030).String()
	expectDials(t, l, "before the hold", map[string]string{target: "refused", other: "refused", target6: "refused"})
	if n := acksAnswered(t, l, held); n != 3 {
		t.Fatalf("before the hold the kernel answered %d of 3 ACKs, want all", n)
	}

	h := hold(t, l.ClientNS, netip.AddrPortFrom(netip.AddrFrom16(l.ClientIP().As16()), 40030)) // IPv4-mapped: held as IPv4
	if h.Local() != held {
		t.Errorf("Local() = %v, want %v", h.Local(), held)
	}
	if want := "port 10.0.2.21:40030 held by a listening socket that drops what it is given"; h.String() != want {
		t.Errorf("String() = %q, want %q", h.String(), want)
	}
	if ss := listeners(t, l, l.ClientNS); !strings.Contains(ss, "LISTEN 0 1 10.0.2.21:40030 ") {
		t.Errorf("ss does not list the hold:\n%s", ss)
	}
	if got := tcpcraftTables(t, l.ClientNS); len(got) > 0 {
		t.Errorf("a hold made tables: %q", got)
	}
	// Exactly that address and port: another port, and the same port over
	// IPv6, still draw the kernel's RST; the held one draws nothing, a SYN
	// (no SYN-ACK either) or an ACK.
	expectDials(t, l, "with the hold", map[string]string{target: "timeout", other: "refused", target6: "refused"})
	if n := acksAnswered(t, l, held); n != 0 {
		t.Errorf("with the hold the kernel answered %d of 3 ACKs", n)
	}

	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	expectDials(t, l, "after Close", map[string]string{target: "refused"})
	if ss := listeners(t, l, l.ClientNS); strings.Contains(ss, ":40030 ") {
		t.Errorf("still listed after Close:\n%s", ss)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestHoldPortIPv6(t *testing.T) {
	l := newLab(t)
	held := netip.AddrPortFrom(client6, 40032)
	target, target4 := held.String(), netip.AddrPortFrom(l.ClientIP(), 40032).String()
	hold(t, l.ClientNS, held)
	// (hping3 speaks no IPv6: the connections over IPv6 of cmd's tests
	// show that SYN-ACKs and data meet the same filter.)
	expectDials(t, l, "with the IPv6 hold", map[string]string{target: "timeout", target4: "refused"})
}

// The unspecified addresses hold a port on every address of one family,
// and the zero Addr on every address of both, as Install's guards do.
func TestHoldPortAllAddresses(t *testing.T) {
	l := newLab(t)
	v4, v6 := netip.AddrPortFrom(l.ClientIP(), 40034).String(), netip.AddrPortFrom(client6, 40034).String()
	for _, c := range []struct {
		local netip.AddrPort
		want  map[string]string
	}{
		{netip.MustParseAddrPort("0.0.0.0:40034"), map[string]string{v4: "timeout", v6: "refused"}},
		{netip.MustParseAddrPort("[::]:40034"), map[string]string{v4: "refused", v6: "timeout"}},
		{netip.AddrPortFrom(netip.Addr{}, 40034), map[string]string{v4: "timeout", v6: "timeout"}},
	} {
		h := hold(t, l.ClientNS, c.local)
		expectDials(t, l, "hold "+h.String(), c.want)
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	expectDials(t, l, "after the holds", map[string]string{v4: "refused", v6: "refused"})
}

// A port a kernel socket has cannot be held, and the failure leaves no
// socket behind; a server's connection in TIME-WAIT does not keep it.
func TestHoldPortTakenAndTimeWait(t *testing.T) {
	l := newLab(t)
	busy := netip.AddrPortFrom(l.ClientIP(), 40036)
	labtest.Listen(t, l, l.ClientNS, busy.String())
	before := openFDs(t)
	err := lab.Do(l.ClientNS, func() error {
		h, err := HoldPort(busy)
		if err == nil {
			h.Close()
		}
		return err
	})
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "holding port 10.0.2.21:40036: bind: ") {
		t.Errorf("holding a kernel listener's port: %v, want EADDRINUSE", err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the failed hold, %d before", after, before)
	}

	// A connection that a kernel server at 10.0.2.21:40037 accepted and
	// closed first: its end stays in TIME-WAIT after the server is gone.
	// (Go's listeners set SO_REUSEADDR, as servers do, and the
	// connections they accept inherit it: the kernel lets a port be bound
	// beside TIME-WAIT only when both sockets allow it.)
	waiting := netip.AddrPortFrom(l.ClientIP(), 40037)
	server := labtest.Listen(t, l, l.ClientNS, waiting.String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := l.Dial(ctx, l.ServerNS, "tcp", waiting.String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := server.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, _ = client.Read(make([]byte, 1)) // the server's FIN
	client.Close()
	server.Close()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(labtest.Run(t, l, l.ClientNS, "ss", "-Htan", "state", "time-wait"), "10.0.2.21:40037"); {
		if time.Now().After(deadline) {
			t.Fatal("the server's end of the connection is not in TIME-WAIT")
		}
		time.Sleep(20 * time.Millisecond)
	}
	hold(t, l.ClientNS, waiting)
	expectDials(t, l, "held beside TIME-WAIT", map[string]string{waiting.String(): "timeout"})
}

// Input that cannot be held is refused before any socket is made.
func TestHoldPortRefuses(t *testing.T) {
	before := openFDs(t)
	for _, c := range []struct {
		local netip.AddrPort
		want  string
	}{
		{netip.MustParseAddrPort("10.0.2.21:0"), "holding port 10.0.2.21:0: port 0"},
		{netip.AddrPortFrom(netip.MustParseAddr("fe80::1%eth0"), 80), "holding port [fe80::1%eth0]:80: an address with a zone cannot be held"},
	} {
		if h, err := HoldPort(c.local); err == nil || err.Error() != c.want {
			h.Close()
			t.Errorf("HoldPort(%v) = %v, want %q", c.local, err, c.want)
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open, %d before", after, before)
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
