package cmd

// End-to-end tests of connect and listen over IPv6 against the real Linux
// kernel (issue 17): each test makes its own lab, whose veth carries
// fd00:2::21 (client) and fd00:2::20 (server) beside the IPv4 addresses,
// and runs kernel peers (curl -6, Go net, python3 -m http.server) in it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// serverAddr6 is "[fd00:2::20]:port".
func (e *e2eLab) serverAddr6(port int) string {
	return net.JoinHostPort(e.ServerIP6().String(), fmt.Sprint(port))
}

// hostsFile gives namespace ns an /etc/hosts of its own (`ip netns exec`
// bind-mounts /etc/netns/NS/hosts over /etc/hosts), removed at cleanup:
// how a test makes a name resolve to AAAA records without a DNS server.
func hostsFile(t *testing.T, ns, content string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tsharkPcapCheck has tshark read an IPv6 --pcap file of a session
// between tcpcraft at local and a kernel peer, with checksum validation
// on, and reports every frame that is malformed, not TCP over IPv6, has a
// bad checksum (tcpcraft's own must be right; the peer's may be the
// pseudo-header sum the kernel leaves for offload, which pcap shows
// as-is) or carries a TCP analysis flag (retransmission, out of order,
// dup ACK, zero window, ...: a clean session has none). It returns the
// number of frames each way.
func tsharkPcapCheck(t *testing.T, file string, local netip.Addr, port int) (out, in int) {
	t.Helper()
	labtest.RequireTools(t, "tshark")
	res, err := exec.Command("tshark", "-r", file, "-n",
		"--disable-protocol", "ALL", "--enable-protocol", "frame,raw,ipv6,tcp",
		"-d", fmt.Sprintf("tcp.port==%d,data", port),
		"-o", "tcp.check_checksum:TRUE", "-o", "tcp.analyze_sequence_numbers:TRUE",
		"-T", "fields", "-E", "separator=|",
		"-e", "frame.number", "-e", "ipv6.src", "-e", "tcp.checksum.status", "-e", "_ws.malformed",
		"-e", "frame.protocols", "-e", "tcp.analysis.flags", "-e", "tcp.checksum",
		"-e", "tcp.analysis.keep_alive", "-e", "tcp.analysis.retransmission", "-e", "tcp.analysis.rto",
		"-e", "tcp.analysis.duplicate_ack", "-e", "tcp.analysis.keep_alive_ack",
	).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tshark: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("tshark: %v", err)
	}
	pkts := pcapPackets(t, file)
	lines := strings.Split(strings.TrimSpace(string(res)), "\n")
	if len(lines) != len(pkts) || len(pkts) == 0 {
		t.Fatalf("tshark sees %d frames, pcapgo %d", len(lines), len(pkts))
	}
	probeSeen, afterPeerRetrans, probeACKed := false, false, false
	for i, line := range lines {
		f := strings.Split(line, "|")
		if len(f) != 12 {
			t.Fatalf("tshark line %q: want 12 fields", line)
		}
		if f[3] != "" || !strings.HasPrefix(f[4], "raw:ipv6:tcp") {
			t.Errorf("frame %s is malformed or not TCP over IPv6: %q", f[0], line)
		}
		// One flag is tcpcraft's on purpose: its TIME-WAIT probe, an ACK
		// one below its next sequence number, which tshark calls a
		// keep-alive (it asks a peer that has closed for a RST).
		timeWaitProbe := f[7] != "" && f[1] == local.String() && !probeSeen
		// And the machine may be slow: a peer's segment sent again after
		// its retransmission timer (Linux's least RTO is 200 ms) because
		// tcpcraft's ACK came late on a busy machine, and tcpcraft's
		// duplicate ACK of that copy (RFC 9293 §3.10.7.4), are TCP doing
		// its job; a retransmission sooner than that, or any other flag,
		// is not.
		rto, _ := strconv.ParseFloat(f[9], 64)
		peerTimerRetrans := f[8] != "" && f[1] != local.String() && rto >= 0.2
		ourDupACK := f[10] != "" && f[1] == local.String() && afterPeerRetrans
		afterPeerRetrans = peerTimerRetrans || (afterPeerRetrans && f[1] != local.String())
		// A peer whose FIN crossed ours (both closed at once) is in
		// TIME-WAIT itself and answers the probe with an ACK, not a
		// reset; tshark calls it a keep-alive ACK. tcpcraft cannot tell
		// that from a peer in LAST-ACK that lost our ACK, and sends its
		// ACK again, which tshark calls a duplicate ACK.
		peerProbeACK := f[11] != "" && f[1] != local.String() && probeSeen
		ourACKAgain := f[10] != "" && f[1] == local.String() && probeACKed
		probeACKed = peerProbeACK
		switch {
		case f[5] != "" && timeWaitProbe:
			probeSeen = true
		case f[5] != "" && (peerProbeACK || ourACKAgain):
			t.Logf("frame %s: %q: the peer closed when we did and answered the TIME-WAIT probe from TIME-WAIT, or our ACK again", f[0], line)
		case f[5] != "" && (peerTimerRetrans || ourDupACK):
			t.Logf("frame %s: %q: a retransmission after the peer's timer (the machine was slow), or our ACK of it", f[0], line)
		case f[5] != "":
			t.Errorf("frame %s: TCP analysis flags %q", f[0], line)
			if out, err := exec.Command("tshark", "-r", file, "-n", "-o", "tcp.analyze_sequence_numbers:TRUE").Output(); err == nil {
				t.Logf("the capture:\n%s", out)
			}
		}
		ours := f[1] == local.String()
		if ours {
			out++
		} else {
			in++
		}
		switch {
		case f[2] == "1":
		case f[2] == "0" && !ours:
			var p craft.Packet
			if err := craft.ParsePacket(craft.LinkRaw, pkts[i], &p, craft.PacketOptions{RecognizePartial: true}); err != nil || p.TCPChecksum.State != craft.ChecksumPartial {
				t.Errorf("frame %s from the peer: checksum %s is neither right nor the offload's partial sum (%v)", f[0], f[6], err)
			}
		default:
			t.Errorf("frame %s (ours %v): TCP checksum status %q, want good", f[0], ours, f[2])
		}
	}
	return out, in
}

