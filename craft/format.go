package craft

import (
	"encoding/hex"
	"net/netip"
	"strconv"
)

// SeqTracker remembers, per connection, the sequence numbers tcpdump uses
// as the base of its relative numbers, so that Relative can print what
// `tcpdump` (without -S) prints. It mirrors tcp_print in tcpdump 4.99's
// print-tcp.c exactly, quirks included:
//
//   - Only segments with ACK set take part. A segment without ACK (a SYN, a
//     bare RST) is always shown with absolute numbers.
//   - The first ACK segment of a connection seen, and every SYN-ACK,
//     (re)records the bases: its own seq as its sender's base and ack-1 as
//     the other side's base. That segment itself is shown absolute; the
//     following ones relative (so after a normal handshake the client's
//     ACK shows "ack 1" and data shows "seq 1:101").
//   - Both directions share one entry; the direction whose source port is
//     lower (or, with equal ports, whose source address is lower) is the
//     "forward" one.
//   - SACK blocks are made relative to the base of the other side.
//
// The zero SeqTracker is ready to use. It grows by one entry per
// connection and never forgets; make a new one per capture.
type SeqTracker struct {
	flows map[seqKey]seqBase
}

type seqKey struct {
	src, dst netip.Addr
	ports    uint32
}

// seqBase holds tcpdump's th->seq (base of the forward sender) and th->ack
// (base of the reverse sender).
type seqBase struct {
	seq, ack uint32
}

// RelativeSeq is what a tracker computed for one segment.
type RelativeSeq struct {
	// Seq and Ack are the numbers to print: relative when Relative is
	// true, else the absolute ones.
	Seq, Ack uint32
	// Relative reports whether Seq and Ack were made relative.
	Relative bool
	// SACKBase is subtracted from SACK block edges (0 when the segment
	// has no ACK flag, as in tcpdump).
	SACKBase uint32
}

// Relative records p's connection as tcpdump does and returns the numbers
// tcpdump would print for it.
func (t *SeqTracker) Relative(p *Packet) RelativeSeq {
	seq, ack := uint32(p.TCP.Seq), uint32(p.TCP.Ack)
	r := RelativeSeq{Seq: seq, Ack: ack}
	if !p.TCP.Flags.Has(FlagACK) {
		return r
	}
	src, dst := p.Src(), p.Dst()
	sport, dport := p.TCP.SrcPort, p.TCP.DstPort
	rev := sport > dport || (sport == dport && src.Compare(dst) > 0)
	var key seqKey
	if rev {
		key = seqKey{src: dst, dst: src, ports: uint32(dport)<<16 | uint32(sport)}
	} else {
		key = seqKey{src: src, dst: dst, ports: uint32(sport)<<16 | uint32(dport)}
	}
	if t.flows == nil {
		t.flows = make(map[seqKey]seqBase)
	}
	base, found := t.flows[key]
	if !found || p.TCP.Flags.Has(FlagSYN) {
		if rev {
			base = seqBase{ack: seq, seq: ack - 1}
		} else {
			base = seqBase{seq: seq, ack: ack - 1}
		}
		t.flows[key] = base
	} else {
		if rev {
			r.Seq, r.Ack = seq-base.ack, ack-base.seq
		} else {
			r.Seq, r.Ack = seq-base.seq, ack-base.ack
		}
		r.Relative = true
	}
	if rev {
		r.SACKBase = base.seq
	} else {
		r.SACKBase = base.ack
	}
	return r
}

// Formatter renders packets as one line of text in tcpdump's style
// (`tcpdump -nn`), or as a PacketJSON. It carries the per-connection state
// that relative sequence numbers need, so make one per packet stream and
// pass every packet of the stream through it, in order, once (either
// AppendText/Format or JSON, not both, for a given packet). The zero
// Formatter prints relative numbers without the "IP " prefix.
type Formatter struct {
	// Absolute prints absolute sequence numbers (tcpdump -S).
	Absolute bool
	// IPPrefix starts each line with "IP " or "IP6 " as tcpdump does.
	IPPrefix bool
	// Verbose adds what tcpdump -v adds: the IP header group "(tos 0x0,
	// ttl 64, id 1, offset 0, flags [DF], proto TCP (6), length 60)" (for
	// IPv6 "(flowlabel 0x12345, hlim 64, next-header TCP (6) payload
	// length: 40)"), the options of IPv6 extension headers, and the TCP
	// checksum and its verdict ("cksum 0x1e47 (correct)"), on the same
	// line. Without Verbose the IP group is shown only when a field in it
	// is unusual (see AppendText).
	Verbose bool
	// Seqs holds the relative-number state.
	Seqs SeqTracker
}

