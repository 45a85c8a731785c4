package cmd

// End-to-end tests of the command line against the real kernel: options
// after the arguments, the flags that shape a connection doing what their
// help says, --json runs whose every line is JSON, and decode telling an
// offloaded checksum from a bad one in a capture taken on a veth.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// TestConnectFlagsShapeTheSYN: every option of connect given after the
// address, as people type them (nc HOST PORT -w 2). The options that shape
// our SYN are on the wire as asked (read back from --pcap); -S shows
// absolute numbers, -v adds RTT samples; the data goes through. --nagle,
// --sndbuf and --cc change nothing a short exchange shows: they are only
// accepted here.
func TestConnectFlagsShapeTheSYN(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peer := serveOne(t, e.listen(t, 7600), func(c *net.TCPConn) error {
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
	file := filepath.Join(t.TempDir(), "syn.pcap")
	r := e.tcpcraft(t, strings.NewReader("hello"), "connect", e.serverAddr(7600),
		"--pcap", file, "--isn", "1000", "--mss", "1000", "--wscale", "3", "--window", "65536",
		"--no-sack", "--no-timestamps", "--ttl", "9", "--sport", "40123", "-i", e.ClientIf,
		"-S", "-v", "--time-wait", "0.1", "-w", "5", "--nagle", "--sndbuf", "65536", "--cc", "reno")
	expectExit(t, r, 0)
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != "hello" {
		t.Errorf("stdout %q, want the echo", r.stdout)
	}
	var syn craft.Packet
	found := false
	for _, pkt := range pcapPackets(t, file) {
		var p craft.Packet
		if craft.ParsePacket(craft.LinkRaw, pkt, &p, craft.PacketOptions{}) == nil && p.TCP.Flags == craft.FlagSYN {
			syn, found = p, true
			break
		}
	}
	if !found {
		t.Fatalf("no SYN in the pcap")
	}
	var mss uint16
	var ws = -1
	sack, ts := false, false
	for _, o := range syn.TCP.Options {
		switch o.Kind {
		case craft.OptMSS:
			mss = o.MSS
		case craft.OptWindowScale:
			ws = int(o.Shift)
		case craft.OptSACKPermitted:
			sack = true
		case craft.OptTimestamps:
			ts = true
		}
	}
	if syn.TCP.Seq != 1000 || syn.IPv4.TTL != 9 || syn.TCP.SrcPort != 40123 || mss != 1000 || ws != 3 || sack || ts {
		t.Errorf("SYN seq %d ttl %d sport %d mss %d wscale %d sackOK %v TS %v; want 1000, 9, 40123, 1000, 3, no, no",
			syn.TCP.Seq, syn.IPv4.TTL, syn.TCP.SrcPort, mss, ws, sack, ts)
	}
	if !strings.Contains(r.stderr, "Flags [S], seq 1000,") {
		t.Errorf("-S: the trace does not show the SYN's absolute number:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, " rtt ") {
		t.Errorf("-v: no RTT sample in the trace:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "on "+e.ClientIf) {
		t.Errorf("-i: the trace does not name %s:\n%s", e.ClientIf, r.stderr)
	}
}

// TestListenAndSendFlagsAfterArguments: listen and send with their options
// after the address.
func TestListenAndSendFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	p := e.startListen(t, nil, ":7601", "-k", "--echo", "--json", "--backlog", "4", "--time-wait", "0.1")
	waitEchoing(t, e, p, 7601)
	conn := dialServer(t, e, 7601)
	if err := echoCheck(conn, []byte("after the address")); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	r := interruptListen(t, e, p)
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("--json after the address: a line of the trace is not JSON: %q", line)
		}
	}

	s := e.tcpcraft(t, nil, "send", e.serverAddr(81), "-c", "2", "--interval", "0.1", "--wait", "0.5", "-q")
	expectExit(t, s, 0)
	if strings.Contains(s.stdout, "Flags") || !strings.Contains(s.stdout, "2 segments sent, 2 answered") {
		t.Errorf("send -q after the address: stdout %q, want only the statistics", s.stdout)
	}
	if s.stderr != "" {
		t.Errorf("send -q: stderr %q, want nothing", s.stderr)
	}
}

// TestJSONRunsEndWithAJSONError: with --json the final error is a JSON
// line on the JSON stream (standard error for connect's trace, standard
// output for send), and every line there is JSON.
func TestJSONRunsEndWithAJSONError(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	check := func(what, stream string, code int, says string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(stream), "\n")
		for _, line := range lines {
			if !json.Valid([]byte(line)) {
				t.Errorf("%s: not JSON: %q", what, line)
			}
		}
		var last struct {
			Type, Command, Error string
			Exit                 int
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Type != "error" || last.Exit != code || !strings.Contains(last.Error, says) {
			t.Errorf("%s: last line %q, want {\"type\":\"error\",...} saying %q, exit %d", what, lines[len(lines)-1], says, code)
		}
	}
	r := e.tcpcraft(t, nil, "connect", "--json", e.serverAddr(81))
	expectExit(t, r, 1)
	check("connect refused", r.stderr, 1, "connection refused")

	labtest.Iptables(t, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "8084", "-j", "DROP")
	r = e.tcpcraft(t, nil, "send", e.serverAddr(8084), "--json", "--wait", "0.3")
	expectExit(t, r, 1)
	check("send, no reply", r.stdout, 1, "no reply")
	if r.stderr != "" {
		t.Errorf("send --json: stderr %q, want nothing: the error is on standard output", r.stderr)
	}

	// A usage error too, even one found before --json was read.
	r = e.tcpcraft(t, nil, "connect", e.serverAddr(81), "--ttl", "0", "--json")
	expectExit(t, r, 2)
	check("connect --ttl 0", r.stderr, 2, "--ttl 0")
}

// TestDecodeOffloadedChecksums: kernel to kernel over the lab's veth, with
// checksum offload on (the veth default), captured with tcpdump: the
// captured segments hold partial checksums. decode says
// "partial (offloaded)" (JSON "partial") for them, never "bad"; a
// segment whose checksum is really wrong is still "bad".
func TestDecodeOffloadedChecksums(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "tcpdump", "ethtool")
	e := newE2ELab(t)
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	if out, err := e.Command(ctx, e.ClientNS, "ethtool", "-k", e.ClientIf).Output(); err != nil || !bytes.Contains(out, []byte("tx-checksumming: on")) {
		t.Fatalf("checksum offload is not on on %s (%v):\n%s", e.ClientIf, err, out)
	}
	file := filepath.Join(t.TempDir(), "veth.pcap")
	dump := e.Command(ctx, e.ClientNS, "tcpdump", "-i", e.ClientIf, "--immediate-mode", "-U", "-s", "65600", "-B", "16384", "-w", file, "-n", "tcp port 7602")
	var dumpErr bytes.Buffer
	dump.Stderr = &dumpErr
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "tcpdump to listen", func() bool { return strings.Contains(dumpErr.String(), "listening on") })
	peer := serveOne(t, e.listen(t, 7602), func(c *net.TCPConn) error {
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
	conn, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(7602))
	if err != nil {
		t.Fatal(err)
	}
	if err := echoCheck(conn, bytes.Repeat([]byte("offload "), 1000)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the last ACKs into the file
	_ = dump.Process.Signal(os.Interrupt)
	_ = dump.Wait()

	// The capture has partial checksums, as an independent reading shows.
	var frames [][]byte
	partial := 0
	for _, f := range ethernetFrames(t, file) {
		frames = append(frames, f)
		ip := f[14:]
		ihl := int(ip[0]&0x0f) * 4
		if binary.BigEndian.Uint16(ip[ihl+16:]) == partialChecksum(ip) {
			partial++
		}
	}
	if len(frames) < 6 || partial == 0 {
		t.Fatalf("tcpdump captured %d frames, %d with a partial checksum: offload did not happen\n%s", len(frames), partial, dumpErr.String())
	}
	r := runDecodeCmd(t, "", file)
	if r.code != 0 {
		t.Fatalf("decode: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := strings.Count(r.stdout, "[tcp cksum partial (offloaded)]"); n != partial || strings.Contains(r.stdout, "bad") {
		t.Errorf("decode says partial %d times (want %d) or bad:\n%s", n, partial, r.stdout)
	}
	r = runDecodeCmd(t, "", "--json", file)
	if n := strings.Count(r.stdout, `"status":"partial"`); n != partial || strings.Contains(r.stdout, `"status":"bad"`) {
		t.Errorf("decode --json: %d partial (want %d), or bad", n, partial)
	}

	// One partial checksum changed: wrong, not offloaded. (A partial
	// checksum does not cover the data, so changing the data would not
	// do: the field would still hold the pseudo-header's sum.)
	for _, f := range frames {
		ip := f[14:]
		ihl := int(ip[0]&0x0f) * 4
		if v := binary.BigEndian.Uint16(ip[ihl+16:]); v == partialChecksum(ip) {
			binary.BigEndian.PutUint16(ip[ihl+16:], v^0x0100)
			break
		}
	}
	r = runDecodeCmd(t, "", writeTemp(t, "bad.pcap", writePcap(t, layers.LinkTypeEthernet, frames)))
	if n := strings.Count(r.stdout, "[bad tcp cksum"); n != 1 {
		t.Errorf("one checksum changed: %d bad, want 1:\n%s", n, r.stdout)
	}
	if n := strings.Count(r.stdout, "partial (offloaded)"); n != partial-1 {
		t.Errorf("one checksum changed: %d partial, want %d", n, partial-1)
	}
}

// ethernetFrames reads the frames of an Ethernet pcap file that carry
// IPv4.
func ethernetFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if rd.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("%s: link type %v, want Ethernet", path, rd.LinkType())
	}
	var frames [][]byte
	for {
		data, _, err := rd.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(data) > 14+20 && binary.BigEndian.Uint16(data[12:14]) == 0x0800 {
			frames = append(frames, data)
		}
	}
}

