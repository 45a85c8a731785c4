package cmd

// End-to-end tests of --fault: tcpcraft misbehaves on purpose against a
// kernel peer (a Go server in the lab's server namespace), and what the
// kernel did about it is read from a capture taken on the server's veth
// with tcpdump: it reported a hole with SACK, a duplicate with D-SACK, it
// retransmitted on its timer with exponential backoff, probed a shut
// window, honoured a tiny MSS, took a reset or a FIN where it came.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// wirePkt is one TCP packet of a capture.
type wirePkt struct {
	at     time.Time
	kernel bool // sent by the kernel peer (10.0.2.20)
	tcp    craft.TCP
	bad    bool // its TCP checksum is wrong
}

// end is the sequence number after the packet's data (and SYN/FIN).
func (p *wirePkt) end() craft.Seq {
	n := len(p.tcp.Payload)
	if p.tcp.Flags.Has(craft.FlagSYN) {
		n++
	}
	if p.tcp.Flags.Has(craft.FlagFIN) {
		n++
	}
	return p.tcp.Seq.Add(craft.Size(n))
}

// startKernelCapture starts tcpdump on the server's veth (where the
// kernel peer is) and returns the file it writes, each packet as it is
// captured (-U).
func startKernelCapture(t *testing.T, e *e2eLab, port int) string {
	t.Helper()
	return startCaptureIn(t, e, e.ServerNS, e.ServerIf, port)
}

// startCaptureIn starts tcpdump on dev in ns. In immediate mode libpcap
// uses a ring of fixed slots sized by the snap length, so the default
// (256 KB slots, 2 MB) holds 8 packets and drops the rest whenever tcpdump
// waits for a CPU: -s 65600 -B 16384 makes 256 slots that each take a
// 64 KB GSO packet whole. The same for every tcpdump a test runs.
func startCaptureIn(t *testing.T, e *e2eLab, ns, dev string, port int) string {
	t.Helper()
	labtest.RequireTools(t, "tcpdump")
	path := filepath.Join(t.TempDir(), "kernel.pcap")
	cmd := labtest.Start(t, e.Lab, ns, "tcpdump", "-i", dev, "-n", "--immediate-mode", "-U", "-s", "65600", "-B", "16384", "-w", path, "tcp port "+strconv.Itoa(port))
	tcpdumps.Store(path, cmd)
	waitUntil(t, 20*time.Second, "tcpdump to start", func() bool {
		st, err := os.Stat(path)
		return err == nil && st.Size() >= 24
	})
	return path
}

// tcpdumps maps a capture file to the tcpdump writing it, for readWire
// to stop first.
var tcpdumps sync.Map

// readKernelCapture reads the capture (after a moment for the last
// packets to be written).
func readKernelCapture(t *testing.T, e *e2eLab, path string) []wirePkt {
	t.Helper()
	return readWire(t, path, e.ServerIP())
}

// readWire reads a capture whose kernel peer is at kernel.
func readWire(t *testing.T, path string, kernel netip.Addr) []wirePkt {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	// tcpdump stopped (SIGINT) and waited for: it has written every
	// packet it took by then. Read while it runs, a busy machine could
	// leave packets of the middle of the exchange still unwritten.
	if v, ok := tcpdumps.LoadAndDelete(path); ok {
		cmd := v.(*exec.Cmd)
		_ = cmd.Process.Signal(os.Interrupt)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Logf("tcpdump did not stop within 10 s of SIGINT; reading what it wrote")
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []wirePkt
	var p craft.Packet
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if craft.ParsePacket(craft.LinkType(r.LinkType()), data, &p, craft.PacketOptions{RecognizePartial: true}) != nil {
			continue
		}
		out = append(out, wirePkt{at: ci.Timestamp, kernel: p.Src() == kernel, tcp: p.TCP.Clone(),
			bad: p.TCPChecksum.State == craft.ChecksumBad})
	}
	if len(out) == 0 {
		t.Fatal("the capture is empty")
	}
	return out
}

// isn returns the ISN of the kernel's side or ours.
func isn(t *testing.T, pkts []wirePkt, kernel bool) craft.Seq {
	t.Helper()
	for _, p := range pkts {
		if p.kernel == kernel && p.tcp.Flags.Has(craft.FlagSYN) {
			return p.tcp.Seq
		}
	}
	t.Fatal("no SYN in the capture")
	return 0
}

