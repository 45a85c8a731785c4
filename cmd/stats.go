package cmd

// The account of a finished connection: the summary block connect and
// listen print at the end, and the --stats JSON object.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/stack"
)

// connKey names a connection by its local and remote ends.
type connKey struct{ local, remote netip.AddrPort }

// connTally is when the tracer saw a connection first and last: the span
// its account reports (the counters are fsm.Stats).
type connTally struct {
	first, last time.Time
}

// tallySegment notes a traced segment's time for its connection. Called
// with t.mu held.
func (t *tracer) tallySegment(dir stack.Direction, at time.Time, p *craft.Packet) {
	if p == nil || !t.accounting() {
		return
	}
	src := netip.AddrPortFrom(p.Src(), p.TCP.SrcPort)
	dst := netip.AddrPortFrom(p.Dst(), p.TCP.DstPort)
	k := connKey{src, dst}
	if dir == stack.In {
		k = connKey{dst, src}
	}
	if tl := t.tallyFor(k, at); tl != nil {
		tl.last = at
	}
}

// accounting reports whether anything will read the tallies: the summary
// of a trace, or --stats. A quiet run without --stats (the fast path of
// listen -q -k) keeps none. Called with t.mu held.
func (t *tracer) accounting() bool { return t.level != traceQuiet || t.statsOut != nil }

// tallyFor returns the tally of connection k, starting one at time at if
// there is none yet (nil past a bound: a flood of strays is accounted only
// for its first connections). Called with t.mu held.
func (t *tracer) tallyFor(k connKey, at time.Time) *connTally {
	if t.tallies == nil {
		t.tallies = make(map[connKey]*connTally)
	}
	tl := t.tallies[k]
	if tl == nil {
		if len(t.tallies) > 4096 {
			return nil
		}
		tl = &connTally{first: at, last: at}
		t.tallies[k] = tl
	}
	return tl
}

// tallyEvent extends the connection's span: a quiet run whose segments go
// out coalesced by offload traces no good segment
// (stack.Config.SegmentErrorsOnly), and its
// events (state changes, bytes acknowledged or received) mark the same
// moments. The end of TIME-WAIT is a timer, not activity. Called with t.mu
// held.
func (t *tracer) tallyEvent(at time.Time, local, remote netip.AddrPort, ev fsm.Event) {
	if !t.accounting() {
		return
	}
	tl := t.tallyFor(connKey{local, remote}, at)
	if tl == nil {
		return
	}
	if !(ev.Kind == fsm.StateChange && ev.From == fsm.TimeWait) && at.After(tl.last) {
		tl.last = at
	}
}

// attach sets the ladder (--ladder) and the --stats destination of a
// session's tracer; either may be nil.
func (t *tracer) attach(l *ladderTracer, statsOut io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l != nil {
		l.start = t.start
		l.label.Absolute = t.format.Absolute
		t.ladder = l
	}
	t.statsOut = statsOut
}

