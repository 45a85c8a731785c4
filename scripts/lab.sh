#!/usr/bin/env bash
# scripts/lab.sh up|down|status — the tcpcraft lab without Go: two network
# namespaces joined by a veth pair, the same lab as `tcpcraft lab` and
# lab.DefaultConfig:
#
#   client namespace tcpcraft-client, veth end tcv-client, 10.0.2.21/24, fd00:2::21/64
#   server namespace tcpcraft-server, veth end tcv-server, 10.0.2.20/24, fd00:2::20/64
#
# Names and addresses can be overridden with TCPCRAFT_CLIENT_NS,
# TCPCRAFT_SERVER_NS, TCPCRAFT_CLIENT_IF, TCPCRAFT_SERVER_IF,
# TCPCRAFT_CLIENT_ADDR, TCPCRAFT_SERVER_ADDR, TCPCRAFT_CLIENT_ADDR6 and
# TCPCRAFT_SERVER_ADDR6 (the same variables `tcpcraft lab` reads; both
# IPv6 ones set empty make an IPv4-only lab). The IPv6 addresses are added
# with nodad (no duplicate address detection), so they work at once.
#
# up is idempotent (what exists is reused, what is missing is added) and
# creates the veth pair directly inside the namespaces, so the host's own
# namespace never changes. down removes both namespaces (the veth pair and
# addresses go with them). status prints what exists and ends with
# "lab: up", "lab: down" or "lab: partial"; it exits 0 in all three cases.
set -euo pipefail

client_ns=${TCPCRAFT_CLIENT_NS:-tcpcraft-client}
server_ns=${TCPCRAFT_SERVER_NS:-tcpcraft-server}
client_if=${TCPCRAFT_CLIENT_IF:-tcv-client}
server_if=${TCPCRAFT_SERVER_IF:-tcv-server}
client_addr=${TCPCRAFT_CLIENT_ADDR:-10.0.2.21/24}
server_addr=${TCPCRAFT_SERVER_ADDR:-10.0.2.20/24}
client_addr6=${TCPCRAFT_CLIENT_ADDR6-fd00:2::21/64}
server_addr6=${TCPCRAFT_SERVER_ADDR6-fd00:2::20/64}

die() {
	echo "lab.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 up|down|status" >&2
	exit 2
}

need_root() {
	[ "$(id -u)" = 0 ] || die "needs root or CAP_NET_ADMIN (and CAP_SYS_ADMIN for network namespaces); run it with sudo"
}

need_ip() {
	command -v ip >/dev/null 2>&1 || die "the ip command (Debian package iproute2) is needed"
}

check_names() {
	local n
	for n in "$client_if" "$server_if"; do
		[ -n "$n" ] && [ "${#n}" -le 15 ] || die "interface name '$n' must be 1 to 15 bytes"
	done
	for n in "$client_ns" "$server_ns" "$client_if" "$server_if"; do
		case $n in */* | *[[:space:]]* | . | ..) die "name '$n' is not usable" ;; esac
	done
	[ "$client_ns" != "$server_ns" ] || die "client and server namespace are both '$client_ns'"
	[ "$client_if" != "$server_if" ] || die "client and server interface are both '$client_if'"
	for n in "$client_addr" "$server_addr"; do
		[[ $n =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$ ]] || die "address '$n' must look like 10.0.2.21/24"
	done
	if [ -n "$client_addr6" ] || [ -n "$server_addr6" ]; then
		[ -n "$client_addr6" ] && [ -n "$server_addr6" ] || die "give both IPv6 addresses, or neither"
		for n in "$client_addr6" "$server_addr6"; do
			[[ $n =~ ^[0-9A-Fa-f:]+:[0-9A-Fa-f:]*/[0-9]+$ ]] || die "IPv6 address '$n' must look like fd00:2::21/64 (or set both empty for none)"
		done
		[ "$client_addr6" != "$server_addr6" ] || die "client and server IPv6 address are both '$client_addr6'"
	fi
}

