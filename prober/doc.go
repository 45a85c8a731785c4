// Package prober sends many crafted TCP probes over one session and
// says what came back: hping3's and nmap's half of tcpcraft, which
// `tcpcraft send` drives.
//
// A run probes targets (ParseTarget, Expand: HOST:PORTS with addresses,
// prefixes or names, IPv4 and IPv6), each with Count probes: at a steady
// Rate, as fast as the machine goes (Flood), or one TTL after another
// (Traceroute). Everything a run needs is set up once and torn down once,
// whatever ends it (the last answer, a deadline, or the context, i.e.
// Ctrl-C): one RST guard covering the block of source ports the run sends
// from (guard.InstallScope), one capture whose BPF program admits the
// answers to those ports and the ICMP errors that quote probes sent from
// them (capture.OpenScope), one AF_PACKET sender per interface that puts
// batches of packets straight on the device (capture.LinkSender) for next
// hops the kernel has resolved, and the raw sockets (capture.Injector) for
// the rest.
//
// Answers are matched to the probe that drew them: a TCP segment by its
// 4-tuple and the acknowledgement of the probe's sequence number (each
// probe's number is in its sequence number, unless the user fixed it), an
// ICMP error by the datagram it quotes (parsed by craft through
// golang.org/x/net/icmp). Each target gets a verdict with its reason, as
// nmap gives them — open (syn-ack), closed (rst), filtered (no-response
// after one retransmission, or icmp-unreach-<code>), unfiltered and
// open|filtered for ACK and FIN/NULL/Xmas probes — and a traceroute gets
// its hops. A SYN-ACK is answered with the RST fsm.ResetFor prescribes, so
// no peer is left half-open (unless NoReset).
//
// Round-trip times are wire to wire: from the kernel's transmit timestamp
// of the probe (the senders' TxStamps: when the device's driver took it)
// to the answer's capture time, both the kernel's, on the system clock,
// so that neither the system call nor this process's scheduling is in
// them. Without a timestamp (a device that gives none, SendTimes) a probe
// is timed from just before its send. The same answers timed from user
// space, before the send to the read, are kept apart (Stats.RTTUser*).
//
// The send path, the receive path and the timers run in one loop on the
// caller's goroutine: answers are read from the capture between batches
// of probes, and a probe is declared unanswered only after the capture
// has been drained, so a busy machine delays a verdict but never
// falsifies one. The capture and the device senders use the kernel's
// memory-mapped rings for a run that needs their throughput; a small run
// (few probes, or slow ones: Config.Rings) reads the capture's queue and
// sends with sendmmsg, sparing the RCU grace period each ring costs to
// set up. All sockets are opened on the calling thread, in its network
// namespace.
//
// What this package must not do: print (it hands events to a Handler and
// returns a Result; cmd prints), decide a TCP reply itself (fsm does:
// fsm.ResetFor), touch the firewall except through package guard, or keep
// global mutable state.
package prober
