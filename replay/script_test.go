package replay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/draw/flow"
	"github.com/tcpcraft/tcpcraft/probe"
)

const (
	S   = craft.FlagSYN
	A   = craft.FlagACK
	P   = craft.FlagPSH
	F   = craft.FlagFIN
	R   = craft.FlagRST
	SA  = S | A
	PA  = P | A
	FA  = F | A
	FPA = F | P | A
	us  = time.Microsecond
	ms  = time.Millisecond
)

// TestRoundTripCapture: every segment of a real capture (curl fetching a
// page from a kernel server, tcpdump on the lab veth) comes back out of
// probe's parser as the packet the capture shows, in script numbers, for
// both roles — and the other end's segments as "<", the kernel's as ">".
func TestRoundTripCapture(t *testing.T) {
	for _, name := range []string{"testdata/curl-get.pcap", "testdata/curl-loss.pcap"} {
		r := readPcap(t, name)
		c := r.Conns()[0]
		for _, side := range []flow.Side{flow.Server, flow.Client} {
			t.Run(name+"/"+side.String(), func(t *testing.T) {
				s, err := r.Script(c, Config{Side: side, Source: name})
				if err != nil {
					t.Fatal(err)
				}
				ps := mustParse(t, s)
				var pkts []*probe.Packet
				for _, ev := range ps.Events {
					if ev.Packet != nil {
						pkts = append(pkts, ev.Packet)
					}
				}
				if got, want := len(pkts), s.Inbound+s.Outbound; got != want {
					t.Fatalf("%d packet lines parsed, the generator counted %d", got, want)
				}
				if s.Outbound != 0 && len(pkts) == 0 {
					t.Fatal("no packets")
				}
				isn := map[flow.Side]craft.Seq{}
				isn[flow.Client], _ = c.ISN(flow.Client)
				isn[flow.Server], _ = c.ISN(flow.Server)
				// Walk the capture beside the parsed lines: each line is
				// the next segment not left out, or several of one end's
				// sent back to back.
				left := map[int]bool{}
				for _, n := range s.Left {
					left[n] = true
				}
				k := 0
				for i := 0; i < len(c.Segments); i++ {
					seg := &c.Segments[i]
					if left[seg.N] {
						if seg.From == side {
							t.Errorf("#%d: a segment of the kernel's end left out", seg.N)
						}
						continue
					}
					if k >= len(pkts) {
						t.Fatalf("the script ends before #%d", seg.N)
					}
					p := pkts[k]
					k++
					wantDir := probe.Inbound
					if seg.From == side {
						wantDir = probe.Outbound
					}
					if p.Dir != wantDir {
						t.Fatalf("#%d: direction %v, want %v", seg.N, p.Dir, wantDir)
					}
					if want := uint32(seg.Seq - isn[seg.From]); p.Seq != want {
						t.Errorf("#%d: seq %d, want %d", seg.N, p.Seq, want)
					}
					if seg.Flags.Has(craft.FlagACK) {
						if want := uint32(seg.Ack - isn[seg.From.Other()]); p.Ack != want {
							t.Errorf("#%d: ack %d, want %d", seg.N, p.Ack, want)
						}
					}
					total := seg.Len
					last := seg
					for total < p.Len && i+1 < len(c.Segments) && c.Segments[i+1].From == seg.From && !left[c.Segments[i+1].N] {
						i++
						last = &c.Segments[i]
						total += last.Len
					}
					if total != p.Len {
						t.Errorf("#%d: length %d, the capture's segments %d", seg.N, p.Len, total)
					}
					if p.Flags&^(craft.FlagPSH|craft.FlagFIN) != seg.Flags&^(craft.FlagPSH|craft.FlagFIN) ||
						p.Flags&(craft.FlagPSH|craft.FlagFIN) != last.Flags&(craft.FlagPSH|craft.FlagFIN) {
						t.Errorf("#%d: flags %v, want %v", seg.N, p.Flags, seg.Flags)
					}
					wantWin := int32(seg.Window)
					if p.Dir == probe.Outbound && !seg.Flags.Has(craft.FlagSYN) {
						wantWin = -1
					}
					if p.Window != wantWin {
						t.Errorf("#%d: window %d, want %d", seg.N, p.Window, wantWin)
					}
					if p.AnyOptions || len(p.Options) == 0 {
						t.Errorf("#%d: options %v, want the capture's", seg.N, p.Options)
					}
				}
				if k != len(pkts) {
					t.Errorf("%d packet lines beyond the capture's segments", len(pkts)-k)
				}
			})
		}
	}
}