func (f *Formatter) numbers(p *Packet) RelativeSeq {
	if f.Absolute {
		return RelativeSeq{Seq: uint32(p.TCP.Seq), Ack: uint32(p.TCP.Ack)}
	}
	return f.Seqs.Relative(p)
}

// Format returns the text line for p (without a timestamp or newline).
func (f *Formatter) Format(p *Packet) string { return string(f.AppendText(nil, p)) }

// AppendText appends the text line for p to dst, e.g.
//
//	10.0.2.21.40000 > 10.0.2.20.80: Flags [S], seq 0, win 65535, options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0
//
// The wording follows tcpdump 4.99 `-nn` (print-tcp.c, print-ip6.c), and
// `-nn -v` with Verbose, with these differences: the NS/AE bit and the
// three reserved bits, which tcpdump does not show, appear as ", ae" and
// ", reserved 0xN" after the flags; options tcpdump decodes but this
// package does not (md5, tfo, mptcp, ...) print as "unknown-N 0x<data>";
// no application-layer decoding follows "length N"; without Verbose, a
// bad checksum appends " [bad ip cksum 0xA -> 0xB]" or " [bad tcp cksum
// 0xA -> 0xB]" (0xA found, 0xB expected); and without Verbose the IP
// group of -v is still shown when the header carries something unusual
// for TCP traffic: a TOS/traffic class (DSCP or ECN), the reserved
// ("evil") flag, fragment fields, or IPv4 options. An IPv6 packet with
// extension headers is written as tcpdump writes it: "fd00::21 > fd00::20:
// HBH 4711 > 80: Flags [S], ...".
func (f *Formatter) AppendText(dst []byte, p *Packet) []byte {
	t := &p.TCP
	if f.IPPrefix {
		if p.IPVersion == 6 {
			dst = append(dst, "IP6 "...)
		} else {
			dst = append(dst, "IP "...)
		}
	}
	if f.Verbose || unusualIP(p) {
		if p.IPVersion == 6 {
			dst = appendIPv6Group(dst, &p.IPv6)
		} else {
			dst = appendIPv4Group(dst, &p.IPv4, p.IPChecksum, f.Verbose)
		}
	}
	if p.IPVersion == 6 && len(p.IPv6.Ext) > 0 {
		dst = p.IPv6.Src.AppendTo(dst)
		dst = append(dst, " > "...)
		dst = p.IPv6.Dst.AppendTo(dst)
		dst = append(dst, ": "...)
		dst = appendIPv6Ext(dst, p.IPv6.Ext, int(t.DataOffset)*4+len(t.Payload), f.Verbose)
		dst = strconv.AppendUint(dst, uint64(t.SrcPort), 10)
		dst = append(dst, " > "...)
		dst = strconv.AppendUint(dst, uint64(t.DstPort), 10)
	} else {
		dst = p.Src().AppendTo(dst)
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, uint64(t.SrcPort), 10)
		dst = append(dst, " > "...)
		dst = p.Dst().AppendTo(dst)
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, uint64(t.DstPort), 10)
	}
	dst = append(dst, ": Flags ["...)
	dst = AppendFlags(dst, t.Flags)
	dst = append(dst, ']')
	if t.Flags.Has(FlagNS) {
		dst = append(dst, ", ae"...)
	}
	if r := (t.Flags >> 9) & 7; r != 0 {
		dst = append(dst, ", reserved 0x"...)
		dst = strconv.AppendUint(dst, uint64(r), 16)
	}
	if f.Verbose && !p.isFragmented() {
		switch p.TCPChecksum.State {
		case ChecksumGood:
			dst = append(dst, ", cksum "...)
			dst = appendHex16(dst, p.TCPChecksum.Value)
			dst = append(dst, " (correct)"...)
		case ChecksumBad:
			dst = append(dst, ", cksum "...)
			dst = appendHex16(dst, p.TCPChecksum.Value)
			dst = append(dst, " (incorrect -> "...)
			dst = appendHex16(dst, p.TCPChecksum.Expected)
			dst = append(dst, ')')
		case ChecksumPartial:
			dst = append(dst, ", cksum "...)
			dst = appendHex16(dst, p.TCPChecksum.Value)
			dst = append(dst, " (partial, offloaded)"...)
		}
	}
	n := f.numbers(p)
	length := uint32(len(t.Payload))
	// print-tcp.c: seq is shown for data and for SYN, FIN and RST.
	if length > 0 || t.Flags&(FlagSYN|FlagFIN|FlagRST) != 0 {
		dst = append(dst, ", seq "...)
		dst = strconv.AppendUint(dst, uint64(n.Seq), 10)
		if length > 0 {
			dst = append(dst, ':')
			dst = strconv.AppendUint(dst, uint64(n.Seq+length), 10)
		}
	}
	if t.Flags.Has(FlagACK) {
		dst = append(dst, ", ack "...)
		dst = strconv.AppendUint(dst, uint64(n.Ack), 10)
	}
	dst = append(dst, ", win "...)
	dst = strconv.AppendUint(dst, uint64(t.Window), 10)
	if t.Flags.Has(FlagURG) {
		dst = append(dst, ", urg "...)
		dst = strconv.AppendUint(dst, uint64(t.Urgent), 10)
	}
	if len(t.Options) > 0 {
		dst = append(dst, ", options ["...)
		for i := range t.Options {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendOptionText(dst, &t.Options[i], n.SACKBase)
			if t.Options[i].Kind == OptEOL {
				break
			}
		}
		dst = append(dst, ']')
	}
	dst = append(dst, ", length "...)
	dst = strconv.AppendUint(dst, uint64(length), 10)
	if !f.Verbose {
		if p.IPChecksum.State == ChecksumBad {
			dst = appendBadChecksum(dst, "ip", p.IPChecksum)
		}
		switch p.TCPChecksum.State {
		case ChecksumBad:
			dst = appendBadChecksum(dst, "tcp", p.TCPChecksum)
		case ChecksumPartial:
			dst = append(dst, " [tcp cksum partial (offloaded)]"...)
		}
	}
	return dst
}

