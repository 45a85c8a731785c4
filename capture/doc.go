// Package capture is tcpcraft's link to the real world: the sockets that
// read and write packets, and the kernel lookups that say which interface,
// addresses and port to use for them.
//
// Both IP families go the same way: a Flow's addresses say whether it is
// IPv4, IPv6 or both, and every socket below takes packets of either.
//
//   - Capture: an AF_PACKET socket (SOCK_DGRAM, frames start at the IP
//     header) with a memory-mapped TPACKET_V2 receive ring, or without one
//     (Config.Queue: frames read from the socket's queue with recvmmsg,
//     which spares the RCU grace periods a ring costs to set up and tear
//     down), and a classic BPF filter that admits exactly one TCP flow
//     (FilterProgram, one program for both families). The filter is
//     attached before the socket can see any traffic, outgoing frames are
//     ignored (PACKET_IGNORE_OUTGOING), and every frame reports its capture
//     time and whether the kernel left its checksum unfinished
//     (TP_STATUS_CSUMNOTREADY).
//   - OpenScope: a Capture for a prober run, whose filter (ScopeProgram)
//     admits the TCP answers to a block of source ports and the ICMP and
//     ICMPv6 errors that quote segments sent from it.
//   - Injector: raw IPv4 and IPv6 sockets (IPPROTO_RAW, so IP_HDRINCL and
//     IPV6_HDRINCL) that send complete IP packets built elsewhere, one or
//     a batch (sendmmsg) at a time.
//   - LinkSender: an AF_PACKET socket with a transmit ring (or without
//     one, LinkConfig.NoRing: sendmmsg) and PACKET_QDISC_BYPASS that puts
//     batches of IP packets straight on a device, to next hops whose
//     link-layer addresses Neighbours reads from the kernel's table (or
//     asks the kernel to resolve).
//   - GSOSender: an AF_PACKET socket with PACKET_VNET_HDR that hands the
//     kernel TCP super-segments to cut (segmentation offload,
//     VIRTIO_NET_HDR_GSO_TCPV4 and _TCPV6).
//   - Link and GSOLink: a Capture and an Injector (and a GSOSender) in the
//     shape the stack drives, including the choice of socket per packet.
//   - LookupRoute, InterfaceRoute, AddressRoute, HostAddresses,
//     EphemeralPort and PortBlock: which interface, source address (the
//     kernel's RFC 6724 choice for IPv6), MTU and port or block of ports to
//     use. They live here, beside the
//     sockets, because the link is opened on what they answer (the
//     interface index, the next hop whose link-layer address the GSOSender
//     needs, the MTU) and they ask the same kernel, in the same namespace,
//     through the same kind of socket.
//   - CheckPrivileges: the root / CAP_NET_RAW+CAP_NET_ADMIN check made
//     before anything changes the system. It is here because the sockets
//     above are what need CAP_NET_RAW and what its error explains; it checks
//     CAP_NET_ADMIN too, for the guard, so that one check at start-up covers
//     a whole run.
//
// The RST guard (package guard) and pcap files (package pcapfile) are jobs
// of their own and live apart.
//
// What this package must not do: no TCP logic (no state, no sequence
// numbers, no retransmission), no firewall changes, no files; no parsing
// beyond what the flow filter, the injector's destination lookup and the
// choice between injector and GSO socket need; and no global mutable state
// (every path, pid and random source is a parameter or a field, so tests
// can point them elsewhere). Everything acts in the network namespace of
// the calling OS thread, which is how tcpcraft works under `ip netns exec`
// and how tests open sockets inside namespaces they made.
package capture
