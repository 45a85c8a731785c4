package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
)

// Flow names the one TCP flow a Capture admits, seen from tcpcraft: frames
// travelling from Remote to Local.
//
// A wildcard matches anything: an invalid or unspecified (0.0.0.0) address,
// or port 0. Local.Port() must be set (tcpcraft always owns its port); a
// listener uses a wildcard Remote, and a listener bound to all addresses a
// wildcard Local address too.
type Flow struct {
	Local  netip.AddrPort // tcpcraft's end: the destination of captured frames
	Remote netip.AddrPort // the peer's end: the source of captured frames
}

func (f Flow) String() string {
	return fmt.Sprintf("%s -> %s", endpointString(f.Remote), endpointString(f.Local))
}

func endpointString(ap netip.AddrPort) string {
	addr, port := "*", "*"
	if a := ap.Addr().Unmap(); a.IsValid() && !a.IsUnspecified() {
		addr = a.String()
	}
	if ap.Port() != 0 {
		port = fmt.Sprint(ap.Port())
	}
	return addr + ":" + port
}

// snapLength is what the filter accepts of a matching frame: all of it (the
// ring's frame size is the real limit, see Config.SnapLen). 256 KiB is
// tcpdump's default and more than any IPv4 packet.
const snapLength = 256 << 10

// Offsets into the IPv4 header (RFC 791 §3.1) and the TCP header
// (RFC 9293 §3.1) that the filter reads.
const (
	ipOffVersionIHL = 0
	ipOffFragment   = 6 // flags (3 bits) and fragment offset (13 bits)
	ipOffProtocol   = 9
	ipOffSrc        = 12
	ipOffDst        = 16
	tcpOffSrcPort   = 0
	tcpOffDstPort   = 2

	ipProtoTCP         = 6
	ipFragOffsetMask   = 0x1fff
	ipMinHeaderWords   = 5 // IHL counts 32-bit words; RFC 791 minimum is 5
	ipVersion4Nibble   = 0x40
	ipVersionMask      = 0xf0
	ipIHLMask          = 0x0f
	maxFilterJumpRange = 255 // a classic BPF conditional jump skips at most 255
)

// FilterProgram returns the classic BPF program that admits exactly the
// frames of flow: IPv4, protocol TCP, not a non-first fragment, source
// Remote and destination Local (wildcards left out). The program reads the
// frame from the IPv4 header on, as an AF_PACKET SOCK_DGRAM socket hands it
// over, so it works on any link type (veth, loopback, ...).
//
// Non-first fragments carry no TCP header, so they cannot be matched by port
// and are refused: AF_PACKET sees frames before IP reassembly, and tcpcraft
// sends with DF as Linux does. A first fragment (offset 0, MF set) still
// carries the ports and is admitted. A header length below 5 words is
// malformed and refused. The TCP ports are found after the IP options
// (IHL > 5) with the BPF "4*([0]&0xf)" idiom; a frame too short for a load
// makes the kernel's BPF interpreter return 0, i.e. drop it.
func FilterProgram(flow Flow) ([]bpf.Instruction, error) {
	if err := flow.validate(); err != nil {
		return nil, err
	}

	var prog []bpf.Instruction
	var toDrop []int // indexes of conditional jumps whose true branch is "drop"
	dropUnless := func(cond bpf.JumpTest, val uint32) {
		toDrop = append(toDrop, len(prog))
		prog = append(prog, bpf.JumpIf{Cond: cond, Val: val})
	}

	// IPv4 only (the socket is bound to ETH_P_IP too; this keeps the
	// program correct on its own and in unit tests).
	prog = append(prog,
		bpf.LoadAbsolute{Off: ipOffVersionIHL, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ipVersionMask})
	dropUnless(bpf.JumpNotEqual, ipVersion4Nibble)
	prog = append(prog,
		bpf.LoadAbsolute{Off: ipOffVersionIHL, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ipIHLMask})
	dropUnless(bpf.JumpLessThan, ipMinHeaderWords)

	prog = append(prog, bpf.LoadAbsolute{Off: ipOffProtocol, Size: 1})
	dropUnless(bpf.JumpNotEqual, ipProtoTCP)

	prog = append(prog, bpf.LoadAbsolute{Off: ipOffFragment, Size: 2})
	dropUnless(bpf.JumpBitsSet, ipFragOffsetMask)

	if a, ok := specific(flow.Remote.Addr()); ok {
		prog = append(prog, bpf.LoadAbsolute{Off: ipOffSrc, Size: 4})
		dropUnless(bpf.JumpNotEqual, a)
	}
	if a, ok := specific(flow.Local.Addr()); ok {
		prog = append(prog, bpf.LoadAbsolute{Off: ipOffDst, Size: 4})
		dropUnless(bpf.JumpNotEqual, a)
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
	drop := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0})

	for _, i := range toDrop {
		skip := drop - (i + 1)
		if skip > maxFilterJumpRange {
			// Cannot happen with the fixed shape above; guard anyway.
			return nil, fmt.Errorf("filter for %s: jump of %d instructions is too long", flow, skip)
		}
		j := prog[i].(bpf.JumpIf)
		j.SkipTrue = uint8(skip)
		prog[i] = j
	}
	return prog, nil
}

// specific returns a as the big-endian uint32 the filter compares with, and
// false for a wildcard.
func specific(a netip.Addr) (uint32, bool) {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return 0, false
	}
	b := a.As4()
	return binary.BigEndian.Uint32(b[:]), true
}

func (f Flow) validate() error {
	for _, e := range []struct {
		what string
		ap   netip.AddrPort
	}{{"local", f.Local}, {"remote", f.Remote}} {
		a := e.ap.Addr().Unmap()
		if a.IsValid() && !a.Is4() {
			return fmt.Errorf("flow %s: %s address %s is not IPv4 (tcpcraft speaks IPv4 only)", f, e.what, a)
		}
	}
	if f.Local.Port() == 0 {
		return errors.New("flow: local port is 0; tcpcraft's own port must be known before capturing")
	}
	return nil
}
