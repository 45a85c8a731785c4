package cmd

// End-to-end tests of `tcpcraft send` as a prober (package prober):
// scans whose verdicts are compared with the ground truth the test set up
// in the server namespace (kernel listeners, DROP, REJECT with
// icmp-port-unreachable and icmp-admin-prohibited), with nmap's as a
// reference; floods counted by an nft counter in the server namespace;
// traceroute and ICMP through a routed lab of three namespaces; IP header
// fields read back from --pcap through `decode --json`.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// jsonObj is one line of `send --json` output (the fields the tests read).
type jsonObj struct {
	Type      string `json:"type"`
	Addr      string `json:"addr"`
	Port      int    `json:"port"`
	State     string `json:"state"`
	Reason    string `json:"reason"`
	RTTus     *int64 `json:"rtt_us"`
	From      string `json:"from"`
	Probes    int    `json:"probes"`
	TTL       int    `json:"ttl"`
	Final     bool   `json:"final"`
	ICMP      string `json:"icmp"`
	Target    string `json:"target"`
	Probe     int    `json:"probe"`
	Name      string `json:"name"`
	Flags     string `json:"flags"`
	DPort     int    `json:"dport"`
	Sent      int    `json:"sent"`
	Received  int    `json:"received"`
	Resets    int    `json:"resets"`
	RingDrops int    `json:"ring_drops"`
	SendDrops int    `json:"send_drops"`
	Open      int    `json:"open"`
	Closed    int    `json:"closed"`
	Filtered  int    `json:"filtered"`
	SportLow  int    `json:"sport_low"`
	SportHigh int    `json:"sport_high"`
	Quote     struct {
		SPort int    `json:"sport"`
		DPort int    `json:"dport"`
		Dst   string `json:"dst"`
	} `json:"quote"`
}

// jsonLines parses every line of out, failing on one that is not JSON.
func jsonLines(t *testing.T, out string) []jsonObj {
	t.Helper()
	var objs []jsonObj
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var o jsonObj
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		objs = append(objs, o)
	}
	return objs
}

// ports returns the "port" objects by "addr:port" (netip form).
func portVerdicts(objs []jsonObj) map[string]jsonObj {
	m := map[string]jsonObj{}
	for _, o := range objs {
		if o.Type == "port" {
			m[netip.AddrPortFrom(netip.MustParseAddr(o.Addr), uint16(o.Port)).String()] = o
		}
	}
	return m
}

func summaryOf(t *testing.T, objs []jsonObj) jsonObj {
	t.Helper()
	for _, o := range objs {
		if o.Type == "summary" {
			return o
		}
	}
	t.Fatal("no summary object")
	return jsonObj{}
}

// addServerIPv6 checks that the lab has fd00:2::21 and fd00:2::20, as
// every lab has.
func addServerIPv6(t *testing.T, e *e2eLab) {
	t.Helper()
	if e.ClientIP6().String() != "fd00:2::21" || e.ServerIP6().String() != "fd00:2::20" {
		t.Fatalf("lab IPv6 addresses %v and %v, want fd00:2::21 and fd00:2::20", e.ClientIP6(), e.ServerIP6())
	}
}