// TestListenFlagsShapeTheSYNACK: listen's options, after the address: the
// SYN-ACK is on the wire as asked (read back from --pcap), -S and -v show
// in the trace, -i names the interface. --nagle, --sndbuf and --cc change
// nothing a short echo shows: they are only accepted here.
func TestListenFlagsShapeTheSYNACK(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	file := filepath.Join(t.TempDir(), "synack.pcap")
	p := e.startListen(t, nil, e.ServerIP().String()+":7603", "--echo",
		"--pcap", file, "--isn", "5000", "--mss", "1000", "--wscale", "2", "--no-sack", "--no-timestamps", "--ttl", "7",
		"-i", e.ServerIf, "-S", "-v", "--time-wait", "0.1", "--nagle", "--sndbuf", "65536", "--cc", "reno")
	waitListening(t, p)
	conn := dialServer(t, e, 7603)
	if err := echoCheck(conn, []byte("shape")); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	r := p.wait(t)
	expectExit(t, r, 0)
	var synack craft.Packet
	found := false
	for _, pkt := range pcapPackets(t, file) {
		var q craft.Packet
		if craft.ParsePacket(craft.LinkRaw, pkt, &q, craft.PacketOptions{}) == nil && q.TCP.Flags == craft.FlagSYN|craft.FlagACK {
			synack, found = q, true
			break
		}
	}
	if !found {
		t.Fatalf("no SYN-ACK in the pcap")
	}
	var mss uint16
	ws := -1
	sack, ts := false, false
	for _, o := range synack.TCP.Options {
		switch o.Kind {
		case craft.OptMSS:
			mss = o.MSS
		case craft.OptWindowScale:
			ws = int(o.Shift)
		case craft.OptSACKPermitted:
			sack = true
		case craft.OptTimestamps:
			ts = true
		}
	}
	if synack.TCP.Seq != 5000 || synack.IPv4.TTL != 7 || mss != 1000 || ws != 2 || sack || ts {
		t.Errorf("SYN-ACK seq %d ttl %d mss %d wscale %d sackOK %v TS %v; want 5000, 7, 1000, 2, no, no",
			synack.TCP.Seq, synack.IPv4.TTL, mss, ws, sack, ts)
	}
	for _, want := range []string{"Flags [S.], seq 5000,", " rtt ", "(" + e.ServerIf + ")"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the trace does not have %q:\n%s", want, r.stderr)
		}
	}
}