ns_exists() { [ -e "/var/run/netns/$1" ]; }

# link_exists NS DEV
link_exists() { ip -n "$1" link show dev "$2" >/dev/null 2>&1; }

# link_kind NS DEV prints the device kind (veth, bridge, ...), or nothing:
# in `ip -d -o link` output the kind is the word after "maxmtu N \".
link_kind() {
	ip -d -n "$1" -o link show dev "$2" 2>/dev/null |
		sed -nE 's/.* maxmtu [0-9]+ \\ +([A-Za-z0-9_]+) .*/\1/p' || true
}

# peer_ns NS DEV prints the namespace of DEV's veth peer ("link-netns X").
peer_ns() {
	ip -n "$1" -o link show dev "$2" 2>/dev/null |
		awk '{ for (i = 1; i < NF; i++) if ($i == "link-netns") print $(i + 1) }'
}

# peered: both veth ends exist and each one's peer lives in the other namespace.
peered() {
	[ "$(peer_ns "$client_ns" "$client_if")" = "$server_ns" ] &&
		[ "$(peer_ns "$server_ns" "$server_if")" = "$client_ns" ]
}

# has_addr NS DEV PREFIX (IPv4 or IPv6)
# (grep reads all of the output: with -q it would stop at the first match
# and ip, killed by SIGPIPE, would fail the pipeline under pipefail.)
has_addr() {
	case $3 in
	*:*) ip -n "$1" -o -6 addr show dev "$2" 2>/dev/null | grep -iw "inet6 $3" >/dev/null ;;
	*) ip -n "$1" -o -4 addr show dev "$2" 2>/dev/null | grep -w "inet $3" >/dev/null ;;
	esac
}

# addrs NS DEV prints DEV's addresses, IPv4 then IPv6 (not link-local).
addrs() {
	{
		ip -n "$1" -o -4 addr show dev "$2" 2>/dev/null | awk '{print $4}'
		ip -n "$1" -o -6 addr show dev "$2" scope global 2>/dev/null | awk '{print $4}'
	} | paste -sd' '
}

# is_up NS DEV: administratively up
is_up() { ip -n "$1" -o link show dev "$2" 2>/dev/null | grep -qE '<([^>]*,)?UP(,[^>]*)?>'; }

