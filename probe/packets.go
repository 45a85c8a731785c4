package probe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Sequence numbers follow packetdrill (and tcpdump): in segments with SYN
// they are absolute, in all others relative to the ISN of their sender.
// tcpcraft picks its own ISN (it is whatever the script's inbound SYN says,
// so script and live numbers are the same), while the kernel under test
// picks its own: its script ISN (from the script's outbound SYN) and live
// ISN (from the captured one) differ by an offset applied both ways.

// inboundTCP builds the segment for an inbound ("<") packet line.
func (r *runner) inboundTCP(pk *Packet) craft.TCP {
	f := pk.Flags
	syn := f.Has(craft.FlagSYN)
	if syn {
		r.remoteISN = pk.Seq
	}
	seq := pk.Seq
	if !syn {
		seq += r.remoteISN
	}
	// The ACK (and SACK blocks) name the kernel's sequence space.
	ackOffset := r.liveLocalISN
	if syn {
		ackOffset = r.liveLocalISN - r.scriptLocalISN
	}
	ack := pk.Ack
	if f.Has(craft.FlagACK) {
		ack += ackOffset
	}
	opts := make([]craft.Option, len(pk.Options))
	for i, o := range pk.Options {
		o = o.Clone()
		switch o.Kind {
		case craft.OptSACK:
			for j := range o.Blocks {
				o.Blocks[j].Left = o.Blocks[j].Left.Add(craft.Size(ackOffset))
				o.Blocks[j].Right = o.Blocks[j].Right.Add(craft.Size(ackOffset))
			}
		case craft.OptTimestamps:
			if f.Has(craft.FlagACK) {
				o.TSEcr = r.liveEcr(o.TSEcr)
			}
		}
		opts[i] = o
	}
	dport := r.kernelPort
	if pk.DstPort != 0 {
		dport = pk.DstPort
	}
	return craft.TCP{
		SrcPort: r.localPort, DstPort: dport,
		Seq: craft.Seq(seq), Ack: craft.Seq(ack), Flags: f,
		Window: uint16(pk.Window), Urgent: pk.Urgent,
		Options: opts, Payload: make([]byte, pk.Len),
	}
}

// liveEcr maps a script TS ecr to the live value the kernel expects to
// see echoed: the live TS val the kernel sent where the script wrote that
// value, else the same distance from the first mapped TS val
// (packetdrill's interpolation), else the kernel's last TS val (scripts
// that leave the kernel's options unchecked with <...> give no mapping).
func (r *runner) liveEcr(script uint32) uint32 {
	if v, ok := r.tsMap[script]; ok {
		return v
	}
	if r.haveFirstTS {
		return script - r.firstScriptTS + r.firstActualTS
	}
	if r.haveKernelTS {
		return r.lastKernelTS
	}
	return script
}

// inbound sends an inbound packet at its time.
func (r *runner) inbound(ev *Event, t, tol time.Duration) (time.Duration, error) {
	pk := ev.Packet
	if err := r.waitUntil(t); err != nil {
		return 0, err
	}
	if err := r.checkLate(ev, "inbound packet", t, tol); err != nil {
		return 0, err
	}
	r.noteInbound(pk)
	if pk.ICMP != nil {
		return r.inboundICMP(ev)
	}
	if pk.Flags.Has(craft.FlagSYN) && !pk.Flags.Has(craft.FlagACK) && r.listening {
		r.newConnection()
	}
	tcp := r.inboundTCP(pk)
	ipHdr := craft.IPv4MinHeaderLen
	if r.env.Peer.Is6() {
		ipHdr = craft.IPv6HeaderLen
	}
	mtu := r.env.MTU
	if r.env.WholePackets {
		mtu = 0
	}
	pieces, err := segmentForMTU(tcp, mtu, ipHdr, r.set.MSS)
	if err != nil {
		return 0, r.fail(ev, "error building packet: %v", err)
	}
	var at time.Duration
	for i := range pieces {
		id := r.ipID
		if r.ipID++; r.ipID == 0 {
			r.ipID = 1
		}
		pkt, err := buildTCP(r.env.Local.Addr(), r.env.Peer, id, pk.IP, &pieces[i])
		if err != nil {
			return 0, r.fail(ev, "error building packet: %v", err)
		}
		// Stamped as it is handed to the kernel: whatever it makes the
		// kernel send is captured later, and so stamped later.
		at = r.now()
		sendErr := r.env.Link.Send(pkt)
		if r.verb != nil {
			var p craft.Packet
			live := ""
			if craft.ParsePacket(craft.LinkRaw, pkt, &p, craft.PacketOptions{}) == nil {
				live = r.format.Format(&p)
			}
			what := pk.String()
			if len(pieces) > 1 {
				what = fmt.Sprintf("%s (segment %d of %d)", what, i+1, len(pieces))
			}
			r.verbosef("%s %s   [%s]", secs(at), what, live)
		}
		if sendErr != nil {
			return 0, r.fail(ev, "error sending packet: %v", sendErr)
		}
	}
	return at, nil
}

