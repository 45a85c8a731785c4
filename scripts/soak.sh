#!/usr/bin/env bash
# scripts/soak.sh [MINUTES] — run tcpcraft against kernel peers for MINUTES
# (default 20) through loss, reordering, kills and hostile segments, and
# check after every step that nothing went wrong or was left behind.
#
# The world: three network namespaces of its own, soak-PID-client (10.0.2.21),
# soak-PID-server (10.0.2.20) and soak-PID-relay between them, joined by two
# veth pairs; the relay (scripts/soak-relay.py, AF_PACKET) forwards every
# frame and reorders a share of them. Each step draws a random loss rate
# (iptables -m statistic --mode random in both end namespaces) and a
# reordering rate, then one of:
#   download  tcpcraft connect fetches a random file from a kernel server (socat)
#   upload    a kernel client (socat) sends a random file to tcpcraft listen
#   echo      tcpcraft listen -k --echo; a kernel client sends a file and reads it back
#   hostile   echo, while `tcpcraft send` fires random segments (RST, SYN, FIN,
#             data, odd flags and options, random sequence numbers) at the
#             listening port and at the live connection's 4-tuple
#   kill      a transfer is interrupted with SIGINT, SIGTERM or SIGKILL at a
#             random moment; after SIGKILL, `tcpcraft cleanup --netns` on the
#             soak's own namespaces
# and checks: the data arrived intact (sha256), no tcpcraft firewall rule
# is left in any soak namespace, no tcpcraft process is left, the run's
# peak RSS is bounded, and (at the end) no soak namespace is left.
# Every packet stays inside the soak's namespaces; only they are cleaned.
#
# Environment: SOAK_SEED (random seed), SOAK_RSS_MB (peak RSS bound, 256),
# SOAK_MAX_LOSS (percent, 5), SOAK_MAX_REORDER (percent, 10).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/usr/local/go/bin:$PATH

MINUTES=${1:-20}
SEED=${SOAK_SEED:-$$}
RSS_MB=${SOAK_RSS_MB:-256}
MAX_LOSS=${SOAK_MAX_LOSS:-5}
MAX_REORDER=${SOAK_MAX_REORDER:-10}
RANDOM=$SEED

[ "$(id -u)" = 0 ] || { echo "soak.sh: run it as root (network namespaces, firewall rules)" >&2; exit 1; }
for tool in ip iptables nft socat python3 ethtool sha256sum /usr/bin/time; do
	command -v "$tool" >/dev/null 2>&1 || { echo "soak.sh: $tool not found (scripts/deps.sh test installs the tools)" >&2; exit 1; }
done

TAG=soak-$$
C=$TAG-client S=$TAG-server M=$TAG-relay
WORK=$(mktemp -d /tmp/$TAG.XXXXXX)
BIN=$WORK/tcpcraft
LOG=$WORK/log
RELAY_PID=

say() { printf '%s %s\n' "$(date +%T)" "$*" | tee -a "$LOG"; }

