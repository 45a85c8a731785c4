package craft

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

// TestPartialChecksum: a TCP checksum field holding the folded
// pseudo-header sum (what Linux leaves for checksum offload) is "partial"
// when the caller asks for it, "bad" otherwise; a checksum that is wrong
// in any other way stays "bad"; a right one stays "good".
func TestPartialChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.2.20"), netip.MustParseAddr("10.0.2.21")
	seg := TCP{SrcPort: 80, DstPort: 40000, Seq: 1, Ack: 2, Flags: FlagACK | FlagPSH, Window: 512, Payload: []byte("hello")}
	pkt, err := BuildIPv4TCP(IPv4{TTL: 64, Protocol: ProtocolTCP, Src: src, Dst: dst}, &seg)
	if err != nil {
		t.Fatal(err)
	}
	tcpLen := len(pkt) - IPv4MinHeaderLen
	partial := ^ChecksumFinish(PseudoHeaderSum(src, dst, ProtocolTCP, uint32(tcpLen)))
	withSum := func(v uint16) []byte {
		b := append([]byte(nil), pkt...)
		binary.BigEndian.PutUint16(b[IPv4MinHeaderLen+16:], v)
		return b
	}
	good := binary.BigEndian.Uint16(pkt[IPv4MinHeaderLen+16:])
	for _, tc := range []struct {
		name      string
		sum       uint16
		recognize bool
		want      ChecksumState
		text      string
	}{
		{"right", good, true, ChecksumGood, ""},
		{"partial, recognised", partial, true, ChecksumPartial, " [tcp cksum partial (offloaded)]"},
		{"partial, not asked", partial, false, ChecksumBad, " [bad tcp cksum"},
		{"wrong", partial ^ 0x0100, true, ChecksumBad, " [bad tcp cksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if err := ParsePacket(LinkRaw, withSum(tc.sum), &p, PacketOptions{RecognizePartial: tc.recognize}); err != nil {
				t.Fatal(err)
			}
			if p.TCPChecksum.State != tc.want {
				t.Fatalf("state %v, want %v", p.TCPChecksum.State, tc.want)
			}
			var f Formatter
			line := f.Format(&p)
			if tc.text == "" && strings.Contains(line, "cksum") || tc.text != "" && !strings.Contains(line, tc.text) {
				t.Errorf("text %q, want it to say %q", line, tc.text)
			}
			j, err := json.Marshal(f.JSON(&p))
			if err != nil {
				t.Fatal(err)
			}
			if want := `"status":"` + tc.want.String() + `"`; !strings.Contains(string(j), want) {
				t.Errorf("JSON %s, want %s", j, want)
			}
		})
	}
}