// segmentForMTU cuts an inbound segment that does not fit the path MTU
// into MSS-sized ones, as TSO would on a NIC: the script may write one
// large segment (packetdrill's tun device takes it whole, with GSO), while
// a veth drops anything above its MTU. The pieces carry mss bytes each
// when mss is set (packetdrill's --mss, its gso_size), else as many as the
// MTU allows. PSH and FIN go on the last piece only.
func segmentForMTU(tcp craft.TCP, mtu, ipHdr, mss int) ([]craft.TCP, error) {
	hdr, err := tcp.HeaderLen()
	if err != nil {
		return nil, err
	}
	if mtu <= 0 || ipHdr+hdr+len(tcp.Payload) <= mtu {
		return []craft.TCP{tcp}, nil
	}
	if mss <= 0 || mss > mtu-ipHdr-hdr {
		mss = mtu - ipHdr - hdr
	}
	if mss <= 0 {
		return nil, fmt.Errorf("the TCP header alone (%d bytes) does not fit the path MTU %d", hdr, mtu)
	}
	var pieces []craft.TCP
	payload := tcp.Payload
	seq := tcp.Seq
	for len(payload) > 0 {
		n := min(mss, len(payload))
		p := tcp
		p.Seq, p.Payload = seq, payload[:n]
		if n < len(payload) {
			p.Flags &^= craft.FlagPSH | craft.FlagFIN
		}
		if len(pieces) > 0 {
			p.Flags &^= craft.FlagSYN | craft.FlagCWR
		}
		pieces = append(pieces, p)
		seq = seq.Add(craft.Size(n))
		payload = payload[n:]
	}
	return pieces, nil
}

