package replay

// Live tests: real captures made in a lab of the test's own (curl fetching
// a page from python3 -m http.server, tcpdump on the server's veth, loss
// made by iptables) turned into scripts for both roles, each run by
// tcpcraft probe's runner against a fresh kernel in a namespace pair of
// its own.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
	"github.com/tcpcraft/tcpcraft/probe"
)

// liveTolerance is the runner's timing tolerance for these replays. Each
// system call crosses into the kernel's namespace on a thread of the test
// process; on this shared two-core machine under load that has taken more
// than the default 10 ms. It measures the machine, not the kernel: every
// expected packet is still checked, and the timers under test (a 200 ms
// RTO) are far longer.
const liveTolerance = 30 * time.Millisecond

// captureCurl makes a lab, starts a kernel web server in its server
// namespace with serve (which returns the page's length), captures curl
// fetching /page.txt with tcpdump on the server's veth, and returns the
// capture. drops are iptables rules, each added in the namespace named by
// its first element ("server" or "client").
func captureCurl(t *testing.T, serve func(*testing.T, *lab.Lab) int, drops ...[]string) []byte {
	t.Helper()
	labtest.RequireTools(t, "curl", "tcpdump", "iptables")
	l := labtest.New(t)
	ns := map[string]string{"server": l.ServerNS, "client": l.ClientNS}
	size := serve(t, l)
	for _, d := range drops {
		labtest.Iptables(t, l, ns[d[0]], d[1:]...)
	}
	pcap := filepath.Join(t.TempDir(), "curl.pcap")
	labtest.Start(t, l, l.ServerNS, "tcpdump", "-i", l.ServerIf, "-n", "--immediate-mode", "-U", "-s", "65600", "-B", "16384", "-w", pcap, "tcp port 80")
	// tcpdump writes the file header once it captures.
	waitFor(t, "tcpdump to start capturing", func() bool {
		st, err := os.Stat(pcap)
		return err == nil && st.Size() >= 24
	})
	url := fmt.Sprintf("http://%s/page.txt", l.ServerIP())
	got := labtest.Run(t, l, l.ClientNS, "curl", "-sS", "-m", "20", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url)
	if want := fmt.Sprintf("200 %d", size); got != want {
		t.Fatalf("curl: %q, want %q", got, want)
	}
	// -U writes each packet as it is captured: let the last ACKs arrive.
	time.Sleep(300 * time.Millisecond)
	b, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pythonServer serves a page of about 20 KB with python3 -m http.server.
func pythonServer(t *testing.T, l *lab.Lab) int {
	t.Helper()
	labtest.RequireTools(t, "python3", "ss")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	page := pageBytes(t, 20000)
	if err := os.WriteFile(filepath.Join(dir, "page.txt"), page, 0o644); err != nil {
		t.Fatal(err)
	}
	labtest.Start(t, l, l.ServerNS, "python3", "-m", "http.server", "--bind", l.ServerIP().String(), "--directory", dir, "80")
	waitFor(t, "python3 -m http.server to listen", func() bool {
		out, _ := l.Command(context.Background(), l.ServerNS, "ss", "-Hltn", "sport = :80").Output()
		return len(bytes.TrimSpace(out)) > 0
	})
	return len(page)
}

// goServer serves one request with Go's net package, in steps far apart
// compared with the lab's round trip, so that the kernel's timers, not
// races between the two ends, decide what a lost segment brings: the
// headers, 400 ms later the body (a lost segment is sent again on the
// kernel's timer before then: RTO or tail loss probe, 200 ms and more),
// and its close after the client's.
func goServer(t *testing.T, l *lab.Lab) int {
	t.Helper()
	page := pageBytes(t, 20000)
	ln := labtest.Listen(t, l, l.ServerNS, netip.AddrPortFrom(l.ServerIP(), 80).String())
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		req := make([]byte, 0, 1024)
		buf := make([]byte, 1024)
		for !bytes.Contains(req, []byte("\r\n\r\n")) {
			n, err := c.Read(buf)
			if err != nil {
				done <- fmt.Errorf("reading the request: %w", err)
				return
			}
			req = append(req, buf[:n]...)
		}
		if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(page)); err != nil {
			done <- err
			return
		}
		time.Sleep(400 * time.Millisecond)
		if _, err := c.Write(page); err != nil {
			done <- err
			return
		}
		_, err = io.Copy(io.Discard, c) // until curl's FIN
		done <- err
	}()
	t.Cleanup(func() {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the Go server: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the Go server did not finish")
		}
	})
	return len(page)
}

