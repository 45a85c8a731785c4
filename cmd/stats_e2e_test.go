package cmd

// End-to-end tests against the real Linux kernel: connect
// --ladder and --stats, and decode --follow/--conns and draw on captures
// tcpcraft made with --pcap (each test in a lab of its own, see e2e_test.go).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// capturedSegment is one packet of a tcpcraft --pcap file, read with
// gopacket (independently of craft and draw/flow).
type capturedSegment struct {
	fromClient bool
	seq        uint32
	seqLen     int64
	payload    []byte
	sackBlocks int
	rst        bool
	fin        bool
	ack        uint32 // the acknowledgement number, when ACK is set
	hasACK     bool
}

func readCapture(t *testing.T, path, client string) []capturedSegment {
	t.Helper()
	var out []capturedSegment
	for i, raw := range pcapPackets(t, path) {
		p := gopacket.NewPacket(raw, layers.LayerTypeIPv4, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("%s packet %d is not TCP/IPv4", path, i+1)
		}
		s := capturedSegment{fromClient: ip.SrcIP.String() == client, seq: tcp.Seq, payload: tcp.Payload, seqLen: int64(len(tcp.Payload)), rst: tcp.RST, fin: tcp.FIN, ack: tcp.Ack, hasACK: tcp.ACK}
		if tcp.SYN {
			s.seqLen++
		}
		if tcp.FIN {
			s.seqLen++
		}
		for _, o := range tcp.Options {
			if o.OptionType == layers.TCPOptionKindSACK {
				s.sackBlocks += len(o.OptionData) / 8
			}
		}
		out = append(out, s)
	}
	return out
}

// sequenceCounts counts one direction's segments that occupy sequence space
// and those of them that resend space already sent.
func sequenceCounts(segs []capturedSegment, fromClient bool) (data, retrans int) {
	var isn uint32
	high := int64(-1)
	for _, s := range segs {
		if s.fromClient != fromClient || s.seqLen == 0 {
			continue
		}
		if high < 0 {
			isn = s.seq
		}
		data++
		start := int64(s.seq - isn) // the transfers are far below 4 GiB
		if start < high {
			retrans++
		}
		high = max(high, start+s.seqLen)
	}
	return data, retrans
}

// readStats reads the --stats file: one JSON object per connection.
func readStats(t *testing.T, path string) []statsJSON {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []statsJSON
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var s statsJSON
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("--stats line %q: %v", l, err)
		}
		out = append(out, s)
	}
	return out
}

var summaryLineRE = regexp.MustCompile(`(?m)^tcpcraft:   sent (\d+) bytes in (\d+) segments \((\d+) retransmitted, (\d+) timeouts\), received (\d+) bytes in (\d+) segments$`)

