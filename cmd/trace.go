package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fault"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/pcapfile"
	"github.com/tcpcraft/tcpcraft/stack"
)

// traceLevel says how much the trace shows.
type traceLevel int

const (
	traceQuiet   traceLevel = iota // -q: nothing but errors
	traceNormal                    // every segment and state change
	traceVerbose                   // -v: also RTT samples, retransmissions, drops, acks
)

// tracer writes what a stack reports: text lines in tcpdump's style or JSON
// objects, one per line, and optionally every packet to a pcap file. It
// implements stack.Tracer.
type tracer struct {
	mu     sync.Mutex
	w      io.Writer
	level  traceLevel
	json   bool
	start  time.Time
	format craft.Formatter
	pcap   *pcapfile.Writer
	line   []byte
	// peerTag adds the peer's address to state lines (listen serves many).
	peerTag bool
	// ladder, when set (--ladder), draws segments and state changes as a
	// ladder diagram instead of lines (cmd/ladder.go).
	ladder *ladderTracer
	// tallies count, per connection, what fsm.Stats does not: when it
	// started and ended, and retransmissions by cause (cmd/stats.go).
	tallies map[connKey]*connTally
	// statsOut receives the --stats JSON of every finished connection.
	statsOut io.Writer
	// wireOut: --fault changes what goes on the wire after the stack
	// has reported a segment, so the pcap file takes our packets from
	// the fault link (wire) rather than from Segment.
	wireOut bool
	// lastCookie is when the last SYN cookie was sent (warn once per
	// flood).
	lastCookie time.Time
}

func newTracer(w io.Writer, level traceLevel, asJSON bool, pcap *pcapfile.Writer, start time.Time) *tracer {
	return &tracer{w: w, level: level, json: asJSON, pcap: pcap, start: start}
}

// segmentJSON is one traced segment in --json output.
type segmentJSON struct {
	Type  string  `json:"type"` // "segment"
	Dir   string  `json:"dir"`  // "in" or "out"
	Rel   float64 `json:"t"`    // seconds since the session started
	Error string  `json:"error,omitempty"`
	*craft.PacketJSON
}

// eventJSON is one traced fsm event in --json output.
type eventJSON struct {
	Type   string  `json:"type"` // "state", "error", "rtt", "retransmit", ...
	Rel    float64 `json:"t"`
	Local  string  `json:"local"`
	Remote string  `json:"remote"`
	From   string  `json:"from,omitempty"`
	To     string  `json:"to,omitempty"`
	Reason string  `json:"reason,omitempty"`
	Bytes  int     `json:"bytes,omitempty"`
	Seq    uint32  `json:"seq,omitempty"`
	RTTus  int64   `json:"rtt_us,omitempty"`
	Error  string  `json:"error,omitempty"`
}

func (t *tracer) Segment(dir stack.Direction, at time.Time, p *craft.Packet, raw []byte, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pcap != nil && raw != nil && (err == nil || p == nil) && !(dir == stack.Out && t.wireOut) {
		// Every packet of the session goes to the pcap, malformed ones
		// too: that is where a user looks at them.
		_ = t.pcap.WritePacket(at, raw)
	}
	t.tallySegment(dir, at, p)
	if t.ladder != nil {
		t.ladder.Segment(dir, at, p, raw, err)
		return
	}
	if t.level == traceQuiet && err == nil {
		return
	}
	rel := at.Sub(t.start).Seconds()
	if t.json {
		out := segmentJSON{Type: "segment", Dir: dir.String(), Rel: rel}
		if p != nil {
			pj := t.format.JSON(p)
			pj.Time = at.UTC().Format(time.RFC3339Nano)
			out.PacketJSON = &pj
		}
		if err != nil {
			out.Error = err.Error()
		}
		t.writeJSON(out)
		return
	}
	arrow := byte('<')
	if dir == stack.Out {
		arrow = '>'
	}
	t.line = append(appendRel(t.line[:0], rel), ' ', arrow, ' ')
	if p != nil {
		t.line = t.format.AppendText(t.line, p)
	}
	if err != nil {
		if p != nil {
			t.line = append(t.line, ' ')
		}
		t.line = fmt.Appendf(t.line, "[%v]", err)
	}
	t.line = append(t.line, '\n')
	_, _ = t.w.Write(t.line)
}

