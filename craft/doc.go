// Package craft holds tcpcraft's wire formats: checked byte views and plain
// "Repr" structs for IPv4, IPv6 (with its extension headers) and TCP
// headers and TCP options, ICMP and ICMPv6 errors with the datagram they
// quote, IP fragmentation, Internet checksums, sequence-number arithmetic,
// whole-packet parsing from link-layer frames, packet builders, the
// one-line (tcpdump-style) and JSON renderings of a packet, and the one
// grammar of TCP flags and options in text that the trace, the command
// line (send --flags/--opt) and probe scripts share (grammar.go).
//
// Everything here is a pure function of its arguments: bytes in, values out,
// or values in, bytes out. The package must not do I/O, read clocks, start
// goroutines or keep global mutable state; state that spans packets (such as
// the initial sequence numbers the relative text form needs) lives in values
// the caller creates (Formatter, SeqTracker).
//
// Parsing never panics on any input and never silently truncates: a header
// that does not fit its buffer, or a malformed TCP option, is an error that
// says what is wrong and where. The parse paths are written for a
// userspace TCP stack's hot path: views do not copy, TCP.Parse reuses the
// caller's option slice, and Append-style builders write into a caller's
// buffer without allocating. ICMP messages are parsed and marshalled by
// golang.org/x/net/icmp (see icmp.go for what this package adds).
//
// The address family of a packet follows the type of its addresses, never
// their value: IPv4 takes 4-byte netip.Addr values, IPv6 16-byte ones,
// IPv4-mapped addresses (::ffff:a.b.c.d) included, which are parsed and
// built as they are on the wire (see IPv6).
package craft
