package fsm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// A Listener is the LISTEN state of one port (RFC 9293 §3.10.7.2) for the
// segments that reach it from peers no connection knows: it judges each
// one, and for an acceptable SYN that the queue has room for it opens a
// connection (a Conn in SYN-RECEIVED, its SYN-ACK queued). It keeps nothing
// per peer, so a driver holds one per listening port and feeds it every
// segment to the port for which it has no Conn; segments of a 4-tuple it
// has a Conn for go to that Conn, segments to a port nobody listens on get
// ResetFor's answer. Like a Conn it is not safe for concurrent use.
//
// Where RFC 9293 and Linux differ, the Listener does what Linux does
// (tcp_v4_rcv and tcp_rcv_state_process, LISTEN), so that tcpcraft looks
// like a kernel listener to a peer or a scanner:
//
//   - a SYN that also carries FIN is dropped: RFC 9293 §3.10.7.2 would
//     open a connection and process the FIN once established, Linux
//     treats SYN+FIN as a scanner's probe;
//   - a segment with an ACK is answered <SEQ=SEG.ACK><CTL=RST> (both),
//     and one with RST, or with neither SYN nor ACK (FIN, NULL, Xmas, ...),
//     is dropped without an answer (both: RFC 9293 §3.10.7.2 first and
//     fourth), so that a FIN, NULL or Xmas scan finds the port
//     "open|filtered", as it does a kernel's;
//   - the third check of §3.10.7.2, the security/compartment of the
//     segment (the IP security option, RFC 1108), is skipped: tcpcraft,
//     like Linux, keeps no security or compartment for a connection.
//
// Whether a SYN is taken is one decision (admit), made as Linux makes it
// (tcp_conn_request) from two queues the driver counts: the SYN queue
// (half-open connections) and the accept queue (established ones not yet
// accepted), each bounded by the backlog. When the SYN queue is full the
// Listener answers with a SYN cookie (cookie.go, RFC 4987 §3.6) instead
// of dropping the SYN, unless ListenConfig.SYNCookies says never; and it
// takes an ACK from a 4-tuple without a Conn that carries a good cookie as
// the end of a handshake, opening an established Conn then. A half-open
// connection it opens holds no data (data on a SYN is not taken) and no
// buffer (buffers grow with data), so the SYN queue bounds the memory a
// flood of SYNs can take: under 4 KiB per slot (TestHalfOpenMemoryBounded).
type Listener struct {
	cfg     Config
	full    Config // cfg with its defaults filled in (IPv4)
	mss6    uint16 // the MSS of a connection over IPv6 (full.MSS: IPv4)
	backlog int
	cookies SYNCookies
	jar     *cookieJar
	stats   ListenStats
	opts    [8]craft.Option // a cookie SYN-ACK's options, lent until the next Input
}

// ListenConfig sets up a Listener.
type ListenConfig struct {
	// Backlog bounds the SYN queue and, apart, the accept queue, as
	// listen(2)'s backlog does in Linux. It must be positive.
	Backlog int
	// SYNCookies says when a SYN is answered with a SYN cookie; the
	// zero value is SYNCookiesAuto, as Linux by default.
	SYNCookies SYNCookies
}

// ListenStats are a Listener's counters (Linux's counterparts in nstat
// are named after each).
type ListenStats struct {
	// SYNs counts SYNs judged (acceptable ones).
	SYNs uint64
	// CookiesSent counts SYNs answered with a SYN cookie
	// (TcpExtSyncookiesSent), CookiesRecv ACKs whose cookie checked out
	// (TcpExtSyncookiesRecv), CookiesFailed ACKs checked for a cookie
	// that did not (TcpExtSyncookiesFailed).
	CookiesSent, CookiesRecv, CookiesFailed uint64
	// QueueDrops counts SYNs and cookie ACKs dropped because a queue was
	// full (TcpExtListenDrops).
	QueueDrops uint64
}

