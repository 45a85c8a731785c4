package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/pcapfile"
	"github.com/tcpcraft/tcpcraft/prober"
)

// sendReply is an answer in --json output: a TCP segment ("reply") with
// the packet's fields, or an ICMP error ("icmp") with the error's.
type sendReply struct {
	Type   string `json:"type"` // "reply" or "timeout"
	Target string `json:"target"`
	Probe  int    `json:"probe"`
	RTTus  int64  `json:"rtt_us,omitempty"`
	*craft.PacketJSON
}

type sendICMP struct {
	Target string `json:"target"`
	Probe  int    `json:"probe"`
	RTTus  int64  `json:"rtt_us,omitempty"`
	craft.ICMPJSON
}

// sendOutput shows a run's events: the probes on standard error, the
// answers on standard output (text or JSON).
type sendOutput struct {
	out, trace io.Writer
	json       bool
	quiet      bool
	format     craft.Formatter
	line       []byte
	pkt        craft.Packet
	err        error // the first write error
}

func (o *sendOutput) Event(e *prober.Event) {
	if o.err != nil {
		return
	}
	o.line = o.line[:0]
	switch {
	case o.json:
		var v any
		switch e.Kind {
		case prober.EventReply:
			pj := o.format.JSON(e.Packet)
			pj.Time = e.Time.UTC().Format(time.RFC3339Nano)
			v = sendReply{Type: "reply", Target: e.Target.String(), Probe: e.Probe, RTTus: e.RTT.Microseconds(), PacketJSON: &pj}
		case prober.EventICMP:
			ij := o.format.ICMPJSON(e.ICMP)
			ij.Time = e.Time.UTC().Format(time.RFC3339Nano)
			v = sendICMP{Target: e.Target.String(), Probe: e.Probe, RTTus: e.RTT.Microseconds(), ICMPJSON: ij}
		case prober.EventTimeout:
			v = sendReply{Type: "timeout", Target: e.Target.String(), Probe: e.Probe}
		case prober.EventHop:
			v = e.Hop.JSON()
		default:
			return
		}
		o.err = writeJSONLine(o.out, v)
	case e.Kind == prober.EventSent || e.Kind == prober.EventReset:
		o.line = append(o.line, "> "...)
		o.line, _ = o.format.AppendFrame(o.line, craft.LinkRaw, e.Raw, &o.pkt)
		if e.Kind == prober.EventReset {
			o.line = append(o.line, " (clean-up)"...)
		}
		_, o.err = o.trace.Write(append(o.line, '\n'))
	case e.Kind == prober.EventReply || e.Kind == prober.EventICMP:
		if e.Packet != nil {
			// Parsed as captured: a checksum left to offload is not bad.
			o.line = o.format.AppendText(o.line, e.Packet)
		} else {
			o.line, _ = o.format.AppendFrame(o.line, craft.LinkRaw, e.Raw, &o.pkt)
		}
		o.line = fmt.Appendf(o.line, "  rtt=%.3f ms\n", float64(e.RTT.Microseconds())/1000)
		_, o.err = o.out.Write(o.line)
	case e.Kind == prober.EventTimeout && !e.Retry:
		_, o.err = fmt.Fprintf(o.out, "%s probe %d: no answer\n", e.Target, e.Probe)
	case e.Kind == prober.EventHop:
		_, o.err = o.out.Write(append(e.Hop.AppendText(o.line), '\n'))
	}
}

