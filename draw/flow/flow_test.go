package flow

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// readPcap feeds every packet of a classic pcap file to a Builder.
func readPcap(t *testing.T, path string, keep bool) []*Conn {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b := Builder{KeepPayload: keep}
	var p craft.Packet
	for n := 1; ; n++ {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := craft.ParsePacket(craft.LinkType(r.LinkType()), data, &p, craft.PacketOptions{}); err != nil {
			t.Fatalf("packet %d: %v", n, err)
		}
		b.Add(n, ci.Timestamp, &p)
	}
	return b.Conns()
}

func states(ss ...fsm.State) []fsm.State { return ss }

func TestLinuxHTTPCapture(t *testing.T) {
	conns := readPcap(t, "../testdata/linux-http.pcap", true)
	if len(conns) != 3 {
		t.Fatalf("%d connections, want 3", len(conns))
	}
	http := conns[0]
	if http.Client().String() != "10.0.2.21:53888" || http.Server().String() != "10.0.2.20:80" || http.Partial {
		t.Errorf("conn 0: %v partial=%v", http, http.Partial)
	}
	wantClient := states(fsm.Closed, fsm.SynSent, fsm.Established, fsm.CloseWait, fsm.LastAck, fsm.Closed)
	// The client's FIN acknowledges the server's: the server goes from
	// FIN-WAIT-1 straight to TIME-WAIT.
	wantServer := states(fsm.Listen, fsm.SynReceived, fsm.Established, fsm.FinWait1, fsm.TimeWait)
	if !reflect.DeepEqual(http.Paths[Client], wantClient) || !reflect.DeepEqual(http.Paths[Server], wantServer) {
		t.Errorf("paths:\nclient %v\nserver %v", http.Paths[Client], http.Paths[Server])
	}
	if s := http.Stats; s[Client].Bytes != 83 || s[Server].Bytes != 217 || s[Client].Packets != 6 || s[Server].Packets != 6 ||
		s[Client].Retransmits+s[Server].Retransmits != 0 {
		t.Errorf("stats %+v", s)
	}
	if d := http.Duration(); d <= 0 || d > time.Second {
		t.Errorf("duration %v", d)
	}
	// Relative numbers as tcpdump shows them: the request is seq 1:84, the
	// server's data 1:186 then 186:218 with ack 84.
	req, resp2 := http.Segments[3], http.Segments[7]
	if req.SeqOff != 1 || req.Len != 83 || req.AckOff != 1 || resp2.SeqOff != 186 || resp2.AckOff != 84 {
		t.Errorf("offsets: request %d+%d ack %d, response %d ack %d", req.SeqOff, req.Len, req.AckOff, resp2.SeqOff, resp2.AckOff)
	}
	// Window scaling (shift 10 both ways) applies after the handshake.
	if syn, ack := http.Segments[0], http.Segments[2]; syn.WindowBytes != 64240 || ack.WindowBytes != 63<<10 || !http.WindowScaled() {
		t.Errorf("windows: SYN %d, ACK %d", syn.WindowBytes, ack.WindowBytes)
	}
	if syn := http.Segments[0]; syn.MSS != 1460 || syn.WScale != 10 || !syn.SACKPermitted || !syn.TSOption {
		t.Errorf("SYN options %+v", syn)
	}
	// Which segment moved which end: the client's FIN-less close happens
	// when the server's FIN arrives (segment 10).
	if ch := http.Segments[9].Changes; len(ch) != 1 || ch[0] != (Change{Server, fsm.Established, fsm.FinWait1, "CLOSE, snd FIN"}) {
		t.Errorf("changes of the server's FIN: %+v", ch)
	}
	// The client is known to have the FIN when its FIN-ACK acknowledges
	// it: CLOSE-WAIT, then LAST-ACK as it sends its own; the server gets
	// the FIN and the ACK of its own FIN together.
	want := []Change{
		{Client, fsm.Established, fsm.CloseWait, "rcv FIN, snd ACK"},
		{Client, fsm.CloseWait, fsm.LastAck, "CLOSE, snd FIN"},
		{Server, fsm.FinWait1, fsm.TimeWait, "rcv FIN,ACK of FIN, snd ACK"},
	}
	if ch := http.Segments[10].Changes; !reflect.DeepEqual(ch, want) {
		t.Errorf("changes of the client's FIN: %+v", ch)
	}
	reqBytes, missing := http.Stream(Client)
	if missing != 0 || !strings.HasPrefix(string(reqBytes), "GET /index.html HTTP/1.1\r\n") || len(reqBytes) != 83 {
		t.Errorf("client stream %q (missing %d)", reqBytes, missing)
	}
	respBytes, _ := http.Stream(Server)
	if len(respBytes) != 217 || !strings.HasPrefix(string(respBytes), "HTTP/1.0 200 OK") {
		t.Errorf("server stream %d bytes: %q", len(respBytes), respBytes)
	}
	if f := http.Follow(); len(f) != 2 || f[0].From != Client || f[1].From != Server {
		t.Errorf("follow: %d chunks", len(f))
	}

	refused := conns[1]
	if !reflect.DeepEqual(refused.Paths[Client], states(fsm.Closed, fsm.SynSent, fsm.Closed)) || !reflect.DeepEqual(refused.Paths[Server], states(fsm.Closed)) {
		t.Errorf("refused: client %v server %v", refused.Paths[Client], refused.Paths[Server])
	}

	v6 := conns[2]
	if v6.Client().String() != "[fd00:2::21]:58208" {
		t.Errorf("v6 client %v", v6.Client())
	}
	wantClient = states(fsm.Closed, fsm.SynSent, fsm.Established, fsm.FinWait1, fsm.FinWait2, fsm.TimeWait)
	wantServer = states(fsm.Listen, fsm.SynReceived, fsm.Established, fsm.CloseWait, fsm.LastAck, fsm.Closed)
	if !reflect.DeepEqual(v6.Paths[Client], wantClient) || !reflect.DeepEqual(v6.Paths[Server], wantServer) {
		t.Errorf("v6 paths:\nclient %v\nserver %v", v6.Paths[Client], v6.Paths[Server])
	}
	for _, spec := range []string{"2", "#2", "[fd00:2::20]:8080", "[fd00:2::21]:58208-[fd00:2::20]:8080"} {
		if c, err := Find(conns, spec); err != nil || c != v6 {
			t.Errorf("Find(%q) = %v, %v", spec, c, err)
		}
	}
	for _, spec := range []string{"3", "-1", "10.0.2.20:99", "nonsense", "1.2.3.4:5>6.7.8.9:10>1.1.1.1:1"} {
		if _, err := Find(conns, spec); err == nil {
			t.Errorf("Find(%q): no error", spec)
		}
	}
	if c, err := Find(conns, ""); err != nil || c != http {
		t.Errorf("Find(\"\") = %v, %v", c, err)
	}
}

