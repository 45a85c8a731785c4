package craft

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The differential tests decode each packet with craft and with gopacket's
// layers (an independent decoder) and require agreement on every field and
// on checksum validity.

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	if a.Is4In6() {
		a = a.Unmap()
	}
	return a
}

// gopacketOptionBytes re-forms the raw option bytes from gopacket's list.
func gopacketTCPOptionData(o *Option) []byte {
	switch o.Kind {
	case OptMSS:
		return binary.BigEndian.AppendUint16(nil, o.MSS)
	case OptWindowScale:
		return []byte{o.Shift}
	case OptTimestamps:
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, o.TSVal), o.TSEcr)
	case OptSACK:
		var b []byte
		for _, s := range o.Blocks {
			b = binary.BigEndian.AppendUint32(b, uint32(s.Left))
			b = binary.BigEndian.AppendUint32(b, uint32(s.Right))
		}
		return b
	case OptSACKPermitted, OptNOP, OptEOL:
		return nil
	}
	return o.Data
}

// compareWithGopacket decodes frame with both decoders and reports every
// disagreement.
func compareWithGopacket(t *testing.T, what string, link LinkType, frame []byte) {
	t.Helper()
	var p Packet
	if err := ParsePacket(link, frame, &p, PacketOptions{}); err != nil {
		t.Fatalf("%s: craft: %v", what, err)
	}
	gp := gopacket.NewPacket(frame, layers.LinkType(link), gopacket.Default)
	if el := gp.ErrorLayer(); el != nil {
		t.Fatalf("%s: gopacket: %v", what, el.Error())
	}
	gtcp, _ := gp.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if gtcp == nil {
		t.Fatalf("%s: gopacket found no TCP layer", what)
	}
	var net gopacket.NetworkLayer
	switch p.IPVersion {
	case 4:
		g, _ := gp.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if g == nil {
			t.Fatalf("%s: gopacket found no IPv4 layer", what)
		}
		net = g
		ip := &p.IPv4
		if ip.Version != g.Version || ip.IHL != g.IHL || ip.DSCP<<2|ip.ECN != g.TOS || ip.TotalLength != g.Length ||
			ip.ID != g.Id || ip.ReservedFlag != (g.Flags&layers.IPv4EvilBit != 0) ||
			ip.DontFragment != (g.Flags&layers.IPv4DontFragment != 0) || ip.MoreFragments != (g.Flags&layers.IPv4MoreFragments != 0) ||
			ip.FragmentOffset != g.FragOffset || ip.TTL != g.TTL || ip.Protocol != uint8(g.Protocol) ||
			ip.Checksum != g.Checksum || ip.Src != addrOf(g.SrcIP) || ip.Dst != addrOf(g.DstIP) {
			t.Errorf("%s: IPv4 header differs:\n craft %+v\n gopacket %+v", what, *ip, g)
		}
		var raw []byte
		for _, o := range g.Options {
			raw = append(raw, o.OptionType)
			if o.OptionType > 1 {
				raw = append(raw, o.OptionLength)
				raw = append(raw, o.OptionData...)
			}
		}
		raw = append(raw, g.Padding...)
		if !bytes.Equal(raw, ip.Options) {
			t.Errorf("%s: IPv4 options: craft % x, gopacket % x", what, ip.Options, raw)
		}
		_, res := g.VerifyChecksum()
		if res.Valid != (p.IPChecksum.State == ChecksumGood) || uint32(p.IPChecksum.Expected) != res.Correct {
			t.Errorf("%s: IPv4 checksum: craft %+v, gopacket %+v", what, p.IPChecksum, res)
		}
	case 6:
		g, _ := gp.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if g == nil {
			t.Fatalf("%s: gopacket found no IPv6 layer", what)
		}
		net = g
		ip := &p.IPv6
		if g.Version != 6 || ip.TrafficClass != g.TrafficClass || ip.FlowLabel != g.FlowLabel || ip.PayloadLength != g.Length ||
			ip.NextHeader != uint8(g.NextHeader) || ip.HopLimit != g.HopLimit || ip.Src != addrOf(g.SrcIP) || ip.Dst != addrOf(g.DstIP) {
			t.Errorf("%s: IPv6 header differs:\n craft %+v\n gopacket %+v", what, *ip, g)
		}
	}
	if d, ok := gp.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok != p.Tagged || ok && d.VLANIdentifier != p.VLAN {
		t.Errorf("%s: VLAN: craft tagged=%v id=%d, gopacket %v", what, p.Tagged, p.VLAN, d)
	}
	tcp := &p.TCP
	f := tcp.Flags
	hdr := gtcp.Contents
	if tcp.SrcPort != uint16(gtcp.SrcPort) || tcp.DstPort != uint16(gtcp.DstPort) || uint32(tcp.Seq) != gtcp.Seq ||
		uint32(tcp.Ack) != gtcp.Ack || tcp.DataOffset != gtcp.DataOffset || tcp.Window != gtcp.Window ||
		tcp.Checksum != gtcp.Checksum || tcp.Urgent != gtcp.Urgent ||
		f.Has(FlagFIN) != gtcp.FIN || f.Has(FlagSYN) != gtcp.SYN || f.Has(FlagRST) != gtcp.RST || f.Has(FlagPSH) != gtcp.PSH ||
		f.Has(FlagACK) != gtcp.ACK || f.Has(FlagURG) != gtcp.URG || f.Has(FlagECE) != gtcp.ECE || f.Has(FlagCWR) != gtcp.CWR ||
		f.Has(FlagNS) != gtcp.NS || uint8(f>>9&7) != hdr[12]>>1&7 {
		t.Errorf("%s: TCP header differs:\n craft %+v\n gopacket %+v", what, *tcp, gtcp)
	}
	if !bytes.Equal(tcp.Payload, gtcp.Payload) {
		t.Errorf("%s: payload differs (%d vs %d bytes)", what, len(tcp.Payload), len(gtcp.Payload))
	}
	if len(tcp.Options) != len(gtcp.Options) {
		t.Errorf("%s: %d options, gopacket %d: %v vs %v", what, len(tcp.Options), len(gtcp.Options), tcp.Options, gtcp.Options)
	} else {
		for i := range tcp.Options {
			o, g := &tcp.Options[i], gtcp.Options[i]
			if uint8(o.Kind) != uint8(g.OptionType) || !bytes.Equal(gopacketTCPOptionData(o), g.OptionData) {
				t.Errorf("%s: option %d: craft %+v, gopacket %v", what, i, *o, g)
			}
			if o.Kind == OptEOL && !bytes.Equal(o.Data, gtcp.Padding) {
				t.Errorf("%s: EOL padding: craft % x, gopacket % x", what, o.Data, gtcp.Padding)
			}
		}
	}
	if err := gtcp.SetNetworkLayerForChecksum(net); err != nil {
		t.Fatal(err)
	}
	_, res := gtcp.VerifyChecksum()
	if res.Valid != (p.TCPChecksum.State == ChecksumGood) || uint32(p.TCPChecksum.Expected) != res.Correct {
		t.Errorf("%s: TCP checksum: craft %+v, gopacket %+v", what, p.TCPChecksum, res)
	}
}

