package fault

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// A connection seen from our end (10.0.2.21:40000) to a peer
// (10.0.2.20:80). Our ISN is 1000, the peer's 5000; seq and ack below are
// relative to them.
var (
	us   = netip.MustParseAddrPort("10.0.2.21:40000")
	peer = netip.MustParseAddrPort("10.0.2.20:80")
	t0   = time.Unix(1700000000, 0)
)

const ourISN, peerISN = 1000, 5000

func packet(t *testing.T, out bool, flags craft.Flags, seq, ack uint32, n int, opts ...craft.Option) []byte {
	t.Helper()
	src, dst, isn, pisn := us, peer, uint32(ourISN), uint32(peerISN)
	if !out {
		src, dst, isn, pisn = peer, us, peerISN, ourISN
	}
	tcp := craft.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: craft.Seq(isn + seq), Flags: flags, Window: 502,
		Payload: make([]byte, n), Options: opts}
	if flags.Has(craft.FlagACK) {
		tcp.Ack = craft.Seq(pisn + ack)
	}
	b, err := craft.BuildIPv4TCP(craft.IPv4{TTL: 64, ID: 7, DontFragment: true, Protocol: craft.ProtocolTCP, Src: src.Addr(), Dst: dst.Addr()}, &tcp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	S  = craft.FlagSYN
	A  = craft.FlagACK
	PA = craft.FlagPSH | craft.FlagACK
	FA = craft.FlagFIN | craft.FlagACK
)

// rig drives an engine through a connection.
type rig struct {
	t   *testing.T
	e   *Engine
	now time.Time
	log []string // notes, in order
}

func newRig(t *testing.T, specs ...string) *rig {
	var ss []Spec
	for _, s := range specs {
		sp, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, sp)
	}
	return &rig{t: t, e: NewEngine(ss), now: t0}
}

func (r *rig) collect(o *Output) [][]byte {
	for _, n := range o.Notes {
		if n.Tuple.Src != us || n.Tuple.Dst != peer {
			r.t.Errorf("note for %v", n.Tuple)
		}
		r.log = append(r.log, n.Fault+": "+n.What)
	}
	var out [][]byte
	for _, p := range o.Send {
		out = append(out, append([]byte(nil), p...))
	}
	return out
}

// out sends one of our packets dt after the last event; it returns what
// the engine put on the wire.
func (r *rig) out(dt time.Duration, pkt []byte) [][]byte {
	r.now = r.now.Add(dt)
	return r.collect(r.e.Out(r.now, pkt))
}

func (r *rig) in(dt time.Duration, pkt []byte) bool {
	r.now = r.now.Add(dt)
	keep, o := r.e.In(r.now, pkt, false)
	r.collect(o)
	return keep
}

func (r *rig) tick(dt time.Duration) [][]byte {
	r.now = r.now.Add(dt)
	return r.collect(r.e.Tick(r.now))
}

// handshake opens the connection actively, our SYN first.
func (r *rig) handshake() {
	r.out(0, packet(r.t, true, S, 0, 0, 0, craft.MSSOption(1460)))
	r.in(50*time.Microsecond, packet(r.t, false, S|A, 0, 1, 0, craft.MSSOption(1460)))
	r.out(50*time.Microsecond, packet(r.t, true, A, 1, 1, 0))
}

func parse(t *testing.T, b []byte) *craft.Packet {
	t.Helper()
	var p craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, b, &p, craft.PacketOptions{}); err != nil {
		t.Fatal(err)
	}
	return &p
}

// seqs returns the relative sequence numbers of our packets.
func seqs(t *testing.T, pkts [][]byte) []uint32 {
	var out []uint32
	for _, b := range pkts {
		out = append(out, uint32(parse(t, b).TCP.Seq)-ourISN)
	}
	return out
}

