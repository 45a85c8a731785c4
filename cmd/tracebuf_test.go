package cmd

import (
	"strings"
	"testing"
	"time"
)

// traceBuffer holds lines, writes them on Flush, by its timer, when full,
// and straight through after Close.
func TestTraceBuffer(t *testing.T) {
	var out syncBuffer
	b := newTraceBuffer(&out)
	b.Write([]byte("one\n"))
	b.Write([]byte("two\n"))
	if out.String() != "" {
		t.Fatalf("written at once: %q", out.String())
	}
	b.Flush()
	if out.String() != "one\ntwo\n" {
		t.Fatalf("after Flush: %q", out.String())
	}
	// The timer writes a line that waits (within a bound that measures
	// the machine, not the code: generous for a busy one).
	b.Write([]byte("three\n"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasSuffix(out.String(), "three\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the timer did not write the held line: %q", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	// What does not fit makes the buffer go out first: "four" is
	// written by the time the write of big returns.
	big := strings.Repeat("x", traceBufferSize-2) + "\n"
	b.Write([]byte("four\n"))
	b.Write([]byte(big))
	if !strings.HasSuffix(out.String(), "four\n") {
		t.Fatalf("a full buffer was not written first: %.40q", out.String())
	}
	b.Write([]byte("five\n"))
	b.Close()
	if want := "one\ntwo\nthree\nfour\n" + big + "five\n"; out.String() != want {
		t.Fatalf("after Close: %d bytes, want %d in order", len(out.String()), len(want))
	}
	b.Write([]byte("six\n"))
	if !strings.HasSuffix(out.String(), "six\n") {
		t.Fatal("a write after Close waited")
	}
}
