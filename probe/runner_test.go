package probe

// Runner tests against a scripted fake kernel: a Link whose "kernel" answers
// each injected segment with segments built by the test. They check the
// sequence-number mapping, timestamp echo rewriting, GSO splitting and
// aggregation, the wording of failures and the time checks, without
// privileges or namespaces.

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
)

var (
	fakeLocal  = netip.MustParseAddrPort("10.0.2.21:40000")
	fakeKernel = netip.MustParseAddrPort("10.0.2.20:8080")
)

// reply is a segment the fake kernel sends after a delay.
type reply struct {
	tcp   craft.TCP
	delay time.Duration
}

// fakeLink is a Link to a fake kernel: respond is called with every
// segment tcpcraft sends and returns the kernel's answers.
type fakeLink struct {
	t       *testing.T
	respond func(in craft.TCP) []reply
	frames  chan capture.Frame

	mu   sync.Mutex
	sent []craft.TCP
}

func newFakeLink(t *testing.T, respond func(in craft.TCP) []reply) *fakeLink {
	return &fakeLink{t: t, respond: respond, frames: make(chan capture.Frame, 64)}
}

func (l *fakeLink) Send(pkt []byte) error {
	var p craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, pkt, &p, craft.PacketOptions{}); err != nil {
		l.t.Errorf("runner sent a malformed packet: %v", err)
		return err
	}
	if p.IPv4.Src != fakeLocal.Addr() || p.IPv4.Dst != fakeKernel.Addr() || p.TCP.SrcPort != fakeLocal.Port() {
		l.t.Errorf("runner sent %v:%d > %v", p.IPv4.Src, p.TCP.SrcPort, p.IPv4.Dst)
	}
	in := p.TCP.Clone()
	l.mu.Lock()
	l.sent = append(l.sent, in)
	l.mu.Unlock()
	if l.respond != nil {
		for _, r := range l.respond(in) {
			l.emit(r.tcp, r.delay)
		}
	}
	return nil
}

// emit delivers a segment from the kernel after delay.
func (l *fakeLink) emit(tcp craft.TCP, delay time.Duration) {
	if tcp.SrcPort == 0 {
		tcp.SrcPort = fakeKernel.Port()
	}
	if tcp.DstPort == 0 {
		tcp.DstPort = fakeLocal.Port()
	}
	pkt, err := craft.BuildIPv4TCP(craft.IPv4{TTL: 64, ID: 1, Protocol: craft.ProtocolTCP, Src: fakeKernel.Addr(), Dst: fakeLocal.Addr()}, &tcp)
	if err != nil {
		l.t.Errorf("building the fake kernel's segment: %v", err)
		return
	}
	send := func() { l.frames <- capture.Frame{Data: pkt, Time: time.Now(), Length: len(pkt)} }
	if delay == 0 {
		send()
		return
	}
	time.AfterFunc(delay, send)
}

func (l *fakeLink) ReadFrame(ctx context.Context) (capture.Frame, error) {
	select {
	case f := <-l.frames:
		return f, nil
	case <-ctx.Done():
		return capture.Frame{}, ctx.Err()
	}
}

func (l *fakeLink) sentSegments() []craft.TCP {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]craft.TCP(nil), l.sent...)
}

func runFake(t *testing.T, src string, link *fakeLink, cfg Config) error {
	t.Helper()
	s, err := Parse("fake.pkt", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(s, true); err != nil {
		t.Fatal(err)
	}
	env := &Env{Link: link, Local: fakeLocal, Peer: fakeKernel.Addr(), PeerPort: fakeKernel.Port(), MTU: 1500}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return Run(ctx, s, env, cfg)
}

func failureOf(t *testing.T, err error) *Failure {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *Failure, got %v", err)
	}
	return f
}

// The kernel's ISN sits just below 2^32, so its relative numbers wrap.
const kernelISN = 0xffffff00

func tsOpt(val, ecr uint32) craft.Option {
	return craft.Option{Kind: craft.OptTimestamps, TSVal: val, TSEcr: ecr}
}

// handshakeResponder answers a SYN with a SYN-ACK (ISN kernelISN, TS val
// 777000) and data segments with an ACK.
func handshakeResponder(in craft.TCP) []reply {
	switch {
	case in.Flags == craft.FlagSYN:
		return []reply{{tcp: craft.TCP{Seq: kernelISN, Ack: in.Seq + 1, Flags: craft.FlagSYN | craft.FlagACK, Window: 65160,
			Options: []craft.Option{craft.MSSOption(1460), {Kind: craft.OptNOP}, {Kind: craft.OptNOP}, tsOpt(777000, 5)}}}}
	case len(in.Payload) > 0:
		return []reply{{tcp: craft.TCP{Seq: in.Ack, Ack: in.Seq.Add(craft.Size(len(in.Payload))), Flags: craft.FlagACK, Window: 500,
			Options: []craft.Option{{Kind: craft.OptNOP}, {Kind: craft.OptNOP}, tsOpt(777010, 6)}}}}
	}
	return nil
}

