package craft

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"testing"
)

// TestAppendIPv4TCPHeadersMatchesFullBuild: the headers built for a
// payload in pieces, followed by the pieces, are exactly the packet
// AppendIPv4TCP builds (lengths and both checksums included), for random
// segments whose payload is cut into random pieces of odd and even
// lengths; with KeepTCPChecksum the TCP checksum field is the one given
// and nothing else changes.
func TestAppendIPv4TCPHeadersMatchesFullBuild(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 2000; i++ {
		ip, tcp := randomIPv4(rng), randomTCP(rng)
		if i%3 == 0 {
			tcp.Payload = make([]byte, 1+rng.Intn(65000-120))
			rng.Read(tcp.Payload)
		}
		full, err := AppendIPv4TCP(nil, &ip, &tcp, BuildOptions{})
		if err != nil {
			t.Fatalf("case %d: full build: %v", i, err)
		}
		pieces := cut(rng, tcp.Payload)
		payload := tcp.Payload
		tcp.Payload = []byte("ignored")
		hdrs, err := AppendIPv4TCPHeaders([]byte{0xee}, &ip, &tcp, pieces, BuildOptions{})
		if err != nil {
			t.Fatalf("case %d: headers: %v", i, err)
		}
		if hdrs[0] != 0xee {
			t.Fatalf("case %d: the bytes already in dst were changed", i)
		}
		got := append(hdrs[1:], payload...)
		if !bytes.Equal(got, full) {
			t.Fatalf("case %d: headers+payload differ from the full build\n got %x\nwant %x", i, got[:min(len(got), 80)], full[:min(len(full), 80)])
		}

		tcp.Checksum = 0xbeef
		kept, err := AppendIPv4TCPHeaders(nil, &ip, &tcp, pieces, BuildOptions{KeepTCPChecksum: true})
		if err != nil {
			t.Fatalf("case %d: headers with kept checksum: %v", i, err)
		}
		tcpOff := ip.HeaderLen()
		if c := binary.BigEndian.Uint16(kept[tcpOff+16:]); c != 0xbeef {
			t.Fatalf("case %d: kept TCP checksum %#x, want 0xbeef", i, c)
		}
		binary.BigEndian.PutUint16(kept[tcpOff+16:], binary.BigEndian.Uint16(full[tcpOff+16:]))
		if !bytes.Equal(kept, full[:len(kept)]) {
			t.Fatalf("case %d: KeepTCPChecksum changed more than the checksum", i)
		}
	}
}

// TestAppendIPv4TCPHeadersErrors: what the full builder refuses, the
// header builder refuses too, leaving dst as it was.
func TestAppendIPv4TCPHeadersErrors(t *testing.T) {
	ip := IPv4{TTL: 64, Src: client4, Dst: server4}
	tooBig := [][]byte{make([]byte, 40000), make([]byte, 25535)}
	cases := map[string]struct {
		seg     TCP
		payload [][]byte
	}{
		"too long":  {TCP{Flags: FlagACK}, tooBig},
		"bad flags": {TCP{Flags: 1 << 13}, nil},
	}
	for name, c := range cases {
		dst := []byte{1, 2, 3}
		out, err := AppendIPv4TCPHeaders(dst, &ip, &c.seg, c.payload, BuildOptions{})
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if !bytes.Equal(out, []byte{1, 2, 3}) {
			t.Errorf("%s: dst became %x", name, out)
		}
	}
}

// cut splits b into 0 to 5 random pieces (empty ones included).
func cut(rng *rand.Rand, b []byte) [][]byte {
	var pieces [][]byte
	for len(b) > 0 && len(pieces) < 4 {
		n := rng.Intn(len(b) + 1)
		pieces = append(pieces, b[:n])
		b = b[n:]
	}
	if len(b) > 0 {
		pieces = append(pieces, b)
	}
	return pieces
}