func same(a []uint32, b ...uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// data sends our data segments i (1-based) of 100 bytes each, and returns
// what went out for each.
func (r *rig) data(from, to int) [][][]byte {
	var out [][][]byte
	for i := from; i <= to; i++ {
		out = append(out, r.out(time.Millisecond, packet(r.t, true, PA, 1+uint32(i-1)*100, 1, 100)))
	}
	return out
}

func TestNoFaultsPassThrough(t *testing.T) {
	e := NewEngine(nil)
	pkt := packet(t, true, PA, 1, 1, 10)
	o := e.Out(t0, pkt)
	if len(o.Send) != 1 || &o.Send[0][0] != &pkt[0] || len(o.Notes) != 0 {
		t.Errorf("without faults the packet must pass as it is: %+v", o)
	}
	if keep, _ := e.In(t0, pkt, false); !keep {
		t.Error("an arriving packet kept from the stack")
	}
}

func TestDropSeg(t *testing.T) {
	r := newRig(t, "drop:seg=3")
	r.handshake()
	got := r.data(1, 5)
	for i, sent := range got {
		if want := 1 - boolInt(i == 2); len(sent) != want {
			t.Errorf("segment %d: %d packets out, want %d", i+1, len(sent), want)
		}
	}
	// Its retransmission is not counted, and goes.
	if re := r.out(200*time.Millisecond, packet(t, true, PA, 201, 1, 100)); len(re) != 1 {
		t.Error("the retransmission of the dropped segment was dropped too")
	}
	if len(r.log) != 1 || r.log[0] != "drop:seg=3: dropped our data segment 3 (seq 201:301, 100 bytes)" {
		t.Errorf("notes %q", r.log)
	}
}

func TestDropEveryAfter(t *testing.T) {
	r := newRig(t, "drop:every=2,after=250")
	r.handshake()
	var dropped []int
	for i, sent := range r.data(1, 8) {
		if len(sent) == 0 {
			dropped = append(dropped, i+1)
		}
	}
	// Segments 1-3 carry the first 300 bytes: the fault starts after 250.
	if len(dropped) != 3 || dropped[0] != 4 || dropped[1] != 6 || dropped[2] != 8 {
		t.Errorf("dropped %v, want [4 6 8]", dropped)
	}
}

func TestDropProbabilitySeeded(t *testing.T) {
	run := func(spec string) []int {
		r := newRig(t, spec)
		r.handshake()
		var dropped []int
		for i, sent := range r.data(1, 400) {
			if len(sent) == 0 {
				dropped = append(dropped, i+1)
			}
		}
		return dropped
	}
	a, b, c := run("drop:p=0.1,seed=7"), run("drop:p=0.1,seed=7"), run("drop:p=0.1,seed=8")
	if len(a) < 20 || len(a) > 65 {
		t.Errorf("%d of 400 dropped at p=0.1", len(a))
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the same seed dropped other segments: %v and %v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 7 and 8 dropped the same segments: %v", a)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestReorder(t *testing.T) {
	r := newRig(t, "reorder:seg=2")
	r.handshake()
	got := r.data(1, 3)
	if len(got[1]) != 0 {
		t.Errorf("segment 2 went out at once")
	}
	if s := seqs(t, got[2]); !same(s, 201, 101) {
		t.Errorf("with segment 3: %v, want 201 then 101", s)
	}
	// Alone: held for reorderWait, then sent.
	r = newRig(t, "reorder:seg=1")
	r.handshake()
	r.data(1, 1)
	if s := r.tick(reorderWait - time.Millisecond); len(s) != 0 {
		t.Error("released early")
	}
	if s := seqs(t, r.tick(time.Millisecond)); !same(s, 1) {
		t.Errorf("after the wait: %v", s)
	}
	if d, ok := r.e.NextDeadline(); ok {
		t.Errorf("a deadline left: %v", d)
	}
}

func TestDupAndCorrupt(t *testing.T) {
	r := newRig(t, "dup:seg=2", "corrupt:seg=3")
	r.handshake()
	got := r.data(1, 3)
	if s := seqs(t, got[1]); !same(s, 101, 101) {
		t.Errorf("dup: %v", s)
	}
	if len(got[2]) != 1 {
		t.Fatalf("corrupt: %d packets", len(got[2]))
	}
	p := parse(t, got[2][0])
	if p.TCPChecksum.State != craft.ChecksumBad || p.IPChecksum.State != craft.ChecksumGood {
		t.Errorf("corrupt: checksums %v / %v, want a bad TCP one only", p.TCPChecksum.State, p.IPChecksum.State)
	}
	if p := parse(t, got[0][0]); p.TCPChecksum.State != craft.ChecksumGood {
		t.Error("segment 1's checksum changed")
	}
}

func TestDelayACK(t *testing.T) {
	r := newRig(t, "delay-ack:d=100ms")
	r.handshake()
	// The handshake's ACK is held too: it is a pure ACK.
	if s := r.tick(99 * time.Millisecond); len(s) != 0 {
		t.Fatal("released early")
	}
	if s := r.tick(time.Millisecond); len(s) != 1 {
		t.Fatalf("after 100 ms: %d packets", len(s))
	}
	r.in(time.Millisecond, packet(t, false, PA, 1, 1, 500))
	if s := r.out(0, packet(t, true, A, 1, 501, 0)); len(s) != 0 {
		t.Error("an ACK went at once")
	}
	if s := r.out(10*time.Millisecond, packet(t, true, PA, 1, 501, 50)); len(s) != 1 {
		t.Error("a data segment was held")
	}
	if s := r.tick(90 * time.Millisecond); len(s) != 1 || parse(t, s[0]).TCP.Ack != peerISN+501 {
		t.Errorf("the held ACK: %d packets", len(s))
	}
}

func TestDropACKWindow(t *testing.T) {
	r := newRig(t, "drop-ack:after=1000,for=1s")
	r.handshake()
	r.in(time.Millisecond, packet(t, false, PA, 1, 1, 500))
	if s := r.out(0, packet(t, true, A, 1, 501, 0)); len(s) != 1 {
		t.Error("an ACK withheld before 1000 bytes crossed")
	}
	r.in(time.Millisecond, packet(t, false, PA, 501, 1, 500))
	if s := r.out(0, packet(t, true, A, 1, 1001, 0)); len(s) != 0 {
		t.Error("an ACK sent after 1000 bytes crossed")
	}
	if s := r.out(999*time.Millisecond, packet(t, true, A, 1, 1001, 0)); len(s) != 0 {
		t.Error("an ACK sent before the second was over")
	}
	if s := r.out(time.Millisecond, packet(t, true, A, 1, 1001, 0)); len(s) != 1 {
		t.Error("an ACK withheld after the second was over")
	}
	want := []string{"drop-ack:after=1000,for=1s: withholding our ACKs for 1s (after 1000 bytes)",
		"drop-ack:after=1000,for=1s: withheld our ACK (ack 1001)", "drop-ack:after=1000,for=1s: withheld our ACK (ack 1001)",
		"drop-ack:after=1000,for=1s: over after 1s"}
	if strings.Join(r.log, "\n") != strings.Join(want, "\n") {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(r.log, "\n"), strings.Join(want, "\n"))
	}
}

// after=fin starts the window when the peer's FIN arrives, however long
// the data before it took: the ACK of the FIN is withheld, and the ACK of
// a FIN retransmitted after the window is not.
func TestDropACKAfterFIN(t *testing.T) {
	r := newRig(t, "drop-ack:after=fin,for=150ms")
	r.handshake()
	r.in(time.Millisecond, packet(t, false, PA, 1, 1, 500))
	if s := r.out(10*time.Second, packet(t, true, A, 1, 501, 0)); len(s) != 1 {
		t.Error("an ACK withheld before the peer's FIN")
	}
	r.in(time.Second, packet(t, false, FA, 501, 1, 0))
	if s := r.out(0, packet(t, true, A, 1, 502, 0)); len(s) != 0 {
		t.Error("the ACK of the peer's FIN sent")
	}
	r.in(200*time.Millisecond, packet(t, false, FA, 501, 1, 0))
	if s := r.out(0, packet(t, true, A, 1, 502, 0)); len(s) != 1 {
		t.Error("the ACK of the retransmitted FIN withheld after the window")
	}
	want := []string{"drop-ack:after=fin,for=150ms: withholding our ACKs for 150ms (after the peer's FIN)",
		"drop-ack:after=fin,for=150ms: withheld our ACK (ack 502)", "drop-ack:after=fin,for=150ms: over after 150ms"}
	if strings.Join(r.log, "\n") != strings.Join(want, "\n") {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(r.log, "\n"), strings.Join(want, "\n"))
	}
}

