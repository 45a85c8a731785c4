package stack

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// gsoCall is one SendGSO call as the fake link saw it (copies: the caller's
// memory is only lent for the call).
type gsoCall struct {
	hdr     []byte
	pieces  [][]byte
	mss     int
	payload int // bytes in the pieces
}

// gsoLink is one end of an in-memory wire that is also a GSOLink, a
// stand-in for capture.GSOSender: it records every SendGSO call and
// delivers to the peer what the kernel would put on the wire, the packet
// as it is or, for a super-segment, the mss-byte segments cut from it
// with their lengths, sequence numbers, IP IDs and checksums fixed and
// PSH/FIN on the last one only (tcp_gso_segment). Like capture.Capture it
// is a BurstReader, so the stack takes the ACKs that arrived together in
// one go and flushes once, as it does on a real link.
type gsoLink struct {
	*memLink
	fail error // when set, SendGSO sends nothing and returns it

	callMu     sync.Mutex
	calls      []gsoCall
	violations []string // what the stack handed over that the link's contract forbids
}

func newGSOLink(end *memLink) *gsoLink { return &gsoLink{memLink: end} }

func (l *gsoLink) SendGSO(hdr []byte, payload [][]byte, mss int) error {
	call := gsoCall{hdr: bytes.Clone(hdr), mss: mss}
	pkt := bytes.Clone(hdr)
	for _, p := range payload {
		call.pieces = append(call.pieces, bytes.Clone(p))
		call.payload += len(p)
		pkt = append(pkt, p...)
	}
	l.callMu.Lock()
	l.calls = append(l.calls, call)
	l.callMu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	segs, err := segment(pkt, mss)
	if err != nil {
		l.callMu.Lock()
		l.violations = append(l.violations, err.Error())
		l.callMu.Unlock()
		return err
	}
	for _, s := range segs {
		if err := l.memLink.Send(s); err != nil {
			return err
		}
	}
	return nil
}

// TryReadFrame returns a queued frame without waiting (BurstReader).
func (l *gsoLink) TryReadFrame() (capture.Frame, bool, error) { return l.memLink.take() }

func (l *gsoLink) snapshot() (calls []gsoCall, violations []string) {
	l.callMu.Lock()
	defer l.callMu.Unlock()
	return append([]gsoCall(nil), l.calls...), append([]string(nil), l.violations...)
}

// segment does to pkt what a GSO link does: checks it is one IPv4/TCP
// packet of the length its header says, and returns it as it is (then its
// checksums must be right) or, when mss > 0 and its payload is longer, cut
// into segments of mss payload bytes.
func segment(pkt []byte, mss int) ([][]byte, error) {
	if len(pkt) < 4 || int(pkt[2])<<8|int(pkt[3]) != len(pkt) {
		return nil, fmt.Errorf("IPv4 total length does not match the %d bytes handed over", len(pkt))
	}
	var p craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, pkt, &p, craft.PacketOptions{PartialChecksum: mss > 0}); err != nil {
		return nil, fmt.Errorf("not an IPv4/TCP packet: %v", err)
	}
	if p.IPVersion != 4 || p.IPChecksum.State != craft.ChecksumGood {
		return nil, fmt.Errorf("IP version %d, header checksum %s", p.IPVersion, p.IPChecksum.State)
	}
	if mss <= 0 || len(p.TCP.Payload) <= mss {
		var q craft.Packet
		if err := craft.ParsePacket(craft.LinkRaw, pkt, &q, craft.PacketOptions{}); err != nil || q.TCPChecksum.State != craft.ChecksumGood {
			return nil, fmt.Errorf("packet sent as it is (mss %d, %d payload bytes) has TCP checksum %s", mss, len(q.TCP.Payload), q.TCPChecksum.State)
		}
		return [][]byte{pkt}, nil
	}
	var segs [][]byte
	payload := p.TCP.Payload
	for off, i := 0, 0; off < len(payload); off, i = off+mss, i+1 {
		end := min(off+mss, len(payload))
		seg := p.TCP
		seg.Seq = p.TCP.Seq.Add(craft.Size(off))
		seg.Payload = payload[off:end]
		seg.DataOffset, seg.Checksum = 0, 0
		if end < len(payload) {
			seg.Flags &^= craft.FlagPSH | craft.FlagFIN
		}
		ip := p.IPv4
		ip.ID += uint16(i)
		ip.TotalLength, ip.IHL, ip.Checksum = 0, 0, 0
		b, err := craft.AppendIPv4TCP(nil, &ip, &seg, craft.BuildOptions{})
		if err != nil {
			return nil, fmt.Errorf("cutting a segment: %v", err)
		}
		segs = append(segs, b)
	}
	return segs, nil
}

