package cmd

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConnectClosedOutputPipes: tcpcraft's stdout and stderr are pipes
// whose readers have gone (`tcpcraft connect ... | head -c 10`) while the
// peer keeps sending. tcpcraft must not die of SIGPIPE with its firewall
// rule left behind: it notices the failed write, resets the connection,
// removes the rule and exits 1 on its own.
func TestConnectClosedOutputPipes(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	peerErr := make(chan error, 1)
	ln := e.listen(t, 7400)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peerErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		chunk := []byte(strings.Repeat("x", 16<<10))
		for {
			if _, err := c.Write(chunk); err != nil {
				peerErr <- err
				return
			}
		}
	}()

	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The readers are gone before tcpcraft writes anything.
	outR.Close()
	errR.Close()
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := e.Command(ctx, e.ClientNS, e.bin, "connect", "--time-wait", "10ms", e.serverAddr(7400))
	stdin, keep := openStdin(t) // input stays open: only the output can end the run
	defer keep.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, outW, errW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	errW.Close()
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("tcpcraft did not stop on its own within %v", processTimeout)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		t.Fatalf("tcpcraft was killed by signal %v (want a clean exit 1 after EPIPE)", ws.Signal())
	}
	var exit interface{ ExitCode() int }
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("tcpcraft: %v, want exit status 1", err)
	}
	if rules := rulesOf(t, e, e.ClientNS, cmd.Process.Pid); len(rules) > 0 {
		t.Fatalf("rule left behind: %q", rules)
	}
	assertRootUntouched(t, cmd.Process.Pid)
	// The peer was reset, not left with an open connection.
	select {
	case err := <-peerErr:
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, io.EOF) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the peer's writes never failed: the connection was not reset")
			}
			t.Fatalf("peer: %v, want a reset", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the peer's writes never failed: the connection was not reset")
	}
}
