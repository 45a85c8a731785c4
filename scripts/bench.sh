#!/usr/bin/env bash
# scripts/bench.sh SUBCOMMAND [go test flags...] — tcpcraft benchmarks that
# compare it with the Linux kernel on the same veth, in the same run, in a
# lab of network namespaces the benchmark makes and removes (needs root).
#
#   accept   connections per second accepted and echoed by
#            `tcpcraft listen -k --echo` vs a kernel (Go) echo server,
#            interleaved rounds, medians and the ratio
#            (BenchmarkListenAcceptRate in cmd/listen_bench_test.go).
#            CONNS (default 500) connections per round and per server.
#
# Extra arguments go to `go test` (e.g. -count 3, -v).
set -euo pipefail

usage() {
	echo "usage: $0 accept [go test flags...]" >&2
	exit 2
}

cd "$(dirname "$0")/.."
[ $# -ge 1 ] || usage
sub=$1
shift
case "$sub" in
accept)
	exec go test ./cmd -run '^$' -bench '^BenchmarkListenAcceptRate$' \
		-benchtime "${CONNS:-500}x" -timeout 30m "$@"
	;;
-h | --help | help)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	;;
*)
	usage
	;;
esac
