package craft

import (
	"encoding/binary"
	"fmt"
)

// FragmentIPv4 splits an IPv4 packet into fragments that carry at most
// size bytes of its payload each (RFC 791 §2.3, §3.2), as hping3's --frag
// and nmap's -f do: a prober's way to test reassembly and filters. size
// must be a positive multiple of 8 (fragment offsets count 8-byte units).
// Every fragment copies the header with its total length, offset, MF flag
// and checksum set; the first carries all IP options, the others only
// those whose copied flag is set (RFC 791 §3.1), padded to a word. DF is
// kept as given (a tester may want both). A packet that already is a
// fragment is split again, the last piece keeping its MF flag. A payload
// of size bytes or less gives one copy of pkt. The fragments are new
// slices.
func FragmentIPv4(pkt []byte, size int) ([][]byte, error) {
	if size < 8 || size%8 != 0 {
		return nil, fmt.Errorf("ipv4 fragments of %d bytes: want a positive multiple of 8", size)
	}
	v, err := NewIPv4View(pkt)
	if err != nil {
		return nil, err
	}
	payload := v.Payload()
	if len(payload) <= size {
		return [][]byte{append([]byte(nil), v.Bytes()...)}, nil
	}
	var ip IPv4
	ip.FromView(v)
	first := ip.Options
	var copied []byte
	for i := 0; i < len(first); {
		t := first[i]
		if t == 0 {
			break
		}
		if t == 1 {
			i++
			continue
		}
		if i+1 >= len(first) || first[i+1] < 2 || i+int(first[i+1]) > len(first) {
			break
		}
		if t&0x80 != 0 {
			copied = append(copied, first[i:i+int(first[i+1])]...)
		}
		i += int(first[i+1])
	}
	base, lastMF := ip.FragmentOffset, ip.MoreFragments
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		h := ip
		h.IHL, h.TotalLength, h.Checksum = 0, 0, 0
		if off > 0 {
			h.Options = copied
		}
		if int(base)+off/8 > 0x1fff {
			return nil, fmt.Errorf("ipv4 fragment offset %d exceeds the 13-bit field", int(base)*8+off)
		}
		h.FragmentOffset = base + uint16(off/8)
		h.MoreFragments = end < len(payload) || lastMF
		b, err := h.Emit(make([]byte, 0, h.HeaderLen()+end-off), payload[off:end], EmitOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// FragmentIPv6 splits an IPv6 packet into fragments (RFC 8200 §4.5) that
// carry at most size bytes of its fragmentable part each, with the given
// identification. size must be a positive multiple of 8. The
// unfragmentable part (the fixed header and the extension headers up to a
// routing header, or a hop-by-hop header) starts every fragment, followed
// by a fragment header. A fragmentable part of size bytes or less gives
// one copy of pkt; a packet that already has a fragment header is an
// error. The fragments are new slices.
func FragmentIPv6(pkt []byte, size int, id uint32) ([][]byte, error) {
	if size < 8 || size%8 != 0 {
		return nil, fmt.Errorf("ipv6 fragments of %d bytes: want a positive multiple of 8", size)
	}
	v, err := NewIPv6View(pkt)
	if err != nil {
		return nil, err
	}
	exts, _, _, err := WalkIPv6Ext(v.NextHeader(), v.Payload(), nil)
	if err != nil {
		return nil, err
	}
	unfrag := 0 // extension headers in the unfragmentable part
	for i, e := range exts {
		switch e.Kind {
		case IPv6Fragment:
			return nil, fmt.Errorf("ipv6: the packet is a fragment already")
		case IPv6Routing:
			unfrag = i + 1
		case IPv6HopByHop:
			if unfrag == 0 {
				unfrag = 1
			}
		}
	}
	unfragLen := 0
	for _, e := range exts[:unfrag] {
		unfragLen += len(e.Data)
	}
	// The next-header value that announces the fragmentable part.
	next := v.NextHeader()
	if unfrag > 0 {
		next = exts[unfrag-1].Data[0]
	}
	body := v.Payload()[unfragLen:]
	if len(body) <= size {
		return [][]byte{append([]byte(nil), v.Bytes()...)}, nil
	}
	var out [][]byte
	for off := 0; off < len(body); off += size {
		end := min(off+size, len(body))
		if off/8 > 0x1fff {
			return nil, fmt.Errorf("ipv6 fragment offset %d exceeds the 13-bit field", off)
		}
		n := IPv6HeaderLen + unfragLen + 8 + end - off
		b := make([]byte, 0, n)
		b = append(b, v.Header()...)
		binary.BigEndian.PutUint16(b[4:], uint16(n-IPv6HeaderLen))
		b = append(b, v.Payload()[:unfragLen]...)
		// What announced the fragmentable part now announces the
		// fragment header.
		if unfrag > 0 {
			b[IPv6HeaderLen+unfragLen-len(exts[unfrag-1].Data)] = IPv6Fragment
		} else {
			b[6] = IPv6Fragment
		}
		frag := IPv6FragmentHeader(uint16(off/8), end < len(body), id)
		frag.Data[0] = next
		b = append(b, frag.Data...)
		b = append(b, body[off:end]...)
		out = append(out, b)
	}
	return out, nil
}
