package cmd

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/pcapfile"
)

func sendFlags() []cli.Flag {
	return append(linkFlags(),
		&cli.StringFlag{Name: "flags", Aliases: []string{"f"}, Value: "S", Usage: "TCP flags as letters: S(YN) A(CK) F(IN) R(ST) P(SH) U(RG) E(CE) C(WR) N(S/AE), or \"none\""},
		&cli.StringFlag{Name: "seq", Usage: "sequence number (default: random)"},
		&cli.StringFlag{Name: "ack", Usage: "acknowledgement number (default 0)"},
		&cli.UintFlag{Name: "window", Value: 64240, Usage: "window field"},
		&cli.UintFlag{Name: "urg", Usage: "urgent pointer"},
		&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "a TCP option, in order, repeatable: mss=N, wscale=N, sackok, sack=L-R[,L-R...], ts=VAL:ECR, nop, eol, raw=KIND:HEX, or linux (Linux's SYN set: mss,sackOK,TS,nop,wscale)"},
		&cli.StringFlag{Name: "payload", Usage: "payload bytes as text"},
		&cli.StringFlag{Name: "payload-hex", Usage: "payload bytes as hex"},
		&cli.DurationFlag{Name: "wait", Value: time.Second, Usage: "how long to wait for replies to each segment"},
		&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Value: 1, Usage: "send this many segments (SYNs get a fresh source port each unless --sport)"},
		&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "pause between segments (0: back to back)"},
	)
}

// sendPlan is a parsed `send` command line.
type sendPlan struct {
	flags    craft.Flags
	seq      craft.Seq
	seqSet   bool
	ack      craft.Seq
	window   uint16
	urgent   uint16
	options  []craft.Option
	payload  []byte
	wait     time.Duration
	count    int
	interval time.Duration
}

func parseSendPlan(c *cli.Context) (sendPlan, error) {
	var p sendPlan
	var err error
	if p.flags, err = parseFlagLetters(c.String("flags")); err != nil {
		return p, usagef("--flags: %v", err)
	}
	if s := c.String("seq"); s != "" {
		v, err := strconv.ParseUint(s, 0, 32)
		if err != nil {
			return p, usagef("--seq %q: not a 32-bit number", s)
		}
		p.seq, p.seqSet = craft.Seq(v), true
	}
	if s := c.String("ack"); s != "" {
		v, err := strconv.ParseUint(s, 0, 32)
		if err != nil {
			return p, usagef("--ack %q: not a 32-bit number", s)
		}
		p.ack = craft.Seq(v)
	}
	if w := c.Uint("window"); w > 65535 {
		return p, usagef("--window %d: the field has 16 bits", w)
	}
	p.window = uint16(c.Uint("window"))
	if u := c.Uint("urg"); u > 65535 {
		return p, usagef("--urg %d: the field has 16 bits", u)
	}
	p.urgent = uint16(c.Uint("urg"))
	for _, o := range c.StringSlice("opt") {
		opts, err := parseOption(o)
		if err != nil {
			return p, usagef("--opt %q: %v", o, err)
		}
		p.options = append(p.options, opts...)
	}
	if _, err := (&craft.TCP{Options: p.options}).HeaderLen(); err != nil {
		return p, usagef("--opt: %v", err)
	}
	switch {
	case c.String("payload") != "" && c.String("payload-hex") != "":
		return p, usagef("give --payload or --payload-hex, not both")
	case c.String("payload") != "":
		p.payload = []byte(c.String("payload"))
	case c.String("payload-hex") != "":
		p.payload, err = hex.DecodeString(strings.NewReplacer(" ", "", ":", "").Replace(c.String("payload-hex")))
		if err != nil {
			return p, usagef("--payload-hex: %v", err)
		}
	}
	if len(p.payload) > 1400 {
		return p, usagef("payload of %d bytes: at most 1400 (one segment, no fragmentation)", len(p.payload))
	}
	p.wait, p.count, p.interval = c.Duration("wait"), c.Int("count"), c.Duration("interval")
	if p.wait <= 0 {
		return p, usagef("--wait %v: must be positive", p.wait)
	}
	if p.count < 1 {
		return p, usagef("--count %d: at least 1", p.count)
	}
	if p.interval < 0 {
		return p, usagef("--interval %v: must not be negative", p.interval)
	}
	return p, nil
}

