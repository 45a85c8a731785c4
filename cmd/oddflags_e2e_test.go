package cmd

// End-to-end comparison of tcpcraft's answers with the Linux kernel's for
// segments with odd flag combinations: a kernel listener and `tcpcraft
// listen -k` side by side in the server namespace of one lab, probed from
// the client namespace with crafted segments (raw sockets opened there by
// the test itself), each probe twice, once per listener, the replies
// compared. The probes go to a listening port from a new 4-tuple, to a
// half-open connection (SYN-RECEIVED) and to an established one.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// proberMark is the firewall mark of the prober's own packets: the client
// namespace drops every RST of its kernel from the probe ports but these
// (the kernel knows nothing of the prober's connections and would reset
// them).
const proberMark = 0x7463

// probeSports are the source ports of the probes.
const probeSportLo, probeSportHi = 20000, 29999

// rawProber sends crafted IPv4 segments from the client namespace and hands
// the TCP segments that come back to whoever waits on their destination
// port.
type rawProber struct {
	src    netip.Addr
	sendFD int
	recvFD int

	mu   sync.Mutex
	subs map[uint16]chan arrival
	done chan struct{}
	wg   sync.WaitGroup
	ipID uint16
}

// arrival is a segment that came back, and when.
type arrival struct {
	seg craft.TCP
	at  time.Time
}

// newRawProber opens the prober's sockets in the client namespace of e.
func newRawProber(t *testing.T, e *e2eLab) *rawProber {
	t.Helper()
	p := &rawProber{src: e.ClientIP(), subs: make(map[uint16]chan arrival), done: make(chan struct{}), sendFD: -1, recvFD: -1}
	err := lab.Do(e.ClientNS, func() error {
		var err error
		// IPPROTO_RAW implies IP_HDRINCL: the packet is sent as built.
		if p.sendFD, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return fmt.Errorf("raw send socket: %w", err)
		}
		if err = unix.SetsockoptInt(p.sendFD, unix.SOL_SOCKET, unix.SO_MARK, proberMark); err != nil {
			return fmt.Errorf("SO_MARK: %w", err)
		}
		// A raw TCP socket gets a copy of every TCP segment that arrives.
		if p.recvFD, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP); err != nil {
			return fmt.Errorf("raw receive socket: %w", err)
		}
		return unix.SetsockoptTimeval(p.recvFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
	})
	if err != nil {
		p.closeFDs()
		t.Fatalf("prober: %v", err)
	}
	p.wg.Add(1)
	go p.receive()
	t.Cleanup(func() {
		close(p.done)
		p.wg.Wait()
		p.closeFDs()
	})
	return p
}

