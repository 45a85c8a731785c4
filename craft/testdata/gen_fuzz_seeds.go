//go:build ignore

// gen_fuzz_seeds writes the checked-in seed corpus of craft's fuzz targets
// (testdata/fuzz/<FuzzName>/) from the captures in testdata plus
// hand-made malformed inputs. Run from the module root:
//
//	go run craft/testdata/gen_fuzz_seeds.go
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/tcpcraft/tcpcraft/craft"
)

const dir = "craft/testdata/fuzz"

// seedName, when set, names the next seed written instead of its hash.
var seedName string

// write stores one seed in the "go test fuzz v1" format.
func write(target string, values ...any) {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case uint8:
			fmt.Fprintf(&b, "byte(%q)\n", rune(v))
		case uint16:
			fmt.Fprintf(&b, "uint16(%d)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%t)\n", v)
		default:
			log.Fatalf("unsupported seed type %T", v)
		}
	}
	sum := sha256.Sum256(b.Bytes())
	d := filepath.Join(dir, target)
	if err := os.MkdirAll(d, 0o755); err != nil {
		log.Fatal(err)
	}
	name := filepath.Join(d, fmt.Sprintf("seed-%x", sum[:8]))
	if seedName != "" {
		name = filepath.Join(d, seedName)
	}
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

func linkSelector(l craft.LinkType) uint8 {
	// Must match fuzzLinks in craft/fuzz_test.go.
	for i, x := range []craft.LinkType{craft.LinkEthernet, craft.LinkRaw, craft.LinkLinuxSLL, craft.LinkLinuxSLL2, craft.LinkIPv4, craft.LinkIPv6} {
		if x == l {
			return uint8(i)
		}
	}
	log.Fatalf("link %v has no selector", l)
	return 0
}

func main() {
	seen := map[string]bool{}
	for _, name := range []string{"linux-http.pcap", "linux-sll.pcap", "linux-sll2.pcap", "synth.pcap"} {
		raw, err := os.ReadFile(filepath.Join("craft/testdata", name))
		if err != nil {
			log.Fatal(err)
		}
		r, err := pcapgo.NewReader(bytes.NewReader(raw))
		if err != nil {
			log.Fatal(err)
		}
		for {
			frame, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			link := craft.LinkType(r.LinkType())
			var p craft.Packet
			if err := craft.ParsePacket(link, frame, &p, craft.PacketOptions{}); err != nil {
				log.Fatal(err)
			}
			// One seed per distinct option layout keeps the corpus small.
			opts, _ := craft.AppendOptions(nil, p.TCP.Options)
			key := fmt.Sprintf("%d/%x/%x/%d", link, opts, p.TCP.Flags, len(p.TCP.Payload) > 0)
			if seen[key] {
				continue
			}
			seen[key] = true
			write("FuzzParsePacket", linkSelector(link), frame)
			ip := frame[ipOffset(&p):][:ipLen(&p)]
			if p.IPVersion == 4 {
				write("FuzzIPv4", ip)
				write("FuzzTCP", ip[int(p.IPv4.IHL)*4:])
			} else {
				write("FuzzTCP", ip[40:])
			}
			write("FuzzTCPOptions", opts)
		}
	}
	// Malformed inputs.
	syn, err := craft.BuildIPv4TCP(craft.IPv4{TTL: 64, Src: netip.MustParseAddr("10.0.2.21"), Dst: netip.MustParseAddr("10.0.2.20")},
		&craft.TCP{SrcPort: 1, DstPort: 2, Flags: craft.FlagSYN, Options: craft.LinuxSYNOptions(1460, 7, 1, 0)})
	if err != nil {
		log.Fatal(err)
	}
	mut := func(b []byte, i int, v byte) []byte {
		c := append([]byte{}, b...)
		c[i] = v
		return c
	}
	write("FuzzIPv4", syn[:19])                     // short
	write("FuzzIPv4", mut(syn, 0, 0x44))            // IHL 4
	write("FuzzIPv4", mut(syn, 0, 0x4f))            // IHL 15 past the data
	write("FuzzIPv4", mut(syn, 3, 19))              // total length < header
	write("FuzzIPv4", mut(syn, 2, 0xff))            // total length past the data
	write("FuzzIPv4", mut(syn, 0, 0x65))            // version 6
	write("FuzzIPv4", append(mut(syn, 0, 0x46), 0)) // IHL 6: options eat the TCP header
	tcp := syn[20:]
	write("FuzzTCP", tcp[:19])           // short
	write("FuzzTCP", mut(tcp, 12, 0x40)) // data offset 4
	write("FuzzTCP", mut(tcp, 12, 0xf0)) // data offset past the end
	write("FuzzTCP", mut(tcp, 21, 1))    // mss length 1
	write("FuzzTCP", mut(tcp, 21, 0))    // mss length 0
	write("FuzzTCP", mut(tcp, 21, 3))    // mss length 3
	write("FuzzTCP", mut(tcp, 27, 40))   // TS length past the end
	write("FuzzTCP", mut(tcp, 12, 0xaf)) // all reserved bits and NS
	write("FuzzTCP", mut(tcp, 39, 0))    // EOL instead of the wscale value... shift byte 0
	write("FuzzTCP", mut(tcp, 36, 0))    // EOL in the middle, junk after
	opts := tcp[20:40]
	for _, o := range [][]byte{
		{}, {0}, {1}, {2}, {2, 1}, {2, 0}, {2, 4, 5}, {3, 3}, {5, 2}, {5, 10, 1, 2, 3}, {5, 6, 1, 2, 3, 4},
		{8, 10, 1, 2, 3, 4, 5, 6, 7}, {99, 2}, {99, 255, 1}, {0, 9, 9, 9}, {1, 1, 1, 4, 3},
		mut(opts, 1, 2), mut(opts, 5, 9),
	} {
		write("FuzzTCPOptions", o)
	}
	write("FuzzParsePacket", uint8(0), []byte{})
	eth := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0, 5}, 0x08, 0x00)
	write("FuzzParsePacket", uint8(0), append(append([]byte{}, eth...), syn...))
	write("FuzzParsePacket", uint8(0), append(append([]byte{}, eth...), syn[:30]...))
	udp := mut(syn, 9, 17)
	write("FuzzParsePacket", uint8(1), udp)
	frag := append([]byte{}, syn...)
	binary.BigEndian.PutUint16(frag[6:], 0x2001)
	write("FuzzParsePacket", uint8(1), frag)
	write("FuzzParsePacket", uint8(2), append(make([]byte, 14), 0x08, 0x06))
	extSeeds()
}

