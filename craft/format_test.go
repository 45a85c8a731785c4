package craft

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// seg returns a parsed packet for the formatter tests.
func seg(t *testing.T, src, dst string, sport, dport uint16, flags Flags, seq, ack Seq, payload string, opts ...Option) *Packet {
	t.Helper()
	ip := IPv4{TTL: 64, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}
	b, err := BuildIPv4TCP(ip, &TCP{SrcPort: sport, DstPort: dport, Flags: flags, Seq: seq, Ack: ack, Window: 100, Options: opts, Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
	var p Packet
	if err := ParsePacket(LinkRaw, b, &p, PacketOptions{}); err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestSeqTrackerMidStream: a capture that starts mid-connection. The first
// ACK segment seen records the bases and is shown absolute; the following
// ones relative, in both directions — tcpdump's behaviour.
func TestSeqTrackerMidStream(t *testing.T) {
	var f Formatter
	lines := []string{
		f.Format(seg(t, "10.0.0.1", "10.0.0.2", 5000, 80, FlagACK|FlagPSH, 1000, 7000, "hello")),
		f.Format(seg(t, "10.0.0.2", "10.0.0.1", 80, 5000, FlagACK, 7000, 1005, "")),
		f.Format(seg(t, "10.0.0.1", "10.0.0.2", 5000, 80, FlagACK|FlagFIN, 1005, 7000, "")),
		f.Format(seg(t, "10.0.0.2", "10.0.0.1", 80, 5000, FlagACK|FlagPSH, 7000, 1006, "abc", NOPOption(), NOPOption(), SACKOption(SACKBlock{1010, 1020}))),
	}
	want := []string{
		"10.0.0.1.5000 > 10.0.0.2.80: Flags [P.], seq 1000:1005, ack 7000, win 100, length 5",
		"10.0.0.2.80 > 10.0.0.1.5000: Flags [.], ack 5, win 100, length 0",
		"10.0.0.1.5000 > 10.0.0.2.80: Flags [F.], seq 5, ack 1, win 100, length 0",
		"10.0.0.2.80 > 10.0.0.1.5000: Flags [P.], seq 1:4, ack 6, win 100, options [nop,nop,sack 1 {10:20}], length 3",
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, lines[i], want[i])
		}
	}
}

// TestSeqTrackerRules pins down the tcpdump rules: no ACK → absolute; a
// SYN-ACK re-records the bases; equal ports collate by address; other
// connections are independent.
func TestSeqTrackerRules(t *testing.T) {
	var tr SeqTracker
	rst := seg(t, "10.0.0.1", "10.0.0.2", 1, 2, FlagRST, 555, 0, "")
	if r := tr.Relative(rst); r.Relative || r.Seq != 555 || r.SACKBase != 0 {
		t.Errorf("RST without ACK: %+v", r)
	}
	synack := seg(t, "10.0.0.2", "10.0.0.1", 80, 1234, FlagSYN|FlagACK, 9000, 501, "")
	if r := tr.Relative(synack); r.Relative || r.Seq != 9000 || r.Ack != 501 {
		t.Errorf("SYN-ACK: %+v", r)
	}
	ack := seg(t, "10.0.0.1", "10.0.0.2", 1234, 80, FlagACK, 501, 9001, "")
	if r := tr.Relative(ack); !r.Relative || r.Seq != 1 || r.Ack != 1 {
		t.Errorf("ACK after SYN-ACK: %+v", r)
	}
	// A new SYN-ACK on the same 4-tuple starts over.
	synack2 := seg(t, "10.0.0.2", "10.0.0.1", 80, 1234, FlagSYN|FlagACK, 100, 50, "")
	tr.Relative(synack2)
	if r := tr.Relative(seg(t, "10.0.0.1", "10.0.0.2", 1234, 80, FlagACK, 60, 111, "")); r.Seq != 11 || r.Ack != 11 {
		t.Errorf("after the second SYN-ACK: %+v", r)
	}
	// Equal ports: the lower address is the forward direction.
	a := seg(t, "10.0.0.9", "10.0.0.3", 7, 7, FlagACK, 1000, 2000, "x")
	b := seg(t, "10.0.0.3", "10.0.0.9", 7, 7, FlagACK, 2000, 1001, "")
	tr.Relative(a)
	if r := tr.Relative(b); !r.Relative || r.Seq != 1 || r.Ack != 1 {
		t.Errorf("equal ports, reverse direction: %+v", r)
	}
	// Another connection is unaffected.
	if r := tr.Relative(seg(t, "10.0.0.1", "10.0.0.2", 1235, 80, FlagACK, 5, 6, "")); r.Relative {
		t.Errorf("fresh connection shown relative: %+v", r)
	}
	// Absolute mode never consults the tracker.
	f := Formatter{Absolute: true}
	if got := f.Format(ack); !strings.Contains(got, "ack 9001") || len(f.Seqs.flows) != 0 {
		t.Errorf("absolute: %s (%d flows tracked)", got, len(f.Seqs.flows))
	}
}

func TestFormatterFlagsAndPrefix(t *testing.T) {
	if got := Flags(0).String(); got != "none" {
		t.Errorf("no flags: %q", got)
	}
	if got := (FlagsMask).String(); got != "FSRP.UEW" {
		t.Errorf("all flags: %q", got)
	}
	if got := (FlagNS | FlagReserved2).String(); got != "none" {
		t.Errorf("NS and reserved only: %q", got)
	}
	p := seg(t, "10.0.0.1", "10.0.0.2", 1, 2, FlagURG|FlagNS|FlagReserved1, 1, 0, "u")
	p.TCP.Urgent = 1
	f := Formatter{IPPrefix: true}
	if got, want := f.Format(p), "IP 10.0.0.1.1 > 10.0.0.2.2: Flags [U], ae, reserved 0x1, seq 1:2, win 100, urg 1, length 1"; got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestJSON(t *testing.T) {
	pkts := parseAll(t, "synth.pcap")
	var f Formatter
	var js []PacketJSON
	for i := range pkts {
		js = append(js, f.JSON(&pkts[i]))
	}
	syn := js[0]
	if syn.Src != "10.0.2.21" || syn.SPort != 40000 || syn.DPort != 80 || syn.Flags != "S" || syn.Seq != 1000 ||
		syn.RelSeq != nil || syn.DataOffset != 15 || syn.Len != 0 || syn.TTL != 64 || !syn.DF || *syn.IPID != 1 {
		t.Errorf("SYN: %+v", syn)
	}
	names := []string{}
	for _, o := range syn.Options {
		names = append(names, o.Name)
	}
	if strings.Join(names, ",") != "mss,sackOK,TS,nop,wscale,unknown-99,sack,eol" {
		t.Errorf("option names %v", names)
	}
	o := syn.Options
	if *o[0].MSS != 1460 || *o[2].TSVal != 1 || *o[2].TSEcr != 0 || *o[4].WScale != 7 || o[5].Data != "abcd" ||
		o[6].SACK[0] != (SACKBlockJSON{5, 9}) || o[7].Data != "0000000000" || o[7].Kind != 0 {
		t.Errorf("options %+v", o)
	}
	if d := js[3]; d.RelSeq == nil || *d.RelSeq != 1 || *d.RelAck != 1 || d.Len != 600 {
		t.Errorf("data: %+v", d)
	}
	if all := js[5]; all.FlagBits != 0x0fff || all.Flags != "FSRP.UEW" || all.Urg != 3 {
		t.Errorf("all flags: %+v", all)
	}
	if bad := js[8]; bad.TCPChecksum.Status != "bad" || bad.TCPChecksum.Value != "0x1234" || bad.TCPChecksum.Expected != "0xf65e" {
		t.Errorf("bad tcp checksum: %+v", bad.TCPChecksum)
	}
	if bad := js[9]; bad.IPChecksum.Status != "bad" || bad.IPChecksum.Value != "0xbeef" || bad.IPChecksum.Expected != "0x22a0" || bad.TCPChecksum.Status != "good" {
		t.Errorf("bad ip checksum: %+v", bad.IPChecksum)
	}
	if v := js[14]; v.VLAN == nil || *v.VLAN != 42 {
		t.Errorf("vlan: %+v", v)
	}
	if v6 := js[15]; v6.IPVersion != 6 || v6.IPID != nil || v6.IPChecksum != nil || v6.IPLen != 80 || v6.TTL != 64 {
		t.Errorf("ipv6: %+v", v6)
	}
	// The encoding: an empty option list is [], not null; unused option
	// fields are absent.
	b, err := json.Marshal(js[2])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"options":[]`) || strings.Contains(string(b), "null") {
		t.Errorf("json %s", b)
	}
	b, _ = json.Marshal(js[0].Options[1])
	if string(b) != `{"kind":4,"name":"sackOK"}` {
		t.Errorf("sackOK json %s", b)
	}
}