// outbound waits for the packet the script expects from the kernel and
// checks it.
func (r *runner) outbound(ev *Event, t, tEnd, tol time.Duration) (time.Duration, error) {
	pk := ev.Packet
	deadline := r.start.Add(tEnd + tol + lateArrival)
	if ev.Time.Kind == TimeAny {
		deadline = time.Now().Add(anyTimeLimit)
	}
	seg, ok, err := r.assemble(pk, deadline)
	if err != nil {
		return 0, err
	}
	if !ok {
		f := r.fail(ev, "error handling packet: timed out waiting for packet")
		if ev.Time.Kind != TimeAny {
			f.Msg += fmt.Sprintf(" (expected at %s sec, waited until %s sec)", secs(t), secs(r.now()))
		}
		f.Details = []string{"script packet: " + secs(t) + " " + pk.String()}
		return 0, f
	}
	actualSYN := seg.tcp.Flags.Has(craft.FlagSYN)
	if actualSYN && pk.Flags.Has(craft.FlagSYN) {
		r.scriptLocalISN, r.liveLocalISN = pk.Seq, uint32(seg.tcp.Seq)
	}
	actual := r.toScript(seg)
	at := r.since(seg.at)
	r.verbosef("%s %s   [%s]", secs(at), actual, r.liveLine(seg))

	msg := r.verifyPacket(pk, actual, seg)
	if msg == "" && ev.Time.Kind != TimeAny {
		if at < t-r.slack-tol || at > tEnd+tol+r.ownLate {
			if ev.Time.Kind == TimeAbsoluteRange || ev.Time.Kind == TimeRelativeRange {
				msg = fmt.Sprintf("timing error: expected outbound packet in time range %s~%s sec but happened at %s sec; tolerance %s sec", secs(t), secs(tEnd), secs(at), secs(tol))
			} else {
				msg = fmt.Sprintf("timing error: expected outbound packet at %s sec but happened at %s sec; tolerance %s sec", secs(t), secs(at), secs(tol))
			}
		}
	}
	if msg != "" && len(r.pending) > 0 && r.pending[0].origin != nil && r.pending[0].origin.ev == ev && seg.origin == nil {
		// The kernel's segment was split for this very line: it
		// departed here, by its size first (packetdrill, which never
		// splits, reports the payload length).
		return 0, r.departure(r.pending[0].origin, fmt.Sprintf("the first %d bytes: %s", pk.Len, msg))
	}
	if msg != "" && seg.origin != nil {
		return 0, r.departure(seg.origin, fmt.Sprintf("the rest then departed from line %d: %s", ev.Pos.Line, msg))
	}
	if msg != "" {
		f := r.fail(ev, "error handling packet: %s", msg)
		f.Details = []string{
			"script packet: " + secs(t) + " " + pk.String(),
			"actual packet: " + secs(at) + " " + actual.String(),
		}
		return 0, f
	}
	// Learn from the matched packet: the kernel's port when it opens a
	// connection, and its timestamps for the ecr of later inbound packets.
	if actualSYN && !seg.tcp.Flags.Has(craft.FlagACK) {
		r.kernelPort = seg.src.Port()
	}
	for _, o := range seg.tcp.Options {
		if o.Kind != craft.OptTimestamps {
			continue
		}
		r.haveKernelTS, r.lastKernelTS = true, o.TSVal
		if sv, ok := scriptTSVal(pk); ok {
			r.tsMap[sv] = o.TSVal
			if !r.haveFirstTS {
				r.haveFirstTS, r.firstScriptTS, r.firstActualTS = true, sv, o.TSVal
			}
		}
	}
	return at, nil
}

func scriptTSVal(pk *Packet) (uint32, bool) {
	if pk.AnyOptions {
		return 0, false
	}
	for _, o := range pk.Options {
		if o.Kind == craft.OptTimestamps {
			return o.TSVal, true
		}
	}
	return 0, false
}

// pop returns the next segment from the kernel, waiting until deadline.
func (r *runner) pop(deadline time.Time) (segment, bool, error) {
	if len(r.pending) > 0 {
		seg := r.pending[0]
		r.pending = r.pending[1:]
		return seg, true, nil
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case seg, ok := <-r.segs:
			if !ok {
				if r.ctx.Err() != nil {
					return segment{}, false, r.ctx.Err()
				}
				return segment{}, false, fmt.Errorf("capture: %w", <-r.readErr)
			}
			if r.otherConnection(seg) {
				r.verbosef("%s > %s (another connection's, ignored)", secs(r.since(seg.at)), r.liveLine(seg))
				continue
			}
			return seg, true, nil
		case <-timer.C:
			return segment{}, false, nil
		case <-r.ctx.Done():
			return segment{}, false, r.ctx.Err()
		}
	}
}

// otherConnection tells a segment of a connection other than the one under
// test, which packetdrill drops unseen (run_packet.c matches a live packet
// to the socket under test by its 4-tuple, or to a connect() in progress by
// its SYN): a script that closes a connection and opens another need not
// write the old one's FIN. Lines with explicit ports take what they name.
func (r *runner) otherConnection(seg segment) bool {
	if (r.kernelPort == 0 && !r.awaitingSYN) || (r.cur != nil && r.cur.Packet != nil && (r.cur.Packet.SrcPort != 0 || r.cur.Packet.DstPort != 0)) {
		return false
	}
	if seg.tcp.Flags.Has(craft.FlagSYN) && !seg.tcp.Flags.Has(craft.FlagACK) {
		if r.awaitingSYN && seg.src.Port() == r.kernelPort && uint32(seg.tcp.Seq) == r.liveLocalISN {
			return true // the old connection's SYN, retransmitted
		}
		r.awaitingSYN = false
		return false // a new connection's SYN
	}
	if r.awaitingSYN {
		return true // a new socket is under test: the old one's are foreign
	}
	return seg.src.Port() != r.kernelPort || seg.tcp.DstPort != r.localPort
}

