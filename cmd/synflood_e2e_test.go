package cmd

// A SYN flood against `tcpcraft listen -k --echo` and, in the same run and
// the same lab, against a kernel listener with the same backlog and
// net.ipv4.tcp_syncookies=1: `hping3 -S --flood` at full rate from the
// client namespace, from a second address of the client that never
// answers (its SYN-ACKs are dropped there, as those to a spoofed source
// go nowhere), so every half-open connection stays until it times out.
// Meanwhile and afterwards a normal client connects, sends a few bytes
// and reads their echo, again and again. Every probe must succeed; once
// the flood is over the listener must serve at once (no probe needs a
// retransmission: the kernel client's TCP_INFO counts them, and a SYN
// that went unanswered would cost a 1 s RTO), where without cookies 128
// half-open connections would lock it out for two minutes; the
// listener's peak RSS must stay under 64 MB, and tcpcraft's trace must
// show the cookies. During the flood no probe may need a retransmission
// either: the listener's capture ring (15,600 small slots) absorbs the
// flood while the process waits for a CPU, so a normal client's SYN is
// not lost among the flood's — unless the machine leaves tcpcraft so
// little CPU that the ring overflows anyway, which listen reports (its
// capture's lost frames) and which then excuses a retransmitted probe.
// Probe latencies are reported beside the
// kernel's, not asserted (the kernel answers SYNs in the flooder's own
// softirq, so it keeps pace by construction).
//
// The flood lasts floodSeconds (3 s in CI), or TCPCRAFT_FLOOD_SECONDS;
// the report's figures are from
//
//	TCPCRAFT_FLOOD_SECONDS=10 go test ./cmd -run TestListenSYNFlood -v
//
// (TCPCRAFT_FLOOD_QUIET=1 runs listen with -q: no line per segment, the
// trace is then the flood warning and the closing count.)

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

const (
	floodSeconds  = 3
	floodBacklog  = 128      // both listeners
	floodRSSLimit = 64 << 20 // the bound on tcpcraft's peak RSS
	floodProbeGap = 100 * time.Millisecond
	floodAfter    = 6 * time.Second // probing goes on this long after the flood
	floodSourceIP = "10.0.2.22"
	// floodProbeWait is how long a probe may take before it has failed:
	// long enough for a SYN lost three times in the overflowing capture
	// ring (1 + 2 + 4 s of RTOs) and a loaded machine; a tolerance for the
	// machine. Locked out, as without cookies, a probe waits two minutes.
	floodProbeWait = 15 * time.Second
	// floodDrain is how long after the flood the listener may still be
	// answering SYNs queued in its capture ring (15,600 slots in 5 MiB)
	// before it must serve at once: a tolerance for the
	// machine (how fast it drains the ring), not for tcpcraft's logic.
	floodDrain = 3 * time.Second
)

// floodProbe is one connect-and-echo of the normal client.
type floodProbe struct {
	during  bool // sent while the flood ran
	settled bool // sent floodDrain or more after the flood
	took    time.Duration
	retrans uint32 // the client's TCP_INFO total_retrans
	err     error
}

// floodResult is what one listener did under the flood.
type floodResult struct {
	name           string
	synsSent       int // hping3's count
	probes         []floodProbe
	peakRSS        int64         // bytes; 0 for the kernel
	worst          time.Duration // the slowest probe
	worstDuring    time.Duration
	failed         int
	retransmits    int // probes that needed a retransmission
	retransDuring  int
	retransSettled int
}

func (r floodResult) String() string {
	var during, after int
	for _, p := range r.probes {
		if p.during {
			during++
		} else {
			after++
		}
	}
	rss := "-"
	if r.peakRSS > 0 {
		rss = fmt.Sprintf("%.1f MB", float64(r.peakRSS)/(1<<20))
	}
	return fmt.Sprintf("%-8s SYNs %8d | during: %3d probes, %3d with retransmissions, slowest %v | after: %3d probes, slowest %v, %d with retransmissions once settled | failed %d | peak RSS %s",
		r.name, r.synsSent, during, r.retransDuring, r.worstDuring.Round(time.Millisecond), after, r.worst.Round(time.Millisecond), r.retransSettled, r.failed, rss)
}