// sink serves one upload on port: it reads everything and reports the
// bytes and how the read ended.
type sinkResult struct {
	data []byte
	err  error
}

func uploadSink(t *testing.T, e *e2eLab, port int) <-chan sinkResult {
	t.Helper()
	got := make(chan sinkResult, 1)
	serveOne(t, e.listen(t, port), func(c *net.TCPConn) error {
		var buf bytes.Buffer
		_, err := io.Copy(&buf, c)
		got <- sinkResult{buf.Bytes(), err}
		return nil
	})
	return got
}

// download serves size bytes on port, then closes.
func downloadSource(t *testing.T, e *e2eLab, port int, data []byte) <-chan error {
	t.Helper()
	return serveOne(t, e.listen(t, port), func(c *net.TCPConn) error {
		if _, err := c.Write(data); err != nil {
			return err
		}
		return c.CloseWrite()
	})
}

// upload runs tcpcraft connect with data as input and the faults, and
// returns its trace, the kernel's capture and what the sink read.
func upload(t *testing.T, size int, faults ...string) (data []byte, r runResult, pkts []wirePkt, sunk sinkResult) {
	t.Helper()
	e := newE2ELab(t)
	data = randomBytes(t, size)
	got := uploadSink(t, e, 9000)
	capPath := startKernelCapture(t, e, 9000)
	args := []string{"connect", e.serverAddr(9000), "--time-wait", "100ms"}
	for _, f := range faults {
		args = append(args, "--fault", f)
	}
	r = e.tcpcraft(t, bytes.NewReader(data), args...)
	sunk = receive(t, got, "the sink")
	pkts = readKernelCapture(t, e, capPath)
	return data, r, pkts, sunk
}

// ourData returns our data segments in capture order, with their
// sequence numbers relative to our ISN.
func ourData(t *testing.T, pkts []wirePkt) []wirePkt {
	var out []wirePkt
	for _, p := range pkts {
		if !p.kernel && len(p.tcp.Payload) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// segAt returns the indexes in pkts of our data packets starting at seq.
func segAt(pkts []wirePkt, seq craft.Seq) []int {
	var out []int
	for i, p := range pkts {
		if !p.kernel && len(p.tcp.Payload) > 0 && p.tcp.Seq == seq {
			out = append(out, i)
		}
	}
	return out
}

// sackBlocks returns a kernel packet's SACK blocks.
func sackBlocks(p *wirePkt) []craft.SACKBlock {
	if o := craft.FindOption(p.tcp.Options, craft.OptSACK); o != nil {
		return o.Blocks
	}
	return nil
}

func expectClean(t *testing.T, r runResult, data []byte, sunk sinkResult) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("tcpcraft: exit %d\n%s", r.code, tail(r.stderr, 4000))
	}
	if sunk.err != nil || !bytes.Equal(sunk.data, data) {
		t.Fatalf("the sink read %d of %d bytes (%v)", len(sunk.data), len(data), sunk.err)
	}
}

// TestFaultDropSeg: our third data segment is lost; the kernel reports the
// hole (an ACK stuck at its start, a SACK block beyond it) and gets it in
// the end from tcpcraft's retransmission.
func TestFaultDropSeg(t *testing.T) {
	data, r, pkts, sunk := upload(t, 30000, "drop:seg=3")
	expectClean(t, r, data, sunk)
	if !strings.Contains(r.stderr, "! fault drop:seg=3: dropped our data segment 3 (seq 2897:4345, 1448 bytes)") {
		t.Errorf("the trace does not show the drop:\n%s", tail(r.stderr, 3000))
	}
	our := isn(t, pkts, false)
	third := our.Add(2897)
	copies := segAt(pkts, third)
	if len(copies) != 1 {
		for _, p := range ourData(t, pkts) {
			t.Logf("ours: seq %d len %d", p.tcp.Seq-our, len(p.tcp.Payload))
		}
		t.Fatalf("segment 3 is on the wire %d times, want once (its retransmission); trace:\n%s", len(copies), tail(r.stderr, 3000))
	}
	holeReported := false
	for _, p := range pkts[:copies[0]] {
		if p.kernel && p.tcp.Ack == third {
			for _, b := range sackBlocks(&p) {
				holeReported = holeReported || b.Left == our.Add(4345)
			}
		}
	}
	if !holeReported {
		t.Error("the kernel sent no ACK at segment 3 with a SACK block from segment 4 before the retransmission")
	}
}

