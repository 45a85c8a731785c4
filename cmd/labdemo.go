package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/lab"
)

// demoPage is what the demo's kernel HTTP server answers.
const demoPage = "Hello from the Linux kernel's TCP in the server namespace.\n" +
	"tcpcraft made this connection from userspace: every segment above was built,\n" +
	"sent and parsed by tcpcraft, and the kernel never knew.\n"

// labDemo is the action of "tcpcraft lab demo": bring the lab up, start a
// kernel HTTP server in the server namespace, run `tcpcraft connect` with a
// GET request from the client namespace, show its trace and the response,
// and take the lab down again (only if the demo brought it up).
func labDemo(ctx context.Context, c *cli.Command) error {
	cfg, err := labConfig(c)
	if err != nil {
		return err
	}
	out, errw := stdout(c), stderr(c)
	before, err := lab.Status(ctx, cfg)
	if err != nil {
		return exitFailure(err)
	}
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		return exitFailure(err)
	}
	if before.State() != lab.StateUp {
		defer func() {
			if err := lab.Down(context.Background(), cfg); err != nil {
				fmt.Fprintf(errw, "tcpcraft lab demo: taking the lab down: %v\n", err)
			} else {
				fmt.Fprintf(out, "\n== lab taken down (namespaces %s and %s removed)\n", cfg.ClientNS, cfg.ServerNS)
			}
		}()
	}
	fmt.Fprintf(out, "== lab is up: client %s (namespace %s) <-> server %s (namespace %s)\n",
		labAddrs(l.ClientAddr, l.ClientAddr6), l.ClientNS, labAddrs(l.ServerAddr, l.ServerAddr6), l.ServerNS)

	// The page over IPv4, then over IPv6 (when the lab has it).
	servers := []netip.Addr{l.ServerIP()}
	if l.HasIPv6() {
		servers = append(servers, l.ServerIP6())
	}
	for _, ip := range servers {
		server := netAddr(ip.String(), 80)
		ln, err := l.Listen(l.ServerNS, "tcp", server)
		if err != nil {
			return exitFailure(fmt.Errorf("starting the kernel HTTP server in %s: %w", l.ServerNS, err))
		}
		defer ln.Close()
		go serveDemoPage(ln)
		fmt.Fprintf(out, "== kernel HTTP server (a Go net.Listener) listening on %s in %s\n", server, l.ServerNS)
	}

	self, err := os.Executable()
	if err != nil {
		return exitFailure(fmt.Errorf("finding the tcpcraft binary: %w", err))
	}
	for _, ip := range servers {
		if err := demoFetch(ctx, l, self, ip, out, errw); err != nil {
			return err
		}
	}
	return nil
}

// demoFetch runs `tcpcraft connect` to the demo's server at ip from the
// client namespace with a GET request and shows its trace and the page.
func demoFetch(ctx context.Context, l *lab.Lab, self string, ip netip.Addr, out, errw io.Writer) error {
	family := "IPv4"
	if ip.Is6() {
		family = "IPv6"
	}
	server := netAddr(ip.String(), 80)
	request := "GET / HTTP/1.0\r\nHost: " + server + "\r\nUser-Agent: tcpcraft-demo\r\n\r\n"
	args := []string{"connect", server}
	fmt.Fprintf(out, "\n== over %s, running: printf %q | ip netns exec %s tcpcraft %s\n", family, request, l.ClientNS, strings.Join(args, " "))
	fmt.Fprintf(out, "== trace (stderr: > sent by tcpcraft, < received from the kernel):\n")
	cmd := l.Command(ctx, l.ClientNS, self, args...)
	cmd.Stdin = strings.NewReader(request)
	var response strings.Builder
	cmd.Stdout = &response
	cmd.Stderr = errw
	// On Ctrl-C, let connect reset its peer and remove its rule itself.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	fmt.Fprintf(out, "== response over %s (stdout):\n%s", family, response.String())
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if runErr != nil {
		var ee *exec.ExitError
		if errors.As(runErr, &ee) {
			return exitFailure(fmt.Errorf("tcpcraft connect over %s exited with %d", family, ee.ExitCode()))
		}
		return exitFailure(fmt.Errorf("running tcpcraft connect: %w", runErr))
	}
	return nil
}

// serveDemoPage answers every connection on ln with demoPage, as an
// HTTP/1.0 server does: the request's head is read (up to its blank line),
// the response written, the connection closed. Not net/http: linking it
// (and crypto/tls with it) into the binary for this alone cost every run
// of every command its package initialisation (docs/PERFORMANCE.md).
func serveDemoPage(ln net.Listener) {
	response := fmt.Sprintf("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(demoPage), demoPage)
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			var head []byte
			buf := make([]byte, 1024)
			for !strings.Contains(string(head), "\r\n\r\n") && len(head) < 64<<10 {
				n, err := conn.Read(buf)
				head = append(head, buf[:n]...)
				if err != nil {
					return
				}
			}
			_, _ = io.WriteString(conn, response)
		}()
	}
}

func netAddr(host string, port int) string {
	return net.JoinHostPort(host, fmt.Sprint(port))
}
