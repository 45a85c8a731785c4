package cmd

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/pcapfile"
)

func sendFlags() []cli.Flag {
	return []cli.Flag{
		ifaceFlag(), sportFlag(), ttlFlag(), pcapFlag(),
		&cli.BoolFlag{Name: "json", Usage: "replies, statistics and the final error as one JSON object per line on standard output"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no line per segment sent or reply: only the statistics (with -c) and errors (--json output is whole)"},
		&cli.StringFlag{Name: "flags", Aliases: []string{"f"}, Value: "S", Usage: "TCP flags as `LETTERS`: S(YN) A(CK) F(IN) R(ST) P(SH) U(RG) E(CE) C(WR) N(S/AE), or \"none\""},
		seqNumberFlag("seq", "sequence `NUMBER`", "random"),
		seqNumberFlag("ack", "acknowledgement `NUMBER`", "0"),
		&intFlag{Name: "window", Value: 64240, Usage: "window field", Config: intRange{min: 0, max: 65535}},
		&intFlag{Name: "urg", Usage: "urgent pointer", Config: intRange{min: 0, max: 65535}},
		&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "a TCP `OPTION`, in order, repeatable: mss=N, wscale=N, sackok, sack=L-R[,L-R...], ts=VAL:ECR, nop, eol, raw=KIND:HEX, or linux (Linux's SYN set: mss,sackOK,TS,nop,wscale)"},
		&cli.StringFlag{Name: "payload", Usage: "payload bytes as `TEXT`"},
		&cli.StringFlag{Name: "payload-hex", Usage: "payload bytes as `HEX`"},
		&durationFlag{Name: "wait", Value: time.Second, Usage: "how long to wait for replies to each segment", Config: durationRules{positive: true}},
		&intFlag{Name: "count", Aliases: []string{"c"}, Value: 1, Usage: "send `N` segments (SYNs get a fresh source port each unless --sport)", Config: intRange{min: 1, max: 1 << 30, hint: "must be at least 1"}},
		&durationFlag{Name: "interval", Value: time.Second, Usage: "pause between segments; 0: back to back"},
	}
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

func parseSendPlan(c *cli.Command) (sendPlan, error) {
	var p sendPlan
	var err error
	if p.flags, err = craft.ParseFlags(c.String("flags"), craft.NotationTcpdump); err != nil {
		return p, usagef("--flags %v", err)
	}
	if c.IsSet("seq") {
		p.seq, p.seqSet = craft.Seq(uint32(c.Int("seq"))), true
	}
	p.ack = craft.Seq(uint32(c.Int("ack")))
	p.window = uint16(c.Int("window"))
	p.urgent = uint16(c.Int("urg"))
	if opts := c.StringSlice("opt"); len(opts) > 0 {
		// One list: the CLI splits a value at commas ("sack=1-2,5-6"),
		// the grammar puts it back together.
		if p.options, err = craft.ParseOptions(strings.Join(opts, ","), craft.NotationTcpdump); err != nil {
			return p, usagef("--opt %v", err)
		}
	}
	if _, err := (&craft.TCP{Options: p.options}).HeaderLen(); err != nil {
		return p, usagef("--opt: %v", err)
	}
	if err := exclusive(c, "payload", "payload-hex"); err != nil {
		return p, err
	}
	switch {
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
	return p, nil
}

// sendReply is one reply in --json output.
type sendReply struct {
	Type  string `json:"type"` // "reply" or "timeout"
	Probe int    `json:"probe"`
	RTTus int64  `json:"rtt_us,omitempty"`
	*craft.PacketJSON
}

// runSend is the action of "tcpcraft send".
func runSend(ctx context.Context, c *cli.Command) error {
	if c.NArg() != 1 {
		return usagef("want exactly one HOST:PORT argument, got %d (%s)", c.NArg(), quoteArgs(c.Args().Slice()))
	}
	plan, err := parseSendPlan(c)
	if err != nil {
		return err
	}
	remote, err := parseHostPort(ctx, c.Args().First())
	if err != nil {
		return err
	}
	// Every check before anything on the system changes: the output
	// file, the interface and addresses, the segment itself.
	pcapPath := c.String("pcap")
	if err := checkOutputPath("--pcap", pcapPath); err != nil {
		return err
	}
	_, ifindex, local, err := pickEndpoint(c, sessionSpec{remote: remote})
	if err != nil {
		return err
	}
	if _, err := buildProbe(c, plan, rand.New(rand.NewPCG(1, 2)), local, remote); err != nil {
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
	sent := 0
	if pcapPath != "" {
		if pcap, err = pcapfile.Create(pcapPath); err != nil {
			return exitFailure(err)
		}
		defer func() {
			pcap.Close()
			if sent == 0 {
				// Nothing was sent: a run that failed before its
				// first probe leaves no file behind.
				os.Remove(pcapPath)
			}
		}()
	}
	var format craft.Formatter
	format.Absolute = true // a crafted segment is shown as crafted
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))

	var rtts []time.Duration
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
		if i > 0 && plan.flags.Has(craft.FlagSYN) && !c.IsSet("sport") {
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
		if err := printSendStats(c, remote, sent, rtts); err != nil {
			return exitFailure(fmt.Errorf("writing output: %w", err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(rtts) == 0 {
		return exitFailure(fmt.Errorf("no reply from %v within %v", remote, plan.wait))
	}
	return nil
}

// buildProbe builds the packet of one probe from local to remote.
func buildProbe(c *cli.Command, plan sendPlan, rng *rand.Rand, local, remote netip.AddrPort) ([]byte, error) {
	seq := plan.seq
	if !plan.seqSet {
		seq = craft.Seq(rng.Uint32())
	}
	seg := craft.TCP{
		SrcPort: local.Port(), DstPort: remote.Port(),
		Seq: seq, Ack: plan.ack, Flags: plan.flags, Window: plan.window, Urgent: plan.urgent,
		Options: plan.options, Payload: plan.payload,
	}
	ip := craft.IPv4{TTL: uint8(c.Int("ttl")), ID: uint16(rng.Uint32()) | 1, DontFragment: true, Protocol: craft.ProtocolTCP, Src: local.Addr(), Dst: remote.Addr()}
	pkt, err := craft.BuildIPv4TCP(ip, &seg)
	if err != nil {
		return nil, usagef("building the segment: %v", err)
	}
	return pkt, nil
}

// sendOne sends one crafted segment from local (on interface ifindex) and reports the replies that
// arrive within plan.wait. The guard rule keeps the local kernel from
// resetting the reply itself; a SYN-ACK to our SYN is reset by us, so the
// peer is not left half-open.
func sendOne(ctx context.Context, c *cli.Command, plan sendPlan, rng *rand.Rand, inj *capture.Injector, pcap *pcapfile.Writer, format *craft.Formatter, ifindex int, local, remote netip.AddrPort, probe int) (time.Duration, bool, error) {
	out := stdout(c)
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

	pkt, err := buildProbe(c, plan, rng, local, remote)
	if err != nil {
		return 0, false, err
	}
	var parsed craft.Packet
	quiet := c.Bool("quiet")
	if err := craft.ParsePacket(craft.LinkRaw, pkt, &parsed, craft.PacketOptions{}); err == nil && !quiet && !c.Bool("json") {
		fmt.Fprintf(stderr(c), "> %s\n", format.Format(&parsed))
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
			if !quiet && !c.Bool("json") {
				fmt.Fprintf(out, "malformed reply: %v\n", err)
			}
			continue
		}
		rtt := f.Time.Sub(sentAt)
		if rtt < 0 {
			rtt = time.Since(sentAt)
		}
		if !got {
			first, got = rtt, true
		}
		var werr error
		switch {
		case c.Bool("json"):
			pj := format.JSON(&reply)
			pj.Time = f.Time.UTC().Format(time.RFC3339Nano)
			werr = writeJSONLine(out, sendReply{Type: "reply", Probe: probe, RTTus: rtt.Microseconds(), PacketJSON: &pj})
		case quiet:
		default:
			_, werr = fmt.Fprintf(out, "%s  rtt=%.3f ms\n", format.Format(&reply), float64(rtt.Microseconds())/1000)
		}
		if werr != nil {
			return 0, false, exitFailure(fmt.Errorf("writing output: %w", werr))
		}
		// Clean up a half-open peer: our SYN drew a SYN-ACK, and send
		// holds no connection, so fsm answers as a closed port does
		// (RFC 9293 §3.10.7.1: <SEQ=SEG.ACK><CTL=RST>).
		if plan.flags.Has(craft.FlagSYN) && !plan.flags.Has(craft.FlagACK) &&
			reply.TCP.Flags.Has(craft.FlagSYN|craft.FlagACK) && !reply.TCP.Flags.Has(craft.FlagRST) {
			rst, _ := fsm.ResetFor(&reply.TCP) // not an RST: there is one
			ip := craft.IPv4{TTL: pkt[8], ID: binary.BigEndian.Uint16(pkt[4:6]) + 1, DontFragment: true, Protocol: craft.ProtocolTCP, Src: local.Addr(), Dst: remote.Addr()}
			if b, err := craft.BuildIPv4TCP(ip, &rst); err == nil {
				_ = inj.Send(b)
				if pcap != nil {
					_ = pcap.WritePacket(time.Now(), b)
				}
				if !quiet && !c.Bool("json") {
					var rp craft.Packet
					if craft.ParsePacket(craft.LinkRaw, b, &rp, craft.PacketOptions{}) == nil {
						fmt.Fprintf(stderr(c), "> %s (clean-up)\n", format.Format(&rp))
					}
				}
			}
			break // the exchange is over
		}
		if reply.TCP.Flags.Has(craft.FlagRST) {
			break
		}
	}
	var werr error
	switch {
	case got:
	case c.Bool("json"):
		werr = writeJSONLine(out, sendReply{Type: "timeout", Probe: probe})
	case plan.count > 1 && !quiet:
		_, werr = fmt.Fprintf(out, "probe %d: no reply within %v\n", probe, plan.wait)
	}
	if werr != nil {
		return 0, false, exitFailure(fmt.Errorf("writing output: %w", werr))
	}
	return first, got, nil
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// printSendStats ends a run like ping does.
func printSendStats(c *cli.Command, remote netip.AddrPort, sent int, rtts []time.Duration) error {
	out := stdout(c)
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
		return writeJSONLine(out, struct {
			Type     string  `json:"type"`
			Sent     int     `json:"sent"`
			Received int     `json:"received"`
			LossPct  float64 `json:"loss_pct"`
			MinUs    int64   `json:"rtt_min_us"`
			AvgUs    int64   `json:"rtt_avg_us"`
			MedianUs int64   `json:"rtt_median_us"`
			MaxUs    int64   `json:"rtt_max_us"`
		}{"summary", sent, len(rtts), loss, minR.Microseconds(), avg.Microseconds(), med.Microseconds(), maxR.Microseconds()})
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var b strings.Builder
	fmt.Fprintf(&b, "--- %v tcpcraft send statistics ---\n", remote)
	fmt.Fprintf(&b, "%d segments sent, %d answered, %.1f%% loss\n", sent, len(rtts), loss)
	if len(rtts) > 0 {
		fmt.Fprintf(&b, "rtt min/avg/median/max = %.3f/%.3f/%.3f/%.3f ms\n", ms(minR), ms(avg), ms(med), ms(maxR))
	}
	_, err := io.WriteString(out, b.String())
	return err
}