// TestFaultDropEveryAndRandom: every 5th segment, or each with probability
// 0.1 (seeded); the kernel's SACK blocks lead tcpcraft to resend each one,
// and everything arrives.
func TestFaultDropEveryAndRandom(t *testing.T) {
	for _, f := range []string{"drop:every=5", "drop:p=0.1,seed=3"} {
		t.Run(f, func(t *testing.T) {
			data, r, pkts, sunk := upload(t, 200000, f)
			expectClean(t, r, data, sunk)
			drops := strings.Count(r.stderr, "! fault "+f+": dropped our data segment")
			if drops < 3 {
				t.Fatalf("%d drops noted, want several", drops)
			}
			sacks := 0
			for _, p := range pkts {
				if p.kernel && len(sackBlocks(&p)) > 0 {
					sacks++
				}
			}
			if sacks == 0 {
				t.Error("the kernel sent no SACK block")
			}
			if st := strings.Count(r.stderr, "retransmission"); st == 0 && !strings.Contains(r.stderr, "retransmitted") {
				t.Log(tail(r.stderr, 2000))
			}
		})
	}
}

// TestFaultReorder: our 3rd segment goes after the 4th; the kernel says
// so with a SACK block for the 4th at an ACK stuck at the 3rd, and the 3rd
// is never sent again.
func TestFaultReorder(t *testing.T) {
	data, r, pkts, sunk := upload(t, 30000, "reorder:seg=3")
	expectClean(t, r, data, sunk)
	our := isn(t, pkts, false)
	third, fourth := segAt(pkts, our.Add(2897)), segAt(pkts, our.Add(4345))
	if len(third) != 1 || len(fourth) != 1 || fourth[0] > third[0] {
		t.Fatalf("segment 3 at %v, segment 4 at %v: want each once, the 4th first", third, fourth)
	}
	// The kernel's ACK of the 4th (cumulative ACK at the 3rd's start,
	// a SACK block for the 4th) is made when the 4th arrives, but the
	// capture on the veth may show it after the 3rd: tcpcraft sends the
	// two back to back, and the kernel takes both in one receive pass
	// when the machine is busy. Any such ACK shows the reordering.
	sacked := false
	for _, p := range pkts[fourth[0]:] {
		if p.kernel && p.tcp.Ack == our.Add(2897) {
			for _, b := range sackBlocks(&p) {
				sacked = sacked || b.Left == our.Add(4345)
			}
		}
	}
	if !sacked {
		t.Error("the kernel did not SACK the 4th segment before the 3rd arrived")
	}
}

// TestFaultDup: our 3rd segment twice; the kernel reports the copy with a
// D-SACK block (RFC 2883: the first block, below the cumulative ACK or
// inside the second block).
func TestFaultDup(t *testing.T) {
	data, r, pkts, sunk := upload(t, 30000, "dup:seg=3")
	expectClean(t, r, data, sunk)
	our := isn(t, pkts, false)
	copies := segAt(pkts, our.Add(2897))
	if len(copies) != 2 {
		t.Fatalf("segment 3 on the wire %d times, want 2", len(copies))
	}
	dsack := false
	for _, p := range pkts[copies[1]:] {
		if b := sackBlocks(&p); p.kernel && len(b) > 0 && b[0].Left == our.Add(2897) && b[0].Right == our.Add(4345) {
			dsack = true
			break
		}
	}
	if !dsack {
		t.Error("the kernel sent no D-SACK for the copy")
	}
}

// TestFaultCorrupt: our 2nd segment with a wrong checksum; the kernel
// drops it (no ACK covers it before its retransmission, which it ACKs).
func TestFaultCorrupt(t *testing.T) {
	data, r, pkts, sunk := upload(t, 30000, "corrupt:seg=2")
	expectClean(t, r, data, sunk)
	our := isn(t, pkts, false)
	copies := segAt(pkts, our.Add(1449))
	if len(copies) < 2 || !pkts[copies[0]].bad || pkts[copies[1]].bad {
		t.Fatalf("segment 2: %d copies; want a bad one and then a good one", len(copies))
	}
	for _, p := range pkts[copies[0]:copies[1]] {
		if p.kernel && p.tcp.Ack.GreaterThan(our.Add(1449)) {
			t.Fatalf("the kernel acknowledged past segment 2 (ack %d) before its good copy", uint32(p.tcp.Ack-our))
		}
	}
}

