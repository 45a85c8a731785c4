// Package probe runs packetdrill-style scripts against a live Linux kernel:
// the script language (lexer, parser, AST with file:line:column errors) and
// the runner that plays a script — packets tcpcraft sends ("<" lines), packets
// it expects from the kernel under test (">" lines), system calls executed on
// the kernel under test, shell lines — and checks every expectation against
// the script's clock.
//
// Why a package of its own: the script language and its semantics
// (packetdrill's time model, its sequence-number mapping where SYNs are
// absolute and everything else is relative to each side's ISN, its matching
// rules and wording of errors) form one concept that neither the wire formats
// (craft) nor the link to the network (capture) nor the CLI (cmd) should
// carry. The runner reaches the kernel under test only through the Kernel
// interface (system calls and shell commands, executed in the kernel's
// network namespace by a helper process or in-process on a thread inside
// that namespace) and the network only through a Link (packetdrill's tun
// device, or capture + raw socket + RST guard towards an existing
// namespace or target), so the language can be tested without either.
// Settings are packetdrill's options (--ip_version, --local_ip, --mtu, -D,
// ...), the same on a command line and in a script's option lines;
// NewPacketdrillEnv lays the kernel's namespace out as packetdrill's local
// mode does (the tun device tun0, its addresses and route, packets written
// into it as packetdrill writes them), so packetdrill's suites run
// unchanged.
//
// What it must not do: touch the root network namespace (every packet it
// sends leaves from the namespace the caller chose), keep global mutable
// state, or leave anything behind — namespaces, firewall rules and helper
// processes it creates are removed on every exit path.
package probe
