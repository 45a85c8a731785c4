#!/bin/bash
# capture.sh records the kernel captures in this directory. It was run once
# (as root, on Debian 12 with tcpdump 4.99.3, curl, socat, python3 and
# ethtool from apt); the tests only read its output. It makes two network
# namespaces joined by a veth pair (client 10.0.2.21 / fd00:2::21, server
# 10.0.2.20 / fd00:2::20), turns checksum and segmentation offload off on
# both ends so every checksum on the wire is final, captures, and deletes
# the namespaces on exit (which removes the veth pair too).
#
#   craft/testdata/capture.sh craft/testdata
#
# linux-http.pcap: curl GET to python3 -m http.server (IPv4), curl to a
#   closed port (SYN answered by RST|ACK), and a socat exchange over IPv6;
#   tcpdump -i <veth> on the client side (Ethernet framing).
# linux-sll.pcap, linux-sll2.pcap: a socat echo exchange captured on the
#   "any" device with Linux cooked headers v1 and v2.
set -eu
out=${1:?usage: capture.sh OUTDIR}
A=craftcap-a; B=craftcap-b
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $A; ip netns add $B
ip link add craftcap-va netns $A type veth peer name craftcap-vb netns $B
ip -n $A addr add 10.0.2.21/24 dev craftcap-va
ip -n $B addr add 10.0.2.20/24 dev craftcap-vb
ip -n $A addr add fd00:2::21/64 dev craftcap-va nodad
ip -n $B addr add fd00:2::20/64 dev craftcap-vb nodad
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set craftcap-va up; ip -n $B link set craftcap-vb up
ip netns exec $A ethtool -K craftcap-va tx off rx off tso off gso off gro off >/dev/null
ip netns exec $B ethtool -K craftcap-vb tx off rx off tso off gso off gro off >/dev/null

www=$(mktemp -d)
echo "hello from the server namespace" > "$www/index.html"
ip netns exec $B python3 -m http.server 80 --bind 10.0.2.20 --directory "$www" >/dev/null 2>&1 &
http=$!
ip netns exec $B socat TCP6-LISTEN:8080,bind=[fd00:2::20],reuseaddr SYSTEM:'echo pong' >/dev/null 2>&1 &
pong=$!
ip netns exec $B socat TCP-LISTEN:7,bind=10.0.2.20,reuseaddr SYSTEM:cat >/dev/null 2>&1 &
echo7=$!
sleep 1

ip netns exec $A tcpdump -i craftcap-va -U -w "$out/linux-http.pcap" tcp >/dev/null 2>&1 &
d1=$!
sleep 1
ip netns exec $A curl -s http://10.0.2.20/index.html >/dev/null
ip netns exec $A curl -s --max-time 2 http://10.0.2.20:81/ || true
echo ping | ip netns exec $A socat - TCP6:[fd00:2::20]:8080 >/dev/null
sleep 1
kill $d1; wait $d1 || true

ip netns exec $A tcpdump -i any -y LINUX_SLL -U -w "$out/linux-sll.pcap" tcp >/dev/null 2>&1 &
d2=$!
ip netns exec $A tcpdump -i any -y LINUX_SLL2 -U -w "$out/linux-sll2.pcap" tcp >/dev/null 2>&1 &
d3=$!
sleep 1
echo echo-me | ip netns exec $A socat -t 1 - TCP:10.0.2.20:7 >/dev/null
sleep 1
kill $d2 $d3; wait $d2 $d3 || true
kill $http $pong $echo7 2>/dev/null || true
wait || true
rm -rf "$www"