teardown() {
	[ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
	for pid in $(pgrep -f "^$BIN " 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	for ns in $C $S $M; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
}
trap 'teardown; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

CGO_ENABLED=0 go build -o "$BIN" . || exit 1

# The world.
ip netns add $C && ip netns add $S && ip netns add $M || exit 1
ip link add sk$$c netns $C type veth peer name sk$$a netns $M
ip link add sk$$s netns $S type veth peer name sk$$b netns $M
ip -n $C addr add 10.0.2.21/24 dev sk$$c
ip -n $S addr add 10.0.2.20/24 dev sk$$s
for x in "$C sk$$c" "$S sk$$s" "$M sk$$a" "$M sk$$b"; do
	set -- $x
	ip -n "$1" link set "$2" up
	ip -n "$1" link set lo up
	# Frames cross the relay as they are: whole-MTU frames with their
	# checksums done, so no offload may leave work for later.
	ip netns exec "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1
done
ip netns exec $M python3 scripts/soak-relay.py sk$$a sk$$b 0 "$SEED" >>"$LOG" 2>&1 &
RELAY_PID=$!

# setfaults LOSS% REORDER%: random drops in both ends, reordering in the relay.
setfaults() {
	local p
	p=$(awk -v l="$1" 'BEGIN { printf "%.4f", l / 100 }')
	for ns in $C $S; do
		ip netns exec "$ns" iptables -w -F INPUT
		[ "$1" = 0 ] || ip netns exec "$ns" iptables -w -A INPUT -p tcp -m statistic --mode random --probability "$p" -j DROP
	done
	kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
	ip netns exec $M python3 scripts/soak-relay.py sk$$a sk$$b "$(awk -v r="$2" 'BEGIN { printf "%.4f", r / 100 }')" "$RANDOM" >>"$LOG" 2>&1 &
	RELAY_PID=$!
	sleep 0.2
}

# tcrun NS ARGS...: tcpcraft in NS, its peak RSS (KB) appended to $WORK/rss.
# A run that hangs is stopped after 300 s (and fails its step's checks).
tcrun() {
	local ns=$1
	shift
	timeout -k 10 -s INT 300 ip netns exec "$ns" /usr/bin/time -a -o "$WORK/rss" -f '%M' "$BIN" "$@"
}

# tcpid CMD PORT: the pid of the tcpcraft CMD run on PORT (GNU time, its
# parent, ignores SIGINT: signals go to tcpcraft itself).
tcpid() { pgrep -f "^$BIN $1 .*:$2\$" | head -1; }

steps=0 failures=0 conns=0 bytes=0 kills=0 hostile=0 peakrss=0
declare -A kinds

fail() { failures=$((failures + 1)); say "FAIL step $steps ($kind): $*"; }

blob() { head -c "$1" /dev/urandom >"$WORK/blob"; sha256sum <"$WORK/blob" | cut -d' ' -f1; }
sum() { sha256sum <"$1" | cut -d' ' -f1; }

# check_clean: no rule, no tcpcraft process, bounded RSS.
check_clean() {
	local ns n pid
	for ns in $C $S $M; do
		n=$( { ip netns exec "$ns" nft list ruleset 2>/dev/null; ip netns exec "$ns" iptables-save 2>/dev/null; } | grep -c tcpcraft)
		[ "$n" = 0 ] || fail "$n tcpcraft firewall lines left in $ns"
	done
	sleep 0.1
	if pid=$(pgrep -f "^$BIN "); then
		fail "tcpcraft process left: $(ps -o pid,args -p "$pid" | tail -n +2)"
		kill -KILL $pid 2>/dev/null
	fi
	if [ -s "$WORK/rss" ]; then
		local kb
		while read -r kb; do
			case $kb in *[!0-9]* | '') continue ;; esac
			[ "$kb" -gt "$peakrss" ] && peakrss=$kb
			[ "$kb" -le $((RSS_MB * 1024)) ] || fail "peak RSS $((kb / 1024)) MB above $RSS_MB MB"
		done <"$WORK/rss"
		: >"$WORK/rss"
	fi
}

# stop_peers: end the kernel peers of a step.
stop_peers() { for pid in "$@"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done; }

port=20000
step_download() {
	local size want got
	size=$(((RANDOM % 4096 + 1) * 1024))
	want=$(blob $size)
	port=$((port + 1))
	ip netns exec $S socat -u "FILE:$WORK/blob" "TCP-LISTEN:$port,reuseaddr" 2>>"$LOG" &
	local srv=$!
	sleep 0.2
	tcrun $C connect -q -w 10 --time-wait 0 10.0.2.20:$port </dev/null >"$WORK/out" 2>>"$LOG"
	local rc=$?
	stop_peers $srv
	got=$(sum "$WORK/out")
	[ $rc = 0 ] && [ "$got" = "$want" ] || fail "download of $size bytes: exit $rc, sha256 $got, want $want"
	conns=$((conns + 1)) bytes=$((bytes + size))
}

step_upload() {
	local size want got
	size=$(((RANDOM % 4096 + 1) * 1024))
	want=$(blob $size)
	port=$((port + 1))
	tcrun $S listen -q --time-wait 0 :$port </dev/null >"$WORK/out" 2>>"$LOG" &
	local lst=$!
	sleep 0.5
	timeout 120 ip netns exec $C socat -u "FILE:$WORK/blob" "TCP:10.0.2.20:$port,retry=20,interval=0.2" 2>>"$LOG"
	local rc=$?
	wait_or_kill $lst 60
	got=$(sum "$WORK/out")
	[ $rc = 0 ] && [ "$got" = "$want" ] || fail "upload of $size bytes: socat exit $rc, sha256 $got, want $want"
	conns=$((conns + 1)) bytes=$((bytes + size))
}

# wait_or_kill PID SECONDS: wait for a tcpcraft run to end, else fail.
wait_or_kill() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return; }
		sleep 0.1
	done
	fail "tcpcraft run $1 still running after $2 s"
	local p
	for p in $(pgrep -f "^$BIN "); do kill -INT "$p"; done
	sleep 2
	for p in $(pgrep -f "^$BIN "); do kill -KILL "$p"; done
	wait "$1" 2>/dev/null
}

