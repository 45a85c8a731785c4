// Package fault makes tcpcraft's end of a connection misbehave on purpose,
// at exact points of the connection, so that one can watch how a kernel
// peer and the application behind it cope: drop our Nth data segment (or
// every Nth, or each with a seeded probability), delay or withhold our
// ACKs, reorder or duplicate a segment, shut our advertised window for a
// while, advertise a tiny MSS, reset or close after N bytes, play dead,
// corrupt a checksum. It holds the small language that names these faults
// (Parse, for connect's and listen's --fault), the engine that decides,
// packet by packet, what each fault does (Engine, sans-I/O: packets and
// time in, packets out), and Link, which puts the engine between a
// stack.Stack and its link.
//
// Why a package of its own, between the stack and the link: a fault is not
// TCP. fsm must stay the judge of what a correct endpoint does and the
// stack its faithful driver; the faults change what crosses the wire after
// fsm has decided — what leaves is dropped, held, copied or rewritten, what
// arrives may be ignored — so they wrap the link, the one place every
// segment passes, and touch neither. The two faults that need the
// connection itself (a reset or a FIN after N bytes) are carried out by
// the application's own calls (Abort, CloseWrite), which Link asks its
// owner to make.
//
// What it must not do: decide TCP replies (a window update it sends when a
// shut window reopens is the last ACK fsm sent, with the true window),
// keep global state, or act on a connection no fault names: without specs
// every packet passes untouched. Counting is per connection (a listener's
// connections each get the faults anew).
package fault