// bulkOverGSO sends n bytes from a stack on link (the client) to a stack on
// a plain in-memory link (the server) and checks they arrive intact with
// nothing retransmitted. It returns the packets the client sent, as they
// went on the wire.
func bulkOverGSO(t *testing.T, link *gsoLink, serverLink *memLink, n int, clientTracer Tracer) [][]byte {
	t.Helper()
	// testConnConfig's 20 ms minimum RTO is below the 40 ms delayed ACK:
	// a tail segment whose ACK is held back would be retransmitted
	// spuriously. Linux's 200 ms (and more, for slow -race runs) keeps
	// the RTO out of a lossless transfer, so a timeout means a segment
	// went missing.
	cfg := testConnConfig()
	cfg.InitialRTO, cfg.MinRTO = time.Second, 500*time.Millisecond
	p := &pair{serverLink: serverLink, clientLink: link.memLink}
	p.server = startStack(t, serverLink, serverIP, cfg, nil)
	p.client = startStack(t, link, clientIP, cfg, clientTracer)
	l := listen(t, p.server, 80, 1)
	client, server := p.connect(t, l, 41000)
	ctx := testContext(t)

	data := randomData(t, n)
	wrote := async(func() error {
		_, err := client.Write(ctx, data)
		return errors.Join(err, client.CloseWrite())
	})
	got, err := readAll(ctx, server)
	if err != nil {
		t.Fatalf("server read: %v (after %d bytes)", err, len(got))
	}
	if err := await(t, wrote, "client Write"); err != nil {
		t.Fatalf("client Write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("the server received %d bytes that differ from the %d sent", len(got), n)
	}
	// The wire loses nothing, so nothing may be recovered: a timeout or a
	// fast recovery would mean that a segment the fake link delivered was
	// refused, or that one was never sent. Only tail loss probes may
	// retransmit (RFC 8985 §7: the receiver's delayed ACK for the last
	// segments can outlast 2*SRTT, which is tiny in memory).
	if st := client.Stats(); st.Timeouts != 0 || st.FastRecoveries != 0 || st.Retransmits > st.LossProbes {
		t.Errorf("losses recovered on a lossless wire: %+v", st)
	}
	link.mu.Lock()
	defer link.mu.Unlock()
	return append([][]byte(nil), link.sent...)
}

// dataSegments parses the packets and returns those that carry data.
func dataSegments(t *testing.T, pkts [][]byte) []craft.TCP {
	t.Helper()
	var segs []craft.TCP
	for _, raw := range pkts {
		var p craft.Packet
		if err := craft.ParsePacket(craft.LinkRaw, raw, &p, craft.PacketOptions{}); err != nil {
			t.Fatalf("the client sent an unparsable packet: %v", err)
		}
		if len(p.TCP.Payload) > 0 {
			segs = append(segs, p.TCP.Clone())
		}
	}
	return segs
}

// checkCoverage asserts that the data segments, in the order sent,
// start at the first one's sequence number and cover n bytes from there
// without a gap (a retransmission may repeat bytes already covered).
func checkCoverage(t *testing.T, segs []craft.TCP, n int) {
	t.Helper()
	if len(segs) == 0 {
		t.Fatal("no data segment was sent")
	}
	start, covered := segs[0].Seq, 0
	for _, s := range segs {
		off := int(s.Seq.Diff(start))
		if off < 0 || off > covered {
			t.Fatalf("a segment at offset %d after %d bytes sent: a gap or a segment before the first", off, covered)
		}
		covered = max(covered, off+len(s.Payload))
	}
	if covered != n {
		t.Errorf("the data segments cover %d bytes, want %d", covered, n)
	}
}

// checkIPIDs asserts that the IP IDs of the packets sent count up by one,
// through the segments the link cut from super-segments too (sendVector
// leaves room for them), skipping only 0.
func checkIPIDs(t *testing.T, pkts [][]byte) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		prev, next := uint16(pkts[i-1][4])<<8|uint16(pkts[i-1][5]), uint16(pkts[i][4])<<8|uint16(pkts[i][5])
		if d := next - prev; d != 1 && !(d == 2 && (prev == 0xffff || prev == 0)) {
			t.Errorf("packet %d has IP ID %d after %d", i, next, prev)
			return
		}
	}
}