// listen on both families by default: curl -6 fetches a page from it over
// IPv6; the trace is in tcpdump's IPv6 notation; tshark reads the --pcap
// with good checksums and no analysis flag.
func TestIPv6ListenCurl(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "curl", "tshark")
	e := newListenLab(t)
	file := filepath.Join(t.TempDir(), "listen6.pcap")
	page := "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, IPv6!\n"
	p := e.startListen(t, strings.NewReader(page), "--pcap", file, "--time-wait", "100ms", ":8080")
	waitListening(t, p)
	if !strings.Contains(p.stderr.String(), "listening on *:8080 (every interface)") {
		t.Errorf("listen :8080 should say it listens on both families:\n%s", p.stderr.String())
	}
	out, err := e.Command(context.Background(), e.ClientNS, "curl", "-6", "-sS", "--max-time", "20", "http://[fd00:2::20]:8080/").CombinedOutput()
	if err != nil || string(out) != "hello, IPv6!\n" {
		t.Fatalf("curl -6: %v: %q", err, out)
	}
	r := p.wait(t)
	expectExit(t, r, 0)
	if !strings.Contains(r.stdout, "GET / HTTP/1.1") || !strings.Contains(r.stdout, "Host: [fd00:2::20]:8080") {
		t.Errorf("listen's stdout lacks curl's request:\n%s", r.stdout)
	}
	syn := regexp.MustCompile(`< fd00:2::21\.\d+ > fd00:2::20\.8080: Flags \[S\]`)
	synack := regexp.MustCompile(`> fd00:2::20\.8080 > fd00:2::21\.\d+: Flags \[S\.\]`)
	if !syn.MatchString(r.stderr) || !synack.MatchString(r.stderr) {
		t.Errorf("the trace does not show the handshake in tcpdump's IPv6 notation:\n%s", r.stderr)
	}
	o, i := tsharkPcapCheck(t, file, e.ServerIP6(), 8080)
	if o == 0 || i == 0 {
		t.Errorf("pcap: %d frames out, %d in; want both", o, i)
	}
	// The SYN-ACK advertises the IPv6 MSS of the veth's MTU (1500 - 60).
	for _, pkt := range pcapPackets(t, file) {
		var pp craft.Packet
		if craft.ParsePacket(craft.LinkRaw, pkt, &pp, craft.PacketOptions{RecognizePartial: true}) != nil {
			continue
		}
		if pp.Src() == e.ServerIP6() && pp.TCP.Flags.Has(craft.FlagSYN) {
			if got := synMSSOf(&pp.TCP); got != 1440 {
				t.Errorf("our SYN-ACK advertises MSS %d, want 1440", got)
			}
			if pp.IPv6.FlowLabel == 0 || pp.IPv6.HopLimit != 64 {
				t.Errorf("our SYN-ACK: flow label %#x hop limit %d; want a label, 64", pp.IPv6.FlowLabel, pp.IPv6.HopLimit)
			}
		}
	}
}

