package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/bpf"
)

// Scope is what a prober's capture admits: the replies to many probes sent
// from a block of source ports. Seen from tcpcraft, that is
//
//   - TCP segments addressed to one of Local and to a port in
//     [PortLow, PortHigh], from anyone (the probes' targets);
//   - ICMP and ICMPv6 error messages addressed to one of Local that quote
//     a TCP segment sent from that address and such a port: destination
//     unreachable, time exceeded and parameter problem (RFC 792), and for
//     ICMPv6 packet too big as well (RFC 4443 §3), which routers on the
//     way and the targets send about the probes.
type Scope struct {
	// Local are tcpcraft's addresses, of either family (at most
	// maxScopeAddrs). IPv4-mapped IPv6 addresses count as IPv4.
	Local []netip.Addr
	// PortLow and PortHigh bound tcpcraft's source ports (PortLow <=
	// PortHigh, both non-zero).
	PortLow, PortHigh uint16
}

// maxScopeAddrs bounds Scope.Local: each address costs the filter a few
// instructions per family, and a conditional jump skips at most 255.
const maxScopeAddrs = 8

func (s Scope) String() string {
	var b strings.Builder
	for i, a := range s.Local {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.Unmap().String())
	}
	fmt.Fprintf(&b, " ports %d-%d (TCP and ICMP errors)", s.PortLow, s.PortHigh)
	return b.String()
}

// families says which IP versions s admits, and checks it.
func (s Scope) families() (int, error) {
	if len(s.Local) == 0 || len(s.Local) > maxScopeAddrs {
		return 0, fmt.Errorf("scope %s: want 1 to %d local addresses, got %d", s, maxScopeAddrs, len(s.Local))
	}
	if s.PortLow == 0 || s.PortLow > s.PortHigh {
		return 0, fmt.Errorf("scope %s: bad port range", s)
	}
	fams := 0
	for _, a := range s.Local {
		a = a.Unmap()
		switch {
		case !a.IsValid() || a.IsUnspecified():
			return 0, fmt.Errorf("scope %s: %v is not an address of this host", s, a)
		case a.Zone() != "":
			return 0, fmt.Errorf("scope %s: address %s has a zone; link-local IPv6 is not supported", s, a)
		case a.Is4():
			fams |= familyIPv4
		default:
			fams |= familyIPv6
		}
	}
	return fams, nil
}

// OpenScope starts capturing, on the interface with index ifindex (0:
// every interface), the frames of scope in the network namespace of the
// calling thread: the replies to a prober's probes. Everything Open says
// about the socket holds (the filter attached before any traffic, outgoing
// frames ignored, the ring), with ScopeProgram as the filter.
func OpenScope(ifindex int, scope Scope, cfg Config) (*Capture, error) {
	fams, err := scope.families()
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	prog, err := ScopeProgram(scope)
	if err != nil {
		return nil, fmt.Errorf("opening capture: %w", err)
	}
	return open(ifindex, scope.String(), fams, prog, cfg)
}

// Offsets into ICMP (RFC 792) and ICMPv6 (RFC 4443 §2.1) error messages:
// type, then the quoted datagram after the 8-byte header.
const (
	icmpOffType    = 0
	icmpQuoteStart = 8

	ipProtoICMP   = 1
	ipProtoICMPv6 = 58

	icmpTypeUnreachable   = 3  // RFC 792
	icmpCodeFragNeeded    = 4  // RFC 792: fragmentation needed and DF set (RFC 1191)
	icmp6TypePacketTooBig = 2  // RFC 4443 §3.2
	icmpTypeTimeExceeded  = 11 // RFC 792
	icmpTypeParamProblem  = 12 // RFC 792
	icmp6TypeFirstError   = 1  // destination unreachable (RFC 4443 §3.1)
	icmp6TypeLastError    = 4  // parameter problem (RFC 4443 §3.4)
	tcpOffSrcPortInQuote  = 0
	ip6OffQuotedNext      = icmpQuoteStart + ip6OffNext
	ip6OffQuotedSrc       = icmpQuoteStart + ip6OffSrc
	ip6OffQuotedTCPSource = icmpQuoteStart + ip6HeaderLen + tcpOffSrcPort
)

