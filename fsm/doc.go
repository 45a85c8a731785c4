// Package fsm is the TCP connection as a deterministic state machine
// (sans-I/O): segments and time go in, segments and events come out.
//
// A Conn implements the eleven states of RFC 9293 §3.3.2 and every
// transition between them: active, passive and simultaneous open, half-close
// in both directions, simultaneous close, TIME-WAIT, RST generation and
// acceptance (RFC 9293 §3.10.7, RFC 5961 challenge ACKs), the SYN options of
// RFC 7323 (window scale, timestamps and PAWS) and RFC 2018 (SACK-permitted),
// retransmission timeouts (RFC 6298, Karn's rule), zero-window probing,
// keep-alive, delayed ACKs, Nagle (RFC 9293 §3.7.4), silly-window avoidance
// on both sides, and reassembly of out-of-order data in bounded memory.
//
// Receiving, it acknowledges out-of-order data at once with SACK blocks in
// the order of RFC 2018 §4 (the block of the latest segment first, then the
// most recently reported ones) and reports duplicates as D-SACK blocks (RFC
// 2883). Sending, it keeps a scoreboard of every segment in flight
// (recovery.go) and recovers from loss the way a modern stack does: fast
// retransmit and fast recovery (RFC 5681 §3.2) with limited transmit (RFC
// 3042) and NewReno partial ACKs (RFC 6582) when the peer has no SACK;
// SACK-based recovery (RFC 6675: IsLost with DupThresh 3, raised when
// reordering is seen, NextSeg, pipe); RACK (RFC 8985 §6) to find lost
// retransmissions and tail loss probes (§7); D-SACK to undo a recovery that
// reordering caused (RFC 2883 §5, RFC 4015). The congestion window comes from
// a CongestionControl (congestion.go): CUBIC (RFC 9438, the default, as in
// Linux) or NewReno (RFC 5681), with the initial window of RFC 6928 and the
// restart window after idle of RFC 5681 §4.1.
//
// What fsm must not do: it opens no sockets, reads no clocks (time is always
// the now argument), starts no goroutines, keeps no global mutable state and
// never blocks. Everything a Conn does is a function of the calls made on it,
// so every protocol behaviour can be replayed segment by segment in a test.
//
// How a driver (package stack) uses a Conn: create it with NewConn, call
// Connect (or take it from a Listener), feed every segment of its 4-tuple
// to Input, call Tick
// when NextDeadline is reached, move application bytes with Write and Read,
// and after every call drain AppendOutput (segments to put on the wire, in
// order, ports set, checksums left to the emitter) and AppendEvents (state
// changes with their Cause, readable data, acknowledged bytes, RTT
// samples, errors; counters are in Stats). Segments returned by Output own their slices: they stay valid
// for as long as the caller keeps them, unless Config.ReuseOutput lets the
// Conn lend its own buffers until the next call (no copy, no allocation:
// what a driver that sends at once wants). Instead of Write, a driver may
// borrow free send buffer with SendSpace, fill it (read(2) straight into
// it, from another goroutine if it likes) and queue it with CommitSend or,
// a filled part at a time, CommitSendPart: the bytes are then never copied
// in user space. ExtendSendSpace grows a loan while its front is being
// committed, and CommitSendMore says more follows at once, so that a short
// last segment waits for it (a cork).
//
// fsm is the only judge of every segment that reaches a port the driver
// owns: a segment of a connection goes to its Conn; one to a listening
// port from a 4-tuple without a Conn goes to the port's Listener (listen.go),
// which drops it, answers it, or opens a Conn for it (a SYN beyond a full
// SYN queue gets a SYN cookie, RFC 4987, and keeps nothing: cookie.go);
// any other gets ResetFor's answer (RFC 9293 §3.10.7.1). The driver
// decides no reply itself. Where Linux departs from RFC 9293 in what it answers, fsm does
// what Linux does and says so where it does it.
//
// The segment-processing logic lives in input.go as one switch over
// (state, segment kind), each arm naming the RFC rule it implements, in the
// manner of smoltcp's socket/tcp.rs; the synchronized states follow the
// numbered checks of RFC 9293 §3.10.7.4 in order (the third,
// security/compartment, skipped as Linux does). A Conn's state is held in
// parts, each with its invariants: sendSide, recvSide, rttEstimator,
// timers, and the scoreboard and recovery state of recovery.go.
package fsm