# rollback undoes what this run of up did, newest first, if up fails.
undo=()
rollback() {
	local i
	for ((i = ${#undo[@]} - 1; i >= 0; i--)); do
		eval "${undo[i]}" >/dev/null 2>&1 || true
	done
}

up() {
	need_root
	need_ip
	check_names
	trap 'rc=$?; if [ $rc -ne 0 ]; then echo "lab.sh: up failed; undoing what it did" >&2; rollback; fi' EXIT

	local ns
	for ns in "$client_ns" "$server_ns"; do
		if ! ns_exists "$ns"; then
			ip netns add "$ns"
			undo+=("ip netns delete '$ns'")
			echo "created namespace $ns"
		fi
	done

	local ck sk
	ck=$(link_kind "$client_ns" "$client_if")
	sk=$(link_kind "$server_ns" "$server_if")
	if link_exists "$client_ns" "$client_if" && [ "$ck" != veth ]; then
		die "$client_if in $client_ns exists but is not a veth; remove it or choose another name"
	fi
	if link_exists "$server_ns" "$server_if" && [ "$sk" != veth ]; then
		die "$server_if in $server_ns exists but is not a veth; remove it or choose another name"
	fi
	if ! peered; then
		# A half pair is stale: deleting one end deletes its peer too.
		ip -n "$client_ns" link del dev "$client_if" 2>/dev/null || true
		ip -n "$server_ns" link del dev "$server_if" 2>/dev/null || true
		ip link add "$client_if" netns "$client_ns" type veth peer name "$server_if" netns "$server_ns"
		undo+=("ip -n '$client_ns' link del dev '$client_if'")
		echo "created veth pair $client_if ($client_ns) <-> $server_if ($server_ns)"
	fi

	# Links up first, addresses after (see lab/lab.go).
	for spec in "$client_ns lo" "$server_ns lo" "$client_ns $client_if" "$server_ns $server_if"; do
		read -r ns dev <<<"$spec"
		if ! is_up "$ns" "$dev"; then
			# No duplicate address detection for the link-local address
			# either: usable at once when the link comes up.
			[ "$dev" = lo ] || ip netns exec "$ns" sh -c "echo 0 > /proc/sys/net/ipv6/conf/$dev/accept_dad" 2>/dev/null || true
			ip -n "$ns" link set dev "$dev" up
			undo+=("ip -n '$ns' link set dev '$dev' down")
			echo "set $dev up in $ns"
		fi
	done
	local spec dev addr nodad
	for spec in "$client_ns $client_if $client_addr" "$server_ns $server_if $server_addr" \
		"$client_ns $client_if $client_addr6" "$server_ns $server_if $server_addr6"; do
		read -r ns dev addr <<<"$spec"
		[ -n "$addr" ] || continue
		nodad=
		case $addr in *:*) nodad=nodad ;; esac
		if ! has_addr "$ns" "$dev" "$addr"; then
			ip -n "$ns" addr add "$addr" dev "$dev" $nodad
			undo+=("ip -n '$ns' addr del '$addr' dev '$dev'")
			echo "added $addr to $dev in $ns"
		fi
	done
	trap - EXIT
	echo "lab is up: client $client_addr${client_addr6:+ $client_addr6} in namespace $client_ns ($client_if) <-> server $server_addr${server_addr6:+ $server_addr6} in namespace $server_ns ($server_if)"
}

down() {
	check_names
	local ns removed=0
	for ns in "$client_ns" "$server_ns"; do
		if ns_exists "$ns"; then
			need_root
			need_ip
			ip netns delete "$ns"
			echo "removed namespace $ns"
			removed=1
		fi
	done
	[ "$removed" = 1 ] || echo "nothing to remove"
	echo "lab is down"
}

status() {
	check_names
	need_ip
	local problems=() present=0 role ns dev addr addr6
	for role in client server; do
		if [ "$role" = client ]; then
			ns=$client_ns dev=$client_if addr=$client_addr addr6=$client_addr6
		else
			ns=$server_ns dev=$server_if addr=$server_addr addr6=$server_addr6
		fi
		if ! ns_exists "$ns"; then
			echo "$role namespace $ns: absent"
			problems+=("namespace $ns does not exist")
			continue
		fi
		present=1
		need_root
		echo "$role namespace $ns: present"
		is_up "$ns" lo && echo "  lo: up" || { echo "  lo: down"; problems+=("lo in $ns is down"); }
		if ! link_exists "$ns" "$dev"; then
			echo "  $dev: absent"
			problems+=("$dev does not exist in $ns")
			continue
		fi
		local state=down
		is_up "$ns" "$dev" && state=up || problems+=("$dev in $ns is down")
		has_addr "$ns" "$dev" "$addr" || problems+=("$dev in $ns lacks address $addr")
		[ -z "$addr6" ] || has_addr "$ns" "$dev" "$addr6" || problems+=("$dev in $ns lacks address $addr6")
		[ "$(link_kind "$ns" "$dev")" = veth ] || problems+=("$dev in $ns is not a veth")
		echo "  $dev: $(link_kind "$ns" "$dev"), $state, $(addrs "$ns" "$dev")"
	done
	if [ "$present" = 1 ] && link_exists "$client_ns" "$client_if" && link_exists "$server_ns" "$server_if" && ! peered; then
		problems+=("$client_if and $server_if are not the two ends of one veth pair")
	fi
	if [ "$present" = 0 ]; then
		echo "lab: down"
	elif [ "${#problems[@]}" = 0 ]; then
		echo "lab: up"
	else
		echo "lab: partial"
		printf '  problem: %s\n' "${problems[@]}"
	fi
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*) usage ;;
esac
