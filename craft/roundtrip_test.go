package craft

import (
	"bytes"
	"math/rand"
	"testing"
)

// ipAndSegment returns the IP packet (to its total length) and the TCP
// segment inside a parsed frame, located by the views.
func ipAndSegment(t *testing.T, p *Packet, frame []byte) (ip, seg []byte) {
	t.Helper()
	// Find the IP header: it is the suffix of the frame after the link
	// header; try the offsets the link types use.
	for _, off := range []int{0, 14, 16, 18, 20, 22} {
		if off >= len(frame) {
			break
		}
		b := frame[off:]
		if p.IPVersion == 4 {
			v, err := NewIPv4View(b)
			if err == nil && v.Src() == p.IPv4.Src && v.Dst() == p.IPv4.Dst && v.ID() == p.IPv4.ID {
				return v.Bytes(), v.Payload()
			}
		} else {
			v, err := NewIPv6View(b)
			if err == nil && v.Src() == p.IPv6.Src && v.Dst() == p.IPv6.Dst {
				return v.Bytes(), v.Payload()
			}
		}
	}
	t.Fatalf("IP header not found in frame")
	return nil, nil
}

// TestRoundTripCorpus: for every packet of every capture, emitting the
// parsed headers reproduces the bytes exactly — TCP alone, IP alone, and
// the whole packet through the builder — both with checksums kept and,
// where they were right on the wire, recomputed.
func TestRoundTripCorpus(t *testing.T) {
	for i, f := range readCorpus(t) {
		var p Packet
		if err := ParsePacket(f.link, f.data, &p, PacketOptions{}); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		ipBytes, seg := ipAndSegment(t, &p, f.data)
		got, err := p.TCP.Emit(nil, p.Src(), p.Dst(), EmitOptions{KeepChecksum: true})
		if err != nil || !bytes.Equal(got, seg) {
			t.Errorf("frame %d: TCP emit (kept checksum) differs: %v\n got % x\nwant % x", i, err, got, seg)
		}
		got, err = p.TCP.Emit(nil, p.Src(), p.Dst(), EmitOptions{})
		if err != nil || bytes.Equal(got, seg) != (p.TCPChecksum.State == ChecksumGood) {
			t.Errorf("frame %d: TCP emit (computed checksum) equal=%v, checksum %v, err %v", i, bytes.Equal(got, seg), p.TCPChecksum, err)
		}
		if p.IPVersion == 4 {
			got, err = p.IPv4.Emit(nil, seg, EmitOptions{KeepChecksum: true})
			if err != nil || !bytes.Equal(got, ipBytes) {
				t.Errorf("frame %d: IPv4 emit differs: %v", i, err)
			}
			keep := BuildOptions{KeepIPChecksum: true, KeepTCPChecksum: true}
			got, err = AppendIPv4TCP(nil, &p.IPv4, &p.TCP, keep)
			if err != nil || !bytes.Equal(got, ipBytes) {
				t.Errorf("frame %d: AppendIPv4TCP (kept) differs: %v", i, err)
			}
			good := p.IPChecksum.State == ChecksumGood && p.TCPChecksum.State == ChecksumGood
			got, err = AppendIPv4TCP(nil, &p.IPv4, &p.TCP, BuildOptions{})
			if err != nil || bytes.Equal(got, ipBytes) != good {
				t.Errorf("frame %d: AppendIPv4TCP (computed) equal=%v, checksums good=%v, err %v", i, bytes.Equal(got, ipBytes), good, err)
			}
		} else {
			got, err = p.IPv6.Emit(nil, seg)
			if err != nil || !bytes.Equal(got, ipBytes) {
				t.Errorf("frame %d: IPv6 emit differs: %v", i, err)
			}
			got, err = AppendIPv6TCP(nil, &p.IPv6, &p.TCP, BuildOptions{KeepTCPChecksum: true})
			if err != nil || !bytes.Equal(got, ipBytes) {
				t.Errorf("frame %d: AppendIPv6TCP (kept) differs: %v", i, err)
			}
		}
	}
}

// TestRoundTripGenerated: random valid segments (all flag bits, every
// option kind, EOL padding with junk) survive emit → parse → emit, and the
// parse gives back the segment that was emitted.
func TestRoundTripGenerated(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	var parsed TCP // reused across iterations, as the hot path does
	for i := 0; i < 20000; i++ {
		ip := randomIPv4(rng)
		tcp := randomTCP(rng)
		b, err := tcp.Emit(nil, ip.Src, ip.Dst, EmitOptions{})
		if err != nil {
			t.Fatalf("case %d: emit: %v (%+v)", i, err, tcp)
		}
		if err := parsed.Parse(b); err != nil {
			t.Fatalf("case %d: parse of emitted bytes: %v\n% x", i, err, b)
		}
		want := tcp
		hl, _ := tcp.HeaderLen()
		want.DataOffset = uint8(hl / 4)
		want.Checksum = TCPChecksum(ip.Src, ip.Dst, b)
		if !parsed.Equal(&want) {
			t.Fatalf("case %d: parse(emit(x)) != x\n got %+v\nwant %+v", i, parsed, want)
		}
		again, err := parsed.Emit(nil, ip.Src, ip.Dst, EmitOptions{KeepChecksum: true})
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("case %d: emit(parse(b)) != b: %v", i, err)
		}
		if ok, _ := VerifyTCPChecksum(ip.Src, ip.Dst, b); !ok {
			t.Fatalf("case %d: emitted checksum does not verify", i)
		}
	}
}

// TestRoundTripRandomBytes: any byte string that parses as a TCP segment
// is reproduced exactly by emitting the parse (no normalisation at all).
func TestRoundTripRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	parsedCount := 0
	for i := 0; i < 50000; i++ {
		b := make([]byte, 20+rng.Intn(60))
		rng.Read(b)
		b[12] = byte(5+rng.Intn(11))<<4 | b[12]&0x0f
		// Bias the options towards plausible kinds so many parse.
		for j := 20; j < len(b) && j < int(b[12]>>4)*4; j++ {
			if rng.Intn(3) == 0 {
				b[j] = byte(rng.Intn(9))
			}
		}
		tcp, err := ParseTCP(b)
		if err != nil {
			continue
		}
		parsedCount++
		got, err := tcp.Emit(nil, client4, server4, EmitOptions{KeepChecksum: true})
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("emit(parse(b)) != b: %v\n   b % x\n got % x", err, b, got)
		}
	}
	if parsedCount < 1000 {
		t.Fatalf("only %d of 50000 random segments parsed; the generator is too weak", parsedCount)
	}
}