// wire builds packets of one connection between client and server.
type wire struct {
	t      *testing.T
	b      Builder
	cli    netip.AddrPort
	srv    netip.AddrPort
	now    time.Time
	pkt    craft.Packet
	n      int
	client bool
}

func newWire(t *testing.T) *wire {
	return &wire{t: t, b: Builder{KeepPayload: true},
		cli: netip.MustParseAddrPort("10.0.2.21:40000"), srv: netip.MustParseAddrPort("10.0.2.20:80"),
		now: time.Unix(1700000000, 0)}
}

// send adds one segment from the client (fromClient) or the server.
func (w *wire) send(fromClient bool, flags craft.Flags, seq, ack uint32, payload []byte, opts ...craft.Option) *Segment {
	w.t.Helper()
	src, dst := w.cli, w.srv
	if !fromClient {
		src, dst = dst, src
	}
	w.now = w.now.Add(time.Millisecond)
	tcp := craft.TCP{SrcPort: src.Port(), DstPort: dst.Port(), Seq: craft.Seq(seq), Ack: craft.Seq(ack), Flags: flags, Window: 1000, Options: opts, Payload: payload}
	raw, err := craft.BuildIPv4TCP(craft.IPv4{TTL: 64, Src: src.Addr(), Dst: dst.Addr()}, &tcp)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := craft.ParsePacket(craft.LinkRaw, raw, &w.pkt, craft.PacketOptions{}); err != nil {
		w.t.Fatal(err)
	}
	w.n++
	_, seg := w.b.Add(w.n, w.now, &w.pkt)
	return seg
}

const (
	syn    = craft.FlagSYN
	ack    = craft.FlagACK
	fin    = craft.FlagFIN
	rst    = craft.FlagRST
	psh    = craft.FlagPSH
	synack = craft.FlagSYN | craft.FlagACK
)

// handshake opens a connection with client ISN ci and server ISN si.
func (w *wire) handshake(ci, si uint32) {
	w.send(true, syn, ci, 0, nil, craft.MSSOption(1000), craft.SACKPermittedOption())
	w.send(false, synack, si, ci+1, nil, craft.MSSOption(1000), craft.SACKPermittedOption())
	w.send(true, ack, ci+1, si+1, nil)
}

