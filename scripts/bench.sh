#!/usr/bin/env bash
# scripts/bench.sh SUBCOMMAND [go test flags...] — tcpcraft benchmarks that
# compare it with the Linux kernel on the same veth, in the same run, in a
# lab of network namespaces the benchmark makes and removes (needs root).
# Every comparison runs interleaved rounds (tcpcraft, kernel, tcpcraft,
# kernel, ...) and prints per-round numbers, medians and the ratio.
#
#   accept     connections per second accepted and echoed by
#              `tcpcraft listen -k --echo` vs a kernel (Go) echo server
#              (BenchmarkListenAcceptRate). CONNS (default 500) per round.
#   bulk-send  `tcpcraft connect` uploading MB (default 200) MB from a file
#              to a kernel sink vs a kernel client reading the same file
#              (BenchmarkPerfBulkSend).
#   bulk-recv  `tcpcraft connect` downloading MB MB from a kernel source vs
#              a kernel client (BenchmarkPerfBulkRecv).
#   bulk-send6, bulk-recv6
#              the same over IPv6 (fd00:2::21 -> fd00:2::20), tcpcraft and
#              the kernel both; bulk6 runs all four, IPv4 and IPv6 side by
#              side, so the two ratios to the kernel can be compared.
#   syn-rtt    SYN->SYN-ACK of `tcpcraft send --flags S --count 300`, 2 ms
#              apart (wire to wire, and from user space) and back to back
#              (--interval 0, wire to wire), vs the kernel's connect() 2 ms
#              apart (timed, and wire to wire from tcpdump) and back to
#              back; medians and medians over minimums
#              (BenchmarkPerfSYNRTT; needs tcpdump).
#   conns      NCONNS (default 10000) connections held by `tcpcraft listen
#              -k`: resident memory (BenchmarkPerfConns). WINDOW sets its
#              --window.
#   loss       goodput of `tcpcraft connect` uploading LOSS_MB (default 32)
#              MB to a kernel sink vs a kernel client (BenchmarkLossGoodput),
#              and of `tcpcraft listen` sending as much to a kernel client
#              vs a kernel server (BenchmarkLossListenGoodput), with each
#              probability in LOSS (default 0.01; a list runs each) of
#              segments dropped each way in the receiver's namespace, and
#              without loss; ratio, efficiency and retransmission counts.
#              LOSS_ROUNDS (default 5), LOSS_CC (cubic|reno). At LOSS=0.2
#              the kernel's side does not finish within its 5 minutes
#              (docs/PERFORMANCE.md).
#   rate       the prober against the tools it stands beside, each in a
#              process of its own, interleaved rounds, SYNs counted by an
#              nft counter in the server namespace: `send --flood` vs
#              `hping3 --flood -S` to a closed and to an open port
#              (BenchmarkRateFloodClosed, BenchmarkRateFloodOpen), and a
#              scan of ports 1-65535 at SCAN_RATE (default 20000) probes/s
#              vs `nmap -sS -p- --min-rate --max-rate` (BenchmarkRateScan).
#              FLOOD_SECONDS (default 3) per flood.
#   senders    the ways to send a prober's SYNs, in one lab: sendto and
#              sendmmsg on the raw socket, sendmmsg on an AF_PACKET socket
#              with PACKET_QDISC_BYPASS, and a PACKET_TX_RING
#              (capture's BenchmarkSenders); PACKETS (default 200000) each.
#   exchange   a scripted request/response, end to end (fork to exit):
#              `printf 'GET / HTTP/1.0\r\n\r\n' | tcpcraft connect -q`
#              vs `socat - TCP:...` with the same input, 20 runs of each
#              a round (BenchmarkPerfExchange); FULL_TIME_WAIT=1 adds
#              `connect -q --full-time-wait` (TIME-WAIT held 1 s);
#              BASELINE=path adds another tcpcraft binary to compare.
#   traced     bulk-send and bulk-recv with a third side: `tcpcraft
#              connect` with its default trace written to a file
#              (TCPCRAFT_BENCH_TRACE=1); prints the traced rate against the
#              kernel and -q; then BenchmarkTraceLine, what one trace
#              line costs to format and buffer, and its allocations.
#   startup    start to SYN on the wire, and a whole empty connection,
#              of `tcpcraft connect -q` vs socat (BenchmarkPerfStartup);
#              BASELINE=path adds another tcpcraft binary to compare.
#   all        every one of the above, then a summary table.
#
# ROUNDS (default 3) sets the measured rounds of bulk-send, bulk-recv and
# syn-rtt. BASELINE=path adds another tcpcraft binary (`connect -q`) to
# bulk-send, bulk-recv (and their IPv6 forms), exchange and startup. Byte counts and CRC-32C checksums are verified in every round.
# Extra arguments go to `go test` (e.g. -v).
#
# In bulk-send and loss the kernel's client uses tcpcraft's congestion
# control (TCP_CONGESTION: cubic, or LOSS_CC), whatever the machine's
# default is; TCPCRAFT_BENCH_KERNEL_CC=default (or bbr, ...) overrides it.
set -euo pipefail

