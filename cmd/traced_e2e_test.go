package cmd

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"testing"
)

// lengthRE takes a segment line's payload length.
var lengthRE = regexp.MustCompile(`, length ([0-9]+)`)

// TestConnectTracedOffload: a traced upload keeps segmentation offload,
// and its trace shows what was handed to the link, as tcpdump on a sender
// with TSO does: super-segments longer than the MSS, whose lengths add up
// to every byte sent; the data arrives intact.
func TestConnectTracedOffload(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	data := randomBytes(t, 4<<20)
	got := make(chan [32]byte, 1)
	done := serveOne(t, e.listen(t, 7110), func(c *net.TCPConn) error {
		h := sha256.New()
		_, err := io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
		return errors.Join(err, c.Close())
	})
	r := e.tcpcraft(t, bytes.NewReader(data), "connect", "--time-wait", "100ms", e.serverAddr(7110))
	expectExit(t, r, 0)
	if err := receive(t, done, "the sink"); err != nil {
		t.Fatalf("sink: %v", err)
	}
	if receive(t, got, "the sink's hash") != sha256.Sum256(data) {
		t.Fatal("the data arrived changed")
	}
	out := segmentLines(r.stderr, '>')
	var sum, super, maxLen int
	for _, line := range out {
		m := lengthRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("a segment line without a length: %q", line)
		}
		n, _ := strconv.Atoi(m[1])
		sum += n
		maxLen = max(maxLen, n)
		if n > 1448 {
			super++
		}
	}
	if sum < len(data) {
		t.Errorf("the trace's segments carry %d bytes, %d were sent", sum, len(data))
	}
	if super == 0 {
		t.Errorf("no super-segment in the trace of an upload (%d segment lines out, longest %d bytes): offload is off", len(out), maxLen)
	}
	if len(out) >= len(data)/1448 {
		t.Errorf("%d segment lines out for %d bytes: one per MSS, not per super-segment", len(out), len(data))
	}
}