func TestRetransmissionKinds(t *testing.T) {
	w := newWire(t)
	const ci, si = 0xfffff000, 5000 // the client's numbers wrap mid-stream
	w.handshake(ci, si)
	data := bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes
	seq := func(off int) uint32 { return ci + 1 + uint32(off) }
	for i := 0; i < 6; i++ {
		// Segment 1 (offset 100..200) is lost.
		w.send(true, ack|psh, seq(i*100), si+1, data[i*100:i*100+100])
		if i == 0 {
			w.send(false, ack, si+1, seq(100), nil)
		} else if i > 1 {
			w.send(false, ack, si+1, seq(100), nil, craft.SACKOption(craft.SACKBlock{Left: craft.Seq(seq(200)), Right: craft.Seq(seq(i*100 + 100))}))
		}
	}
	// Three duplicate ACKs so far (for segments 3, 4, 5)... the fourth
	// ACK above was for segment 2, a duplicate too: fast retransmit.
	fast := w.send(true, ack|psh, seq(100), si+1, data[100:200])
	if !fast.Retransmit || fast.Kind != Fast {
		t.Errorf("retransmission after dup ACKs: %v %v", fast.Retransmit, fast.Kind)
	}
	w.send(false, ack, si+1, seq(600), nil)
	// More data, then silence and a retransmission: a timeout.
	w.send(true, ack|psh, seq(600), si+1, data[600:700])
	w.now = w.now.Add(time.Second)
	rto := w.send(true, ack|psh, seq(600), si+1, data[600:700])
	if !rto.Retransmit || rto.Kind != Timeout {
		t.Errorf("retransmission after silence: %v %v", rto.Retransmit, rto.Kind)
	}
	// An overlapping retransmission with new data.
	w.send(true, ack|psh, seq(650), si+1, data[650:800])
	w.send(false, ack, si+1, seq(800), nil)
	w.send(true, ack|psh, seq(800), si+1, data[800:1000])
	w.send(true, fin|ack, seq(1000), si+1, nil)
	w.send(false, fin|ack, si+1, seq(1001), nil)
	w.send(true, ack, seq(1001), si+2, nil)

	c := w.b.Conns()[0]
	st := c.Stats[Client]
	if st.Bytes != 1000 || st.RetransBytes != 100+100+50 || st.Retransmits != 3 || st.Fast != 1 || st.Timeout != 2 {
		t.Errorf("client stats %+v", st)
	}
	if c.Stats[Server].DupACKs != 4 || c.Stats[Server].SACKs != 4 {
		t.Errorf("server stats %+v", c.Stats[Server])
	}
	got, missing := c.Stream(Client)
	if missing != 0 || !bytes.Equal(got, data) {
		t.Errorf("stream: %d bytes, %d missing; want the 1000 sent", len(got), missing)
	}
	// Offsets grow through the wrap of the client's numbers.
	last := c.Segments[len(c.Segments)-1]
	if last.SeqOff != 1002 {
		t.Errorf("final ACK at offset %d, want 1002 (after 1000 bytes and the FIN)", last.SeqOff)
	}
	if !reflect.DeepEqual(c.Paths[Client], states(fsm.Closed, fsm.SynSent, fsm.Established, fsm.FinWait1, fsm.TimeWait)) {
		t.Errorf("client path %v", c.Paths[Client])
	}
	if !reflect.DeepEqual(c.Paths[Server], states(fsm.Listen, fsm.SynReceived, fsm.Established, fsm.CloseWait, fsm.LastAck, fsm.Closed)) {
		t.Errorf("server path %v", c.Paths[Server])
	}
	// The SACK blocks are offsets in the client's space.
	var sacked []Range
	for _, s := range c.Segments {
		sacked = append(sacked, s.SACK...)
	}
	if len(sacked) != 4 || sacked[0] != (Range{201, 301}) || sacked[3] != (Range{201, 601}) {
		t.Errorf("SACK ranges %v", sacked)
	}
}