// split cuts seg after n payload bytes for the current line; the tail
// remembers where the kernel's segment was first cut.
func (r *runner) split(seg segment, n int, full segment) (head, tail segment) {
	head, tail = splitSegment(seg, n)
	if tail.origin == nil {
		tail.origin = &splitOrigin{ev: r.cur, t: r.curT, full: full}
	}
	return head, tail
}

// departure is the failure of a line whose captured segment was larger
// than the line said and was split to match it, when what was left over
// matched no later line: the actual packet departed from the script at the
// line it was split for, as packetdrill (which never splits) reports it.
func (r *runner) departure(o *splitOrigin, why string) *Failure {
	pk := o.ev.Packet
	f := r.fail(o.ev, "error handling packet: live packet payload: expected %d bytes vs actual %d bytes", pk.Len, len(o.full.tcp.Payload))
	f.Details = []string{
		"script packet: " + secs(o.t) + " " + pk.String(),
		"actual packet: " + secs(r.since(o.full.at)) + " " + r.toScript(o.full).String(),
		why,
	}
	return f
}

// checkLeftover fails the script if part of a split segment is still
// waiting when the script moves on to an event other than an outbound
// packet, or ends: it is an unexpected packet.
func (r *runner) checkLeftover() error {
	for _, seg := range r.pending {
		if seg.origin != nil {
			end := seg.tcp.Seq.Add(craft.Size(len(seg.tcp.Payload)))
			what := fmt.Sprintf("the rest (%d bytes, %d:%d) matched no later line", len(seg.tcp.Payload),
				uint32(seg.tcp.Seq)-r.liveLocalISN, uint32(end)-r.liveLocalISN)
			return r.departure(seg.origin, what)
		}
	}
	return nil
}

// splitSegment cuts a segment after n payload bytes, as GSO would have cut
// it on a device without segmentation offload: PSH and FIN stay on the last
// piece, CWR on the first.
func splitSegment(seg segment, n int) (head, tail segment) {
	head, tail = seg, seg
	head.tcp.Payload = seg.tcp.Payload[:n:n]
	head.tcp.Flags &^= craft.FlagPSH | craft.FlagFIN
	tail.tcp.Payload = seg.tcp.Payload[n:]
	tail.tcp.Seq = seg.tcp.Seq.Add(craft.Size(n))
	tail.tcp.Flags &^= craft.FlagSYN | craft.FlagCWR
	return head, tail
}

// assemble returns the live data matching an expected packet by byte
// range: a captured segment larger than expected (GSO/TSO on the veth
// hands over up to 64 KB) is split and its rest kept for the next
// expectation; an expected segment larger than a captured one (the script
// assumed TSO, the kernel sent MSS-sized segments) gathers the contiguous
// segments that follow.
func (r *runner) assemble(pk *Packet, deadline time.Time) (segment, bool, error) {
	seg, ok, err := r.pop(deadline)
	if !ok || err != nil {
		return seg, ok, err
	}
	n := len(seg.tcp.Payload)
	switch {
	case pk.Len > 0 && n > pk.Len:
		head, tail := r.split(seg, pk.Len, seg)
		r.pending = append([]segment{tail}, r.pending...)
		return head, true, nil
	case n > 0 && n < pk.Len:
		agg := seg
		agg.tcp.Payload = append(make([]byte, 0, pk.Len), seg.tcp.Payload...)
		for len(agg.tcp.Payload) < pk.Len {
			next, ok, err := r.pop(deadline)
			if err != nil {
				return seg, false, err
			}
			if !ok {
				break
			}
			end := agg.tcp.Seq.Add(craft.Size(len(agg.tcp.Payload)))
			if next.src != agg.src || next.tcp.Seq != end || next.tcp.Ack != agg.tcp.Ack ||
				len(next.tcp.Payload) == 0 || next.tcp.Flags.Has(craft.FlagSYN) || next.tcp.Flags.Has(craft.FlagRST) ||
				agg.tcp.Flags.Has(craft.FlagFIN) {
				r.pending = append([]segment{next}, r.pending...)
				break
			}
			if need := pk.Len - len(agg.tcp.Payload); len(next.tcp.Payload) > need {
				// What the kernel sent for this line, as one: the
				// segments gathered so far and all of this one.
				whole := agg
				whole.tcp.Payload = append(append([]byte(nil), agg.tcp.Payload...), next.tcp.Payload...)
				whole.tcp.Flags = agg.tcp.Flags&^(craft.FlagPSH|craft.FlagFIN) | next.tcp.Flags&(craft.FlagPSH|craft.FlagFIN)
				var tail segment
				next, tail = r.split(next, need, whole)
				r.pending = append([]segment{tail}, r.pending...)
			}
			if agg.origin == nil {
				agg.origin = next.origin
			}
			agg.tcp.Payload = append(agg.tcp.Payload, next.tcp.Payload...)
			agg.tcp.Flags = agg.tcp.Flags&^(craft.FlagPSH|craft.FlagFIN) | next.tcp.Flags&(craft.FlagPSH|craft.FlagFIN)
			agg.tcp.Window = next.tcp.Window
		}
		return agg, true, nil
	}
	return seg, true, nil
}