// TestFaultResetAfter: after 10 KiB our RST, at the sequence number the
// kernel expects; the Go peer's read fails with ECONNRESET having read
// exactly what went on the wire.
func TestFaultResetAfter(t *testing.T) {
	_, r, pkts, sunk := upload(t, 100000, "rst:after=10k")
	if r.code != 1 || !strings.Contains(r.stderr, "reset on purpose (--fault rst:after=10k)") {
		t.Errorf("exit %d, want 1 saying so:\n%s", r.code, tail(r.stderr, 2000))
	}
	if !errors.Is(sunk.err, syscall.ECONNRESET) {
		t.Errorf("the peer's read ended with %v, want ECONNRESET", sunk.err)
	}
	our := isn(t, pkts, false)
	var high craft.Seq = our.Add(1)
	var rst *wirePkt
	for i := range pkts {
		p := &pkts[i]
		if p.kernel {
			continue
		}
		if p.tcp.Flags.Has(craft.FlagRST) {
			rst = p
			break
		}
		if len(p.tcp.Payload) > 0 && p.end().GreaterThan(high) {
			high = p.end()
		}
	}
	sent := int(high - our.Add(1))
	if rst == nil || rst.tcp.Seq != high {
		t.Fatalf("our RST %v, want one at seq %d (the end of our data)", rst, sent)
	}
	if sent < 10240 || sent >= 10240+1448 || len(sunk.data) != sent {
		t.Errorf("%d bytes on the wire before the RST, the peer read %d; want the segment with byte 10240 to be the last", sent, len(sunk.data))
	}
}

// TestFaultFinAfter: our FIN right after 10 KiB: the peer reads exactly
// that, then the end of the stream; tcpcraft ends cleanly.
func TestFaultFinAfter(t *testing.T) {
	data, r, pkts, sunk := upload(t, 100000, "fin:after=10k")
	if r.code != 0 || sunk.err != nil || !bytes.Equal(sunk.data, data[:10240]) {
		t.Fatalf("exit %d; the peer read %d bytes (%v), want the first 10240\n%s", r.code, len(sunk.data), sunk.err, tail(r.stderr, 2000))
	}
	our := isn(t, pkts, false)
	for _, p := range pkts {
		if !p.kernel && p.tcp.Flags.Has(craft.FlagFIN) && p.tcp.Seq.Add(craft.Size(len(p.tcp.Payload))) != our.Add(10241) {
			t.Errorf("our FIN at seq %d, want 10241", uint32(p.tcp.Seq-our))
		}
	}
}

// download runs tcpcraft connect against a Go server sending data, with
// the faults. Its input stays open (tcpcraft closes when the server has):
// a FIN of ours would carry ACKs that no ACK fault touches.
func download(t *testing.T, size int, faults ...string) (data []byte, r runResult, pkts []wirePkt, e *e2eLab) {
	t.Helper()
	e = newE2ELab(t)
	data = randomBytes(t, size)
	sent := downloadSource(t, e, 9001, data)
	capPath := startKernelCapture(t, e, 9001)
	args := []string{"connect", e.serverAddr(9001), "--time-wait", "100ms"}
	for _, f := range faults {
		args = append(args, "--fault", f)
	}
	in, _ := openStdin(t)
	r = e.tcpcraft(t, in, args...)
	if err := receive(t, sent, "the source"); err != nil {
		t.Errorf("the source: %v", err)
	}
	pkts = readKernelCapture(t, e, capPath)
	return data, r, pkts, e
}

// kernelRetransmissions returns the times at which the kernel sent again
// the data starting at the sequence number it sent most often (its first
// sending left out: what comes before the first timeout, a tail loss
// probe, re-arms the timer, so only the intervals between retransmissions
// show the backoff).
func kernelRetransmissions(pkts []wirePkt) []time.Time {
	seen := map[craft.Seq][]time.Time{}
	var order []craft.Seq
	for _, p := range pkts {
		if p.kernel && (len(p.tcp.Payload) > 0 || p.tcp.Flags.Has(craft.FlagFIN)) {
			if _, ok := seen[p.tcp.Seq]; !ok {
				order = append(order, p.tcp.Seq)
			}
			seen[p.tcp.Seq] = append(seen[p.tcp.Seq], p.at)
		}
	}
	var most []time.Time
	for _, s := range order {
		if len(seen[s]) > len(most) {
			most = seen[s]
		}
	}
	if len(most) < 2 {
		return nil
	}
	return most[1:]
}

