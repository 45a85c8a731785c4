#!/usr/bin/env bash
# Makes the README's pictures with tcpcraft itself, in a namespace pair this
# script creates and removes (never on the host's own network):
#
#   docs/ladder.svg, .png, .txt  the lab demo's connection (GET / from a kernel
#                                HTTP server) as a ladder; .txt is the live
#                                `connect --ladder` trace of the same run
#   docs/tsg-loss5.svg, .png     time-sequence graph of a 300 KB upload with 5%
#                                of tcpcraft's segments dropped by iptables in
#                                the server namespace
#   docs/states.svg, .png        the RFC 9293 state diagram of the demo connection
#
# The captures are made with `tcpcraft connect --pcap` and drawn with
# `tcpcraft draw`; copies of both (payload zeroed) are the fixtures of
# draw/'s golden tests (draw/testdata/demo.pcap, loss5.pcap).
#
# Needs root, Go, iproute2 (ip, ss), iptables and python3. Usage: bash scripts/make-docs-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
bin="$work/tcpcraft"
CGO_ENABLED=0 go build -o "$bin" .

# A lab of its own, so that a lab already up (tcpcraft-client/-server) is
# left alone.
export TCPCRAFT_CLIENT_NS=tcpdocs-client TCPCRAFT_SERVER_NS=tcpdocs-server
export TCPCRAFT_CLIENT_IF=tcpdocs-c TCPCRAFT_SERVER_IF=tcpdocs-s
srv_pid=""
cleanup() {
    if [ -n "$srv_pid" ]; then kill "$srv_pid" 2>/dev/null || true; fi
    "$bin" lab down >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"$bin" lab up >/dev/null
in_server() { ip netns exec "$TCPCRAFT_SERVER_NS" "$@"; }
in_client() { ip netns exec "$TCPCRAFT_CLIENT_NS" "$@"; }
wait_port() { for _ in $(seq 100); do in_server ss -Hltn "sport = :$1" | grep -q . && return; sleep 0.1; done; echo "nothing listens on :$1" >&2; exit 1; }

mkdir -p docs

# 1. The lab demo: a kernel HTTP server, tcpcraft fetching / from userspace.
mkdir "$work/www"
printf 'Hello from the Linux kernel'"'"'s TCP in the server namespace.\n' > "$work/www/index.html"
chmod -R a+rX "$work"
in_server python3 -m http.server 80 --bind 10.0.2.20 --directory "$work/www" >/dev/null 2>&1 &
srv_pid=$!
wait_port 80
printf 'GET / HTTP/1.0\r\nHost: 10.0.2.20\r\n\r\n' |
    in_client "$bin" connect --ladder --ladder-chars ascii --ladder-width 100 --time-wait 200ms \
        --pcap "$work/demo.pcap" 10.0.2.20:80 2> docs/ladder.txt >/dev/null
kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=""
"$bin" draw "$work/demo.pcap" --ladder --count 0 -o docs/ladder.svg
"$bin" draw "$work/demo.pcap" --ladder --count 0 -o docs/ladder.png
"$bin" draw "$work/demo.pcap" --states -o docs/states.svg
"$bin" draw "$work/demo.pcap" --states -o docs/states.png

# 2. A 300 KB upload to a kernel sink while the server's firewall drops 5% of
# what tcpcraft sends.
in_server python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.2.20", 9000)); s.listen(1)
c, _ = s.accept()
while c.recv(1 << 16):
    pass
c.close()
' &
srv_pid=$!
wait_port 9000
in_server iptables -A INPUT -p tcp --dport 9000 -m statistic --mode random --probability 0.05 -j DROP
head -c 300000 /dev/urandom |
    in_client "$bin" connect -q --timeout 60s --time-wait 200ms --pcap "$work/loss5.pcap" 10.0.2.20:9000
wait "$srv_pid" 2>/dev/null || true; srv_pid=""
"$bin" draw "$work/loss5.pcap" --tsg -o docs/tsg-loss5.svg
"$bin" draw "$work/loss5.pcap" --tsg -o docs/tsg-loss5.png
"$bin" decode --conns "$work/loss5.pcap"
ls -l docs
