#!/usr/bin/env bash
# conformance.sh — run packetdrill and `tcpcraft probe` on every script of
# a packetdrill suite, from a checkout of the suite (never copied here), and
# print how many each passes and which scripts packetdrill passes and
# tcpcraft does not, with tcpcraft's reason.
#
#   scripts/conformance.sh [options] DIR
#
# DIR is packetdrill's gtests/net/tcp (github.com/google/packetdrill) or the
# Linux kernel's tools/testing/selftests/net/packetdrill. Every script runs
# with the command lines packetdrill's run_all.py and the kernel's
# ksft_runner.sh give it (IPv4: 192.168.0.1 -> 192.0.2.1; IPv6: mtu 1520,
# fd3d:0a0b:17d6::1 -> fd3d:fa7b:d17d::1; their -D definitions, TFO_COOKIE
# among them; in packetdrill's suite scripts named *v4.pkt run only over
# IPv4, *v6.pkt only over IPv6, in the kernel's a script with an
# --ip_version= line only over that family), each in a fresh network namespace:
# packetdrill under `unshare -n`, tcpcraft probe in the namespace (with
# packetdrill's tun device) it makes for every script. Nothing runs in the
# root namespace's network.
#
# Options:
#   --packetdrill BIN   packetdrill binary (default: packetdrill in PATH)
#   --tcpcraft BIN      tcpcraft binary (default: ./tcpcraft, else PATH)
#   --before BIN        another tcpcraft binary to measure in the same run
#                       (e.g. the previous release), shown as "before"
#   --families LIST     "ipv4 ipv6" (default) or one of them
#   --only REGEX        only scripts whose path matches REGEX
#   --timeout SECS      per script and tool (default 120)
#   --out DIR           keep every run's output there (default: a temp dir)
#   --allow-cubic       add cubic to net.ipv4.tcp_allowed_congestion_control
#                       for the run and restore it afterwards (see below)
#   --report            run nothing: print the table of the run kept in
#                       --out DIR (its results.tsv) again
#
# Congestion control: the suites' defaults.sh sets
# net.ipv4.tcp_congestion_control=cubic. In a child namespace the kernel
# accepts only algorithms listed in the host's (global)
# net.ipv4.tcp_allowed_congestion_control; where cubic is not, both tools
# run such scripts with the namespace's inherited default and the scripts
# that depend on cubic fail for both alike. This script does not change the
# host unless asked with --allow-cubic, which says what it changes and puts
# the old value back on exit.
#
# Needs root (namespaces, raw sockets), ip, unshare, timeout.
set -u

pd=$(command -v packetdrill || true)
tc=""
before=""
families="ipv4 ipv6"
only=""
timeout_s=120
out=""
allow_cubic=0
report=0

die() { echo "conformance.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--packetdrill) pd=$2; shift 2 ;;
	--tcpcraft) tc=$2; shift 2 ;;
	--before) before=$2; shift 2 ;;
	--families) families=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--allow-cubic) allow_cubic=1; shift ;;
	--report) report=1; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d'; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || die "want one DIR (packetdrill's gtests/net/tcp or Linux's tools/testing/selftests/net/packetdrill)"
dir=$(cd "$1" && pwd) || die "no directory $1"
if [ -z "$tc" ]; then
	if [ -x ./tcpcraft ]; then tc=$(pwd)/tcpcraft; else tc=$(command -v tcpcraft || true); fi
fi
if [ $report = 1 ]; then
	[ -n "$out" ] && [ -s "$out/results.tsv" ] || die "--report needs --out DIR of an earlier run"
	[ -n "$before" ] || ! grep -q '^before' "$out/results.tsv" || before=before
fi
if [ $report = 0 ]; then
	[ -n "$pd" ] && [ -x "$pd" ] || die "no packetdrill binary (give --packetdrill BIN)"
	[ -n "$tc" ] && [ -x "$tc" ] || die "no tcpcraft binary (give --tcpcraft BIN)"
	[ -z "$before" ] || [ -x "$before" ] || die "--before $before: not an executable"
fi
for f in $families; do
	case $f in ipv4|ipv6) ;; *) die "--families: ipv4 and/or ipv6, not $f" ;; esac