// toScript maps a live segment into script space.
func (r *runner) toScript(seg segment) *Packet {
	t := &seg.tcp
	syn := t.Flags.Has(craft.FlagSYN)
	seq := uint32(t.Seq) - r.liveLocalISN
	if syn {
		seq = uint32(t.Seq) - (r.liveLocalISN - r.scriptLocalISN)
	}
	ackOffset := r.remoteISN
	if syn {
		ackOffset = 0
	}
	ack := uint32(t.Ack)
	if t.Flags.Has(craft.FlagACK) {
		ack -= ackOffset
	}
	opts := make([]craft.Option, len(t.Options))
	for i, o := range t.Options {
		o = o.Clone()
		if o.Kind == craft.OptSACK {
			for j := range o.Blocks {
				o.Blocks[j].Left -= craft.Seq(ackOffset)
				o.Blocks[j].Right -= craft.Seq(ackOffset)
			}
		}
		opts[i] = o
	}
	return &Packet{Dir: Outbound, Flags: t.Flags, Seq: seq, Len: len(t.Payload), Ack: ack,
		Window: int32(t.Window), Urgent: t.Urgent, Options: opts}
}

// fieldError is packetdrill's check_field wording.
func fieldError(name string, want, got int64) string {
	return fmt.Sprintf("live packet field %s: expected: %d (%#x) vs actual: %d (%#x)", name, want, want, got, got)
}

func bit(f, m craft.Flags) int64 {
	if f.Has(m) {
		return 1
	}
	return 0
}

// verifyPacket compares a live packet (mapped into script space) with the
// script's, in packetdrill's order and words; "" means they match.
func (r *runner) verifyPacket(exp, act *Packet, seg segment) string {
	for _, fl := range []struct {
		name string
		f    craft.Flags
	}{{"tcp_fin", craft.FlagFIN}, {"tcp_syn", craft.FlagSYN}, {"tcp_rst", craft.FlagRST},
		{"tcp_psh", craft.FlagPSH}, {"tcp_ack", craft.FlagACK}, {"tcp_urg", craft.FlagURG},
		{"tcp_ece", craft.FlagECE}, {"tcp_cwr", craft.FlagCWR}} {
		if bit(exp.Flags, fl.f) != bit(act.Flags, fl.f) {
			return fieldError(fl.name, bit(exp.Flags, fl.f), bit(act.Flags, fl.f))
		}
	}
	if !exp.Flags.Has(craft.FlagSYN) || exp.Flags.Has(craft.FlagACK) {
		if got := seg.src.Port(); r.kernelPort != 0 && got != r.kernelPort && exp.DstPort == 0 {
			return fieldError("tcp_src_port", int64(r.kernelPort), int64(got))
		}
	}
	if exp.DstPort == 0 && seg.dst != 0 && seg.dst != r.localPort {
		return fieldError("tcp_dst_port", int64(r.localPort), int64(seg.dst))
	}
	if exp.SrcPort != 0 && seg.src.Port() != exp.SrcPort {
		return fieldError("tcp_src_port", int64(exp.SrcPort), int64(seg.src.Port()))
	}
	if exp.Seq != act.Seq {
		return fieldError("tcp_seq", int64(exp.Seq), int64(act.Seq))
	}
	if exp.Ack != act.Ack {
		return fieldError("tcp_ack_seq", int64(exp.Ack), int64(act.Ack))
	}
	if exp.Len != act.Len {
		return fieldError("tcp_payload_len", int64(exp.Len), int64(act.Len))
	}
	if exp.Window >= 0 && exp.Window != act.Window {
		return fieldError("tcp_window", int64(exp.Window), int64(act.Window))
	}
	if exp.Urgent != act.Urgent {
		return fieldError("tcp_urg_ptr", int64(exp.Urgent), int64(act.Urgent))
	}
	if msg := verifyIP(exp.IP, seg); msg != "" {
		return msg
	}
	if !exp.AnyOptions {
		if msg := r.verifyOptions(exp.Options, act.Options); msg != "" {
			return msg
		}
	}
	// The script's payload is zero bytes, as a "..." buffer writes them.
	if len(seg.tcp.Payload) > 0 && !bytes.Equal(seg.tcp.Payload, make([]byte, len(seg.tcp.Payload))) {
		return "incorrect outbound data payload"
	}
	return ""
}