func synMSSOf(seg *craft.TCP) uint16 {
	for _, o := range seg.Options {
		if o.Kind == craft.OptMSS {
			return o.MSS
		}
	}
	return 0
}

// connect over IPv6 to a Go HTTP server and to python3 -m http.server
// --bind fd00:2::20; by a name with AAAA and A records, -6 takes the
// IPv6 address and -4 the IPv4 one; --ttl sets the hop limit.
func TestIPv6ConnectHTTP(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "python3", "ss")
	e := newE2ELab(t)
	file := randomBytes(t, 1<<20)
	// A Go server on both addresses, telling which one a request came to.
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Remote", r.RemoteAddr)
			w.Header().Set("Content-Length", strconv.Itoa(len(file)))
			_, _ = w.Write(file)
		}),
		ReadHeaderTimeout: peerTimeout,
	}
	t.Cleanup(func() { srv.Close() })
	for _, addr := range []string{e.serverAddr6(80), e.serverAddr(80)} {
		ln, err := e.Listen(e.ServerNS, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
	}
	hostsFile(t, e.ClientNS, "fd00:2::20 server.lab\n10.0.2.20 server.lab\n")

	for _, tc := range []struct {
		args   []string
		remote string // the client address the server saw
	}{
		{[]string{e.serverAddr6(80)}, "[fd00:2::21]:"},
		{[]string{"-6", "server.lab:80"}, "[fd00:2::21]:"},
		{[]string{"--ipv4", "server.lab:80"}, "10.0.2.21:"},
		{[]string{"--ipv6", "--ttl", "9", "server.lab:80"}, "[fd00:2::21]:"},
	} {
		args := append([]string{"connect", "--time-wait", "100ms"}, tc.args...)
		r := e.tcpcraft(t, strings.NewReader("GET /file HTTP/1.0\r\n\r\n"), args...)
		expectExit(t, r, 0)
		status, body := httpBody(t, r.stdout)
		if status != http.StatusOK || !bytes.Equal(body, file) {
			t.Fatalf("%q: HTTP %d, %d bytes (want the %d of the file)", tc.args, status, len(body), len(file))
		}
		if !strings.Contains(r.stdout, "X-Remote: "+tc.remote) {
			t.Errorf("%q: the server saw another client address than %s*:\n%s", tc.args, tc.remote, tail(r.stdout[:min(len(r.stdout), 400)], 400))
		}
		if tc.remote[0] == '[' && !regexp.MustCompile(`> fd00:2::21\.\d+ > fd00:2::20\.80: Flags \[S\]`).MatchString(r.stderr) {
			t.Errorf("%q: no IPv6 SYN in tcpdump's notation in the trace:\n%s", tc.args, tail(r.stderr, 2000))
		}
	}

	// --json: every line an object; segments name their addresses as
	// strings, the IPv6 ones as such.
	r := e.tcpcraft(t, strings.NewReader("GET /file HTTP/1.0\r\n\r\n"), "connect", "--json", "--time-wait", "100ms", e.serverAddr6(80))
	expectExit(t, r, 0)
	segs := 0
	for i, line := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		var obj struct {
			Type      string `json:"type"`
			Dir       string `json:"dir"`
			Src       string `json:"src"`
			Dst       string `json:"dst"`
			Local     string `json:"local"`
			Remote    string `json:"remote"`
			IPVersion int    `json:"ip_version"`
		}
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("--json line %d: %v: %s", i+1, err, line)
		}
		if obj.Type != "segment" {
			continue
		}
		segs++
		want := map[string][2]string{"out": {"fd00:2::21", "fd00:2::20"}, "in": {"fd00:2::20", "fd00:2::21"}}[obj.Dir]
		if obj.Src != want[0] || obj.Dst != want[1] {
			t.Errorf("--json segment %q: src %q dst %q", line, obj.Src, obj.Dst)
		}
	}
	if segs < 6 {
		t.Errorf("--json: %d segments:\n%s", segs, tail(r.stderr, 2000))
	}

	// python3 -m http.server bound to the IPv6 address only.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file.bin"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	labtest.Start(t, e.Lab, e.ServerNS, "python3", "-m", "http.server", "--bind", "fd00:2::20", "--directory", dir, "8000")
	waitUntil(t, 20*time.Second, "python3 -m http.server to listen on [fd00:2::20]:8000", func() bool {
		out, _ := e.Command(context.Background(), e.ServerNS, "ss", "-Hltn", "sport = :8000").Output()
		return strings.Contains(string(out), "[fd00:2::20]:8000")
	})
	r = e.tcpcraft(t, strings.NewReader("GET /file.bin HTTP/1.0\r\n\r\n"), "connect", "-q", "--time-wait", "100ms", e.serverAddr6(8000))
	expectExit(t, r, 0)
	if status, body := httpBody(t, r.stdout); status != http.StatusOK || !bytes.Equal(body, file) {
		t.Fatalf("python3 over IPv6: HTTP %d, %d bytes", status, len(body))
	}
}

