package prober

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The text and JSON forms of a run's findings. They render; the caller
// writes them where it wants.

// PortJSON is a target's verdict as one JSON object:
// {"type":"port","addr":"10.0.2.20","port":80,"state":"open","reason":"syn-ack","rtt_us":81,...}.
type PortJSON struct {
	Type   string `json:"type"` // "port"
	Addr   string `json:"addr"`
	Port   uint16 `json:"port"`
	State  State  `json:"state"`
	Reason string `json:"reason"`
	// RTTus is the round-trip time of the answer that settled the state,
	// absent when nothing answered.
	RTTus *int64 `json:"rtt_us,omitempty"`
	// From is who sent the ICMP error of an icmp-* reason.
	From string `json:"from,omitempty"`
	// TTL is the TTL or hop limit the answer arrived with.
	TTL      uint8 `json:"ttl,omitempty"`
	Probes   int   `json:"probes"`
	Answered int   `json:"answered"`
}

// JSON returns t's JSON form.
func (t *TargetResult) JSON() PortJSON {
	j := PortJSON{Type: "port", Addr: t.Addr.String(), Port: t.Port, State: t.State, Reason: t.Reason,
		TTL: t.ReplyTTL, Probes: t.Probes, Answered: t.Answered}
	if t.Reason != ReasonNoResponse {
		us := t.RTT.Microseconds()
		j.RTTus = &us
	}
	if t.From.IsValid() {
		j.From = t.From.String()
	}
	return j
}

// AppendJSON appends t's JSON form (what encoding/json makes of JSON(),
// written directly: a scan prints one per port, 65,535 of them).
func (t *TargetResult) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"type":"port","addr":"`...)
	dst = t.Addr.AppendTo(dst)
	dst = append(dst, `","port":`...)
	dst = strconv.AppendUint(dst, uint64(t.Port), 10)
	dst = append(dst, `,"state":"`...)
	dst = append(dst, t.State...)
	dst = append(dst, `","reason":"`...)
	dst = append(dst, t.Reason...)
	dst = append(dst, '"')
	if t.Reason != ReasonNoResponse {
		dst = append(dst, `,"rtt_us":`...)
		dst = strconv.AppendInt(dst, t.RTT.Microseconds(), 10)
	}
	if t.From.IsValid() {
		dst = append(dst, `,"from":"`...)
		dst = t.From.AppendTo(dst)
		dst = append(dst, '"')
	}
	if t.ReplyTTL != 0 {
		dst = append(dst, `,"ttl":`...)
		dst = strconv.AppendUint(dst, uint64(t.ReplyTTL), 10)
	}
	dst = append(dst, `,"probes":`...)
	dst = strconv.AppendInt(dst, int64(t.Probes), 10)
	dst = append(dst, `,"answered":`...)
	dst = strconv.AppendInt(dst, int64(t.Answered), 10)
	return append(dst, '}')
}

