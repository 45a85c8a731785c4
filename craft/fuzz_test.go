package craft

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// The fuzz targets assert, for any input: no panic; an input that parses is
// reproduced byte for byte by emitting the parse (no normalisation is
// needed: EOL padding and unknown options are kept); the re-parse of the
// emitted bytes equals the first parse. Seeds live in
// testdata/fuzz/<FuzzName>/ (valid captured headers and malformed ones).

func FuzzIPv4(f *testing.F) {
	f.Add(buildSYN(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := NewIPv4View(data)
		if err != nil {
			return
		}
		// Every accessor is safe on a checked view.
		_ = v.Version() + v.IHL() + v.DSCP() + v.ECN() + v.TTL() + v.Protocol()
		_ = v.TotalLength() + v.ID() + v.FragmentOffset() + v.Checksum()
		_, _, _, _ = v.ReservedFlag(), v.DontFragment(), v.MoreFragments(), v.IsFragment()
		_, _ = v.Src(), v.Dst()
		_, _ = v.VerifyChecksum()
		if v.HeaderLen()+len(v.Payload()) != int(v.TotalLength()) || len(v.Options()) != v.HeaderLen()-20 {
			t.Fatalf("view lengths inconsistent")
		}
		ip, payload, err := ParseIPv4(data)
		if err != nil {
			t.Fatalf("view ok but ParseIPv4 failed: %v", err)
		}
		out, err := ip.Emit(nil, payload, EmitOptions{KeepChecksum: true})
		if err != nil {
			t.Fatalf("emit of a parsed header: %v", err)
		}
		if !bytes.Equal(out, v.Bytes()) {
			t.Fatalf("emit(parse(b)) != b\n   b % x\n got % x", v.Bytes(), out)
		}
		ip2, payload2, err := ParseIPv4(out)
		if err != nil || !ipv4Equal(&ip, &ip2) || !bytes.Equal(payload, payload2) {
			t.Fatalf("re-parse differs: %v\n%+v\n%+v", err, ip, ip2)
		}
		// With the checksum computed, the header verifies.
		out, err = ip.Emit(nil, payload, EmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v2, err := NewIPv4View(out)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := v2.VerifyChecksum(); !ok {
			t.Fatalf("computed checksum does not verify")
		}
	})
}

func ipv4Equal(a, b *IPv4) bool {
	x, y := *a, *b
	x.Options, y.Options = nil, nil
	return reflect.DeepEqual(x, y) && bytes.Equal(a.Options, b.Options)
}

func FuzzTCP(f *testing.F) {
	f.Add(buildSYN(f)[20:])
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	f.Fuzz(func(t *testing.T, data []byte) {
		var tcp TCP
		err := tcp.Parse(data)
		if err != nil {
			var oe *OptionError
			if errors.As(err, &oe) {
				if oe.Offset < TCPMinHeaderLen || oe.Offset >= int(data[12]>>4)*4 {
					t.Fatalf("option error offset %d outside the options: %v", oe.Offset, err)
				}
			} else if _, verr := NewTCPView(data); verr == nil {
				t.Fatalf("view ok but Parse failed with a non-option error: %v", err)
			}
			return
		}
		out, err := tcp.Emit(nil, netip.Addr{}, netip.Addr{}, EmitOptions{KeepChecksum: true})
		if err != nil {
			t.Fatalf("emit of a parsed segment: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("emit(parse(b)) != b\n   b % x\n got % x", data, out)
		}
		var again TCP
		if err := again.Parse(out); err != nil || !again.Equal(&tcp) {
			t.Fatalf("re-parse differs: %v", err)
		}
		for _, a := range []netip.Addr{src, dst} {
			out, err = tcp.Emit(nil, a, a, EmitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := VerifyTCPChecksum(a, a, out); !ok {
				t.Fatalf("computed checksum does not verify")
			}
		}
		// Rendering never panics.
		p := Packet{IPVersion: 4, IPv4: IPv4{Src: src, Dst: src}, TCP: tcp}
		var fm Formatter
		_ = fm.Format(&p)
		if _, err := json.Marshal(fm.JSON(&p)); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzTCPOptions(f *testing.F) {
	f.Add([]byte{2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		// A header holds at most 40 option bytes. Longer inputs add no
		// coverage but make the fuzzer spend its time minimizing them.
		if len(data) > 4*TCPMaxOptionsLen {
			return
		}
		opts, err := ParseTCPOptions(nil, data)
		if err != nil {
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Offset < TCPMinHeaderLen || oe.Offset >= TCPMinHeaderLen+len(data) {
				t.Fatalf("bad error %v", err)
			}
			// The options before the bad one are well-formed.
			if _, err := AppendOptions(nil, opts); err != nil {
				t.Fatalf("options before the error do not emit: %v", err)
			}
			return
		}
		for i := range opts {
			_ = opts[i].String()
		}
		out, err := AppendOptions(nil, opts)
		if err != nil {
			t.Fatalf("emit of parsed options: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("emit(parse(b)) != b\n   b % x\n got % x", data, out)
		}
		n, err := OptionsLen(opts)
		if err != nil || n != len(data) {
			t.Fatalf("OptionsLen %d, %v; want %d", n, err, len(data))
		}
		// Parsing into the storage of a previous parse gives the same.
		again, err := ParseTCPOptions(opts[:0], out)
		if err != nil || len(again) != len(opts) {
			t.Fatalf("re-parse: %v", err)
		}
		fresh, _ := ParseTCPOptions(nil, out)
		for i := range fresh {
			if !fresh[i].Equal(&again[i]) {
				t.Fatalf("option %d: %+v vs %+v", i, fresh[i], again[i])
			}
		}
	})
}

// fuzzLinks maps the fuzzer's link selector to a link type.
var fuzzLinks = []LinkType{LinkEthernet, LinkRaw, LinkLinuxSLL, LinkLinuxSLL2, LinkIPv4, LinkIPv6}

func FuzzParsePacket(f *testing.F) {
	f.Add(uint8(1), buildSYN(f))
	f.Fuzz(func(t *testing.T, sel uint8, frame []byte) {
		link := fuzzLinks[int(sel)%len(fuzzLinks)]
		// Whatever the frame, the text forms never panic.
		var scratch Packet
		for _, fm := range []Formatter{{}, {Verbose: true, IPPrefix: true}} {
			if b, err := fm.AppendFrame(nil, link, frame, &scratch); err == nil && len(b) == 0 {
				t.Fatal("empty line")
			}
		}
		var p Packet
		if err := ParsePacket(link, frame, &p, PacketOptions{}); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		var fm Formatter
		line := fm.Format(&p)
		if len(line) == 0 {
			t.Fatal("empty line")
		}
		if _, err := json.Marshal(fm.JSON(&p)); err != nil {
			t.Fatal(err)
		}
		// Rebuilding the packet from the parse reproduces the IP packet,
		// which sits inside the frame.
		var out []byte
		var err error
		keep := BuildOptions{KeepIPChecksum: true, KeepTCPChecksum: true}
		if p.IPVersion == 4 {
			out, err = AppendIPv4TCP(nil, &p.IPv4, &p.TCP, keep)
		} else {
			out, err = AppendIPv6TCP(nil, &p.IPv6, &p.TCP, keep)
		}
		if err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		if !bytes.Contains(frame, out) {
			t.Fatalf("rebuilt packet not in the frame\nframe % x\n  out % x", frame, out)
		}
		var q Packet
		if err := ParsePacket(LinkRaw, out, &q, PacketOptions{}); err != nil {
			t.Fatalf("re-parse of the rebuilt packet: %v", err)
		}
		if q.IPChecksum != p.IPChecksum || q.TCPChecksum != p.TCPChecksum || !q.TCP.Equal(&p.TCP) {
			t.Fatalf("re-parse differs")
		}
	})
}

// FuzzICMPError: any frame parses as an ICMP error or gives an error,
// never a panic; a parsed error renders as text and JSON, and building it
// again (lengths recomputed) parses back to the same type, code, MTU,
// pointer and quote.
func FuzzICMPError(f *testing.F) {
	f.Fuzz(func(t *testing.T, sel uint8, frame []byte) {
		link := fuzzLinks[int(sel)%len(fuzzLinks)]
		var e ICMPError
		if err := ParseICMPError(link, frame, &e); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		for _, fm := range []Formatter{{}, {Verbose: true, IPPrefix: true}} {
			if line := fm.FormatICMP(&e); line == "" {
				t.Fatal("empty line")
			}
		}
		if _, err := json.Marshal((&Formatter{}).ICMPJSON(&e)); err != nil {
			t.Fatal(err)
		}
		if !e.Quote.Tuple().Src.IsValid() {
			t.Fatalf("quote without addresses: %+v", e.Quote)
		}
		e.IPv4.IHL, e.IPv4.TotalLength, e.IPv6.PayloadLength = 0, 0, 0
		b, err := AppendICMPError(nil, &e, BuildOptions{})
		if err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		var again ICMPError
		if err := ParseICMPError(LinkRaw, b, &again); err != nil {
			t.Fatalf("re-parse of the rebuilt message: %v\n% x", err, b)
		}
		if again.Type != e.Type || again.Code != e.Code || again.MTU != e.MTU || again.Pointer != e.Pointer ||
			!bytes.Equal(again.Quote.Bytes, e.Quote.Bytes) || again.Quote.Tuple() != e.Quote.Tuple() ||
			again.Quote.Seq != e.Quote.Seq || again.Checksum.State != ChecksumGood {
			t.Fatalf("re-parse differs:\n%+v\n%+v", e, again)
		}
	})
}

// FuzzFragment: any packet fragments or gives an error, never a panic;
// the fragments of a packet carry its payload, in order, whole.
func FuzzFragment(f *testing.F) {
	f.Add(buildSYN(f), uint16(8))
	f.Fuzz(func(t *testing.T, pkt []byte, size uint16) {
		n := int(size)
		if n > 2048 {
			return
		}
		if len(pkt) > 0 && pkt[0]>>4 == 6 {
			frags, err := FragmentIPv6(pkt, n, 1)
			if err != nil {
				return
			}
			if len(frags) == 0 {
				t.Fatal("no fragments")
			}
			for _, fr := range frags {
				if _, err := NewIPv6View(fr); err != nil {
					t.Fatalf("fragment: %v", err)
				}
			}
			return
		}
		frags, err := FragmentIPv4(pkt, n)
		if err != nil {
			return
		}
		v, _ := NewIPv4View(pkt)
		var joined []byte
		for _, fr := range frags {
			fv, err := NewIPv4View(fr)
			if err != nil {
				t.Fatalf("fragment: %v", err)
			}
			// A packet that fits is returned as given; fragments get
			// their checksum computed.
			if ok, _ := fv.VerifyChecksum(); !ok && len(frags) > 1 {
				t.Fatal("fragment checksum")
			}
			joined = append(joined, fv.Payload()...)
		}
		if !bytes.Equal(joined, v.Payload()) {
			t.Fatal("fragments do not join to the payload")
		}
	})
}
