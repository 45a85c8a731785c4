package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/fault"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/stack"
)

func listenFlags() []cli.Flag {
	flags := append(linkFlags(), connFlags()...)
	flags = append(flags, familyFlags("listen on every address of one family (with :PORT)")...)
	flags = append(flags,
		&cli.BoolFlag{Name: "keep-open", Aliases: []string{"k"}, Usage: "keep accepting connections, many at once, until interrupted"},
		&cli.BoolFlag{Name: "echo", Usage: "echo each connection's bytes back to it"},
		&cli.StringFlag{Name: "exec", Aliases: []string{"e"}, Usage: "run `CMD` (with sh -c) per connection, its stdin and stdout wired to the connection"},
		&intFlag{Name: "max-conns", Usage: "at most `N` connections at once; more are reset", DefaultText: "no limit", Config: intRange{min: 0, max: 1 << 30, hint: "must be 0 or more"}},
		&intFlag{Name: "backlog", Value: 128, Usage: "connections half-open (the SYN queue) and, apart, established but not yet served (the accept queue), like listen(2)'s backlog; a SYN beyond a full SYN queue gets a SYN cookie (--syncookies), one while the accept queue is full is dropped unanswered", Config: intRange{min: 1, max: 1 << 20}},
		&choiceFlag{Name: "syncookies", Value: fsm.SYNCookiesAuto.String(), Usage: "answer SYNs with SYN cookies (RFC 4987, as Linux computes them), keeping no state: auto when the SYN queue is full (Linux's tcp_syncookies=1), never (drop the SYN), or always", Config: choices{values: []string{fsm.SYNCookiesAuto.String(), fsm.SYNCookiesNever.String(), fsm.SYNCookiesAlways.String()}}},
		&cli.BoolFlag{Name: "force", Usage: "listen even if a kernel socket already listens on the port (the kernel will no longer see its segments)"},
		statsFlag(),
	)
	return append(flags, ladderFlags()...)
}

