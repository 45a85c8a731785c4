package craft

// Seq is a TCP sequence number. Sequence space is circular (RFC 9293 §3.4),
// so two numbers are ordered by serial-number arithmetic (RFC 1982): a is
// before b when the signed 32-bit distance b-a is positive. Never compare the
// raw uint32 values.
type Seq uint32

// Size is a length in sequence space: a number of bytes, each SYN and FIN
// counting one (RFC 9293 §3.4, SEG.LEN), or the size of a window. It is
// what lies between two Seqs, and what moves one; unlike Seq it is an
// ordinary count, ordered as numbers are.
type Size uint32

// Add returns s advanced by n, wrapping at 2^32.
func (s Seq) Add(n Size) Seq { return s + Seq(n) }

// Sub returns s moved back by n, wrapping at 2^32.
func (s Seq) Sub(n Size) Seq { return s - Seq(n) }

// Diff returns the signed distance from o to s (s - o). It is meaningful only
// while the two are less than 2^31 apart, as everywhere in TCP.
func (s Seq) Diff(o Seq) int32 { return int32(uint32(s) - uint32(o)) }

// Size returns the length from s up to (not including) end, taken modulo
// 2^32: end must not come before s (see Until).
func (s Seq) Size(end Seq) Size { return Size(end - s) }

// Until returns the length from s up to end, or 0 when end does not come
// after s: the room left before an edge that may already have been passed
// (a window's right edge, the end of the queued data).
func (s Seq) Until(end Seq) Size {
	if end.GreaterThan(s) {
		return Size(end - s)
	}
	return 0
}

// LessThan reports whether s comes before o.
func (s Seq) LessThan(o Seq) bool { return s.Diff(o) < 0 }

// LessThanEq reports whether s comes before o or equals it.
func (s Seq) LessThanEq(o Seq) bool { return s.Diff(o) <= 0 }

// GreaterThan reports whether s comes after o.
func (s Seq) GreaterThan(o Seq) bool { return s.Diff(o) > 0 }

// GreaterThanEq reports whether s comes after o or equals it.
func (s Seq) GreaterThanEq(o Seq) bool { return s.Diff(o) >= 0 }

// InRange reports whether start <= s < end.
func (s Seq) InRange(start, end Seq) bool {
	return start.LessThanEq(s) && s.LessThan(end)
}

// InWindow reports whether s lies in the window of size bytes starting at
// start: start <= s < start+size. An empty window contains nothing.
func (s Seq) InWindow(start Seq, size Size) bool {
	return Size(s-start) < size
}

// Max returns the later of a and b.
func Max(a, b Seq) Seq {
	if a.GreaterThan(b) {
		return a
	}
	return b
}

// Min returns the earlier of a and b.
func Min(a, b Seq) Seq {
	if a.LessThan(b) {
		return a
	}
	return b
}
