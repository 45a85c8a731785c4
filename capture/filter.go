package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/net/bpf"
)

// Flow names the one TCP flow a Capture admits, seen from tcpcraft: frames
// travelling from Remote to Local.
//
// A wildcard matches anything: an invalid or unspecified (0.0.0.0, ::)
// address, or port 0. Local.Port() must be set (tcpcraft always owns its
// port); a listener uses a wildcard Remote, and a listener bound to all
// addresses a wildcard Local address too.
//
// The addresses also choose the family: IPv4 if either is an IPv4 address
// (0.0.0.0 included; IPv4-mapped IPv6 addresses count as IPv4), IPv6 if
// either is an IPv6 address (:: included), both families when neither
// address is valid. The two addresses must not disagree.
type Flow struct {
	Local  netip.AddrPort // tcpcraft's end: the destination of captured frames
	Remote netip.AddrPort // the peer's end: the source of captured frames
	// PathMTU admits, besides the flow's segments, the ICMP errors of
	// path MTU discovery addressed to Local's address (any, when it is
	// unspecified), from anyone (the router on the way): IPv4 ICMP
	// "fragmentation needed and DF set" (type 3 code 4, RFC 1191) and
	// ICMPv6 "packet too big" (type 2, RFC 8201). Which connection one
	// quotes is for the reader to check (stack does, and checks its
	// sequence number too, RFC 5927): classic BPF could match the quoted
	// ports only after the quoted header's length, and these errors are
	// rare enough to read whole.
	PathMTU bool
}

func (f Flow) String() string {
	return fmt.Sprintf("%s -> %s", endpointString(f.Remote), endpointString(f.Local))
}

func endpointString(ap netip.AddrPort) string {
	addr, port := "*", "*"
	if a := ap.Addr().Unmap(); a.IsValid() && !a.IsUnspecified() {
		addr = a.String()
		if a.Is6() {
			addr = "[" + addr + "]"
		}
	}
	if ap.Port() != 0 {
		port = strconv.Itoa(int(ap.Port()))
	}
	return addr + ":" + port
}

// Families a flow admits.
const (
	familyIPv4 = 1 << iota
	familyIPv6
	familyBoth = familyIPv4 | familyIPv6
)

// families says which IP versions f admits (see Flow).
func (f Flow) families() (int, error) {
	fams := familyBoth
	for _, e := range []struct {
		what string
		ap   netip.AddrPort
	}{{"local", f.Local}, {"remote", f.Remote}} {
		a := e.ap.Addr()
		if !a.IsValid() {
			continue
		}
		if a.Zone() != "" {
			return 0, fmt.Errorf("flow %s: %s address %s has a zone; link-local IPv6 is not supported", f, e.what, a)
		}
		fam := familyIPv6
		if a.Unmap().Is4() {
			fam = familyIPv4
		}
		if fams&fam == 0 {
			return 0, fmt.Errorf("flow %s: the local and remote addresses are of different families", f)
		}
		fams = fam
	}
	if f.Local.Port() == 0 {
		return 0, errors.New("flow: local port is 0; tcpcraft's own port must be known before capturing")
	}
	return fams, nil
}

// snapLength is what the filter accepts of a matching frame: all of it (the
// ring's frame size is the real limit, see Config.SnapLen). 256 KiB is
// tcpdump's default and more than any IP packet without an IPv6 jumbo
// payload.
const snapLength = 256 << 10

// Offsets into the IPv4 header (RFC 791 §3.1), the IPv6 header (RFC 8200
// §3) and the TCP header (RFC 9293 §3.1) that the filter reads.
const (
	ipOffVersionIHL = 0
	ipOffFragment   = 6 // flags (3 bits) and fragment offset (13 bits)
	ipOffProtocol   = 9
	ipOffSrc        = 12
	ipOffDst        = 16
	ip6OffNext      = 6
	ip6OffSrc       = 8
	ip6OffDst       = 24
	ip6HeaderLen    = 40
	tcpOffSrcPort   = 0
	tcpOffDstPort   = 2

	ipProtoTCP         = 6
	ipFragOffsetMask   = 0x1fff
	ipMinHeaderWords   = 5 // IHL counts 32-bit words; RFC 791 minimum is 5
	ipVersion4Nibble   = 0x40
	ipVersion6Nibble   = 0x60
	ipVersionMask      = 0xf0
	ipIHLMask          = 0x0f
	maxFilterJumpRange = 255 // a classic BPF conditional jump skips at most 255
)