// checkBackoff checks that each interval between times is about twice
// the one before (Linux doubles its RTO, RFC 6298 §5.5), from n times on.
func checkBackoff(t *testing.T, what string, times []time.Time, n int) {
	t.Helper()
	if len(times) < n {
		t.Fatalf("%s: %d times, want at least %d", what, len(times), n)
	}
	for i := 2; i < len(times); i++ {
		prev, cur := times[i-1].Sub(times[i-2]), times[i].Sub(times[i-1])
		// Twice, within what a loaded machine adds to a timer (the
		// ratio measures the kernel's timer; the bounds the machine).
		if r := float64(cur) / float64(prev); r < 1.6 || r > 2.6 {
			t.Errorf("%s: interval %d is %v after %v (×%.2f), want about twice", what, i, cur, prev, r)
		}
	}
}

// TestFaultDropACKBackoff: none of our ACKs for 3 s after 20 KiB; the
// kernel sends its unacknowledged data again on its timer, doubling the
// wait each time; then the ACKs go and the download completes.
func TestFaultDropACKBackoff(t *testing.T) {
	data, r, pkts, _ := download(t, 200000, "drop-ack:after=20k,for=3s")
	if r.code != 0 || r.stdout != string(data) {
		t.Fatalf("exit %d, %d of %d bytes\n%s", r.code, len(r.stdout), len(data), tail(r.stderr, 2000))
	}
	if !strings.Contains(r.stderr, "! fault drop-ack:after=20k,for=3s: withholding our ACKs for 3s") {
		t.Errorf("the trace does not show the fault:\n%s", tail(r.stderr, 2000))
	}
	checkBackoff(t, "the kernel's retransmissions", kernelRetransmissions(pkts), 3)
}

// TestFaultDeadPeer: after 20 KiB tcpcraft plays dead for 2.5 s: the
// kernel retransmits with backoff and hears nothing from us meanwhile;
// then we answer and the download completes.
func TestFaultDeadPeer(t *testing.T) {
	data, r, pkts, _ := download(t, 200000, "dead:after=20k,for=2500ms")
	if r.code != 0 || r.stdout != string(data) {
		t.Fatalf("exit %d, %d of %d bytes\n%s", r.code, len(r.stdout), len(data), tail(r.stderr, 2000))
	}
	re := kernelRetransmissions(pkts)
	checkBackoff(t, "the kernel's retransmissions", re, 3)
	// Nothing of ours from the first retransmission to the one that came
	// after the 2.5 s, which we answer.
	answered := false
	for _, p := range pkts {
		if !p.kernel && p.at.After(re[1]) && p.at.Before(re[len(re)-1]) {
			t.Errorf("we sent [%s] while dead", craft.AppendFlags(nil, p.tcp.Flags))
		}
		answered = answered || !p.kernel && p.at.After(re[len(re)-1])
	}
	if !answered || re[len(re)-1].Sub(re[0]) < 2*time.Second {
		t.Errorf("the last retransmission %v after the first, answered %v", re[len(re)-1].Sub(re[0]), answered)
	}
	if t.Failed() {
		t.Log(dumpWire(pkts))
	}
	if !strings.Contains(r.stderr, "ignored [") || !strings.Contains(r.stderr, "over after 2.5s") {
		t.Errorf("the trace does not show the dead spell:\n%s", tail(r.stderr, 2000))
	}
}