// parseFlagLetters reads flags like "SA" or "none".
func parseFlagLetters(s string) (craft.Flags, error) {
	if strings.EqualFold(s, "none") || s == "" {
		return 0, nil
	}
	var f craft.Flags
	for _, r := range s {
		switch r {
		case 'S', 's':
			f |= craft.FlagSYN
		case 'A', 'a', '.':
			f |= craft.FlagACK
		case 'F', 'f':
			f |= craft.FlagFIN
		case 'R', 'r':
			f |= craft.FlagRST
		case 'P', 'p':
			f |= craft.FlagPSH
		case 'U', 'u':
			f |= craft.FlagURG
		case 'E', 'e':
			f |= craft.FlagECE
		case 'C', 'c', 'W', 'w':
			f |= craft.FlagCWR
		case 'N', 'n':
			f |= craft.FlagNS
		default:
			return 0, fmt.Errorf("unknown flag letter %q (use S A F R P U E C N)", r)
		}
	}
	return f, nil
}

// parseOption reads one --opt value.
func parseOption(s string) ([]craft.Option, error) {
	name, val, hasVal := strings.Cut(s, "=")
	num := func(bits int) (uint64, error) {
		if !hasVal {
			return 0, fmt.Errorf("%s needs a value (%s=N)", name, name)
		}
		return strconv.ParseUint(val, 0, bits)
	}
	switch strings.ToLower(name) {
	case "mss":
		v, err := num(16)
		if err != nil {
			return nil, err
		}
		return []craft.Option{{Kind: craft.OptMSS, MSS: uint16(v)}}, nil
	case "wscale", "ws":
		v, err := num(8)
		if err != nil {
			return nil, err
		}
		return []craft.Option{{Kind: craft.OptWindowScale, Shift: uint8(v)}}, nil
	case "sackok", "sack_perm", "sackpermitted":
		return []craft.Option{{Kind: craft.OptSACKPermitted}}, nil
	case "nop":
		return []craft.Option{{Kind: craft.OptNOP}}, nil
	case "eol":
		return []craft.Option{{Kind: craft.OptEOL}}, nil
	case "ts":
		a, b, ok := strings.Cut(val, ":")
		if !hasVal || !ok {
			return nil, errors.New("want ts=VAL:ECR")
		}
		tv, err1 := strconv.ParseUint(a, 0, 32)
		te, err2 := strconv.ParseUint(b, 0, 32)
		if err1 != nil || err2 != nil {
			return nil, errors.New("want ts=VAL:ECR with 32-bit numbers")
		}
		return []craft.Option{{Kind: craft.OptTimestamps, TSVal: uint32(tv), TSEcr: uint32(te)}}, nil
	case "sack":
		if !hasVal {
			return nil, errors.New("want sack=LEFT-RIGHT[,LEFT-RIGHT...]")
		}
		var blocks []craft.SACKBlock
		for _, b := range strings.Split(val, ",") {
			l, r, ok := strings.Cut(b, "-")
			lv, err1 := strconv.ParseUint(l, 0, 32)
			rv, err2 := strconv.ParseUint(r, 0, 32)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("block %q: want LEFT-RIGHT", b)
			}
			blocks = append(blocks, craft.SACKBlock{Left: craft.Seq(lv), Right: craft.Seq(rv)})
		}
		if len(blocks) > 4 {
			return nil, errors.New("at most 4 SACK blocks (RFC 2018 §3)")
		}
		return []craft.Option{{Kind: craft.OptSACK, Blocks: blocks}}, nil
	case "raw":
		k, h, ok := strings.Cut(val, ":")
		kind, err := strconv.ParseUint(k, 0, 8)
		if !hasVal || err != nil {
			return nil, errors.New("want raw=KIND:HEX")
		}
		var data []byte
		if ok {
			if data, err = hex.DecodeString(h); err != nil {
				return nil, fmt.Errorf("raw data: %v", err)
			}
		}
		if len(data) > 38 {
			return nil, errors.New("raw data longer than 38 bytes")
		}
		return []craft.Option{{Kind: craft.OptionKind(kind), Data: data}}, nil
	case "linux", "default":
		return craft.LinuxSYNOptions(1460, 7, 1, 0), nil
	}
	return nil, fmt.Errorf("unknown option %q (mss, wscale, sackok, sack, ts, nop, eol, raw, linux)", name)
}

// sendReply is one reply in --json output.
type sendReply struct {
	Type  string `json:"type"` // "reply" or "timeout"
	Probe int    `json:"probe"`
	RTTus int64  `json:"rtt_us,omitempty"`
	*craft.PacketJSON
}

