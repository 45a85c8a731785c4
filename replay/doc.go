// Package replay turns one connection of a packet capture into a
// packetdrill script that replays it against a fresh kernel. The kernel
// under test takes one end's role (client or server): the other end's
// segments become packets tcpcraft sends ("<" lines), the chosen end's
// segments become packets the kernel must send back (">" lines), and the
// system calls that make the kernel send them are inferred — socket, bind,
// listen and accept, or socket and connect; a write for each burst of data
// it sent; a read for each piece of data it received in order; close (or
// shutdown, when it went on receiving) where it sent its FIN.
//
// The script follows packetdrill's conventions, which tcpcraft probe
// shares: sequence numbers relative to each side's initial sequence number
// (both ISNs written as 0, SYNs absolute), times relative to the previous
// line as captured, payloads as zero bytes ("..."), and the kernel's
// addresses and ports those of the runner, not of the capture. Options the
// kernel chooses itself are written as captured, so that a kernel that
// behaves the same passes and one that does not (another window scale, no
// SACK, no timestamps, another MSS) fails; timestamp values are the
// exception the runner makes itself: it maps the kernel's to live ones
// and checks them only when asked (--tcp_ts_tick_usecs).
//
// Why a package of its own: it sits between draw/flow, which reads a
// capture as connections (which end is the client, sequence offsets,
// retransmissions), and probe, which runs scripts, and belongs to neither.
// flow is an observer's reconstruction and must not know about system
// calls; probe runs what a script says and must not guess what an
// application did. Guessing — which segments the kernel never received
// because they were lost between the capture point and it, where a write
// or a close must have been — is this package's one concept.
//
// What it must not do: I/O (packets come in as arguments, the script goes
// out as bytes), run scripts, or keep global state. Where it cannot know
// (when an application read, a segment lost before the capture point), it
// takes the common case and says so in a comment of the script.
package replay
