// Package guard is tcpcraft's RST guard: what keeps the local kernel from
// answering tcpcraft's peers. It has two forms: a socket that holds the
// port (HoldPort), for one address and port that no kernel socket has, and
// a firewall rule (Install, InstallScope), for a port a kernel socket has
// and for the blocks of source ports a prober run sends from.
//
// The local kernel has no socket for tcpcraft's connections, so it would
// answer every segment from the peer with RST. AF_PACKET sees inbound frames
// before the kernel's TCP does, so keeping the kernel's TCP from answering
// exactly the inbound segments addressed to tcpcraft's own (address, port)
// silences the kernel while tcpcraft still reads every frame. Either form
// is scoped to that destination (never "all RSTs" of the host) and goes
// when tcpcraft is done.
//
// # The port held by a socket
//
// Where the port is free, a TCP socket of tcpcraft's own is bound to it and
// listens, with a socket filter that drops every segment: the kernel finds
// it for the segments of tcpcraft's connections and discards them before
// any listener logic runs (PortHold says where in the kernel). This departs
// from the design's "drop on the INPUT path" on purpose: the effect and the
// scope are the same, and the socket is the kernel's own to close on any
// exit, SIGKILL included, so it cannot be left behind; no kernel socket can
// take the port meanwhile; and it costs a few system calls, against two
// nf_tables commits that serialise back-to-back runs behind each other's RCU
// grace periods (PortHold has the figures' reference). `ss -ltnp` shows it.
//
// # The firewall rule
//
// Where a kernel socket has the port (a listener `listen` shares a port
// with, a --sport in use) a socket cannot hold it, and a run drops, on the
// INPUT path, the inbound TCP segments to it. The rule is tagged with a
// comment naming tcpcraft, the owning pid, its start time and what it
// guards.
//
// # Design: a table per guard, owned by its netlink socket
//
// Each Guard is an nf_tables table of its own in the inet family (so one
// rule serves IPv4 and IPv6 alike), named tcpcraft-PID-RANDOM, holding one
// base chain on the input hook and one drop rule:
//
//	table inet tcpcraft-4242-9f3a1c07 {
//		comment "tcpcraft pid=4242 start=8812345 guard 10.0.2.21:40000"
//		flags owner
//		chain guard {
//			type filter hook input priority filter; policy accept;
//			ip daddr 10.0.2.21 tcp dport 40000 drop comment "tcpcraft pid=4242 start=8812345 guard 10.0.2.21:40000"
//		}
//	}
//
// It is made over nf_tables netlink (github.com/google/nftables and
// messages of our own), not by running iptables: no program to start (the
// iptables run, add and delete, was most of tcpcraft's start-up), and no
// child process that a Ctrl-C aimed at tcpcraft's process group, or a
// cancelled context, kills half-way, leaving a committed rule that the
// caller was told had failed.
//
// Why a table per guard and not one shared "tcpcraft" table: concurrent
// tcpcraft runs would share it, and whoever deleted the emptied table could
// delete it while another run was adding its chain, or (nf_tables deletes a
// table with everything in it) take a live run's rule away. A table of its
// own is created and deleted in one atomic step each, and no other run ever
// has a reason to touch it.
//
// Why owned (NFT_TABLE_F_OWNER, Linux 5.12): the table belongs to the
// netlink socket that created it, which the Guard keeps open. The kernel
// refuses changes to it from any other socket (another tcpcraft's cleanup
// cannot take it away, nor can `nft flush ruleset`), and deletes it itself
// when that socket is closed — by Remove, by the process's exit, or by
// SIGKILL. So a guard cannot outlive its process: removal cannot be missed.
// The library cannot set table flags, nor add a message of ours to its
// batch, so Install makes the batch itself, on the library's socket: the
// table (owned, with its comment), its chain and its rule in one
// nf_tables batch, which the kernel applies whole or not at all — one
// sendmsg and one acknowledgement, the batch's last message being the only
// one that asks for it (a failing message is answered with its error
// anyway, which says which message failed). The rule's expressions are
// marshalled by the library's expr package. The deletion is one message
// in a batch of its own, on the same socket. On a kernel without owner flags
// (EOPNOTSUPP) the batch is sent again with the table unowned, and a
// killed run's table is left for CleanupStale.
//
// Cleanup finds tables (and the iptables rules older tcpcraft versions
// made) whose owner is gone — no such process, a zombie, or a pid reused by
// a process that started at another time — in the caller's network
// namespace and in every named one (Sweep).
//
// What this package must not do: touch any socket, rule, chain or table
// that is not tcpcraft's (a tcpcraft- table name, or an INPUT rule whose comment
// starts "tcpcraft pid="), remove a guard whose owner is alive, open packet
// sockets, or hold global mutable state: the pid, /proc, the namespace
// directory and iptables's path are fields of Firewall so tests can point
// them elsewhere. Everything acts in the network namespace of the calling
// OS thread (that is how tcpcraft works under `ip netns exec`, and how
// tests install guards inside namespaces they made); a Guard, once
// installed, is removed from its own namespace whatever thread removes it.
package guard