usage() {
	echo "usage: $0 accept|bulk-send|bulk-recv|bulk-send6|bulk-recv6|bulk6|syn-rtt|exchange|traced|startup|conns|loss|rate|senders|all [go test flags...]" >&2
	exit 2
}

cd "$(dirname "$0")/.."
[ $# -ge 1 ] || usage
sub=$1
shift

export TCPCRAFT_BENCH_MB="${MB:-200}"
export TCPCRAFT_BENCH_ROUNDS="${ROUNDS:-3}"
export TCPCRAFT_BENCH_CONNS="${NCONNS:-10000}"
if [ -n "${WINDOW:-}" ]; then
	export TCPCRAFT_BENCH_WINDOW="$WINDOW"
fi
ulimit -n 65536 2>/dev/null || true

perf() { # perf BENCHMARK [go test flags...]
	local name=$1
	shift
	go test ./cmd -run '^$' -bench "^${name}\$" -benchtime 1x -timeout 60m "$@"
}

case "$sub" in
accept)
	exec go test ./cmd -run '^$' -bench '^BenchmarkListenAcceptRate$' \
		-benchtime "${CONNS:-500}x" -timeout 30m "$@"
	;;
bulk-send) TCPCRAFT_BENCH_BASELINE="${BASELINE:-}" perf BenchmarkPerfBulkSend "$@" ;;
bulk-recv) TCPCRAFT_BENCH_BASELINE="${BASELINE:-}" perf BenchmarkPerfBulkRecv "$@" ;;
bulk-send6) TCPCRAFT_BENCH_FAMILY=6 TCPCRAFT_BENCH_BASELINE="${BASELINE:-}" perf BenchmarkPerfBulkSend "$@" ;;
bulk-recv6) TCPCRAFT_BENCH_FAMILY=6 TCPCRAFT_BENCH_BASELINE="${BASELINE:-}" perf BenchmarkPerfBulkRecv "$@" ;;
bulk6)
	for s in bulk-send bulk-send6 bulk-recv bulk-recv6; do
		echo "== $s"
		"$0" "$s" "$@" | grep -E 'medians|MB per transfer|^(ok|FAIL|---)'
	done
	;;
syn-rtt) perf BenchmarkPerfSYNRTT "$@" ;;
exchange) TCPCRAFT_BENCH_FULL_TIME_WAIT="${FULL_TIME_WAIT:-0}" TCPCRAFT_BENCH_BASELINE="${BASELINE:-}" perf BenchmarkPerfExchange "$@" ;;
traced)
	TCPCRAFT_BENCH_TRACE=1 perf BenchmarkPerfBulkSend "$@"
	TCPCRAFT_BENCH_TRACE=1 perf BenchmarkPerfBulkRecv "$@"
	go test ./cmd -run '^$' -bench '^BenchmarkTraceLine$' -benchtime 200000x "$@"
	;;
startup) TCPCRAFT_BENCH_BASELINE="${BASELINE:-}" perf BenchmarkPerfStartup "$@" ;;
rate)
	TCPCRAFT_FLOOD_SECONDS="${FLOOD_SECONDS:-3}" TCPCRAFT_SCAN_RATE="${SCAN_RATE:-20000}" \
		go test ./cmd -run '^$' -bench '^BenchmarkRate' -benchtime 1x -timeout 60m "$@"
	;;
senders)
	TCPCRAFT_BENCH_PACKETS="${PACKETS:-200000}" \
		go test ./capture -run '^$' -bench '^BenchmarkSenders$' -benchtime 1x -timeout 60m "$@"
	;;
conns) perf BenchmarkPerfConns "$@" ;;
loss)
	for p in ${LOSS:-0.01}; do
		for bench in BenchmarkLossGoodput BenchmarkLossListenGoodput; do
			TCPCRAFT_LOSS_P="$p" TCPCRAFT_LOSS_MB="${LOSS_MB:-32}" \
				TCPCRAFT_LOSS_ROUNDS="${LOSS_ROUNDS:-5}" TCPCRAFT_LOSS_CC="${LOSS_CC:-cubic}" \
				perf "$bench" "$@"
		done
	done
	;;
all)
	out=$(mktemp)
	trap 'rm -f "$out"' EXIT
	for s in bulk-send bulk-recv bulk-send6 bulk-recv6 traced syn-rtt exchange startup conns accept loss rate; do
		"$0" "$s" "$@" | tee -a "$out"
	done
	echo
	echo "== summary (medians; ratio = tcpcraft / kernel) =="
	awk '
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		tc = ""; kc = ""; r = ""; unit = ""; extra = ""
		for (i = 2; i < NF; i++) {
			if ($(i+1) ~ /^tcpcraft-/) { tc = $i; unit = substr($(i+1), 10) }
			if ($(i+1) ~ /^kernel-/) kc = $i
			if ($(i+1) == "tcpcraft/kernel") r = $i
			if ($(i+1) == "MB-RSS" || $(i+1) == "KB/conn") extra = extra " " $i " " $(i+1)
		}
		if (r != "") printf "%-45s tcpcraft %10s  kernel %10s  %-8s ratio %s\n", name, tc, kc, unit, r
		else printf "%-45s%s\n", name, extra
	}' "$out"
	;;
-h | --help | help)
	awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
	;;
*)
	usage
	;;
esac