// A window opened by the peer's FIN holds while it runs, even when our FIN
// is done too and the engine ticks in between (it forgot the connection
// there, and the ACK of the FIN passed); once over and forgotten, a late
// retransmitted FIN does not open it again.
func TestDropACKAfterFINSurvivesTick(t *testing.T) {
	r := newRig(t, "drop-ack:after=fin,for=150ms")
	r.handshake()
	r.out(0, packet(t, true, FA, 1, 1, 0))
	r.in(time.Millisecond, packet(t, false, A, 1, 2, 0))
	r.in(time.Millisecond, packet(t, false, FA, 1, 2, 0))
	r.tick(0)
	if s := r.out(0, packet(t, true, A, 2, 2, 0)); len(s) != 0 {
		t.Error("the ACK of the peer's FIN sent after a tick")
	}
	r.tick(200 * time.Millisecond)
	r.in(0, packet(t, false, FA, 1, 2, 0))
	if s := r.out(0, packet(t, true, A, 2, 2, 0)); len(s) != 1 {
		t.Error("the ACK of a late retransmitted FIN withheld")
	}
	if n := strings.Count(strings.Join(r.log, "\n"), "withholding"); n != 1 {
		t.Errorf("the window opened %d times:\n%s", n, strings.Join(r.log, "\n"))
	}
}

