package prober

import "testing"

// TestRingless: which runs go without the capture's and the device
// senders' rings. A run of few probes does at any pace, a flood of them
// too; a paced run does at a low rate however long, a traceroute
// always (one probe in flight at a time); a flood, a fast scan
// and a long run at a high rate keep the rings; Rings overrides the
// choice either way.
func TestRingless(t *testing.T) {
	for _, c := range []struct {
		name    string
		cfg     Config
		targets int
		want    bool
	}{
		{"send -c 1 (hping3's probe)", Config{Count: 1, Rate: 1}, 1, true},
		{"send -c 10 --interval 0.2", Config{Count: 10, Rate: 5}, 1, true},
		{"send --flood -c 1024", Config{Count: 1024, Flood: true}, 1, true},
		{"send --flood -c 1025", Config{Count: 1025, Flood: true}, 1, false},
		{"send --flood -c 0", Config{Count: 0, Flood: true}, 1, false},
		{"send -c 0 (a ping until Ctrl-C)", Config{Count: 0, Rate: 1}, 1, true},
		{"send -c 0 --rate 2000", Config{Count: 0, Rate: ringlessRate}, 1, true},
		{"send -c 0 --rate 2001", Config{Count: 0, Rate: ringlessRate + 1}, 1, false},
		{"a scan of 1024 ports", Config{Count: 1, Rate: 10000, Retries: 1}, 1024, true},
		{"a scan of 1025 ports", Config{Count: 1, Rate: 10000, Retries: 1}, 1025, false},
		{"a scan of 65535 ports at 20000/s", Config{Count: 1, Rate: 20000, Retries: 1}, 65535, false},
		{"a scan of 65535 ports at 1000/s", Config{Count: 1, Rate: 1000, Retries: 1}, 65535, true},
		{"5 probes to each of 300 targets", Config{Count: 5, Rate: 10000}, 300, false},
		{"a traceroute, 3 a TTL", Config{Count: 3, Traceroute: true}, 1, true},
		{"a traceroute, 100 a TTL (one in flight at a time)", Config{Count: 100, Traceroute: true}, 1, true},
		{"huge count", Config{Count: 1 << 30, Rate: 10000}, 1 << 20, false},
		{"RingsOn", Config{Count: 1, Rate: 1, Rings: RingsOn}, 1, false},
		{"RingsOff", Config{Count: 0, Flood: true, Rings: RingsOff}, 1 << 16, true},
	} {
		if got := c.cfg.ringless(c.targets); got != c.want {
			t.Errorf("%s: ringless %v, want %v", c.name, got, c.want)
		}
	}
}