func TestRunnerMapsSequenceNumbersAndTimestamps(t *testing.T) {
	link := newFakeLink(t, handshakeResponder)
	err := runFake(t, `
0    < S 1000:1000(0) win 65535 <mss 1000,TS val 5 ecr 0>
+0   > S. 0:0(0) ack 1001 <mss 1460,nop,nop,TS val 100 ecr 5>
+0   < . 1:1(0) ack 1 win 1000 <nop,nop,TS val 6 ecr 100>
+0   < P. 1:11(10) ack 1 win 1000 <nop,nop,TS val 6 ecr 100>
+0   > . 1:1(0) ack 11 win 500 <nop,nop,TS val 110 ecr 6>
`, link, Config{})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	sent := link.sentSegments()
	if len(sent) != 3 {
		t.Fatalf("sent %d segments, want 3", len(sent))
	}
	// SYN: absolute, as written.
	if sent[0].Seq != 1000 || sent[0].Ack != 0 {
		t.Errorf("SYN seq %d ack %d, want 1000, 0", sent[0].Seq, sent[0].Ack)
	}
	// ACK: seq relative to our ISN (1000), ack relative to the kernel's
	// (wrapping past 2^32), ecr the kernel's real TS val for script val 100.
	if sent[1].Seq != 1001 || sent[1].Ack != kernelISN+1 {
		t.Errorf("ACK seq %d ack %#x, want 1001, %#x", sent[1].Seq, uint32(sent[1].Ack), uint32(kernelISN+1))
	}
	if ts := findTS(sent[1]); ts == nil || ts.TSVal != 6 || ts.TSEcr != 777000 {
		t.Errorf("ACK timestamps %+v, want val 6 ecr 777000", ts)
	}
	if sent[2].Seq != 1001 || len(sent[2].Payload) != 10 || sent[2].Flags != craft.FlagPSH|craft.FlagACK {
		t.Errorf("data segment %+v", sent[2])
	}
	if sent[0].SrcPort != fakeLocal.Port() || sent[0].DstPort != fakeKernel.Port() {
		t.Errorf("ports %d > %d", sent[0].SrcPort, sent[0].DstPort)
	}
}

func findTS(t craft.TCP) *craft.Option {
	for i := range t.Options {
		if t.Options[i].Kind == craft.OptTimestamps {
			return &t.Options[i]
		}
	}
	return nil
}

