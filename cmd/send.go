package cmd

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/prober"
)

// sendCommand is "tcpcraft send [flags] HOST:PORTS...": crafted probes,
// hping3- and nmap-style, driven by package prober.
func sendCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:      "send",
		Usage:     "craft TCP probes (flags, numbers, options, payload, IP header) and send them: one, a scan, a flood or a traceroute",
		ArgsUsage: "HOST:PORTS...",
		Description: "send builds probes exactly as told and sends them to each target: HOST:PORTS, HOST an address,\n" +
			"a CIDR prefix (10.0.2.0/28), a name, or an IPv6 address or prefix in brackets; PORTS a port, a\n" +
			"range 1-1024 or a list 22,80,443-445. With one target it works like hping3: the answers on standard\n" +
			"output with their round-trip time, what was sent on standard error, ping's statistics with -c. With\n" +
			"several it works like nmap -sS: a table of verdicts at the end — open (syn-ack), closed (rst),\n" +
			"filtered (no-response after one retransmission, or icmp-unreach-CODE) — and unfiltered or\n" +
			"open|filtered for ACK and FIN/NULL/Xmas probes. ICMP errors are matched to the probe they quote.\n" +
			"A SYN-ACK is answered with RST, so no peer is left half-open (--no-reset leaves it). One firewall\n" +
			"rule guards the run's block of source ports; everything is undone at the end and on Ctrl-C.\n" +
			"The run fails (exit 1) when no target answered with TCP.\n\n" +
			"Round-trip times are wire to wire, as tcpdump on the interface shows them: from the kernel's\n" +
			"timestamp of the probe as the device's driver took it (SO_TIMESTAMPING) to the answer's capture\n" +
			"time, both on the system clock, so the system call and the scheduling around it are left out.\n" +
			"A device that gives no transmit timestamp, and --flood, time from just before the send.\n\n" +
			"With --json, standard output has one JSON object per answer (\"type\":\"reply\" or \"icmp\", with a\n" +
			"single target or -v), per unanswered probe (\"timeout\"), per target (\"port\"), per traceroute hop\n" +
			"(\"hop\"), the statistics (\"summary\", with rtt_wire_timed: the answers timed wire to wire, and\n" +
			"rtt_user_min_us and rtt_user_median_us: the same from just before the send to when tcpcraft read\n" +
			"the answer, as a program timing connect() sees a handshake) and the final error (\"error\").",
		Flags:  sendFlags(),
		Action: runSend,
	},
		example{"is the port open? a SYN, like hping3 -S -p 80 -c 1", "tcpcraft send 10.0.2.20:80"},
		example{"five SYNs 0.2 s apart, with ping's statistics (hping3 -S -c 5 -i u200000)", "tcpcraft send 10.0.2.20:80 -c 5 --interval 0.2"},
		example{"a SYN scan of every port at 20,000 probes/s (nmap -sS -p- --max-rate 20000)", "tcpcraft send 10.0.2.20:1-65535 --rate 20000"},
		example{"a FIN/PSH/URG (\"Xmas\") scan of a few ports, verdicts as JSON", "tcpcraft send 10.0.2.20:22,80,443 --flags FPU --json"},
		example{"a SYN flood until Ctrl-C (hping3 --flood -S)", "tcpcraft send 10.0.2.20:80 --flood -c 0"},
		example{"a TCP traceroute (hping3 --traceroute, tcptraceroute)", "tcpcraft send 10.9.2.20:80 --traceroute"},
		example{"IP header fields: TTL, ID, DSCP, no DF, 8-byte fragments", "tcpcraft send 10.0.2.20:80 --ttl 7 --ip-id 4242 --dscp 46 --no-df --fragment 8"},
		example{"an out-of-the-blue ACK: a closed port answers RST (RFC 9293 §3.10.7.1)", "tcpcraft send 10.0.2.20:81 --flags A --ack 12345"},
	)
}

