package fsm

import "github.com/tcpcraft/tcpcraft/craft"

// ResetFor builds the reply RFC 9293 §3.10.7.1 prescribes for a segment that
// belongs to no connection (state CLOSED): nothing for an RST; for a segment
// with the ACK bit, <SEQ=SEG.ACK><CTL=RST>; otherwise
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Ports are swapped; the reply
// carries no options. It reports false when no reply is due.
func ResetFor(seg *craft.TCP) (craft.TCP, bool) {
	if seg == nil || seg.Flags&craft.FlagRST != 0 {
		return craft.TCP{}, false
	}
	r := craft.TCP{SrcPort: seg.DstPort, DstPort: seg.SrcPort, Flags: craft.FlagRST}
	if seg.Flags&craft.FlagACK != 0 {
		r.Seq = seg.Ack
		return r, true
	}
	r.Ack = seg.Seq.Add(segLen(seg))
	r.Flags |= craft.FlagACK
	return r, true
}
