package cmd

// End-to-end tests of `tcpcraft send` against the real Linux kernel: crafted
// segments from the client namespace to kernel sockets in the server
// namespace, their replies, the clean-up RST after a SYN-ACK, and usage
// errors that must change nothing.

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// halfOpen counts the server namespace's connections in SYN-RECV on port.
func halfOpen(t *testing.T, e *e2eLab, port string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Command(ctx, e.ServerNS, "ss", "-Htn", "state", "syn-recv", "sport", "= :"+port).Output()
	if err != nil {
		t.Fatalf("ss in %s: %v", e.ServerNS, err)
	}
	return len(strings.Fields(string(out))) / 4 // recv-q send-q local peer
}

// A SYN to a kernel listener draws a SYN-ACK acknowledging our seq+1; send
// prints it with its RTT and resets the half-open peer, so the kernel holds
// no SYN-RECV entry afterwards.
func TestSendSYNToListener(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8081)
	r := e.tcpcraft(t, nil, "send", "--flags", "S", "--seq", "1000", "--opt", "mss=1460", e.serverAddr(8081))
	expectExit(t, r, 0)
	if !strings.Contains(r.stdout, "Flags [S.]") || !strings.Contains(r.stdout, "ack 1001") || !strings.Contains(r.stdout, "rtt=") {
		t.Errorf("want a SYN-ACK acknowledging 1001 with its rtt on stdout, got:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "Flags [R], seq 1001") || !strings.Contains(r.stderr, "(clean-up)") {
		t.Errorf("want the clean-up RST with seq 1001 in the trace, got:\n%s", r.stderr)
	}
	waitUntil(t, 5*time.Second, "no half-open connection left on the kernel", func() bool { return halfOpen(t, e, "8081") == 0 })
}

// --count with --json: one reply object per probe with a positive rtt_us,
// each SYN from a fresh source port, and a ping-like summary object.
func TestSendCountJSON(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8082)
	r := e.tcpcraft(t, nil, "send", "--opt", "linux", "--count", "5", "--interval", "0", "--json", "-q", e.serverAddr(8082))
	expectExit(t, r, 0)
	ports := map[uint16]bool{}
	var summary struct {
		Type     string `json:"type"`
		Sent     int    `json:"sent"`
		Received int    `json:"received"`
		Median   int64  `json:"rtt_median_us"`
	}
	replies := 0
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var obj struct {
			Type  string `json:"type"`
			RTTus int64  `json:"rtt_us"`
			Flags string `json:"flags"`
			DPort uint16 `json:"dport"`
			Opts  []struct {
				Name string `json:"name"`
			} `json:"options"`
		}
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("stdout line is not JSON: %q: %v", line, err)
		}
		switch obj.Type {
		case "reply":
			replies++
			if obj.RTTus <= 0 || obj.Flags != "S." {
				t.Errorf("reply %q: want flags S. and rtt_us > 0", line)
			}
			if len(obj.Opts) < 4 {
				t.Errorf("the kernel's SYN-ACK to a Linux-like SYN should carry mss, sackOK, TS and wscale: %q", line)
			}
			ports[obj.DPort] = true
		case "summary":
			if err := json.Unmarshal([]byte(line), &summary); err != nil {
				t.Fatal(err)
			}
		}
	}
	if replies != 5 || len(ports) != 5 {
		t.Errorf("want 5 replies to 5 distinct source ports, got %d replies, ports %v", replies, ports)
	}
	if summary.Type != "summary" || summary.Sent != 5 || summary.Received != 5 || summary.Median <= 0 {
		t.Errorf("summary: %+v", summary)
	}
	waitUntil(t, 5*time.Second, "no half-open connection left on the kernel", func() bool { return halfOpen(t, e, "8082") == 0 })
}

// A closed port answers a SYN with RST,ACK acknowledging seq+1 (RFC 9293
// §3.10.7.1); no clean-up is needed and none is sent.
func TestSendClosedPort(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	r := e.tcpcraft(t, nil, "send", "--seq", "41", e.serverAddr(8083))
	expectExit(t, r, 0)
	if !strings.Contains(r.stdout, "Flags [R.]") || !strings.Contains(r.stdout, "ack 42") {
		t.Errorf("want RST,ACK acknowledging 42, got:\n%s", r.stdout)
	}
	if strings.Contains(r.stderr, "clean-up") {
		t.Errorf("a RST needs no clean-up, but one was sent:\n%s", r.stderr)
	}
}

// Nothing answers (the server namespace drops the SYN): exit 1, "no reply".
func TestSendNoReply(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8084)
	labtest.Iptables(t, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "8084", "-j", "DROP")
	r := e.tcpcraft(t, nil, "send", "--wait", "300ms", e.serverAddr(8084))
	expectExit(t, r, 1)
	// Said once, as the error: nothing on stdout repeats it.
	if strings.Count(r.stdout+r.stderr, "no reply") != 1 || !strings.Contains(r.stderr, "tcpcraft send: no reply from "+e.serverAddr(8084)+" within 300ms") {
		t.Errorf("want \"no reply\" once, as the error, got:\nstdout %q\nstderr %q", r.stdout, r.stderr)
	}
}

