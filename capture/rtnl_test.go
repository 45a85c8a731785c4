package capture

import (
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// FuzzRtnlAnswer: the parsers of the kernel's route netlink answers
// (parseRoute, parseLink, parseAddr, parseNeighbour, metricsMTU) take any
// datagram without panicking and return only what they say they return.
// The checked-in corpus holds real answers of this kernel: routes
// (on-link, with a locked MTU, local, IPv6), links by index and by name, a
// missing link's error, an address dump, neighbour entries (reachable
// IPv4 and IPv6, NOARP).
func FuzzRtnlAnswer(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = metricsMTU(data)
		msgs, err := syscall.ParseNetlinkMessage(data)
		if err != nil {
			return
		}
		for i := range msgs {
			m := &msgs[i]
			if _, err := parseRoute(m); err == nil && m.Header.Type != unix.RTM_NEWROUTE {
				t.Fatalf("parseRoute accepted a message of type %d", m.Header.Type)
			}
			if l, err := parseLink(m); err == nil {
				if m.Header.Type != unix.RTM_NEWLINK {
					t.Fatalf("parseLink accepted a message of type %d", m.Header.Type)
				}
				if strings.ContainsRune(l.name, 0) {
					t.Fatalf("parseLink: name %q holds a NUL", l.name)
				}
			}
			if mac, err := parseNeighbour(m); err == nil && mac != nil && (m.Header.Type != unix.RTM_NEWNEIGH || len(mac) != 6) {
				t.Fatalf("parseNeighbour: %x from a message of type %d", mac, m.Header.Type)
			}
			a, ok, err := parseAddr(m)
			if ok && (err != nil || m.Header.Type != unix.RTM_NEWADDR || !a.addr.IsValid() || a.addr.Is4In6()) {
				t.Fatalf("parseAddr: %+v, %v from a message of type %d", a, err, m.Header.Type)
			}
		}
	})
}

// TestGetNeighbour: getNeighbour reads one entry as `ip neigh get` shows
// it (the server's veth address once resolved, for IPv4 and IPv6), nil
// for an address with no entry, nil for an entry in a state whose address
// may not be used (NOARP), and a permanent one's address.
func TestGetNeighbour(t *testing.T) {
	l := gsoLab(t)
	serverMAC := linkAddress(t, l, l.ServerNS, l.ServerIf)
	resolveNeighbour(t, l, l.ServerIP())
	resolveNeighbour(t, l, server6)
	labtest.Run(t, l, l.ClientNS, "ip", "neigh", "add", "10.0.2.97", "lladdr", "02:00:00:00:00:97", "dev", l.ClientIf, "nud", "noarp")
	labtest.Run(t, l, l.ClientNS, "ip", "neigh", "add", "10.0.2.96", "lladdr", "02:00:00:00:00:96", "dev", l.ClientIf, "nud", "permanent")
	var ifindex int
	inNS(t, l.ClientNS, func() error {
		ifi, err := net.InterfaceByName(l.ClientIf)
		if err == nil {
			ifindex = ifi.Index
		}
		return err
	})
	for _, c := range []struct {
		addr netip.Addr
		want string
	}{
		{l.ServerIP(), serverMAC},
		{server6, serverMAC},
		{netip.MustParseAddr("10.0.2.99"), ""},
		{netip.MustParseAddr("fd00:2::99"), ""},
		{netip.MustParseAddr("10.0.2.97"), ""},
		{netip.MustParseAddr("10.0.2.96"), "02:00:00:00:00:96"},
	} {
		var got []byte
		inNS(t, l.ClientNS, func() error {
			nl, err := openRtnl()
			if err != nil {
				return err
			}
			defer nl.close()
			got, err = nl.getNeighbour(ifindex, c.addr)
			return err
		})
		if s := net.HardwareAddr(got).String(); s != c.want {
			t.Errorf("getNeighbour(%v) = %q, want %q", c.addr, s, c.want)
		}
	}
}

// linkAddress is the link-layer address of dev in namespace ns, as ip
// prints it.
func linkAddress(t *testing.T, l *lab.Lab, ns, dev string) string {
	t.Helper()
	f := strings.Fields(labtest.Run(t, l, ns, "ip", "-o", "link", "show", dev))
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no link/ether address for %s in %v", dev, f)
	return ""
}