// 14. connect --ladder --stats against a kernel echo server.
func TestConnectLadderAndStats(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peer := serveOne(t, e.listen(t, 7000), func(c *net.TCPConn) error {
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
	dir := t.TempDir()
	statsPath, pcapPath := filepath.Join(dir, "stats.json"), filepath.Join(dir, "s.pcap")
	data := append([]byte("ladder please\n"), randomBytes(t, 20000)...)
	r := e.tcpcraft(t, bytes.NewReader(data), "connect", "--ladder", "--stats", statsPath, "--pcap", pcapPath, "--time-wait", "100ms", e.serverAddr(7000))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != string(data) {
		t.Fatalf("echo differs: %d bytes back, sent %d", len(r.stdout), len(data))
	}
	trace := r.stderr
	// Not a terminal: plain ASCII.
	if i := strings.IndexFunc(trace, func(r rune) bool { return r > 127 }); i >= 0 {
		t.Errorf("non-ASCII in the ladder on a pipe at %d: %q", i, trace[max(0, i-40):i+10])
	}
	header := regexp.MustCompile(`(?m)^ +client 10\.0\.2\.21:(\d+) \(tcpcraft\) +server 10\.0\.2\.20:7000$`).FindStringSubmatch(trace)
	if header == nil {
		t.Fatalf("no ladder header in:\n%s", tail(trace, 3000))
	}
	// One arrow per captured segment, in the same order and direction.
	segs := readCapture(t, pcapPath, "10.0.2.21")
	var arrows []string
	var left, right []string
	for _, l := range strings.Split(trace, "\n") {
		f := strings.Fields(l)
		switch {
		case strings.Contains(l, ">|") || strings.Contains(l, "|<"):
			arrows = append(arrows, l)
		case len(f) == 3 && f[1] == "|" && f[2] == "|":
			left = append(left, f[0])
		case len(f) == 3 && f[0] == "|" && f[1] == "|":
			right = append(right, f[2])
		}
	}
	if len(arrows) != len(segs) {
		t.Fatalf("%d arrows, the pcap has %d segments:\n%s", len(arrows), len(segs), tail(trace, 3000))
	}
	for i, s := range segs {
		if s.fromClient != strings.Contains(arrows[i], ">|") {
			t.Errorf("arrow %d points the wrong way for segment %d: %s", i, i+1, arrows[i])
		}
	}
	if !strings.Contains(arrows[0], " S seq 0 ") || !strings.Contains(arrows[1], " S. seq 0 ack 1 ") {
		t.Errorf("handshake arrows:\n%s\n%s", arrows[0], arrows[1])
	}
	// tcpcraft's states (left) and the kernel's as inferred (right).
	l, rt := strings.Join(left, " "), strings.Join(right, " ")
	// (The heading row, CLOSED and LISTEN, has both.)
	if !strings.HasPrefix(l, "SYN-SENT ESTABLISHED FIN-WAIT-1 ") || !strings.HasSuffix(l, " TIME-WAIT CLOSED") {
		t.Errorf("tcpcraft's states on the ladder: %s", l)
	}
	if rt != "SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED" {
		t.Errorf("the peer's states on the ladder: %s", rt)
	}

	// The summary block and the --stats object agree with each other and
	// with the capture.
	m := summaryLineRE.FindStringSubmatch(trace)
	if m == nil {
		t.Fatalf("no summary in:\n%s", tail(trace, 2000))
	}
	num := func(i int) uint64 { v, _ := strconv.ParseUint(m[i], 10, 64); return v }
	stats := readStats(t, statsPath)
	if len(stats) != 1 {
		t.Fatalf("%d --stats objects, want 1", len(stats))
	}
	s := stats[0]
	var out, in uint64
	for _, c := range segs {
		if c.fromClient {
			out++
		} else {
			in++
		}
	}
	if s.Local != "10.0.2.21:"+header[1] || s.Remote != "10.0.2.20:7000" || s.State != "CLOSED" || s.Error != "" {
		t.Errorf("stats ends/state: %+v", s)
	}
	if s.Sent.Bytes != uint64(len(data)) || s.Received.Bytes != uint64(len(data)) || s.Sent.Segments != out || s.Received.Segments != in {
		t.Errorf("stats counts: sent %d bytes in %d segments, received %d in %d; want %d bytes, %d and %d segments",
			s.Sent.Bytes, s.Sent.Segments, s.Received.Bytes, s.Received.Segments, len(data), out, in)
	}
	if num(1) != s.Sent.Bytes || num(2) != s.Sent.Segments || num(3) != s.Retransmits.Segments || num(5) != s.Received.Bytes || num(6) != s.Received.Segments {
		t.Errorf("summary %q disagrees with --stats %+v", m[0], s)
	}
	if s.DurationS <= 0 || s.DurationS > r.elapsed.Seconds() || s.Goodput.Sent <= 0 || s.Goodput.Received <= 0 {
		t.Errorf("duration %v s (run %v), goodput %+v", s.DurationS, r.elapsed, s.Goodput)
	}
	if s.RTT == nil || s.RTT.Samples < 1 || s.RTT.MinMS > s.RTT.AvgMS || s.RTT.AvgMS > s.RTT.MaxMS || s.SRTTMS <= 0 || s.RTOMS <= 0 {
		t.Errorf("rtt %+v, srtt %v, rto %v", s.RTT, s.SRTTMS, s.RTOMS)
	}
	if s.Retransmits.Fast+s.Retransmits.Timeout != s.Retransmits.Segments || s.MSS <= 0 || s.Cwnd == 0 {
		t.Errorf("retransmissions %+v, mss %d, cwnd %d", s.Retransmits, s.MSS, s.Cwnd)
	}
	if !strings.Contains(trace, fmt.Sprintf("tcpcraft: %s > %s: CLOSED after ", s.Local, s.Remote)) {
		t.Errorf("no summary heading for %s", s.Local)
	}

	// Unicode when asked for, --stats to standard error.
	peer = serveOne(t, e.listen(t, 7001), func(c *net.TCPConn) error {
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
	r = e.tcpcraft(t, strings.NewReader("hi\n"), "connect", "--ladder", "--ladder-chars", "unicode", "--stats", "-", "--time-wait", "100ms", e.serverAddr(7001))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the second echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if !strings.Contains(r.stderr, "│") || !strings.Contains(r.stderr, "►│") || !strings.Contains(r.stderr, "│◄") {
		t.Errorf("no Unicode ladder:\n%s", r.stderr)
	}
	if !regexp.MustCompile(`(?m)^\{"type":"stats","local":"10\.0\.2\.21:\d+","remote":"10\.0\.2\.20:7001".*"sent":\{"bytes":3,`).MatchString(r.stderr) {
		t.Errorf("no stats object on stderr:\n%s", tail(r.stderr, 1500))
	}
	// --ladder is a trace of its own.
	r = e.tcpcraft(t, nil, "connect", "--ladder", "--json", e.serverAddr(7001))
	if r.code != 2 || !strings.Contains(r.stderr, "not with --json") {
		t.Errorf("--ladder --json: %v", r)
	}
}

// 15. decode --follow/--conns and draw on a capture tcpcraft made: a 100 KB
// upload answered by a 300 KB download.
func TestDecodeAndDrawTcpcraftCapture(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	upload, download := randomBytes(t, 100<<10), randomBytes(t, 300<<10)
	got := make(chan [32]byte, 1)
	peer := serveOne(t, e.listen(t, 8000), func(c *net.TCPConn) error {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil { // until tcpcraft's FIN
			return err
		}
		got <- [32]byte(h.Sum(nil))
		if _, err := c.Write(download); err != nil {
			return err
		}
		return c.Close()
	})
	pcapPath := filepath.Join(t.TempDir(), "xfer.pcap")
	r := e.tcpcraft(t, bytes.NewReader(upload), "connect", "-q", "--pcap", pcapPath, "--time-wait", "100ms", e.serverAddr(8000))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if sum := receive(t, got, "the upload's digest"); sum != sha256.Sum256(upload) || r.stdout != string(download) {
		t.Fatalf("the transfer itself failed: upload digest %x, %d bytes downloaded", sum, len(r.stdout))
	}
	ctx := context.Background()

	// --follow --side: exactly the bytes of each direction.
	for side, want := range map[string][]byte{"client": upload, "server": download} {
		d := runApp(t, ctx, "decode", "--follow", "--side", side, pcapPath)
		if d.code != 0 || d.stdout != string(want) {
			t.Errorf("decode --follow --side %s: exit %d, %d bytes (sha %x), want %d (sha %x); stderr %q",
				side, d.code, len(d.stdout), sha256.Sum256([]byte(d.stdout)), len(want), sha256.Sum256(want), d.stderr)
		}
	}
	// --follow: the marked-up conversation reassembles to the same bytes.
	d := runApp(t, ctx, "decode", "--follow", pcapPath)
	if d.code != 0 {
		t.Fatalf("decode --follow: exit %d, stderr %q", d.code, d.stderr)
	}
	streams := map[string][]byte{}
	br := bufio.NewReader(strings.NewReader(d.stdout))
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			break
		}
		if strings.HasPrefix(line, ">>> ") || strings.HasPrefix(line, "<<< ") {
			var who, addr, to string
			var n, off int
			if _, err := fmt.Sscanf(line[4:], "%s %s > %s %d bytes at offset %d", &who, &addr, &to, &n, &off); err != nil {
				t.Fatalf("marker %q: %v", line, err)
			}
			buf := make([]byte, n+1)
			if _, err := io.ReadFull(br, buf); err != nil || buf[n] != '\n' || off != len(streams[who]) {
				t.Fatalf("chunk after %q: %v", line, err)
			}
			streams[who] = append(streams[who], buf[:n]...)
		}
	}
	if !bytes.Equal(streams["client"], upload) || !bytes.Equal(streams["server"], download) {
		t.Errorf("--follow: %d and %d bytes, want %d and %d", len(streams["client"]), len(streams["server"]), len(upload), len(download))
	}

	// --conns: the connection with the right byte counts and state paths.
	segs := readCapture(t, pcapPath, "10.0.2.21")
	var cPkts, sPkts int
	for _, s := range segs {
		if s.fromClient {
			cPkts++
		} else {
			sPkts++
		}
	}
	d = runApp(t, ctx, "decode", "--conns", "--json", pcapPath)
	var c connJSON
	if err := json.Unmarshal([]byte(d.stdout), &c); d.code != 0 || err != nil {
		t.Fatalf("decode --conns --json: exit %d, %v: %q", d.code, err, d.stdout)
	}
	if c.Server != "10.0.2.20:8000" || !strings.HasPrefix(c.Client, "10.0.2.21:") || c.Partial ||
		c.Bytes["client"] != int64(len(upload)) || c.Bytes["server"] != int64(len(download)) ||
		c.Packets["client"] != cPkts || c.Packets["server"] != sPkts {
		t.Errorf("--conns: %+v; want %d/%d bytes, %d/%d packets", c, len(upload), len(download), cPkts, sPkts)
	}
	// On a loaded machine the kernel may send a tail loss probe (its FIN
	// again) before our ACK of the FIN arrives; we acknowledge both, and
	// the second ACK, landing after its LAST-ACK ended, draws a RST, which
	// we ignore in TIME-WAIT (RFC 1337) but which the decoder, reading
	// the capture, rightly ends the client's path with.
	// The server's FIN acknowledges ours when the kernel sent no ACK of
	// its own first: then the client goes from FIN-WAIT-1 straight to
	// TIME-WAIT (RFC 9293 §3.10.7.4), which the decoder shows.
	wantClient := "CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT"
	var finEnd uint32
	for _, sg := range segs {
		if sg.fromClient && sg.fin {
			finEnd = sg.seq + uint32(sg.seqLen)
		}
	}
	for _, sg := range segs {
		if !sg.fromClient && sg.hasACK && int32(sg.ack-finEnd) >= 0 {
			if sg.fin {
				wantClient = "CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 TIME-WAIT"
			}
			break
		}
	}
	if last := segs[len(segs)-1]; last.rst && !last.fromClient {
		wantClient += " CLOSED"
	}
	if p := strings.Join(c.Paths["client"], " "); p != wantClient {
		t.Errorf("client path %s, want %s", p, wantClient)
	}
	if p := strings.Join(c.Paths["server"], " "); p != "LISTEN SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED" {
		t.Errorf("server path %s", p)
	}
	d = runApp(t, ctx, "decode", "--conns", pcapPath)
	if f := strings.Fields(lines(d.stdout)[1]); len(f) < 6 || f[4] != strconv.Itoa(len(upload)) || f[5] != strconv.Itoa(len(download)) {
		t.Errorf("--conns table row %q", lines(d.stdout)[1])
	}

	// draw: the time-sequence graph of the download has a bar per data
	// segment of the server; the ladder the first 10 segments.
	d = runApp(t, ctx, "draw", pcapPath, "--tsg")
	if d.code != 0 {
		t.Fatalf("draw --tsg: exit %d, %s", d.code, d.stderr)
	}
	svg := parseSVGDoc(t, []byte(d.stdout))
	wantBars, wantRetrans := sequenceCounts(segs, false)
	if n, rn := len(svg.find("path", "data")), len(svg.find("path", "data", "retransmit")); n != wantBars || rn != wantRetrans {
		t.Errorf("tsg of the download: %d bars (%d retransmitted); the server sent %d segments (%d again)", n, rn, wantBars, wantRetrans)
	}
	d = runApp(t, ctx, "draw", pcapPath, "--count", "10")
	if svg := parseSVGDoc(t, []byte(d.stdout)); len(svg.find("g", "segment")) != 10 {
		t.Errorf("ladder --count 10: %d segments", len(svg.find("g", "segment")))
	}
	pngPath := filepath.Join(t.TempDir(), "states.png")
	if d := runApp(t, ctx, "draw", "--states", pcapPath, "-o", pngPath); d.code != 0 {
		t.Fatalf("draw --states png: exit %d, %s", d.code, d.stderr)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("states PNG: %v", err)
	}
}

// 16. A time-sequence graph under 5% loss: tcpcraft's retransmissions, as
// its --stats counts them, are the red bars of the graph and the resent
// sequence space in the capture.
func TestTimeSequenceUnderLoss(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	data := randomBytes(t, 300<<10)
	got := make(chan [32]byte, 1)
	peer := serveOne(t, e.listen(t, 9000), func(c *net.TCPConn) error {
		h := sha256.New()
		_, err := io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
		return errors.Join(err, c.Close())
	})
	labtest.Iptables(t, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "9000",
		"-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP")
	dir := t.TempDir()
	pcapPath, statsPath := filepath.Join(dir, "loss.pcap"), filepath.Join(dir, "stats.json")
	r := e.tcpcraft(t, bytes.NewReader(data), "connect", "-q", "--timeout", "30s", "--pcap", pcapPath, "--stats", statsPath, "--time-wait", "100ms", e.serverAddr(9000))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the sink"); err != nil {
		t.Fatalf("sink: %v", err)
	}
	if sum := receive(t, got, "the sink's digest"); sum != sha256.Sum256(data) {
		t.Fatalf("the sink received other bytes")
	}
	segs := readCapture(t, pcapPath, "10.0.2.21")
	wantBars, wantRetrans := sequenceCounts(segs, true)
	s := readStats(t, statsPath)[0]
	if wantRetrans == 0 || s.Retransmits.Segments != uint64(wantRetrans) {
		t.Errorf("tcpcraft counts %d retransmissions, the capture shows %d resent segments", s.Retransmits.Segments, wantRetrans)
	}
	if s.Retransmits.Fast+s.Retransmits.Timeout != s.Retransmits.Segments {
		t.Errorf("retransmissions by cause %+v do not add up", s.Retransmits)
	}
	d := runApp(t, context.Background(), "draw", "--tsg", pcapPath)
	if d.code != 0 {
		t.Fatalf("draw --tsg: exit %d, %s", d.code, d.stderr)
	}
	svg := parseSVGDoc(t, []byte(d.stdout))
	bars, red := svg.find("path", "data"), svg.find("path", "data", "retransmit")
	if len(bars) != wantBars || len(red) != wantRetrans {
		t.Errorf("%d bars, %d red; the capture has %d data segments, %d resent", len(bars), len(red), wantBars, wantRetrans)
	}
	var sacks int
	for _, c := range segs {
		if !c.fromClient {
			sacks += c.sackBlocks
		}
	}
	if n := len(svg.find("path", "sack")); n != sacks {
		t.Errorf("%d SACK bars, the peer sent %d SACK blocks", n, sacks)
	}
	d = runApp(t, context.Background(), "decode", "--conns", "--json", pcapPath)
	var c connJSON
	if err := json.Unmarshal([]byte(d.stdout), &c); err != nil {
		t.Fatal(err)
	}
	if rc := c.Retransmits["client"]; rc.Segments != wantRetrans || rc.Fast+rc.Timeout != rc.Segments || c.Bytes["client"] != int64(len(data)) {
		t.Errorf("--conns: %+v, want %d retransmissions of %d bytes", rc, wantRetrans, len(data))
	}
	t.Logf("%d data segments, %d retransmitted (tcpcraft: %d fast, %d after a timeout; the capture reads %d fast, %d timeout), %d SACK blocks",
		wantBars, wantRetrans, s.Retransmits.Fast, s.Retransmits.Timeout, c.Retransmits["client"].Fast, c.Retransmits["client"].Timeout, sacks)
}

// 17. listen -k --ladder --stats with clients at once: one account per
// connection, one ladder heading per connection, and a clean exit on
// SIGINT (the account is taken while the stack runs other connections).
func TestListenLadderAndStatsManyClients(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	const port, clients = 8300, 8
	statsPath := filepath.Join(t.TempDir(), "stats.json")
	p := e.startListen(t, nil, "-k", "--echo", "--ladder", "--stats", statsPath, "--time-wait", "100ms", fmt.Sprintf(":%d", port))
	waitListening(t, p)
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		conn := dialServer(t, e, port)
		go func() { errs <- echoAll(conn, bytes.Repeat([]byte{byte('a' + i)}, 30000)) }()
	}
	for i := 0; i < clients; i++ {
		if err := receive(t, errs, "a client"); err != nil {
			t.Errorf("client: %v", err)
		}
	}
	waitUntil(t, 15*time.Second, "an account of every connection in --stats", func() bool {
		b, _ := os.ReadFile(statsPath)
		return bytes.Count(b, []byte("\n")) == clients
	})
	r := interruptListen(t, e, p)
	remotes := map[string]bool{}
	for _, s := range readStats(t, statsPath) {
		remotes[s.Remote] = true
		if s.Local != fmt.Sprintf("10.0.2.20:%d", port) || !strings.HasPrefix(s.Remote, "10.0.2.21:") ||
			s.Sent.Bytes != 30000 || s.Received.Bytes != 30000 || s.State != "CLOSED" {
			t.Errorf("account %+v", s)
		}
	}
	if len(remotes) != clients {
		t.Errorf("accounts of %d clients, want %d", len(remotes), clients)
	}
	// One ladder per client. A late duplicate ACK that arrives after its
	// connection reached CLOSED is answered with RST (RFC 9293 §3.10.7.1)
	// and drawn under a heading of its own, so count distinct clients.
	headings := regexp.MustCompile(`(?m)^ *(?:#\d+ )?client (10\.0\.2\.21:\d+) +server 10\.0\.2\.20:8300 \(tcpcraft\)$`).FindAllStringSubmatch(r.stderr, -1)
	drawn := map[string]bool{}
	for _, h := range headings {
		drawn[h[1]] = true
	}
	if len(drawn) != clients {
		t.Errorf("ladders for %d clients, want %d:\n%s", len(drawn), clients, tail(r.stderr, 3000))
	}
	for remote := range remotes {
		if !drawn[remote] {
			t.Errorf("no ladder heading for client %s", remote)
		}
	}
}