// groundTruth sets up ports in the server namespace: kernel listeners on
// open, DROP on dropped, REJECT with port-unreachable and
// admin-prohibited, for IPv4 (iptables) and IPv6 (ip6tables), and
// returns the state and reason each port must get.
func groundTruth(t *testing.T, e *e2eLab, open, dropped, portUnreach, adminProhib []int) map[int][2]string {
	t.Helper()
	want := map[int][2]string{}
	for _, p := range open {
		ln := labtest.Listen(t, e.Lab, e.ServerNS, fmt.Sprintf("[::]:%d", p)) // both families
		_ = ln
		want[p] = [2]string{"open", "syn-ack"}
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, p := range dropped {
			labtest.Run(t, e.Lab, e.ServerNS, tool, "-w", "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(p), "-j", "DROP")
			want[p] = [2]string{"filtered", "no-response"}
		}
		for _, p := range portUnreach {
			with := "icmp-port-unreachable"
			if tool == "ip6tables" {
				with = "icmp6-port-unreachable"
			}
			labtest.Run(t, e.Lab, e.ServerNS, tool, "-w", "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(p), "-j", "REJECT", "--reject-with", with)
			want[p] = [2]string{"filtered", "icmp-unreach-port-unreachable"}
		}
		for _, p := range adminProhib {
			with := "icmp-admin-prohibited"
			if tool == "ip6tables" {
				with = "icmp6-adm-prohibited"
			}
			labtest.Run(t, e.Lab, e.ServerNS, tool, "-w", "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(p), "-j", "REJECT", "--reject-with", with)
			want[p] = [2]string{"filtered", "icmp-unreach-admin-prohibited"}
		}
	}
	return want
}

// TestSendScanVerdicts: one run scans ports of both families, and each
// port's verdict and reason are the ground truth's: listeners open
// (syn-ack), the rest closed (rst), DROP filtered (no-response, after one
// retransmission), REJECT filtered with the ICMP code's name, the error
// matched to its probe by the quote. nmap -sS, run on the same ports in the
// same lab, agrees on every IPv4 port. Every SYN-ACK is reset: the server
// holds nothing half-open. The table of the text output shows the same.
func TestSendScanVerdicts(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "nmap", "ip6tables")
	e := newE2ELab(t)
	addServerIPv6(t, e)
	want := groundTruth(t, e, []int{8091, 8095}, []int{8092}, []int{8093}, []int{8094})
	r := e.tcpcraft(t, nil, "send", "10.0.2.20:8090-8099", "[fd00:2::20]:8090-8099", "--json", "--rate", "2000")
	expectExit(t, r, 0)
	objs := jsonLines(t, r.stdout)
	got := portVerdicts(objs)
	if len(got) != 20 {
		t.Fatalf("%d port objects, want 20:\n%s", len(got), r.stdout)
	}
	for _, host := range []string{"10.0.2.20", "fd00:2::20"} {
		for p := 8090; p <= 8099; p++ {
			key := netip.AddrPortFrom(netip.MustParseAddr(host), uint16(p)).String()
			w, ok := want[p]
			if !ok {
				w = [2]string{"closed", "rst"}
			}
			o := got[key]
			if o.State != w[0] || o.Reason != w[1] {
				t.Errorf("%s: %s (%s), want %s (%s)", key, o.State, o.Reason, w[0], w[1])
			}
			if (o.RTTus == nil) != (w[1] == "no-response") || (o.RTTus != nil && *o.RTTus <= 0) {
				t.Errorf("%s: rtt_us %v", key, o.RTTus)
			}
			if wantProbes := map[bool]int{true: 2, false: 1}[w[1] == "no-response"]; o.Probes != wantProbes {
				t.Errorf("%s: %d probes, want %d (one retransmission when nothing answers)", key, o.Probes, wantProbes)
			}
			if strings.HasPrefix(w[1], "icmp") && o.From != host {
				t.Errorf("%s: ICMP from %q, want the server", key, o.From)
			}
		}
	}
	s := summaryOf(t, objs)
	if s.Open != 4 || s.Filtered != 6 || s.Closed != 10 || s.Resets != 4 || s.RingDrops != 0 {
		t.Errorf("summary %+v", s)
	}
	waitUntil(t, 5*time.Second, "no half-open connection left on the server", func() bool {
		return halfOpen(t, e, "8091") == 0 && halfOpen(t, e, "8095") == 0
	})

	// nmap's verdicts on the same IPv4 ports, from the same namespace.
	ctx := t.Context()
	out, err := e.Command(ctx, e.ClientNS, "nmap", "-sS", "-Pn", "-n", "-p", "8090-8099", "--max-retries", "1", "-oG", "-", "10.0.2.20").Output()
	if err != nil {
		t.Fatalf("nmap: %v", err)
	}
	for p := 8090; p <= 8099; p++ {
		w, ok := want[p]
		if !ok {
			w = [2]string{"closed", "rst"}
		}
		if !strings.Contains(string(out), fmt.Sprintf("%d/%s/tcp", p, w[0])) {
			t.Errorf("nmap disagrees on port %d (want %s):\n%s", p, w[0], out)
		}
	}

	// The text form: a table of the same verdicts, ICMP reporters, the
	// summary.
	r = e.tcpcraft(t, nil, "send", "10.0.2.20:8090-8099", "--rate", "2000")
	expectExit(t, r, 0)
	for _, line := range []string{
		`10\.0\.2\.20:8091 +open +syn-ack +[0-9.]+ ms`,
		`10\.0\.2\.20:8092 +filtered +no-response +-`,
		`10\.0\.2\.20:8094 +filtered +icmp-unreach-admin-prohibited +[0-9.]+ ms`,
		`10\.0\.2\.20:8090 +closed +rst`,
		`10 targets: 2 open, 5 closed, 3 filtered; 11 probes \(1 retransmitted\)`,
	} {
		if !regexpMatch(line, r.stdout) {
			t.Errorf("text output lacks %s:\n%s", line, r.stdout)
		}
	}
}

// TestSendScanAllPorts: a SYN scan of all 65535 ports of the server at
// 20,000 probes a second is exact: every port a kernel listener holds is
// open, the DROP and REJECT ports filtered with their reasons, every other
// port closed; no frame lost in the ring, none left half-open.
func TestSendScanAllPorts(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	want := groundTruth(t, e, []int{22, 8080, 40001, 65535}, []int{1, 9, 30000}, []int{1000}, []int{50000})
	// The server's own listening ports, as the kernel reports them.
	for _, f := range strings.Fields(labtest.Run(t, e.Lab, e.ServerNS, "ss", "-Htln")) {
		if i := strings.LastIndex(f, ":"); i > 0 && strings.Count(f, ".")+strings.Count(f, ":") > 1 {
			if p, err := strconv.Atoi(f[i+1:]); err == nil && p > 0 {
				if _, ok := want[p]; !ok {
					want[p] = [2]string{"open", "syn-ack"}
				}
			}
		}
	}
	start := time.Now()
	r := e.tcpcraft(t, nil, "send", "10.0.2.20:1-65535", "--rate", "20000", "--json")
	elapsed := time.Since(start)
	expectExit(t, r, 0)
	objs := jsonLines(t, r.stdout)
	got := portVerdicts(objs)
	if len(got) != 65535 {
		t.Fatalf("%d port objects, want 65535", len(got))
	}
	wrong := 0
	for p := 1; p <= 65535; p++ {
		w, ok := want[p]
		if !ok {
			w = [2]string{"closed", "rst"}
		}
		o := got[fmt.Sprintf("10.0.2.20:%d", p)]
		if o.State != w[0] || o.Reason != w[1] {
			if wrong++; wrong <= 10 {
				t.Errorf("port %d: %s (%s), want %s (%s)", p, o.State, o.Reason, w[0], w[1])
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of 65535 verdicts wrong", wrong)
	}
	s := summaryOf(t, objs)
	t.Logf("65535 ports in %v (run %.3f s): %+v", elapsed.Round(time.Millisecond), float64(s.Sent)/20000, s)
	if s.RingDrops != 0 || s.SendDrops != 0 {
		t.Errorf("drops: ring %d, send %d", s.RingDrops, s.SendDrops)
	}
	waitUntil(t, 5*time.Second, "no half-open connection left on the server", func() bool { return halfOpen(t, e, "8080") == 0 })
}

// synCounter adds an nft counter of pure SYNs to port in the server
// namespace's input and returns a function reading it.
func synCounter(t *testing.T, e *e2eLab, port int) func() int {
	t.Helper()
	table := fmt.Sprintf("syncount%d", port)
	labtest.Run(t, e.Lab, e.ServerNS, "nft", fmt.Sprintf("add table inet %s { chain in { type filter hook input priority -10; tcp dport %d tcp flags & (syn|ack|rst) == syn counter; }; }", table, port))
	return func() int {
		out := labtest.Run(t, e.Lab, e.ServerNS, "nft", "list", "table", "inet", table)
		i := strings.Index(out, "counter packets ")
		if i < 0 {
			t.Fatalf("no counter in %s", out)
		}
		n, _ := strconv.Atoi(strings.Fields(out[i+len("counter packets "):])[0])
		return n
	}
}

// TestSendFlood: --flood -c N sends N SYNs as fast as it goes, all of them
// reach the server (its nft counter says so), every answer is read: N
// RSTs from a closed port; from an open port N SYN-ACKs, each answered
// with our RST, none left half-open. No line per probe is shown.
func TestSendFlood(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8200)
	const n = 20000
	for _, c := range []struct {
		port  int
		state string
	}{{8201, "closed"}, {8200, "open"}} {
		count := synCounter(t, e, c.port)
		r := e.tcpcraft(t, nil, "send", e.serverAddr(c.port), "--flood", "-c", strconv.Itoa(n), "--json")
		expectExit(t, r, 0)
		objs := jsonLines(t, r.stdout)
		if len(objs) != 2 {
			t.Errorf("port %d: a flood shows its verdict and summary only, got %d lines", c.port, len(objs))
		}
		s := summaryOf(t, objs)
		v := portVerdicts(objs)[e.serverAddr(c.port)]
		if s.Sent != n || s.Received != n || v.State != c.state {
			t.Errorf("port %d: sent %d, answered %d, state %s; want %d, %d, %s", c.port, s.Sent, s.Received, v.State, n, n, c.state)
		}
		if got := count(); got != n {
			t.Errorf("port %d: the server counted %d SYNs, want %d", c.port, got, n)
		}
		if wantResets := map[string]int{"open": n, "closed": 0}[c.state]; s.Resets != wantResets {
			t.Errorf("port %d: %d resets sent, want %d", c.port, s.Resets, wantResets)
		}
		if s.RingDrops != 0 {
			t.Errorf("port %d: %d frames lost in the ring", c.port, s.RingDrops)
		}
	}
	waitUntil(t, 5*time.Second, "no half-open connection left on the server", func() bool { return halfOpen(t, e, "8200") == 0 })
}

// TestSendFloodInterrupted: Ctrl-C ends a flood to an open port (-c 0)
// with exit 130 after the statistics; no guard is left and no connection
// half-open on the server.
func TestSendFloodInterrupted(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8210)
	syns := synCounter(t, e, 8210)
	for i := range 3 {
		cmd := exec.Command(e.bin, "send", e.serverAddr(8210), "--flood", "-c", "0")
		var out strings.Builder
		cmd.Stdout = &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := lab.Do(e.ClientNS, cmd.Start); err != nil {
			t.Fatal(err)
		}
		pgid := cmd.Process.Pid
		t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }) // if the test stops early
		// Interrupted once the flood is under way (the server has counted
		// its SYNs), at a different moment each run; how long start-up
		// takes measures the machine, so it is waited for, not assumed.
		before := syns()
		waitUntil(t, 30*time.Second, "the flood reaching the server", func() bool { return syns() > before })
		time.Sleep(time.Duration(100*i) * time.Millisecond)
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("the flood did not end within 30 s of SIGINT")
		}
		if code := cmd.ProcessState.ExitCode(); code != codeInterrupted {
			t.Errorf("run %d: exit %d, want 130", i, code)
		}
		if !regexpMatch(`10\.0\.2\.20:8210 +open +syn-ack`, out.String()) || !strings.Contains(out.String(), "resets sent") {
			t.Errorf("run %d: no verdict or statistics after Ctrl-C:\n%s", i, out.String())
		}
		if rules := guardsOf(t, e, e.ClientNS, cmd.Process.Pid); len(rules) > 0 {
			t.Fatalf("run %d: guard left behind: %q", i, rules)
		}
	}
	waitUntil(t, 5*time.Second, "no half-open connection left on the server", func() bool { return halfOpen(t, e, "8210") == 0 })
}