// NewListener validates cfg, the template of every connection the Listener
// opens (cfg.LocalPort is the listening port; RemotePort is set from each
// SYN), and lc, and returns a Listener. Its SYN cookie secret is drawn
// from cfg.Rand (crypto/rand when nil).
func NewListener(cfg Config, lc ListenConfig) (*Listener, error) {
	if lc.Backlog <= 0 {
		return nil, fmt.Errorf("fsm: listener: backlog %d must be positive", lc.Backlog)
	}
	if lc.SYNCookies > SYNCookiesAlways {
		return nil, fmt.Errorf("fsm: listener: %v", lc.SYNCookies)
	}
	if cfg.LocalPort == 0 {
		return nil, errors.New("fsm: listener: local port must not be 0")
	}
	check := cfg
	check.RemotePort = 1 // set per SYN
	check.IPv6 = false   // set per SYN; full keeps both MSS values
	full, err := check.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("fsm: listener: %w", err)
	}
	l := &Listener{cfg: cfg, full: full, mss6: full.MSS6, backlog: lc.Backlog, cookies: lc.SYNCookies}
	if l.cookies != SYNCookiesNever {
		src := cfg.Rand
		if src == nil {
			src = rand.Reader
		}
		if l.jar, err = newCookieJar(src); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Stats returns the Listener's counters.
func (l *Listener) Stats() ListenStats { return l.stats }

// Port returns the listening port.
func (l *Listener) Port() uint16 { return l.cfg.LocalPort }

// ListenVerdict says what the driver does with a segment a Listener judged.
type ListenVerdict uint8

const (
	// ListenDrop: discard the segment; nothing goes back.
	ListenDrop ListenVerdict = iota
	// ListenReply: send ListenResult.Reply (ports set): an RST, or a
	// SYN-ACK carrying a SYN cookie (ListenResult.Cookie).
	ListenReply
	// ListenOpen: ListenResult.Conn is a new connection for the
	// segment's 4-tuple, which has taken the segment: drive it from
	// now on (its SYN-ACK, or for a cookie its answer to the ACK, and
	// its events wait in it).
	ListenOpen
)

// String names the verdict.
func (v ListenVerdict) String() string {
	switch v {
	case ListenDrop:
		return "drop"
	case ListenReply:
		return "reply"
	case ListenOpen:
		return "open"
	}
	return "ListenVerdict(" + itoa(int(v)) + ")"
}

// ListenResult is a Listener's judgement of one segment.
type ListenResult struct {
	Verdict ListenVerdict
	// Cause says why: what was wrong with a segment dropped or answered
	// with an RST; which queue was full, or CauseSYNCookiesAlways, for a
	// SYN answered with a cookie; CauseRcvdSYN for a connection opened
	// by a SYN, CauseSYNCookie for one opened by a cookie's ACK.
	Cause Cause
	// Reply is the segment to send (ListenReply). A cookie SYN-ACK's
	// options are lent by the Listener until its next Input.
	Reply craft.TCP
	// Cookie: Reply is a SYN-ACK whose ISS is a SYN cookie; nothing was
	// kept.
	Cookie bool
	Conn   *Conn // ListenOpen
}

// Event is the event a driver reports for a segment the Listener dropped
// or answered (one no Conn saw): SYNCookie for a SYN answered with a
// cookie, else SegmentDropped. ok is false for ListenOpen, whose Conn
// reports its own.
func (r ListenResult) Event() (ev Event, ok bool) {
	switch {
	case r.Verdict == ListenOpen:
		return Event{}, false
	case r.Cookie:
		return Event{Kind: SYNCookie, Cause: r.Cause}, true
	}
	return Event{Kind: SegmentDropped, Cause: r.Cause}, true
}

// ListenQueue is what the driver holds for a Listener: connections
// half-open (SYN-RECEIVED, the SYN queue) and established ones not yet
// accepted (the accept queue).
type ListenQueue struct {
	HalfOpen, Accept int
}

// Input judges seg, which arrived at now at the listening port from src
// to dst (one of our addresses), a 4-tuple the driver has no connection
// for. q is what the driver holds for this Listener. seg is only read. The
// error reports a connection that could not be made (the random source
// failed); the segment is then dropped.
func (l *Listener) Input(seg *craft.TCP, src, dst netip.Addr, q ListenQueue, now time.Time) (ListenResult, error) {
	if seg.DstPort != l.cfg.LocalPort {
		return ListenResult{Verdict: ListenDrop, Cause: CausePortMismatch}, nil
	}
	if l.jar != nil {
		l.jar.start(now)
	}
	t := cookieTuple{src: src, dst: dst, srcPort: seg.SrcPort, dstPort: seg.DstPort}
	v, cause := judgeListen(seg)
	switch v {
	case ListenReply:
		if l.checksCookies(now) && seg.Flags&craft.FlagSYN == 0 {
			// An ACK from a 4-tuple without a Conn: the end of a
			// handshake we answered with a cookie? (Linux's
			// cookie_v4_check, before the LISTEN rules.)
			if res, ok, err := l.openFromCookie(seg, t, q, now); ok || err != nil {
				return res, err
			}
			cause = CauseBadSYNCookie
		}
		rst, _ := ResetFor(seg) // no RST reaches here: judgeListen drops them
		return ListenResult{Verdict: ListenReply, Cause: cause, Reply: rst}, nil
	case ListenOpen:
		l.stats.SYNs++
		switch a, why := l.admit(q); a {
		case admitDrop:
			l.stats.QueueDrops++
			return ListenResult{Verdict: ListenDrop, Cause: why}, nil
		case admitCookie:
			return l.cookieReply(seg, t, why, now), nil
		}
		cfg := l.cfg
		cfg.RemotePort = seg.SrcPort
		cfg.IPv6 = src.Is6()
		c, err := NewConn(cfg)
		if err != nil {
			return ListenResult{Verdict: ListenDrop, Cause: cause}, err
		}
		_ = c.Listen() // a new Conn is CLOSED: it cannot fail
		c.Input(seg, now)
		return ListenResult{Verdict: ListenOpen, Cause: cause, Conn: c}, nil
	}
	return ListenResult{Verdict: ListenDrop, Cause: cause}, nil
}

// admission is admit's decision.
type admission uint8

const (
	admitQueue  admission = iota // open a half-open Conn
	admitCookie                  // answer with a SYN cookie, keep nothing
	admitDrop                    // drop the SYN unanswered
)

// admit decides what a SYN gets, as Linux's tcp_conn_request does: a SYN
// cookie always (SYNCookiesAlways) or when the SYN queue is full
// (SYNCookiesAuto; SYNCookiesNever drops it instead); but nothing while the
// accept queue is full, since the connection could not be handed over
// (net.ipv4.tcp_abort_on_overflow = 0: the client sends its SYN again
// after its RTO). why is the cause of a cookie or a drop.
func (l *Listener) admit(q ListenQueue) (a admission, why Cause) {
	if q.Accept >= l.backlog {
		return admitDrop, CauseListenQueueFull
	}
	switch {
	case l.cookies == SYNCookiesAlways:
		return admitCookie, CauseSYNCookiesAlways
	case q.HalfOpen < l.backlog:
		return admitQueue, CauseNone
	case l.cookies == SYNCookiesAuto:
		return admitCookie, CauseSYNQueueFull
	}
	return admitDrop, CauseSYNQueueFull
}

// checksCookies reports whether an ACK to the port may carry a cookie:
// always when every SYN gets one, else only while cookies are in use
// (cookieJar.recent).
func (l *Listener) checksCookies(now time.Time) bool {
	switch l.cookies {
	case SYNCookiesAlways:
		return true
	case SYNCookiesAuto:
		return l.jar.recent(now)
	}
	return false
}

// synAckWindow is the window of our SYN-ACK (RFC 7323 §2.2: never scaled):
// the receive buffer, less the unit held back at our shift (freeSpace).
func synAckWindow(cfg *Config, shift int) uint16 {
	w := cfg.RecvBufferSize - (1<<shift - 1)
	return uint16(max(0, min(w, 0xffff)))
}

// cookieReply answers the SYN seg of t with a SYN-ACK whose ISS is a
// cookie, with the options a Conn would have answered (synOptions).
func (l *Listener) cookieReply(seg *craft.TCP, t cookieTuple, why Cause, now time.Time) ListenResult {
	cfg := &l.full
	var (
		peerMSS uint16
		o       = cookieOpts{wscale: -1}
		ts      craft.Option
		hasTS   bool
	)
	for i := range seg.Options {
		switch opt := &seg.Options[i]; opt.Kind {
		case craft.OptMSS:
			peerMSS = opt.MSS
		case craft.OptWindowScale:
			o.wscale = int(opt.Shift)
		case craft.OptSACKPermitted:
			o.sack = true
		case craft.OptTimestamps:
			ts, hasTS = *opt, true
		}
	}
	// What we agree to: the peer's offer where ours matches (RFC 7323
	// §2.2, §3.2; RFC 2018 §2). Without timestamps there is nowhere to
	// keep window scale and SACK: neither is offered (Linux does the
	// same).
	hasTS = hasTS && cfg.Timestamps
	o.sack = o.sack && cfg.SACK && hasTS
	if cfg.WindowScale < 0 || !hasTS {
		o.wscale = -1
	}
	table := cookieMSSTable(t)
	idx := cookieMSSIndex(table, peerMSS) // no MSS option: 0, the family's default
	ourMSS := cfg.MSS
	if t.src.Is6() {
		ourMSS = l.mss6
	}
	iss := l.jar.make(t, seg.Seq, idx, now)
	l.stats.CookiesSent++
	shift := -1
	if o.wscale >= 0 {
		shift = cfg.WindowScale
	}
	var tsval uint32
	if hasTS {
		tsval = cookieTS(l.jar.clock(t, now), o)
	}
	opts := appendSYNOptions(l.opts[:0], ourMSS, o.sack, hasTS, tsval, ts.TSVal, shift)
	reply := craft.TCP{
		SrcPort: seg.DstPort, DstPort: seg.SrcPort,
		Seq: iss, Ack: seg.Seq.Add(1),
		Flags:   craft.FlagSYN | craft.FlagACK,
		Window:  synAckWindow(cfg, max(shift, 0)),
		Options: opts,
	}
	return ListenResult{Verdict: ListenReply, Cause: why, Reply: reply, Cookie: true}
}

// openFromCookie checks the ACK seg of t for a cookie (SEG.ACK-1 is our
// ISS, SEG.SEQ-1 the peer's ISN). ok is false when it carries none: the
// caller answers it as LISTEN does. With one, it opens the connection the
// SYN would have opened, from what the cookie and the echoed timestamp
// say, and lets it take the ACK: it comes out ESTABLISHED.
func (l *Listener) openFromCookie(seg *craft.TCP, t cookieTuple, q ListenQueue, now time.Time) (res ListenResult, ok bool, err error) {
	iss, peerISN := seg.Ack.Sub(1), seg.Seq.Sub(1)
	idx, cerr := l.jar.check(t, iss, peerISN, now)
	ts, hasTS := findTimestamps(seg)
	var o cookieOpts
	if hasTS {
		o = cookieOptsOf(ts.TSEcr)
	}
	// The options the cookie names must be ones we offer: a timestamp
	// where we send none, or a flag we never set, is forged (Linux's
	// cookie_timestamp_decode refuses them too).
	if cerr == nil && hasTS && (!l.cfg.Timestamps || o.sack && !l.cfg.SACK || o.wscale >= 0 && l.cfg.WindowScale < 0 || o.ecn) {
		cerr = errCookieData
	}
	if cerr != nil {
		l.stats.CookiesFailed++
		return ListenResult{}, false, nil
	}
	if q.Accept >= l.backlog {
		// Linux's tcp_check_req with a full accept queue: drop the ACK;
		// the peer sends it again (with data, or after its RTO).
		l.stats.QueueDrops++
		return ListenResult{Verdict: ListenDrop, Cause: CauseListenQueueFull}, true, nil
	}
	l.stats.CookiesRecv++
	cfg := l.cfg
	cfg.RemotePort = seg.SrcPort
	cfg.IPv6 = t.src.Is6()
	cfg.ISS, cfg.FixedISS = iss, true
	if hasTS {
		// The timestamp clock the cookie's SYN-ACK read goes on.
		cfg.TSOffset, cfg.FixedTSOffset = l.jar.clock(t, now), true
	}
	c, err := NewConn(cfg)
	if err != nil {
		return ListenResult{Verdict: ListenDrop, Cause: CauseSYNCookie}, true, err
	}
	_ = c.Listen()
	// The SYN as the cookie remembers it: its ISN, the MSS of the
	// table, and the options of the timestamp.
	syn := craft.TCP{SrcPort: seg.SrcPort, DstPort: seg.DstPort, Seq: peerISN, Flags: craft.FlagSYN, Window: seg.Window}
	var opts [6]craft.Option
	syn.Options = append(opts[:0], craft.Option{Kind: craft.OptMSS, MSS: cookieMSSTable(t)[idx]})
	if hasTS {
		if o.wscale >= 0 {
			syn.Options = append(syn.Options, craft.Option{Kind: craft.OptWindowScale, Shift: uint8(o.wscale)})
		}
		if o.sack {
			syn.Options = append(syn.Options, craft.Option{Kind: craft.OptSACKPermitted})
		}
		syn.Options = append(syn.Options, craft.Option{Kind: craft.OptTimestamps, TSVal: ts.TSVal})
	}
	c.Input(&syn, now)
	// Its SYN-ACK went out already, as the cookie: drop the copy. No
	// RTT sample from it (Karn, RFC 6298 §3: when it left is not
	// known, as Linux takes none for a cookie).
	c.AppendOutput(nil)
	c.rtt.timing = false
	for i := range c.events {
		if ev := &c.events[i]; ev.Kind == StateChange && ev.To == SynReceived {
			ev.Cause = CauseSYNCookie
		}
	}
	c.Input(seg, now)
	return ListenResult{Verdict: ListenOpen, Cause: CauseSYNCookie, Conn: c}, true, nil
}

// judgeListen is the LISTEN state's rule for one segment (RFC 9293
// §3.10.7.2, with Linux's departures listed on Listener): whether to drop
// it, answer it with ResetFor's RST, or take it as a SYN that opens a
// connection. Conn.Input in LISTEN applies the same rule.
func judgeListen(seg *craft.TCP) (ListenVerdict, Cause) {
	switch f := seg.Flags; {
	case f&craft.FlagRST != 0:
		// First: "An incoming RST should be ignored."
		return ListenDrop, CauseRSTInListen
	case f&craft.FlagACK != 0:
		// Second: "Any acknowledgment is bad": <SEQ=SEG.ACK><CTL=RST>.
		return ListenReply, CauseACKInListen
	case f&craft.FlagSYN == 0:
		// Fourth: "Any other control or text-bearing segment (not
		// containing SYN) must have an ACK and thus would have been
		// discarded by the ACK processing": drop.
		return ListenDrop, CauseNoSYNInListen
	case f&craft.FlagFIN != 0:
		// Linux drops SYN+FIN (tcp_rcv_state_process); RFC 9293 would
		// take the SYN.
		return ListenDrop, CauseSYNFINInListen
	}
	// Third: a SYN (its security check skipped, see Listener).
	return ListenOpen, CauseRcvdSYN
}
