package fault

import (
	"context"
	"sync"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
)

// Inner is the link a Link wraps: what stack.Link is.
type Inner interface {
	ReadFrame(ctx context.Context) (capture.Frame, error)
	Send(pkt []byte) error
}

// LinkConfig says whom a Link tells what it did.
type LinkConfig struct {
	// Note receives every note of the faults, as they act.
	Note func(at time.Time, n Note)
	// Wire, if set, receives every packet the Link put on the wire (out)
	// and every arriving one it kept from the stack (in): what a capture
	// of the wire would show, for a pcap file.
	Wire func(out bool, at time.Time, pkt []byte)
	// Act carries out a trigger (reset or close a connection). It is
	// called on a goroutine of its own, so it may call into the stack.
	Act func(Trigger)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Link puts an Engine between a stack and its link: what the stack sends
// goes through Engine.Out, what arrives through Engine.In, and a goroutine
// (Run) sends what the engine held once it is due. It implements
// stack.Link, and none of the stack's faster paths (bursts, segmentation
// offload): every segment is seen, one by one.
type Link struct {
	inner Inner
	cfg   LinkConfig
	now   func() time.Time
	wake  chan struct{}

	mu  sync.Mutex // guards eng and serializes inner.Send
	eng *Engine
}

// NewLink returns a Link that applies specs to what crosses inner.
func NewLink(inner Inner, specs []Spec, cfg LinkConfig) *Link {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Link{inner: inner, cfg: cfg, now: now, eng: NewEngine(specs), wake: make(chan struct{}, 1)}
}

// Send hands pkt to the faults, and what they let go to the link. The
// error is the link's for the first packet that failed.
func (l *Link) Send(pkt []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	err := l.apply(now, l.eng.Out(now, pkt))
	l.poke()
	return err
}

// apply does what an Output says. Called with l.mu held.
func (l *Link) apply(now time.Time, o *Output) error {
	for _, n := range o.Notes {
		if l.cfg.Note != nil {
			l.cfg.Note(now, n)
		}
	}
	var first error
	for _, p := range o.Send {
		if err := l.inner.Send(p); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if l.cfg.Wire != nil {
			l.cfg.Wire(true, now, p)
		}
	}
	for _, t := range o.Triggers {
		if l.cfg.Act != nil {
			go l.cfg.Act(t)
		}
	}
	return first
}

// poke wakes Run to look at the engine's next deadline again.
func (l *Link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// ReadFrame returns the next frame the faults let the stack see.
func (l *Link) ReadFrame(ctx context.Context) (capture.Frame, error) {
	for {
		f, err := l.inner.ReadFrame(ctx)
		if err != nil {
			return f, err
		}
		l.mu.Lock()
		// The stack stamps what it handles with its clock, not the
		// capture's: so do the notes, and the trace reads in order.
		now := l.now()
		keep, o := l.eng.In(now, f.Data, f.ChecksumNotReady)
		_ = l.apply(now, o)
		if !keep && l.cfg.Wire != nil {
			l.cfg.Wire(false, f.Time, f.Data)
		}
		l.poke()
		l.mu.Unlock()
		if keep {
			return f, nil
		}
	}
}

// Release stops the faults: what is held goes now, and every packet
// passes from then on. tcpcraft calls it before it resets its open
// connections on the way out, so that no peer is left half-open.
func (l *Link) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.eng.Release(now)
	_ = l.apply(now, l.eng.Tick(now))
}

// Run sends held packets when they are due, until ctx ends.
func (l *Link) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		now := l.now()
		_ = l.apply(now, l.eng.Tick(now))
		next, ok := l.eng.NextDeadline()
		l.mu.Unlock()
		wait := time.Hour
		if ok {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
			timer.Stop() // since Go 1.23 a stopped timer's channel holds no stale tick
		case <-timer.C:
		}
	}
}
