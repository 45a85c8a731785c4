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
	dump := e.Command(ctx, e.ClientNS, "tcpdump", "-i", e.ClientIf, "--immediate-mode", "-U", "-w", file, "-n", "tcp port 7602")
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
