#!/usr/bin/env python3
"""soak-relay.py IF_A IF_B REORDER SEED -- an Ethernet relay for scripts/soak.sh.

Forwards every frame that arrives on IF_A out of IF_B and back, unchanged,
through two AF_PACKET sockets, and reorders: with probability REORDER a
frame is held back and sent after the next frame going the same way (or
after 5 ms without one). The tcpcraft lab has no netem, and nftables cannot
reorder; a relay in a namespace of its own between the two ends can.
Frames larger than the interface MTU (offloads must be off) are dropped.
It runs until killed and prints its counts on SIGTERM.
"""
import random
import select
import signal
import socket
import sys

ETH_P_ALL = 3
PACKET_OUTGOING = 4


def main():
    if_a, if_b, reorder, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    socks = []
    for name in (if_a, if_b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        socks.append(s)
    a, b = socks
    peer = {a: b, b: a}
    held = {a: None, b: None}  # per output socket: a frame held back
    counts = {"forwarded": 0, "reordered": 0, "dropped": 0}

    def stop(*_):
        print("relay: %(forwarded)d frames forwarded, %(reordered)d reordered, %(dropped)d dropped" % counts, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def send(out, frame):
        try:
            out.send(frame)
            counts["forwarded"] += 1
        except OSError:
            counts["dropped"] += 1

    while True:
        ready, _, _ = select.select([a, b], [], [], 0.005)
        if not ready:
            for out in (a, b):
                if held[out] is not None:
                    send(out, held[out])
                    held[out] = None
            continue
        for s in ready:
            for _ in range(64):
                try:
                    frame, addr = s.recvfrom(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own sends, seen again
                out = peer[s]
                if held[out] is None and rng.random() < reorder:
                    held[out] = frame
                    counts["reordered"] += 1
                    continue
                send(out, frame)
                if held[out] is not None:
                    send(out, held[out])
                    held[out] = None


if __name__ == "__main__":
    main()
