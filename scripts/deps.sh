#!/usr/bin/env bash
# scripts/deps.sh [demo|test] — install the Debian packages tcpcraft needs at
# run time (demo) or for its test suite (test, the default), if any is
# missing. Quick and silent when everything is there. Run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# tool:package pairs.
demo=(ip:iproute2 iptables:iptables nft:nftables)
test=("${demo[@]}" tcpdump:tcpdump tshark:tshark socat:socat curl:curl python3:python3 setpriv:util-linux ps:procps ethtool:ethtool groff:groff-base git:git nmap:nmap hping3:hping3)
case "${1:-test}" in
demo) want=("${demo[@]}") ;;
test) want=("${test[@]}") ;;
*) echo "usage: scripts/deps.sh [demo|test]" >&2; exit 2 ;;
esac

missing=()
for pair in "${want[@]}"; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "scripts/deps.sh: missing packages (${missing[*]}); run as root to install them" >&2
	exit 1
fi
echo "== installing ${missing[*]}"
# tshark asks whether non-root users may capture; answer no, without asking.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
