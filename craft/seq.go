package craft

// Seq is a TCP sequence number. Sequence space is circular (RFC 9293 §3.4),
// so two numbers are ordered by serial-number arithmetic (RFC 1982): a is
// before b when the signed 32-bit distance b-a is positive. Never compare the
// raw uint32 values.
type Seq uint32

// Add returns s advanced by n bytes, wrapping at 2^32.
func (s Seq) Add(n uint32) Seq { return s + Seq(n) }

// Diff returns the signed distance from o to s (s - o). It is meaningful only
// while the two are less than 2^31 apart, as everywhere in TCP.
func (s Seq) Diff(o Seq) int32 { return int32(uint32(s) - uint32(o)) }

// Size returns the number of bytes from s up to (not including) end.
func (s Seq) Size(end Seq) uint32 { return uint32(end) - uint32(s) }

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
func (s Seq) InWindow(start Seq, size uint32) bool {
	return uint32(s)-uint32(start) < size
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