// TestFollowOutOfOrder: chunks held behind a hole are delivered when it
// fills; overlaps keep the first copy; a hole never filled is reported.
func TestFollowOutOfOrder(t *testing.T) {
	w := newWire(t)
	w.handshake(100, 900)
	w.send(true, ack, 101, 901, []byte("hello "))
	w.send(false, ack, 901, 107, []byte("HI "))
	w.send(true, ack, 110, 904, []byte("ld"))     // "wor" is missing yet
	w.send(true, ack, 107, 904, []byte("wo"))     // part of the hole
	w.send(true, ack, 109, 904, []byte("rXY"))    // fills it; "ld" came first
	w.send(true, ack, 101, 904, []byte("HELLO"))  // a late duplicate
	w.send(false, ack, 904, 115, []byte("THERE")) // the server again
	w.send(false, ack, 912, 115, []byte("!"))     // after a hole never filled
	c := w.b.Conns()[0]
	f := c.Follow()
	var b strings.Builder
	for _, ch := range f {
		b.WriteString(ch.From.String()[:1])
		if ch.Missing > 0 {
			b.WriteString("[gap " + string(rune('0'+ch.Missing)) + "]")
		}
		b.WriteString(string(ch.Data) + "|")
	}
	if want := "chello |sHI |cworld|sTHERE|s[gap 3]|s!|"; b.String() != want {
		t.Errorf("follow %q, want %q", b.String(), want)
	}
	if got, missing := c.Stream(Client); string(got) != "hello world" || missing != 0 {
		t.Errorf("client stream %q, missing %d", got, missing)
	}
	if got, missing := c.Stream(Server); string(got) != "HI THERE!" || missing != 3 {
		t.Errorf("server stream %q, missing %d", got, missing)
	}
}

func TestMidStreamAndReuse(t *testing.T) {
	w := newWire(t)
	// Joined mid-stream: partial, both ESTABLISHED, client = higher port.
	w.send(false, ack|psh, 7000, 3000, []byte("abc"))
	w.send(true, ack, 3000, 7003, nil)
	w.send(true, rst, 3000, 0, nil)
	// The 4-tuple is reused by a new connection.
	w.handshake(50, 60)
	conns := w.b.Conns()
	if len(conns) != 2 {
		t.Fatalf("%d connections, want 2", len(conns))
	}
	mid := conns[0]
	if !mid.Partial || mid.Client() != w.cli || mid.Segments[0].SeqOff != 1 {
		t.Errorf("mid-stream conn: partial %v client %v first offset %d", mid.Partial, mid.Client(), mid.Segments[0].SeqOff)
	}
	if !reflect.DeepEqual(mid.Paths[Client], states(fsm.Established, fsm.Closed)) || !reflect.DeepEqual(mid.Paths[Server], states(fsm.Established, fsm.Closed)) {
		t.Errorf("paths %v %v", mid.Paths[Client], mid.Paths[Server])
	}
	if got, _ := mid.Stream(Server); string(got) != "abc" {
		t.Errorf("server stream %q", got)
	}
	if conns[1].Partial || conns[1].State(Client) != fsm.Established || conns[1].State(Server) != fsm.Established {
		t.Errorf("second conn: %v %v", conns[1].State(Client), conns[1].State(Server))
	}
}

// TestSimultaneousClose: both FINs cross: FIN-WAIT-1 -> CLOSING -> TIME-WAIT
// on both ends.
func TestSimultaneousClose(t *testing.T) {
	w := newWire(t)
	w.handshake(10, 20)
	w.send(true, fin|ack, 11, 21, nil)
	w.send(false, fin|ack, 21, 11, nil) // does not ack the client's FIN yet
	w.send(true, ack, 12, 22, nil)
	w.send(false, ack, 22, 12, nil)
	c := w.b.Conns()[0]
	want := states(fsm.Closed, fsm.SynSent, fsm.Established, fsm.FinWait1, fsm.Closing, fsm.TimeWait)
	if !reflect.DeepEqual(c.Paths[Client], want) {
		t.Errorf("client %v", c.Paths[Client])
	}
	want = states(fsm.Listen, fsm.SynReceived, fsm.Established, fsm.FinWait1, fsm.Closing, fsm.TimeWait)
	if !reflect.DeepEqual(c.Paths[Server], want) {
		t.Errorf("server %v", c.Paths[Server])
	}
}