// TestFaultDelayACK: once data flows (after=1: the handshake's ACK goes
// at once, so the kernel's first RTT sample and RTO are the lab's, 200 ms
// and a little), each of our ACKs is held 300 ms: the kernel retransmits
// data we had, spuriously, and the download still completes.
func TestFaultDelayACK(t *testing.T) {
	data, r, pkts, _ := download(t, 50000, "delay-ack:d=300ms,after=1")
	if r.code != 0 || r.stdout != string(data) {
		t.Fatalf("exit %d, %d of %d bytes\n%s", r.code, len(r.stdout), len(data), tail(r.stderr, 2000))
	}
	if len(kernelRetransmissions(pkts)) == 0 {
		t.Errorf("the kernel retransmitted nothing, though our ACKs came after its RTO")
	}
	// Our ACKs reached the kernel 300 ms after the data they acknowledge.
	var firstData, firstACK time.Time
	for _, p := range pkts {
		if p.kernel && len(p.tcp.Payload) > 0 && firstData.IsZero() {
			firstData = p.at
		}
		if !p.kernel && !firstData.IsZero() && p.tcp.Ack.GreaterThan(isn(t, pkts, true).Add(1)) && firstACK.IsZero() {
			firstACK = p.at
		}
	}
	if d := firstACK.Sub(firstData); d < 290*time.Millisecond {
		t.Errorf("our first ACK of data came %v after it, want 300 ms", d)
	}
}

// TestFaultZeroWindow: our window shut for 2 s after 64 KiB of a download:
// the kernel stops sending data and probes the window, each probe twice
// as long after the last (Linux's persist timer backs off like its RTO);
// our window update restarts the transfer.
func TestFaultZeroWindow(t *testing.T) {
	data, r, pkts, _ := download(t, 400000, "zero-window:after=64k,for=2s")
	if r.code != 0 || r.stdout != string(data) {
		t.Fatalf("exit %d, %d of %d bytes\n%s", r.code, len(r.stdout), len(data), tail(r.stderr, 2000))
	}
	var zeroAt time.Time
	var probes []time.Time
	var update time.Time
	for _, p := range pkts {
		switch {
		case !p.kernel && p.tcp.Window == 0 && zeroAt.IsZero() && !p.tcp.Flags.Has(craft.FlagSYN):
			zeroAt = p.at
		case !p.kernel && p.tcp.Window > 0 && !zeroAt.IsZero() && update.IsZero() && p.at.Sub(zeroAt) > time.Second:
			update = p.at
		case p.kernel && !zeroAt.IsZero() && update.IsZero() && len(p.tcp.Payload) == 0 && p.at.Sub(zeroAt) > 100*time.Millisecond:
			probes = append(probes, p.at) // Linux probes with an old sequence number and no data
		}
	}
	if zeroAt.IsZero() || update.IsZero() {
		t.Fatalf("no zero window (%v) or no window update (%v) on the wire", zeroAt, update)
	}
	if d := update.Sub(zeroAt); d < 1900*time.Millisecond || d > 2500*time.Millisecond {
		t.Errorf("the window was shut for %v, want 2 s", d)
	}
	for _, p := range pkts {
		if p.kernel && len(p.tcp.Payload) > 0 && p.at.After(zeroAt.Add(50*time.Millisecond)) && p.at.Before(update) {
			t.Errorf("the kernel sent %d bytes into the shut window", len(p.tcp.Payload))
		}
	}
	// Linux sets its persist timer again when our answer to a probe
	// arrives (tcp_ack_probe), so its wait runs from our answer to the
	// next probe; how soon we answer measures only this machine.
	if len(probes) < 3 {
		t.Fatalf("%d window probes, want at least 3\n%s", len(probes), dumpWire(pkts))
	}
	var waits []time.Duration
	for i := 0; i+1 < len(probes); i++ {
		for _, p := range pkts {
			if !p.kernel && p.at.After(probes[i]) {
				waits = append(waits, probes[i+1].Sub(p.at))
				break
			}
		}
	}
	for i := 1; i < len(waits); i++ {
		if r := float64(waits[i]) / float64(waits[i-1]); r < 1.6 || r > 2.6 {
			t.Errorf("the kernel's window probes: it waited %v, then %v (×%.2f), want about twice", waits[i-1], waits[i], r)
		}
	}
	if t.Failed() {
		t.Log(dumpWire(pkts))
	}
}

