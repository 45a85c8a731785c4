#!/usr/bin/env bash
# scripts/test.sh — the whole tcpcraft test suite, exactly as CI runs it
# (.ci/run installs the packages and Go, then runs this): formatting, vet,
# then every test, end-to-end ones included. Run it as root from anywhere in
# the repository; the end-to-end tests build network namespaces and need
# iproute2, iptables, tcpdump, tshark, socat, curl and python3.
# With CI=true a missing prerequisite fails a test instead of skipping it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" != 0 ]; then
	echo "scripts/test.sh: run it as root: the end-to-end tests create network namespaces and firewall rules" >&2
	exit 1
fi
command -v go >/dev/null 2>&1 || { echo "scripts/test.sh: go not found (install Go 1.26 at /usr/local/go, or run .ci/run)" >&2; exit 1; }

bash scripts/deps.sh test

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	printf 'gofmt would change:\n%s\n' "$unformatted" >&2
	exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test"
# Last, so the output ends with go test's own summary lines.
exec go test -count=1 -timeout 40m ./...