// TestLadderOptions: --ladder-chars and --ladder-width shape the live
// ladder of connect and listen.
func TestLadderOptions(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	p := e.startListen(t, nil, ":7604", "--echo", "--ladder", "--ladder-chars", "ascii", "--ladder-width", "100", "--time-wait", "0.1")
	waitEchoing(t, e, p, 7604) // the probe connection is the one served
	lr := p.wait(t)
	expectExit(t, lr, 0)
	cr := e.tcpcraft(t, strings.NewReader("x"), "connect", e.serverAddr(7605), "--ladder", "--ladder-chars", "unicode", "--ladder-width", "64", "--time-wait", "0.1")
	expectExit(t, cr, 1) // nobody listens on 7605: refused, which draws a ladder too
	arrow := func(trace, rail string) int {
		n := 0
		for _, line := range strings.Split(trace, "\n") {
			if strings.Count(line, rail) == 2 && strings.Contains(line, "seq") {
				n = max(n, len([]rune(line)))
			}
		}
		return n
	}
	wide, narrow := arrow(lr.stderr, "|"), arrow(cr.stderr, "│")
	if wide == 0 || narrow == 0 || narrow >= wide {
		t.Errorf("arrows: %d columns at --ladder-width 100 (ASCII rails), %d at 64 (Unicode rails)\nlisten:\n%s\nconnect:\n%s", wide, narrow, lr.stderr, cr.stderr)
	}
	for _, line := range strings.Split(cr.stderr, "\n") {
		if n := len([]rune(line)); n > 64 && !strings.HasPrefix(line, "tcpcraft") {
			t.Errorf("a ladder line of %d columns at --ladder-width 64: %q", n, line)
		}
	}
	if strings.Contains(lr.stderr, "│") {
		t.Errorf("--ladder-chars ascii drew Unicode rails:\n%s", lr.stderr)
	}
}