// What was asked for is what went on the wire: flags (ECN bits included),
// sequence and acknowledgement numbers, window, urgent pointer, every option
// in order, and the payload, read back from --pcap; sent on the interface
// -i names.
func TestSendCraftsExactly(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8085)
	pcapPath := filepath.Join(t.TempDir(), "send.pcap")
	r := e.tcpcraft(t, nil, "send", "--flags", "SEC", "--seq", "7", "--window", "1234",
		"--opt", "mss=1000", "--opt", "nop", "--opt", "wscale=3", "--opt", "sackok", "--opt", "ts=5:0", "--opt", "raw=254:0102",
		"--payload", "hi", "--pcap", pcapPath, e.serverAddr(8085), "--ack", "99", "--urg", "5", "-i", e.ClientIf)
	expectExit(t, r, 0)
	f, err := os.Open(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := rd.ReadPacketData()
	if err != nil {
		t.Fatalf("first packet of the pcap: %v", err)
	}
	var p craft.Packet
	if err := craft.ParsePacket(craft.LinkRaw, data, &p, craft.PacketOptions{}); err != nil {
		t.Fatal(err)
	}
	seg := p.TCP
	if seg.Flags != craft.FlagSYN|craft.FlagECE|craft.FlagCWR || seg.Seq != 7 || seg.Ack != 99 || seg.Window != 1234 || seg.Urgent != 5 || string(seg.Payload) != "hi" {
		t.Errorf("sent flags %v seq %d ack %d win %d urg %d payload %q", seg.Flags, seg.Seq, seg.Ack, seg.Window, seg.Urgent, seg.Payload)
	}
	var kinds []craft.OptionKind
	for _, o := range seg.Options {
		kinds = append(kinds, o.Kind)
	}
	want := []craft.OptionKind{craft.OptMSS, craft.OptNOP, craft.OptWindowScale, craft.OptSACKPermitted, craft.OptTimestamps, 254}
	if len(kinds) < len(want) {
		t.Fatalf("options on the wire %v, want %v (then padding)", kinds, want)
	}
	for i, k := range want {
		if kinds[i] != k {
			t.Fatalf("options on the wire %v, want %v (then padding)", kinds, want)
		}
	}
	if o := seg.Options[0]; o.MSS != 1000 {
		t.Errorf("mss %d", o.MSS)
	}
	if o := seg.Options[5]; string(o.Data) != "\x01\x02" {
		t.Errorf("raw option data %x", o.Data)
	}
	if p.TCPChecksum.State != craft.ChecksumGood || p.IPChecksum.State != craft.ChecksumGood {
		t.Errorf("checksums of the crafted segment: ip %v tcp %v", p.IPChecksum.State, p.TCPChecksum.State)
	}
	// The reply is in the pcap too.
	if _, _, err := rd.ReadPacketData(); err == io.EOF {
		t.Error("the pcap holds no reply")
	}
}

// Bad command lines are usage errors (exit 2) found before anything on the
// system changes: no rule of the run exists afterwards.
func TestSendUsageErrors(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	for _, args := range [][]string{
		{"--flags", "SX"},
		{"--opt", "mss"},
		{"--opt", "wscale=300"},
		{"--opt", "sack=1-2,3-4,5-6,7-8,9-10"},
		{"--payload", "a", "--payload-hex", "61"},
		{"--payload-hex", "6"},
		{"--seq", "4294967296"},
		{"--count", "-1"},
		{"--tos", "1", "--dscp", "2"},
		{"--fragment", "12"},
		{"--frag-offset", "4"},
		{"--flood", "--rate", "5"},
		{"--rate", "5", "--interval", "1"},
		{"--df", "--no-df"},
		{"--sport", "x"},
		{"--sport", "70000"},
		{"--src", "10.0.2.99"}, // not ours: needs --force
		{"--src", "nonsense"},
		{"--traceroute", "--flood"},
		{"--ecn", "7"},
		{"--opt", "ts=1:2", "--opt", "ts=1:2", "--opt", "ts=1:2", "--opt", "ts=1:2", "--opt", "ts=1:2"}, // 50 option bytes
	} {
		r := e.tcpcraft(t, nil, append(append([]string{"send"}, args...), e.serverAddr(80))...)
		if r.code != 2 {
			t.Errorf("send %v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
		if rules := guardsOf(t, e, e.ClientNS, r.pid); len(rules) > 0 {
			t.Errorf("send %v left rules: %v", args, rules)
		}
	}
}