func (p *rawProber) closeFDs() {
	for _, fd := range []int{p.sendFD, p.recvFD} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// receive reads until done, handing each segment to its port's subscriber.
func (p *rawProber) receive() {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	var pkt craft.Packet
	for {
		select {
		case <-p.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(p.recvFD, buf, 0)
		if err != nil {
			continue // the receive timeout: look at done again
		}
		if craft.ParsePacket(craft.LinkRaw, buf[:n], &pkt, craft.PacketOptions{PartialChecksum: true}) != nil || pkt.Dst() != p.src {
			continue
		}
		seg := pkt.TCP
		seg.Payload = slices.Clone(seg.Payload)
		seg.Options = nil // not compared, and they point into buf
		p.mu.Lock()
		ch := p.subs[seg.DstPort]
		p.mu.Unlock()
		if ch != nil {
			select {
			case ch <- arrival{seg, time.Now()}:
			default: // a flood: the case fails on what it has
			}
		}
	}
}

// subscribe returns the segments that arrive for our port sport.
func (p *rawProber) subscribe(sport uint16) <-chan arrival {
	ch := make(chan arrival, 64)
	p.mu.Lock()
	p.subs[sport] = ch
	p.mu.Unlock()
	return ch
}

// send sends seg from p.src to dst.
func (p *rawProber) send(dst netip.Addr, seg *craft.TCP) error {
	p.mu.Lock()
	p.ipID++
	id := p.ipID
	p.mu.Unlock()
	b, err := craft.BuildIPv4TCP(craft.IPv4{TTL: 64, ID: id, Protocol: craft.ProtocolTCP, Src: p.src, Dst: dst}, seg)
	if err != nil {
		return err
	}
	to := &unix.SockaddrInet4{Addr: dst.As4()}
	return unix.Sendto(p.sendFD, b, 0, to)
}

// oddCase is one probe: from a fresh 4-tuple to a listening port, or to a
// connection the case first brings to SYN-RECEIVED (our SYN answered by
// the listener's SYN-ACK) or to ESTABLISHED (and our ACK).
type oddCase struct {
	name  string
	state string // "listen", "syn-received" or "established"
	flags craft.Flags
	data  string
	// seqOff is added to the sequence number the probe would carry in
	// order (our ISN+1 once the SYN is sent; an arbitrary number for a
	// fresh 4-tuple), ackOff to the acknowledgment (the listener's ISN+1,
	// or an arbitrary number).
	seqOff, ackOff int32
}

// oddCases: every flag combination a scanner or a confused peer sends.
var oddCases = func() []oddCase {
	const (
		F, S, R, P, A, U = craft.FlagFIN, craft.FlagSYN, craft.FlagRST, craft.FlagPSH, craft.FlagACK, craft.FlagURG
		E                = craft.FlagECE
	)
	var cs []oddCase
	for _, c := range []oddCase{
		{name: "S", flags: S},
		{name: "S+data", flags: S, data: "hello"},
		{name: "SF", flags: S | F},
		{name: "SFP", flags: S | F | P},
		{name: "SR", flags: S | R},
		{name: "SA", flags: S | A},
		{name: "SRA", flags: S | R | A},
		{name: "SP", flags: S | P},
		{name: "SU", flags: S | U},
		{name: "SE", flags: S | E},
		{name: "F", flags: F},
		{name: "FP", flags: F | P},
		{name: "NULL"},
		{name: "U", flags: U},
		{name: "P", flags: P},
		{name: "P+data", flags: P, data: "hello"},
		{name: "FPU", flags: F | P | U},
		{name: "A", flags: A},
		{name: "A+data", flags: A | P, data: "hello"},
		{name: "FA", flags: F | A},
		{name: "UA", flags: U | A},
		{name: "R", flags: R},
		{name: "RA", flags: R | A},
		{name: "FRA", flags: F | R | A},
	} {
		c.state = "listen"
		cs = append(cs, c)
	}
	for _, state := range []string{"syn-received", "established"} {
		for _, c := range []oddCase{
			{name: "F", flags: F},
			{name: "NULL"},
			{name: "P+data", flags: P, data: "hello"},
			{name: "FPU", flags: F | P | U},
			{name: "S", flags: S},
			{name: "S old ISN", flags: S, seqOff: -1},
			{name: "SA", flags: S | A},
			{name: "SA old ISN", flags: S | A, seqOff: -1},
			{name: "SF", flags: S | F},
			{name: "R", flags: R},
			{name: "RA", flags: R | A},
			{name: "R in window", flags: R, seqOff: 100},
			{name: "A", flags: A},
			{name: "A bad ack", flags: A, ackOff: 1000},
			{name: "A bad ack, out of window", flags: A, seqOff: -100000, ackOff: 1000},
			{name: "RA bad ack", flags: R | A, ackOff: 1000},
			{name: "A too old", flags: A, ackOff: -200000},
			{name: "A out of window", flags: A, seqOff: -100000},
			{name: "F out of window", flags: F, seqOff: -100000},
			{name: "A+data", flags: A | P, data: "hello"},
			{name: "FA", flags: F | A},
		} {
			c.state = state
			cs = append(cs, c)
		}
	}
	return cs
}()

// oddRun is what one listener answered to one case.
type oddRun struct {
	replies []string // normalised, in order
	err     error
}

// replyWindow is how long replies to a probe are collected: long enough for
// a delayed ACK (40 ms for tcpcraft, up to 200 ms for Linux), well short
// of a SYN-ACK's retransmission (1 s).
const replyWindow = 600 * time.Millisecond

// run plays case c against dst:dport from our port sport.
func (p *rawProber) run(c oddCase, dst netip.Addr, dport, sport uint16, isn craft.Seq) oddRun {
	replies := p.subscribe(sport)
	seq, ack := isn, craft.Seq(0x5eed0000)
	var peerISN craft.Seq
	var synackAt time.Time
	haveISN := false
	if c.state != "listen" {
		syn := craft.TCP{SrcPort: sport, DstPort: dport, Seq: isn, Flags: craft.FlagSYN, Window: 65535,
			Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}}
		if err := p.send(dst, &syn); err != nil {
			return oddRun{err: err}
		}
		select {
		case a := <-replies:
			r := a.seg
			if r.Flags&(craft.FlagSYN|craft.FlagACK|craft.FlagRST) != craft.FlagSYN|craft.FlagACK || r.Ack != isn.Add(1) {
				return oddRun{err: fmt.Errorf("SYN answered with %s ack %d", r.Flags, r.Ack)}
			}
			peerISN, haveISN, synackAt = r.Seq, true, a.at
		case <-time.After(5 * time.Second):
			return oddRun{err: fmt.Errorf("no SYN-ACK")}
		}
		seq, ack = isn.Add(1), peerISN.Add(1)
		if c.state == "established" {
			a := craft.TCP{SrcPort: sport, DstPort: dport, Seq: seq, Ack: ack, Flags: craft.FlagACK, Window: 65535}
			if err := p.send(dst, &a); err != nil {
				return oddRun{err: err}
			}
		}
	}
	probe := craft.TCP{SrcPort: sport, DstPort: dport, Seq: seq.Add(craft.Size(c.seqOff)), Flags: c.flags, Window: 65535, Payload: []byte(c.data)}
	if c.flags&craft.FlagACK != 0 || c.state == "listen" {
		// A fresh 4-tuple's probe carries an acknowledgment number even
		// without the ACK bit: a listener must not look at it.
		probe.Ack = ack.Add(craft.Size(c.ackOff))
	}
	if c.flags&craft.FlagSYN != 0 && c.state == "listen" {
		probe.Options = []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}
	}
	if err := p.send(dst, &probe); err != nil {
		return oddRun{err: err}
	}
	var run oddRun
	deadline := time.After(replyWindow)
	for {
		select {
		case a := <-replies:
			r := a.seg
			if r.Flags&(craft.FlagSYN|craft.FlagACK) == craft.FlagSYN|craft.FlagACK {
				// Both listeners resend an unanswered SYN-ACK after
				// 1 s: one that repeats the first that late is their
				// timer, not an answer to the probe.
				if haveISN && r.Seq == peerISN && a.at.Sub(synackAt) > synackTimer {
					continue
				}
				if !haveISN {
					peerISN, haveISN, synackAt = r.Seq, true, a.at
				}
			}
			run.replies = append(run.replies, normReply(&probe, isn, peerISN, haveISN, &r))
		case <-deadline:
			return run
		}
	}
}