func TestZeroWindow(t *testing.T) {
	r := newRig(t, "zero-window:after=1000,for=500ms")
	r.handshake()
	ts := craft.TimestampsOption(77, 88)
	r.in(time.Millisecond, packet(t, false, PA, 1, 1, 1000))
	s := r.out(0, packet(t, true, A, 1, 1001, 0, craft.NOPOption(), craft.NOPOption(), ts))
	if len(s) != 1 || parse(t, s[0]).TCP.Window != 0 {
		t.Fatalf("the ACK after 1000 bytes: %d packets, window %d", len(s), parse(t, s[0]).TCP.Window)
	}
	if p := parse(t, s[0]); p.TCPChecksum.State != craft.ChecksumGood {
		t.Error("the rewritten ACK's checksum is wrong")
	}
	if d, ok := r.e.NextDeadline(); !ok || !d.Equal(r.now.Add(500*time.Millisecond)) {
		t.Errorf("next deadline %v %v", d, ok)
	}
	upd := r.tick(500 * time.Millisecond)
	if len(upd) != 1 {
		t.Fatalf("no window update at the end: %d packets", len(upd))
	}
	p := parse(t, upd[0])
	if p.TCP.Flags != A || p.TCP.Window != 502 || uint32(p.TCP.Seq) != ourISN+1 || uint32(p.TCP.Ack) != peerISN+1001 ||
		len(p.TCP.Payload) != 0 || craft.FindOption(p.TCP.Options, craft.OptTimestamps) == nil || p.TCPChecksum.State != craft.ChecksumGood {
		t.Errorf("window update %+v", p.TCP)
	}
	if s := r.out(time.Millisecond, packet(t, true, A, 1, 1001, 0)); parse(t, s[0]).TCP.Window != 502 {
		t.Error("the window stays shut after the update")
	}
}