// TestSendTracerouteAndICMP, through client — router — server: a TCP
// traceroute finds the router at TTL 1 (time exceeded) and the server at
// TTL 2 with its verdict, for IPv4 and IPv6; a single probe with --ttl 1
// draws the router's time-exceeded, shown with the probe it quotes (exit
// 1: the target did not answer); a REJECT in the router's forwarding path
// makes the port filtered with the router as the reporter.
func TestSendTracerouteAndICMP(t *testing.T) {
	t.Parallel()
	rl := newRoutedLab(t)
	labtest.Listen(t, rl.Lab, rl.ServerNS, "[::]:80")
	// The routes and neighbours of a fresh lab settle in the first second
	// (IPv6 neighbour discovery on new links): kernel connections through
	// the router first, so that the traceroute meets a settled path.
	for _, addr := range []string{"10.9.2.20:80", "[fd00:9:2::20]:80"} {
		waitUntil(t, 10*time.Second, "a kernel connection to "+addr, func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			c, err := rl.Dial(ctx, rl.ClientNS, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	for _, c := range []struct {
		target, router, server string
	}{
		{"10.9.2.20:80", "10.0.2.1", "10.9.2.20"},
		{"[fd00:9:2::20]:80", "fd00:2::1", "fd00:9:2::20"},
	} {
		r := rl.tcpcraft(t, nil, "send", c.target, "--traceroute", "--json")
		expectExit(t, r, 0)
		var hops []jsonObj
		for _, o := range jsonLines(t, r.stdout) {
			if o.Type == "hop" {
				hops = append(hops, o)
			}
		}
		if len(hops) != 2 || hops[0].TTL != 1 || hops[0].Addr != c.router || hops[0].ICMP == "" || hops[0].RTTus == nil ||
			hops[1].TTL != 2 || hops[1].Addr != c.server || !hops[1].Final || hops[1].State != "open" || hops[1].Reason != "syn-ack" {
			t.Errorf("%s: hops %+v\n%s", c.target, hops, r.stdout)
		}
		if !strings.Contains(hops[0].ICMP, "exceeded") {
			t.Errorf("%s: hop 1 says %q, want a time-exceeded name", c.target, hops[0].ICMP)
		}
		// The text form.
		r = rl.tcpcraft(t, nil, "send", c.target, "--traceroute", "--max-ttl", "5")
		expectExit(t, r, 0)
		if !regexpMatch(` 1  `+regexpQuote(c.router)+`  [0-9.]+ ms  (ttl|hop-limit)-exceeded\n 2  `+regexpQuote(c.server)+`  [0-9.]+ ms  open \(syn-ack\)`, r.stdout) {
			t.Errorf("%s: traceroute text:\n%s", c.target, r.stdout)
		}
	}

	// One probe with TTL 1: the router's answer, matched to the probe.
	r := rl.tcpcraft(t, nil, "send", "10.9.2.20:80", "--ttl", "1", "--json", "--retries", "0", "--wait", "0.5")
	expectExit(t, r, 1)
	var icmp *jsonObj
	objs := jsonLines(t, r.stdout)
	for i := range objs {
		if objs[i].Type == "icmp" {
			icmp = &objs[i]
		}
	}
	if icmp == nil || icmp.Name != "ttl-exceeded" || icmp.Target != "10.9.2.20:80" || icmp.Probe != 1 || icmp.Quote.DPort != 80 || icmp.RTTus == nil {
		t.Fatalf("want the router's ttl-exceeded about probe 1 to 10.9.2.20:80:\n%s", r.stdout)
	}
	r = rl.tcpcraft(t, nil, "send", "10.9.2.20:80", "--ttl", "1", "--retries", "0", "--wait", "0.5")
	if r.code != 1 || !strings.Contains(r.stdout, "10.0.2.1 > 10.0.2.21: ICMP time exceeded in-transit") || !strings.Contains(r.stderr, "icmp-ttl-exceeded from 10.0.2.1") {
		t.Errorf("--ttl 1 in text: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}

	// The router's firewall rejects one port for the server.
	labtest.Run(t, rl.Lab, rl.RouterNS, "iptables", "-w", "-A", "FORWARD", "-p", "tcp", "--dport", "81", "-j", "REJECT", "--reject-with", "icmp-admin-prohibited")
	r = rl.tcpcraft(t, nil, "send", "10.9.2.20:80-82", "--json")
	expectExit(t, r, 0)
	v := portVerdicts(jsonLines(t, r.stdout))
	if o := v["10.9.2.20:81"]; o.State != "filtered" || o.Reason != "icmp-unreach-admin-prohibited" || o.From != "10.0.2.1" {
		t.Errorf("port 81 behind the router's REJECT: %+v", o)
	}
	if v["10.9.2.20:80"].State != "open" || v["10.9.2.20:82"].State != "closed" {
		t.Errorf("ports 80 and 82: %+v %+v", v["10.9.2.20:80"], v["10.9.2.20:82"])
	}
}

// decodedFirst returns the first packet of a pcap as `decode --json` shows
// it (the fields the tests read).
type decodedPacket struct {
	IPVersion  int    `json:"ip_version"`
	TTL        int    `json:"ttl"`
	IPID       *int   `json:"ip_id"`
	TOS        *int   `json:"tos"`
	TC         *int   `json:"traffic_class"`
	DF         bool   `json:"df"`
	MF         bool   `json:"mf"`
	FragOffset int    `json:"frag_offset"`
	SPort      int    `json:"sport"`
	Flags      string `json:"flags"`
	IPChecksum *struct {
		Status string `json:"status"`
	} `json:"ip_checksum"`
	TCPChecksum struct {
		Status string `json:"status"`
	} `json:"tcp_checksum"`
}

func decodePcap(t *testing.T, e *e2eLab, path string) []decodedPacket {
	t.Helper()
	r := runApp(t, t.Context(), "decode", path, "--json")
	var pkts []decodedPacket
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var p decodedPacket
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("decode --json line %q: %v", line, err)
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// TestSendIPHeaderFields: what --ttl, --ip-id, --dscp, --ecn, --tos,
// --no-df, --df, --mf and --frag-offset ask for is what went on the wire:
// read back from --pcap by `decode --json`, and shown by -v in the trace.
func TestSendIPHeaderFields(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8300)
	dir := t.TempDir()
	p1 := filepath.Join(dir, "a.pcap")
	r := e.tcpcraft(t, nil, "send", e.serverAddr(8300), "--ttl", "7", "--ip-id", "4242", "--dscp", "46", "--ecn", "ect0", "--no-df", "--pcap", p1, "-v")
	expectExit(t, r, 0)
	if !strings.Contains(r.stderr, "(tos 0xba,ECT(0), ttl 7, id 4242, offset 0, flags [none], proto TCP (6), length 40)") {
		t.Errorf("-v trace does not show the IP header asked for:\n%s", r.stderr)
	}
	pkts := decodePcap(t, e, p1)
	if p := pkts[0]; p.TTL != 7 || p.IPID == nil || *p.IPID != 4242 || p.TOS == nil || *p.TOS != 0xba || p.DF {
		t.Errorf("sent: ttl %d id %v tos %v df %v", p.TTL, p.IPID, p.TOS, p.DF)
	}
	if len(pkts) < 3 || pkts[1].Flags != "S." || pkts[2].Flags != "R" {
		t.Errorf("want the probe, the SYN-ACK and our RST in the pcap: %+v", pkts)
	}

	// --tos as a byte, --df explicitly, and a crafted fragment's fields:
	// the server's IP layer holds it for reassembly, so no answer.
	p2 := filepath.Join(dir, "b.pcap")
	r = e.tcpcraft(t, nil, "send", e.serverAddr(8300), "--tos", "0x10", "--df", "--mf", "--frag-offset", "16", "--pcap", p2, "--wait", "0.3", "--retries", "0")
	expectExit(t, r, 1)
	if !strings.Contains(r.stderr, "offset 16, flags [+, DF]") {
		t.Errorf("the trace does not show the fragment fields:\n%s", r.stderr)
	}
	// decode shows a fragment by its IP header.
	if d := runApp(t, t.Context(), "decode", p2); !strings.Contains(d.stdout, "(tos 0x10, ttl 64, id ") || !strings.Contains(d.stdout, "offset 16, flags [+, DF], proto TCP (6), length 40) 10.0.2.21 > 10.0.2.20: ip-proto-6") {
		t.Errorf("decode of the crafted fragment:\n%s%s", d.stdout, d.stderr)
	}
}

// TestSendFragments: --fragment cuts each probe into IP fragments (IPv4,
// and IPv6 with fragment headers); the server reassembles them and
// answers. IPv4 takes 8-byte fragments; Linux drops an IPv6 first fragment
// that does not hold the whole TCP header (RFC 7112 §5), so the IPv6 probe
// carries a payload and 32-byte fragments.
func TestSendFragments(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	addServerIPv6(t, e)
	labtest.Listen(t, e.Lab, e.ServerNS, "[::]:8310")
	for _, c := range []struct {
		target string
		args   []string
		frags  int
	}{
		// 24 bytes of TCP (header and MSS option): three fragments.
		{e.serverAddr(8310), []string{"--fragment", "8"}, 3},
		// 24 + 40 bytes: two fragments.
		{"[fd00:2::20]:8310", []string{"--fragment", "32", "--payload", strings.Repeat("x", 40)}, 2},
	} {
		r := e.tcpcraft(t, nil, append([]string{"send", c.target, "--opt", "mss=1460"}, c.args...)...)
		expectExit(t, r, 0)
		if !strings.Contains(r.stdout, "Flags [S.]") {
			t.Errorf("%s: no SYN-ACK to the fragmented SYN:\n%s\n%s", c.target, r.stdout, r.stderr)
		}
		if n := strings.Count(r.stderr, "\n> ") + 1; n != c.frags+1 {
			t.Errorf("%s: %d packets shown, want %d fragments and the RST:\n%s", c.target, n, c.frags, r.stderr)
		}
	}
}

// TestSendBadChecksums: a wrong TCP checksum is dropped by the server's
// TCP (no answer, exit 1) and a wrong IPv4 header checksum by its IP
// layer, which counts it; both go out as crafted (decode shows them bad).
func TestSendBadChecksums(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8320)
	before := snmpCounter(t, e, "Ip:", "InHdrErrors")
	for _, c := range []struct{ flag, layer string }{{"--bad-tcp-checksum", "tcp"}, {"--bad-ip-checksum", "ip"}} {
		pcap := filepath.Join(t.TempDir(), "c.pcap")
		r := e.tcpcraft(t, nil, "send", e.serverAddr(8320), c.flag, "--pcap", pcap, "--wait", "0.3", "--retries", "0")
		expectExit(t, r, 1)
		if !strings.Contains(r.stderr, "[bad "+c.layer+" cksum") {
			t.Errorf("%s: the trace does not show the bad checksum:\n%s", c.flag, r.stderr)
		}
		p := decodePcap(t, e, pcap)[0]
		status := p.TCPChecksum.Status
		if c.layer == "ip" {
			status = p.IPChecksum.Status
		}
		if status != "bad" {
			t.Errorf("%s: decode says the %s checksum is %q", c.flag, c.layer, status)
		}
	}
	if after := snmpCounter(t, e, "Ip:", "InHdrErrors"); after <= before {
		t.Errorf("the server counted no IP header error (%d -> %d)", before, after)
	}
}

// snmpCounter reads a counter of /proc/net/snmp in the server namespace.
func snmpCounter(t *testing.T, e *e2eLab, prefix, name string) int {
	t.Helper()
	var names, values []string
	for _, line := range strings.Split(labtest.Run(t, e.Lab, e.ServerNS, "cat", "/proc/net/snmp"), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			if names == nil {
				names = strings.Fields(rest)
			} else {
				values = strings.Fields(rest)
			}
		}
	}
	if i := slices.Index(names, name); i >= 0 && i < len(values) {
		n, _ := strconv.Atoi(values[i])
		return n
	}
	t.Fatalf("no %s %s in /proc/net/snmp", prefix, name)
	return 0
}

// TestSendSpoofedSource: --src with an address that is not the client's
// is refused without --force (exit 2, nothing installed); with --force the
// probes leave with that source (the server counts SYNs from it) and no
// answer is awaited (exit 1). --src with the client's own address is an
// ordinary run.
func TestSendSpoofedSource(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8330)
	r := e.tcpcraft(t, nil, "send", e.serverAddr(8330), "--src", "10.0.2.99")
	if r.code != 2 || !strings.Contains(r.stderr, "not an address of this host") {
		t.Errorf("spoofed without --force: exit %d, %s", r.code, r.stderr)
	}
	labtest.Run(t, e.Lab, e.ServerNS, "nft", "add table inet spoof { chain in { type filter hook input priority -10; ip saddr 10.0.2.99 tcp dport 8330 counter; }; }")
	r = e.tcpcraft(t, nil, "send", e.serverAddr(8330), "--src", "10.0.2.99", "--force", "-c", "3", "--interval", "0")
	expectExit(t, r, 1)
	if out := labtest.Run(t, e.Lab, e.ServerNS, "nft", "list", "table", "inet", "spoof"); !strings.Contains(out, "counter packets 3 ") {
		t.Errorf("the server did not count 3 SYNs from 10.0.2.99:\n%s", out)
	}
	if !strings.Contains(r.stderr, "> 10.0.2.99.") {
		t.Errorf("the trace does not show the spoofed source:\n%s", r.stderr)
	}
	r = e.tcpcraft(t, nil, "send", e.serverAddr(8330), "--src", "10.0.2.21")
	expectExit(t, r, 0)
}

// TestSendSourcePorts: by default each probe takes the next port of a
// block outside ip_local_port_range; --sport random takes random ones of
// the block; --sport N takes N every time. The answers come back to them.
func TestSendSourcePorts(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8340)
	ports := func(args ...string) ([]int, jsonObj) {
		t.Helper()
		r := e.tcpcraft(t, nil, append([]string{"send", e.serverAddr(8340), "-c", "8", "--interval", "0", "--json"}, args...)...)
		expectExit(t, r, 0)
		var ps []int
		objs := jsonLines(t, r.stdout)
		for _, o := range objs {
			if o.Type == "reply" {
				ps = append(ps, o.DPort)
			}
		}
		return ps, summaryOf(t, objs)
	}
	low, high := 32768, 60999 // a fresh namespace's ip_local_port_range
	seq, s := ports()
	if len(seq) != 8 || s.SportHigh-s.SportLow != 7 {
		t.Fatalf("default: ports %v, block %d-%d", seq, s.SportLow, s.SportHigh)
	}
	slices.Sort(seq)
	for i, p := range seq {
		if p != s.SportLow+i || (p >= low && p <= high) {
			t.Errorf("default: ports %v, want %d.. in a row outside %d-%d", seq, s.SportLow, low, high)
			break
		}
	}
	rnd, s := ports("--sport", "random")
	if len(rnd) != 8 || s.SportHigh-s.SportLow+1 != 1024 {
		t.Fatalf("random: ports %v, block %d-%d", rnd, s.SportLow, s.SportHigh)
	}
	for _, p := range rnd {
		if p < s.SportLow || p > s.SportHigh {
			t.Errorf("random: port %d outside the block %d-%d", p, s.SportLow, s.SportHigh)
		}
	}
	if slices.Equal(rnd, []int{s.SportLow, s.SportLow + 1, s.SportLow + 2, s.SportLow + 3, s.SportLow + 4, s.SportLow + 5, s.SportLow + 6, s.SportLow + 7}) {
		t.Errorf("random ports came in order: %v", rnd)
	}
	fixed, _ := ports("--sport", "4321", "-c", "1")
	if len(fixed) != 1 || fixed[0] != 4321 {
		t.Errorf("--sport 4321: %v", fixed)
	}
}

// TestSendNoReset: with --no-reset a SYN-ACK is left unanswered, so the
// server holds the connection half-open; once tcpcraft has gone, the
// client kernel answers the server's retransmitted SYN-ACK with RST and
// the entry goes.
func TestSendNoReset(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8350)
	r := e.tcpcraft(t, nil, "send", e.serverAddr(8350), "--no-reset")
	expectExit(t, r, 0)
	if strings.Contains(r.stderr, "clean-up") {
		t.Errorf("--no-reset sent a clean-up RST:\n%s", r.stderr)
	}
	if n := halfOpen(t, e, "8350"); n != 1 {
		t.Errorf("%d half-open connections right after the run, want 1", n)
	}
	waitUntil(t, 10*time.Second, "the server's half-open connection reset by the client kernel", func() bool { return halfOpen(t, e, "8350") == 0 })
}

