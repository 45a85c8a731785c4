package craft

import (
	"math/rand"
	"net/netip"
)

// Random valid headers for property tests: every field random, all twelve
// flag bits, option lists of every kind in random order, and EOL with
// arbitrary trailing bytes. "Valid" means ParseTCP accepts the emitted bytes
// and gives the same TCP back.

// randomOptions returns options whose wire length is a multiple of 4 and at
// most 40 bytes, with EOL (if any) last.
func randomOptions(rng *rand.Rand) []Option {
	budget := rng.Intn(TCPMaxOptionsLen + 1)
	var opts []Option
	used := 0
	for {
		var o Option
		switch rng.Intn(9) {
		case 0:
			o = NOPOption()
		case 1:
			o = MSSOption(uint16(rng.Uint32()))
		case 2:
			o = WindowScaleOption(uint8(rng.Uint32()))
		case 3:
			o = SACKPermittedOption()
		case 4:
			o = TimestampsOption(rng.Uint32(), rng.Uint32())
		case 5:
			n := 1 + rng.Intn(MaxSACKBlocks)
			blocks := make([]SACKBlock, n)
			for i := range blocks {
				blocks[i] = SACKBlock{Left: Seq(rng.Uint32()), Right: Seq(rng.Uint32())}
			}
			o = SACKOption(blocks...)
		case 6, 7:
			kind := OptionKind(6 + rng.Intn(250))
			if kind == OptTimestamps || kind == 30 {
				// 30 is MPTCP, which gopacket decodes (and rejects when
				// malformed) while craft keeps it raw; the differential
				// test needs kinds both treat as opaque.
				kind = 253
			}
			data := make([]byte, rng.Intn(12))
			rng.Read(data)
			o = Option{Kind: kind, Data: data}
		case 8:
			// EOL ends the list; the rest of the budget is its padding.
			pad := (budget - used - 1)
			if pad < 0 {
				return finishOptions(rng, opts, used)
			}
			data := make([]byte, pad)
			if rng.Intn(2) == 0 {
				rng.Read(data)
			}
			o = Option{Kind: OptEOL}
			if pad > 0 {
				o.Data = data
			}
			opts = append(opts, o)
			return finishOptions(rng, opts, used+1+pad)
		}
		n, _ := o.Len()
		if used+n > budget {
			return finishOptions(rng, opts, used)
		}
		opts = append(opts, o)
		used += n
	}
}

// finishOptions pads the list to a multiple of 4 bytes the way a parse of
// the padded bytes would see it: NOPs, or an EOL holding the rest.
func finishOptions(rng *rand.Rand, opts []Option, used int) []Option {
	if used%4 == 0 {
		return opts
	}
	if len(opts) > 0 && opts[len(opts)-1].Kind == OptEOL {
		o := &opts[len(opts)-1]
		o.Data = append(o.Data, make([]byte, 4-used%4)...)
		return opts
	}
	if rng.Intn(2) == 0 {
		for ; used%4 != 0; used++ {
			opts = append(opts, NOPOption())
		}
		return opts
	}
	eol := Option{Kind: OptEOL}
	if pad := 3 - used%4; pad > 0 {
		eol.Data = make([]byte, pad)
	}
	return append(opts, eol)
}

// randomTCP returns a random valid segment with DataOffset and Checksum
// zero (to be computed by Emit).
func randomTCP(rng *rand.Rand) TCP {
	payload := make([]byte, rng.Intn(3)*rng.Intn(200))
	rng.Read(payload)
	return TCP{
		SrcPort: uint16(rng.Uint32()),
		DstPort: uint16(rng.Uint32()),
		Seq:     Seq(rng.Uint32()),
		Ack:     Seq(rng.Uint32()),
		Flags:   Flags(rng.Uint32()) & FlagsMask,
		Window:  uint16(rng.Uint32()),
		Urgent:  uint16(rng.Uint32()),
		Options: randomOptions(rng),
		Payload: payload,
	}
}

// randomIPv4 returns a random unfragmented IPv4 header carrying TCP, with
// well-formed IP options (as gopacket insists on).
func randomIPv4(rng *rand.Rand) IPv4 {
	ip := IPv4{
		DSCP:         uint8(rng.Intn(64)),
		ECN:          uint8(rng.Intn(4)),
		ID:           uint16(rng.Uint32()),
		ReservedFlag: rng.Intn(4) == 0,
		DontFragment: rng.Intn(2) == 0,
		TTL:          uint8(rng.Uint32()),
		Protocol:     ProtocolTCP,
		Src:          netip.AddrFrom4([4]byte{10, byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256))}),
		Dst:          netip.AddrFrom4([4]byte{192, 168, byte(rng.Intn(256)), byte(rng.Intn(256))}),
	}
	switch rng.Intn(4) {
	case 1:
		ip.Options = []byte{1, 1, 1, 0} // NOP NOP NOP EOL
	case 2:
		ip.Options = []byte{0x94, 4, 0, 0} // router alert (RFC 2113)
	case 3:
		ip.Options = []byte{0x07, 7, 4, 0, 0, 0, 0, 0} // record route, one slot
	}
	return ip
}

// randomIPv6 returns a random IPv6 header carrying TCP directly.
func randomIPv6(rng *rand.Rand) IPv6 {
	var s, d [16]byte
	rng.Read(s[:])
	rng.Read(d[:])
	s[0], d[0] = 0xfd, 0xfd
	return IPv6{
		TrafficClass: uint8(rng.Uint32()),
		FlowLabel:    rng.Uint32() & 0xfffff,
		NextHeader:   ProtocolTCP,
		HopLimit:     uint8(rng.Uint32()),
		Src:          netip.AddrFrom16(s),
		Dst:          netip.AddrFrom16(d),
	}
}