// statsJSON is the --stats object (and, with --json, the "stats" line of the
// trace) of one connection. Times are in milliseconds, rates in bits per
// second.
type statsJSON struct {
	Type      string  `json:"type"` // "stats"
	Local     string  `json:"local"`
	Remote    string  `json:"remote"`
	State     string  `json:"state"`
	Error     string  `json:"error,omitempty"`
	DurationS float64 `json:"duration_s"`
	Sent      struct {
		// Bytes the peer acknowledged; BytesOnWire counts retransmitted
		// payload again.
		Bytes       uint64 `json:"bytes"`
		BytesOnWire uint64 `json:"bytes_on_wire"`
		Segments    uint64 `json:"segments"`
	} `json:"sent"`
	Received struct {
		Bytes    uint64 `json:"bytes"`
		Segments uint64 `json:"segments"`
	} `json:"received"`
	Retransmits struct {
		Segments uint64 `json:"segments"`
		Bytes    uint64 `json:"bytes"`
		// Fast + Timeout = Segments: found lost by the ACKs, or sent
		// after a timeout (fsm.Stats). Probes are zero-window probes,
		// which are not among them.
		Fast    uint64 `json:"fast"`
		Timeout uint64 `json:"timeout"`
		Probes  uint64 `json:"probes"`
		// RTOExpiries counts retransmission timer expiries (one may
		// resend many segments, go-back-N).
		RTOExpiries uint64 `json:"rto_expiries"`
	} `json:"retransmits"`
	DupACKs uint64 `json:"dup_acks"`
	RTT     *struct {
		Samples int     `json:"samples"`
		MinMS   float64 `json:"min_ms"`
		AvgMS   float64 `json:"avg_ms"`
		MaxMS   float64 `json:"max_ms"`
	} `json:"rtt,omitempty"`
	SRTTMS     float64 `json:"srtt_ms"`
	RTTVarMS   float64 `json:"rttvar_ms"`
	RTOMS      float64 `json:"rto_ms"`
	Cwnd       uint32  `json:"cwnd"`
	Ssthresh   uint32  `json:"ssthresh"`
	MSS        int     `json:"mss"`
	PeerWindow uint32  `json:"peer_window"`
	Goodput    struct {
		Sent     float64 `json:"sent_bps"`
		Received float64 `json:"received_bps"`
	} `json:"goodput"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// connSnapshot is what the account needs of a stack.Conn.
type connSnapshot struct {
	local, remote netip.AddrPort
	stats         fsm.Stats
	state         fsm.State
	err           error
}

// snapshot reads conn. It takes the stack's lock, so it must be called
// without t.mu held: the stack calls the tracer with its lock held, and
// the other order would deadlock.
func snapshot(conn *stack.Conn) connSnapshot {
	return connSnapshot{conn.LocalAddr(), conn.RemoteAddr(), conn.Stats(), conn.State(), conn.Err()}
}

// sessionStats gathers the account of a connection. Called with t.mu held.
func (t *tracer) sessionStats(cs connSnapshot) statsJSON {
	st := cs.stats
	var s statsJSON
	s.Type = "stats"
	s.Local, s.Remote = cs.local.String(), cs.remote.String()
	s.State = cs.state.String()
	if cs.err != nil {
		s.Error = cs.err.Error()
	}
	var tl connTally
	if p := t.tallies[connKey{cs.local, cs.remote}]; p != nil {
		tl = *p
	}
	dur := tl.last.Sub(tl.first)
	s.DurationS = dur.Seconds()
	s.Sent.Bytes, s.Sent.BytesOnWire, s.Sent.Segments = st.BytesAcked, st.BytesSent, st.SegsSent
	s.Received.Bytes, s.Received.Segments = st.BytesReceived, st.SegsReceived
	s.Retransmits.Segments, s.Retransmits.Bytes = st.Retransmits, st.BytesRetransmitted
	s.Retransmits.Fast, s.Retransmits.Timeout, s.Retransmits.Probes = st.RecoveryRetransmits, st.TimeoutRetransmits, st.WindowProbes
	s.Retransmits.RTOExpiries = st.Timeouts
	s.DupACKs = st.DupACKs
	if st.RTTSamples > 0 {
		s.RTT = &struct {
			Samples int     `json:"samples"`
			MinMS   float64 `json:"min_ms"`
			AvgMS   float64 `json:"avg_ms"`
			MaxMS   float64 `json:"max_ms"`
		}{st.RTTSamples, ms(st.RTTMin), ms(st.RTTAvg), ms(st.RTTMax)}
	}
	s.SRTTMS, s.RTTVarMS, s.RTOMS = ms(st.SRTT), ms(st.RTTVAR), ms(st.RTO)
	s.Cwnd, s.Ssthresh, s.MSS, s.PeerWindow = st.Cwnd, st.Ssthresh, st.SndMSS, st.SndWnd
	if dur > 0 {
		s.Goodput.Sent = float64(st.BytesAcked) * 8 / dur.Seconds()
		s.Goodput.Received = float64(st.BytesReceived) * 8 / dur.Seconds()
	}
	return s
}

// summary reports a finished connection: a short block of text on the
// trace (a "stats" object with --json), and the --stats object.
func (t *tracer) summary(conn *stack.Conn) {
	t.mu.Lock()
	quiet := !t.accounting()
	t.mu.Unlock()
	if quiet {
		return // nothing to show, and no tally was kept
	}
	cs := snapshot(conn) // before t.mu: see snapshot
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessionStats(cs)
	if t.statsOut != nil {
		_ = json.NewEncoder(t.statsOut).Encode(s)
	}
	delete(t.tallies, connKey{cs.local, cs.remote})
	if t.level == traceQuiet {
		return
	}
	lines := summaryLines(s)
	if t.json {
		t.writeJSON(s)
		// The one-line account as a note too, as before the stats
		// object existed (readers of the trace look for it).
		msg := strings.TrimSpace(lines[1])
		if t.peerTag {
			msg = "[" + s.Remote + "] " + msg
		}
		t.writeJSON(struct {
			Type string `json:"type"`
			Msg  string `json:"msg"`
		}{"note", msg})
		return
	}
	var b strings.Builder
	for _, line := range lines {
		fmt.Fprintf(&b, "tcpcraft: %s\n", line)
	}
	if t.ladder != nil {
		t.ladder.Print(b.String()) // after the rows held back
		return
	}
	_, _ = io.WriteString(t.w, b.String())
}

// summaryLines is the text account: a heading and up to five indented
// lines. The second line keeps the wording of tcpcraft's earlier one-line
// summary, which scripts (and tests) read.
func summaryLines(s statsJSON) []string {
	head := fmt.Sprintf("%s > %s: %s after %s", s.Local, s.Remote, s.State, fmtSeconds(s.DurationS))
	if s.Error != "" {
		head += " (" + s.Error + ")"
	}
	lines := []string{head,
		fmt.Sprintf("  sent %d bytes in %d segments (%d retransmitted, %d timeouts), received %d bytes in %d segments",
			s.Sent.Bytes, s.Sent.Segments, s.Retransmits.Segments, s.Retransmits.RTOExpiries, s.Received.Bytes, s.Received.Segments),
	}
	if s.Retransmits.Segments > 0 || s.DupACKs > 0 {
		l := fmt.Sprintf("  retransmissions: %d bytes; %d fast, %d after a timeout", s.Retransmits.Bytes, s.Retransmits.Fast, s.Retransmits.Timeout)
		if s.Retransmits.Probes > 0 {
			l += fmt.Sprintf(", %d window probes", s.Retransmits.Probes)
		}
		lines = append(lines, l+fmt.Sprintf("; %d duplicate ACKs received", s.DupACKs))
	}
	if s.RTT != nil {
		lines = append(lines, fmt.Sprintf("  rtt min/avg/max %.3f/%.3f/%.3f ms (%d samples); srtt %.3f ms, rttvar %.3f ms, rto %.0f ms",
			s.RTT.MinMS, s.RTT.AvgMS, s.RTT.MaxMS, s.RTT.Samples, s.SRTTMS, s.RTTVarMS, s.RTOMS))
	}
	ssthresh := fmt.Sprint(s.Ssthresh)
	if s.Ssthresh >= 1<<30 {
		ssthresh = "unset" // still the initial "arbitrarily high" value (RFC 5681 §3.1)
	}
	lines = append(lines, fmt.Sprintf("  cwnd %d bytes, ssthresh %s, mss %d, peer window %d bytes", s.Cwnd, ssthresh, s.MSS, s.PeerWindow))
	if s.DurationS > 0 {
		lines = append(lines, fmt.Sprintf("  goodput %s sent, %s received", fmtRate(s.Goodput.Sent), fmtRate(s.Goodput.Received)))
	}
	return lines
}

func fmtSeconds(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.3f ms", v*1000)
	}
	return fmt.Sprintf("%.3f s", v)
}

// fmtRate writes bits per second with a decimal prefix.
func fmtRate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.2f Mbit/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.2f kbit/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", bps)
}

// statsFlag is --stats, shared by connect and listen.
func statsFlag() cli.Flag {
	return &cli.StringFlag{Name: "stats", Usage: "write each finished connection's statistics as one JSON object per line to `FILE` (\"-\": standard error)"}
}

// openStats opens the --stats destination: nil when not asked for. The
// returned close function is never nil.
// statsPath is --stats's file, "" for none or standard error.
func statsPath(c *cli.Command) string {
	if p := flagString(c, "stats"); p != "-" {
		return p
	}
	return ""
}

func openStats(c *cli.Command) (io.Writer, func() error, error) {
	path := flagString(c, "stats")
	switch path {
	case "":
		return nil, func() error { return nil }, nil
	case "-":
		return stderr(c), func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, exitFailure(fmt.Errorf("--stats: %w", err))
	}
	return f, f.Close, nil
}
