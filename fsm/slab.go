package fsm

import "github.com/tcpcraft/tcpcraft/craft"

// slab hands out the payload, option and SACK-block slices of outgoing
// segments from large chunks, so the bulk path costs a few allocations per
// window instead of three per segment. A region is never handed out twice,
// so the segments returned by Output stay valid for as long as the caller
// keeps them; a chunk is freed by the garbage collector once no segment
// refers to it.
type slab struct {
	bytes  []byte
	opts   []craft.Option
	blocks []craft.SACKBlock
}

const (
	slabBytes  = 64 << 10
	slabOpts   = 256
	slabBlocks = 64
)

func (s *slab) payload(n int) []byte {
	if n == 0 {
		return nil
	}
	if cap(s.bytes)-len(s.bytes) < n {
		size := slabBytes
		if n > size {
			size = n
		}
		s.bytes = make([]byte, 0, size)
	}
	l := len(s.bytes)
	s.bytes = s.bytes[:l+n]
	return s.bytes[l : l+n : l+n]
}

func (s *slab) options(n int) []craft.Option {
	if cap(s.opts)-len(s.opts) < n {
		s.opts = make([]craft.Option, 0, slabOpts)
	}
	l := len(s.opts)
	s.opts = s.opts[:l+n]
	return s.opts[l : l+n : l+n]
}

func (s *slab) sackBlocks(n int) []craft.SACKBlock {
	if cap(s.blocks)-len(s.blocks) < n {
		s.blocks = make([]craft.SACKBlock, 0, slabBlocks)
	}
	l := len(s.blocks)
	s.blocks = s.blocks[:l+n]
	return s.blocks[l : l+n : l+n]
}