done
case $timeout_s in ''|*[!0-9]*) die "--timeout wants seconds" ;; esac
[ $report = 1 ] || [ "$(id -u)" = 0 ] || die "needs root (network namespaces, raw sockets)"
for t in ip unshare timeout; do command -v $t >/dev/null || die "needs $t"; done

if [ $report = 1 ]; then
	:
elif [ -z "$out" ]; then
	out=$(mktemp -d /tmp/conformance.XXXXXX)
else
	mkdir -p "$out" || die "cannot create $out"
fi

acc=/proc/sys/net/ipv4/tcp_allowed_congestion_control
if [ $report = 1 ]; then
	:
elif [ $allow_cubic = 1 ]; then
	old_allowed=$(cat $acc)
	case " $old_allowed " in
	*" cubic "*) ;;
	*)
		echo "conformance.sh: --allow-cubic: net.ipv4.tcp_allowed_congestion_control was \"$old_allowed\", now \"$old_allowed cubic\" until this run ends" >&2
		trap 'echo "$old_allowed" > '$acc'; echo "conformance.sh: net.ipv4.tcp_allowed_congestion_control restored to \"$old_allowed\"" >&2' EXIT
		echo "$old_allowed cubic" > $acc || die "cannot write $acc"
		;;
	esac
else
	case " $(cat $acc) " in
	*" cubic "*) ;;
	*) echo "conformance.sh: note: cubic is not in net.ipv4.tcp_allowed_congestion_control ($(cat $acc)): scripts that set it run with the namespace's default congestion control, for both tools (--allow-cubic changes that for the run)" >&2 ;;
	esac
fi


mapfile -t scripts < <(cd "$dir" && find . -name '*.pkt' -not -path './common/*' | sed 's|^\./||' | LC_ALL=C sort)
if [ -n "$only" ]; then
	mapfile -t scripts < <(printf '%s\n' "${scripts[@]}" | grep -E -- "$only")
fi
[ ${#scripts[@]} -gt 0 ] || die "no .pkt scripts under $dir"

# The two runners' command lines. Both define the Fast Open cookie the
# suites' defaults.sh key gives for these addresses (TFO_COOKIE); run_all.py
# (packetdrill's suite) adds --send_omit_free and, over IPv4, CODE;
# ksft_runner.sh (the kernel's) adds TFO_COOKIE_ZERO.
args_ipv4="--ip_version=ipv4 --local_ip=192.168.0.1 --gateway_ip=192.168.0.1 --netmask_ip=255.255.0.0 --remote_ip=192.0.2.1 -D TFO_COOKIE=3021b9d889017eeb"
args_ipv6="--ip_version=ipv6 --mtu=1520 --local_ip=fd3d:0a0b:17d6::1 --gateway_ip=fd3d:0a0b:17d6:8888::1 --remote_ip=fd3d:fa7b:d17d::1 -D TFO_COOKIE=c1d1e9742a47a9bc"
if [ -e "$dir/ksft_runner.sh" ]; then
	ksft=1
	omit=
	args_ipv4="$args_ipv4 -D TFO_COOKIE_ZERO=b7c12350a90dc8f5 -D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR"
	args_ipv6="$args_ipv6 -D TFO_COOKIE_ZERO=82af1a8f9a205c34 -D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR"
else
	ksft=0
	omit=--send_omit_free
	args_ipv4="$args_ipv4 -D CODE=host_unreachable -D CMSG_LEVEL_IP=SOL_IP -D CMSG_TYPE_RECVERR=IP_RECVERR"
	args_ipv6="$args_ipv6 -D CMSG_LEVEL_IP=SOL_IPV6 -D CMSG_TYPE_RECVERR=IPV6_RECVERR"
fi

results=$out/results.tsv
[ $report = 1 ] || : > "$results"
tools="packetdrill tcpcraft"
[ -n "$before" ] && tools="$tools before"

run_one() { # tool family script -> rc in $out/<tool>.<family>/<script>.out
	local tool=$1 fam=$2 s=$3 args log rc
	eval "args=\$args_$fam"
	log=$out/$tool.$fam/$s.out
	mkdir -p "$(dirname "$log")"
	case $tool in
	packetdrill)
		# A fresh network namespace of its own (as run_all.py's
		# in_netns.sh), from the script's directory.
		(cd "$dir/$(dirname "$s")" && timeout -k 5 "$timeout_s" unshare -n sh -c \
			'ip link set lo up && exec "$0" "$@"' "$pd" $omit $args "$(basename "$s")") > "$log" 2>&1
		rc=$? ;;
	tcpcraft)
		timeout -k 5 "$timeout_s" "$tc" probe $omit $args "$dir/$s" > "$log" 2>&1
		rc=$? ;;
	before)
		timeout -k 5 "$timeout_s" "$before" probe $args "$dir/$s" > "$log" 2>&1
		rc=$? ;;
	esac
	printf '%s\t%s\t%s\t%s\n' "$tool" "$fam" "$s" "$rc" >> "$results"
}

