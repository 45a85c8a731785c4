package capture

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc writes a port range file and a tcp table listing the given
// local ports (in the kernel's hex format) and returns a chooser reading
// them.
func fakeProc(t *testing.T, portRange string, usedPorts ...int) PortChooser {
	t.Helper()
	dir := t.TempDir()
	rangePath := filepath.Join(dir, "ip_local_port_range")
	if err := os.WriteFile(rangePath, []byte(portRange), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i, p := range usedPorts {
		fmt.Fprintf(&b, "%4d: 0100007F:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n", i, p, 1000+i)
	}
	tcpPath := filepath.Join(dir, "tcp")
	if err := os.WriteFile(tcpPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return PortChooser{RangePath: rangePath, TCPTables: []string{tcpPath, filepath.Join(dir, "tcp6-absent")}}
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
		{"tcp table missing", func(t *testing.T) PortChooser {
			pc := fakeProc(t, "32768 60999")
			pc.TCPTables = []string{filepath.Join(t.TempDir(), "nope")}
			return pc
		}, rand.New(rand.NewPCG(1, 1)), []string{"kernel TCP sockets", "no such file"}},
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

func TestReadUsedPortsTCP6(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tcp6")
	content := "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	used := map[uint16]bool{}
	if err := readUsedPorts(path, used); err != nil {
		t.Fatal(err)
	}
	if !used[8080] || len(used) != 1 {
		t.Fatalf("used = %v, want just 8080", used)
	}
}

// On the real /proc the port must be outside the live range and not bound
// by any kernel socket of this namespace.
func TestEphemeralPortRealProc(t *testing.T) {
	p, err := EphemeralPort(rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatalf("EphemeralPort: %v", err)
	}
	low, high, err := readPortRange(DefaultPortRangePath)
	if err != nil {
		t.Fatal(err)
	}
	if int(p) >= low && int(p) <= high {
		t.Fatalf("port %d inside ip_local_port_range %d-%d", p, low, high)
	}
	used := map[uint16]bool{}
	if err := readUsedPorts(DefaultTCPTablePath, used); err != nil {
		t.Fatal(err)
	}
	if used[p] {
		t.Fatalf("port %d is bound by a kernel socket", p)
	}
}
