// Package craft holds tcpcraft's wire formats: checked byte views and plain
// "Repr" structs for IPv4, IPv6 and TCP headers and TCP options, Internet
// checksums, sequence-number arithmetic, whole-packet parsing from link-layer
// frames, a packet builder, and the one-line (tcpdump-style) and JSON
// renderings of a segment.
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
// buffer without allocating.
package craft
