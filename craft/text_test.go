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

// ipGroup matches the -v IP group that the default line adds for an
// unusual IP header; TestTextVerboseMatchesTcpdump checks its wording.
var ipGroup = regexp.MustCompile(`^(IP6? )\((?:[^()]|\([^()]*\))*\) `)

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
					got := ipGroup.ReplaceAllString(ourExtras.ReplaceAllString(f.Format(&pkts[i]), ""), "$1")
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

// TestTextVerboseMatchesTcpdump compares the Verbose text form of every
// corpus packet with `tcpdump -nn -t -v -r` (its two lines per packet
// joined by a space, application-layer lines dropped), recorded in
// testdata/*.v.txt.
func TestTextVerboseMatchesTcpdump(t *testing.T) {
	for _, name := range []string{"linux-http", "synth", "linux-sll", "linux-sll2"} {
		t.Run(name, func(t *testing.T) {
			pkts := parseAll(t, name+".pcap")
			want := readLines(t, name+".v.txt")
			if len(want) != len(pkts) {
				t.Fatalf("%d golden lines, %d packets", len(want), len(pkts))
			}
			f := Formatter{IPPrefix: true, Verbose: true}
			for i := range pkts {
				got := ourExtras.ReplaceAllString(f.Format(&pkts[i]), "")
				w := tcpdumpAppLayer.ReplaceAllString(want[i], "$1")
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

// TestTextUnusualIPGroup: the default line shows the -v IP group for the
// synthesized packets whose header is unusual (TOS with ECT(0), the
// reserved flag, IP options; an IPv6 traffic class) and only for them.
func TestTextUnusualIPGroup(t *testing.T) {
	pkts := parseAll(t, "synth.pcap")
	verbose := readLines(t, "synth.v.txt")
	var f Formatter
	f.IPPrefix = true
	groups := 0
	for i := range pkts {
		line := f.Format(&pkts[i])
		m := ipGroup.FindString(line)
		if m == "" {
			continue
		}
		groups++
		if !strings.HasPrefix(verbose[i], m) {
			t.Errorf("packet %d: group %q, tcpdump -v %q", i+1, m, verbose[i])
		}
	}
	if groups != 2 {
		t.Errorf("%d lines with an IP group, want 2 (packets 11 and 16)", groups)
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