// TestCloseEdgesFromFinWait1: from FIN-WAIT-1 an end takes the diagram's
// direct edge to TIME-WAIT when the peer's FIN also acknowledges its own
// (RFC 9293 §3.10.7.4, FIN-WAIT-1: "If our FIN has been ACKed (perhaps in
// this segment), then enter TIME-WAIT"), and passes through FIN-WAIT-2
// when the ACK comes first.
func TestCloseEdgesFromFinWait1(t *testing.T) {
	w := newWire(t)
	w.handshake(10, 20)
	w.send(true, fin|ack, 11, 21, nil)
	w.send(false, fin|ack, 21, 12, nil) // acknowledges the client's FIN
	w.send(true, ack, 12, 22, nil)
	c := w.b.Conns()[0]
	if want := states(fsm.Closed, fsm.SynSent, fsm.Established, fsm.FinWait1, fsm.TimeWait); !reflect.DeepEqual(c.Paths[Client], want) {
		t.Errorf("FIN with the ACK of ours: client %v, want %v", c.Paths[Client], want)
	}
	if want := states(fsm.Listen, fsm.SynReceived, fsm.Established, fsm.CloseWait, fsm.LastAck, fsm.Closed); !reflect.DeepEqual(c.Paths[Server], want) {
		t.Errorf("FIN with the ACK of ours: server %v, want %v", c.Paths[Server], want)
	}
	// The direct edge is drawn where the FIN arrives.
	if ch := c.Segments[4].Changes; len(ch) == 0 || ch[len(ch)-1] != (Change{Client, fsm.FinWait1, fsm.TimeWait, "rcv FIN,ACK of FIN, snd ACK"}) {
		t.Errorf("changes of the server's FIN: %+v", ch)
	}

	w = newWire(t)
	w.handshake(10, 20)
	w.send(true, fin|ack, 11, 21, nil)
	w.send(false, ack, 21, 12, nil) // the ACK alone
	w.send(false, fin|ack, 21, 12, nil)
	w.send(true, ack, 12, 22, nil)
	c = w.b.Conns()[0]
	if want := states(fsm.Closed, fsm.SynSent, fsm.Established, fsm.FinWait1, fsm.FinWait2, fsm.TimeWait); !reflect.DeepEqual(c.Paths[Client], want) {
		t.Errorf("ACK, then FIN: client %v, want %v", c.Paths[Client], want)
	}
}

// TestRandomSegmentsNeverPanic: arbitrary segment sequences (any flags,
// numbers, payloads) must not panic, and counters stay consistent.
func TestRandomSegmentsNeverPanic(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	for round := 0; round < 200; round++ {
		w := newWire(t)
		if rng.Intn(2) == 0 {
			w.handshake(rng.Uint32(), rng.Uint32())
		}
		var sent [2]int
		for i := 0; i < 40; i++ {
			fromClient := rng.Intn(2) == 0
			payload := make([]byte, rng.Intn(30))
			w.send(fromClient, craft.Flags(rng.Intn(64)), rng.Uint32()%4000, rng.Uint32()%4000, payload)
			if fromClient {
				sent[0]++
			} else {
				sent[1]++
			}
		}
		total := 0
		for _, c := range w.b.Conns() {
			total += c.Stats[Client].Packets + c.Stats[Server].Packets
			for s := range c.Paths {
				if len(c.Paths[s]) == 0 || c.Paths[s][len(c.Paths[s])-1] != c.State(Side(s)) {
					t.Fatalf("round %d: path %v ends elsewhere than state %v", round, c.Paths[s], c.State(Side(s)))
				}
			}
			_ = c.Follow()
		}
		if total != w.n || w.n < sent[0]+sent[1] {
			t.Fatalf("round %d: %d packets counted, %d added (%d random)", round, total, w.n, sent[0]+sent[1])
		}
	}
}

// TestLatestOnlyAndForget: live use keeps one segment per connection but
// every counter and state; a forgotten connection's 4-tuple starts anew.
func TestLatestOnlyAndForget(t *testing.T) {
	w := newWire(t)
	w.b.LatestOnly = true
	w.handshake(10, 20)
	w.send(true, ack|psh, 11, 21, []byte("abc"))
	w.send(true, ack|psh, 11, 21, []byte("abc"))
	c := w.b.Conns()[0]
	if len(c.Segments) != 1 || !c.Segments[0].Retransmit || c.Stats[Client].Packets != 4 || c.Stats[Client].Bytes != 3 || c.State(Server) != fsm.Established {
		t.Errorf("latest only: %d segments, stats %+v, server %v", len(c.Segments), c.Stats[Client], c.State(Server))
	}
	w.b.Forget(c)
	if len(w.b.Conns()) != 0 {
		t.Fatalf("Forget left %d connections", len(w.b.Conns()))
	}
	w.send(true, ack, 14, 21, nil)
	if n := len(w.b.Conns()); n != 1 || w.b.Conns()[0] == c || !w.b.Conns()[0].Partial {
		t.Errorf("after Forget: %d connections", n)
	}
}
