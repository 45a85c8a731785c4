package craft

import (
	"encoding/hex"
)

// PacketJSON is the JSON form of one TCP packet, one object per line in
// `tcpcraft decode --json` and `connect --json`. Sequence numbers are
// absolute; rel_seq and rel_ack add tcpdump's relative numbers when the
// Formatter computed them.
type PacketJSON struct {
	// Time is set by the caller (this package reads no clocks), RFC 3339
	// with nanoseconds.
	Time      string `json:"time,omitempty"`
	IPVersion uint8  `json:"ip_version"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	SPort     uint16 `json:"sport"`
	DPort     uint16 `json:"dport"`
	// IPID, TOS, DF, MF, Rsvd, FragOffset (in bytes) and IPOptions (hex)
	// are IPv4 only.
	IPID       *uint16 `json:"ip_id,omitempty"`
	TOS        *uint8  `json:"tos,omitempty"`
	DF         bool    `json:"df,omitempty"`
	MF         bool    `json:"mf,omitempty"`
	Rsvd       bool    `json:"rsvd,omitempty"`
	FragOffset uint16  `json:"frag_offset,omitempty"`
	IPOptions  string  `json:"ip_options,omitempty"`
	// TrafficClass, FlowLabel and Ext (the extension headers' names, as
	// in the text form: HBH, RT6, frag, DSTOPT) are IPv6 only.
	TrafficClass *uint8   `json:"traffic_class,omitempty"`
	FlowLabel    *uint32  `json:"flow_label,omitempty"`
	Ext          []string `json:"ext,omitempty"`
	// TTL is the IPv4 TTL or the IPv6 hop limit.
	TTL        uint8   `json:"ttl"`
	IPLen      int     `json:"ip_len"`
	VLAN       *uint16 `json:"vlan,omitempty"`
	Flags      string  `json:"flags"`
	FlagBits   uint16  `json:"flag_bits"`
	Seq        uint32  `json:"seq"`
	Ack        uint32  `json:"ack"`
	RelSeq     *uint32 `json:"rel_seq,omitempty"`
	RelAck     *uint32 `json:"rel_ack,omitempty"`
	Win        uint16  `json:"win"`
	Urg        uint16  `json:"urg"`
	DataOffset uint8   `json:"data_offset"`
	Len        int     `json:"len"`
	// Options is never null: an empty list when there are none.
	Options     []OptionJSON  `json:"options"`
	IPChecksum  *ChecksumJSON `json:"ip_checksum,omitempty"`
	TCPChecksum ChecksumJSON  `json:"tcp_checksum"`
}

// OptionJSON is one TCP option in PacketJSON. Only the fields of its kind
// are present.
type OptionJSON struct {
	Kind   uint8           `json:"kind"`
	Name   string          `json:"name"`
	MSS    *uint16         `json:"mss,omitempty"`
	WScale *uint8          `json:"wscale,omitempty"`
	TSVal  *uint32         `json:"tsval,omitempty"`
	TSEcr  *uint32         `json:"tsecr,omitempty"`
	SACK   []SACKBlockJSON `json:"sack,omitempty"`
	// Data is the hex of an unknown option's bytes or of EOL padding.
	Data string `json:"data,omitempty"`
}

// SACKBlockJSON is one SACK block (absolute sequence numbers).
type SACKBlockJSON struct {
	Left  uint32 `json:"left"`
	Right uint32 `json:"right"`
}

// ChecksumJSON is a checksum and its status: "good", "bad", "unverified",
// or "partial" (left for checksum offload to finish).
type ChecksumJSON struct {
	Status string `json:"status"`
	// Value is the checksum found, as "0x1234".
	Value string `json:"value"`
	// Expected is the correct value when Status is "bad".
	Expected string `json:"expected,omitempty"`
}

func checksumJSON(s ChecksumStatus) ChecksumJSON {
	c := ChecksumJSON{Status: s.State.String(), Value: string(appendHex16(nil, s.Value))}
	if s.State == ChecksumBad {
		c.Expected = string(appendHex16(nil, s.Expected))
	}
	return c
}

// JSON returns the JSON form of p, updating the relative-number state like
// AppendText does (call one of them per packet).
func (f *Formatter) JSON(p *Packet) PacketJSON {
	t := &p.TCP
	j := PacketJSON{
		IPVersion:   p.IPVersion,
		Src:         p.Src().String(),
		Dst:         p.Dst().String(),
		SPort:       t.SrcPort,
		DPort:       t.DstPort,
		Flags:       t.Flags.String(),
		FlagBits:    uint16(t.Flags),
		Seq:         uint32(t.Seq),
		Ack:         uint32(t.Ack),
		Win:         t.Window,
		Urg:         t.Urgent,
		DataOffset:  t.DataOffset,
		Len:         len(t.Payload),
		Options:     make([]OptionJSON, 0, len(t.Options)),
		TCPChecksum: checksumJSON(p.TCPChecksum),
	}
	if p.IPVersion == 6 {
		j.TTL = p.IPv6.HopLimit
		j.IPLen = IPv6HeaderLen + int(p.IPv6.PayloadLength)
		tc, fl := p.IPv6.TrafficClass, p.IPv6.FlowLabel
		j.TrafficClass, j.FlowLabel = &tc, &fl
		for _, e := range p.IPv6.Ext {
			j.Ext = append(j.Ext, e.Name())
		}
	} else {
		id, tos := p.IPv4.ID, p.IPv4.DSCP<<2|p.IPv4.ECN
		j.IPID, j.TOS = &id, &tos
		j.DF = p.IPv4.DontFragment
		j.MF, j.Rsvd = p.IPv4.MoreFragments, p.IPv4.ReservedFlag
		j.FragOffset = p.IPv4.FragmentOffset * 8
		if len(p.IPv4.Options) > 0 {
			j.IPOptions = hex.EncodeToString(p.IPv4.Options)
		}
		j.TTL = p.IPv4.TTL
		j.IPLen = int(p.IPv4.TotalLength)
		c := checksumJSON(p.IPChecksum)
		j.IPChecksum = &c
	}
	if p.Tagged {
		v := p.VLAN
		j.VLAN = &v
	}
	if !f.Absolute {
		if n := f.Seqs.Relative(p); n.Relative {
			j.RelSeq, j.RelAck = &n.Seq, &n.Ack
		}
	}
	for i := range t.Options {
		j.Options = append(j.Options, optionJSON(&t.Options[i]))
	}
	return j
}

func optionJSON(o *Option) OptionJSON {
	j := OptionJSON{Kind: uint8(o.Kind), Name: o.Kind.String()}
	if o.Data != nil {
		j.Data = hex.EncodeToString(o.Data)
		if o.Kind != OptEOL {
			return j
		}
	}
	switch o.Kind {
	case OptMSS:
		v := o.MSS
		j.MSS = &v
	case OptWindowScale:
		v := o.Shift
		j.WScale = &v
	case OptTimestamps:
		v, e := o.TSVal, o.TSEcr
		j.TSVal, j.TSEcr = &v, &e
	case OptSACK:
		for _, b := range o.Blocks {
			j.SACK = append(j.SACK, SACKBlockJSON{Left: uint32(b.Left), Right: uint32(b.Right)})
		}
	}
	return j
}
