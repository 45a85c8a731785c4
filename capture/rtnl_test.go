package capture

import (
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzRtnlAnswer: the parsers of the kernel's route netlink answers
// (parseRoute, parseLink, parseAddr, metricsMTU) take any datagram without
// panicking and return only what they say they return. The checked-in
// corpus holds real answers of this kernel: routes (on-link, with a locked
// MTU, local, IPv6), links by index and by name, a missing link's error,
// an address dump.
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
			a, ok, err := parseAddr(m)
			if ok && (err != nil || m.Header.Type != unix.RTM_NEWADDR || !a.addr.IsValid() || a.addr.Is4In6()) {
				t.Fatalf("parseAddr: %+v, %v from a message of type %d", a, err, m.Header.Type)
			}
		}
	})
}