// synackTimer is a little less than the 1 s after which Linux and tcpcraft
// resend a SYN-ACK (RFC 6298 §2.1's initial RTO).
const synackTimer = 900 * time.Millisecond

// normReply describes reply r to probe without the numbers that differ
// between two stacks (ISNs, windows, options): flags, the sequence number
// as SEG.ACK of the probe, zero, or relative to the listener's ISN, the
// acknowledgment relative to our ISN, and the payload length.
func normReply(probe *craft.TCP, isn, peerISN craft.Seq, haveISN bool, r *craft.TCP) string {
	var b strings.Builder
	b.WriteString(r.Flags.String())
	switch {
	case probe.Flags&craft.FlagACK != 0 && r.Seq == probe.Ack:
		b.WriteString(" seq=SEG.ACK")
	case r.Flags&craft.FlagSYN != 0:
		b.WriteString(" seq=ISN")
	case r.Seq == 0 && r.Flags&craft.FlagRST != 0:
		b.WriteString(" seq=0")
	case haveISN:
		fmt.Fprintf(&b, " seq=ISN%+d", int32(r.Seq-peerISN))
	default:
		fmt.Fprintf(&b, " seq=%d", uint32(r.Seq))
	}
	if r.Flags&craft.FlagACK != 0 {
		fmt.Fprintf(&b, " ack=ours%+d", int32(r.Ack-isn))
	}
	if len(r.Payload) > 0 {
		fmt.Fprintf(&b, " len=%d", len(r.Payload))
	}
	return b.String()
}