// TestSendFINAndACKScans read silence and RSTs as nmap does: a FIN, NULL
// or Xmas probe draws RST from a closed port and nothing from an open one
// (open|filtered); an ACK probe draws RST from both (unfiltered) and
// nothing from a DROP port (filtered).
func TestSendFINAndACKScans(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8360)
	labtest.Iptables(t, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "8362", "-j", "DROP")
	for _, c := range []struct {
		flags string
		want  [3]string // 8360 open, 8361 closed, 8362 dropped
	}{
		{"F", [3]string{"open|filtered", "closed", "open|filtered"}},
		{"none", [3]string{"open|filtered", "closed", "open|filtered"}},
		{"FPU", [3]string{"open|filtered", "closed", "open|filtered"}},
		{"A", [3]string{"unfiltered", "unfiltered", "filtered"}},
	} {
		r := e.tcpcraft(t, nil, "send", "10.0.2.20:8360-8362", "--flags", c.flags, "--json", "--wait", "0.3")
		expectExit(t, r, 0)
		v := portVerdicts(jsonLines(t, r.stdout))
		for i, w := range c.want {
			if got := v[e.serverAddr(8360+i)].State; got != w {
				t.Errorf("--flags %s: port %d %s, want %s", c.flags, 8360+i, got, w)
			}
		}
	}
}