func sendFlags() []cli.Flag {
	u16 := intRange{min: 0, max: 65535}
	return []cli.Flag{
		ifaceFlag(), ttlFlag(), pcapFlag(),
		&cli.StringFlag{Name: "sport", Aliases: []string{"p"}, Usage: "source `PORT`, or random (a random port of the run's block for each probe)", DefaultText: "a block of ports outside ip_local_port_range, a fresh one per probe"},
		&cli.BoolFlag{Name: "json", Usage: "answers, verdicts, statistics and the final error as one JSON object per line on standard output"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no line per probe or answer: only the statistics (with -c) or the verdicts, and errors (--json output is whole)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "every probe and answer, also of a scan or flood, with the IP header (tos, ttl, id, offset, flags, checksum)"},
		&cli.StringFlag{Name: "flags", Aliases: []string{"f"}, Value: "S", Usage: "TCP flags as `LETTERS`: S(YN) A(CK) F(IN) R(ST) P(SH) U(RG) E(CE) C(WR) N(S/AE), or \"none\""},
		seqNumberFlag("seq", "sequence `NUMBER`", "random, counting up per probe"),
		seqNumberFlag("ack", "acknowledgement `NUMBER`", "0, or random counting up per probe when --flags has A"),
		&intFlag{Name: "window", Value: 64240, Usage: "window field", Config: u16},
		&intFlag{Name: "urg", Usage: "urgent pointer", Config: u16},
		&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "a TCP `OPTION`, in order, repeatable: mss=N, wscale=N, sackok, sack=L-R[,L-R...], ts=VAL:ECR, nop, eol, raw=KIND:HEX, or linux (Linux's SYN set: mss,sackOK,TS,nop,wscale)"},
		&cli.StringFlag{Name: "payload", Usage: "payload bytes as `TEXT`"},
		&cli.StringFlag{Name: "payload-hex", Usage: "payload bytes as `HEX`"},
		&durationFlag{Name: "wait", Usage: "how long to wait for each probe's answer", DefaultText: "1s, then from the round-trip times seen (at least 100ms)", Config: durationRules{positive: true}},
		&intFlag{Name: "count", Aliases: []string{"c"}, Value: 1, Usage: "send `N` probes to each target; 0: until Ctrl-C", Config: intRange{min: 0, max: 1 << 30}},
		&durationFlag{Name: "interval", Usage: "pause between probes; 0: back to back", DefaultText: "1s with one target, else the --rate default"},
		&intFlag{Name: "rate", Usage: "`N` probes per second, paced evenly", DefaultText: "10000 with several targets", Config: intRange{min: 1, max: prober.MaxRate}},
		&cli.BoolFlag{Name: "flood", Usage: "send as fast as the machine goes (hping3 --flood); answers are still read, counted and reset"},
		&intFlag{Name: "retries", Value: 1, Usage: "send an unanswered probe again `N` times before its target counts as filtered (with -c 1, as nmap does)", DefaultText: "1 with several targets, 0 with one (as hping3)", Config: intRange{min: 0, max: 10}},
		&cli.BoolFlag{Name: "no-reset", Usage: "do not answer SYN-ACKs with RST: the peer keeps the half-open connection and retransmits its SYN-ACK"},
		&cli.BoolFlag{Name: "traceroute", Usage: "TCP traceroute: TTL 1, 2, ... until the target answers (-c probes per TTL)"},
		&intFlag{Name: "max-ttl", Value: prober.DefaultMaxTTL, Usage: "the traceroute's last TTL", Config: intRange{min: 1, max: 255}},
		&intFlag{Name: "ip-id", Usage: "IPv4 identification `N` of every probe (IPv6: the fragment header's, with --fragment)", DefaultText: "counting up from a random start", Config: u16},
		&intFlag{Name: "tos", Usage: "IPv4 TOS or IPv6 traffic class `BYTE` (DSCP and ECN together)", Config: intRange{min: 0, max: 255}},
		&intFlag{Name: "dscp", Usage: "DSCP `N` of the TOS byte (RFC 2474): 46 is EF, 10 AF11, ...", Config: intRange{min: 0, max: 63}},
		&choiceFlag{Name: "ecn", Usage: "ECN codepoint of the TOS byte (RFC 3168)", Config: choices{values: []string{"not-ect", "ect1", "ect0", "ce"}, aliases: map[string]string{"0": "not-ect", "1": "ect1", "2": "ect0", "3": "ce"}}},
		&cli.BoolFlag{Name: "df", Usage: "set IPv4's don't-fragment flag (on by default, as Linux's TCP does, except on --fragment's fragments)"},
		&cli.BoolFlag{Name: "no-df", Usage: "clear IPv4's don't-fragment flag"},
		&intFlag{Name: "frag-offset", Usage: "IPv4 fragment offset in `BYTES` (a multiple of 8), written as given", Config: intRange{min: 0, max: 0x1fff * 8}},
		&cli.BoolFlag{Name: "mf", Usage: "set IPv4's more-fragments flag"},
		&intFlag{Name: "fragment", Usage: "split each probe into IP fragments of `N` bytes of it (a multiple of 8), like hping3 -f and nmap -f", Config: intRange{min: 8, max: 65528}},
		&cli.BoolFlag{Name: "bad-ip-checksum", Usage: "send a wrong IPv4 header checksum"},
		&cli.BoolFlag{Name: "bad-tcp-checksum", Usage: "send a wrong TCP checksum"},
		&cli.StringFlag{Name: "src", Usage: "source `ADDRESS` (hping3 --spoof); one that is not this host's needs --force, and then no answer is awaited"},
		&cli.BoolFlag{Name: "force", Usage: "with --src: send from an address that is not this host's"},
	}
}