func floodDuration(t testing.TB) time.Duration {
	s := os.Getenv("TCPCRAFT_FLOOD_SECONDS")
	if s == "" {
		return floodSeconds * time.Second
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		t.Fatalf("TCPCRAFT_FLOOD_SECONDS=%q: want a positive number", s)
	}
	return time.Duration(n * float64(time.Second))
}

func TestListenSYNFlood(t *testing.T) {
	labtest.RequireTools(t, "hping3", "sysctl")
	e := newListenLab(t)
	dur := floodDuration(t)
	const tcpcraftPort, kernelPort = 7, 8

	// The flood's source: a second address of the client that drops
	// whatever comes to it, so no SYN-ACK is ever answered.
	labtest.Run(t, e.Lab, e.ClientNS, "ip", "addr", "add", floodSourceIP+"/24", "dev", e.ClientIf)
	labtest.Iptables(t, e.Lab, e.ClientNS, "-A", "INPUT", "-d", floodSourceIP, "-j", "DROP")
	labtest.Run(t, e.Lab, e.ServerNS, "sysctl", "-qw", "net.ipv4.tcp_syncookies=1")

	// The kernel: an echo server with the same backlog.
	kln := kernelListener(t, e, kernelPort, floodBacklog)
	go func() {
		for {
			c, err := kln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(peerTimeout))
				buf := make([]byte, 256)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()

	// tcpcraft, as the issue ran it (every segment traced), its trace
	// to a file: a flood's trace does not belong in memory.
	traceFile, err := os.Create(t.TempDir() + "/trace")
	if err != nil {
		t.Fatal(err)
	}
	defer traceFile.Close()
	quiet := os.Getenv("TCPCRAFT_FLOOD_QUIET") == "1"
	args := []string{"listen", "-k", "--echo"}
	if quiet {
		args = append(args, "-q")
	}
	tc, exited := startFloodListener(t, e, traceFile, append(args, "--backlog", strconv.Itoa(floodBacklog), "--time-wait", "0.1", fmt.Sprintf(":%d", tcpcraftPort))...)
	waitEchoing(t, e, nil, tcpcraftPort)

	results := []floodResult{
		floodOne(t, e, "tcpcraft", tcpcraftPort, dur, tc.Process.Pid),
		floodOne(t, e, "kernel", kernelPort, dur, 0),
	}

	// Stop tcpcraft: its last lines count the cookies.
	_ = tc.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("tcpcraft listen did not stop within 30 s of SIGINT")
	}
	if code := tc.ProcessState.ExitCode(); code != 130 {
		t.Errorf("tcpcraft listen exited %d after SIGINT, want 130", code)
	}
	if rules := guardsOf(t, e, e.ServerNS, tc.Process.Pid); len(rules) > 0 {
		t.Errorf("tcpcraft left its rule: %q", rules)
	}
	cookieEvents, warned, summary, ringDrops := scanFloodTrace(t, traceFile.Name())

	t.Logf("SYN flood of %v (hping3 -S --flood from a source that never answers), backlog %d, a probe every %v during it and %v after:", dur, floodBacklog, floodProbeGap, floodAfter)
	for _, r := range results {
		t.Logf("  %s", r)
	}
	t.Logf("  tcpcraft's trace: %d syn-cookie events; %s; %d frames lost in its capture ring", cookieEvents, summary, ringDrops)
	tcr, kr := results[0], results[1]
	if tcr.synsSent > 0 && kr.synsSent > 0 {
		t.Logf("  SYNs/s the flood reached: tcpcraft %.0f, kernel %.0f (ratio %.2f)", float64(tcr.synsSent)/dur.Seconds(), float64(kr.synsSent)/dur.Seconds(), float64(tcr.synsSent)/float64(kr.synsSent))
	}

	if tcr.failed > 0 || tcr.retransSettled > 0 {
		for _, p := range tcr.probes {
			if p.err != nil || p.retrans > 0 {
				t.Logf("    probe during=%v settled=%v took %v retrans %d: %v", p.during, p.settled, p.took, p.retrans, p.err)
			}
		}
		t.Errorf("tcpcraft: %d probes failed, %d needed retransmissions once the flood was over; every probe must pass, and at once after the flood", tcr.failed, tcr.retransSettled)
	}
	// The target: during the flood too, every connect-and-echo
	// within 1 s. Asserted as what decides it, not as a time: no probe's
	// segment was lost (a lost SYN waits for its 1 s RTO); how long a
	// probe took otherwise measures the machine and is only reported.
	// One loss is the machine's, and measured: when tcpcraft gets too
	// little of the CPU beside the flooder and other work, the flood
	// outruns it, its capture ring fills and the kernel drops frames
	// there, a normal client's SYN among them (seen in CI with the two
	// cores busy: 44,000 of 230,000 flood SYNs lost, one probe
	// retransmitted). The kernel answers in the flooder's own softirq and
	// cannot fall behind that way. So a retransmitted probe is allowed
	// when, and only when, listen reported frames its capture lost.
	if tcr.retransDuring > 0 && ringDrops > 0 {
		t.Logf("tcpcraft: %d probes during the flood needed a retransmission, and its capture lost %d frames: the machine left it too little CPU to keep up (allowed)", tcr.retransDuring, ringDrops)
	} else if tcr.retransDuring > 0 {
		for _, p := range tcr.probes {
			if p.during && p.retrans > 0 {
				t.Logf("    probe during the flood took %v, retrans %d", p.took, p.retrans)
			}
		}
		t.Errorf("tcpcraft: %d probes during the flood needed a retransmission: a normal client's segment was lost among the flood's", tcr.retransDuring)
	}
	if tcr.peakRSS >= floodRSSLimit {
		t.Errorf("tcpcraft's peak RSS %d bytes, want under %d", tcr.peakRSS, floodRSSLimit)
	}
	if tcr.synsSent < 1000 {
		t.Errorf("hping3 sent only %d SYNs: no flood", tcr.synsSent)
	}
	if (cookieEvents == 0 && !quiet) || !warned || !strings.Contains(summary, "answered with SYN cookies") {
		t.Errorf("tcpcraft's trace shows %d cookies, flood warning %v, summary %q", cookieEvents, warned, summary)
	}
	if !strings.Contains(summary, "tcpcraft: listener") {
		t.Errorf("no closing count of the cookies in the trace")
	}
	// The kernel is the reference, not under test: its figures are
	// reported, and it must have passed too, or the lab is at fault.
	if kr.failed > 0 {
		t.Errorf("the kernel listener failed %d probes: the lab or the machine, not tcpcraft, is at fault", kr.failed)
	}
}