// 64 concurrent IPv6 clients (Go net) on one listener while IPv4 clients
// use it too, every echo intact; then SIGINT leaves no rule of either
// family.
func TestIPv6ListenManyClientsBothFamilies(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	p := e.startListen(t, nil, "-k", "--echo", "-q", "--time-wait", "100ms", ":7000")
	waitEchoing(t, e, p, 7000)
	const n6, n4 = 64, 16
	var wg sync.WaitGroup
	errs := make(chan error, n6+n4)
	start := make(chan struct{})
	for i := range n6 + n4 {
		addr := e.serverAddr6(7000)
		if i >= n6 {
			addr = e.serverAddr(7000)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := lab.Do(e.ClientNS, func() error {
				<-start
				conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
				if err != nil {
					return err
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
				want := local(conn) + strings.Repeat("x", 20000)
				return echoCheck(conn, []byte(want))
			})
			if err != nil {
				errs <- fmt.Errorf("client to %s: %w", addr, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	interruptListen(t, e, p)
}

// local is the local address of conn, as a string.
func local(conn net.Conn) string { return conn.LocalAddr().String() }

// listen [fd00:2::20]:PORT and -4 restrict the listener to one family:
// the other family's SYN meets the kernel (an RST: nothing listens
// there), not tcpcraft; -i IF :PORT keeps both families.
func TestIPv6ListenOneFamily(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	p6 := e.startListen(t, nil, "-k", "--echo", "--time-wait", "100ms", e.serverAddr6(7001))
	p4 := e.startListen(t, nil, "-k", "--echo", "-4", "--time-wait", "100ms", ":7002")
	pi := e.startListen(t, nil, "-k", "--echo", "-i", e.ServerIf, "--time-wait", "100ms", ":7003")
	waitListening(t, p6)
	waitListening(t, p4)
	waitListening(t, pi)
	if !strings.Contains(p4.stderr.String(), "listening on 0.0.0.0:7002") {
		t.Errorf("listen -4 :7002 should listen on 0.0.0.0:\n%s", p4.stderr.String())
	}
	dial := func(addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := e.Dial(ctx, e.ClientNS, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		return echoCheck(conn, []byte("ping"))
	}
	if err := dial(e.serverAddr6(7001)); err != nil {
		t.Errorf("IPv6 to the IPv6 listener: %v", err)
	}
	if err := dial(e.serverAddr(7002)); err != nil {
		t.Errorf("IPv4 to the IPv4 listener: %v", err)
	}
	if err := dial(e.serverAddr(7001)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("IPv4 to the IPv6-only listener: %v, want connection refused (by the kernel)", err)
	}
	if err := dial(e.serverAddr6(7002)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("IPv6 to the IPv4-only listener: %v, want connection refused (by the kernel)", err)
	}
	// -i with :PORT: both families, on that interface.
	for _, addr := range []string{e.serverAddr6(7003), e.serverAddr(7003)} {
		if err := dial(addr); err != nil {
			t.Errorf("%s, listen -i %s :7003: %v", addr, e.ServerIf, err)
		}
	}
	interruptListen(t, e, p6)
	interruptListen(t, e, p4)
	interruptListen(t, e, pi)
}

// connect over IPv6 killed with SIGKILL leaves no rule (the guard's
// table belongs to the process); one interrupted with SIGINT resets
// its peer and removes its rule.
func TestIPv6ConnectSignals(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	ln, err := e.Listen(e.ServerNS, "tcp", e.serverAddr6(7000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for _, sig := range []os.Signal{os.Kill, os.Interrupt} {
		stdin, keep := openStdin(t)
		p := e.startTcpcraft(t, stdin, "connect", e.serverAddr6(7000))
		stdin.Close()
		var peer net.Conn
		select {
		case peer = <-accepted:
		case <-p.done:
			t.Fatalf("tcpcraft ended before the peer accepted: %v", p.wait(t))
		case <-time.After(20 * time.Second):
			t.Fatal("the peer never accepted tcpcraft's connection")
		}
		waitUntil(t, 10*time.Second, "the guard to be in place", func() bool { return len(guardsOf(t, e, e.ClientNS, p.res.pid)) > 0 })
		if guards := guardsOf(t, e, e.ClientNS, p.res.pid); !strings.Contains(strings.Join(guards, "\n"), "[fd00:2::21]:") {
			t.Errorf("the guard of an IPv6 run does not name fd00:2::21: %q", guards)
		}
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		r := p.wait(t)
		keep.Close()
		if guards := guardsOf(t, e, e.ClientNS, r.pid); len(guards) > 0 {
			t.Errorf("after %v the guard of pid %d is still there: %q", sig, r.pid, guards)
		}
		assertRootUntouched(t, r.pid)
		if sig == os.Interrupt {
			expectExit(t, r, 130)
			_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, peer); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("after SIGINT the peer read %v, want a reset", err)
			}
		}
		peer.Close()
	}
	r := e.tcpcraft(t, nil, "cleanup", "--netns", e.ClientNS)
	expectExit(t, r, 0)
	if rules := guardRules(t, e, e.ClientNS); len(rules) > 0 {
		t.Errorf("rules after cleanup: %q", rules)
	}
}

// 2 MB each way, through connect and through listen, under 5% random loss
// of IPv6 TCP segments (ip6tables -m statistic) in the kernel peer's
// namespace: every byte intact.
func TestIPv6LossTransfers(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "ip6tables", "ethtool")
	data := randomBytes(t, 2<<20)
	type lossCase struct {
		mode string
		e    *e2eLab
		ns   string // the kernel peer's, where the drops are
		out  lossOutcome
	}
	var cases []*lossCase
	for _, mode := range lossModes {
		e := newE2ELab(t)
		kernelNS := e.ServerNS
		if strings.HasPrefix(mode, "listen") {
			kernelNS = e.ClientNS
			t.Cleanup(func() {
				if rules := guardRules(t, e, e.ServerNS); len(rules) > 0 {
					t.Errorf("firewall rules of tcpcraft left in %s:\n%s", e.ServerNS, strings.Join(rules, "\n"))
				}
			})
		}
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			labtest.Run(t, e.Lab, kernelNS, "ip6tables", "-A", chain, "-p", "tcp", "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP")
		}
		segmentsOnTheWire(t, e)
		cases = append(cases, &lossCase{mode: mode, e: e, ns: kernelNS})
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.out = lossTransferAddr(c.e, c.mode, c.e.serverAddr6(9000), 9000, data)
		}()
	}
	wg.Wait()
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			a := c.out.account
			t.Logf("%v; tcpcraft: %d segments sent, %d retransmitted; kernel RetransSegs %d", c.out.elapsed.Round(time.Millisecond), a.segsSent, a.retransmitted, c.out.kernelRetrans)
			if c.out.err != nil {
				t.Fatal(c.out.err)
			}
			dropped := ip6tablesDropped(t, c.e, c.ns)
			t.Logf("ip6tables dropped %d segments", dropped)
			// The drops prove the loss was in the path. Retransmissions
			// are logged, not required: a segment the kernel's own
			// OUTPUT rule drops is sent again without counting as a
			// retransmission (the send failed), and a dropped ACK needs
			// none, so a kernel client sending to listen may show none.
			if dropped == 0 {
				t.Errorf("ip6tables dropped no segment: the loss was not in the path")
			}
			if c.mode == "connect-up" || c.mode == "listen-up" {
				if a.retransmitted == 0 {
					t.Errorf("tcpcraft sent and ip6tables dropped %d segments, yet tcpcraft retransmitted none", dropped)
				}
			}
		})
	}
}