// parseListenAddr reads "[ADDR]:PORT" (":8080", "8080", "10.0.2.20:8080",
// "[fd00:2::20]:8080", "0.0.0.0:8080", "[::]:8080"). Without an address
// it is every address of both families (the zero netip.Addr), as a
// kernel socket on [::] is, or of the family fam asks for (-4: 0.0.0.0,
// -6: ::); 0.0.0.0 and :: name one family's.
func parseListenAddr(arg string, fam family) (netip.AddrPort, error) {
	host, portStr := "", arg
	if strings.Contains(arg, ":") {
		var err error
		host, portStr, err = net.SplitHostPort(arg)
		if err != nil {
			return netip.AddrPort{}, usagef("%q: want [ADDR]:PORT (an IPv6 address in brackets: [fd00:2::20]:80): %v", arg, err)
		}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, usagef("%q: port %q is not a number 1-65535", arg, portStr)
	}
	var addr netip.Addr
	switch {
	case host != "":
		addr, err = netip.ParseAddr(host)
		if err != nil {
			return netip.AddrPort{}, usagef("%q: %q is not an IP address", arg, host)
		}
		if addr.Zone() != "" || addr.Is6() && addr.IsLinkLocalUnicast() {
			return netip.AddrPort{}, usagef("%q: link-local IPv6 addresses are not supported; use a global or unique local one", arg)
		}
		if addr.IsMulticast() {
			return netip.AddrPort{}, usagef("%q: %v is a multicast address", arg, addr)
		}
		addr = addr.Unmap()
		switch {
		case fam == family4 && !addr.Is4():
			return netip.AddrPort{}, usagef("%q: -4 asks for IPv4, and %v is an IPv6 address", arg, addr)
		case fam == family6 && !addr.Is6():
			return netip.AddrPort{}, usagef("%q: -6 asks for IPv6, and %v is an IPv4 address", arg, addr)
		}
	case fam == family4:
		addr = netip.IPv4Unspecified()
	case fam == family6:
		addr = netip.IPv6Unspecified()
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// listenString shows a listening address as ss(8) does: *:PORT for every
// address of both families, [::]:PORT, 0.0.0.0:PORT, [ADDR]:PORT.
func listenString(ap netip.AddrPort) string {
	if !ap.Addr().IsValid() {
		return fmt.Sprintf("*:%d", ap.Port())
	}
	return ap.String()
}

// runListen is the action of "tcpcraft listen [ADDR]:PORT".
func runListen(ctx context.Context, c *cli.Command) error {
	if c.NArg() != 1 {
		return usagef("want exactly one [ADDR]:PORT argument, got %d (%s)", c.NArg(), quoteArgs(c.Args().Slice()))
	}
	if err := exclusive(c, "ipv4", "ipv6"); err != nil {
		return err
	}
	local, err := parseListenAddr(c.Args().First(), familyOf(c))
	if err != nil {
		return err
	}
	if err := checkTraceFlags(c); err != nil {
		return err
	}
	if _, err := connConfig(c, 0); err != nil {
		return err
	}
	if _, err := faultSpecs(c); err != nil {
		return err
	}
	if err := exclusive(c, "echo", "exec"); err != nil {
		return err
	}
	if flagIsSet(c, "sport") {
		return usagef("--sport has no meaning for listen: the port is in the address")
	}
	if !flagBool(c, "keep-open") && flagIsSet(c, "max-conns") {
		return usagef("--max-conns goes with -k: without it listen serves one connection")
	}
	ladder, err := ladderFromFlags(c, false, time.Now())
	if err != nil {
		return err
	}
	if err := checkOutputPath("--stats", statsPath(c)); err != nil {
		return err
	}
	if busy, err := kernelListening(local); err != nil {
		return exitFailure(err)
	} else if busy != "" && !flagBool(c, "force") {
		return exitFailure(fmt.Errorf("a kernel socket already listens on %s (%s); tcpcraft would take its segments away from it: stop it, pick another port, or use --force", listenString(local), busy))
	}
	sess, err := openSession(ctx, c, sessionSpec{local: local}, func(mtu int) (fsm.Config, error) {
		if mtu == 0 {
			mtu = 1500
		}
		return connConfig(c, mtu)
	})
	if err != nil {
		return err
	}
	defer sess.close()
	statsOut, closeStats, err := openStats(c)
	if err != nil {
		return err
	}
	defer closeStats()
	sess.trace.attach(ladder, statsOut)
	sess.trace.peerTag = true
	cookies, err := fsm.ParseSYNCookies(flagString(c, "syncookies")) // one of the flag's choices
	if err != nil {
		return usagef("--syncookies: %v", err)
	}
	l, err := sess.stack.ListenWith(local.Addr(), local.Port(), fsm.ListenConfig{Backlog: flagInt(c, "backlog"), SYNCookies: cookies})
	if err != nil {
		return exitFailure(err)
	}
	defer func() {
		// Linux tells of a SYN flood in its log ("Possible SYN flooding
		// on port ... Sending cookies."); tcpcraft in its trace: each
		// cookie as it goes, and the count at the end.
		if st := l.Stats(); st.CookiesSent > 0 || st.QueueDrops > 0 {
			sess.trace.warn("listener %v: %d SYNs, %d answered with SYN cookies, %d cookies came back, %d refused, %d dropped (queue full)",
				listenString(local), st.SYNs, st.CookiesSent, st.CookiesRecv, st.CookiesFailed, st.QueueDrops)
		}

	}()
	where := "every interface"
	if sess.route.Interface != "" {
		where = sess.route.Interface
	}
	sess.trace.note("listening on %s (%s)", listenString(local), where)

	h := &connHandler{c: c, trace: sess.trace, specs: sess.specs}
	if !flagBool(c, "keep-open") {
		conn, err := l.Accept(ctx)
		if err != nil {
			return ctx.Err()
		}
		sess.acts.register(conn)
		_ = l.Close()
		err = h.serve(ctx, conn, true)
		sess.trace.summary(conn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return exitFailure(fmt.Errorf("%v: %w", conn.RemoteAddr(), err))
		}
		if cerr := sess.close(); cerr != nil {
			return exitFailure(cerr)
		}
		return nil
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	active := 0
	var mu sync.Mutex
	maxConns := flagInt(c, "max-conns")
	for {
		conn, err := l.Accept(ctx)
		if err != nil {
			break // interrupted
		}
		sess.acts.register(conn)
		mu.Lock()
		if maxConns > 0 && active >= maxConns {
			mu.Unlock()
			sess.trace.note("[%v] refused: %d connections already (--max-conns)", conn.RemoteAddr(), maxConns)
			conn.Abort()
			continue
		}
		active++
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := h.serve(ctx, conn, false)
			if err != nil && ctx.Err() == nil {
				sess.trace.note("[%v] %v", conn.RemoteAddr(), err)
			}
			// Each connection's account, as the single-connection mode
			// and connect give theirs.
			sess.trace.summary(conn)
			mu.Lock()
			active--
			mu.Unlock()
		}()
	}
	// Interrupted: close() resets every open connection before the rule goes.
	sess.close()
	return ctx.Err()
}

// connHandler serves accepted connections the way the flags say.
type connHandler struct {
	c     *cli.Command
	trace *tracer
	specs []fault.Spec // --fault
	outMu sync.Mutex   // one connection's chunk at a time on stdout
	// echoBufs recycles --echo's copy buffers: a fresh 64 KiB per
	// connection was most of what a busy listener allocated, and its
	// garbage collections a tenth of its CPU (the accept rate,
	// docs/PERFORMANCE.md).
	echoBufs sync.Pool
}

// serve runs one connection to its end.
func (h *connHandler) serve(ctx context.Context, conn *stack.Conn, single bool) error {
	switch {
	case flagBool(h.c, "echo"):
		return h.echo(ctx, conn)
	case flagString(h.c, "exec") != "":
		return h.execFor(ctx, conn)
	case single:
		return pipe(ctx, conn, finLimit(h.specs, stdin(h.c)), stdout(h.c))
	default:
		// Many connections, one stdout: each connection's data goes to
		// stdout; nothing is sent to the peers (stdin can feed only one).
		return pipe(ctx, conn, nil, lockedWriter{&h.outMu, stdout(h.c)})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// connStream adapts a stack.Conn to io.Reader/io.Writer under ctx.
type connStream struct {
	ctx  context.Context
	conn *stack.Conn
}

func (s connStream) Read(p []byte) (int, error)  { return s.conn.Read(s.ctx, p) }
func (s connStream) Write(p []byte) (int, error) { return s.conn.Write(s.ctx, p) }

// echo sends every byte back until the peer's FIN, then closes.
func (h *connHandler) echo(ctx context.Context, conn *stack.Conn) error {
	buf, _ := h.echoBufs.Get().(*[]byte)
	if buf == nil {
		b := make([]byte, 64<<10)
		buf = &b
	}
	_, err := io.CopyBuffer(connStream{ctx, conn}, connStream{ctx, conn}, *buf)
	h.echoBufs.Put(buf)
	if err != nil {
		if cerr := conn.Err(); cerr != nil {
			return cerr
		}
		conn.Abort()
		return err
	}
	_ = conn.CloseWrite()
	if err := conn.Wait(ctx); err != nil {
		return err
	}
	return conn.Err()
}

// execFor runs --exec's command for one connection, like ncat --sh-exec.
func (h *connHandler) execFor(ctx context.Context, conn *stack.Conn) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", flagString(h.c, "exec"))
	cmd.Stderr = stderr(h.c)
	cmd.Env = append(os.Environ(), "TCPCRAFT_PEER="+conn.RemoteAddr().String(), "TCPCRAFT_LOCAL="+conn.LocalAddr().String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		conn.Abort()
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		conn.Abort()
		return err
	}
	if err := cmd.Start(); err != nil {
		conn.Abort()
		return fmt.Errorf("--exec: %w", err)
	}
	// The peer's bytes to the command; its EOF closes the command's stdin.
	go func() {
		_, _ = io.CopyBuffer(stdin, connStream{ctx, conn}, make([]byte, 64<<10))
		stdin.Close()
	}()
	// The command's output to the peer; its end sends our FIN.
	_, copyErr := io.CopyBuffer(connStream{ctx, conn}, bufio.NewReaderSize(stdout, 64<<10), make([]byte, 64<<10))
	waitErr := cmd.Wait()
	if copyErr != nil && conn.Err() == nil && ctx.Err() == nil {
		conn.Abort()
		return copyErr
	}
	_ = conn.CloseWrite()
	if err := conn.Wait(ctx); err != nil {
		return err
	}
	if err := conn.Err(); err != nil {
		return err
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		return waitErr
	}
	return nil
}

// kernelListening reports a kernel TCP socket in LISTEN on local's port
// whose address overlaps local's (one of them a wildcard, or equal), from
// /proc/net/tcp and tcp6 of this network namespace. "" means none.
//
// It reads /proc/thread-self/net: /proc/net (= /proc/self/net) shows the
// namespace of the process's main thread, which is not this one when
// tcpcraft runs in a goroutine locked on a thread switched into another
// namespace (cmd.Run inside lab.Do, as the tests do).
func kernelListening(local netip.AddrPort) (string, error) {
	dir := "/proc/thread-self/net"
	if _, err := os.Stat(dir); err != nil {
		dir = "/proc/net" // Linux before 3.17
	}
	for _, path := range []string{dir + "/tcp", dir + "/tcp6"} {
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && path != dir+"/tcp" {
				continue
			}
			return "", fmt.Errorf("reading %s: %w", path, err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			addrHex, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			port, err := strconv.ParseUint(portHex, 16, 16)
			if err != nil || uint16(port) != local.Port() {
				continue
			}
			kaddr, ok := procAddr(addrHex)
			if !ok {
				continue
			}
			if kaddr.IsUnspecified() || !local.Addr().IsValid() || local.Addr().IsUnspecified() || kaddr.Unmap() == local.Addr() {
				f.Close()
				return fmt.Sprintf("listening on %s port %d", kaddr, port), nil
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", path, err)
		}
	}
	return "", nil
}

// procAddr decodes an address of /proc/net/tcp{,6}: 32-bit words in host
// (little-endian on the machines tcpcraft runs on) order.
func procAddr(h string) (netip.Addr, bool) {
	if len(h) != 8 && len(h) != 32 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for w := 0; w < len(h)/8; w++ {
		v, err := strconv.ParseUint(h[w*8:w*8+8], 16, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		b[w*4], b[w*4+1], b[w*4+2], b[w*4+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	if len(h) == 8 {
		return netip.AddrFrom4([4]byte(b[:4])), true
	}
	return netip.AddrFrom16(b), true
}