// verifyOptions checks the kernel's options kind by kind, in order (Linux
// sends them in a fixed order). TS val is checked only with
// --tcp_ts_tick_usecs and TS ecr never, as in packetdrill.
func (r *runner) verifyOptions(exp, act []craft.Option) string {
	if len(exp) != len(act) {
		return fmt.Sprintf("bad outbound TCP options: expected %s vs actual %s", scriptOptions(exp), scriptOptions(act))
	}
	for i := range exp {
		e, a := exp[i], act[i]
		if e.Kind != a.Kind {
			return fmt.Sprintf("bad outbound TCP options: expected %s vs actual %s", scriptOptions(exp), scriptOptions(act))
		}
		switch e.Kind {
		case craft.OptEOL, craft.OptNOP:
		case craft.OptMD5:
			// The signature is the kernel's (RFC 2385 §2.0, over a key
			// tcpcraft does not hold): only its length is the script's.
			if len(e.Data) != len(a.Data) {
				return fmt.Sprintf("bad value in outbound TCP option (kind=%d): expected: %d signature bytes actual: %d", e.Kind, len(e.Data), len(a.Data))
			}
		case craft.OptTimestamps:
			if r.tsTick > 0 && r.haveFirstTS {
				mapped := r.firstScriptTS + (a.TSVal - r.firstActualTS)
				diff := int64(int32(mapped - e.TSVal))
				if diff < 0 {
					diff = -diff
				}
				// packetdrill's tolerance for TS val: a percentage of the
				// time since the start, not since the previous event (the
				// TS clock runs from the start); and whatever tcpcraft's
				// own late events moved the kernel's clock on.
				tol := max(r.tolerance, time.Duration(float64(r.curT)*r.percent/100)) + r.ownDrift
				if time.Duration(diff)*r.tsTick > tol {
					return fmt.Sprintf("bad outbound TCP timestamp value, tolerance %d: expected TS val %d, actual %d (mapped)", tol.Microseconds(), e.TSVal, mapped)
				}
			}
		default:
			if !e.Equal(&a) {
				return fmt.Sprintf("bad value in outbound TCP option (kind=%d): expected: %s actual: %s",
					e.Kind, trimAngles(scriptOptions([]craft.Option{e})), trimAngles(scriptOptions([]craft.Option{a})))
			}
		}
	}
	return ""
}

func trimAngles(s string) string { return s[1 : len(s)-1] }