// pageBytes is n bytes of text.
func pageBytes(t *testing.T, n int) []byte {
	t.Helper()
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return []byte(base64.StdEncoding.EncodeToString(raw)[:n])
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runScript runs a script against a fresh kernel in a namespace pair of
// the runner's own, checking that nothing is left behind, and returns its
// outcome; a failure the runner's own lateness explains is run again
// (liveRetryLate).
func runScript(t *testing.T, name string, text []byte) error {
	t.Helper()
	return runScriptFor(t, name, text, func(err error) bool { return err == nil })
}

// runScriptFor is runScript for an outcome other than a pass: wanted says
// whether an outcome is the one the test wants. An outcome it does not
// want is run again if the runner was late before it, as runScript's.
func runScriptFor(t *testing.T, name string, text []byte, wanted func(error) bool) error {
	t.Helper()
	labtest.RequireRoot(t)
	s, err := probe.Parse(name, text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if err := probe.Validate(s, false); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		runErr := runScriptOnce(t, name, s)
		var f *probe.Failure
		if wanted(runErr) || !errors.As(runErr, &f) || f.OwnLate < liveRetryLate || attempt == liveAttempts {
			return runErr
		}
		t.Logf("%s: attempt %d failed after tcpcraft started one of its own events %v late (the machine's doing; the kernel's timers ran on meanwhile); again in %v", name, attempt, f.OwnLate, liveRetryPause*time.Duration(attempt))
		time.Sleep(liveRetryPause * time.Duration(attempt))
	}
}

// A replay races the kernel's own timers: a tail loss probe fires a few
// milliseconds after a segment (twice the smoothed RTT on a veth, 5.6 ms
// in one failed run), so an ACK the runner sends late lets the kernel
// retransmit, and from there it does, rightly, what the capture did not.
// Under the suite's load the runner has started its segments 10 ms late
// and its system calls 0.5-0.9 s late (the runner's account of those
// runs). A failure that came after the runner was liveRetryLate late is
// put down to the machine and the replay run again, up to liveAttempts
// times; a failure with the runner on time fails at once, and so does the
// last attempt. These measure the machine, not the kernel or the scripts.
const (
	liveRetryLate = 2 * time.Millisecond
	liveAttempts  = 4
	// liveRetryPause, times the attempt, is the wait before the next one:
	// the late starts came in bursts (the suite's heaviest tests), and the
	// attempt right after one failed too.
	liveRetryPause = time.Second
)

// runScriptOnce runs s once in namespaces of its own, which it removes.
func runScriptOnce(t *testing.T, name string, s *probe.Script) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := probe.NewLabEnv(ctx, nil)
	if err != nil {
		t.Fatalf("NewLabEnv: %v", err)
	}
	// The runner's account of every packet and call, shown when the
	// replay fails: what the kernel sent, and when, is what tells a
	// difference in the kernel's behaviour from one in the timing.
	var account bytes.Buffer
	runErr := probe.Run(ctx, s, env, probe.Config{Tolerance: liveTolerance, Verbose: &account})
	if err := env.Close(); err != nil {
		t.Errorf("closing the runner's namespaces: %v", err)
	}
	for _, ns := range env.Namespaces {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	if runErr != nil {
		var f *probe.Failure
		if errors.As(runErr, &f) && len(f.Details) > 0 {
			t.Logf("%s: %s", name, strings.Join(f.Details, "\n"))
		}
		t.Logf("%s: the runner's account:\n%s", name, account.String())
	}
	return runErr
}

// scripts turns the capture's connection into both roles' scripts.
func scripts(t *testing.T, pcap []byte) (server, client *Script) {
	t.Helper()
	r := readPcapBytes(t, pcap)
	if n := len(r.Conns()); n != 1 {
		t.Fatalf("%d connections in the capture, want 1", n)
	}
	c := r.Conns()[0]
	var err error
	if server, err = r.Script(c, Config{Side: flow.Server, Source: "curl.pcap"}); err != nil {
		t.Fatal(err)
	}
	if client, err = r.Script(c, Config{Side: flow.Client, Source: "curl.pcap"}); err != nil {
		t.Fatal(err)
	}
	return server, client
}

// TestLiveCurlReplay: curl fetching a 20 KB page from a kernel server,
// captured on the lab's veth, replays as a server-side and a client-side
// script that both pass against a fresh kernel.
func TestLiveCurlReplay(t *testing.T) {
	pcap := captureCurl(t, pythonServer)
	server, client := scripts(t, pcap)
	for name, s := range map[string]*Script{"server.pkt": server, "client.pkt": client} {
		if err := runScript(t, name, s.Text); err != nil {
			t.Errorf("%s: %v\n%s", name, err, s.Text)
		}
	}
	// The same script with one field changed fails, where it was changed:
	// the ACK the kernel server sends for the request, and the window
	// scale it offers (an option the kernel chooses itself).
	for _, m := range []struct {
		re, field string
	}{
		{`(?m)^(\+\S+\s+> \. 1:1\(0\) ack )(\d+)`, "tcp_ack_seq"},
		{`(?m)^(\+\S+\s+> S\. 0:0\(0\) ack 1 win \d+ <[^>]*wscale )(\d+)`, "bad value in outbound TCP option (kind=3)"},
	} {
		text, line := mutate(t, server.Text, m.re)
		failsThere := func(err error) bool {
			var f *probe.Failure
			return errors.As(err, &f) && f.Line == line && strings.Contains(f.Msg, m.field)
		}
		err := runScriptFor(t, "mutated.pkt", text, failsThere)
		if !failsThere(err) {
			t.Errorf("mutated %s on line %d: %v, want a failure there about %s", m.re, line, err, m.field)
		}
	}
}

// mutate adds one to the number the second group of re matches, and
// returns the script and the line changed.
func mutate(t *testing.T, text []byte, re string) ([]byte, int) {
	t.Helper()
	loc := regexp.MustCompile(re).FindSubmatchIndex(text)
	if loc == nil {
		t.Fatalf("nothing to mutate: %s in\n%s", re, text)
	}
	n, err := strconv.Atoi(string(text[loc[4]:loc[5]]))
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), text[:loc[4]]...)
	out = append(out, strconv.Itoa(n+1)...)
	out = append(out, text[loc[5]:]...)
	return out, bytes.Count(text[:loc[4]], []byte("\n")) + 1
}