// TestOddFlagsLikeKernel sends every odd flag combination of oddCases to a
// kernel listener and to `tcpcraft listen -k` and wants the same replies
// (RFC 9293 §3.10.7.2 and §3.10.7.4 as Linux implements them).
func TestOddFlagsLikeKernel(t *testing.T) {
	e := newListenLab(t)
	labtest.RequireTools(t, "iptables")
	const kport, tport = 8091, 8092
	ln := e.listen(t, kport)
	_ = ln // never accepted: the kernel answers from its accept queue
	// --exec sleep: an application that neither reads nor closes, like
	// the kernel listener's connections that nobody accepts.
	p := e.startListen(t, nil, "-k", "--exec", "sleep 60", fmt.Sprintf(":%d", tport))
	waitListening(t, p)
	// The client kernel has no socket for the prober's connections: keep
	// its RSTs (but not the prober's) from reaching the listeners.
	labtest.Iptables(t, e.Lab, e.ClientNS, "-A", "OUTPUT", "-p", "tcp", "--sport", fmt.Sprintf("%d:%d", probeSportLo, probeSportHi),
		"--tcp-flags", "RST", "RST", "-m", "mark", "!", "--mark", fmt.Sprint(proberMark), "-j", "DROP")
	pr := newRawProber(t, e)

	// Every case against both listeners at once, from ports of its own.
	// A case whose replies differ is played again (up to oddAttempts
	// times, fresh ports): on a loaded machine a reply can miss the
	// window or a timer fire within it, but a behaviour that differs
	// differs every time. Only what differs in every attempt fails.
	server := e.ServerIP()
	type result struct {
		kernel, tcpcraft oddRun
		attempts         int
	}
	results := make([]result, len(oddCases))
	todo := make([]int, len(oddCases))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; attempt < oddAttempts && len(todo) > 0; attempt++ {
		var wg sync.WaitGroup
		for _, i := range todo {
			c := oddCases[i]
			isn := craft.Seq(0x10000000 + uint32(i)*0x100000 + uint32(attempt)*0x1000)
			sport := uint16(probeSportLo + attempt*2*len(oddCases) + 2*i)
			results[i].attempts++
			wg.Add(2)
			go func() {
				defer wg.Done()
				results[i].kernel = pr.run(c, server, kport, sport, isn)
			}()
			go func() {
				defer wg.Done()
				results[i].tcpcraft = pr.run(c, server, tport, sport+1, isn)
			}()
		}
		wg.Wait()
		var again []int
		for _, i := range todo {
			r := results[i]
			if r.kernel.err != nil || r.tcpcraft.err != nil || !slices.Equal(r.kernel.replies, r.tcpcraft.replies) {
				again = append(again, i)
			}
		}
		todo = again
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-13s %-25s %-34s %s\n", "state", "sent", "kernel", "tcpcraft")
	for i, c := range oddCases {
		r := results[i]
		k, tc := r.kernel, r.tcpcraft
		if k.err != nil || tc.err != nil {
			t.Errorf("%s %s: kernel %v, tcpcraft %v", c.state, c.name, k.err, tc.err)
			continue
		}
		kr, tr := k.replies, tc.replies
		mark := ""
		if r.attempts > 1 {
			mark = fmt.Sprintf("   (%d attempts)", r.attempts)
		}
		if !slices.Equal(kr, tr) {
			mark = "   <-- differs" + mark
			t.Errorf("%s, %s: kernel answered %q, tcpcraft %q (in each of %d attempts)", c.state, c.name, kr, tr, r.attempts)
		}
		fmt.Fprintf(&table, "%-13s %-25s %-34s %s%s\n", c.state, c.name, orNothing(kr), orNothing(tr), mark)
	}
	t.Logf("replies (seq/ack relative to SEG.ACK, the listener's ISN and ours):\n%s", table.String())
	if t.Failed() {
		t.Logf("tcpcraft's trace:\n%s", tail(p.stderr.String(), 20000))
	}
}

// oddAttempts bounds how often a case whose replies differ is played.
const oddAttempts = 4

func orNothing(r []string) string {
	if len(r) == 0 {
		return "nothing"
	}
	return strings.Join(r, ", ")
}

// connectCases are the odd segments a connecting client gets: in
// SYN-SENT (its SYN unanswered) and, once established, as a client.
var connectCases = func() []oddCase {
	const (
		F, S, R, P, A, U = craft.FlagFIN, craft.FlagSYN, craft.FlagRST, craft.FlagPSH, craft.FlagACK, craft.FlagURG
	)
	var cs []oddCase
	for _, c := range []oddCase{
		{name: "SA", flags: S | A},
		{name: "SA bad ack", flags: S | A, ackOff: 1000},
		{name: "S (simultaneous open)", flags: S},
		{name: "SF", flags: S | F},
		{name: "SRA", flags: S | R | A},
		{name: "A", flags: A},
		{name: "A bad ack", flags: A, ackOff: 1000},
		{name: "R", flags: R},
		{name: "RA", flags: R | A},
		{name: "RA bad ack", flags: R | A, ackOff: 1000},
		{name: "F", flags: F},
		{name: "NULL"},
		{name: "FPU", flags: F | P | U},
	} {
		c.state = "syn-sent"
		cs = append(cs, c)
	}
	for _, c := range []oddCase{
		{name: "F", flags: F},
		{name: "NULL"},
		{name: "S", flags: S},
		{name: "SA", flags: S | A},
		{name: "R in window", flags: R, seqOff: 100},
		{name: "A bad ack", flags: A, ackOff: 1000},
		{name: "A too old", flags: A, ackOff: -200000},
		{name: "F out of window", flags: F, seqOff: -100000},
		{name: "A+data", flags: A | P, data: "hello"},
		// No FA: tcpcraft connect closes when the peer does (like nc),
		// an idle kernel socket does not; TestOddFlagsLikeKernel
		// compares the FIN's ACK.
	} {
		c.state = "established"
		cs = append(cs, c)
	}
	return cs
}()

// runServer plays case c against a client that connects to our port: it
// waits for the client's SYN on replies, answers it with a SYN-ACK of ISN
// isn (and waits for the ACK) when the case wants ESTABLISHED, then sends
// the probe and collects what comes back.
func (p *rawProber) runServer(c oddCase, replies <-chan arrival, client netip.Addr, isn craft.Seq) oddRun {
	var syn arrival
	select {
	case syn = <-replies:
		if syn.seg.Flags&(craft.FlagSYN|craft.FlagACK) != craft.FlagSYN {
			return oddRun{err: fmt.Errorf("the client began with %s", syn.seg.Flags)}
		}
	case <-time.After(20 * time.Second):
		return oddRun{err: fmt.Errorf("no SYN from the client")}
	}
	cport, ourPort, peerISN := syn.seg.SrcPort, syn.seg.DstPort, syn.seg.Seq
	seq, ack := isn, peerISN.Add(1)
	if c.state == "established" {
		sa := craft.TCP{SrcPort: ourPort, DstPort: cport, Seq: isn, Ack: ack, Flags: craft.FlagSYN | craft.FlagACK, Window: 65535,
			Options: []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}}
		if err := p.send(client, &sa); err != nil {
			return oddRun{err: err}
		}
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case a := <-replies:
				if a.seg.Flags&(craft.FlagSYN|craft.FlagACK|craft.FlagRST) == craft.FlagACK && a.seg.Ack == isn.Add(1) {
					break wait
				}
			case <-deadline:
				return oddRun{err: fmt.Errorf("no ACK of our SYN-ACK")}
			}
		}
		seq = isn.Add(1)
	}
	probe := craft.TCP{SrcPort: ourPort, DstPort: cport, Seq: seq.Add(craft.Size(c.seqOff)), Flags: c.flags, Window: 65535, Payload: []byte(c.data)}
	if c.flags&craft.FlagACK != 0 {
		probe.Ack = ack.Add(craft.Size(c.ackOff))
	}
	if c.flags&craft.FlagSYN != 0 {
		probe.Options = []craft.Option{{Kind: craft.OptMSS, MSS: 1460}}
	}
	if err := p.send(client, &probe); err != nil {
		return oddRun{err: err}
	}
	var run oddRun
	deadline := time.After(replyWindow)
	for {
		select {
		case a := <-replies:
			r := a.seg
			if r.Flags&(craft.FlagSYN|craft.FlagACK) == craft.FlagSYN && r.Seq == peerISN && a.at.Sub(syn.at) > synackTimer {
				continue // the client's SYN again, by its timer
			}
			run.replies = append(run.replies, normReply(&probe, isn, peerISN, true, &r))
		case <-deadline:
			return run
		}
	}
}

