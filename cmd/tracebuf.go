package cmd

import (
	"io"
	"sync"
	"time"
)

// traceFlushAfter is the longest a trace line waits in traceBuffer: short
// enough that a trace read live (a terminal, tail -f) looks immediate.
const traceFlushAfter = 20 * time.Millisecond

// traceBufferSize is how much traceBuffer gathers before it writes at
// once.
const traceBufferSize = 64 << 10

// traceBuffer gathers the trace's lines and writes them in large pieces:
// a write(2) per line cost a bulk upload with its trace on 25 µs a line,
// most of its time (docs/PERFORMANCE.md). A line waits at most
// traceFlushAfter; Flush writes what is held at once (the session does
// before it ends, so nothing printed after, an error say, comes before
// the trace's last lines).
type traceBuffer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	timer  *time.Timer // armed while buf holds something
	direct bool        // after Close: every Write goes straight through
}

func newTraceBuffer(w io.Writer) *traceBuffer {
	return &traceBuffer{w: w, buf: make([]byte, 0, traceBufferSize)}
}

// Write appends p; the whole of it is written by the time Write returns
// or within traceFlushAfter. Errors of the underlying writer are dropped,
// as the trace always did (a trace that cannot be written does not stop
// the connection).
func (b *traceBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.direct {
		_, _ = b.w.Write(p)
		return len(p), nil
	}
	if len(b.buf)+len(p) > cap(b.buf) {
		b.flushLocked()
		if len(p) >= cap(b.buf) {
			_, _ = b.w.Write(p)
			return len(p), nil
		}
	}
	b.buf = append(b.buf, p...)
	if b.timer == nil {
		b.timer = time.AfterFunc(traceFlushAfter, b.Flush)
	} else if len(b.buf) == len(p) {
		b.timer.Reset(traceFlushAfter)
	}
	return len(p), nil
}

// Flush writes what is held.
func (b *traceBuffer) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

// Close flushes, and makes later writes (a listener's closing count,
// written after its session ended) go straight through.
func (b *traceBuffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.direct = true
}

func (b *traceBuffer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	_, _ = b.w.Write(b.buf)
	b.buf = b.buf[:0]
	if b.timer != nil {
		b.timer.Stop()
	}
}