// extSeeds adds the frames of ext.pcap (IPv6 extension headers, IP header
// fields, fragments, ICMP errors) to the packet, ICMP and fragment
// targets, and the IPv4-mapped packet FuzzParsePacket once found
// ParsePacket accepting and AppendIPv6TCP refusing.
func extSeeds() {
	raw, err := os.ReadFile("craft/testdata/ext.pcap")
	if err != nil {
		log.Fatal(err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(raw))
	if err != nil {
		log.Fatal(err)
	}
	eth := func(b []byte) []byte {
		et := []byte{0x08, 0x00}
		if b[0]>>4 == 6 {
			et = []byte{0x86, 0xdd}
		}
		return append(append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}, et...), b...)
	}
	for {
		frame, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		var p craft.Packet
		perr := craft.ParsePacket(craft.LinkRaw, frame, &p, craft.PacketOptions{})
		if perr == nil && p.IPVersion == 6 && p.Src().Is4In6() {
			seedName = "ipv4-mapped-src-48.48.48.48"
			write("FuzzParsePacket", uint8(1), frame)
			seedName = ""
			continue
		}
		write("FuzzParsePacket", uint8(1), frame)
		var e craft.ICMPError
		if craft.ParseICMPError(craft.LinkRaw, frame, &e) == nil {
			write("FuzzICMPError", uint8(1), frame)
			write("FuzzICMPError", uint8(0), eth(frame))
			continue
		}
		if perr == nil {
			write("FuzzFragment", frame, uint16(16))
		}
	}
	for _, s := range []string{"S", "SA", "S.", "[S.]", "none", "syn,ack", "SYN", "SEWA.", "S.5", "E5", "Q"} {
		write("FuzzParseFlags", s, false)
		write("FuzzParseFlags", s, true)
	}
	for _, s := range []string{"mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7", "sack 2 {1:2}{5:9}", "sack 1:2 3:4",
		"sack=1-2,3-4", "mss=1460", "ts=1:0", "raw=254:0102", "unknown-99 0xabcd", "mss 0x05b4ff[len 5]", "linux",
		"FO abcd", "FOEXP", "md5 0011", "mptcp capable", "mss=99999", "eol", "sack[len 2]"} {
		write("FuzzParseOptions", s, false)
		write("FuzzParseOptions", s, true)
	}
}

// ipOffset returns where the IP packet starts in a frame of the corpus
// (at most one VLAN tag there).
func ipOffset(p *craft.Packet) int {
	switch p.Link {
	case craft.LinkEthernet:
		if p.Tagged {
			return 18
		}
		return 14
	case craft.LinkLinuxSLL:
		return 16
	case craft.LinkLinuxSLL2:
		return 20
	}
	return 0
}

func ipLen(p *craft.Packet) int {
	if p.IPVersion == 4 {
		return int(p.IPv4.TotalLength)
	}
	return 40 + int(p.IPv6.PayloadLength)
}