func TestDifferentialCorpus(t *testing.T) {
	frames := readCorpus(t)
	bad := 0
	for i, f := range frames {
		compareWithGopacket(t, "corpus frame "+itoa(i), f.link, f.data)
		var p Packet
		_ = ParsePacket(f.link, f.data, &p, PacketOptions{})
		if p.TCPChecksum.State == ChecksumBad || p.IPChecksum.State == ChecksumBad {
			bad++
		}
	}
	if bad != 3 {
		t.Errorf("%d packets with a bad checksum in the corpus, synth.pcap has 3", bad)
	}
}

// TestDifferentialGenerated compares on random packets: random IPv4/IPv6
// headers, random segments with every option kind and all flag bits, and a
// random checksum kept in one case out of four.
func TestDifferentialGenerated(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	for i := 0; i < 3000; i++ {
		tcp := randomTCP(rng)
		opts := BuildOptions{}
		if rng.Intn(4) == 0 {
			opts.KeepTCPChecksum = true
			tcp.Checksum = uint16(rng.Uint32())
		}
		var b []byte
		var err error
		link := LinkRaw
		if rng.Intn(3) == 0 {
			ip := randomIPv6(rng)
			ip.Ext = randomIPv6Ext(rng)
			b, err = AppendIPv6TCP(nil, &ip, &tcp, opts)
		} else {
			ip := randomIPv4(rng)
			if rng.Intn(4) == 0 {
				opts.KeepIPChecksum = true
				ip.Checksum = uint16(rng.Uint32())
			}
			b, err = AppendIPv4TCP(nil, &ip, &tcp, opts)
		}
		if err != nil {
			t.Fatal(err)
		}
		if rng.Intn(2) == 0 {
			et := EtherTypeIPv4
			if b[0]>>4 == 6 {
				et = EtherTypeIPv6
			}
			b = append(AppendEthernet(nil, [6]byte{2}, [6]byte{4}, et), b...)
			link = LinkEthernet
		}
		compareWithGopacket(t, "generated "+itoa(i), link, b)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// randomIPv6Ext returns zero to three extension headers gopacket decodes
// through to TCP: hop-by-hop (first), destination options with random
// option data, and a type 0 routing header with no segment left (so the
// checksum's destination is the fixed header's, which gopacket uses).
func randomIPv6Ext(rng *rand.Rand) []IPv6Ext {
	var exts []IPv6Ext
	if rng.Intn(3) == 0 {
		exts = append(exts, IPv6OptionsHeader(IPv6HopByHop, nil))
	}
	if rng.Intn(3) == 0 {
		data := make([]byte, rng.Intn(20))
		rng.Read(data)
		exts = append(exts, IPv6OptionsHeader(IPv6DestOpts, append([]byte{0x1e, byte(len(data))}, data...)))
	}
	if rng.Intn(3) == 0 {
		n := 1 + rng.Intn(3)
		rt := make([]byte, 8+16*n)
		rt[1] = byte(2 * n)
		rng.Read(rt[8:])
		exts = append(exts, IPv6Ext{Kind: IPv6Routing, Data: rt})
	}
	return exts
}
