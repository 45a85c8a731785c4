// Package capture is tcpcraft's link to the real world, and the only package
// that touches sockets and the firewall:
//
//   - Capture: an AF_PACKET socket (SOCK_DGRAM, frames start at the IPv4
//     header) with a memory-mapped TPACKET_V2 receive ring and a classic BPF
//     filter that admits exactly one TCP flow (FilterProgram). The filter is
//     attached before the socket can see any traffic, outgoing frames are
//     ignored (PACKET_IGNORE_OUTGOING), and every frame reports its capture
//     time and whether the kernel left its checksum unfinished
//     (TP_STATUS_CSUMNOTREADY).
//   - Injector: a raw IPv4 socket (IPPROTO_RAW, so IP_HDRINCL) that sends
//     complete IP packets built elsewhere.
//   - Guard: the "RST guard", a firewall rule scoped to tcpcraft's own
//     (address, port) that keeps the local kernel from answering the peer
//     with RST, plus CleanupStale for rules left by killed runs.
//   - LookupRoute and EphemeralPort: which interface, source address and
//     port to use.
//   - CheckPrivileges: the root / CAP_NET_RAW+CAP_NET_ADMIN check made
//     before anything changes the system.
//   - PcapWriter: a pcap file (LINKTYPE_RAW) of every segment sent and
//     received.
//
// What this package must not do: no TCP logic (no state, no sequence
// numbers, no retransmission), no parsing beyond what the flow filter and
// the injector's destination lookup need, and no global mutable state (every
// path, pid and random source is a parameter or a field, so tests can point
// them elsewhere). Everything acts in the network namespace of the calling
// OS thread, which is how tcpcraft works under `ip netns exec` and how tests
// open sockets inside namespaces they made.
package capture
