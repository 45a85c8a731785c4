// Package fsm is the TCP connection as a deterministic state machine
// (sans-I/O): segments and time go in, segments and events come out.
//
// A Conn implements the eleven states of RFC 9293 §3.3.2 and every
// transition between them: active, passive and simultaneous open, half-close
// in both directions, simultaneous close, TIME-WAIT, RST generation and
// acceptance (RFC 9293 §3.10.7, RFC 5961 challenge ACKs), the SYN options of
// RFC 7323 (window scale, timestamps and PAWS), RFC 2018 SACK-permitted and
// receiver-side SACK blocks, retransmission (RFC 6298), zero-window probing,
// delayed ACKs, Nagle (RFC 9293 §3.7.4), silly-window avoidance, and a
// simple RFC 5681 congestion window.
//
// What fsm must not do: it opens no sockets, reads no clocks (time is always
// the now argument), starts no goroutines, keeps no global mutable state and
// never blocks. Everything a Conn does is a function of the calls made on it,
// so every protocol behaviour can be replayed segment by segment in a test.
// The driver (package stack) feeds it parsed segments, calls Tick at
// NextDeadline, and drains Output and Events after every call.
//
// The segment-processing logic lives in input.go as one switch over
// (state, segment kind), each arm naming the RFC rule it implements, in the
// manner of smoltcp's socket/tcp.rs.
package fsm
