#!/usr/bin/env bash
# scripts/demo.sh — the README's first command: install what the lab needs
# (iproute2, iptables) if missing, then run `tcpcraft lab demo`: a
# two-namespace lab, a kernel HTTP server in one namespace, and tcpcraft
# fetching a page from it in the other, every segment shown. Run as root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH=/usr/local/go/bin:$PATH
bash scripts/deps.sh demo
exec go run . lab demo "$@"
