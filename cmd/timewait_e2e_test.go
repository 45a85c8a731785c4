package cmd

// End-to-end tests of how TIME-WAIT ends (fsm Config.TimeWaitProbe):
// against a kernel peer that got our last ACK, a probe draws its reset and
// TIME-WAIT ends at once; when our ACKs are lost, the peer's retransmitted
// FIN is still ACKed and TIME-WAIT ends after the short hold; with
// --full-time-wait it lasts --time-wait, and standard output is released
// before that, as soon as the stream has ended.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

// echoAndClose serves one connection on port: it echoes until our FIN,
// then closes.
func echoAndClose(t *testing.T, e *e2eLab, port int) <-chan error {
	t.Helper()
	return serveOne(t, e.listen(t, port), func(c *net.TCPConn) error {
		_, err := io.Copy(c, c)
		return errors.Join(err, c.Close())
	})
}

// lastTransition returns the trace's last line of the state change from
// → to (listen's lines carry the peer before "state").
func lastTransition(trace, from, to string) string {
	var found string
	for _, line := range strings.Split(trace, "\n") {
		if strings.Contains(line, " state "+from+" -> "+to+" ") {
			found = line
		}
	}
	return found
}

// A peer that got our ACK of its FIN has closed: it resets our probe, and
// TIME-WAIT ends with that as the reason, long before --time-wait.
func TestTimeWaitEndsOnPeerReset(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peer := echoAndClose(t, e, 7100)
	capPath := startKernelCapture(t, e, 7100)
	const msg = "GET / HTTP/1.0\r\n\r\n"
	// A --time-wait far longer than this test may take: only the probe's
	// answer can end TIME-WAIT in time (the test's process timeout).
	r := e.tcpcraft(t, strings.NewReader(msg), "connect", "--time-wait", "120s", e.serverAddr(7100))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != msg {
		t.Errorf("stdout %q, want the echo %q", r.stdout, msg)
	}
	line := lastTransition(r.stderr, "TIME-WAIT", "CLOSED")
	if !strings.Contains(line, fsm.CauseTimeWaitPeerGone.String()) {
		t.Fatalf("TIME-WAIT ended by %q, want %q\n%s", line, fsm.CauseTimeWaitPeerGone, r.stderr)
	}
	// On the wire: our ACK of the kernel's FIN, then the probe (our FIN's
	// sequence number: the last its segment takes, which carries the
	// request too when the input's end came with it), then the kernel's
	// RST at exactly the probe's ACK.
	pkts := readKernelCapture(t, e, capPath)
	var kFIN, ourFIN *wirePkt
	for i := range pkts {
		p := &pkts[i]
		if p.tcp.Flags.Has(craft.FlagFIN) {
			if p.kernel {
				kFIN = p
			} else {
				ourFIN = p
			}
		}
	}
	if kFIN == nil || ourFIN == nil {
		t.Fatalf("no FIN from one side in the capture")
	}
	var acked, probed, reset bool
	for _, p := range pkts {
		switch {
		case !p.kernel && p.tcp.Flags == craft.FlagACK && p.tcp.Ack == kFIN.end() && p.tcp.Seq == ourFIN.end():
			acked = true
		case !p.kernel && acked && p.tcp.Flags == craft.FlagACK && p.tcp.Seq == ourFIN.end()-1 && p.tcp.Ack == kFIN.end():
			probed = true
		case p.kernel && probed && p.tcp.Flags.Has(craft.FlagRST) && p.tcp.Seq == kFIN.end():
			reset = true
		}
	}
	if !acked || !probed || !reset {
		t.Fatalf("on the wire: ACK of the FIN %v, probe after it %v, RST to the probe %v", acked, probed, reset)
	}
}

// Our ACKs are lost after the data (drop-ack): the kernel, in LAST-ACK,
// retransmits its FIN on its timer, and the shortened TIME-WAIT still
// ACKs it, so the kernel closes cleanly (no RST from us: our guard holds
// until TIME-WAIT ends); TIME-WAIT then ends after the short hold, not
// after --time-wait, and says so.
func TestTimeWaitACKsRetransmittedFIN(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peer := echoAndClose(t, e, 7101)
	capPath := startKernelCapture(t, e, 7101)
	const msg = "ping\n"
	// From the kernel's FIN on, every pure ACK of ours (of the FIN, and
	// the probe) is withheld for 150 ms: less than the kernel's first
	// retransmission timeout (200 ms at least), so a later FIN is
	// answered. The window starts at the FIN, not after our bytes: on a
	// loaded machine the FIN came more than 150 ms after them, and a
	// window counted from the bytes had closed before it.
	r := e.tcpcraft(t, strings.NewReader(msg), "connect", "--time-wait", "120s",
		"--fault", "drop-ack:after=fin,for=150ms", e.serverAddr(7101))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != msg {
		t.Errorf("stdout %q, want the echo %q", r.stdout, msg)
	}
	line := lastTransition(r.stderr, "TIME-WAIT", "CLOSED")
	if !strings.Contains(line, fsm.CauseTimeWaitFINsDone.String()) {
		t.Fatalf("TIME-WAIT ended by %q, want %q\n%s", line, fsm.CauseTimeWaitFINsDone, r.stderr)
	}
	pkts := readKernelCapture(t, e, capPath)
	var fins int
	var kFIN *wirePkt
	answered := false
	for i := range pkts {
		p := &pkts[i]
		switch {
		case p.kernel && p.tcp.Flags.Has(craft.FlagFIN):
			fins++
			kFIN = p
		case !p.kernel && p.tcp.Flags.Has(craft.FlagRST):
			t.Fatalf("we reset the kernel: %+v", p.tcp)
		case !p.kernel && fins >= 2 && p.tcp.Flags == craft.FlagACK && p.tcp.Ack == kFIN.end():
			answered = true
		}
	}
	if fins < 2 || !answered {
		t.Fatalf("the kernel sent its FIN %d times; its retransmission ACKed: %v\n%s", fins, answered, r.stderr)
	}
}