func TestMSS(t *testing.T) {
	r := newRig(t, "mss:value=48")
	s := r.out(0, packet(t, true, S, 0, 0, 0, craft.MSSOption(1460), craft.NOPOption(), craft.WindowScaleOption(7)))
	p := parse(t, s[0])
	if o := craft.FindOption(p.TCP.Options, craft.OptMSS); o == nil || o.MSS != 48 || p.TCPChecksum.State != craft.ChecksumGood ||
		craft.FindOption(p.TCP.Options, craft.OptWindowScale) == nil {
		t.Errorf("SYN options %v", p.TCP.Options)
	}
	r = newRig(t, "mss:value=100")
	s = r.out(0, packet(t, true, S, 0, 0, 0))
	if o := craft.FindOption(parse(t, s[0]).TCP.Options, craft.OptMSS); o == nil || o.MSS != 100 {
		t.Error("no MSS option added to a SYN without one")
	}
}

func TestTriggers(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		abort bool
	}{{"rst:after=1000", true}, {"fin:after=1000", false}} {
		e := NewEngine([]Spec{mustParse(t, tc.spec)})
		e.Out(t0, packet(t, true, S, 0, 0, 0))
		e.In(t0, packet(t, false, S|A, 0, 1, 0), false)
		if o := e.Out(t0, packet(t, true, PA, 1, 1, 999)); len(o.Triggers) != 0 {
			t.Errorf("%s: triggered at 999 bytes", tc.spec)
		}
		_, o := e.In(t0, packet(t, false, PA, 1, 1000, 1), false)
		if len(o.Triggers) != 1 || o.Triggers[0].Abort != tc.abort || o.Triggers[0].Tuple != (craft.FourTuple{Src: us, Dst: peer}) {
			t.Errorf("%s: triggers %+v", tc.spec, o.Triggers)
		}
		if o := e.Out(t0, packet(t, true, PA, 1000, 2, 10)); len(o.Triggers) != 0 {
			t.Errorf("%s: triggered twice", tc.spec)
		}
	}
}

// rst:after=fin resets when the peer's FIN arrives, not before.
func TestResetAfterFIN(t *testing.T) {
	e := NewEngine([]Spec{mustParse(t, "rst:after=fin")})
	e.Out(t0, packet(t, true, S, 0, 0, 0))
	e.In(t0, packet(t, false, S|A, 0, 1, 0), false)
	if _, o := e.In(t0, packet(t, false, PA, 1, 1, 5000), false); len(o.Triggers) != 0 {
		t.Errorf("triggered by data: %+v", o.Triggers)
	}
	_, o := e.In(t0, packet(t, false, FA, 5001, 1, 0), false)
	if len(o.Triggers) != 1 || !o.Triggers[0].Abort {
		t.Errorf("the peer's FIN: triggers %+v", o.Triggers)
	}
}

func mustParse(t *testing.T, s string) Spec {
	sp, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestDead(t *testing.T) {
	r := newRig(t, "dead:after=100,for=1s")
	r.handshake()
	r.data(1, 1)
	if s := r.out(time.Millisecond, packet(t, true, PA, 101, 1, 100)); len(s) != 0 {
		t.Error("a dead end sent")
	}
	if r.in(time.Millisecond, packet(t, false, A, 1, 101, 0)) {
		t.Error("a dead end heard")
	}
	if s := r.out(time.Second, packet(t, true, PA, 101, 1, 100)); len(s) != 1 {
		t.Error("still dead after for=1s")
	}
	if !r.in(time.Millisecond, packet(t, false, A, 1, 201, 0)) {
		t.Error("still deaf after for=1s")
	}
}

func TestRelease(t *testing.T) {
	r := newRig(t, "dead", "delay-ack:d=1s")
	r.handshake() // nothing out
	r.e.Release(r.now)
	if s := r.out(0, packet(t, true, craft.FlagRST, 1, 0, 0)); len(s) != 1 {
		t.Error("the RST on the way out did not go after Release")
	}
}