func (t *tracer) Event(at time.Time, local, remote netip.AddrPort, ev fsm.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tallyEvent(at, local, remote, ev)
	if ev.Kind == fsm.SYNCookie {
		// Said once per flood, whatever the level, as Linux logs
		// "Possible SYN flooding on port ... Sending cookies."
		if t.lastCookie.IsZero() || at.Sub(t.lastCookie) > time.Minute {
			t.noteLocked(fmt.Sprintf("possible SYN flood on %v: %s, sending SYN cookies", local, ev.Cause))
		}
		t.lastCookie = at
	}
	if t.ladder != nil {
		t.ladder.Event(at, local, remote, ev)
		return
	}
	// A SYN cookie is shown like a state change: it says the SYN queue
	// overflowed, which is what a user of a listener must know.
	show := ev.Kind == fsm.StateChange || ev.Kind == fsm.Error || ev.Kind == fsm.SYNCookie || ev.Kind == fsm.PathMTU
	if t.level == traceQuiet || (!show && t.level < traceVerbose) {
		return
	}
	if ev.Kind == fsm.DataReadable || ev.Kind == fsm.BytesAcked {
		if t.level < traceVerbose {
			return
		}
	}
	rel := at.Sub(t.start).Seconds()
	if t.json {
		out := eventJSON{Type: eventType(ev.Kind), Rel: rel, Local: local.String(), Remote: remote.String(), Reason: ev.Cause.String(), Bytes: ev.Bytes}
		if ev.Kind == fsm.StateChange {
			out.From, out.To = ev.From.String(), ev.To.String()
		}
		if ev.Kind == fsm.Retransmit {
			out.Seq = uint32(ev.Seq)
		}
		if ev.RTT > 0 {
			out.RTTus = ev.RTT.Microseconds()
		}
		if ev.Err != nil {
			out.Error = ev.Err.Error()
		}
		t.writeJSON(out)
		return
	}
	t.line = append(appendRel(t.line[:0], rel), "   "...)
	if t.peerTag {
		t.line = fmt.Appendf(t.line, "[%s] ", remote)
	}
	switch ev.Kind {
	case fsm.StateChange:
		t.line = fmt.Appendf(t.line, "state %s -> %s", ev.From, ev.To)
	case fsm.Error:
		t.line = fmt.Appendf(t.line, "error: %v", ev.Err)
	case fsm.RTTSample:
		t.line = fmt.Appendf(t.line, "rtt %v", ev.RTT)
	case fsm.Retransmit:
		t.line = fmt.Appendf(t.line, "retransmit %d bytes at seq %d", ev.Bytes, uint32(ev.Seq))
	case fsm.PathMTU:
		if ev.Cause == fsm.CausePacketTooBig {
			t.line = fmt.Appendf(t.line, "path MTU: send MSS now %d", ev.Bytes)
		} else {
			t.line = fmt.Appendf(t.line, "path MTU: ICMP error ignored")
		}
	default:
		t.line = fmt.Appendf(t.line, "%s", ev.Kind)
		if ev.Bytes != 0 {
			t.line = fmt.Appendf(t.line, " %d bytes", ev.Bytes)
		}
	}
	if ev.Cause != fsm.CauseNone {
		t.line = fmt.Appendf(t.line, " (%s)", ev.Cause)
	}
	t.line = append(t.line, '\n')
	_, _ = t.w.Write(t.line)
}

// note writes a free-form line (session set-up, summaries) unless quiet.
func (t *tracer) note(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.level == traceQuiet {
		return
	}
	t.noteLocked(fmt.Sprintf(format, args...))
}

// warn is note for what a quiet run must show too, as an error would be
// (a SYN flood met with cookies: Linux, too, logs it whatever else it
// shows).
func (t *tracer) warn(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.noteLocked(fmt.Sprintf(format, args...))
}

func (t *tracer) noteLocked(msg string) {
	if t.ladder != nil {
		t.ladder.Print("tcpcraft: " + msg + "\n") // after the rows held back
		return
	}
	if t.json {
		t.writeJSON(struct {
			Type string `json:"type"`
			Msg  string `json:"msg"`
		}{"note", msg})
		t.flushLocked()
		return
	}
	fmt.Fprintf(t.w, "tcpcraft: %s\n", msg)
	t.flushLocked()
}

// flushLocked writes out what the trace's buffer holds: notes are rare
// and read as they come (a listener says it is listening, or why it
// refused a connection), so they do not wait for the buffer's timer.
func (t *tracer) flushLocked() {
	if f, ok := t.w.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// faultJSON is one fault's action in --json output.
type faultJSON struct {
	Type   string  `json:"type"` // "fault"
	Rel    float64 `json:"t"`
	Local  string  `json:"local"`
	Remote string  `json:"remote"`
	Fault  string  `json:"fault"`
	What   string  `json:"what"`
}

// faultNote shows what a --fault did (fault.LinkConfig.Note). A quiet run
// shows nothing.
func (t *tracer) faultNote(at time.Time, n fault.Note) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.level == traceQuiet {
		return
	}
	rel := at.Sub(t.start).Seconds()
	if t.json {
		t.writeJSON(faultJSON{Type: "fault", Rel: rel, Local: n.Tuple.Src.String(), Remote: n.Tuple.Dst.String(), Fault: n.Fault, What: n.What})
		t.flushLocked()
		return
	}
	line := fmt.Sprintf("%9.6f ! ", rel)
	if t.peerTag {
		line += fmt.Sprintf("[%s] ", n.Tuple.Dst)
	}
	line += fmt.Sprintf("fault %s: %s\n", n.Fault, n.What)
	if t.ladder != nil {
		t.ladder.Print(line)
		return
	}
	_, _ = io.WriteString(t.w, line)
	t.flushLocked()
}

// wire records a packet the fault link put on the wire, or one that
// arrived and a fault kept from the stack (fault.LinkConfig.Wire).
func (t *tracer) wire(out bool, at time.Time, pkt []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pcap != nil {
		_ = t.pcap.WritePacket(at, pkt)
	}
}

func (t *tracer) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	b = append(b, '\n')
	_, _ = t.w.Write(b)
}

// appendRel appends seconds as fmt's %9.6f does, without its allocations
// (a segment line's cost, BenchmarkTraceLine).
func appendRel(dst []byte, sec float64) []byte {
	start := len(dst)
	dst = strconv.AppendFloat(dst, sec, 'f', 6, 64)
	if pad := 9 - (len(dst) - start); pad > 0 {
		dst = append(dst, "         "[:pad]...)
		copy(dst[start+pad:], dst[start:len(dst)-pad])
		copy(dst[start:start+pad], "         ")
	}
	return dst
}

func eventType(k fsm.EventKind) string {
	switch k {
	case fsm.StateChange:
		return "state"
	case fsm.Error:
		return "error"
	case fsm.RTTSample:
		return "rtt"
	case fsm.Retransmit:
		return "retransmit"
	}
	return k.String()
}
