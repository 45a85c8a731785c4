package probe

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tcpcraft/tcpcraft/lab/labtest"
)

// TestLiveFastOpenAndCode: TCP Fast Open both ways (FO options built and
// matched, data on the SYN, sendto(MSG_FASTOPEN), AF_UNSPEC, a NULL
// buffer) and code blocks over TCP_INFO, against the real kernel.
func TestLiveFastOpenAndCode(t *testing.T) {
	for _, name := range []string{"tfo-client.pkt", "tfo-server.pkt", "client-two-connections.pkt"} {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			if err := runLive(t, name, src); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		line int
		msg  string
	}{
		{"must-fail-tfo-cookie.pkt", 10, "error handling packet: bad value in outbound TCP option (kind=34): expected: FO 0000000000000000 actual: FO "},
		{"must-fail-code.pkt", 4, "runtime error in code: assertion failed: tcpi_snd_cwnd == 1234 (tcpi_snd_cwnd = 10)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := os.ReadFile("testdata/" + tc.name)
			if err != nil {
				t.Fatal(err)
			}
			err = runLive(t, tc.name, src)
			var f *Failure
			if !errors.As(err, &f) || f.Line != tc.line || !strings.HasPrefix(f.Msg, tc.msg) {
				t.Errorf("got %v, want line %d: %s", err, tc.line, tc.msg)
			}
		})
	}
}

// TestLiveMoreSyscalls: sendmsg/recvmsg, poll, epoll, ioctl, pipe, splice
// and open against the real kernel, and a wrong control message, revents
// and SIOCINQ value each fail with packetdrill's words.
func TestLiveMoreSyscalls(t *testing.T) {
	src, err := os.ReadFile("testdata/syscalls-more.pkt")
	if err != nil {
		t.Fatal(err)
	}
	if err := runLive(t, "syscalls-more.pkt", src); err != nil {
		t.Errorf("%v", err)
	}
	head := "`sysctl -q net.ipv4.tcp_timestamps=0`\n" + `
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
+0 > S. 0:0(0) ack 1 <...>
+.01 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
+0 setsockopt(4, SOL_TCP, TCP_INQ, [1], 4) = 0
+0 < P. 1:1001(1000) ack 1 win 257
+0 > . 1:1(0) ack 1001
`
	for _, tc := range []struct{ line, msg string }{
		{"+0 recvmsg(4, {msg_iov(1)=[{..., 400}], msg_flags=0, msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ, cmsg_data=500}]}, 0) = 400",
			"runtime error in recvmsg call: Bad data in cmsg 0: expected=500 actual=600"},
		{"+0 recvmsg(4, {msg_iov(1)=[{..., 400}], msg_flags=MSG_TRUNC, msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ, cmsg_data=600}]}, 0) = 400",
			"runtime error in recvmsg call: Expected msg_flags 0x00000020 but got 0x00000000"},
		{"+0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1",
			"runtime error in poll call: Expected revents 0x4 but got 0x5 for pollfd 0"},
		{"+0 ioctl(4, SIOCINQ, [999]) = 0", "runtime error in ioctl call: Bad ioctl optval: expected: 999 actual: 1000"},
	} {
		err := runLive(t, "bad.pkt", []byte(head+tc.line+"\n"))
		var f *Failure
		if !errors.As(err, &f) || f.Line != 14 || f.Msg != tc.msg {
			t.Errorf("%s: got %v, want line 14: %s", tc.line, err, tc.msg)
		}
	}
}

// TestLiveCodePython: a block outside the evaluator's subset runs in
// python3 after the script, with the variables of its own snapshot and
// those earlier blocks assigned; a failing one names its line.
func TestLiveCodePython(t *testing.T) {
	labtest.RequireTools(t, "python3")
	head := `
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 %{ state0 = tcpi_state }%
+0 %{ assert tcpi_snd_cwnd / 2 == 5.0 and state0 == TCP_CLOSE, tcpi_snd_cwnd }%
`
	if err := runLive(t, "py.pkt", []byte(head)); err != nil {
		t.Errorf("python3 block: %v", err)
	}
	err := runLive(t, "py-fail.pkt", []byte(head+"+0 %{ assert tcpi_snd_cwnd / 2 == 4.0, 'cwnd=%d' % tcpi_snd_cwnd }%\n"))
	var f *Failure
	if !errors.As(err, &f) || f.Line != 5 || f.Msg != "runtime error in code: AssertionError: cwnd=10" {
		t.Errorf("got %v, want line 5: runtime error in code: AssertionError: cwnd=10", err)
	}
}

// TestLiveExtendedErr: a MSG_ZEROCOPY completion read from the error queue
// as an IP_RECVERR struct sock_extended_err, and a wrong field named.
func TestLiveExtendedErr(t *testing.T) {
	src, err := os.ReadFile("testdata/zerocopy-errqueue.pkt")
	if err != nil {
		t.Fatal(err)
	}
	if err := runLive(t, "zerocopy-errqueue.pkt", src); err != nil {
		t.Errorf("%v", err)
	}
	bad := strings.Replace(string(src), "ee_code=SO_EE_CODE_ZEROCOPY_COPIED", "ee_code=0", 1)
	err = runLive(t, "zerocopy-bad.pkt", []byte(bad))
	var f *Failure
	if !errors.As(err, &f) || f.Line != 27 || f.Msg != "runtime error in recvmsg call: Bad code in extended err 0: expected=0 actual=1" {
		t.Errorf("got %v, want line 27: Bad code in extended err 0", err)
	}
}

// TestLiveZerocopyFrags: each iovec element of a MSG_ZEROCOPY sendmsg is
// a fragment of its own, so the kernel splits at MAX_SKB_FRAGS as it does
// under packetdrill (whose elements are separate allocations).
func TestLiveZerocopyFrags(t *testing.T) {
	src, err := os.ReadFile("testdata/zerocopy-frags.pkt")
	if err != nil {
		t.Fatal(err)
	}
	if err := runLive(t, "zerocopy-frags.pkt", src); err != nil {
		t.Errorf("%v", err)
	}
}

// TestLiveTimestamping: an SCM_TIMESTAMPING time checked against the
// script's clock, and one far from it refused.
func TestLiveTimestamping(t *testing.T) {
	src, err := os.ReadFile("testdata/timestamping-ack.pkt")
	if err != nil {
		t.Fatal(err)
	}
	if err := runLive(t, "timestamping-ack.pkt", src); err != nil {
		t.Errorf("%v", err)
	}
	bad := strings.Replace(string(src), "scm_nsec=300000000", "scm_nsec=150000000", 1)
	err = runLive(t, "timestamping-bad.pkt", []byte(bad))
	var f *Failure
	if !errors.As(err, &f) || f.Line != 24 || !strings.HasPrefix(f.Msg, "runtime error in recvmsg call: Bad timestamp 0 in scm_timestamping 0: expected=0.15") {
		t.Errorf("got %v, want line 24: Bad timestamp 0 in scm_timestamping 0", err)
	}
}
