package capture

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// fakeProc writes a port range file and returns a chooser reading it that
// takes the given ports for used by kernel sockets.
func fakeProc(t *testing.T, portRange string, usedPorts ...int) PortChooser {
	t.Helper()
	rangePath := filepath.Join(t.TempDir(), "ip_local_port_range")
	if err := os.WriteFile(rangePath, []byte(portRange), 0o644); err != nil {
		t.Fatal(err)
	}
	used := map[uint16]bool{}
	for _, p := range usedPorts {
		used[uint16(p)] = true
	}
	return PortChooser{RangePath: rangePath, InUse: func(p uint16) (bool, error) { return used[p], nil }}
}

func TestEphemeralPortOutsideRange(t *testing.T) {
	pc := fakeProc(t, "32768\t60999\n")
	r := rand.New(rand.NewPCG(1, 2))
	seenLow, seenHigh := false, false
	for range 2000 {
		p, err := pc.Choose(r)
		if err != nil {
			t.Fatalf("Choose: %v", err)
		}
		if p < lowestPort || (p >= 32768 && p <= 60999) {
			t.Fatalf("Choose returned %d, inside 32768-60999 or below %d", p, lowestPort)
		}
		seenLow = seenLow || p < 32768
		seenHigh = seenHigh || p > 60999
	}
	// Both gaps (1024-32767 and 61000-65535) are candidates.
	if !seenLow || !seenHigh {
		t.Errorf("2000 draws never used both sides of the range: below=%v above=%v", seenLow, seenHigh)
	}
}

func TestEphemeralPortSkipsUsedPorts(t *testing.T) {
	// Only 1024-1031 lie outside the range; all but 1029 are taken.
	pc := fakeProc(t, "1032 65535", 1024, 1025, 1026, 1027, 1028, 1030, 1031)
	for seed := range uint64(20) {
		p, err := pc.Choose(rand.New(rand.NewPCG(seed, seed)))
		if err != nil {
			t.Fatalf("Choose: %v", err)
		}
		if p != 1029 {
			t.Fatalf("seed %d: Choose = %d, want the only free port 1029", seed, p)
		}
	}
}

func TestEphemeralPortSameSeedSamePort(t *testing.T) {
	pc := fakeProc(t, "32768 60999", 40000)
	a, errA := pc.Choose(rand.New(rand.NewPCG(7, 7)))
	b, errB := pc.Choose(rand.New(rand.NewPCG(7, 7)))
	if errA != nil || errB != nil || a != b {
		t.Fatalf("same seed gave %d (%v) and %d (%v)", a, errA, b, errB)
	}
}

