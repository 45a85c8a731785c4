package probe

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"testing"
	"time"
)

// TestServeHelperOrder: ServeHelper runs a call the script expects to
// return at once in its reading loop, and a blocking one beside it: a
// blocking read of a pipe is reported blocked, the write sent after it is
// executed meanwhile, and the read returns with what was written.
func TestServeHelperOrder(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	reqR, reqW := io.Pipe()
	repR, repW := io.Pipe()
	served := make(chan error, 1)
	go func() { served <- ServeHelper(reqR, repW); repW.Close() }()
	replies := make(chan Reply, 8)
	go func() {
		sc := bufio.NewScanner(repR)
		for sc.Scan() {
			var rep Reply
			if err := json.Unmarshal(sc.Bytes(), &rep); err == nil {
				replies <- rep
			}
		}
		close(replies)
	}()
	send := func(req Request) {
		line, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reqW.Write(append(line, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	next := func() Reply {
		select {
		case rep := <-replies:
			return rep
		case <-time.After(5 * time.Second):
			t.Fatal("no reply within 5 s")
		}
		return Reply{}
	}
	send(Request{ID: 1, Call: "read", FD: int(pr.Fd()), Len: 10, Blocking: true})
	if rep := next(); rep.ID != 1 || rep.Event != "blocked" {
		t.Fatalf("first reply %+v, want the read blocked", rep)
	}
	send(Request{ID: 2, Call: "write", FD: int(pw.Fd()), Len: 3})
	// The read wakes as the write goes in: either may answer first.
	done := map[uint64]Reply{}
	for range 2 {
		rep := next()
		done[rep.ID] = rep
	}
	if w := done[2]; w.Event != "done" || w.Ret != 3 {
		t.Errorf("write's reply %+v, want done, 3 bytes", w)
	}
	if rd := done[1]; rd.Event != "done" || rd.Ret != 3 || rd.End < done[2].Start {
		t.Errorf("read's reply %+v, want done, 3 bytes, after the write started", rd)
	}
	reqW.Close()
	if err := <-served; err != nil {
		t.Errorf("ServeHelper: %v", err)
	}
}