// HopJSON is one traceroute hop: {"type":"hop","ttl":1,"addr":"10.0.2.1","rtt_us":52,"icmp":"ttl-exceeded"};
// the final hop carries the target's state and reason.
type HopJSON struct {
	Type   string `json:"type"` // "hop"
	TTL    uint8  `json:"ttl"`
	Addr   string `json:"addr,omitempty"`
	RTTus  *int64 `json:"rtt_us,omitempty"`
	ICMP   string `json:"icmp,omitempty"`
	Final  bool   `json:"final,omitempty"`
	State  State  `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// JSON returns h's JSON form.
func (h *Hop) JSON() HopJSON {
	j := HopJSON{Type: "hop", TTL: h.TTL, ICMP: h.ICMP, Final: h.Final, State: h.State, Reason: h.Reason}
	if h.Addr.IsValid() {
		j.Addr = h.Addr.String()
		us := h.RTT.Microseconds()
		j.RTTus = &us
	}
	return j
}

// AppendText appends h as a traceroute line: " 1  10.0.2.1  0.052 ms
// ttl-exceeded", " 4  *", or the last hop with the target's state.
func (h *Hop) AppendText(dst []byte) []byte {
	dst = fmt.Appendf(dst, "%2d  ", h.TTL)
	if !h.Addr.IsValid() {
		return append(dst, '*')
	}
	dst = fmt.Appendf(dst, "%s  %s", h.Addr, ms(h.RTT))
	switch {
	case h.Final:
		dst = fmt.Appendf(dst, "  %s (%s)", h.State, h.Reason)
	case h.ICMP != "":
		dst = append(dst, "  "+h.ICMP...)
	}
	return dst
}

// ms writes a duration in milliseconds with microseconds: "0.052 ms".
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64) + " ms"
}

// tableRowsShown is how many rows a table shows before it leaves out the
// most common state (as nmap's "Not shown: 65530 closed tcp ports").
const tableRowsShown = 25

// AppendTable appends the verdicts as a table, one target per line:
//
//	TARGET             STATE     REASON                         RTT
//	10.0.2.20:22       open      syn-ack                        0.081 ms
//	10.0.2.20:81       filtered  icmp-unreach-admin-prohibited  0.092 ms from 10.0.2.1
//
// With more than 25 targets and all false, the targets in the most common
// state are left out and counted in a line of their own.
func AppendTable(dst []byte, targets []TargetResult, all bool) []byte {
	hide := State("")
	if !all && len(targets) > tableRowsShown {
		counts := map[State]int{}
		for _, t := range targets {
			counts[t.State]++
		}
		best := 0
		for _, s := range []State{Closed, Filtered, OpenFiltered, Unfiltered, Open} {
			if counts[s] > best {
				hide, best = s, counts[s]
			}
		}
	}
	shown := make([]TargetResult, 0, min(len(targets), 1024))
	hiddenReasons := map[string]int{}
	for _, t := range targets {
		if t.State == hide {
			hiddenReasons[t.Reason]++
			continue
		}
		shown = append(shown, t)
	}
	wT, wS, wR := len("TARGET"), len("STATE"), len("REASON")
	for _, t := range shown {
		wT = max(wT, len(t.Target.String()))
		wS = max(wS, len(t.State))
		wR = max(wR, len(t.Reason))
	}
	if hide != "" {
		var parts []string
		for reason, n := range hiddenReasons {
			parts = append(parts, fmt.Sprintf("%d %s", n, reason))
		}
		slices.Sort(parts)
		dst = fmt.Appendf(dst, "Not shown: %d %s (%s)\n", len(targets)-len(shown), hide, strings.Join(parts, ", "))
	}
	if len(shown) == 0 {
		return dst
	}
	dst = fmt.Appendf(dst, "%-*s  %-*s  %-*s  RTT\n", wT, "TARGET", wS, "STATE", wR, "REASON")
	for _, t := range shown {
		rtt := "-"
		if t.Reason != ReasonNoResponse {
			rtt = ms(t.RTT)
		}
		dst = fmt.Appendf(dst, "%-*s  %-*s  %-*s  %s", wT, t.Target.String(), wS, t.State, wR, t.Reason, rtt)
		if t.From.IsValid() && t.From != t.Addr {
			dst = fmt.Appendf(dst, " from %s", t.From)
		}
		dst = append(dst, '\n')
	}
	return dst
}

// Summary is the run's figures in a line: "3 targets: 1 open, 1 closed,
// 1 filtered; 4 probes (1 retransmitted) in 1.204 s, 3 answered; 1 reset
// sent; 0 ring drops".
func (r *Result) Summary() string {
	var b strings.Builder
	counts := r.Counts()
	b.WriteString(plural(len(r.Targets), "target"))
	sep := ": "
	for _, s := range []State{Open, Closed, Filtered, Unfiltered, OpenFiltered} {
		if counts[s] > 0 {
			fmt.Fprintf(&b, "%s%d %s", sep, counts[s], s)
			sep = ", "
		}
	}
	st := &r.Stats
	fmt.Fprintf(&b, "; %s", plural(st.Probes, "probe"))
	if st.Retransmitted > 0 {
		fmt.Fprintf(&b, " (%d retransmitted)", st.Retransmitted)
	}
	fmt.Fprintf(&b, " in %.3f s", st.Elapsed.Seconds())
	if st.Elapsed > 0 && st.Probes > 1 {
		fmt.Fprintf(&b, " (%.0f/s)", float64(st.Probes)/st.Elapsed.Seconds())
	}
	fmt.Fprintf(&b, ", %d answered; %s sent; %s", st.Answered, plural(st.Resets, "reset"), plural(int(st.RingDrops), "ring drop"))
	if st.SendDrops > 0 {
		fmt.Fprintf(&b, "; %s the device dropped", plural(st.SendDrops, "packet"))
	}
	return b.String()
}

// SummaryJSON is the run's figures as one JSON object.
type SummaryJSON struct {
	Type          string  `json:"type"` // "summary"
	Sent          int     `json:"sent"`
	Received      int     `json:"received"`
	LossPct       float64 `json:"loss_pct"`
	MinUs         int64   `json:"rtt_min_us"`
	AvgUs         int64   `json:"rtt_avg_us"`
	MedianUs      int64   `json:"rtt_median_us"`
	MaxUs         int64   `json:"rtt_max_us"`
	WireTimed     int     `json:"rtt_wire_timed"`
	UserMinUs     int64   `json:"rtt_user_min_us"`
	UserMedianUs  int64   `json:"rtt_user_median_us"`
	Targets       int     `json:"targets"`
	Open          int     `json:"open"`
	Closed        int     `json:"closed"`
	Filtered      int     `json:"filtered"`
	Unfiltered    int     `json:"unfiltered,omitempty"`
	OpenFiltered  int     `json:"open_filtered,omitempty"`
	Retransmitted int     `json:"retransmitted"`
	Packets       int     `json:"packets"`
	Replies       int     `json:"replies"`
	ICMP          int     `json:"icmp_errors"`
	Late          int     `json:"late"`
	Resets        int     `json:"resets"`
	SendDrops     int     `json:"send_drops"`
	RingDrops     uint64  `json:"ring_drops"`
	ElapsedUs     int64   `json:"elapsed_us"`
	Rate          float64 `json:"rate"`
	Source        string  `json:"src,omitempty"`
	PortLow       uint16  `json:"sport_low,omitempty"`
	PortHigh      uint16  `json:"sport_high,omitempty"`
}

// SummaryJSON returns the run's figures. "sent" counts probes and
// "received" the probes answered, as ping does.
func (r *Result) SummaryJSON() SummaryJSON {
	st := &r.Stats
	c := r.Counts()
	j := SummaryJSON{Type: "summary", Sent: st.Probes, Received: st.Answered,
		MinUs: st.RTTMin.Microseconds(), AvgUs: st.RTTAvg.Microseconds(), MedianUs: st.RTTMedian.Microseconds(), MaxUs: st.RTTMax.Microseconds(), WireTimed: st.WireTimed,
		UserMinUs: st.RTTUserMin.Microseconds(), UserMedianUs: st.RTTUserMedian.Microseconds(),
		Targets: len(r.Targets), Open: c[Open], Closed: c[Closed], Filtered: c[Filtered], Unfiltered: c[Unfiltered], OpenFiltered: c[OpenFiltered],
		Retransmitted: st.Retransmitted, Packets: st.Packets, Replies: st.Replies, ICMP: st.ICMP, Late: st.Late, Resets: st.Resets,
		SendDrops: st.SendDrops, RingDrops: st.RingDrops, ElapsedUs: st.Elapsed.Microseconds(), PortLow: st.PortLow, PortHigh: st.PortHigh}
	if st.Probes > 0 {
		j.LossPct = 100 * float64(st.Probes-st.Answered) / float64(st.Probes)
	}
	if st.Elapsed > 0 {
		j.Rate = float64(st.Probes) / st.Elapsed.Seconds()
	}
	if st.Source.IsValid() {
		j.Source = st.Source.String()
	}
	return j
}

// PingStats is the end of a ping-like run, as ping prints it:
//
//	--- 10.0.2.20:80 tcpcraft send statistics ---
//	5 segments sent, 5 answered, 0.0% loss
//	rtt min/avg/median/max = 0.061/0.070/0.068/0.085 ms
func (r *Result) PingStats(target string) string {
	st := &r.Stats
	loss := 0.0
	if st.Probes > 0 {
		loss = 100 * float64(st.Probes-st.Answered) / float64(st.Probes)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s tcpcraft send statistics ---\n", target)
	fmt.Fprintf(&b, "%d segments sent, %d answered, %.1f%% loss\n", st.Probes, st.Answered, loss)
	if st.Answered > 0 && st.RTTMax > 0 {
		f := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		fmt.Fprintf(&b, "rtt min/avg/median/max = %.3f/%.3f/%.3f/%.3f ms\n", f(st.RTTMin), f(st.RTTAvg), f(st.RTTMedian), f(st.RTTMax))
	}
	return b.String()
}

// plural is "1 probe", "2 probes".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
