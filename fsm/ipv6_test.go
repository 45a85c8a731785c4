package fsm

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

var (
	peerIP6 = netip.MustParseAddr("fd00:2::21")
	ourIP6  = netip.MustParseAddr("fd00:2::20")
)

// synMSS is the MSS option of seg, 0 without one.
func synMSS(seg *craft.TCP) uint16 {
	for _, o := range seg.Options {
		if o.Kind == craft.OptMSS {
			return o.MSS
		}
	}
	return 0
}

// One Listener serves both families, each with its own MSS: 20 bytes
// less over IPv6 (the same MTU, a header 20 bytes longer), or MSS6 as
// set; a SYN without an MSS option means 536 over IPv4 and 1220 over
// IPv6 (RFC 9293 §3.7.1).
func TestListenerMSSPerFamily(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name           string
		mss, mss6      uint16
		src, dst       netip.Addr
		wantOur, wantS uint16 // our advertised MSS; send MSS (no option, no timestamps)
	}{
		{"v4", 1460, 0, peerIP, ourIP, 1460, 536},
		{"v6 derived", 1460, 0, peerIP6, ourIP6, 1440, 1220},
		{"v6 set", 1460, 1000, peerIP6, ourIP6, 1000, 1000},
		{"v4 beside MSS6", 1400, 1000, peerIP, ourIP, 1400, 536},
	} {
		cfg := cookieConfig()
		cfg.MSS, cfg.MSS6 = tc.mss, tc.mss6
		cfg.Timestamps = false
		l, err := NewListener(cfg, ListenConfig{Backlog: 4, SYNCookies: SYNCookiesNever})
		if err != nil {
			t.Fatal(err)
		}
		syn := peerSYN(0, -1, false, 0)
		res, err := l.Input(&syn, tc.src, tc.dst, ListenQueue{}, now)
		if err != nil || res.Verdict != ListenOpen {
			t.Fatalf("%s: %v %v", tc.name, res.Verdict, err)
		}
		out := res.Conn.Output()
		if len(out) != 1 || synMSS(&out[0]) != tc.wantOur {
			t.Errorf("%s: SYN-ACK %v, want MSS %d", tc.name, out, tc.wantOur)
		}
		if got := res.Conn.Config().IPv6; got != tc.src.Is6() {
			t.Errorf("%s: Config().IPv6 = %v", tc.name, got)
		}
		ack := craft.TCP{SrcPort: rPort, DstPort: lPort, Seq: rISS + 1, Ack: out[0].Seq + 1, Flags: fA, Window: 1000}
		res.Conn.Input(&ack, now)
		if st := res.Conn.Stats(); st.SndMSS != int(min(tc.wantS, tc.wantOur)) {
			t.Errorf("%s: send MSS %d, want %d", tc.name, st.SndMSS, min(tc.wantS, tc.wantOur))
		}
	}
}

// A SYN cookie over IPv6 names an MSS of the IPv6 table (Linux's msstab
// of net/ipv6/syncookies.c): the largest entry not above the peer's, at
// least 1220; and our SYN-ACK advertises the IPv6 MSS.
func TestCookieMSSTablePerFamily(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		src, dst netip.Addr
		peer     uint16
		want     uint16
	}{
		{peerIP6, ourIP6, 1440, 1440},
		{peerIP6, ourIP6, 1439, 1420},
		{peerIP6, ourIP6, 8960, 8940},
		{peerIP6, ourIP6, 536, 1220},
		{peerIP, ourIP, 1439, 1300},
		{peerIP, ourIP, 8960, 1460},
		{peerIP, ourIP, 600, 536},
	} {
		cfg := cookieConfig()
		cfg.MSS = 9000 - 40
		l, err := NewListener(cfg, ListenConfig{Backlog: 4, SYNCookies: SYNCookiesAlways})
		if err != nil {
			t.Fatal(err)
		}
		syn := peerSYN(tc.peer, 7, true, 5)
		res, err := l.Input(&syn, tc.src, tc.dst, ListenQueue{}, now)
		if err != nil || !res.Cookie {
			t.Fatalf("%v: %v %v", tc, res.Verdict, err)
		}
		synack := res.Reply
		synack.Options = append([]craft.Option(nil), synack.Options...)
		if our, want := synMSS(&synack), map[bool]uint16{false: 8960, true: 8940}[tc.src.Is6()]; our != want {
			t.Errorf("%v: cookie SYN-ACK MSS %d, want %d", tc, our, want)
		}
		ack := ackOf(&synack, 6, "")
		res, err = l.Input(&ack, tc.src, tc.dst, ListenQueue{}, now)
		if err != nil || res.Verdict != ListenOpen {
			t.Fatalf("%v: ACK %v (%v) %v", tc, res.Verdict, res.Cause, err)
		}
		if got := res.Conn.Stats().SndMSS; got != int(tc.want)-12 {
			t.Errorf("%v: send MSS %d, want %d less the timestamps", tc, got, tc.want)
		}
		// The IPv6 cookie does not check out for the same ports over IPv4.
		if tc.src.Is6() {
			res, _ = l.Input(&ack, peerIP, ourIP, ListenQueue{}, now)
			if res.Verdict == ListenOpen {
				t.Errorf("%v: an IPv6 cookie opened an IPv4 connection", tc)
			}
		}
	}
}

// An active open over IPv6 advertises MSS6 (or MSS - 20).
func TestConnMSSIPv6(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		ipv6      bool
		mss, mss6 uint16
		want      uint16
	}{{false, 1460, 0, 1460}, {true, 1460, 0, 1440}, {true, 1460, 1200, 1200}, {true, 70, 0, 64}} {
		cfg := plainConfig()
		cfg.MSS, cfg.MSS6, cfg.IPv6 = tc.mss, tc.mss6, tc.ipv6
		c, err := NewConn(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(now); err != nil {
			t.Fatal(err)
		}
		out := c.Output()
		if len(out) != 1 || synMSS(&out[0]) != tc.want {
			t.Errorf("%+v: SYN %v, want MSS %d", tc, out, tc.want)
		}
	}
	cfg := plainConfig()
	cfg.MSS6 = 65476
	if _, err := NewConn(cfg); err == nil {
		t.Error("MSS6 65476 accepted")
	}
}