// A bulk transfer through a GSO link arrives intact, mostly as
// super-segments whose payload comes in few pieces (one, as a rule)
// straight from the send buffer.
func TestBulkTransferOverGSOLink(t *testing.T) {
	for _, traced := range []bool{false, true} {
		t.Run(fmt.Sprintf("traced=%v", traced), func(t *testing.T) {
			// Traced, sendVector builds a true checksum for the
			// super-segment too and shows the tracer the packet in
			// one piece; untraced, it leaves the checksum to the link.
			var rec *recorder
			var tr Tracer
			if traced {
				rec = newRecorder()
				tr = rec
			}
			sl, cl := newWire()
			link := newGSOLink(cl)
			const n = 2 << 20
			sent := bulkOverGSO(t, link, sl, n, tr)
			calls, violations := link.snapshot()
			for _, v := range violations {
				t.Errorf("SendGSO: %s", v)
			}

			// What went on the wire: MSS-sized segments, as TCP
			// would send them, covering the data.
			segs := dataSegments(t, sent)
			mss := 0
			for _, s := range segs {
				mss = max(mss, len(s.Payload))
			}
			checkCoverage(t, segs, n)
			checkIPIDs(t, sent)

			var supers, superBytes, fewPieces int
			pieceCounts := map[int]int{}
			for i, c := range calls {
				if c.payload == 0 {
					t.Errorf("call %d: SendGSO without payload (pure ACKs go through Send)", i)
				}
				if c.mss > 0 {
					if c.payload <= c.mss {
						t.Errorf("call %d: mss %d but only %d payload bytes: not a super-segment", i, c.mss, c.payload)
					}
					if c.mss != mss {
						t.Errorf("call %d: mss %d, but the segments on the wire are up to %d bytes", i, c.mss, mss)
					}
					supers++
					superBytes += c.payload
				} else if c.payload > mss {
					t.Errorf("call %d: %d payload bytes with mss 0, more than one segment's %d", i, c.payload, mss)
				}
				pieceCounts[len(c.pieces)]++
				switch {
				case len(c.pieces) <= 2:
					fewPieces++
				case len(c.pieces) > 3 || len(c.pieces[1]) > mss:
					// See below: a third piece is one segment
					// copied out of the ring, never more.
					t.Errorf("call %d: pieces of %v bytes", i, pieceLens(c.pieces))
				}
			}
			t.Logf("%d SendGSO calls (%d super-segments, %d of %d bytes) for %d segments of up to %d bytes; calls by pieces: %v",
				len(calls), supers, superBytes, n, len(segs), mss, pieceCounts)
			if supers == 0 {
				t.Fatal("no super-segment was sent")
			}
			// Every data segment goes through SendGSO, and in a
			// bulk transfer most flushes carry several.
			if len(calls) > len(segs)/4 {
				t.Errorf("%d SendGSO calls for %d segments: want far fewer calls than segments", len(calls), len(segs))
			}
			if superBytes < n/2 {
				t.Errorf("only %d of %d bytes went in super-segments", superBytes, n)
			}
			// Consecutive segments lie one after the other in fsm's
			// send buffer (a 256 KB ring) and appendPiece joins them
			// into one piece. Where the ring wraps there are two, or
			// three when a segment straddles its end: fsm copies that
			// one out (a piece of its own, between the two). A
			// super-segment is at most 64 KB, so at most about one in
			// four calls wraps.
			if fewPieces < len(calls)/2 {
				t.Errorf("calls by number of payload pieces: %v; want most with 1 or 2", pieceCounts)
			}

			if traced {
				var tracedSupers int
				for _, s := range rec.segments() {
					if s.dir != Out || s.err != nil {
						continue
					}
					if s.payload > mss {
						tracedSupers++
						if s.checksum != craft.ChecksumGood || s.ipLen != s.rawLen {
							t.Errorf("traced super-segment of %d bytes: checksum %s, IP length %d of %d bytes", s.payload, s.checksum, s.ipLen, s.rawLen)
						}
					}
				}
				if tracedSupers != supers {
					t.Errorf("the tracer saw %d super-segments, the link %d", tracedSupers, supers)
				}
			}
		})
	}
}

