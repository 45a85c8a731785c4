package capture

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/tcpcraft/tcpcraft/craft"
)

// scopeVM assembles ScopeProgram(s) into a VM.
func scopeVM(t *testing.T, s Scope) *bpf.VM {
	t.Helper()
	prog, err := ScopeProgram(s)
	if err != nil {
		t.Fatalf("ScopeProgram(%v): %v", s, err)
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatalf("assembling: %v", err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return vm
}

// tcpPacket builds a TCP segment src > dst (family by the addresses),
// with IPv4 options of optLen bytes.
func tcpPacket(t *testing.T, src, dst netip.AddrPort, optLen int) []byte {
	t.Helper()
	seg := craft.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: 1000, Flags: craft.FlagSYN, Window: 1000}
	var b []byte
	var err error
	if src.Addr().Is4() {
		ip := craft.IPv4{TTL: 64, ID: 1, Src: src.Addr(), Dst: dst.Addr(), Options: make([]byte, optLen)}
		for i := range ip.Options {
			ip.Options[i] = 1 // NOP
		}
		b, err = craft.BuildIPv4TCP(ip, &seg)
	} else {
		b, err = craft.BuildIPv6TCP(craft.IPv6{HopLimit: 64, Src: src.Addr(), Dst: dst.Addr()}, &seg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// icmpError builds an ICMP(v6) error of typ from reporter to to, quoting
// quote (cut to n bytes; 0: all).
func icmpError(t *testing.T, typ uint8, reporter, to netip.Addr, quote []byte, n int) []byte {
	t.Helper()
	if n > 0 && n < len(quote) {
		quote = quote[:n]
	}
	e := craft.ICMPError{Type: typ, Quote: craft.Quote{Bytes: quote}}
	if reporter.Is4() {
		e.IPVersion, e.IPv4 = 4, craft.IPv4{TTL: 64, ID: 7, Src: reporter, Dst: to}
	} else {
		e.IPVersion, e.IPv6 = 6, craft.IPv6{HopLimit: 64, Src: reporter, Dst: to}
	}
	b, err := craft.AppendICMPError(nil, &e, craft.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The scope admits the targets' TCP answers to our addresses and ports,
// and ICMP errors quoting our probes, for both families; nothing else:
// another port, another address, a quote from someone else or from
// another port, an ICMP type that is no error, a non-first fragment.
func TestScopeProgram(t *testing.T) {
	me4, me6 := netip.MustParseAddr("10.0.2.21"), netip.MustParseAddr("fd00:2::21")
	other4, other6 := netip.MustParseAddr("10.0.2.99"), netip.MustParseAddr("fd00:2::99")
	peer4, peer6 := netip.MustParseAddr("10.0.2.20"), netip.MustParseAddr("fd00:2::20")
	router4, router6 := netip.MustParseAddr("10.0.9.1"), netip.MustParseAddr("fd00:9::1")
	vm := scopeVM(t, Scope{Local: []netip.Addr{me4, me6}, PortLow: 40000, PortHigh: 40063})
	ap := netip.AddrPortFrom

	probe4 := tcpPacket(t, ap(me4, 40010), ap(peer4, 80), 0)
	probe4opts := tcpPacket(t, ap(me4, 40063), ap(peer4, 80), 8) // the quote's TCP header after IP options
	probe6 := tcpPacket(t, ap(me6, 40000), ap(peer6, 80), 0)
	stranger4 := tcpPacket(t, ap(other4, 40010), ap(peer4, 80), 0)
	outside4 := tcpPacket(t, ap(me4, 40064), ap(peer4, 80), 0)
	outside6 := tcpPacket(t, ap(me6, 39999), ap(peer6, 80), 0)

	fragment := tcpPacket(t, ap(peer4, 80), ap(me4, 40010), 0)
	fragment[6] = 0x00
	fragment[7] = 0x03 // offset 24: no TCP header here
	echo := icmpError(t, craft.ICMPUnreachable, peer4, me4, probe4, 0)
	echo[20] = 8 // an echo request, not an error

	cases := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"IPv4 reply to the lowest port", tcpPacket(t, ap(peer4, 80), ap(me4, 40000), 0), true},
		{"IPv4 reply to the highest port", tcpPacket(t, ap(peer4, 81), ap(me4, 40063), 0), true},
		{"IPv4 reply with IP options", tcpPacket(t, ap(peer4, 81), ap(me4, 40001), 12), true},
		{"IPv4 below the block", tcpPacket(t, ap(peer4, 80), ap(me4, 39999), 0), false},
		{"IPv4 above the block", tcpPacket(t, ap(peer4, 80), ap(me4, 40064), 0), false},
		{"IPv4 to another address", tcpPacket(t, ap(peer4, 80), ap(other4, 40000), 0), false},
		{"IPv4 non-first fragment", fragment, false},
		{"IPv6 reply", tcpPacket(t, ap(peer6, 443), ap(me6, 40050), 0), true},
		{"IPv6 outside the block", tcpPacket(t, ap(peer6, 443), ap(me6, 40064), 0), false},
		{"IPv6 to another address", tcpPacket(t, ap(peer6, 443), ap(other6, 40050), 0), false},

		{"port unreachable quoting a probe", icmpError(t, craft.ICMPUnreachable, peer4, me4, probe4, 28), true},
		{"time exceeded from a router", icmpError(t, craft.ICMPTimeExceeded, router4, me4, probe4, 0), true},
		{"time exceeded quoting another port", icmpError(t, craft.ICMPTimeExceeded, router4, me4, outside4, 0), false},
		{"parameter problem", icmpError(t, craft.ICMPParamProblem, router4, me4, probe4, 0), true},
		{"parameter problem quoting another address", icmpError(t, craft.ICMPParamProblem, router4, me4, stranger4, 0), false},
		{"a quote with IP options", icmpError(t, craft.ICMPUnreachable, router4, me4, probe4opts, 0), true},
		{"a quote from another address", icmpError(t, craft.ICMPUnreachable, peer4, me4, stranger4, 0), false},
		{"a quote from another port", icmpError(t, craft.ICMPUnreachable, peer4, me4, outside4, 0), false},
		{"an error to another address", icmpError(t, craft.ICMPUnreachable, peer4, other4, probe4, 0), false},
		{"not an error", echo, false},
		{"ICMPv6 unreachable", icmpError(t, craft.ICMPv6Unreachable, peer6, me6, probe6, 0), true},
		{"ICMPv6 packet too big", icmpError(t, craft.ICMPv6PacketTooBig, router6, me6, probe6, 0), true},
		{"ICMPv6 hop limit exceeded", icmpError(t, craft.ICMPv6TimeExceeded, router6, me6, probe6, 0), true},
		{"ICMPv6 quote from another port", icmpError(t, craft.ICMPv6Unreachable, peer6, me6, outside6, 0), false},
		{"ICMPv6 to another address", icmpError(t, craft.ICMPv6Unreachable, peer6, other6, probe6, 0), false},
	}
	for _, c := range cases {
		if got := accepted(t, vm, c.pkt); got != c.want {
			t.Errorf("%s: accepted %v, want %v", c.name, got, c.want)
		}
	}

	// One family only: the other is refused whole.
	vm4 := scopeVM(t, Scope{Local: []netip.Addr{me4}, PortLow: 40000, PortHigh: 40000})
	if !accepted(t, vm4, tcpPacket(t, ap(peer4, 80), ap(me4, 40000), 0)) || accepted(t, vm4, tcpPacket(t, ap(peer6, 80), ap(me6, 40000), 0)) {
		t.Error("an IPv4-only scope: want the IPv4 reply and not the IPv6 one")
	}
	vm6 := scopeVM(t, Scope{Local: []netip.Addr{me6}, PortLow: 40000, PortHigh: 40000})
	if accepted(t, vm6, tcpPacket(t, ap(peer4, 80), ap(me4, 40000), 0)) || !accepted(t, vm6, tcpPacket(t, ap(peer6, 80), ap(me6, 40000), 0)) {
		t.Error("an IPv6-only scope: want the IPv6 reply and not the IPv4 one")
	}
}

// Scopes that cannot be captured are errors, not filters that admit too
// much.
func TestScopeProgramRefuses(t *testing.T) {
	me := netip.MustParseAddr("10.0.2.21")
	for _, s := range []Scope{
		{PortLow: 1, PortHigh: 2},
		{Local: []netip.Addr{me}, PortLow: 0, PortHigh: 2},
		{Local: []netip.Addr{me}, PortLow: 3, PortHigh: 2},
		{Local: []netip.Addr{netip.IPv4Unspecified()}, PortLow: 1, PortHigh: 2},
		{Local: []netip.Addr{{}}, PortLow: 1, PortHigh: 2},
		{Local: make([]netip.Addr, maxScopeAddrs+1), PortLow: 1, PortHigh: 2},
	} {
		if _, err := ScopeProgram(s); err == nil {
			t.Errorf("ScopeProgram(%+v): no error", s)
		}
	}
}