step_echo() {
	local size want got hostile_too=${1:-}
	size=$(((RANDOM % 2048 + 1) * 1024))
	want=$(blob $size)
	port=$((port + 1))
	tcrun $S listen -q -k --echo --time-wait 0 :$port </dev/null >/dev/null 2>>"$LOG" &
	local lst=$!
	sleep 0.5
	local hpid=
	if [ -n "$hostile_too" ]; then
		hostile_fire $port &
		hpid=$!
	fi
	timeout 120 ip netns exec $C python3 - "$port" "$WORK/blob" "$WORK/out" <<'EOF' 2>>"$LOG"
import socket, sys, threading, time
port, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for i in range(50):
    try:
        s = socket.create_connection(("10.0.2.20", port), timeout=5)
        break
    except OSError:
        time.sleep(0.2)
s.settimeout(60)
data = open(src, "rb").read()
def writer():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=writer, daemon=True).start()
got = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
open(dst, "wb").write(got)
EOF
	local rc=$?
	[ -n "$hpid" ] && { wait "$hpid" 2>/dev/null; }
	kill -INT "$(tcpid listen $port)" 2>/dev/null
	wait_or_kill $lst 20
	got=$(sum "$WORK/out")
	[ $rc = 0 ] && [ "$got" = "$want" ] || fail "echo of $size bytes: client exit $rc, sha256 $got, want $want"
	conns=$((conns + 1)) bytes=$((bytes + 2 * size))
}