func pieceLens(pieces [][]byte) []int {
	var n []int
	for _, p := range pieces {
		n = append(n, len(p))
	}
	return n
}

// One flush through sendSegments: the MSS-sized segments that follow each
// other and the short one after them become one super-segment, whose
// payload is one piece of the buffer they were cut from and whose header
// carries the PSH of its last segment; a data segment after a short one
// goes alone, with mss 0 and a true checksum; a FIN goes through Send. IP
// IDs leave room for the segments the link cuts.
func TestSendSegmentsCoalesces(t *testing.T) {
	a, _ := newWire()
	link := newGSOLink(a)
	s, err := New(link, Config{Local: clientIP})
	if err != nil {
		t.Fatal(err)
	}
	c := &Conn{s: s, local: netip.AddrPortFrom(clientIP, 41000), remote: netip.AddrPortFrom(serverIP, 80)}
	buf := randomData(t, 8000) // stands for fsm's send buffer
	ts := []craft.Option{craft.NOPOption(), craft.NOPOption(), craft.TimestampsOption(7, 9)}
	seg := func(seq, from, to int, flags craft.Flags) craft.TCP {
		return craft.TCP{SrcPort: 41000, DstPort: 80, Seq: craft.Seq(seq), Ack: 5000, Flags: flags, Window: 600, Options: ts, Payload: buf[from:to]}
	}
	const mss = 1448
	s.segBuf = append(s.segBuf[:0],
		seg(1000, 0, mss, craft.FlagACK),
		seg(1000+mss, mss, 2*mss, craft.FlagACK),
		seg(1000+2*mss, 2*mss, 2*mss+500, craft.FlagACK|craft.FlagPSH),
		seg(1000+2*mss+500, 2*mss+500, 2*mss+600, craft.FlagACK),
		seg(1000+2*mss+600, 0, 0, craft.FlagACK|craft.FlagFIN),
	)
	// The super-segment takes IDs 0xffff, 0 and 1 (the link numbers its
	// segments on, through 0); the stack's next packet then has 2.
	s.ipID = 0xfffe
	const firstID = 0xffff
	s.sendSegments(c, time.Now())

	calls, violations := link.snapshot()
	for _, v := range violations {
		t.Errorf("SendGSO: %s", v)
	}
	if len(calls) != 2 {
		t.Fatalf("%d SendGSO calls, want 2 (a super-segment and a lone segment)", len(calls))
	}
	super, lone := calls[0], calls[1]
	if super.mss != mss || super.payload != 2*mss+500 || len(super.pieces) != 1 || !bytes.Equal(super.pieces[0], buf[:2*mss+500]) {
		t.Errorf("super-segment: mss %d, pieces of %v bytes; want mss %d and one piece of %d bytes, the buffer's", super.mss, pieceLens(super.pieces), mss, 2*mss+500)
	}
	var h craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, append(bytes.Clone(super.hdr), super.pieces[0]...), &h, craft.PacketOptions{PartialChecksum: true}); err != nil {
		t.Fatalf("super-segment does not parse: %v", err)
	}
	if h.TCP.Seq != 1000 || h.TCP.Flags != craft.FlagACK|craft.FlagPSH || h.IPv4.ID != firstID {
		t.Errorf("super-segment header: seq %d flags %s IP ID %d; want seq 1000, flags ACK|PSH (its last segment's), ID %d", h.TCP.Seq, h.TCP.Flags, h.IPv4.ID, firstID)
	}
	if lone.mss != 0 || lone.payload != 100 {
		t.Errorf("lone segment: mss %d, %d payload bytes; want mss 0, 100 bytes", lone.mss, lone.payload)
	}
	// What the wire got: 3 segments cut from the super-segment, the lone
	// one, the FIN (which is not data: Send).
	sent := link.sent
	if len(sent) != 5 {
		t.Fatalf("%d packets on the wire, want 5", len(sent))
	}
	checkIPIDs(t, sent)
	var fin craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, sent[4], &fin, craft.PacketOptions{}); err != nil || !fin.TCP.Flags.Has(craft.FlagFIN) || fin.TCPChecksum.State != craft.ChecksumGood {
		t.Errorf("last packet: %v, flags %s, checksum %s; want a good FIN", err, fin.TCP.Flags, fin.TCPChecksum.State)
	}
	// The stack keeps no reference to the payloads it lent the link.
	for i, p := range s.pieces[:cap(s.pieces)] {
		if p != nil {
			t.Errorf("s.pieces[%d] still refers to %d bytes after the send", i, len(p))
		}
	}
}