// TestFaultTinyMSS: we advertise MSS 100: the kernel's segments carry at
// most 88 bytes (100 less the timestamps option), seen on its veth with
// segmentation offload off.
func TestFaultTinyMSS(t *testing.T) {
	labtest.RequireTools(t, "ethtool")
	e := newE2ELab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := e.Command(ctx, e.ServerNS, "ethtool", "-K", e.ServerIf, "tso", "off", "gso", "off").CombinedOutput(); err != nil {
		t.Fatalf("ethtool: %v: %s", err, out)
	}
	data := randomBytes(t, 20000)
	sent := downloadSource(t, e, 9002, data)
	capPath := startKernelCapture(t, e, 9002)
	r := e.tcpcraft(t, nil, "connect", e.serverAddr(9002), "--time-wait", "100ms", "--fault", "mss:value=100")
	if err := receive(t, sent, "the source"); err != nil {
		t.Errorf("the source: %v", err)
	}
	if r.code != 0 || r.stdout != string(data) || !strings.Contains(r.stderr, "! fault mss:value=100: advertised MSS 100") {
		t.Fatalf("exit %d, %d of %d bytes\n%s", r.code, len(r.stdout), len(data), tail(r.stderr, 2000))
	}
	most, segs := 0, 0
	for _, p := range readKernelCapture(t, e, capPath) {
		if p.kernel && len(p.tcp.Payload) > 0 {
			most = max(most, len(p.tcp.Payload))
			segs++
		}
		if !p.kernel && p.tcp.Flags.Has(craft.FlagSYN) {
			if o := craft.FindOption(p.tcp.Options, craft.OptMSS); o == nil || o.MSS != 100 {
				t.Errorf("our SYN's MSS option on the wire: %v", o)
			}
		}
	}
	if most != 88 || segs < 20000/88 {
		t.Errorf("the kernel's largest segment %d bytes (%d segments), want 88", most, segs)
	}
}

// TestFaultListenZeroWindow: listen's connections get the faults too: a
// kernel client uploading to tcpcraft listen meets a shut window after
// 64 KiB, probes it, and completes when it reopens.
func TestFaultListenZeroWindow(t *testing.T) {
	e := newListenLab(t)
	capPath := startCaptureIn(t, e, e.ClientNS, e.ClientIf, 8080)
	p := e.startListen(t, nil, ":8080", "--fault", "zero-window:after=64k,for=1s", "--time-wait", "100ms")
	waitListening(t, p)
	conn := dialServer(t, e, 8080)
	data := randomBytes(t, 300000)
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r := p.wait(t)
	if r.code != 0 || r.stdout != string(data) {
		t.Fatalf("exit %d, %d of %d bytes\n%s", r.code, len(r.stdout), len(data), tail(r.stderr, 2000))
	}
	if !strings.Contains(r.stderr, "fault zero-window:after=64k,for=1s: reopened our window: sent a window update") {
		t.Errorf("the trace does not show the window update:\n%s", tail(r.stderr, 2000))
	}
	var zeroAt, update time.Time
	probes := 0
	pkts := readWire(t, capPath, e.ClientIP())
	for _, w := range pkts {
		switch {
		case !w.kernel && w.tcp.Window == 0 && !w.tcp.Flags.Has(craft.FlagSYN) && zeroAt.IsZero():
			zeroAt = w.at
		case !w.kernel && w.tcp.Window > 0 && !zeroAt.IsZero() && update.IsZero():
			update = w.at
		case w.kernel && !zeroAt.IsZero() && update.IsZero() && len(w.tcp.Payload) == 0 && w.at.Sub(zeroAt) > 100*time.Millisecond:
			probes++
		}
	}
	if zeroAt.IsZero() || update.Sub(zeroAt) < 900*time.Millisecond || probes < 2 {
		t.Errorf("zero window from %v for %v on the wire, kernel probes %d\n%s", zeroAt, update.Sub(zeroAt), probes, dumpWire(pkts))
	}
}

// dumpWire writes a capture in short lines, for a failure's log.
func dumpWire(pkts []wirePkt) string {
	var b strings.Builder
	var k, o craft.Seq
	for _, p := range pkts {
		if p.tcp.Flags.Has(craft.FlagSYN) {
			if p.kernel {
				k = p.tcp.Seq
			} else {
				o = p.tcp.Seq
			}
		}
	}
	start := pkts[0].at
	for _, p := range pkts {
		who, seq, ack := "us    ", p.tcp.Seq-o, p.tcp.Ack-k
		if p.kernel {
			who, seq, ack = "kernel", p.tcp.Seq-k, p.tcp.Ack-o
		}
		fmt.Fprintf(&b, "%.6f %s [%s] seq %d len %d ack %d win %d\n", p.at.Sub(start).Seconds(), who,
			craft.AppendFlags(nil, p.tcp.Flags), uint32(seq), len(p.tcp.Payload), uint32(ack), p.tcp.Window)
	}
	return b.String()
}