func TestEphemeralPortErrors(t *testing.T) {
	cases := []struct {
		name  string
		pc    func(t *testing.T) PortChooser
		rng   *rand.Rand
		wants []string
	}{
		{"range covers everything", func(t *testing.T) PortChooser { return fakeProc(t, "1024 65535") }, rand.New(rand.NewPCG(1, 1)),
			[]string{"leaves no port", "1024-65535"}},
		{"every outside port taken", func(t *testing.T) PortChooser { return fakeProc(t, "1026 65535", 1024, 1025) }, rand.New(rand.NewPCG(1, 1)),
			[]string{"all 2 ports", "in use"}},
		{"garbage range", func(t *testing.T) PortChooser { return fakeProc(t, "lots") }, rand.New(rand.NewPCG(1, 1)),
			[]string{"want two numbers"}},
		{"inverted range", func(t *testing.T) PortChooser { return fakeProc(t, "60999 32768") }, rand.New(rand.NewPCG(1, 1)),
			[]string{"not a port range"}},
		{"range file missing", func(t *testing.T) PortChooser {
			pc := fakeProc(t, "32768 60999")
			pc.RangePath = filepath.Join(t.TempDir(), "nope")
			return pc
		}, rand.New(rand.NewPCG(1, 1)), []string{"ephemeral port range", "no such file"}},
		{"the kernel cannot say", func(t *testing.T) PortChooser {
			pc := fakeProc(t, "32768 60999")
			pc.InUse = func(uint16) (bool, error) { return false, errors.New("bind: not today") }
			return pc
		}, rand.New(rand.NewPCG(1, 1)), []string{"choosing a source port", "not today"}},
		{"no random source", func(t *testing.T) PortChooser { return fakeProc(t, "32768 60999") }, nil,
			[]string{"no random source"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.pc(t).Choose(c.rng)
			if err == nil {
				t.Fatalf("Choose = %d, want an error", p)
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestEphemeralPortAgainstKernelSockets: in a lab namespace whose
// ip_local_port_range leaves only ports 1024 and 1025 outside it, a kernel
// listener on [::]:1024 (which holds it for IPv4 too) leaves 1025 the
// choice every time; a kernel connection from 1025 as well (in an IPv4
// namespace-local exchange) leaves none. The same answers come from
// PortInUse directly, for IPv4-only and IPv6-only holders.
func TestEphemeralPortAgainstKernelSockets(t *testing.T) {
	l := labtest.New(t)
	labtest.Run(t, l, l.ClientNS, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1026 65535")
	labtest.Listen(t, l, l.ClientNS, "[::]:1024")
	for seed := range uint64(20) {
		var p uint16
		inNS(t, l.ClientNS, func() (err error) {
			p, err = EphemeralPort(rand.New(rand.NewPCG(seed, seed)))
			return err
		})
		if p != 1025 {
			t.Fatalf("seed %d: EphemeralPort = %d, want 1025 (1024 is held by a listener)", seed, p)
		}
	}
	// A connected socket bound to 10.0.2.21:1025 (IPv4, a specific
	// address, not listening).
	ln := labtest.Listen(t, l, l.ServerNS, "10.0.2.20:9")
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	labtest.RequireTools(t, "ss")
	var conn net.Conn
	inNS(t, l.ClientNS, func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.0.2.21"), Port: 1025}, Timeout: 5 * time.Second}
		conn, err = d.Dial("tcp", "10.0.2.20:9")
		return err
	})
	inNS(t, l.ClientNS, func() error {
		p, err := EphemeralPort(rand.New(rand.NewPCG(1, 1)))
		if err == nil || !strings.Contains(err.Error(), "all 2 ports") {
			return fmt.Errorf("EphemeralPort with 1024 and 1025 held = %d, %v; want all 2 ports in use", p, err)
		}
		for port, want := range map[uint16]bool{1024: true, 1025: true, 1026: false, 40000: false} {
			if got, err := PortInUse(port); err != nil || got != want {
				return fmt.Errorf("PortInUse(%d) = %v, %v; want %v", port, got, err, want)
			}
		}
		return nil
	})
	// Closed first by us, the connection's end stays in TIME-WAIT, which
	// holds the port too.
	conn.Close()
	// A bound, not a measure: the server closes when it reads our FIN,
	// and a busy machine may be slow to run it. Once failed at 5 s in a
	// CI rehearsal with both cores busy: the sockets of both ends are
	// shown if it fails again.
	waitUntilClosed := time.Now().Add(20 * time.Second)
	for {
		out := labtest.Run(t, l, l.ClientNS, "ss", "-tanH", "state", "time-wait", "sport", "= :1025")
		if strings.TrimSpace(out) != "" {
			break
		}
		if time.Now().After(waitUntilClosed) {
			t.Fatalf("the closed connection never reached TIME-WAIT; client: %s; server: %s",
				labtest.Run(t, l, l.ClientNS, "ss", "-tanoH"), labtest.Run(t, l, l.ServerNS, "ss", "-tanoH"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	inNS(t, l.ClientNS, func() error {
		if got, err := PortInUse(1025); err != nil || !got {
			return fmt.Errorf("PortInUse(1025) in TIME-WAIT = %v, %v", got, err)
		}
		return nil
	})
	// An IPv6-only holder of a port: [::1]:40001.
	labtest.Listen(t, l, l.ClientNS, "[::1]:40001")
	inNS(t, l.ClientNS, func() error {
		if got, err := PortInUse(40001); err != nil || !got {
			return fmt.Errorf("PortInUse(40001) held by [::1]:40001 = %v, %v", got, err)
		}
		return nil
	})
}

// A block of source ports lies wholly outside ip_local_port_range, in
// either stretch, and holds no port a kernel socket uses; when no block
// fits, the error says so.
func TestChooseBlock(t *testing.T) {
	pc := fakeProc(t, "32768\t60999\n", 1500, 62000)
	r := rand.New(rand.NewPCG(3, 4))
	seenLow, seenHigh := false, false
	for range 500 {
		first, err := pc.ChooseBlock(r, 64)
		if err != nil {
			t.Fatal(err)
		}
		last := int(first) + 63
		if int(first) < lowestPort || last > 65535 || (last >= 32768 && int(first) <= 60999) {
			t.Fatalf("block %d-%d overlaps the range or leaves 1024-65535", first, last)
		}
		if (1500 >= int(first) && 1500 <= last) || (62000 >= int(first) && 62000 <= last) {
			t.Fatalf("block %d-%d holds a used port", first, last)
		}
		seenLow = seenLow || first < 32768
		seenHigh = seenHigh || first > 60999
	}
	if !seenLow || !seenHigh {
		t.Errorf("500 draws never used both stretches: below=%v above=%v", seenLow, seenHigh)
	}
	// 1024-1039 outside the range, 1030 taken: no block of 8 but one of 6
	// (1031-1036 .. 1034-1039) or (1024-1029).
	tight := fakeProc(t, "1040 65535", 1030)
	if _, err := tight.ChooseBlock(r, 10); err == nil {
		t.Error("a block of 10 found where only 9 free ports stand together")
	}
	for range 50 {
		first, err := tight.ChooseBlock(r, 6)
		if err != nil {
			t.Fatal(err)
		}
		if first != 1024 && (first < 1031 || first > 1034) {
			t.Fatalf("block of 6 at %d holds 1030 or leaves the stretch", first)
		}
	}
	if _, err := fakeProc(t, "1024 65535").ChooseBlock(r, 2); err == nil || !strings.Contains(err.Error(), "leaves no 2 consecutive ports") {
		t.Errorf("no stretch at all: %v", err)
	}
}
