package craft

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// tcpdumpAppLayer matches what tcpdump appends after "length N" when it
// decodes the payload (": HTTP: GET / ...", " [RST no listener]"); this
// package does not decode payloads, so it is cut before comparing.
var tcpdumpAppLayer = regexp.MustCompile(`(, length \d+)(: .*| \[.*\])$`)

// ourExtras matches the documented additions of AppendText that tcpdump
// does not print: the NS/AE and reserved flag bits and bad checksums.
var ourExtras = regexp.MustCompile(`, ae|, reserved 0x[0-7]| \[bad (ip|tcp) cksum 0x[0-9a-f]{4} -> 0x[0-9a-f]{4}\]`)

// TestTextMatchesTcpdump compares the text form of every corpus packet with
// the output of `tcpdump -nn -t -r` (relative) and `tcpdump -nn -t -S -r`
// (absolute), recorded once in testdata/*.{relative,absolute}.txt.
func TestTextMatchesTcpdump(t *testing.T) {
	for _, name := range []string{"linux-http", "synth", "linux-sll", "linux-sll2"} {
		for _, mode := range []string{"relative", "absolute"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				pkts := parseAll(t, name+".pcap")
				want := readLines(t, name+"."+mode+".txt")
				if len(want) != len(pkts) {
					t.Fatalf("%d golden lines, %d packets", len(want), len(pkts))
				}
				f := Formatter{Absolute: mode == "absolute", IPPrefix: true}
				for i := range pkts {
					got := ourExtras.ReplaceAllString(f.Format(&pkts[i]), "")
					w := tcpdumpAppLayer.ReplaceAllString(want[i], "$1")
					// SLL2 lines carry "ifname Out " before "IP".
					if k := strings.Index(w, "IP"); k > 0 && strings.HasPrefix(name, "linux-sll2") {
						w = w[k:]
					}
					if got != w {
						t.Errorf("packet %d:\n got %s\nwant %s", i+1, got, w)
					}
				}
			})
		}
	}
}

// TestTextExtras checks the additions to tcpdump's form on the synthesized
// packets that need them, against tcpdump -vv's checksum verdicts.
func TestTextExtras(t *testing.T) {
	pkts := parseAll(t, "synth.pcap")
	var f Formatter
	lines := make([]string, len(pkts))
	for i := range pkts {
		lines[i] = f.Format(&pkts[i])
	}
	// Packet 6 has all twelve flag bits.
	if !strings.Contains(lines[5], "Flags [FSRP.UEW], ae, reserved 0x7, seq") {
		t.Errorf("all-flags packet: %s", lines[5])
	}
	verbose := strings.Join(readLines(t, "synth.verbose.txt"), "\n")
	// tcpdump -vv: "cksum 0x1234 (incorrect -> 0xf65e)" and
	// "bad cksum beef (->22a0)!"
	for _, m := range regexp.MustCompile(`cksum (0x[0-9a-f]{4}) \(incorrect -> (0x[0-9a-f]{4})\)`).FindAllStringSubmatch(verbose, -1) {
		want := fmt.Sprintf("[bad tcp cksum %s -> %s]", m[1], m[2])
		if !containsLine(lines, want) {
			t.Errorf("no line has %q", want)
		}
	}
	for _, m := range regexp.MustCompile(`bad cksum ([0-9a-f]+) \(->([0-9a-f]+)\)!`).FindAllStringSubmatch(verbose, -1) {
		want := fmt.Sprintf("[bad ip cksum 0x%04s -> 0x%04s]", m[1], m[2])
		if !containsLine(lines, want) {
			t.Errorf("no line has %q", want)
		}
	}
	bad := 0
	for _, l := range lines {
		bad += strings.Count(l, "[bad ")
	}
	if bad != 3 {
		t.Errorf("%d bad-checksum notes, want 3 (two TCP, one IP):\n%s", bad, strings.Join(lines, "\n"))
	}
}

func containsLine(lines []string, s string) bool {
	for _, l := range lines {
		if strings.HasSuffix(l, s) {
			return true
		}
	}
	return false
}