// ScopeProgram returns the classic BPF program that admits exactly the
// frames of scope (see Scope), read from the IP header on as an AF_PACKET
// SOCK_DGRAM socket hands them over.
//
// IPv4: a non-first fragment is refused (no ports to match), and so is a
// header shorter than 5 words. For an ICMP error, the quoted header's
// length is read as well (the quote's TCP header follows the quoted IP
// options): X is moved to the outer header length plus 8 plus the quoted
// header length, computed in the accumulator since classic BPF has only
// the one "4*([k]&0xf)" load for X.
//
// IPv6: as FilterProgram, only a TCP or ICMPv6 header right after the
// fixed header, and in an ICMPv6 error only a quoted TCP header right
// after the quoted fixed header (classic BPF cannot walk extension
// headers; tcpcraft's probes carry none, fragments aside).
func ScopeProgram(scope Scope) ([]bpf.Instruction, error) {
	fams, err := scope.families()
	if err != nil {
		return nil, err
	}
	var v4, v6 [][]byte
	for _, a := range scope.Local {
		if a = a.Unmap(); a.Is4() {
			b := a.As4()
			v4 = append(v4, b[:])
		} else {
			b := a.As16()
			v6 = append(v6, b[:])
		}
	}

	a := &bpfAssembler{labels: map[string]int{}}
	// Which family: the version nibble.
	a.ins(bpf.LoadAbsolute{Off: ipOffVersionIHL, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ipVersionMask})
	if fams&familyIPv6 != 0 {
		a.jumpIf(bpf.JumpEqual, ipVersion6Nibble, "v6")
	}
	if fams&familyIPv4 == 0 {
		a.jump("drop")
	} else {
		a.dropUnless(bpf.JumpEqual, ipVersion4Nibble)
		a.ins(bpf.LoadAbsolute{Off: ipOffVersionIHL, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ipIHLMask})
		a.jumpIf(bpf.JumpLessThan, ipMinHeaderWords, "drop")
		a.ins(bpf.LoadAbsolute{Off: ipOffFragment, Size: 2})
		a.jumpIf(bpf.JumpBitsSet, ipFragOffsetMask, "drop")
		// The destination is one of ours.
		a.ins(bpf.LoadAbsolute{Off: ipOffDst, Size: 4})
		a.matchWords(v4, 0, "v4-ours")
		a.label("v4-ours")
		a.ins(bpf.LoadMemShift{Off: ipOffVersionIHL}) // X = outer header length
		a.ins(bpf.LoadAbsolute{Off: ipOffProtocol, Size: 1})
		a.jumpIf(bpf.JumpEqual, ipProtoTCP, "v4-tcp")
		a.dropUnless(bpf.JumpEqual, ipProtoICMP)
		// An ICMP error quoting TCP from one of our addresses.
		a.ins(bpf.LoadIndirect{Off: icmpOffType, Size: 1})
		a.jumpIf(bpf.JumpEqual, icmpTypeUnreachable, "v4-icmp-type")
		a.jumpIf(bpf.JumpEqual, icmpTypeTimeExceeded, "v4-icmp-type")
		a.dropUnless(bpf.JumpEqual, icmpTypeParamProblem)
		a.label("v4-icmp-type")
		a.ins(bpf.LoadIndirect{Off: icmpQuoteStart + ipOffVersionIHL, Size: 1}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ipVersionMask})
		a.dropUnless(bpf.JumpEqual, ipVersion4Nibble)
		a.ins(bpf.LoadIndirect{Off: icmpQuoteStart + ipOffProtocol, Size: 1})
		a.dropUnless(bpf.JumpEqual, ipProtoTCP)
		a.ins(bpf.LoadIndirect{Off: icmpQuoteStart + ipOffFragment, Size: 2})
		a.jumpIf(bpf.JumpBitsSet, ipFragOffsetMask, "drop")
		a.ins(bpf.LoadIndirect{Off: icmpQuoteStart + ipOffSrc, Size: 4})
		a.matchWords(v4, 0, "v4-quote-ours")
		a.label("v4-quote-ours")
		// X += 8 + 4*(quoted IHL): X then points at the quoted TCP header.
		a.ins(
			bpf.LoadIndirect{Off: icmpQuoteStart + ipOffVersionIHL, Size: 1},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ipIHLMask},
			bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2},
			bpf.ALUOpX{Op: bpf.ALUOpAdd},
			bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: icmpQuoteStart},
			bpf.TAX{},
			bpf.LoadIndirect{Off: tcpOffSrcPortInQuote, Size: 2},
		)
		a.portRange(scope.PortLow, scope.PortHigh)
		a.label("v4-tcp")
		a.ins(bpf.LoadIndirect{Off: tcpOffDstPort, Size: 2})
		a.portRange(scope.PortLow, scope.PortHigh)
	}
	if fams&familyIPv6 != 0 {
		a.label("v6")
		for i := range 4 {
			a.ins(bpf.LoadAbsolute{Off: ip6OffDst + 4*uint32(i), Size: 4})
			a.matchWords(v6, i, fmt.Sprintf("v6-ours-%d", i))
			a.label(fmt.Sprintf("v6-ours-%d", i))
		}
		a.ins(bpf.LoadAbsolute{Off: ip6OffNext, Size: 1})
		a.jumpIf(bpf.JumpEqual, ipProtoTCP, "v6-tcp")
		a.dropUnless(bpf.JumpEqual, ipProtoICMPv6)
		a.ins(bpf.LoadAbsolute{Off: ip6HeaderLen + icmpOffType, Size: 1})
		a.jumpIf(bpf.JumpLessThan, icmp6TypeFirstError, "drop")
		a.jumpIf(bpf.JumpGreaterThan, icmp6TypeLastError, "drop")
		a.ins(bpf.LoadAbsolute{Off: ip6HeaderLen + ip6OffQuotedNext, Size: 1})
		a.dropUnless(bpf.JumpEqual, ipProtoTCP)
		for i := range 4 {
			a.ins(bpf.LoadAbsolute{Off: ip6HeaderLen + ip6OffQuotedSrc + 4*uint32(i), Size: 4})
			a.matchWords(v6, i, fmt.Sprintf("v6-quote-ours-%d", i))
			a.label(fmt.Sprintf("v6-quote-ours-%d", i))
		}
		a.ins(bpf.LoadAbsolute{Off: ip6HeaderLen + ip6OffQuotedTCPSource, Size: 2})
		a.portRange(scope.PortLow, scope.PortHigh)
		a.label("v6-tcp")
		a.ins(bpf.LoadAbsolute{Off: ip6HeaderLen + tcpOffDstPort, Size: 2})
		a.portRange(scope.PortLow, scope.PortHigh)
	}
	a.label("accept")
	a.ins(bpf.RetConstant{Val: snapLength})
	a.label("drop")
	a.ins(bpf.RetConstant{Val: 0})
	return a.finish()
}