// TestRunnerEcrWithoutMapping: when the script left the kernel's options
// unchecked, an inbound ecr becomes the kernel's last TS val.
func TestRunnerEcrWithoutMapping(t *testing.T) {
	link := newFakeLink(t, handshakeResponder)
	if err := runFake(t, `
0    < S 0:0(0) win 65535 <mss 1000,TS val 5 ecr 0>
+0   > S. 0:0(0) ack 1 <...>
+0   < . 1:1(0) ack 1 win 1000 <nop,nop,TS val 6 ecr 4242>
`, link, Config{}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ts := findTS(link.sentSegments()[1]); ts == nil || ts.TSEcr != 777000 {
		t.Errorf("ecr %+v, want the kernel's last TS val 777000", ts)
	}
}

// dataResponder answers the handshake and then sends 3000 bytes in the
// way given.
func dataResponder(sizes []int) func(in craft.TCP) []reply {
	return func(in craft.TCP) []reply {
		if in.Flags == craft.FlagSYN {
			return []reply{{tcp: craft.TCP{Seq: kernelISN, Ack: in.Seq + 1, Flags: craft.FlagSYN | craft.FlagACK, Window: 65160}}}
		}
		if in.Flags != craft.FlagACK || len(in.Payload) != 0 || in.Ack != kernelISN+1 {
			return nil
		}
		var out []reply
		seq := craft.Seq(kernelISN + 1)
		for i, n := range sizes {
			f := craft.FlagACK
			if i == len(sizes)-1 {
				f |= craft.FlagPSH
			}
			out = append(out, reply{tcp: craft.TCP{Seq: seq, Ack: in.Seq, Flags: f, Window: 500, Payload: make([]byte, n)}})
			seq = seq.Add(craft.Size(n))
		}
		return out
	}
}

const dataHandshake = `
0    < S 0:0(0) win 65535
+0   > S. 0:0(0) ack 1 win 65160
+0   < . 1:1(0) ack 1 win 1000
`

func TestRunnerSplitsGSOSegments(t *testing.T) {
	link := newFakeLink(t, dataResponder([]int{3000}))
	err := runFake(t, dataHandshake+`
+0   > . 1:1001(1000) ack 1 win 500
+0   > . 1001:2001(1000) ack 1 win 500
+0   > P. 2001:3001(1000) ack 1 win 500
`, link, Config{})
	if err != nil {
		t.Fatalf("a 3000-byte GSO segment should match three 1000-byte expectations: %v", err)
	}
}

func TestRunnerGathersSegments(t *testing.T) {
	link := newFakeLink(t, dataResponder([]int{1000, 1000, 1000}))
	err := runFake(t, dataHandshake+`
+0   > P. 1:3001(3000) ack 1 win 500
`, link, Config{})
	if err != nil {
		t.Fatalf("three 1000-byte segments should match one 3000-byte expectation: %v", err)
	}
	// Gathering stops at the expected length: the rest is the next match.
	link = newFakeLink(t, dataResponder([]int{1500, 1500}))
	err = runFake(t, dataHandshake+`
+0   > . 1:1001(1000) ack 1 win 500
+0   > . 1001:2001(1000) ack 1 win 500
+0   > P. 2001:3001(1000) ack 1 win 500
`, link, Config{})
	if err != nil {
		t.Fatalf("1500+1500 bytes should match 1000+1000+1000: %v", err)
	}
}

func TestRunnerReportsMismatch(t *testing.T) {
	link := newFakeLink(t, dataResponder([]int{1000}))
	err := runFake(t, dataHandshake+`
+0   > P. 1:1001(1000) ack 2 win 500
`, link, Config{})
	f := failureOf(t, err)
	if f.Line != 6 { // dataHandshake starts with a newline
		t.Errorf("line %d, want 6", f.Line)
	}
	if want := "error handling packet: live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)"; f.Msg != want {
		t.Errorf("message %q\nwant %q", f.Msg, want)
	}
	if len(f.Details) != 2 || !strings.HasPrefix(f.Details[0], "script packet: ") || !strings.HasSuffix(f.Details[0], "> P. 1:1001(1000) ack 2 win 500") ||
		!strings.HasSuffix(f.Details[1], "> P. 1:1001(1000) ack 1 win 500") {
		t.Errorf("details %q", f.Details)
	}
	if !strings.HasPrefix(f.Error(), "fake.pkt:6: error handling packet:") {
		t.Errorf("Error() = %q", f.Error())
	}

	for _, tc := range []struct{ line, want string }{
		{"+0   > . 1:1001(1000) ack 1 win 500", "live packet field tcp_psh: expected: 0 (0x0) vs actual: 1 (0x1)"},
		{"+0   > P. 0:1000(1000) ack 1 win 500", "live packet field tcp_seq: expected: 0 (0x0) vs actual: 1 (0x1)"},
		{"+0   > P. 1:1001(1000) ack 1 win 501", "live packet field tcp_window: expected: 501 (0x1f5) vs actual: 500 (0x1f4)"},
		{"+0   > P. 1:1001(1000) ack 1 <mss 1460>", "bad outbound TCP options: expected <mss 1460> vs actual <>"},
		// Split to match the line and then wrong: the size is what
		// departed first, as packetdrill (which never splits) says.
		{"+0   > P. 1:501(500) ack 1", "live packet payload: expected 500 bytes vs actual 1000 bytes"},
	} {
		link := newFakeLink(t, dataResponder([]int{1000}))
		f := failureOf(t, runFake(t, dataHandshake+tc.line+"\n", link, Config{}))
		if want := "error handling packet: " + tc.want; f.Msg != want {
			t.Errorf("%s:\n got %q\nwant %q", tc.line, f.Msg, want)
		}
	}
}

// TestRunnerTiming: a segment 300 ms late fails a "+0" expectation but
// passes "+.3"; nothing at all is reported as such.
func TestRunnerTiming(t *testing.T) {
	late := func(in craft.TCP) []reply {
		if in.Flags == craft.FlagSYN {
			return []reply{{delay: 300 * time.Millisecond, tcp: craft.TCP{Seq: kernelISN, Ack: in.Seq + 1, Flags: craft.FlagSYN | craft.FlagACK, Window: 100}}}
		}
		return nil
	}
	f := failureOf(t, runFake(t, "0 < S 0:0(0) win 65535\n+0 > S. 0:0(0) ack 1\n", newFakeLink(t, late), Config{}))
	if !strings.HasPrefix(f.Msg, "error handling packet: timing error: expected outbound packet at 0.0") ||
		!strings.Contains(f.Msg, "but happened at 0.3") || f.Line != 2 {
		t.Errorf("late packet: %v", f)
	}
	// The fake link's timer fires late on a loaded machine (50 ms late
	// once, with both cores busy): the tolerance of the cases that must
	// pass measures the machine. 100 ms keeps them apart from the +0
	// case above (300 ms off) and from a reply at once.
	loaded := Config{Tolerance: 100 * time.Millisecond}
	if err := runFake(t, "0 < S 0:0(0) win 65535\n+.3 > S. 0:0(0) ack 1\n", newFakeLink(t, late), loaded); err != nil {
		t.Errorf("+.3: %v", err)
	}
	if err := runFake(t, "0 < S 0:0(0) win 65535\n+.25~+.35 > S. 0:0(0) ack 1\n", newFakeLink(t, late), loaded); err != nil {
		t.Errorf("+.25~+.35: %v", err)
	}
	if err := runFake(t, "0 < S 0:0(0) win 65535\n* > S. 0:0(0) ack 1\n", newFakeLink(t, late), Config{}); err != nil {
		t.Errorf("*: %v", err)
	}
	f = failureOf(t, runFake(t, "0 < S 0:0(0) win 65535\n+0 > S. 0:0(0) ack 1\n", newFakeLink(t, nil), Config{Tolerance: time.Millisecond}))
	if !strings.HasPrefix(f.Msg, "error handling packet: timed out waiting for packet") {
		t.Errorf("no packet: %v", f)
	}
}

// TestRunnerInboundTiming: inbound packets leave at their script times.
func TestRunnerInboundTiming(t *testing.T) {
	link := newFakeLink(t, nil)
	start := time.Now()
	if err := runFake(t, "0 < S 0:0(0) win 1\n+.1 < . 1:1(0) ack 1 win 1\n+.1 < . 1:1(0) ack 1 win 1\n", link, Config{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 2*time.Second {
		t.Errorf("three packets 0.1 s apart took %v", el)
	}
}

// TestSegmentForMTU: an inbound segment above the MTU leaves as MSS-sized
// pieces with PSH and FIN on the last.
func TestSegmentForMTU(t *testing.T) {
	tcp := craft.TCP{Seq: 100, Flags: craft.FlagPSH | craft.FlagACK | craft.FlagFIN, Payload: make([]byte, 3000)}
	pieces, err := segmentForMTU(tcp, 1500, craft.IPv4MinHeaderLen, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pieces) != 3 {
		t.Fatalf("%d pieces", len(pieces))
	}
	wantLen := []int{1460, 1460, 80}
	seq := craft.Seq(100)
	for i, p := range pieces {
		if len(p.Payload) != wantLen[i] || p.Seq != seq {
			t.Errorf("piece %d: seq %d len %d", i, p.Seq, len(p.Payload))
		}
		last := i == len(pieces)-1
		if p.Flags.Has(craft.FlagPSH) != last || p.Flags.Has(craft.FlagFIN) != last || !p.Flags.Has(craft.FlagACK) {
			t.Errorf("piece %d flags %v", i, p.Flags)
		}
		seq = seq.Add(craft.Size(len(p.Payload)))
	}
}

// A failure says how late tcpcraft was with its own events before it: a
// link whose send of the handshake's ACK takes 80 ms makes the next
// inbound segment (due at once) start that late; the fake kernel answers
// it with a wrong acknowledgment, and the failure carries the lateness.
// Without the slow send it carries what the machine made it (under
// ownStartLate, or the run would have failed on timing: the bound
// measures the machine, not the runner).
func TestFailureSaysHowLateTcpcraftWas(t *testing.T) {
	script := dataHandshake + `
+0   < P. 1:11(10) ack 1 win 1000
+0   > . 1:1(0) ack 11 win 500
`
	for _, slow := range []bool{false, true} {
		respond := dataResponder(nil)
		link := newFakeLink(t, func(in craft.TCP) []reply {
			if len(in.Payload) > 0 {
				// Acknowledges one byte short.
				return []reply{{tcp: craft.TCP{Seq: kernelISN + 1, Ack: in.Seq.Add(craft.Size(len(in.Payload) - 1)), Flags: craft.FlagACK, Window: 500}}}
			}
			if slow && in.Flags == craft.FlagACK {
				time.Sleep(80 * time.Millisecond)
			}
			return respond(in)
		})
		f := failureOf(t, runFake(t, script, link, Config{Tolerance: 20 * time.Millisecond}))
		if f.Line != 7 {
			t.Errorf("slow=%v: failed at line %d (%s), want 7 (the wrong answer)", slow, f.Line, f.Msg)
		}
		switch {
		case slow && f.OwnLate < 80*time.Millisecond:
			t.Errorf("slow send: OwnLate %v, want at least the 80 ms it slept", f.OwnLate)
		case !slow && f.OwnLate >= ownStartLate:
			t.Errorf("no slow send: OwnLate %v, want under %v", f.OwnLate, ownStartLate)
		}
	}
}
