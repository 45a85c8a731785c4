package fsm

import "github.com/tcpcraft/tcpcraft/craft"

// slab hands out the payload, option and SACK-block slices of outgoing
// segments from large chunks, so the bulk path costs a few allocations per
// window instead of three per segment. By default a region is never handed
// out twice, so the segments returned by Output stay valid for as long as
// the caller keeps them; a chunk is freed by the garbage collector once no
// segment refers to it. With reuse (Config.ReuseOutput) the chunks are
// handed out again from their start once the caller drained the output
// (drained), and a chunk that overflowed is replaced by one twice as big,
// so a steady bulk flow allocates nothing.
type slab struct {
	bytes  []byte
	opts   []craft.Option
	blocks []craft.SACKBlock

	reuse   bool
	drained bool // the caller took every segment: rewind at the next use
}

// rewind starts the chunks over if the caller has drained the output.
func (s *slab) rewind() {
	if s.drained {
		s.drained = false
		s.bytes, s.opts, s.blocks = s.bytes[:0], s.opts[:0], s.blocks[:0]
	}
}

// grown returns the size of a replacement chunk: with reuse it doubles
// (the chunk is kept), else the fixed size.
func (s *slab) grown(have, fixed, need int) int {
	size := fixed
	if s.reuse && 2*have > size {
		size = 2 * have
	}
	return max(size, need)
}

const (
	slabBytes  = 64 << 10
	slabOpts   = 256
	slabBlocks = 64
	// slabFirstOpts is the first option chunk: a SYN's options fit.
	// A half-open connection takes no more than that (a chunk of
	// slabOpts is 18 KB, and a SYN flood fills the whole SYN queue);
	// the next chunk has the full size.
	slabFirstOpts = 8
)

func (s *slab) payload(n int) []byte {
	if n == 0 {
		return nil
	}
	s.rewind()
	if cap(s.bytes)-len(s.bytes) < n {
		s.bytes = make([]byte, 0, s.grown(cap(s.bytes), slabBytes, n))
	}
	l := len(s.bytes)
	s.bytes = s.bytes[:l+n]
	return s.bytes[l : l+n : l+n]
}

func (s *slab) options(n int) []craft.Option {
	s.rewind()
	if cap(s.opts)-len(s.opts) < n {
		size := slabFirstOpts
		if cap(s.opts) > 0 {
			size = s.grown(cap(s.opts), slabOpts, n)
		}
		s.opts = make([]craft.Option, 0, max(size, n))
	}
	l := len(s.opts)
	s.opts = s.opts[:l+n]
	return s.opts[l : l+n : l+n]
}

func (s *slab) sackBlocks(n int) []craft.SACKBlock {
	s.rewind()
	if cap(s.blocks)-len(s.blocks) < n {
		s.blocks = make([]craft.SACKBlock, 0, s.grown(cap(s.blocks), slabBlocks, n))
	}
	l := len(s.blocks)
	s.blocks = s.blocks[:l+n]
	return s.blocks[l : l+n : l+n]
}