// TestServerScript: the system calls of a kernel server around a
// request and a response, in order.
func TestServerScript(t *testing.T) {
	c := newConv(t)
	c.handshake()
	c.seg(100*us, "c", PA, 1, 1, 80)
	c.seg(20*us, "s", A, 1, 81, 0)
	c.seg(2*ms, "s", PA, 1, 81, 200)
	c.seg(30*us, "c", A, 81, 201, 0)
	c.seg(100*us, "s", A, 201, 81, 1448)
	c.seg(10*us, "s", PA, 1649, 81, 352)
	c.seg(30*us, "c", A, 81, 2001, 0)
	c.seg(1*ms, "s", FA, 2001, 81, 0)
	c.seg(30*us, "c", FA, 81, 2002, 0)
	c.seg(30*us, "s", A, 2002, 82, 0)
	s := c.script(flow.Server)
	want := []string{
		"0          socket(..., SOCK_STREAM, IPPROTO_TCP) = 3",
		"+0         setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0",
		"+0         bind(3, ..., ...) = 0",
		"+0         listen(3, 1) = 0",
		"+0         < S 0:0(0) win 500 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>  // #1",
		"+0.00005   > S. 0:0(0) ack 1 win 500 <mss 1460,sackOK,TS val 900 ecr 100,nop,wscale 7>  // #2",
		"+0.00005   < . 1:1(0) ack 1 win 500  // #3",
		"+0         accept(3, ..., ...) = 4",
		"+0.0001    < P. 1:81(80) ack 1 win 500  // #4",
		"+0.00002   read(4, ..., 80) = 80",
		"+0         > . 1:1(0) ack 81  // #5",
		"+0.002     write(4, ..., 200) = 200  // the data from #6 on",
		"+0         > P. 1:201(200) ack 81  // #6",
		"+0.00003   < . 81:81(0) ack 201 win 500  // #7",
		"+0.0001    write(4, ..., 1800) = 1800  // the data from #8 on",
		"+0         > P. 201:2001(1800) ack 81  // #8-#9",
		"+0.00004   < . 81:81(0) ack 2001 win 500  // #10",
		"+0.001     close(4) = 0  // its FIN",
		"+0         > F. 2001:2001(0) ack 81  // #11",
		"+0.00003   < F. 81:81(0) ack 2002 win 500  // #12",
		"+0.00003   > . 2002:2002(0) ack 82  // #13",
	}
	if got := body(s); got != strings.Join(want, "\n") {
		t.Errorf("script:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if s.Inbound != 6 || s.Outbound != 6 || s.Syscalls != 9 || len(s.Left) != 0 {
		t.Errorf("counts %d in, %d out, %d calls, left %v", s.Inbound, s.Outbound, s.Syscalls, s.Left)
	}
}

// TestClientScript: a kernel client connects without blocking, writes
// its request, reads the response and the end of the stream, closes.
func TestClientScript(t *testing.T) {
	c := newConv(t)
	c.handshake()
	c.seg(100*us, "c", PA, 1, 1, 80)
	c.seg(20*us, "s", A, 1, 81, 0)
	c.seg(2*ms, "s", FPA, 1, 81, 200)
	c.seg(30*us, "c", A, 81, 202, 0)
	c.seg(1*ms, "c", FA, 81, 202, 0)
	c.seg(30*us, "s", A, 202, 82, 0)
	s := c.script(flow.Client)
	for _, want := range []string{
		"0          socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" +
			"+0         fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0",
		"+0         connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n" +
			"+0         > S 0:0(0) win 500 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>  // #1",
		"> . 1:1(0) ack 1  // #3\n" +
			"+0         getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0  // connected\n" +
			"+0         fcntl(3, F_SETFL, O_RDWR) = 0  // blocking again\n" +
			"+0.0001    write(3, ..., 80) = 80",
		"< FP. 1:201(200) ack 81 win 500  // #6\n" +
			"+0.00003   read(3, ..., 200) = 200\n" +
			"+0         read(3, ..., 1000) = 0  // the end of the stream\n" +
			"+0         > . 81:81(0) ack 202  // #7\n" +
			"+0.001     close(3) = 0  // its FIN\n" +
			"+0         > F. 81:81(0) ack 202  // #8",
	} {
		if !strings.Contains(body(s), want) {
			t.Errorf("script lacks\n%s\nin\n%s", want, body(s))
		}
	}
}

// TestLostDataLeftOut: a segment of the other end that the kernel never
// acknowledged before it came again is left out as a comment. One the
// kernel had stays: when it acknowledged it before the second copy (its
// ACK was lost on the way back), or when it reports the second copy as a
// duplicate with a D-SACK block (RFC 2883) because it had held its ACK.
func TestLostDataLeftOut(t *testing.T) {
	for _, tc := range []struct {
		name     string
		acked    bool // the kernel's ACK between the copies
		dsack    bool // its ACK after the second copy reports a D-SACK
		wantLeft bool
	}{{"lost", false, false, true}, {"acked before the copy", true, false, false}, {"D-SACK of the copy", false, true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConv(t)
			c.handshake()
			c.seg(100*us, "c", PA, 1, 1, 80) // #4
			if tc.acked {
				c.seg(20*us, "s", A, 1, 81, 0)
			}
			c.seg(200*ms, "c", PA, 1, 1, 80) // the retransmission
			if tc.dsack {
				c.seg(20*us, "s", A, 1, 81, 0, craft.NOPOption(), craft.NOPOption(), craft.SACKOption(craft.SACKBlock{Left: cliISN + 1, Right: cliISN + 81}))
			} else {
				c.seg(20*us, "s", A, 1, 81, 0)
			}
			s := c.script(flow.Server)
			left := len(lines(s, "// #4 not replayed")) == 1
			if left != tc.wantLeft || (len(s.Left) == 1) != tc.wantLeft {
				t.Errorf("#4 left out: %v (Left %v), want %v\n%s", left, s.Left, tc.wantLeft, s.Text)
			}
			if got := len(lines(s, "< P. 1:81(80)")); got != 2-boolInt(tc.wantLeft) {
				t.Errorf("%d copies of the request sent, want %d\n%s", got, 2-boolInt(tc.wantLeft), s.Text)
			}
			// The request is read once, whatever the copies.
			if got := len(lines(s, "read(4, ..., 80) = 80")); got != 1 {
				t.Errorf("%d reads of the request\n%s", got, s.Text)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestLostSYN: a SYN the server never answered before the client sent it
// again never reached it; in the client's script both SYNs are the
// kernel's, the second on its own timer.
func TestLostSYN(t *testing.T) {
	c := newConv(t)
	c.seg(0, "c", S, 0, 0, 0, craft.LinuxSYNOptions(1460, 7, 100, 0)...)
	c.seg(time.Second, "c", S, 0, 0, 0, craft.LinuxSYNOptions(1460, 7, 1100, 0)...)
	c.seg(50*us, "s", SA, 0, 1, 0, craft.LinuxSYNOptions(1460, 7, 900, 1100)...)
	c.seg(50*us, "c", A, 1, 1, 0)
	srv := c.script(flow.Server)
	if len(srv.Left) != 1 || srv.Left[0] != 1 {
		t.Errorf("server: left out %v, want [1]\n%s", srv.Left, srv.Text)
	}
	if l := lines(srv, "< S 0:0(0)"); len(l) != 1 || !strings.HasPrefix(l[0], "+1 ") {
		t.Errorf("server: SYN lines %q, want one at +1 (after the lost one)", l)
	}
	cli := c.script(flow.Client)
	if l := lines(cli, "> S 0:0(0)"); len(l) != 2 || !strings.Contains(l[1], "on the kernel's own timer") || !strings.HasPrefix(l[1], "+1 ") {
		t.Errorf("client: SYN lines %q", l)
	}
}

// TestLostACK: the kernel server sent its SYN-ACK again although the
// client's ACK covering it had been captured long before: that ACK never
// reached the server, and is left out.
func TestLostACK(t *testing.T) {
	c := newConv(t)
	c.handshake() // #3 is the ACK
	c.seg(time.Second, "s", SA, 0, 1, 0, craft.LinuxSYNOptions(1460, 7, 1900, 100)...)
	c.seg(50*us, "c", A, 1, 1, 0)
	s := c.script(flow.Server)
	if len(s.Left) != 1 || s.Left[0] != 3 {
		t.Errorf("left out %v, want [3]\n%s", s.Left, s.Text)
	}
	if l := lines(s, "accept("); len(l) != 1 || !strings.Contains(body(s), "// #5\n+0         accept(3, ..., ...) = 4") {
		t.Errorf("accept after #5 expected:\n%s", s.Text)
	}
	// An ACK that arrives less than the capture-to-kernel margin before a
	// retransmission may have crossed it: it stays.
	c = newConv(t)
	c.handshake()
	c.seg(500*us, "s", SA, 0, 1, 0, craft.LinuxSYNOptions(1460, 7, 1900, 100)...)
	if s := c.script(flow.Server); len(s.Left) != 0 {
		t.Errorf("an ACK 0.5 ms before the retransmission left out: %v", s.Left)
	}
}

// TestWritesPerBurst: a write ends where the kernel set PSH; segments sent
// back to back become one expected line.
func TestWritesPerBurst(t *testing.T) {
	c := newConv(t)
	c.handshake()
	c.seg(100*us, "s", A, 1, 1, 1448)
	c.seg(10*us, "s", PA, 1449, 1, 1000) // write 1: 2448
	c.seg(10*us, "s", A, 2449, 1, 1448)
	c.seg(10*us, "s", PA, 3897, 1, 100) // write 2: 1548, same line as write 1
	c.seg(100*us, "c", A, 1, 3997, 0)
	c.seg(3*ms, "s", A, 3997, 1, 10) // write 3 (no PSH: ends with the data)
	s := c.script(flow.Server)
	w := lines(s, "write(4")
	if len(w) != 3 || !strings.Contains(w[0], "2448) = 2448") || !strings.Contains(w[1], "1548) = 1548") || !strings.Contains(w[2], "10) = 10") {
		t.Errorf("writes %q\n%s", w, s.Text)
	}
	if l := lines(s, "> P. 1:3997(3996) ack 1"); len(l) != 1 || !strings.Contains(l[0], "#4-#7") {
		t.Errorf("one line for the four segments expected:\n%s", s.Text)
	}
}

// TestCloseShutdownAbort: the kernel's FIN is a close, or a shutdown when
// it went on acknowledging data; a RST nothing provoked is an abortive
// close; a FIN riding on data is corked so that it still does.
func TestCloseShutdownAbort(t *testing.T) {
	t.Run("shutdown", func(t *testing.T) {
		c := newConv(t)
		c.handshake()
		c.seg(100*us, "s", FA, 1, 1, 0)
		c.seg(30*us, "c", PA, 1, 2, 100)
		c.seg(30*us, "s", A, 2, 101, 0)
		s := c.script(flow.Server)
		if len(lines(s, "shutdown(4, SHUT_WR) = 0")) != 1 || len(lines(s, "close(")) != 0 || len(lines(s, "read(4, ..., 100) = 100")) != 1 {
			t.Errorf("want shutdown and a read after it:\n%s", s.Text)
		}
	})
	t.Run("close, then RST for data", func(t *testing.T) {
		c := newConv(t)
		c.handshake()
		c.seg(100*us, "s", FA, 1, 1, 0)
		c.seg(30*us, "c", PA, 1, 2, 100)
		c.seg(30*us, "s", R, 2, 0, 0)
		s := c.script(flow.Server)
		if len(lines(s, "close(4) = 0")) != 1 || len(lines(s, "SO_LINGER")) != 0 || len(lines(s, "read(")) != 0 {
			t.Errorf("want a plain close, the RST expected from the kernel:\n%s", s.Text)
		}
	})
	t.Run("abort", func(t *testing.T) {
		c := newConv(t)
		c.handshake()
		c.seg(100*ms, "s", R|A, 1, 1, 0)
		s := c.script(flow.Server)
		if !strings.Contains(body(s), "setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0") ||
			!strings.Contains(body(s), "close(4) = 0\n+0         > R. 1:1(0) ack 1") {
			t.Errorf("want an abortive close before the RST:\n%s", s.Text)
		}
	})
	t.Run("FIN with data", func(t *testing.T) {
		c := newConv(t)
		c.handshake()
		c.seg(100*us, "s", FPA, 1, 1, 300)
		s := c.script(flow.Server)
		if !strings.Contains(body(s), "setsockopt(4, SOL_TCP, TCP_CORK, [1], 4) = 0") ||
			!strings.Contains(body(s), "write(4, ..., 300) = 300  // the data from #4 on\n+0         close(4) = 0") {
			t.Errorf("want cork, write, close:\n%s", s.Text)
		}
	})
}

// TestNoDelay: two small segments without an ACK between them mean
// TCP_NODELAY (Nagle would have held the second); one small segment
// does not.
func TestNoDelay(t *testing.T) {
	for _, two := range []bool{false, true} {
		c := newConv(t)
		c.handshake()
		c.seg(100*us, "c", PA, 1, 1, 10)
		if two {
			c.seg(10*ms, "c", PA, 11, 1, 10)
		}
		c.seg(100*us, "s", A, 1, 11+10*uint32(boolInt(two)), 0)
		s := c.script(flow.Client)
		if got := len(lines(s, "TCP_NODELAY")) == 1; got != two {
			t.Errorf("two small segments %v: TCP_NODELAY set %v\n%s", two, got, s.Text)
		}
	}
}

// TestRefused: a kernel client refused; a kernel server with no
// listener.
func TestRefused(t *testing.T) {
	c := newConv(t)
	c.seg(0, "c", S, 0, 0, 0, craft.LinuxSYNOptions(1460, 7, 100, 0)...)
	c.seg(50*us, "s", R|A, 0, 1, 0)
	cli := c.script(flow.Client)
	// The server's sequence number stays absolute: it has no ISN.
	if !strings.Contains(body(cli), "< R. 5000:5000(0) ack 1 win 500  // #2\n+0         getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0") {
		t.Errorf("client:\n%s", cli.Text)
	}
	srv := c.script(flow.Server)
	if want := "0          < S 0:0(0) win 500 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>  // #1\n" +
		"+0.00005   > R. 5000:5000(0) ack 1  // #2"; !strings.HasSuffix(body(srv), want) || srv.Syscalls != 0 {
		t.Errorf("server: want no socket, the SYN and the RST:\n%s", srv.Text)
	}
}

// TestScriptErrors: what cannot be replayed is refused with a reason.
func TestScriptErrors(t *testing.T) {
	c := newConv(t)
	c.seg(0, "c", A, 1, 1, 10) // mid-stream: no handshake
	if _, err := c.r.Script(c.r.Conns()[0], Config{Side: flow.Server}); !errors.Is(err, ErrNoHandshake) {
		t.Errorf("no handshake: %v", err)
	}
	c = newConv(t)
	c.ipv6 = true
	c.handshake()
	if _, err := c.r.Script(c.r.Conns()[0], Config{Side: flow.Server}); !errors.Is(err, ErrIPv6) {
		t.Errorf("IPv6: %v", err)
	}
	c = newConv(t)
	c.seg(0, "c", S, 0, 0, 0, craft.Option{Kind: craft.OptMD5, Data: make([]byte, 16)})
	c.seg(50*us, "s", SA, 0, 1, 0)
	_, err := c.r.Script(c.r.Conns()[0], Config{Side: flow.Server})
	if err == nil || !strings.Contains(err.Error(), "packet #1: TCP option") {
		t.Errorf("MD5 option: %v", err)
	}
	other := &Reader{}
	if _, err := other.Script(c.r.Conns()[0], Config{Side: flow.Server}); err == nil {
		t.Error("a connection of another Reader accepted")
	}
}

// TestBacklogMerge: two segments of the other end that the kernel
// acknowledged only together are sent as one; acknowledged one by one,
// or far apart, they stay two.
func TestBacklogMerge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ackMid bool
		gap    time.Duration
		merged bool
	}{{"together", false, 30 * us, true}, {"acked between", true, 30 * us, false}, {"far apart", false, 2 * ms, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConv(t)
			c.handshake()
			c.seg(100*us, "s", PA, 1, 1, 2896)
			if tc.ackMid {
				c.seg(5*us, "c", A, 1, 2897, 0)
			}
			c.seg(tc.gap, "s", PA, 2897, 1, 2896)
			c.seg(50*us, "c", A, 1, 5793, 0)
			s := c.script(flow.Client)
			one := lines(s, "< P. 1:5793(5792) ack 1", "acknowledged together")
			two := lines(s, "< P. 2897:5793(2896) ack 1")
			if (len(one) == 1) != tc.merged || (len(two) == 1) == tc.merged {
				t.Errorf("merged %v:\n%s", tc.merged, s.Text)
			}
			if len(lines(s, "read(3, ..., 5792) = 5792"))+len(lines(s, "read(3, ..., 2896) = 2896")) == 0 {
				t.Errorf("the data is not read:\n%s", s.Text)
			}
		})
	}
}

// TestReadsFollowWindow: data the kernel acknowledges with a window that
// shrank had not been read; it is read before the next ACK whose window
// did not shrink, or before the application writes.
func TestReadsFollowWindow(t *testing.T) {
	c := newConv(t)
	c.handshake()
	c.seg(100*us, "s", PA, 1, 1, 1000)
	c.seg(20*us, "c", A, 1, 1001, 0) // window 500: the first, read
	c.seg(100*us, "s", PA, 1001, 1, 1000)
	c.segWin(20*us, "c", A, 1, 2001, 0, 300) // shrank: not read
	c.seg(100*us, "s", PA, 2001, 1, 1000)
	c.seg(20*us, "c", A, 1, 3001, 0) // grew back: read both
	s := c.script(flow.Client)
	want := "+0.00002   read(3, ..., 1000) = 1000\n" +
		"+0         > . 1:1(0) ack 1001  // #5\n" +
		"+0.0001    < P. 1001:2001(1000) ack 1 win 500  // #6\n" +
		"+0.00002   > . 1:1(0) ack 2001  // #7\n" +
		"+0.0001    < P. 2001:3001(1000) ack 1 win 500  // #8\n" +
		"+0.00002   read(3, ..., 2000) = 2000\n" +
		"+0         > . 1:1(0) ack 3001  // #9"
	if !strings.Contains(body(s), want) {
		t.Errorf("script:\n%s\nwant in it:\n%s", body(s), want)
	}
}

// TestCrossing: the server's FIN that the capture shows a few
// microseconds after the client's, but which does not acknowledge it,
// left before the client's arrived: the script has the kernel close first.
func TestCrossing(t *testing.T) {
	c := newConv(t)
	c.handshake()
	c.seg(1*ms, "c", FA, 1, 1, 0)
	c.seg(5*us, "s", FA, 1, 1, 0) // ack 1: it had not got the client's FIN
	c.seg(20*us, "c", A, 2, 2, 0)
	c.seg(20*us, "s", A, 2, 2, 0)
	s := c.script(flow.Server)
	want := "+0.001005  close(4) = 0  // its FIN\n" +
		"+0         > F. 1:1(0) ack 1  // #5\n" +
		"+0         < F. 1:1(0) ack 1 win 500  // #4"
	if !strings.Contains(body(s), want) {
		t.Errorf("script:\n%s\nwant in it:\n%s", body(s), want)
	}
}

// TestWindowProbeKept: probes of a zero window that the kernel answers
// with an ACK each are kept, though they come again and are never
// acknowledged (RFC 9293 §3.8.6.1): the kernel had them.
func TestWindowProbeKept(t *testing.T) {
	c := newConv(t)
	c.handshake()
	c.seg(100*us, "c", PA, 1, 1, 1000)
	c.segWin(20*us, "s", A, 1, 1001, 0, 0) // window closed
	c.seg(200*ms, "c", A, 1001, 1, 1)      // probe
	c.segWin(20*us, "s", A, 1, 1001, 0, 0)
	c.seg(400*ms, "c", A, 1001, 1, 1) // probe again
	c.segWin(20*us, "s", A, 1, 1001, 0, 0)
	s := c.script(flow.Server)
	if len(s.Left) != 0 || len(lines(s, "< . 1001:1002(1) ack 1")) != 2 {
		t.Errorf("both probes must be sent (left out %v):\n%s", s.Left, s.Text)
	}
}