// With --full-time-wait TIME-WAIT lasts --time-wait and ends by its timer,
// but standard output is released as soon as the peer's stream ended: a
// reader of a pipe sees its end while tcpcraft still waits.
func TestTimeWaitFullReleasesOutput(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peer := echoAndClose(t, e, 7102)
	const msg = "ping\n"
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := e.Command(ctx, e.ClientNS, e.bin, "connect", "--full-time-wait", "--time-wait", "3s", e.serverAddr(7102))
	stderr := &syncBuffer{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(msg), pw, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	out, err := io.ReadAll(pr) // returns at the pipe's end
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("tcpcraft exited (%v) before its output ended: --full-time-wait not held, or output not released\n%s", err, stderr.String())
	default:
	}
	if string(out) != msg {
		t.Errorf("stdout %q, want %q", out, msg)
	}
	if err := <-done; err != nil {
		t.Fatalf("tcpcraft: %v\n%s", err, stderr.String())
	}
	if err := receive(t, peer, "the echo peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	line := lastTransition(stderr.String(), "TIME-WAIT", "CLOSED")
	if !strings.Contains(line, fsm.CauseTimeWaitDone.String()) || strings.Contains(line, "probe") {
		t.Fatalf("TIME-WAIT ended by %q, want %q\n%s", line, fsm.CauseTimeWaitDone, stderr.String())
	}
}

// listen closing first (its input ended) goes through the same TIME-WAIT:
// ended by the probe's reset, or with --full-time-wait by its timer.
func TestTimeWaitListen(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	for i, c := range []struct {
		args  []string
		cause fsm.Cause
	}{
		{[]string{"--time-wait", "120s"}, fsm.CauseTimeWaitPeerGone},
		{[]string{"--full-time-wait", "--time-wait", "500ms"}, fsm.CauseTimeWaitDone},
	} {
		port := 7103 + i
		const msg = "hello\n"
		p := e.startListen(t, strings.NewReader(msg), append(c.args, ":"+strconv.Itoa(port))...)
		waitListening(t, p)
		conn := dialServer(t, e, port)
		got, err := io.ReadAll(conn) // to tcpcraft's FIN
		if err != nil || string(got) != msg {
			t.Fatalf("%v: read %q, %v; want %q", c.args, got, err, msg)
		}
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
		r := p.wait(t)
		expectExit(t, r, 0)
		line := lastTransition(r.stderr, "TIME-WAIT", "CLOSED")
		if !strings.Contains(line, c.cause.String()) {
			t.Fatalf("%v: TIME-WAIT ended by %q, want %q\n%s", c.args, line, c.cause, r.stderr)
		}
	}
}

// A request whose input has already ended (printf into a pipe, closed
// behind it) goes as one segment with our FIN, and a server that answers
// at our FIN then closes after it: no FINs cross, and TIME-WAIT ends on the
// probe's reset. The input is a pipe written and closed before tcpcraft
// starts, so its end is there at the first read.
func TestConnectSendsTheFINWithTheLastData(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	const request, answer = "GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\nhello\n"
	peer := serveOne(t, e.listen(t, 7104), func(c *net.TCPConn) error {
		got, err := io.ReadAll(c) // to our FIN
		if err != nil {
			return err
		}
		if string(got) != request {
			return fmt.Errorf("read %q, want %q", got, request)
		}
		_, err = io.WriteString(c, answer)
		return errors.Join(err, c.Close())
	})
	in, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, request); err != nil {
		t.Fatal(err)
	}
	w.Close()
	defer in.Close()
	r := e.tcpcraft(t, in, "connect", e.serverAddr(7104))
	expectExit(t, r, 0)
	if err := receive(t, peer, "the peer"); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if r.stdout != answer {
		t.Errorf("stdout %q, want %q", r.stdout, answer)
	}
	out := segmentLines(r.stderr, '>')
	var fins []string
	for _, line := range out {
		if strings.Contains(line, "Flags [F") {
			fins = append(fins, line)
		}
	}
	if len(fins) != 1 || !strings.Contains(fins[0], "Flags [FP.], seq 1:19,") || !strings.Contains(fins[0], "length 18") {
		t.Errorf("want one FIN, in the request's segment (Flags [FP.], seq 1:19, length 18); sent:\n%s", strings.Join(out, "\n"))
	}
	if line := lastTransition(r.stderr, "TIME-WAIT", "CLOSED"); !strings.Contains(line, fsm.CauseTimeWaitPeerGone.String()) {
		t.Errorf("TIME-WAIT ended by %q, want %q", line, fsm.CauseTimeWaitPeerGone)
	}
}
