package cmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// rxPackets reads the packets received so far by the server's end of the
// veth (its own namespace's sysfs).
func rxPackets(t *testing.T, e *e2eLab) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.Command(ctx, e.ServerNS, "cat", "/sys/class/net/"+e.ServerIf+"/statistics/rx_packets").Output()
	if err != nil {
		t.Fatalf("reading rx_packets of %s: %v", e.ServerIf, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("rx_packets %q: %v", out, err)
	}
	return n
}

// TestConnectQuietOffloadAndStats: a quiet upload (`connect -q --stats`)
// goes out as super-segments through segmentation offload (the server's
// veth receives far fewer packets than there are MSS-sized segments in the
// data, because a veth passes a 64 KB GSO packet whole), arrives intact,
// and --stats still accounts for it (bytes, a duration, a goodput), taken
// from fsm's counters and events since no good segment is traced. Then the
// same with 2% of the segments dropped in the server's namespace: intact,
// and the retransmissions are counted and add up by cause.
func TestConnectQuietOffloadAndStats(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	data := randomBytes(t, 8<<20)
	sink := func(port int) (<-chan error, <-chan [32]byte) {
		got := make(chan [32]byte, 1)
		done := serveOne(t, e.listen(t, port), func(c *net.TCPConn) error {
			h := sha256.New()
			_, err := io.Copy(h, c)
			got <- [32]byte(h.Sum(nil))
			return errors.Join(err, c.Close())
		})
		return done, got
	}
	dir := t.TempDir()

	// Without loss: offload visible at the receiver.
	done, got := sink(9100)
	before := rxPackets(t, e)
	statsPath := filepath.Join(dir, "plain.json")
	r := e.tcpcraft(t, bytes.NewReader(data), "connect", "-q", "--stats", statsPath, "--time-wait", "100ms", e.serverAddr(9100))
	expectExit(t, r, 0)
	if err := receive(t, done, "the sink"); err != nil {
		t.Fatalf("sink: %v", err)
	}
	if sum := receive(t, got, "the sink's digest"); sum != sha256.Sum256(data) {
		t.Fatal("the sink received other bytes")
	}
	packets := rxPackets(t, e) - before
	segments := len(data) / 1448
	if packets <= 0 || packets > segments/4 {
		t.Errorf("the server received %d packets for %d MSS-sized segments of data: no segmentation offload", packets, segments)
	}
	s := readStats(t, statsPath)
	if len(s) != 1 {
		t.Fatalf("%d stats objects, want 1", len(s))
	}
	if s[0].Sent.Bytes != uint64(len(data)) || s[0].Sent.Segments < uint64(segments) {
		t.Errorf("stats: sent %+v, want %d bytes in at least %d segments (fsm's segments, not packets)", s[0].Sent, len(data), segments)
	}
	if s[0].DurationS <= 0 || s[0].DurationS > r.elapsed.Seconds() || s[0].Goodput.Sent <= 0 {
		t.Errorf("stats: duration %v s (run %v), goodput %+v", s[0].DurationS, r.elapsed, s[0].Goodput)
	}
	t.Logf("%d MB in %d packets at the receiver (%d MSS-sized segments), %.0f Mbit/s by --stats", len(data)>>20, packets, segments, s[0].Goodput.Sent/1e6)

	// With loss: every 50th packet, not 2% at random. With offloads the
	// 8 MB arrive in a couple of hundred packets, fewer since connect
	// corks its chunks' short tails, and a random 2% then lost none of
	// them in a few runs out of a hundred.
	labtest.Iptables(t, e.Lab, e.ServerNS, "-A", "INPUT", "-p", "tcp", "--dport", "9101",
		"-m", "statistic", "--mode", "nth", "--every", "50", "--packet", "10", "-j", "DROP")
	done, got = sink(9101)
	statsPath = filepath.Join(dir, "loss.json")
	r = e.tcpcraft(t, bytes.NewReader(data), "connect", "-q", "--timeout", "30s", "--stats", statsPath, "--time-wait", "100ms", e.serverAddr(9101))
	expectExit(t, r, 0)
	if err := receive(t, done, "the sink"); err != nil {
		t.Fatalf("sink under loss: %v", err)
	}
	if sum := receive(t, got, "the sink's digest"); sum != sha256.Sum256(data) {
		t.Fatal("the sink received other bytes under loss")
	}
	s = readStats(t, statsPath)
	if len(s) != 1 {
		t.Fatalf("%d stats objects under loss, want 1", len(s))
	}
	rt := s[0].Retransmits
	if rt.Segments == 0 || rt.Fast+rt.Timeout != rt.Segments {
		t.Errorf("under 2%% loss: retransmissions %+v (want some, adding up by cause)", rt)
	}
	t.Logf("under 2%% loss: %+v", rt)
}