// runSend is the action of "tcpcraft send".
func runSend(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("want exactly one HOST:PORT argument, got %d", c.NArg())
	}
	ctx := c.Context
	remote, err := parseHostPort(ctx, c.Args().First())
	if err != nil {
		return err
	}
	plan, err := parseSendPlan(c)
	if err != nil {
		return err
	}
	if err := capture.CheckPrivileges(); err != nil {
		return exitFailure(err)
	}
	inj, err := capture.OpenInjector()
	if err != nil {
		return exitFailure(err)
	}
	defer inj.Close()
	var pcap *pcapfile.Writer
	if path := c.String("pcap"); path != "" {
		if pcap, err = pcapfile.Create(path); err != nil {
			return exitFailure(err)
		}
		defer pcap.Close()
	}
	out := c.App.Writer
	var format craft.Formatter
	format.Absolute = true // a crafted segment is shown as crafted
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))

	var rtts []time.Duration
	sent := 0
	var local netip.AddrPort
	var ifindex int
	for i := 0; i < plan.count; i++ {
		if i > 0 && plan.interval > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(plan.interval):
			}
		}
		if ctx.Err() != nil {
			break
		}
		// A fresh port per SYN probe (unless --sport): the peer keeps no
		// state between probes, so each is a clean first SYN.
		if i == 0 || (plan.flags.Has(craft.FlagSYN) && c.Uint("sport") == 0) {
			_, ifindex, local, err = pickEndpoint(c, sessionSpec{remote: remote})
			if err != nil {
				return err
			}
		}
		rtt, ok, err := sendOne(ctx, c, plan, rng, inj, pcap, &format, ifindex, local, remote, i+1)
		if err != nil {
			return err
		}
		sent++
		if ok {
			rtts = append(rtts, rtt)
		}
	}
	if plan.count > 1 || c.Bool("json") {
		printSendStats(c, remote, sent, rtts)
	} else if len(rtts) == 0 {
		fmt.Fprintf(out, "no reply from %v within %v\n", remote, plan.wait)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(rtts) == 0 {
		return exitFailure(fmt.Errorf("no reply from %v", remote))
	}
	return nil
}

