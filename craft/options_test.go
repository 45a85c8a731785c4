package craft

import (
	"bytes"
	"errors"
	"testing"
)

// segmentWithOptions returns a 20-byte TCP header followed by opts (padded
// with zeros to a multiple of 4) with the data offset set to match.
func segmentWithOptions(opts ...byte) []byte {
	b := make([]byte, 20, 60)
	b = append(b, opts...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b[12] = byte(len(b)/4) << 4
	return b
}

func TestMalformedOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []byte
		want string
	}{
		{"length 0", []byte{1, 1, 99, 0}, "tcp option at offset 22: length 0 is less than 2"},
		{"length 1", []byte{1, 1, 8, 1}, "tcp option at offset 22: length 1 is less than 2"},
		{"past end", []byte{2, 4, 5, 180, 99, 9, 0, 0}, "tcp option at offset 24: length 9 runs past the end of the header (4 bytes left)"},
		{"no length byte", []byte{1, 1, 1, 2}, "tcp option at offset 23: kind 2 has no length byte before the end of the header"},
		{"mss len 3", []byte{2, 3, 5, 1}, "tcp option at offset 20: mss option length 3, want 4"},
		{"mss len 6", []byte{2, 6, 0, 0, 5, 180, 0, 0}, "tcp option at offset 20: mss option length 6, want 4"},
		{"wscale len 4", []byte{3, 4, 7, 0}, "tcp option at offset 20: wscale option length 4, want 3"},
		{"sackOK len 3", []byte{4, 3, 0, 0}, "tcp option at offset 20: sackOK option length 3, want 2"},
		{"TS len 8", []byte{1, 1, 8, 8, 0, 0, 0, 1, 0, 0, 0, 2}, "tcp option at offset 22: TS option length 8, want 10"},
		{"sack no blocks", []byte{1, 1, 5, 2}, "tcp option at offset 22: sack option length 2, want 2 + 8*n with n from 1 to 4"},
		{"sack half block", []byte{1, 1, 5, 6, 0, 0, 0, 1, 0, 0, 0, 0}, "tcp option at offset 22: sack option length 6, want 2 + 8*n with n from 1 to 4"},
		{"truncated TS", []byte{1, 1, 1, 1, 1, 1, 1, 1, 8, 10, 0, 0}, "tcp option at offset 28: length 10 runs past the end of the header (4 bytes left)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := segmentWithOptions(tc.opts...)
			_, err := ParseTCP(seg)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Offset < 20 || oe.Offset >= len(seg) {
				t.Errorf("error %#v is not an *OptionError with an offset inside the options", err)
			}
			// A whole packet with this segment reports the same error.
			pkt, berr := AppendIPv4TCP(nil, &IPv4{TTL: 1, Src: client4, Dst: server4}, &TCP{DataOffset: uint8(len(seg) / 4),
				Options: []Option{{Kind: 250, Data: seg[22:]}}}, BuildOptions{})
			if berr != nil {
				t.Fatal(berr)
			}
			copy(pkt[40:], seg[20:]) // overwrite the placeholder option with the bad bytes
			var p Packet
			if err := ParsePacket(LinkRaw, pkt, &p, PacketOptions{}); err == nil || err.Error() != tc.want {
				t.Errorf("ParsePacket: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestOptionsParseTooManySACKBlocks: a SACK option with five blocks cannot
// occur in a header, but ParseTCPOptions takes any byte string; it must
// refuse what Emit cannot write back (found by FuzzTCPOptions).
func TestOptionsParseTooManySACKBlocks(t *testing.T) {
	b := append([]byte{1, 1, 5, 42}, make([]byte, 40)...)
	_, err := ParseTCPOptions(nil, b)
	if err == nil || err.Error() != "tcp option at offset 22: sack option length 42, want 2 + 8*n with n from 1 to 4" {
		t.Errorf("five SACK blocks: %v", err)
	}
}

func TestOptionsParseEveryKind(t *testing.T) {
	seg := segmentWithOptions(
		2, 4, 0x05, 0xb4, // mss 1460
		4, 2, // sackOK
		8, 10, 0, 0, 0, 1, 0, 0, 0, 2, // TS 1 2
		1,        // nop
		3, 3, 14, // wscale 14
		5, 10, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5, // sack {2^32-1:5}
		0, 7, 7, // eol + junk
	)
	tcp, err := ParseTCP(seg)
	if err != nil {
		t.Fatal(err)
	}
	want := []Option{MSSOption(1460), SACKPermittedOption(), TimestampsOption(1, 2), NOPOption(), WindowScaleOption(14),
		SACKOption(SACKBlock{0xffffffff, 5}), {Kind: OptEOL, Data: []byte{7, 7, 0, 0, 0}}} // padding kept
	checkOptions(t, "every kind", tcp.Options, want)
	if got := FindOption(tcp.Options, OptWindowScale); got == nil || got.Shift != 14 {
		t.Errorf("FindOption(wscale) = %+v", got)
	}
	if got := FindOption(tcp.Options, OptMSS); got == nil || got.MSS != 1460 {
		t.Errorf("FindOption(mss) = %+v", got)
	}
	if got := FindOption(tcp.Options, 77); got != nil {
		t.Errorf("FindOption(77) = %+v, want nil", got)
	}
	out, err := AppendOptions(nil, tcp.Options)
	if err != nil || !bytes.Equal(out, seg[20:]) {
		t.Errorf("AppendOptions: %v\n got % x\nwant % x", err, out, seg[20:])
	}
}

// TestOptionsParseReusesStorage: parsing into a TCP whose option slice and
// SACK blocks are large enough allocates nothing.
func TestOptionsParseReusesStorage(t *testing.T) {
	seg := segmentWithOptions(1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2)
	var tcp TCP
	if err := tcp.Parse(seg); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := tcp.Parse(seg); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Parse allocates %v times per segment", allocs)
	}
	if len(tcp.Options) != 6 || len(tcp.Options[2].Blocks) != 2 || tcp.Options[2].Blocks[1] != (SACKBlock{3, 4}) {
		t.Errorf("options after reuse: %+v", tcp.Options)
	}
	// A clone does not share the reused storage.
	c := tcp.Clone()
	seg2 := append([]byte{}, seg...)
	seg2[20+2+2+8+3] = 9 // low byte of the second block's left edge
	if err := tcp.Parse(seg2); err != nil {
		t.Fatal(err)
	}
	if c.Options[2].Blocks[1].Left != 3 || tcp.Options[2].Blocks[1].Left != 9 {
		t.Errorf("clone shares storage: clone %v, reparsed %v", c.Options[2].Blocks, tcp.Options[2].Blocks)
	}
}

func TestOptionEmitErrorsAndRaw(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"sack without blocks", []Option{{Kind: OptSACK}}},
		{"five sack blocks", []Option{SACKOption(make([]SACKBlock, 5)...)}},
		{"unknown too long", []Option{{Kind: 99, Data: make([]byte, 254)}}},
	} {
		if _, err := AppendOptions(nil, tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// Too many option bytes for a header.
	tcp := TCP{Options: []Option{TimestampsOption(1, 2), TimestampsOption(1, 2), TimestampsOption(1, 2), TimestampsOption(1, 2), NOPOption()}}
	if _, err := tcp.Emit(nil, client4, server4, EmitOptions{}); err == nil {
		t.Errorf("41 option bytes: no error")
	}
	// A known kind with raw Data is written raw: a crafted MSS of length 3.
	b, err := AppendOptions(nil, []Option{{Kind: OptMSS, Data: []byte{5}}})
	if err != nil || !bytes.Equal(b, []byte{2, 3, 5}) {
		t.Errorf("raw mss: % x, %v", b, err)
	}
	// A crafted data offset that lies is written as given.
	tcp = TCP{DataOffset: 15, Flags: FlagSYN}
	b, err = tcp.Emit(nil, client4, server4, EmitOptions{})
	if err != nil || len(b) != 20 || b[12]>>4 != 15 {
		t.Errorf("lying data offset: % x, %v", b, err)
	}
	if _, err := ParseTCP(b); err == nil || !errors.Is(err, ErrTruncated) {
		t.Errorf("parsing the lying header: %v, want ErrTruncated", err)
	}
	// Options not a multiple of 4 are padded with zero bytes.
	tcp = TCP{Options: []Option{MSSOption(1460), WindowScaleOption(7)}}
	b, err = tcp.Emit(nil, client4, server4, EmitOptions{})
	if err != nil || len(b) != 28 || b[12]>>4 != 7 || !bytes.Equal(b[20:], []byte{2, 4, 5, 0xb4, 3, 3, 7, 0}) {
		t.Errorf("padding: % x, %v", b, err)
	}
}

func TestOptionText(t *testing.T) {
	for _, tc := range []struct {
		o    Option
		want string
	}{
		{MSSOption(1460), "mss 1460"},
		{WindowScaleOption(7), "wscale 7"},
		{SACKPermittedOption(), "sackOK"},
		{TimestampsOption(1, 0), "TS val 1 ecr 0"},
		{SACKOption(SACKBlock{1, 2}, SACKBlock{3, 4}), "sack 2 {1:2}{3:4}"},
		{NOPOption(), "nop"},
		{Option{Kind: OptEOL, Data: []byte{1}}, "eol"},
		{Option{Kind: 99, Data: []byte{0xab, 0xcd}}, "unknown-99 0xabcd"},
		{Option{Kind: 200}, "unknown-200"},
		{Option{Kind: OptMSS, Data: []byte{5}}, "mss 0x05[len 3]"},
	} {
		if got := tc.o.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.o, got, tc.want)
		}
	}
}