// isFragmented reports a fragment header in an IPv6 packet (tcpdump does
// not verify the upper checksum then, even for an atomic fragment).
func (p *Packet) isFragmented() bool {
	if p.IPVersion != 6 {
		return p.IPv4.MoreFragments || p.IPv4.FragmentOffset != 0
	}
	_, _, _, ok := p.IPv6.fragment()
	return ok
}

func appendBadChecksum(dst []byte, layer string, s ChecksumStatus) []byte {
	dst = append(dst, " [bad "...)
	dst = append(dst, layer...)
	dst = append(dst, " cksum "...)
	dst = appendHex16(dst, s.Value)
	dst = append(dst, " -> "...)
	dst = appendHex16(dst, s.Expected)
	return append(dst, ']')
}

func appendHex16(dst []byte, v uint16) []byte {
	const digits = "0123456789abcdef"
	return append(dst, '0', 'x', digits[v>>12], digits[v>>8&0xf], digits[v>>4&0xf], digits[v&0xf])
}

// AppendFlags appends tcpdump's letters for the eight classic flags in its
// order (F S R P . U E W), or "none" when none is set.
func AppendFlags(dst []byte, f Flags) []byte {
	const letters = "FSRP.UEW"
	start := len(dst)
	for i := 0; i < 8; i++ {
		if f&(1<<i) != 0 {
			dst = append(dst, letters[i])
		}
	}
	if len(dst) == start {
		dst = append(dst, "none"...)
	}
	return dst
}

// String returns the flags as tcpdump prints them inside "Flags [...]".
func (f Flags) String() string { return string(AppendFlags(nil, f)) }

// appendOptionText renders one option as tcpdump does.
func appendOptionText(dst []byte, o *Option, sackBase uint32) []byte {
	dst = append(dst, o.Kind.String()...)
	if o.Data != nil && o.Kind != OptEOL && o.Kind != OptNOP {
		// Unknown kinds, and known kinds crafted raw.
		if len(o.Data) > 0 {
			dst = append(dst, " 0x"...)
			dst = hex.AppendEncode(dst, o.Data)
		}
		if fixedOptionLen(o.Kind) != 0 || o.Kind == OptSACK {
			dst = append(dst, "[len "...)
			dst = strconv.AppendUint(dst, uint64(2+len(o.Data)), 10)
			dst = append(dst, ']')
		}
		return dst
	}
	switch o.Kind {
	case OptMSS:
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(o.MSS), 10)
	case OptWindowScale:
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(o.Shift), 10)
	case OptTimestamps:
		dst = append(dst, " val "...)
		dst = strconv.AppendUint(dst, uint64(o.TSVal), 10)
		dst = append(dst, " ecr "...)
		dst = strconv.AppendUint(dst, uint64(o.TSEcr), 10)
	case OptSACK:
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(len(o.Blocks)), 10)
		dst = append(dst, ' ')
		for _, b := range o.Blocks {
			dst = append(dst, '{')
			dst = strconv.AppendUint(dst, uint64(uint32(b.Left)-sackBase), 10)
			dst = append(dst, ':')
			dst = strconv.AppendUint(dst, uint64(uint32(b.Right)-sackBase), 10)
			dst = append(dst, '}')
		}
	}
	return dst
}

// String returns the option as tcpdump prints it (SACK blocks absolute).
func (o Option) String() string { return string(appendOptionText(nil, &o, 0)) }