// sendOne sends one crafted segment from local (on interface ifindex) and reports the replies that
// arrive within plan.wait. The guard rule keeps the local kernel from
// resetting the reply itself; a SYN-ACK to our SYN is reset by us, so the
// peer is not left half-open.
func sendOne(ctx context.Context, c *cli.Context, plan sendPlan, rng *rand.Rand, inj *capture.Injector, pcap *pcapfile.Writer, format *craft.Formatter, ifindex int, local, remote netip.AddrPort, probe int) (time.Duration, bool, error) {
	out := c.App.Writer
	g, err := guard.Install(ctx, local)
	if err != nil {
		return 0, false, exitFailure(err)
	}
	defer g.Remove(context.Background())
	cp, err := capture.Open(ifindex, capture.Flow{Local: local, Remote: remote}, capture.Config{})
	if err != nil {
		return 0, false, exitFailure(err)
	}
	defer cp.Close()

	seq := plan.seq
	if !plan.seqSet {
		seq = craft.Seq(rng.Uint32())
	}
	seg := craft.TCP{
		SrcPort: local.Port(), DstPort: remote.Port(),
		Seq: seq, Ack: plan.ack, Flags: plan.flags, Window: plan.window, Urgent: plan.urgent,
		Options: plan.options, Payload: plan.payload,
	}
	ip := craft.IPv4{TTL: uint8(c.Uint("ttl")), ID: uint16(rng.Uint32()) | 1, DontFragment: true, Protocol: craft.ProtocolTCP, Src: local.Addr(), Dst: remote.Addr()}
	pkt, err := craft.BuildIPv4TCP(ip, &seg)
	if err != nil {
		return 0, false, usagef("building the segment: %v", err)
	}
	var parsed craft.Packet
	quiet := c.Bool("quiet")
	if err := craft.ParsePacket(craft.LinkRaw, pkt, &parsed, craft.PacketOptions{}); err == nil && !quiet && !c.Bool("json") {
		fmt.Fprintf(c.App.ErrWriter, "> %s\n", format.Format(&parsed))
	}
	sentAt := time.Now()
	if err := inj.Send(pkt); err != nil {
		return 0, false, exitFailure(fmt.Errorf("sending: %w", err))
	}
	if pcap != nil {
		_ = pcap.WritePacket(sentAt, pkt)
	}

	waitCtx, cancel := context.WithTimeout(ctx, plan.wait)
	defer cancel()
	var first time.Duration
	got := false
	for {
		f, err := cp.ReadFrame(waitCtx)
		if err != nil {
			break
		}
		if pcap != nil {
			_ = pcap.WriteTruncated(f.Time, f.Data, f.Length)
		}
		var reply craft.Packet
		if err := craft.ParsePacket(craft.LinkRaw, f.Data, &reply, craft.PacketOptions{PartialChecksum: f.ChecksumNotReady}); err != nil {
			fmt.Fprintf(out, "malformed reply: %v\n", err)
			continue
		}
		rtt := f.Time.Sub(sentAt)
		if rtt < 0 {
			rtt = time.Since(sentAt)
		}
		if !got {
			first, got = rtt, true
		}
		if c.Bool("json") {
			pj := format.JSON(&reply)
			pj.Time = f.Time.UTC().Format(time.RFC3339Nano)
			writeJSONLine(out, sendReply{Type: "reply", Probe: probe, RTTus: rtt.Microseconds(), PacketJSON: &pj})
		} else {
			fmt.Fprintf(out, "%s  rtt=%.3f ms\n", format.Format(&reply), float64(rtt.Microseconds())/1000)
		}
		// Clean up a half-open peer: our SYN drew a SYN-ACK (RFC 9293
		// §3.10.7.3 answers it with RST seq=SEG.ACK).
		if plan.flags.Has(craft.FlagSYN) && !plan.flags.Has(craft.FlagACK) &&
			reply.TCP.Flags.Has(craft.FlagSYN|craft.FlagACK) && !reply.TCP.Flags.Has(craft.FlagRST) {
			rst := craft.TCP{SrcPort: local.Port(), DstPort: remote.Port(), Seq: reply.TCP.Ack, Flags: craft.FlagRST}
			ip.ID++
			if b, err := craft.BuildIPv4TCP(ip, &rst); err == nil {
				_ = inj.Send(b)
				if pcap != nil {
					_ = pcap.WritePacket(time.Now(), b)
				}
				if !quiet && !c.Bool("json") {
					var rp craft.Packet
					if craft.ParsePacket(craft.LinkRaw, b, &rp, craft.PacketOptions{}) == nil {
						fmt.Fprintf(c.App.ErrWriter, "> %s (clean-up)\n", format.Format(&rp))
					}
				}
			}
			break // the exchange is over
		}
		if reply.TCP.Flags.Has(craft.FlagRST) {
			break
		}
	}
	if !got && c.Bool("json") {
		writeJSONLine(out, sendReply{Type: "timeout", Probe: probe})
	} else if !got && plan.count > 1 {
		fmt.Fprintf(out, "probe %d: no reply within %v\n", probe, plan.wait)
	}
	return first, got, nil
}

func writeJSONLine(w interface{ Write([]byte) (int, error) }, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		_, _ = w.Write(append(b, '\n'))
	}
}

// printSendStats ends a run like ping does.
func printSendStats(c *cli.Context, remote netip.AddrPort, sent int, rtts []time.Duration) {
	out := c.App.Writer
	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(sent-len(rtts)) / float64(sent)
	}
	var minR, avg, med, maxR time.Duration
	if len(rtts) > 0 {
		sorted := slices.Clone(rtts)
		slices.Sort(sorted)
		minR, maxR = sorted[0], sorted[len(sorted)-1]
		med = sorted[len(sorted)/2]
		if len(sorted)%2 == 0 {
			med = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		}
		var sum time.Duration
		for _, r := range sorted {
			sum += r
		}
		avg = sum / time.Duration(len(sorted))
	}
	if c.Bool("json") {
		writeJSONLine(out, struct {
			Type     string  `json:"type"`
			Sent     int     `json:"sent"`
			Received int     `json:"received"`
			LossPct  float64 `json:"loss_pct"`
			MinUs    int64   `json:"rtt_min_us"`
			AvgUs    int64   `json:"rtt_avg_us"`
			MedianUs int64   `json:"rtt_median_us"`
			MaxUs    int64   `json:"rtt_max_us"`
		}{"summary", sent, len(rtts), loss, minR.Microseconds(), avg.Microseconds(), med.Microseconds(), maxR.Microseconds()})
		return
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Fprintf(out, "--- %v tcpcraft send statistics ---\n", remote)
	fmt.Fprintf(out, "%d segments sent, %d answered, %.1f%% loss\n", sent, len(rtts), loss)
	if len(rtts) > 0 {
		fmt.Fprintf(out, "rtt min/avg/median/max = %.3f/%.3f/%.3f/%.3f ms\n", ms(minR), ms(avg), ms(med), ms(maxR))
	}
}