// kernelListener opens a kernel TCP listener on the server's port with
// exactly this backlog (Go's net.Listen takes somaxconn).
func kernelListener(t *testing.T, e *e2eLab, port, backlog int) net.Listener {
	t.Helper()
	var ln net.Listener
	err := lab.Do(e.ServerNS, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), "kernel-listener")
		defer f.Close()
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: e.ServerIP().As4()}); err != nil {
			return err
		}
		if err := unix.Listen(fd, backlog); err != nil {
			return err
		}
		ln, err = net.FileListener(f)
		return err
	})
	if err != nil {
		t.Fatalf("kernel listener: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// floodOne floods port for dur while probing it, and probes on for
// floodAfter. pid, if not 0, is a process whose peak RSS is reported.
func floodOne(t *testing.T, e *e2eLab, name string, port int, dur time.Duration, pid int) floodResult {
	t.Helper()
	res := floodResult{name: name}
	var mu sync.Mutex
	flooding := false
	var ended time.Time // when the flood stopped
	stop := make(chan struct{})
	probing := make(chan struct{})
	go func() {
		defer close(probing)
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			during := flooding
			settled := !ended.IsZero() && time.Since(ended) >= floodDrain
			mu.Unlock()
			p := floodProbeOnce(e, port)
			p.during, p.settled = during, settled
			mu.Lock()
			res.probes = append(res.probes, p)
			mu.Unlock()
			time.Sleep(floodProbeGap)
		}
	}()

	time.Sleep(500 * time.Millisecond) // a few probes before
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	hp := e.Command(ctx, e.ClientNS, "hping3", "-S", "--flood", "-q", "-a", floodSourceIP, "-p", strconv.Itoa(port), e.ServerIP().String())
	out := &syncBuffer{}
	hp.Stdout, hp.Stderr = out, out
	mu.Lock()
	flooding = true
	mu.Unlock()
	if err := hp.Start(); err != nil {
		t.Fatalf("hping3: %v", err)
	}
	time.Sleep(dur)
	_ = hp.Process.Signal(os.Interrupt)
	_ = hp.Wait()
	mu.Lock()
	flooding, ended = false, time.Now()
	mu.Unlock()
	if m := regexp.MustCompile(`(\d+) packets transmitted`).FindStringSubmatch(out.String()); m != nil {
		res.synsSent, _ = strconv.Atoi(m[1])
	} else {
		t.Errorf("%s: hping3 said %q", name, out.String())
	}
	time.Sleep(floodAfter)
	if pid != 0 {
		res.peakRSS = peakRSS(t, pid)
	}
	close(stop)
	<-probing
	for _, p := range res.probes {
		if p.err != nil {
			res.failed++
		}
		if p.retrans > 0 {
			res.retransmits++
			if p.during {
				res.retransDuring++
			}
			if p.settled {
				res.retransSettled++
			}
		}
		if p.during {
			res.worstDuring = max(res.worstDuring, p.took)
		} else {
			res.worst = max(res.worst, p.took)
		}
	}
	return res
}

// floodProbeOnce connects to port from the client's own address, sends 16
// bytes, reads their echo and closes, reporting how long it took and how
// many segments the client's kernel had to send again.
func floodProbeOnce(e *e2eLab, port int) floodProbe {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), floodProbeWait)
	defer cancel()
	conn, err := e.Dial(ctx, e.ClientNS, "tcp", e.serverAddr(port))
	if err != nil {
		return floodProbe{took: time.Since(start), err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(floodProbeWait))
	msg := []byte(fmt.Sprintf("probe %9d\n", start.UnixNano()%1e9))
	err = echoCheck(conn, msg)
	p := floodProbe{took: time.Since(start), err: err}
	if sc, serr := conn.(*net.TCPConn).SyscallConn(); serr == nil {
		_ = sc.Control(func(fd uintptr) {
			if info, ierr := unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO); ierr == nil {
				p.retrans = info.Total_retrans
			}
		})
	}
	return p
}