// TestOddFlagsToConnectLikeKernel sends the odd segments of connectCases
// to a kernel client (a Go net.Dial) and to `tcpcraft connect`, both in the
// server namespace connecting to the prober in the client namespace, and
// wants the same replies (RFC 9293 §3.10.7.3 and §3.10.7.4 as Linux
// implements them).
func TestOddFlagsToConnectLikeKernel(t *testing.T) {
	e := newListenLab(t) // tcpcraft runs in the server namespace here too
	labtest.RequireTools(t, "iptables")
	labtest.Iptables(t, e.Lab, e.ClientNS, "-A", "OUTPUT", "-p", "tcp", "--sport", fmt.Sprintf("%d:%d", probeSportLo, probeSportHi),
		"--tcp-flags", "RST", "RST", "-m", "mark", "!", "--mark", fmt.Sprint(proberMark), "-j", "DROP")
	pr := newRawProber(t, e)
	client := e.ServerIP()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	type result struct {
		kernel, tcpcraft oddRun
		attempts         int
		trace            *process // the last tcpcraft connect of the case
	}
	results := make([]result, len(connectCases))
	todo := make([]int, len(connectCases))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; attempt < oddAttempts && len(todo) > 0; attempt++ {
		var wg sync.WaitGroup
		for _, i := range todo {
			c := connectCases[i]
			isn := craft.Seq(0x30000000 + uint32(i)*0x100000 + uint32(attempt)*0x1000)
			kport := uint16(probeSportLo + attempt*2*len(connectCases) + 2*i)
			tport := kport + 1
			results[i].attempts++
			kreplies, treplies := pr.subscribe(kport), pr.subscribe(tport)
			go func() {
				// The kernel client; it ends with the test's context.
				conn, err := e.Dial(ctx, e.ServerNS, "tcp", net.JoinHostPort(e.ClientIP().String(), fmt.Sprint(kport)))
				if err == nil {
					<-ctx.Done()
					conn.Close()
				}
			}()
			stdin, _ := openStdin(t) // kept open: the client sends no FIN
			results[i].trace = e.startConnect(t, stdin, "--timeout", "30s", net.JoinHostPort(e.ClientIP().String(), fmt.Sprint(tport)))
			wg.Add(2)
			go func() {
				defer wg.Done()
				results[i].kernel = pr.runServer(c, kreplies, client, isn)
			}()
			go func() {
				defer wg.Done()
				results[i].tcpcraft = pr.runServer(c, treplies, client, isn)
			}()
		}
		wg.Wait()
		var again []int
		for _, i := range todo {
			r := results[i]
			if r.kernel.err != nil || r.tcpcraft.err != nil || !slices.Equal(r.kernel.replies, r.tcpcraft.replies) {
				again = append(again, i)
			}
		}
		todo = again
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-12s %-22s %-34s %s\n", "state", "sent", "kernel", "tcpcraft")
	for i, c := range connectCases {
		r := results[i]
		k, tc := r.kernel, r.tcpcraft
		if k.err != nil || tc.err != nil {
			t.Errorf("%s %s: kernel %v, tcpcraft %v", c.state, c.name, k.err, tc.err)
			continue
		}
		mark := ""
		if r.attempts > 1 {
			mark = fmt.Sprintf("   (%d attempts)", r.attempts)
		}
		if !slices.Equal(k.replies, tc.replies) {
			mark = "   <-- differs" + mark
			t.Errorf("%s, %s: kernel answered %q, tcpcraft %q (in each of %d attempts)\ntcpcraft's trace:\n%s",
				c.state, c.name, k.replies, tc.replies, r.attempts, tail(r.trace.stderr.String(), 3000))
		}
		fmt.Fprintf(&table, "%-12s %-22s %-34s %s%s\n", c.state, c.name, orNothing(k.replies), orNothing(tc.replies), mark)
	}
	t.Logf("replies (seq/ack relative to SEG.ACK, the client's ISN and ours):\n%s", table.String())
}

// startConnect starts `tcpcraft connect args...` in the server namespace.
// If it is still running when the test ends it gets SIGINT first, so that
// it removes its rule before the SIGKILL of e.start's cleanup.
func (e *e2eLab) startConnect(t *testing.T, stdin io.Reader, args ...string) *process {
	t.Helper()
	p := e.start(t, e.ServerNS, stdin, append([]string{e.bin, "connect"}, args...)...)
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
		}
	})
	return p
}