// TestLabDemo runs `tcpcraft lab demo` with names of its own (its options,
// after the command): it builds the lab, fetches the kernel's page with
// tcpcraft connect, shows the trace, and takes down the lab it built.
func TestLabDemo(t *testing.T) {
	cfg := labtest.Config(t)
	bin := tcpcraftBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "lab", "demo",
		"--client-ns", cfg.ClientNS, "--server-ns", cfg.ServerNS, "--client-if", cfg.ClientIf, "--server-if", cfg.ServerIf,
		"--client-addr", cfg.ClientAddr.String(), "--server-addr", cfg.ServerAddr.String(),
		"--client-addr6", cfg.ClientAddr6.String(), "--server-addr6", cfg.ServerAddr6.String())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("lab demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	// The page over IPv4, then over IPv6.
	if n := strings.Count(out.String(), "Hello from the Linux kernel"); n != 2 {
		t.Errorf("the page came %d times, want twice (IPv4, IPv6):\n%s", n, out.String())
	}
	if i4, i6 := strings.Index(out.String(), "response over IPv4"), strings.Index(out.String(), "response over IPv6"); i4 < 0 || i6 < i4 {
		t.Errorf("want the IPv4 response, then the IPv6 one:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "fd00:2::21.") || !strings.Contains(errOut.String(), " > fd00:2::20.80: Flags [S]") {
		t.Errorf("no IPv6 segment in tcpdump's notation in the trace:\n%s", errOut.String())
	}
	for _, want := range []string{"lab is up: client " + cfg.ClientAddr.String() + " " + cfg.ClientAddr6.String(), "Hello from the Linux kernel", "lab taken down (namespaces " + cfg.ClientNS + " and " + cfg.ServerNS + " removed)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout does not say %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "state SYN-SENT -> ESTABLISHED") {
		t.Errorf("no trace of the connection on stderr:\n%s", errOut.String())
	}
	labtest.AssertNoLeftovers(t, cfg)
}
