package cmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// TestConnectClosedOutputPipes: tcpcraft's stdout (and stderr) are pipes
// whose readers have gone (`tcpcraft connect ... | head -c 10`) while the
// peer keeps sending. tcpcraft must not die of SIGPIPE with its firewall
// rule left behind: it notices the failed write, resets the connection,
// removes the rule and exits quietly with 141 (what a shell reports for a
// program SIGPIPE ended), printing no error: the reader left by choice.
func TestConnectClosedOutputPipes(t *testing.T) {
	t.Parallel()
	e := newE2ELab(t)
	for i, closedStderr := range []bool{true, false} {
		port := 7400 + i
		peerErr := make(chan error, 1)
		ln := e.listen(t, port)
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
		outR.Close() // the reader is gone before tcpcraft writes anything
		var errOut syncBuffer
		ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
		defer cancel()
		args := []string{"connect", "--time-wait", "10ms", e.serverAddr(port)}
		if !closedStderr {
			args = append(args, "-q") // so that stderr would have only errors
		}
		cmd := e.Command(ctx, e.ClientNS, e.bin, args...)
		stdin, keep := openStdin(t) // input stays open: only the output can end the run
		defer keep.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, outW, &errOut
		if closedStderr {
			errR, errW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			errR.Close()
			cmd.Stderr = errW
			defer errW.Close()
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		outW.Close()
		if f, ok := cmd.Stderr.(*os.File); ok {
			f.Close()
		}
		err = cmd.Wait()
		if ctx.Err() != nil {
			t.Fatalf("tcpcraft did not stop on its own within %v", processTimeout)
		}
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			t.Fatalf("tcpcraft was killed by signal %v (want a clean exit after EPIPE)", ws.Signal())
		}
		var exit interface{ ExitCode() int }
		if !errors.As(err, &exit) || exit.ExitCode() != codeBrokenPipe {
			t.Fatalf("tcpcraft: %v, want exit status %d", err, codeBrokenPipe)
		}
		if !closedStderr && errOut.String() != "" {
			t.Errorf("stderr %q, want nothing: a closed output is not an error worth a message", errOut.String())
		}
		if rules := guardsOf(t, e, e.ClientNS, cmd.Process.Pid); len(rules) > 0 {
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
}

// TestReadersThatStopEarly: `tcpcraft decode x.pcap | head -1` and
// `tcpcraft draw x.pcap -o - | head -1`: the reader takes a line and goes;
// tcpcraft ends with 141, quietly, as grep and tcpdump do.
func TestReadersThatStopEarly(t *testing.T) {
	t.Parallel()
	bin := tcpcraftBinary(t)
	// A capture big enough not to fit in a pipe's buffer: the HTTP
	// connection's packets many times over.
	frames, _ := pcapFrames(t, "linux-http.pcap")
	var many [][]byte
	for len(many) < 5000 {
		many = append(many, frames...)
	}
	big := writeTemp(t, "big.pcap", writePcap(t, layers.LinkTypeEthernet, many))
	for _, args := range [][]string{
		{"decode", big},
		{"decode", big, "--json"},
		{"draw", "../draw/testdata/loss5.pcap", "-n", "0", "-o", "-"}, // 200 kB of SVG
	} {
		ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
		cmd := exec.CommandContext(ctx, bin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, rerr := bufio.NewReader(out).ReadString('\n')
		out.Close() // head -1 exits
		werr := cmd.Wait()
		cancel()
		if rerr != nil || line == "" {
			t.Errorf("%v: no first line: %v", args, rerr)
		}
		var exit *exec.ExitError
		if !errors.As(werr, &exit) || exit.ExitCode() != codeBrokenPipe {
			t.Errorf("%v: %v, want exit status %d", args, werr, codeBrokenPipe)
		}
		if errOut.Len() > 0 {
			t.Errorf("%v: stderr %q, want nothing", args, errOut.String())
		}
	}
}