// TestSendUsageHints: a hping3 habit, -p for the destination port, gets a
// hint; targets that are not HOST:PORTS are usage errors found before
// anything changes (these run in no lab: nothing is sent).
func TestSendUsageHints(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"send", "-p", "80", "10.0.2.20"}, `(-p is the source port, as in nc; did you mean 10.0.2.20:80?)`},
		{[]string{"send", "10.0.2.20"}, `target "10.0.2.20": no port: want HOST:PORTS, e.g. 10.0.2.20:80`},
		{[]string{"send", "10.0.2.20:100-1"}, "runs backwards"},
		{[]string{"send", "fd00::1:80"}, "in brackets"},
		{[]string{"send"}, "want HOST:PORTS"},
		{[]string{"send", "10.0.2.20:80", "10.0.2.21:80", "--traceroute"}, "--traceroute takes one HOST:PORT"},
	} {
		r := runApp(t, t.Context(), c.args...)
		if r.code != codeUsage || !strings.Contains(r.stderr, c.says) {
			t.Errorf("%v: exit %d, %q; want exit 2 saying %q", c.args, r.code, r.stderr, c.says)
		}
	}
}

// regexpMatch reports whether the regular expression pattern matches s.
func regexpMatch(pattern, s string) bool {
	return regexp.MustCompile(pattern).MatchString(s)
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }

// Probes to loopback, both families, answered by the kernel of the
// client's own namespace: an open and a closed port each. (Over IPv4 the
// frames of the device sender were dropped as martians on lo: probes to
// 127.0.0.0/8 go through the raw socket.)
func TestSendLoopback(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	labtest.Listen(t, e.Lab, e.ClientNS, "127.0.0.1:8190")
	labtest.Listen(t, e.Lab, e.ClientNS, "[::1]:8190")
	r := e.tcpcraft(t, nil, "send", "127.0.0.1:8190-8191", "[::1]:8190-8191", "--json")
	expectExit(t, r, 0)
	got := portVerdicts(jsonLines(t, r.stdout))
	for _, host := range []string{"127.0.0.1", "::1"} {
		for p, want := range map[int]string{8190: "open", 8191: "closed"} {
			key := netip.AddrPortFrom(netip.MustParseAddr(host), uint16(p)).String()
			if o := got[key]; o.State != want {
				t.Errorf("%s: %q, want %q\n%s", key, o.State, want, r.stdout)
			}
		}
	}
}