# hostile_fire PORT: random segments at the listening port and, once the
# echo client's connection is up, at its 4-tuple (blind injection: RFC
# 5961 wants a challenge ACK, not a reset, and the data must survive).
hostile_fire() {
	local i flags cport seq
	local all=(S R F A SA RA FA PA FPU none SF SR ECSA)
	for ((i = 0; i < 12; i++)); do
		flags=${all[RANDOM % ${#all[@]}]}
		seq=$((RANDOM * 65536 + RANDOM))
		cport=$(ip netns exec $C ss -Htn state established "( dport = :$1 )" 2>/dev/null | awk '{ split($3, a, ":"); print a[2]; exit }')
		if [ -n "$cport" ] && [ $((RANDOM % 2)) = 0 ]; then
			# At the live connection: its own source port (send's guard
			# then hides the client's traffic for 10 ms: more loss).
			ip netns exec $C "$BIN" send -q --wait 10ms --flags "$flags" --seq $seq --ack $((RANDOM * 65536)) \
				--sport "$cport" --payload "hostile$i" 10.0.2.20:$1 >/dev/null 2>>"$LOG"
		else
			ip netns exec $C "$BIN" send -q --wait 10ms --flags "$flags" --seq $seq --opt "mss=$((RANDOM % 70000 % 65536)),wscale=$((RANDOM % 15)),sackok,ts=$RANDOM:$RANDOM" \
				10.0.2.20:$1 >/dev/null 2>>"$LOG"
		fi
		hostile=$((hostile + 1))
		sleep 0.0$((RANDOM % 10))
	done
	echo $hostile >"$WORK/hostile"
}

step_kill() {
	local sig rc size
	local sigs=(INT TERM KILL)
	sig=${sigs[RANDOM % 3]}
	size=$((64 * 1024 * 1024))
	port=$((port + 1))
	ip netns exec $S socat -u /dev/zero "TCP-LISTEN:$port,reuseaddr" 2>>"$LOG" &
	local srv=$!
	sleep 0.2
	tcrun $C connect -q -w 10 --time-wait 0 10.0.2.20:$port </dev/null >/dev/null 2>>"$LOG" &
	local run=$!
	# The process first (ip netns exec and time start it; a loaded
	# machine takes a while), then a random moment of its run.
	local pid= i
	for ((i = 0; i < 100; i++)); do
		pid=$(tcpid connect $port)
		[ -n "$pid" ] && break
		sleep 0.1
	done
	if [ -z "$pid" ]; then
		fail "tcpcraft connect did not start within 10 s"
		wait $run
		stop_peers $srv
		return
	fi
	sleep 0.$((RANDOM % 9 + 1))$((RANDOM % 10))
	kill -$sig "$pid"
	wait $run
	rc=$?
	case $sig in
	INT | TERM) [ $rc = 130 ] || fail "SIG$sig: exit $rc, want 130" ;;
	KILL)
		# The guard is an nf_tables table its netlink socket owns: the
		# kernel removed it with the process. cleanup finds the rest
		# (there should be none), in the soak's namespaces only.
		ip netns exec $C "$BIN" cleanup --netns $C >>"$LOG" 2>&1 || fail "cleanup after SIGKILL failed"
		# Not asserted: the kernel peer stays ESTABLISHED until it
		# times out (no RST was sent); count it for the record.
		local est
		est=$(ip netns exec $S ss -Htn state established "( sport = :$port )" | wc -l)
		echo "$est" >>"$WORK/estab-after-kill"
		;;
	esac
	stop_peers $srv
	kills=$((kills + 1))
	conns=$((conns + 1))
}

say "soak $TAG: $MINUTES min, seed $SEED, loss up to $MAX_LOSS%, reordering up to $MAX_REORDER%, log $LOG"
end=$(($(date +%s) + MINUTES * 60))
while [ "$(date +%s)" -lt $end ]; do
	steps=$((steps + 1))
	loss=$((RANDOM % (MAX_LOSS + 1)))
	reorder=$((RANDOM % (MAX_REORDER + 1)))
	setfaults $loss $reorder
	kinds_list=(download upload echo hostile kill)
	kind=${kinds_list[RANDOM % 5]}
	kinds[$kind]=$((${kinds[$kind]:-0} + 1))
	before=$failures
	case $kind in
	download) step_download ;;
	upload) step_upload ;;
	echo) step_echo ;;
	hostile) step_echo hostile ;;
	kill) step_kill ;;
	esac
	[ -s "$WORK/hostile" ] && hostile=$(cat "$WORK/hostile")
	check_clean
	[ $failures = $before ] && say "step $steps $kind (loss $loss%, reorder $reorder%): ok"
done
setfaults 0 0
kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
RELAY_PID=
estab=0
[ -s "$WORK/estab-after-kill" ] && estab=$(awk '{ s += $1 } END { print s }' "$WORK/estab-after-kill")
teardown
left=$(ip netns list | grep -c "^$TAG-")
[ "$left" = 0 ] || { failures=$((failures + 1)); say "FAIL: $left soak namespaces left"; }
say "soak $TAG done: $MINUTES min, $steps steps (${kinds[download]:-0} download, ${kinds[upload]:-0} upload, ${kinds[echo]:-0} echo, ${kinds[hostile]:-0} hostile, ${kinds[kill]:-0} kill), $conns connections, $((bytes / 1048576)) MiB checked, $kills kills survived, $hostile hostile segments, peak RSS $((peakrss / 1024)) MB, peers left ESTABLISHED by SIGKILL $estab, failures $failures, leftovers 0"
[ $failures = 0 ]
