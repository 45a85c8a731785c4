package cmd

// End-to-end tests of `tcpcraft probe` as a drop-in packetdrill: its
// command line (the Linux selftests' two command lines, every option), the
// kernel-side environment it builds (tun0, the addresses, the route through
// the gateway, the MTU, the script's directory), checked from inside the
// kernel's namespace by the scripts' own shell lines, and what it refuses.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbePacketdrillCommandLine: every packetdrill option on the command
// line. The script checks from the kernel's namespace that tun0 has
// --local_ip in the --netmask_ip subnet and is a tun device with the --mtu
// (as packetdrill's), that --remote_ip is routed through --gateway_ip,
// that commands run from the script's own directory, that the listener is on --bind_port, and (-D) that a defined
// word reads as its value; the kernel's SYN-ACK advertises the MSS the MTU
// gives (1400 - 40).
func TestProbePacketdrillCommandLine(t *testing.T) {
	dir := t.TempDir()
	src := "`" + `set -e
ip -4 addr show dev tun0 | grep -q "inet 192.168.7.1/24"
ip route show 192.0.2.9 | grep -q "via 192.168.7.254 dev tun0"
ip -d link show dev tun0 | grep -q "mtu 1400 "
ip -d link show dev tun0 | grep -q "tun type tun"
test "$PWD" = "` + dir + `"
test -n "$PACKETDRILL_PID"
` + "`" + `
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [ONE], 4) = 0
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
+0    ` + "`ss -ltn | grep -q \"192.168.7.1:9090 \"`" + `
+0    < S 0:0(0) win 65535 <mss 1000>
+0    > S. 0:0(0) ack 1 <mss 1360>
+.05  < . 1:1(0) ack 1 win 1000
+0    accept(3, ..., ...) = 4
+0    close(4) = 0
+0    > F. 1:1(0) ack 1
+0    close(3) = 0
`
	path := filepath.Join(dir, "cmdline.pkt")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := probeRun(t, 0, "probe", "--ip_version=ipv4", "--local_ip=192.168.7.1", "--netmask_ip=255.255.255.0",
		"--gateway_ip=192.168.7.254", "--remote_ip=192.0.2.9", "--mtu=1400", "--mss=1000", "--bind_port=9090",
		"--tolerance_usecs=20000", "--tolerance_percent=25", "--tcp_ts_tick_usecs=1000", "--tcp_ts_ecr_scaled",
		"--strict_segments", "--send_omit_free", "-D", "ONE=1", path)
	if r.code != codeOK || !strings.Contains(r.stdout, "PASS "+path) {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// Without -D the word ONE means nothing: the same script fails at
	// that line.
	r = probeRun(t, 0, "probe", "--local_ip=192.168.7.1", "--netmask_ip=255.255.255.0",
		"--gateway_ip=192.168.7.254", "--remote_ip=192.0.2.9", "--mtu=1400", "--bind_port=9090", path)
	if r.code != codeFailure || !strings.Contains(r.stdout, "cmdline.pkt:10: runtime error in setsockopt call: unknown symbol ONE") {
		t.Errorf("without -D: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestProbeSelftestsIPv6CommandLine: the kernel selftests' IPv6 command
// line (ksft_runner.sh) with packetdrill replaced by tcpcraft probe: the
// kernel has fd3d:0a0b:17d6::1/48 on tun0, reaches fd3d:fa7b:d17d::1 through
// the gateway, and with MTU 1520 advertises MSS 1460 (1520 - 40 - 20).
// --define is -D's long form.
func TestProbeSelftestsIPv6CommandLine(t *testing.T) {
	path := writeScript(t, "v6.pkt", "`"+`set -e
ip -6 addr show dev tun0 | grep -q "inet6 fd3d:a0b:17d6::1/48"
ip -6 route show fd3d:fa7b:d17d::1 | grep -q "via fd3d:a0b:17d6:8888::1 dev tun0"
`+"`"+`
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0    setsockopt(3, CMSG_LEVEL_IP, IPV6_RECVERR, [1], 4) = 0
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
+0    < S 0:0(0) win 65535 <mss 1000>
+0    > S. 0:0(0) ack 1 <mss 1460>
+.05  < . 1:1(0) ack 1 win 1000
+0    accept(3, ..., ...) = 4
+0    write(4, ..., 100) = 100
+0    > P. 1:101(100) ack 1
+.01  < . 1:1(0) ack 101 win 1000
`)
	r := probeRun(t, 0, "probe", "--ip_version=ipv6", "--mtu=1520", "--local_ip=fd3d:0a0b:17d6::1",
		"--gateway_ip=fd3d:0a0b:17d6:8888::1", "--remote_ip=fd3d:fa7b:d17d::1",
		"-D", "CMSG_LEVEL_IP=SOL_IPV6", "--define", "CMSG_TYPE_RECVERR=IPV6_RECVERR", path)
	if r.code != codeOK || !strings.Contains(r.stdout, "PASS "+path) {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestProbeConnectPortAndFreshPorts: the kernel connects to tcpcraft at
// --connect_port (ss in the kernel's namespace sees the connection to that
// port); then, listening, it sees two incoming connections from two
// different tcpcraft ports, as packetdrill gives each new SYN a fresh one
// (two SYNs from one port would land on the first, still open,
// connection and draw an ACK, not a SYN-ACK).
func TestProbeConnectPortAndFreshPorts(t *testing.T) {
	path := writeScript(t, "ports.pkt", `
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0    connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0    > S 0:0(0) <...>
+0    `+"`ss -tn state syn-sent | grep -q \"192.0.2.1:7070\"`"+`
+0    < R. 0:0(0) ack 1 win 0
+0    close(3) = 0

+0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0    bind(3, ..., ...) = 0
+0    listen(3, 2) = 0
+0    < S 0:0(0) win 65535 <mss 1000>
+0    > S. 0:0(0) ack 1 <mss 1460>
+0    < . 1:1(0) ack 1 win 1000
+0    accept(3, ..., ...) = 4
+0    listen(3, 2) = 0
+0    < S 100:100(0) win 65535 <mss 1000>
+0    > S. 0:0(0) ack 101 <mss 1460>
+0    < . 101:101(0) ack 1 win 1000
+0    accept(3, ..., ...) = 5
+0    `+"`test $(ss -tn state established | grep -c \"192.168.0.1:8080 \") = 2`"+`
`)
	r := probeRun(t, 0, "probe", "--connect_port=7070", path)
	if r.code != codeOK || !strings.Contains(r.stdout, "PASS "+path) {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestProbePacketdrillFlagErrors: an unknown flag, a bad value of a
// packetdrill option, a bad -D and addresses that do not fit the IP
// version are usage errors (exit 2), whether written --name=value or
// -name=value (getopt_long's forms); nothing runs.
func TestProbePacketdrillFlagErrors(t *testing.T) {
	good := writeScript(t, "good.pkt", "0 < S 0:0(0) win 1000\n+0 > R. 0:0(0) ack 1 win 0\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus_option=1"}, "unknown flag --bogus_option"},
		{[]string{"--ip_version=ipv5"}, "--ip_version=ipv5: want ipv4, ipv6 or ipv4-mapped-ipv6"},
		{[]string{"-ip_version=ipv5"}, "--ip_version=ipv5: want ipv4, ipv6 or ipv4-mapped-ipv6"},
		{[]string{"--mtu=100"}, "--mtu=100: want an MTU of 1280 to 65535"},
		{[]string{"--mss=0"}, "--mss=0: want a segment size of 1 to 65535"},
		{[]string{"--bind_port=70000"}, "--bind_port=70000: want a port 1-65535"},
		{[]string{"--connect_port=x"}, "--connect_port=x: want a port 1-65535"},
		{[]string{"--tolerance_usecs=-5"}, "--tolerance_usecs=-5: want a positive number of microseconds"},
		{[]string{"--tolerance_percent=200"}, "--tolerance_percent=200: want a percentage 0-100"},
		{[]string{"--tcp_ts_tick_usecs=2000000"}, "--tcp_ts_tick_usecs=2000000: want 0 to 1000000 microseconds"},
		{[]string{"--netmask_ip=255.0.255.0"}, "--netmask_ip=255.0.255.0: want a netmask"},
		{[]string{"--gateway_ip=nope"}, "--gateway_ip=nope: want an IP address"},
		{[]string{"-D", "NOVALUE"}, "-D NOVALUE: want NAME=VALUE"},
		{[]string{"--ip_version=ipv6", "--local_ip=192.168.0.1"}, "--local_ip=192.168.0.1 does not fit --ip_version=ipv6"},
		{[]string{"--remote_ip=192.168.1.1"}, "--remote_ip=192.168.1.1 is inside the kernel's subnet 192.168.0.0/16"},
		{[]string{"--ip_version=ipv6", "--peer-netns", "x"}, "--ip_version=ipv6 needs the namespaces probe makes itself"},
		{[]string{"--target", "10.0.2.20:80", "--ip_version=ipv4-mapped-ipv6"}, "--ip_version=ipv4-mapped-ipv6 needs the namespaces probe makes itself"},
	} {
		r := runApp(t, context.Background(), append(append([]string{"probe"}, tc.args...), good)...)
		if r.code != codeUsage || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

// TestProbeVerboseOptionLine: a --verbose option line in a script shows
// its packets on standard error as -v does.
func TestProbeVerboseOptionLine(t *testing.T) {
	path := writeScript(t, "verbose.pkt", "--verbose\n0 < S 0:0(0) win 1000\n+0 > R. 0:0(0) ack 1 win 0\n")
	r := probeRun(t, 0, "probe", path)
	if r.code != codeOK || !strings.Contains(r.stderr, "> R. 0:0(0) ack 1 win 0   [192.168.0.1.8080 > 192.0.2.1.") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}