total=0
[ $report = 1 ] && families=$(cut -f2 "$results" | awk '!seen[$0]++' | tr '\n' ' ')
for fam in $families; do
	[ $report = 1 ] && break
	for s in "${scripts[@]}"; do
		# run_all.py runs *v4.pkt over IPv4 only and *v6.pkt over IPv6
		# only; ksft_runner.sh runs a script that names one family in a
		# --ip_version= line over that family only.
		if [ $ksft = 1 ]; then
			only_fam=$(grep -m1 -E '^--ip_version=' "$dir/$s" | cut -d= -f2)
			[ -z "$only_fam" ] || [ "$only_fam" = "$fam" ] || continue
		else
			case $fam:$s in ipv4:*v6.pkt|ipv6:*v4.pkt) continue ;; esac
		fi
		total=$((total + 1))
		for tool in $tools; do
			run_one $tool $fam "$s"
		done
		printf '\r%d runs' $total >&2
	done
done
echo >&2

# The table.
reason() { # first FAIL line of tcpcraft's output, shortened
	local f=$1
	grep -m1 -E '^FAIL |tcpcraft probe:|error' "$f" 2>/dev/null | sed -E 's/^FAIL //; s|'"$dir"'/||; s/ \([0-9.]+s\)$//' | cut -c1-160
}
echo "suite: $dir"
echo "packetdrill: $pd; tcpcraft: $tc${before:+; before: $before}; outputs: $out"
echo
printf '| family | scripts | packetdrill |'
[ -n "$before" ] && printf ' tcpcraft before |'
printf ' tcpcraft | packetdrill passes, tcpcraft fails | tcpcraft passes, packetdrill fails |\n'
printf '|---|---|---|'
[ -n "$before" ] && printf -- '---|'
printf -- '---|---|---|\n'
for fam in $families; do
	n=$(awk -F'\t' -v f=$fam '$1=="packetdrill" && $2==f' "$results" | wc -l)
	p=$(awk -F'\t' -v f=$fam '$1=="packetdrill" && $2==f && $4==0' "$results" | wc -l)
	t=$(awk -F'\t' -v f=$fam '$1=="tcpcraft" && $2==f && $4==0' "$results" | wc -l)
	b=$(awk -F'\t' -v f=$fam '$1=="before" && $2==f && $4==0' "$results" | wc -l)
	pt=$(awk -F'\t' -v f=$fam '$2==f {r[$1]=$4; k=$3} $1=="tcpcraft" && $2==f && r["packetdrill"]==0 && $4!=0 {c++} END {print c+0}' "$results")
	tp=$(awk -F'\t' -v f=$fam '$2==f {r[$1]=$4} $1=="tcpcraft" && $2==f && r["packetdrill"]!=0 && $4==0 {c++} END {print c+0}' "$results")
	printf '| %s | %d | %d |' $fam $n $p
	[ -n "$before" ] && printf ' %d |' $b
	printf ' %d | %d | %d |\n' $t $pt $tp
done
echo
echo "Scripts packetdrill passes and tcpcraft does not:"
awk -F'\t' '{r[$1 FS $2 FS $3]=$4} END {for (k in r) {split(k, a, FS); if (a[1]=="packetdrill" && r[k]==0 && r["tcpcraft" FS a[2] FS a[3]]!=0) print a[2] "\t" a[3]}}' "$results" | LC_ALL=C sort |
while IFS=$'\t' read -r fam s; do
	printf -- '- %s %s: %s\n' "$fam" "$s" "$(reason "$out/tcpcraft.$fam/$s.out")"
done
