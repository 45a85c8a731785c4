package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// packetSockets returns, for each AF_PACKET socket of process pid in
// namespace ns, what the kernel's packet_diag says of it (`ss -0 -e -p`:
// the socket's line and its detail lines, which name a receive ring
// "ring_rx(...)" and a transmit ring "ring_tx(...)").
func packetSockets(t *testing.T, e *e2eLab, ns string, pid int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Command(ctx, ns, "ss", "-0", "-e", "-p", "-n", "-H").Output()
	if err != nil {
		t.Fatalf("ss -0 in %s: %v", ns, err)
	}
	var socks []string
	mine := false
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			mine = strings.Contains(line, fmt.Sprintf(",pid=%d,", pid))
			if mine {
				socks = append(socks, line)
			}
			continue
		}
		if mine {
			socks[len(socks)-1] += "\n" + line
		}
	}
	return socks
}

// ringsOf waits until the run of process p is under way (its first probe
// counted by the server: the set-up is over; how long it takes measures
// the machine, so it is waited for) and returns how many of its two
// AF_PACKET sockets, the capture and the device sender, have a receive
// ring and how many a transmit ring.
func ringsOf(t *testing.T, e *e2eLab, p *process, syns func() int) (rx, tx int, socks []string) {
	t.Helper()
	waitUntil(t, 30*time.Second, "the run's first probe at the server", func() bool { return syns() > 0 || !p.running() })
	socks = packetSockets(t, e, e.ClientNS, p.res.pid)
	if len(socks) != 2 {
		t.Fatalf("want the capture's and the device sender's AF_PACKET sockets, got %d:\n%s", len(socks), strings.Join(socks, "\n"))
	}
	for _, s := range socks {
		if strings.Contains(s, "ring_rx(") {
			rx++
		}
		if strings.Contains(s, "ring_tx(") {
			tx++
		}
	}
	return rx, tx, socks
}

// TestSendRingsBySize: a short run (`send -c 1`, what a script probing
// many servers runs) sets up neither of the kernel's rings, whose set-up
// waits for an RCU grace period each: its capture reads the socket's
// queue and its device sender uses sendmmsg, as the kernel's packet_diag
// shows the sockets (no ring_rx, no ring_tx). Through them a probe that
// only the device sender can send (IP ID 0) gets its answer, timed wire
// to wire from the sender's transmit timestamp. A flood keeps both rings.
func TestSendRingsBySize(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	e.listen(t, 8220)
	// 8221 answers nothing: the run waits, and its sockets can be seen.
	labtest.Iptables(t, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "8221", "-j", "DROP")
	syns := synCounter(t, e, 8221)

	small := e.startTcpcraft(t, nil, "send", "--flags", "S", "-c", "1", "--wait", "10s", e.serverAddr(8221))
	rx, tx, socks := ringsOf(t, e, small, syns)
	if rx != 0 || tx != 0 {
		t.Errorf("send -c 1: %d receive and %d transmit rings, want none:\n%s", rx, tx, strings.Join(socks, "\n"))
	}
	_ = small.cmd.Process.Signal(os.Interrupt)
	if r := small.wait(t); r.code != codeInterrupted {
		t.Errorf("send -c 1 interrupted: %v", r)
	}

	// --ip-id 0 makes every probe take the device sender (the raw socket
	// would choose an ID), after the next hop is resolved.
	r := e.tcpcraft(t, nil, "send", "--flags", "S", "-c", "1", "--ip-id", "0", "--json", e.serverAddr(8220))
	expectExit(t, r, 0)
	var sum struct {
		Received  int `json:"received"`
		WireTimed int `json:"rtt_wire_timed"`
		RingDrops int `json:"ring_drops"`
		SendDrops int `json:"send_drops"`
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, `"type":"summary"`) {
			if err := json.Unmarshal([]byte(line), &sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sum.Received != 1 || sum.WireTimed != 1 || sum.RingDrops != 0 || sum.SendDrops != 0 {
		t.Errorf("send -c 1 --ip-id 0: want its answer, timed wire to wire, and no drop; got %+v:\n%s", sum, r.stdout)
	}

	before := syns()
	flood := e.startTcpcraft(t, nil, "send", "--flood", "-c", "0", e.serverAddr(8221))
	rx, tx, socks = ringsOf(t, e, flood, func() int { return syns() - before })
	if rx != 1 || tx != 1 {
		t.Errorf("send --flood: %d receive and %d transmit rings, want one each:\n%s", rx, tx, strings.Join(socks, "\n"))
	}
	_ = flood.cmd.Process.Signal(os.Interrupt)
	if r := flood.wait(t); r.code != codeInterrupted {
		t.Errorf("send --flood interrupted: %v", r)
	}
}