// A link whose SendGSO fails is given up after the first failure: the
// data of that call and everything after go out segment by segment
// through Send at once, not by retransmission.
func TestGSOLinkFailureFallsBack(t *testing.T) {
	sl, cl := newWire()
	link := newGSOLink(cl)
	link.fail = errors.New("GSO send: no such device")
	const n = 1 << 20
	sent := bulkOverGSO(t, link, sl, n, nil)
	calls, _ := link.snapshot()
	if len(calls) != 1 {
		t.Fatalf("SendGSO called %d times, want once (the first failure turns it off)", len(calls))
	}
	if calls[0].payload == 0 {
		t.Errorf("the one SendGSO call carried no data")
	}
	segs := dataSegments(t, sent)
	checkCoverage(t, segs, n)
	mss := 0
	for _, s := range segs {
		mss = max(mss, len(s.Payload))
	}
	if mss > int(fsm.DefaultConfig().MSS) {
		t.Errorf("a segment of %d bytes went through Send: larger than an MSS", mss)
	}
	checkIPIDs(t, sent)
}

// appendPiece joins a piece to the previous one only when it continues it
// in the same array, within the previous piece's capacity.
func TestAppendPiece(t *testing.T) {
	buf := make([]byte, 100)
	other := make([]byte, 100)
	same := func(a, b []byte) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

	pieces := appendPiece(nil, buf[0:10])
	pieces = appendPiece(pieces, buf[10:30])
	if len(pieces) != 1 || !same(pieces[0], buf[0:30]) {
		t.Fatalf("adjacent slices of one array: %d pieces, first of %d bytes; want one piece buf[0:30]", len(pieces), len(pieces[0]))
	}
	pieces = appendPiece(pieces, buf[30:30])
	pieces = appendPiece(pieces, nil)
	if len(pieces) != 1 || len(pieces[0]) != 30 {
		t.Fatalf("empty slices changed the pieces: %d pieces", len(pieces))
	}
	pieces = appendPiece(pieces, buf[31:40]) // a one-byte gap
	if len(pieces) != 2 || !same(pieces[0], buf[0:30]) || !same(pieces[1], buf[31:40]) {
		t.Fatalf("slices with a gap between them were joined: %d pieces", len(pieces))
	}
	pieces = appendPiece(pieces, other[0:5]) // another array
	if len(pieces) != 3 || !same(pieces[2], other[0:5]) {
		t.Fatalf("slices of different arrays were joined: %d pieces", len(pieces))
	}
	pieces = appendPiece(pieces, other[0:5]) // the same bytes again: not a continuation
	if len(pieces) != 4 {
		t.Fatalf("a slice repeated was joined to itself: %d pieces", len(pieces))
	}
	// Adjacent in memory, but beyond the previous piece's capacity:
	// joining would need a reslice past it.
	capped := appendPiece(nil, buf[50:60:60])
	capped = appendPiece(capped, buf[60:70])
	if len(capped) != 2 {
		t.Fatalf("a slice was joined beyond the previous piece's capacity: %d pieces", len(capped))
	}
}