// FilterProgram returns the classic BPF program that admits exactly the
// frames of flow, of either family the flow allows: TCP, source Remote and
// destination Local (wildcards left out). The program reads the frame from
// the IP header on, as an AF_PACKET SOCK_DGRAM socket hands it over, so it
// works on any link type (veth, loopback, ...); it tells the families
// apart by the version nibble.
//
// IPv4: a non-first fragment carries no TCP header, so it cannot be
// matched by port and is refused (AF_PACKET sees frames before IP
// reassembly, and tcpcraft sends with DF as Linux does); a first fragment
// (offset 0, MF set) still carries the ports and is admitted. A header
// length below 5 words is malformed and refused. The TCP ports are found
// after the IP options (IHL > 5) with the BPF "4*([0]&0xf)" idiom.
//
// IPv6: only a TCP header right after the fixed header (next header 6) is
// admitted. Classic BPF cannot walk a chain of extension headers; TCP
// peers do not send them (Linux's TCP never does), and a fragment header
// is one of them, so IPv6 fragments are refused as non-first IPv4 ones
// are (IPv6 TCP does path MTU discovery instead, RFC 8201).
//
// A frame too short for a load makes the kernel's BPF interpreter return
// 0, i.e. drop it.
func FilterProgram(flow Flow) ([]bpf.Instruction, error) {
	fams, err := flow.families()
	if err != nil {
		return nil, err
	}

	var prog []bpf.Instruction
	type jump struct{ at, to int } // a conditional jump whose true branch goes to label "to"
	const (
		toDrop = iota
		toIPv4
		toIPv6
		toICMP4
		toICMP6
	)
	var jumps []jump
	jumpIf := func(cond bpf.JumpTest, val uint32, to int) {
		jumps = append(jumps, jump{len(prog), to})
		prog = append(prog, bpf.JumpIf{Cond: cond, Val: val})
	}
	dropUnless := func(cond bpf.JumpTest, val uint32) { jumpIf(cond, val, toDrop) }
	labels := map[int]int{}

	// Which family: the version nibble.
	prog = append(prog,
		bpf.LoadAbsolute{Off: ipOffVersionIHL, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ipVersionMask})
	switch fams {
	case familyBoth:
		jumpIf(bpf.JumpEqual, ipVersion6Nibble, toIPv6)
		dropUnless(bpf.JumpNotEqual, ipVersion4Nibble)
	case familyIPv4:
		dropUnless(bpf.JumpNotEqual, ipVersion4Nibble)
	case familyIPv6:
		dropUnless(bpf.JumpNotEqual, ipVersion6Nibble)
	}

	if fams&familyIPv4 != 0 {
		labels[toIPv4] = len(prog)
		prog = append(prog,
			bpf.LoadAbsolute{Off: ipOffVersionIHL, Size: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ipIHLMask})
		dropUnless(bpf.JumpLessThan, ipMinHeaderWords)
		prog = append(prog, bpf.LoadAbsolute{Off: ipOffProtocol, Size: 1})
		if flow.PathMTU {
			jumpIf(bpf.JumpEqual, ipProtoICMP, toICMP4)
		}
		dropUnless(bpf.JumpNotEqual, ipProtoTCP)
		prog = append(prog, bpf.LoadAbsolute{Off: ipOffFragment, Size: 2})
		dropUnless(bpf.JumpBitsSet, ipFragOffsetMask)
		for _, m := range []struct {
			ap  netip.AddrPort
			off uint32
		}{{flow.Remote, ipOffSrc}, {flow.Local, ipOffDst}} {
			if a := m.ap.Addr().Unmap(); a.IsValid() && !a.IsUnspecified() {
				prog = append(prog, bpf.LoadAbsolute{Off: m.off, Size: 4})
				b := a.As4()
				dropUnless(bpf.JumpNotEqual, binary.BigEndian.Uint32(b[:]))
			}
		}
		// X = IHL*4: the TCP header starts there.
		prog = append(prog, bpf.LoadMemShift{Off: ipOffVersionIHL})
		if p := flow.Remote.Port(); p != 0 {
			prog = append(prog, bpf.LoadIndirect{Off: tcpOffSrcPort, Size: 2})
			dropUnless(bpf.JumpNotEqual, uint32(p))
		}
		prog = append(prog, bpf.LoadIndirect{Off: tcpOffDstPort, Size: 2})
		dropUnless(bpf.JumpNotEqual, uint32(flow.Local.Port()))
		prog = append(prog, bpf.RetConstant{Val: snapLength})
		if flow.PathMTU {
			// Not a fragment, to our address, type 3 code 4.
			labels[toICMP4] = len(prog)
			prog = append(prog, bpf.LoadAbsolute{Off: ipOffFragment, Size: 2})
			dropUnless(bpf.JumpBitsSet, ipFragOffsetMask)
			if a := flow.Local.Addr().Unmap(); a.IsValid() && !a.IsUnspecified() {
				prog = append(prog, bpf.LoadAbsolute{Off: ipOffDst, Size: 4})
				b := a.As4()
				dropUnless(bpf.JumpNotEqual, binary.BigEndian.Uint32(b[:]))
			}
			prog = append(prog, bpf.LoadMemShift{Off: ipOffVersionIHL},
				bpf.LoadIndirect{Off: icmpOffType, Size: 2})
			dropUnless(bpf.JumpNotEqual, icmpTypeUnreachable<<8|icmpCodeFragNeeded)
			prog = append(prog, bpf.RetConstant{Val: snapLength})
		}
	}

	if fams&familyIPv6 != 0 {
		labels[toIPv6] = len(prog)
		prog = append(prog, bpf.LoadAbsolute{Off: ip6OffNext, Size: 1})
		if flow.PathMTU {
			jumpIf(bpf.JumpEqual, ipProtoICMPv6, toICMP6)
		}
		dropUnless(bpf.JumpNotEqual, ipProtoTCP)
		for _, m := range []struct {
			ap  netip.AddrPort
			off uint32
		}{{flow.Remote, ip6OffSrc}, {flow.Local, ip6OffDst}} {
			if a := m.ap.Addr(); a.IsValid() && !a.IsUnspecified() {
				b := a.As16()
				for w := uint32(0); w < 4; w++ {
					prog = append(prog, bpf.LoadAbsolute{Off: m.off + 4*w, Size: 4})
					dropUnless(bpf.JumpNotEqual, binary.BigEndian.Uint32(b[4*w:]))
				}
			}
		}
		if p := flow.Remote.Port(); p != 0 {
			prog = append(prog, bpf.LoadAbsolute{Off: ip6HeaderLen + tcpOffSrcPort, Size: 2})
			dropUnless(bpf.JumpNotEqual, uint32(p))
		}
		prog = append(prog, bpf.LoadAbsolute{Off: ip6HeaderLen + tcpOffDstPort, Size: 2})
		dropUnless(bpf.JumpNotEqual, uint32(flow.Local.Port()))
		prog = append(prog, bpf.RetConstant{Val: snapLength})
		if flow.PathMTU {
			// To our address, type 2 (right after the fixed header).
			labels[toICMP6] = len(prog)
			if a := flow.Local.Addr(); a.IsValid() && !a.IsUnspecified() {
				b := a.As16()
				for w := uint32(0); w < 4; w++ {
					prog = append(prog, bpf.LoadAbsolute{Off: ip6OffDst + 4*w, Size: 4})
					dropUnless(bpf.JumpNotEqual, binary.BigEndian.Uint32(b[4*w:]))
				}
			}
			prog = append(prog, bpf.LoadAbsolute{Off: ip6HeaderLen + icmpOffType, Size: 1})
			dropUnless(bpf.JumpNotEqual, icmp6TypePacketTooBig)
			prog = append(prog, bpf.RetConstant{Val: snapLength})
		}
	}

	labels[toDrop] = len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0})

	for _, j := range jumps {
		skip := labels[j.to] - (j.at + 1)
		if skip < 0 || skip > maxFilterJumpRange {
			// Cannot happen with the fixed shape above; guard anyway.
			return nil, fmt.Errorf("filter for %s: jump of %d instructions out of range", flow, skip)
		}
		ins := prog[j.at].(bpf.JumpIf)
		ins.SkipTrue = uint8(skip)
		prog[j.at] = ins
	}
	return prog, nil
}