// peakRSS is the process's VmHWM, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Errorf("reading the RSS of %d: %v", pid, err)
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Errorf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// scanFloodTrace counts the syn-cookie lines of a trace file, says whether
// it warned of the flood, and returns the listener's closing line.
func scanFloodTrace(t *testing.T, path string) (cookies int, warned bool, summary string, ringDrops int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "] syn-cookie (SYN queue full)"):
			cookies++
		case strings.Contains(line, "answered with SYN cookies"):
			summary = line
		case strings.Contains(line, "possible SYN flood on 10.0.2.20:7: SYN queue full, sending SYN cookies"):
			warned = true
		case strings.Contains(line, "frames dropped by the kernel (its buffer was full"):
			if m := ringDropsRE.FindStringSubmatch(line); m != nil {
				ringDrops, _ = strconv.Atoi(m[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cookies, warned, summary, ringDrops
}

// ringDropsRE reads listen's closing count of the frames its capture lost.
var ringDropsRE = regexp.MustCompile(`capture: (\d+) of \d+ frames dropped by the kernel`)

// A listener that cannot read (stopped with SIGSTOP) while a flood
// arrives: its capture's ring fills, the kernel drops the rest, and
// listen's last lines count them, as tcpdump counts "packets dropped by
// kernel": the frames it did see and the ones dropped add up to what
// reached its interface.
func TestListenReportsCaptureDrops(t *testing.T) {
	t.Parallel()
	labtest.RequireTools(t, "hping3")
	e := newE2ELab(t)
	labtest.Run(t, e.Lab, e.ClientNS, "ip", "addr", "add", floodSourceIP+"/24", "dev", e.ClientIf)
	labtest.Iptables(t, e.Lab, e.ClientNS, "-A", "INPUT", "-d", floodSourceIP, "-j", "DROP")
	const port = 7
	stderr := &syncBuffer{}
	tc, exited := startFloodListener(t, e, stderr, "listen", "-k", "--echo", "-q", fmt.Sprintf(":%d", port))
	waitEchoing(t, e, nil, port)
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	rxBefore := linkRxPackets(t, e, e.ServerNS, e.ServerIf)

	if err := tc.Process.Signal(unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// More SYNs than the ring's 15,600 slots, while nothing reads it
	// (hping3 --flood ignores -c: it stops at SIGINT).
	hp := e.Command(ctx, e.ClientNS, "hping3", "-S", "--flood", "-q", "-a", floodSourceIP, "-p", strconv.Itoa(port), e.ServerIP().String())
	if err := hp.Start(); err != nil {
		t.Fatalf("hping3: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for linkRxPackets(t, e, e.ServerNS, e.ServerIf)-rxBefore < 2*listenerRingFrames && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	_ = hp.Process.Signal(os.Interrupt)
	_ = hp.Wait()
	arrived := linkRxPackets(t, e, e.ServerNS, e.ServerIf) - rxBefore
	if arrived < 2*listenerRingFrames {
		t.Fatalf("only %d SYNs arrived in 30 s: no flood", arrived)
	}
	if err := tc.Process.Signal(unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // it answers what the ring holds
	_ = tc.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("tcpcraft listen did not stop within 30 s of SIGINT")
	}
	m := regexp.MustCompile(`capture: (\d+) of (\d+) frames dropped by the kernel`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no count of the capture's dropped frames (%d SYNs arrived, the ring holds 15,600):\n%s", arrived, stderr.String())
	}
	dropped, _ := strconv.Atoi(m[1])
	seen, _ := strconv.Atoi(m[2])
	// The ring held at most its slots; the rest of the flood was dropped.
	// seen counts every frame that passed the filter, the probes of
	// waitEchoing too; the interface's counter also counts the odd frame
	// the filter leaves out (ARP, neighbour discovery): slack for those.
	const otherFrames = 64
	if dropped > arrived || dropped < arrived-listenerRingFrames-otherFrames || seen < arrived-otherFrames {
		t.Errorf("capture: %d of %d frames dropped; %d SYNs arrived while it was stopped, the ring holds %d", dropped, seen, arrived, listenerRingFrames)
	}
}

// linkRxPackets reads the received-packets counter of dev in ns.
func linkRxPackets(t *testing.T, e *e2eLab, ns, dev string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Command(ctx, ns, "cat", "/sys/class/net/"+dev+"/statistics/rx_packets").Output()
	if err != nil {
		t.Fatalf("rx_packets of %s: %v", dev, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("rx_packets of %s: %q", dev, out)
	}
	return n
}

// startFloodListener starts tcpcraft with args in the server namespace,
// its standard error to w; exited is closed when it has ended. At cleanup
// it is continued (were it stopped) and interrupted, and waited for.
func startFloodListener(t *testing.T, e *e2eLab, w io.Writer, args ...string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	tc := e.Command(ctx, e.ServerNS, e.bin, args...)
	tc.Stderr = w
	if err := tc.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = tc.Wait(); close(exited) }()
	t.Cleanup(func() {
		defer cancel()
		_ = tc.Process.Signal(unix.SIGCONT)
		_ = tc.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cancel()
			<-exited
		}
	})
	return tc, exited
}