// bpfAssembler builds a classic BPF program with forward jumps to named
// labels, resolved by finish.
type bpfAssembler struct {
	prog   []bpf.Instruction
	labels map[string]int
	jumps  []bpfJump
}

type bpfJump struct {
	at       int
	to       string
	always   bool // an unconditional jump
	negative bool // the jump is taken when the condition fails
}

func (a *bpfAssembler) ins(in ...bpf.Instruction) { a.prog = append(a.prog, in...) }

func (a *bpfAssembler) label(name string) { a.labels[name] = len(a.prog) }

// jumpIf jumps to label when cond holds for the accumulator, else falls
// through.
func (a *bpfAssembler) jumpIf(cond bpf.JumpTest, val uint32, label string) {
	a.jumps = append(a.jumps, bpfJump{at: len(a.prog), to: label})
	a.prog = append(a.prog, bpf.JumpIf{Cond: cond, Val: val})
}

// dropUnless falls through when cond holds, else jumps to "drop".
func (a *bpfAssembler) dropUnless(cond bpf.JumpTest, val uint32) {
	a.jumps = append(a.jumps, bpfJump{at: len(a.prog), to: "drop", negative: true})
	a.prog = append(a.prog, bpf.JumpIf{Cond: cond, Val: val})
}

// jump jumps to label.
func (a *bpfAssembler) jump(label string) {
	a.jumps = append(a.jumps, bpfJump{at: len(a.prog), to: label, always: true})
	a.prog = append(a.prog, bpf.Jump{})
}

// matchWords compares the accumulator with word w (big endian) of each
// address: equal to any of them goes on at label, none drops. For the
// words of a 16-byte address, compared one load at a time, an address is
// matched word by word: a frame whose first word matches one address and
// second word another passes this check although it is neither; the
// scope's addresses are this host's, a handful that differ in their last
// words, and a false match only admits a frame the reader then ignores.
func (a *bpfAssembler) matchWords(addrs [][]byte, w int, label string) {
	for _, b := range addrs {
		a.jumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(b[4*w:]), label)
	}
	a.jump("drop")
}

// portRange accepts the frame when the accumulator is in [low, high] and
// drops it otherwise.
func (a *bpfAssembler) portRange(low, high uint16) {
	a.jumpIf(bpf.JumpLessThan, uint32(low), "drop")
	a.jumpIf(bpf.JumpGreaterThan, uint32(high), "drop")
	a.jump("accept")
}

// finish resolves the jumps.
func (a *bpfAssembler) finish() ([]bpf.Instruction, error) {
	for _, j := range a.jumps {
		to, ok := a.labels[j.to]
		if !ok {
			return nil, fmt.Errorf("filter: no label %q", j.to)
		}
		skip := to - (j.at + 1)
		if skip < 0 || skip > maxFilterJumpRange && !j.always {
			return nil, errors.New("filter: a jump out of range (too many addresses?)")
		}
		switch ins := a.prog[j.at].(type) {
		case bpf.Jump:
			ins.Skip = uint32(skip)
			a.prog[j.at] = ins
		case bpf.JumpIf:
			if j.negative {
				ins.SkipFalse = uint8(skip)
			} else {
				ins.SkipTrue = uint8(skip)
			}
			a.prog[j.at] = ins
		}
	}
	return a.prog, nil
}