// verifyIP checks the IP fields an outbound line wrote, in packetdrill's
// words (run_packet.c verify_outbound_live_tos and _ttl_or_hl); the flow
// label is not checked (packetdrill does not either).
func verifyIP(exp IPFields, seg segment) string {
	ecn := seg.tos & 3
	switch {
	case exp.ECN == ECNECT01:
		if ecn != 1 && ecn != 2 {
			return fmt.Sprintf("live packet field ip_ecn: expected: 0x1 or 0x2 vs actual: 0x%x", ecn)
		}
	case exp.ECN != ECNUnset:
		if want := exp.tosByte() & 3; want != ecn {
			return fieldError("ip_ecn", int64(want), int64(ecn))
		}
	case exp.HasTOS:
		if exp.TOS != seg.tos {
			return fieldError("tos", int64(exp.TOS), int64(seg.tos))
		}
	}
	if exp.TTL != 0 && exp.TTL != seg.ttl {
		return fieldError("ttl", int64(exp.TTL), int64(seg.ttl))
	}
	return ""
}

// inboundICMP sends an ICMP error line: an error about a segment the
// kernel sent tcpcraft (so it quotes the kernel's address and port as the
// source, tcpcraft's as the destination, and the quoted sequence number in
// the kernel's space, as packetdrill's map_inbound_icmp_tcp_packet), from
// tcpcraft's address as packetdrill sends it.
func (r *runner) inboundICMP(ev *Event) (time.Duration, error) {
	pk := ev.Packet
	c := pk.ICMP
	version := uint8(4)
	if r.env.Peer.Is6() {
		version = 6
	}
	typ, code, err := craft.ParseICMPKind(version, c.Type, c.Code)
	if err != nil {
		return 0, r.fail(ev, "error building packet: %v", err)
	}
	e := craft.ICMPError{IPVersion: version, Type: typ, Code: code}
	if c.MTU >= 0 {
		e.MTU = uint32(c.MTU)
	}
	proto := craft.ProtocolTCP
	if c.Quoted == "udp" {
		proto = craft.ProtocolUDP
	}
	// The quoted datagram: its IP header, then 8 bytes of the transport
	// header (ports and, for TCP, the sequence number), as packetdrill
	// quotes it (RFC 792's minimum).
	upper := make([]byte, 8)
	binary.BigEndian.PutUint16(upper[0:], r.kernelPort)
	binary.BigEndian.PutUint16(upper[2:], r.localPort)
	if proto == craft.ProtocolTCP {
		binary.BigEndian.PutUint32(upper[4:], c.Seq+r.liveLocalISN)
	}
	fullLen := 20 + c.Len
	if proto == craft.ProtocolUDP {
		fullLen = 8 + c.Len
		binary.BigEndian.PutUint16(upper[4:], uint16(fullLen))
	}
	var quote []byte
	if version == 4 {
		q := craft.IPv4{TTL: craft.DefaultTTL, DontFragment: true, Protocol: proto, Src: r.env.Peer, Dst: r.env.Local.Addr()}
		quote, err = q.AppendHeader(nil, fullLen, craft.EmitOptions{})
		e.IPv4 = craft.IPv4{TTL: craft.DefaultTTL, Src: r.env.Local.Addr(), Dst: r.env.Peer, DSCP: pk.IP.tosByte() >> 2, ECN: pk.IP.tosByte() & 3}
		if pk.IP.TTL != 0 {
			e.IPv4.TTL = pk.IP.TTL
		}
	} else {
		q := craft.IPv6{HopLimit: craft.DefaultTTL, Src: r.env.Peer, Dst: r.env.Local.Addr()}
		quote, err = q.AppendHeaders(nil, proto, fullLen)
		e.IPv6 = craft.IPv6{HopLimit: craft.DefaultTTL, Src: r.env.Local.Addr(), Dst: r.env.Peer, TrafficClass: pk.IP.tosByte(), FlowLabel: pk.IP.FlowLabel}
		if pk.IP.TTL != 0 {
			e.IPv6.HopLimit = pk.IP.TTL
		}
	}
	if err != nil {
		return 0, r.fail(ev, "error building packet: %v", err)
	}
	e.Quote.Bytes = append(quote, upper...)
	pkt, err := craft.AppendICMPError(nil, &e, craft.BuildOptions{})
	if err != nil {
		return 0, r.fail(ev, "error building packet: %v", err)
	}
	at := r.now()
	sendErr := r.env.Link.Send(pkt)
	r.verbosef("%s %s", secs(at), pk)
	if sendErr != nil {
		return 0, r.fail(ev, "error sending packet: %v", sendErr)
	}
	return at, nil
}
