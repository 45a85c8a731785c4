package craft

import (
	"math/big"
	"math/rand"
	"testing"
)

func TestSeqWrapAround(t *testing.T) {
	max := Seq(0xffffffff)
	if got := max.Add(1); got != 0 {
		t.Errorf("0xffffffff+1 = %d", got)
	}
	if got := max.Add(10); got != 9 {
		t.Errorf("0xffffffff+10 = %d", got)
	}
	if !max.LessThan(0) || !max.LessThan(5) || Seq(5).LessThan(max) {
		t.Errorf("ordering across the wrap is wrong")
	}
	if !Seq(0).GreaterThan(max) || !Seq(3).GreaterThanEq(max) || !max.LessThanEq(max) || !max.GreaterThanEq(max) {
		t.Errorf("GreaterThan/Eq across the wrap is wrong")
	}
	if d := Seq(5).Diff(max); d != 6 {
		t.Errorf("5 - 0xffffffff = %d, want 6", d)
	}
	if d := max.Diff(5); d != -6 {
		t.Errorf("0xffffffff - 5 = %d, want -6", d)
	}
	if n := max.Size(5); n != 6 {
		t.Errorf("Size(0xffffffff, 5) = %d, want 6", n)
	}
	if Max(max, 2) != 2 || Min(max, 2) != max || Max(2, max) != 2 || Min(2, max) != max {
		t.Errorf("Max/Min across the wrap")
	}
	if !Seq(0).InRange(max, 1) || Seq(1).InRange(max, 1) || !max.InRange(max, 1) {
		t.Errorf("InRange across the wrap")
	}
	// Exactly 2^31 apart is the ambiguous case; Diff says "before".
	if !Seq(0).LessThan(1<<31) || !Seq(1<<31).LessThan(0) {
		t.Errorf("2^31 apart: both directions should read as LessThan (int32 wrap)")
	}
}

func TestSeqInWindowEdges(t *testing.T) {
	for _, tc := range []struct {
		s, start Seq
		size     Size
		want     bool
	}{
		{100, 100, 10, true},               // first byte
		{109, 100, 10, true},               // last byte
		{110, 100, 10, false},              // one past the end
		{99, 100, 10, false},               // one before
		{100, 100, 0, false},               // empty window holds nothing
		{0xffffffff, 0xfffffffe, 4, true},  // before the wrap
		{0, 0xfffffffe, 4, true},           // across the wrap
		{1, 0xfffffffe, 4, true},           // last byte after the wrap
		{2, 0xfffffffe, 4, false},          // past the end after the wrap
		{0xfffffffd, 0xfffffffe, 4, false}, // before the start
		{5, 6, 0xffffffff, false},          // the one byte a maximal window lacks
		{4, 6, 0xffffffff, true},           // its last byte
	} {
		if got := tc.s.InWindow(tc.start, tc.size); got != tc.want {
			t.Errorf("%d.InWindow(%d, %d) = %v, want %v", tc.s, tc.start, tc.size, got, tc.want)
		}
	}
}

// TestSeqProperties checks the comparisons against a big-integer reference:
// a is before b iff the distance from a to b, taken modulo 2^32 into
// [-2^31, 2^31), is positive (RFC 1982 §3.2, as used by RFC 9293 §3.4).
func TestSeqProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	mod := new(big.Int).Lsh(big.NewInt(1), 32)
	half := new(big.Int).Lsh(big.NewInt(1), 31)
	signedDist := func(from, to uint32) int64 {
		d := new(big.Int).Sub(big.NewInt(int64(to)), big.NewInt(int64(from)))
		d.Mod(d, mod)
		if d.Cmp(half) >= 0 {
			d.Sub(d, mod)
		}
		return d.Int64()
	}
	pick := func() uint32 {
		switch rng.Intn(4) {
		case 0:
			return uint32(rng.Intn(16))
		case 1:
			return 0xffffffff - uint32(rng.Intn(16))
		case 2:
			return 1<<31 + uint32(rng.Intn(16)) - 8
		}
		return rng.Uint32()
	}
	for i := 0; i < 200000; i++ {
		a, b := pick(), pick()
		n := pick()
		d := signedDist(a, b) // b - a
		sa, sb := Seq(a), Seq(b)
		if got := sb.Diff(sa); int64(got) != d {
			t.Fatalf("%d.Diff(%d) = %d, want %d", b, a, got, d)
		}
		// At exactly 2^31 apart the order is undefined (RFC 1982 §3.2);
		// TestSeqWrapAround pins down what Seq does there.
		if d != -1<<31 && (sa.LessThan(sb) != (d > 0) || sa.LessThanEq(sb) != (d >= 0) ||
			sa.GreaterThan(sb) != (d < 0) || sa.GreaterThanEq(sb) != (d <= 0)) {
			t.Fatalf("comparisons of %d and %d disagree with distance %d", a, b, d)
		}
		sum := new(big.Int).Add(big.NewInt(int64(a)), big.NewInt(int64(n)))
		sum.Mod(sum, mod)
		if got := sa.Add(Size(n)); uint64(got) != sum.Uint64() {
			t.Fatalf("%d.Add(%d) = %d, want %d", a, n, got, sum.Uint64())
		}
		size := new(big.Int).Sub(big.NewInt(int64(b)), big.NewInt(int64(a)))
		size.Mod(size, mod)
		if got := sa.Size(sb); uint64(got) != size.Uint64() {
			t.Fatalf("Size(%d, %d) = %d, want %d", a, b, got, size.Uint64())
		}
		if got := sb.Sub(Size(n)).Add(Size(n)); got != sb {
			t.Fatalf("%d.Sub(%d).Add(%d) = %d", b, n, n, got)
		}
		diff := new(big.Int).Sub(big.NewInt(int64(b)), big.NewInt(int64(n)))
		diff.Mod(diff, mod)
		if got := sb.Sub(Size(n)); uint64(got) != diff.Uint64() {
			t.Fatalf("%d.Sub(%d) = %d, want %d", b, n, got, diff.Uint64())
		}
		// Until: the distance when b is after a, else 0.
		if got, want := sa.Until(sb), map[bool]uint64{true: size.Uint64(), false: 0}[d > 0]; uint64(got) != want {
			t.Fatalf("%d.Until(%d) = %d, want %d", a, b, got, want)
		}
		// InWindow(start=a, size=n): b is 0..n-1 bytes past a.
		if got, want := sb.InWindow(sa, Size(n)), size.Uint64() < uint64(n); got != want {
			t.Fatalf("%d.InWindow(%d, %d) = %v, want %v", b, a, n, got, want)
		}
		later, earlier := sa, sb
		if d > 0 {
			later, earlier = sb, sa
		}
		if d != -1<<31 && (Max(sa, sb) != later || Min(sa, sb) != earlier) {
			t.Fatalf("Max/Min(%d, %d) with distance %d", a, b, d)
		}
	}
}