// ip6tablesDropped is how many packets the DROP rules of INPUT and OUTPUT
// in ns dropped (ip6tables -L -v -x: the first column).
func ip6tablesDropped(t *testing.T, e *e2eLab, ns string) int64 {
	t.Helper()
	var n int64
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		out := labtest.Run(t, e.Lab, ns, "ip6tables", "-L", chain, "-v", "-x", "-n")
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 2 && f[2] == "DROP" {
				v, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					t.Fatalf("ip6tables -L %s: %q", chain, line)
				}
				n += v
			}
		}
	}
	return n
}

// SYN cookies over IPv6: with --syncookies always every SYN is answered
// with a cookie; kernel clients of both families still connect and move
// data (the cookie names an MSS of its family's table), each cookie
// SYN-ACK advertises the MSS of its family, and the trace counts them.
func TestIPv6ListenSYNCookies(t *testing.T) {
	t.Parallel()
	e := newListenLab(t)
	file := filepath.Join(t.TempDir(), "cookies.pcap")
	p := e.startListen(t, nil, "-k", "--echo", "--syncookies", "always", "--pcap", file, "--time-wait", "100ms", ":7005")
	waitListening(t, p)
	for _, addr := range []string{e.serverAddr6(7005), e.serverAddr(7005)} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := e.Dial(ctx, e.ClientNS, "tcp", addr)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if err := echoCheck(conn, []byte(strings.Repeat("cookie ", 1000))); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
		conn.Close()
	}
	r := interruptListen(t, e, p)
	if !strings.Contains(r.stderr, "2 answered with SYN cookies, 2 cookies came back") {
		t.Errorf("the trace does not count two cookies:\n%s", tail(r.stderr, 2000))
	}
	// The cookie SYN-ACKs: IPv6's advertises 1440, IPv4's 1460.
	got := map[int]uint16{}
	for _, pkt := range pcapPackets(t, file) {
		var pp craft.Packet
		if craft.ParsePacket(craft.LinkRaw, pkt, &pp, craft.PacketOptions{RecognizePartial: true}) == nil && pp.TCP.Flags == craft.FlagSYN|craft.FlagACK {
			got[int(pp.IPVersion)] = synMSSOf(&pp.TCP)
		}
	}
	if got[6] != 1440 || got[4] != 1460 {
		t.Errorf("cookie SYN-ACKs advertise MSS %v, want 1440 (IPv6) and 1460 (IPv4)", got)
	}
}