// runSend is the action of "tcpcraft send".
func runSend(ctx context.Context, c *cli.Command) error {
	st, err := parseSend(c)
	if err != nil {
		return err
	}
	if err := checkOutputPath("--pcap", flagString(c, "pcap")); err != nil {
		return err
	}
	if err := capture.CheckPrivileges(); err != nil {
		return exitFailure(err)
	}
	// A scan builds its tables once (a few tens of bytes per target) and
	// keeps them to the end: collecting garbage while they are built only
	// delays the first probe (measured: 40-200 ms of a 65,535-port scan's
	// set-up on a loaded 2-core machine, none with this).
	if len(st.cfg.Targets) > 1 || st.cfg.Targets[0].Hosts()*st.cfg.Targets[0].PortCount() > 1024 {
		debug.SetGCPercent(400)
	}
	cfg := &st.cfg
	cfg.ReleaseLater, _ = c.Root().Metadata[releaseLaterKey].(bool)
	o := &sendOutput{out: stdout(c), trace: stderr(c), json: flagBool(c, "json"), quiet: flagBool(c, "quiet")}
	o.format.Absolute, o.format.Verbose = true, flagBool(c, "verbose")
	cfg.Handler = o
	// What each kind of run shows: a single target every probe and
	// answer (hping3), a traceroute its hops, a scan or a flood only its
	// verdicts (nmap), unless -v. -q shows none in text; --json output is
	// whole, but never what was sent.
	var ev prober.EventMask
	switch {
	case flagBool(c, "verbose"):
		ev = prober.AllEvents
	case st.flood || (o.quiet && !o.json):
	case cfg.Traceroute:
		ev = 1 << prober.EventHop
	case st.single:
		ev = prober.AllEvents
	}
	if o.json {
		ev &^= 1<<prober.EventSent | 1<<prober.EventReset
	}
	if st.single && cfg.Count == 1 && !o.json && !flagBool(c, "verbose") {
		ev &^= 1 << prober.EventTimeout // said once, as the error
	}
	cfg.Events = ev
	var res *prober.Result
	if path := flagString(c, "pcap"); path != "" {
		pcap, err := pcapfile.Create(path)
		if err != nil {
			return exitFailure(err)
		}
		cfg.Pcap = pcap
		defer func() {
			pcap.Close()
			if res == nil || res.Stats.Packets == 0 {
				// A run that failed before its first probe leaves no
				// file behind.
				os.Remove(path)
			}
		}()
	}
	res, err = prober.Run(ctx, *cfg)
	var ce *prober.ConfigError
	switch {
	case errors.As(err, &ce):
		return usagef("%v", ce)
	case res == nil:
		return exitFailure(err)
	}
	if werr := printSendResult(o, st, res); werr != nil && err == nil {
		err = werr
	}
	if o.err != nil && err == nil {
		err = fmt.Errorf("writing output: %w", o.err)
	}
	if err != nil {
		return exitFailure(err)
	}
	if !res.AnyResponded() {
		return exitFailure(noAnswer(st, res))
	}
	return nil
}

// printSendResult ends a run's output: the verdicts (JSON objects, or a
// table for several targets), and the statistics.
func printSendResult(o *sendOutput, st sendSetup, res *prober.Result) error {
	if o.err != nil {
		return nil
	}
	var b []byte
	if o.json {
		b = make([]byte, 0, 128*len(res.Targets))
		for i := range res.Targets {
			b = append(res.Targets[i].AppendJSON(b), '\n')
		}
		if _, err := o.out.Write(b); err != nil {
			return err
		}
		return writeJSONLine(o.out, res.SummaryJSON())
	}
	switch {
	case st.cfg.Traceroute:
	case st.single && !st.flood:
		if st.cfg.Count != 1 {
			b = append(b, res.PingStats(res.Targets[0].Target.String())...)
		}
	default:
		b = prober.AppendTable(b, res.Targets, o.format.Verbose)
		b = append(b, res.Summary()...)
		b = append(b, '\n')
	}
	_, err := o.out.Write(b)
	return err
}

// noAnswer says that nothing answered, once.
func noAnswer(st sendSetup, res *prober.Result) error {
	wait := "its wait"
	if st.cfg.Wait > 0 {
		wait = st.cfg.Wait.String()
	}
	if st.single {
		t := res.Targets[0]
		if t.From.IsValid() {
			return fmt.Errorf("no reply from %s: %s from %s", t.Target, t.Reason, t.From)
		}
		if st.cfg.Traceroute {
			return fmt.Errorf("no reply from %s within %d hops", t.Target, len(res.Hops))
		}
		return fmt.Errorf("no reply from %s within %s (%d probes)", t.Target, wait, t.Probes)
	}
	return fmt.Errorf("no target answered (%d probes to %d targets)", res.Stats.Probes, len(res.Targets))
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

func envSet(name string) bool { return os.Getenv(name) != "" }
