package fsm

// ring is a byte ring buffer that grows on demand up to max bytes, so an
// idle connection does not pin its full buffer size. Bytes are addressed by
// their offset from the head (the oldest byte).
type ring struct {
	buf  []byte
	head int // index in buf of offset 0
	max  int
}

// initialRing is the first allocation of a ring; it doubles from there.
// Small, because most connections of a busy listener carry a few bytes
// (and a bulk transfer reaches megabytes after ten doublings).
const initialRing = 4 << 10

// reserve makes sure offsets [0, size) are backed by memory, keeping the
// first keep bytes (the rest is scratch that may hold out-of-order data, so
// everything up to the old capacity is preserved too).
func (r *ring) reserve(size int) {
	if size <= len(r.buf) {
		return
	}
	n := len(r.buf)
	if n == 0 {
		n = initialRing
	}
	for n < size {
		n *= 2
	}
	if n > r.max {
		n = r.max
	}
	if n < size {
		n = size
	}
	nb := make([]byte, n)
	if len(r.buf) > 0 {
		// Linearise the old content, out-of-order scratch included.
		k := copy(nb, r.buf[r.head:])
		copy(nb[k:], r.buf[:r.head])
	}
	r.buf = nb
	r.head = 0
}

// writeAt copies p to offsets [off, off+len(p)); the caller has reserved
// them.
func (r *ring) writeAt(off int, p []byte) {
	i := r.head + off
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	k := copy(r.buf[i:], p)
	if k < len(p) {
		copy(r.buf, p[k:])
	}
}

// readAt copies offsets [off, off+len(p)) into p.
func (r *ring) readAt(off int, p []byte) {
	i := r.head + off
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	k := copy(p, r.buf[i:])
	if k < len(p) {
		copy(p[k:], r.buf)
	}
}

// slice returns offsets [off, off+n) as one slice of the buffer, or false
// when they wrap around its end. Its capacity runs to the end of the
// buffer, so that a driver can tell (and join) slices that follow each
// other; nobody may append to it.
func (r *ring) slice(off, n int) ([]byte, bool) {
	i := r.head + off
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	if i+n > len(r.buf) {
		return nil, false
	}
	return r.buf[i : i+n], true
}

// advance drops n bytes from the head.
func (r *ring) advance(n int) {
	if len(r.buf) == 0 {
		return
	}
	r.head += n
	for r.head >= len(r.buf) {
		r.head -= len(r.buf)
	}
}

// sendBuffer holds the bytes written by the application from SND.UNA (or
// ISS+1) onward: first the unacknowledged ones, kept for retransmission,
// then the ones not yet sent. Segments are cut from it by sequence number,
// so the retransmission queue is just a range of this buffer.
type sendBuffer struct {
	ring
	n    int
	lent int // free bytes after the queued ones lent by Conn.SendSpace
}

func (b *sendBuffer) free() int { return b.max - b.n - b.lent }

// space lends up to max free bytes that follow the queued ones, as one
// slice of the buffer (it stops where the ring wraps, so it may be
// shorter than asked), growing the buffer first as a write would. The
// loan lasts until commit; meanwhile the buffer must not move: no write
// (which could grow it), and discard keeps the head where it is.
func (b *sendBuffer) space(max int) []byte {
	if max > b.free() {
		max = b.free()
	}
	if max <= 0 {
		return nil
	}
	b.reserve(b.n + max)
	i := b.head + b.n
	if i >= len(b.buf) {
		i -= len(b.buf)
	}
	// The free bytes run from i for len(buf)-n bytes (mod len): reserve
	// made that at least max, so only the end of the buffer cuts it.
	end := min(i+max, len(b.buf))
	b.lent = end - i
	return b.buf[i:end:end]
}

// extend lends up to max more free bytes, those that follow the ones
// already lent (or starts a loan, as space, when none is out). The lent
// bytes do not move, so a loan grows only into memory the buffer already
// has; the new slice too stops where the ring wraps.
func (b *sendBuffer) extend(max int) []byte {
	if b.lent == 0 {
		return b.space(max)
	}
	max = min(max, b.free(), len(b.buf)-b.n-b.lent)
	if max <= 0 {
		return nil
	}
	i := b.head + b.n + b.lent
	for i >= len(b.buf) {
		i -= len(b.buf)
	}
	end := min(i+max, len(b.buf))
	b.lent += end - i
	return b.buf[i:end:end]
}

// commit queues the first n bytes of the lent space; the loan ends if
// end, else the rest of it stays lent.
func (b *sendBuffer) commit(n int, end bool) {
	n = min(n, b.lent)
	b.n += n
	b.lent -= n
	if end {
		b.lent = 0
	}
}

// write appends as much of p as fits and returns the count.
func (b *sendBuffer) write(p []byte) int {
	if len(p) > b.free() {
		p = p[:b.free()]
	}
	if len(p) == 0 {
		return 0
	}
	b.reserve(b.n + len(p))
	b.writeAt(b.n, p)
	b.n += len(p)
	return len(p)
}

// discard drops k acknowledged bytes from the front.
func (b *sendBuffer) discard(k int) {
	if k > b.n {
		k = b.n
	}
	b.advance(k)
	b.n -= k
	if b.n == 0 && b.lent == 0 {
		b.head = 0 // a lent slice starts at the tail: it must not move
	}
}

// recvBuffer holds the in-order bytes not yet read (offsets [0, n)) and,
// beyond them, out-of-order bytes at their place relative to RCV.NXT.
type recvBuffer struct {
	ring
	n int
}