// TestLiveCurlReplayLoss: the same with loss in the capture, from a Go
// server. The server's INPUT drops the request once: the client's kernel
// sends it again on its own timer. The client's INPUT drops the response
// headers once: the server's kernel sends them again on its own timer
// (tail loss probe or RTO: the body follows only 400 ms later). tcpdump on
// the server's veth sees every segment before either drop, so each role's
// script must leave out exactly what its end never received, and keep its
// own retransmission as an expectation.
func TestLiveCurlReplayLoss(t *testing.T) {
	pcap := captureCurl(t, goServer,
		[]string{"server", "-A", "INPUT", "-p", "tcp", "--dport", "80", "-m", "length", "--length", "100:65535",
			"-m", "statistic", "--mode", "nth", "--every", "1000", "--packet", "0", "-j", "DROP"},
		[]string{"client", "-A", "INPUT", "-p", "tcp", "--sport", "80", "-m", "length", "--length", "100:65535",
			"-m", "statistic", "--mode", "nth", "--every", "1000", "--packet", "0", "-j", "DROP"})
	server, client := scripts(t, pcap)
	if len(server.Left) != 1 || len(client.Left) != 1 {
		t.Errorf("left out: server %v, client %v; want one each\n%s\n%s", server.Left, client.Left, server.Text, client.Text)
	}
	if len(lines(client, "> P. 1:", "on the kernel's own timer")) != 1 {
		t.Errorf("the client's script does not expect its kernel to retransmit the request:\n%s", client.Text)
	}
	if len(lines(server, "> P. 1:", "on the kernel's own timer")) != 1 {
		t.Errorf("the server's script does not expect its kernel to retransmit the headers:\n%s", server.Text)
	}
	for name, s := range map[string]*Script{"server.pkt": server, "client.pkt": client} {
		if err := runScript(t, name, s.Text); err != nil {
			t.Errorf("%s: %v\n%s", name, err, s.Text)
		}
	}
	// Sending the segment the client never had makes its kernel behave
	// otherwise: the script fails.
	text := regexp.MustCompile(`(?m)^// #\d+ not replayed: .*  \[(.*)\]$`).ReplaceAll(client.Text, []byte("+0 $1"))
	if err := runScriptFor(t, "lost-sent.pkt", text, func(err error) bool { return err != nil }); err == nil {
		t.Errorf("the client's script passes with the lost segment sent:\n%s", text)
	}
}

// TestLiveSACKRecovery replays a capture (testdata/curl-loss.pcap, made as
// TestLiveCurlReplayLoss makes its own) in which the client never got the
// server's second data segment and the server recovered it on the
// client's SACK block: the client's script leaves the segment out and
// the server's expects the retransmission.
func TestLiveSACKRecovery(t *testing.T) {
	r := readPcap(t, "testdata/curl-loss.pcap")
	c := r.Conns()[0]
	for _, side := range []flow.Side{flow.Server, flow.Client} {
		s, err := r.Script(c, Config{Side: side, Source: "curl-loss.pcap"})
		if err != nil {
			t.Fatal(err)
		}
		if side == flow.Server && len(lines(s, " > ", "a retransmission in loss recovery")) != 1 {
			t.Errorf("server: no retransmission in loss recovery expected:\n%s", s.Text)
		}
		if side == flow.Client && (len(s.Left) != 1 || len(lines(s, " < ", ",sack ")) != 0 || len(lines(s, " > ", "sack 14670:26254")) != 1) {
			t.Errorf("client: left out %v; want one segment left out and the SACK block expected from the kernel:\n%s", s.Left, s.Text)
		}
		if err := runScript(t, side.String()+".pkt", s.Text); err != nil {
			t.Errorf("%s: %v\n%s", side, err, s.Text)
		}
	}
}