// sendSetup is a parsed `send` command line: the prober's Config and how
// to show the run.
type sendSetup struct {
	cfg    prober.Config
	single bool // one target: hping3's way of showing it
	flood  bool // show no line per probe unless -v
}

func parseSend(c *cli.Command) (sendSetup, error) {
	var st sendSetup
	cfg := &st.cfg
	if c.NArg() == 0 {
		return st, usagef("want HOST:PORTS (a port, a range 1-1024 or a list 22,80,443-445), e.g. 10.0.2.20:80")
	}
	for _, arg := range c.Args().Slice() {
		spec, err := prober.ParseTarget(arg)
		if errors.Is(err, prober.ErrNoPort) && flagIsSet(c, "sport") && !strings.Contains(arg, ":") {
			return st, usagef("%v (-p is the source port, as in nc; did you mean %s:%s?)", err, arg, flagString(c, "sport"))
		}
		if err != nil {
			return st, usagef("%v", err)
		}
		cfg.Targets = append(cfg.Targets, spec)
	}
	var err error
	if cfg.Flags, err = craft.ParseFlags(flagString(c, "flags"), craft.NotationTcpdump); err != nil {
		return st, usagef("--flags %v", err)
	}
	cfg.Seq, cfg.SeqSet = craft.Seq(uint32(flagInt(c, "seq"))), flagIsSet(c, "seq")
	cfg.Ack, cfg.AckSet = craft.Seq(uint32(flagInt(c, "ack"))), flagIsSet(c, "ack")
	cfg.Window, cfg.Urgent = uint16(flagInt(c, "window")), uint16(flagInt(c, "urg"))
	if opts := flagStringSlice(c, "opt"); len(opts) > 0 {
		// One list: the CLI splits a value at commas ("sack=1-2,5-6"),
		// the grammar puts it back together.
		if cfg.Options, err = craft.ParseOptions(strings.Join(opts, ","), craft.NotationTcpdump); err != nil {
			return st, usagef("--opt %v", err)
		}
	}
	if _, err := (&craft.TCP{Options: cfg.Options}).HeaderLen(); err != nil {
		return st, usagef("--opt: %v", err)
	}
	for _, pair := range [][2]string{{"payload", "payload-hex"}, {"df", "no-df"}, {"flood", "rate"}, {"flood", "interval"}, {"rate", "interval"}, {"tos", "dscp"}, {"tos", "ecn"}} {
		if err := exclusive(c, pair[0], pair[1]); err != nil {
			return st, err
		}
	}
	if cfg.Payload = []byte(flagString(c, "payload")); flagString(c, "payload-hex") != "" {
		if cfg.Payload, err = hex.DecodeString(strings.NewReplacer(" ", "", ":", "").Replace(flagString(c, "payload-hex"))); err != nil {
			return st, usagef("--payload-hex: %v", err)
		}
	}
	if len(cfg.Payload) > 1400 {
		return st, usagef("payload of %d bytes: at most 1400 (one segment; --fragment cuts it into fragments)", len(cfg.Payload))
	}
	switch p := flagString(c, "sport"); {
	case p == "random":
		cfg.RandomSrcPort = true
	case p != "":
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return st, usagef("--sport %q: want a port 1-65535 or random", p)
		}
		cfg.SrcPort = uint16(n)
	}
	if s := flagString(c, "src"); s != "" {
		if cfg.Src, err = netip.ParseAddr(s); err != nil {
			return st, usagef("--src %q: not an IP address", s)
		}
	}
	cfg.Force, cfg.Iface = flagBool(c, "force"), flagString(c, "iface")
	ip := &cfg.IP
	ip.TTL = uint8(flagInt(c, "ttl"))
	ip.ID, ip.IDSet = uint16(flagInt(c, "ip-id")), flagIsSet(c, "ip-id")
	ip.DSCP, ip.ECN = uint8(flagInt(c, "dscp")), map[string]uint8{"ect1": 1, "ect0": 2, "ce": 3}[flagString(c, "ecn")]
	if flagIsSet(c, "tos") {
		ip.DSCP, ip.ECN = uint8(flagInt(c, "tos")>>2), uint8(flagInt(c, "tos")&3)
	}
	ip.NoDF, ip.DF, ip.MF, ip.FragOffset, ip.Fragment = flagBool(c, "no-df"), flagBool(c, "df"), flagBool(c, "mf"), flagInt(c, "frag-offset"), flagInt(c, "fragment")
	ip.BadIPChecksum, ip.BadTCPChecksum = flagBool(c, "bad-ip-checksum"), flagBool(c, "bad-tcp-checksum")
	if ip.FragOffset%8 != 0 || ip.Fragment%8 != 0 {
		return st, usagef("--frag-offset %d, --fragment %d: fragments start at multiples of 8 bytes (RFC 791 §3.1)", ip.FragOffset, ip.Fragment)
	}

	cfg.Count, cfg.Wait, cfg.Retries, cfg.NoReset = flagInt(c, "count"), flagDuration(c, "wait"), flagInt(c, "retries"), flagBool(c, "no-reset")
	cfg.Traceroute, cfg.MaxTTL = flagBool(c, "traceroute"), flagInt(c, "max-ttl")
	st.single = len(cfg.Targets) == 1 && cfg.Targets[0].Hosts() == 1 && cfg.Targets[0].PortCount() == 1
	if st.single && !flagIsSet(c, "retries") {
		cfg.Retries = 0 // one probe, as hping3 sends it
	}
	switch {
	case flagBool(c, "flood"):
		cfg.Flood, st.flood, cfg.SendTimes = true, true, true
	case flagIsSet(c, "rate"):
		cfg.Rate = float64(flagInt(c, "rate"))
	case flagIsSet(c, "interval") && flagDuration(c, "interval") == 0:
		cfg.Flood = true // back to back, shown like any run
	case flagIsSet(c, "interval"):
		cfg.Rate = float64(time.Second) / float64(flagDuration(c, "interval"))
	case st.single:
		cfg.Rate = 1
	default:
		cfg.Rate = 10000
	}
	if cfg.Traceroute && (cfg.Flood || flagIsSet(c, "rate")) {
		return st, usagef("--traceroute goes one TTL at a time: no --flood or --rate")
	}
	if cfg.Traceroute && !st.single {
		return st, usagef("--traceroute takes one HOST:PORT, got %s", quoteArgs(c.Args().Slice()))
	}
	cfg.RawSocketOnly = envSet("TCPCRAFT_SEND_RAW")
	// For comparisons: rings whatever the run's size (1), or none (0).
	switch os.Getenv("TCPCRAFT_SEND_RINGS") {
	case "1":
		cfg.Rings = prober.RingsOn
	case "0":
		cfg.Rings = prober.RingsOff
	}
	return st, nil
}
