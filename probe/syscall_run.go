package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"golang.org/x/sys/unix"
)

// syscall runs a system call line on the kernel under test. A call the
// script marks as blocking ("...END") runs on while the script goes on;
// its result and return time are checked when it returns.
func (r *runner) syscall(ev *Event, t, offset, tol time.Duration) (time.Duration, error) {
	sc := ev.Syscall
	if r.env.Kernel == nil {
		return 0, r.fail(ev, "system call %s needs a kernel to run on (not with --target)", sc.Name)
	}
	if r.blocking != nil {
		if err := r.awaitBlocking(idleWait); err != nil {
			return 0, err
		}
		if r.blocking != nil && sc.Blocking {
			return 0, r.fail(ev, "runtime error in %s call: blocking system call while another blocking system call is already in progress", sc.Name)
		}
	}
	if err := r.waitUntil(t); err != nil {
		return 0, err
	}
	if err := r.checkLate(ev, "system call start", t, tol); err != nil {
		return 0, err
	}
	req, post, err := r.request(sc)
	if err != nil {
		return 0, r.fail(ev, "runtime error in %s call: %v", sc.Name, err)
	}
	req.Blocking = sc.Blocking
	call := r.env.Kernel.Start(req)
	limit := time.NewTimer(nonBlockingLimit)
	defer limit.Stop()
	if !sc.Blocking {
		select {
		case rep := <-call.Done:
			r.showCall(sc, req, rep, false)
			if msg := r.checkResult(sc, rep, post); msg != "" {
				return 0, r.fail(ev, "runtime error in %s call: %s", sc.Name, msg)
			}
			return r.since(time.Unix(0, rep.End)), nil
		case <-limit.C:
			return 0, r.fail(ev, "runtime error in %s call: still running after %v; mark a call that should block with its return time, e.g. +0...0.1 %s(...)", sc.Name, nonBlockingLimit, sc.Name)
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	b := &blockingCall{ev: ev, call: call, req: req, start: t, end: offset + sc.End.Start, slack: r.slack}
	select {
	case at := <-call.Blocked:
		r.verbosef("%s %s(%s) blocked", secs(r.since(at)), sc.Name, joinExprs(sc.Args))
		b.post = post
		r.blocking = b
		return r.since(at), nil
	case rep := <-call.Done:
		// It returned without ever sleeping: check it now.
		b.post = post
		r.blocking = b
		if err := r.finishBlocking(rep); err != nil {
			return 0, err
		}
		return r.since(time.Unix(0, rep.End)), nil
	case <-limit.C:
		return 0, r.fail(ev, "runtime error in %s call: neither blocked nor returned within %v", sc.Name, nonBlockingLimit)
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	}
}

// pollBlocking checks, without waiting, whether the blocking call has
// returned.
func (r *runner) pollBlocking() error {
	if r.blocking == nil {
		return nil
	}
	select {
	case rep := <-r.blocking.call.Done:
		return r.finishBlocking(rep)
	default:
		return nil
	}
}

// awaitBlocking waits up to d for the blocking call to return.
func (r *runner) awaitBlocking(d time.Duration) error {
	if r.blocking == nil {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case rep := <-r.blocking.call.Done:
		return r.finishBlocking(rep)
	case <-timer.C:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// finishBlocking checks a blocking call's result and return time.
func (r *runner) finishBlocking(rep Reply) error {
	b := r.blocking
	r.blocking = nil
	sc := b.ev.Syscall
	r.showCall(sc, b.req, rep, true)
	if msg := r.checkResult(sc, rep, b.post); msg != "" {
		return r.fail(b.ev, "runtime error in %s call: %s", sc.Name, msg)
	}
	end := r.since(time.Unix(0, rep.End))
	tol := r.toleranceFor(b.end, b.start)
	// The return is stamped by the calling thread once it runs again: on
	// a busy machine that is late by the machine's doing (the kernel
	// finished the call when it woke the thread), so a late return is
	// allowed what tcpcraft's own late starts are (ownStartLate); an
	// early one is not.
	if end < b.end-b.slack-tol || end > b.end+max(tol+r.ownLate, ownStartLate) {
		return r.fail(b.ev, "timing error: expected system call return at %s sec but happened at %s sec; tolerance %s sec", secs(b.end), secs(end), secs(tol))
	}
	return nil
}

func (r *runner) showCall(sc *Syscall, req Request, rep Reply, blocking bool) {
	if r.verb == nil {
		return
	}
	// A call is stamped when it entered the kernel, as the script times
	// it: packets it makes the kernel send are captured after that (a
	// stamp at its return could come after them). A blocking call's
	// return is the event its line reports.
	at := r.since(time.Unix(0, rep.Start))
	if blocking || rep.Start == 0 {
		at = r.since(time.Unix(0, rep.End))
	}
	res := fmt.Sprint(rep.Ret)
	switch {
	case rep.Err != "":
		res = "error: " + rep.Err
	case rep.Ret == -1:
		res += " " + ErrnoName(rep.Errno) + " (" + errnoText(rep.Errno) + ")"
	}
	live := ""
	if sc.Name != "socket" {
		live = fmt.Sprintf(" [live fd %d]", req.FD)
	}
	r.verbosef("%s %s(%s) = %s%s", secs(at), sc.Name, joinExprs(sc.Args), res, live)
}

// checkResult compares a call's outcome with "= result [ERRNO]", in
// packetdrill's words. post checks what the call returned besides its
// value (getsockopt's option value).
func (r *runner) checkResult(sc *Syscall, rep Reply, post func(Reply) string) string {
	if rep.Err != "" {
		return rep.Err
	}
	if _, any := sc.Result.(*Ellipsis); any {
		return ""
	}
	want, err := r.intValue(sc.Result)
	if err != nil {
		return fmt.Sprintf("bad result %s: %v", sc.Result, err)
	}
	if want < 0 {
		if rep.Ret >= 0 {
			return fmt.Sprintf("Expected result %d but got %d", want, rep.Ret)
		}
		if sc.Errno != "" {
			wantErrno, ok := errnoByName(sc.Errno)
			if !ok {
				return fmt.Sprintf("unknown errno name %s", sc.Errno)
			}
			if rep.Errno != wantErrno {
				return fmt.Sprintf("Expected errno %d (%s: %s) but got %d (%s: %s)",
					wantErrno, sc.Errno, errnoText(wantErrno), rep.Errno, ErrnoName(rep.Errno), errnoText(rep.Errno))
			}
		}
		return ""
	}
	if rep.Ret < 0 {
		return fmt.Sprintf("Expected result %d but got -1 with errno %d (%s: %s)", want, rep.Errno, ErrnoName(rep.Errno), errnoText(rep.Errno))
	}
	if newFDCalls[sc.Name] {
		// The script's descriptor stands for whatever the kernel
		// returned (packetdrill maps script fds to live fds too).
		r.fds[want] = int(rep.Ret)
		if sc.Name == "socket" || sc.Name == "accept" {
			r.sut, r.haveSUT = want, true
		}
		// Only a new socket with an earlier connection around has
		// another connection's segments to ignore.
		r.awaitingSYN = sc.Name == "socket" && (r.conns > 0 || r.liveLocalISN != 0)
		delete(r.listeners, want)
		return ""
	}
	if rep.Ret != want {
		return fmt.Sprintf("Expected result %d but got %d", want, rep.Ret)
	}
	if sc.Name == "listen" {
		if fd, err := r.intValue(sc.Args[0]); err == nil {
			r.listeners[fd] = true
		}
		r.awaitingSYN = false
	}
	if post != nil {
		return post(rep)
	}
	return ""
}

// intValue evaluates an integer expression: numbers, symbols (AF_INET,
// O_NONBLOCK, ...), "a|b" and htons(N) (the port as a number: tcpcraft
// builds the socket address itself).
func (r *runner) intValue(e Expr) (int64, error) {
	switch e := e.(type) {
	case *IntExpr:
		return e.Value, nil
	case *WordExpr:
		if v, ok := symbolValue(e.Name); ok {
			return v, nil
		}
		if v, ok := errnoByName(e.Name); ok { // e.g. SO_ERROR's value
			return int64(v), nil
		}
		return 0, fmt.Errorf("unknown symbol %s", e.Name)
	case *BinaryExpr:
		if e.Op == "|" {
			a, err := r.intValue(e.Left)
			if err != nil {
				return 0, err
			}
			b, err := r.intValue(e.Right)
			return a | b, err
		}
	case *CallExpr:
		if (e.Name == "htons" || e.Name == "htonl") && len(e.Args) == 1 {
			return r.intValue(e.Args[0])
		}
	case *ListExpr:
		if e.Open == '[' && len(e.Elems) == 1 {
			return r.intValue(e.Elems[0])
		}
	}
	return 0, fmt.Errorf("expected an integer, found %s", e)
}

// fdValue maps a script descriptor to the live one; an unknown descriptor
// becomes -1, which the kernel answers with EBADF as it would a stale one.
func (r *runner) fdValue(e Expr) (int, error) {
	v, err := r.intValue(e)
	if err != nil {
		return 0, err
	}
	if live, ok := r.fds[v]; ok {
		return live, nil
	}
	return -1, nil
}

// sockaddrValue evaluates a socket address: "..." (def) or
// {sa_family=AF_INET, sin_port=htons(N), sin_addr=inet_addr("A")}, where
// packetdrill's default addresses and --local_ip/--remote_ip name the
// kernel under test and tcpcraft.
func (r *runner) sockaddrValue(e Expr, def netip.AddrPort) (netip.AddrPort, error) {
	if _, ok := e.(*Ellipsis); ok {
		return def, nil
	}
	l, ok := e.(*ListExpr)
	if !ok || l.Open != '{' {
		return netip.AddrPort{}, fmt.Errorf("expected ... or {sa_family=AF_INET, sin_port=htons(N), sin_addr=inet_addr(\"A\")}, found %s", e)
	}
	addr, port := def.Addr(), def.Port()
	for _, el := range l.Elems {
		f, ok := el.(*BinaryExpr)
		name, okName := f.Left.(*WordExpr)
		if !ok || f.Op != "=" || !okName {
			return netip.AddrPort{}, fmt.Errorf("expected field=value in %s", e)
		}
		switch name.Name {
		case "sa_family", "sin_family", "sin6_family":
			v, err := r.intValue(f.Right)
			if err != nil {
				return netip.AddrPort{}, err
			}
			if v != unix.AF_INET && v != unix.AF_INET6 {
				return netip.AddrPort{}, fmt.Errorf("only AF_INET and AF_INET6 addresses are supported")
			}
		case "sin_port", "sin6_port":
			v, err := r.intValue(f.Right)
			if err != nil {
				return netip.AddrPort{}, err
			}
			if v < 0 || v > 65535 {
				return netip.AddrPort{}, fmt.Errorf("port %d out of range", v)
			}
			port = uint16(v)
		case "sin_addr", "sin6_addr":
			a, err := r.addrValue(f.Right)
			if err != nil {
				return netip.AddrPort{}, err
			}
			addr = a
		default:
			return netip.AddrPort{}, fmt.Errorf("unknown sockaddr field %s", name.Name)
		}
	}
	return netip.AddrPortFrom(addr, port), nil
}

func (r *runner) addrValue(e Expr) (netip.Addr, error) {
	switch e := e.(type) {
	case *CallExpr:
		if e.Name == "inet_addr" && len(e.Args) == 1 {
			if s, ok := e.Args[0].(*StringExpr); ok {
				a, err := netip.ParseAddr(s.Value)
				if err != nil {
					return netip.Addr{}, fmt.Errorf("inet_addr(%q): not an IP address", s.Value)
				}
				if live, ok := r.localAlias[a]; ok {
					return live, nil
				}
				return a, nil
			}
		}
	case *WordExpr:
		if e.Name == "INADDR_ANY" || e.Name == "in6addr_any" {
			if r.env.Peer.Is6() {
				return netip.IPv6Unspecified(), nil
			}
			return netip.IPv4Unspecified(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("expected inet_addr(\"A.B.C.D\") or INADDR_ANY, found %s", e)
}

// sockAddr renders a socket address for the helper: an IPv4 address as
// IPv4-mapped IPv6 with --ip_version=ipv4-mapped-ipv6 (the sockets are
// AF_INET6 there).
func (r *runner) sockAddr(ap netip.AddrPort) string {
	if r.set.IPVersion == "ipv4-mapped-ipv6" && ap.Addr().Is4() {
		ap = netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	return ap.String()
}

// bufferArgs reads a buffer and its length: the buffer is "..." (zero
// bytes) or a string.
func (r *runner) bufferArgs(buf, count Expr) (data []byte, n int, err error) {
	v, err := r.intValue(count)
	if err != nil {
		return nil, 0, err
	}
	if v < 0 || v > maxBuffer {
		return nil, 0, fmt.Errorf("length %d out of range", v)
	}
	n = int(v)
	switch b := buf.(type) {
	case *Ellipsis:
		return nil, n, nil
	case *IntExpr, *WordExpr:
		// NULL (or 0): the caller passes a NULL pointer.
		if p, err := r.intValue(b); err == nil && p == 0 {
			return nil, n, errNullBuffer
		}
	case *StringExpr:
		data = make([]byte, n)
		copy(data, b.Value)
		return data, n, nil
	}
	return nil, 0, fmt.Errorf("expected ..., NULL or a string as the buffer, found %s", buf)
}

// errNullBuffer is bufferArgs' word for a NULL buffer: not an error, the
// request passes a NULL pointer.
var errNullBuffer = errors.New("NULL buffer")

// buffer fills req's buffer from a script's buffer and count arguments.
func (r *runner) buffer(req *Request, buf, count Expr) error {
	var err error
	req.Data, req.Len, err = r.bufferArgs(buf, count)
	if err == errNullBuffer {
		req.Null, err = true, nil
	}
	return err
}

// optionValue encodes a setsockopt value: [N] or N (an int), {onoff=A,
// linger=B} (struct linger) or a string (TCP_CONGESTION).
func (r *runner) optionValue(e Expr) ([]byte, error) {
	switch v := e.(type) {
	case *StringExpr:
		return []byte(v.Value), nil
	case *ListExpr:
		if v.Open == '{' {
			var onoff, linger int64
			for _, el := range v.Elems {
				f, ok := el.(*BinaryExpr)
				if !ok || f.Op != "=" {
					return nil, fmt.Errorf("expected {onoff=N, linger=N}, found %s", e)
				}
				n, err := r.intValue(f.Right)
				if err != nil {
					return nil, err
				}
				switch f.Left.String() {
				case "onoff", "l_onoff":
					onoff = n
				case "linger", "l_linger":
					linger = n
				default:
					return nil, fmt.Errorf("unknown linger field %s", f.Left)
				}
			}
			return lingerOption(onoff, linger), nil
		}
	}
	n, err := r.intValue(e)
	if err != nil {
		return nil, err
	}
	return intOption(n), nil
}

// request turns a system call line into a Request for the kernel.
func (r *runner) request(sc *Syscall) (Request, func(Reply) string, error) {
	req := Request{Call: sc.Name}
	a := sc.Args
	var err error
	ints := func(es ...Expr) error {
		for _, e := range es {
			v, err := r.intValue(e)
			if err != nil {
				return err
			}
			req.Ints = append(req.Ints, v)
		}
		return nil
	}
	if !noFDCalls[sc.Name] {
		if req.FD, err = r.fdValue(a[0]); err != nil {
			return req, nil, err
		}
	}
	var post func(Reply) string
	switch sc.Name {
	case "socket":
		// "..." is the domain of the run's IP version (packetdrill's
		// socket_domain: AF_INET6 for ipv6 and ipv4-mapped-ipv6).
		domain := int64(unix.AF_INET)
		if r.env.Peer.Is6() || r.set.IPVersion == "ipv4-mapped-ipv6" {
			domain = unix.AF_INET6
		}
		if _, ok := a[0].(*Ellipsis); !ok {
			if domain, err = r.intValue(a[0]); err != nil {
				return req, nil, err
			}
		}
		if domain != unix.AF_INET && domain != unix.AF_INET6 {
			return req, nil, fmt.Errorf("only AF_INET and AF_INET6 sockets are supported")
		}
		req.Ints = []int64{domain}
		err = ints(a[1], a[2])
		// A new socket is the socket under test; it is not listening.
		r.listening = false
	case "bind":
		var ap netip.AddrPort
		ap, err = r.sockaddrValue(a[1], netip.AddrPortFrom(r.env.Peer, r.bindPort))
		req.Addr = r.sockAddr(ap)
		post = func(Reply) string { r.kernelPort = ap.Port(); return "" }
	case "connect":
		// A family alone is a socket address holding only it, as
		// packetdrill passes it: connect(fd, AF_UNSPEC, ...) on a
		// connected socket disconnects it (tcp_disconnect), after which
		// it may connect again.
		switch a[1].(type) {
		case *WordExpr, *IntExpr:
			var fam int64
			if fam, err = r.intValue(a[1]); err == nil && (fam < 0 || fam > 0xffff) {
				err = fmt.Errorf("bad address family %d", fam)
			}
			req.FamilyOnly, req.Family = true, int(fam)
			return req, nil, err
		}
		// packetdrill connects to --remote_ip at --connect_port; where
		// tcpcraft owns every port of its address it takes that one.
		if r.env.AnyPort {
			r.localPort = r.connectPort
		}
		local := r.local()
		var ap netip.AddrPort
		ap, err = r.sockaddrValue(a[1], local)
		if err == nil && ap != local {
			if r.env.AnyPort && ap.Addr() == local.Addr() {
				r.localPort = ap.Port()
			} else {
				err = fmt.Errorf("connect to %v: tcpcraft's end is %v; write ... for the address", ap, local)
			}
		}
		req.Addr = r.sockAddr(ap)
	case "listen":
		err = ints(a[1])
		post = func(Reply) string { r.listening = true; return "" }
	case "accept":
	case "read":
		err = r.buffer(&req, a[1], a[2])
		req.Data = nil
	case "write":
		err = r.buffer(&req, a[1], a[2])
	case "send", "recv", "sendto", "recvfrom":
		err = r.buffer(&req, a[1], a[2])
		if err == nil {
			err = ints(a[3])
		}
		if strings.HasPrefix(sc.Name, "recv") {
			req.Data = nil
		}
		if err == nil && sc.Name == "sendto" {
			err = r.sendtoAddr(&req, a[4])
		}
	case "shutdown":
		err = ints(a[1])
	case "close":
	case "fcntl":
		err = ints(a[1:]...)
	case "setsockopt":
		if err = ints(a[1], a[2]); err == nil {
			req.Data, err = r.optionValue(a[3])
		}
		if s, ok := a[3].(*StringExpr); ok && err == nil {
			// A string option is passed with the script's length
			// (TCP_FASTOPEN_KEY's 16 bytes, or a wrong length on purpose).
			if n, lerr := r.intValue(a[4]); lerr == nil && n >= 0 && n <= 256 {
				req.Data = make([]byte, n)
				copy(req.Data, s.Value)
			}
		}
	case "getsockopt":
		if err = ints(a[1], a[2]); err != nil {
			break
		}
		var want []byte
		if _, any := a[3].(*Ellipsis); !any {
			if want, err = r.optionValue(a[3]); err != nil {
				break
			}
		}
		req.Len = max(len(want), 4)
		if l, lerr := r.intValue(a[4]); lerr == nil && l > 0 && l <= 256 {
			req.Len = int(l)
		}
		if s, ok := a[3].(*StringExpr); ok {
			req.Len = max(req.Len, len(s.Value)+1, 16)
		}
		post = func(rep Reply) string { return checkOption(a[3], want, rep.Data) }
	default:
		post, err = r.moreRequest(sc, &req)
	}
	return req, post, err
}

// checkOption compares getsockopt's value with the script's.
func checkOption(e Expr, want, got []byte) string {
	if want == nil {
		return ""
	}
	if _, ok := e.(*StringExpr); ok {
		g := string(bytes.TrimRight(got, "\x00"))
		if g != string(want) {
			return fmt.Sprintf("Bad getsockopt optval: expected: %q actual: %q", want, g)
		}
		return ""
	}
	if len(want) == 4 {
		w := int32(binary.NativeEndian.Uint32(want))
		if len(got) < 4 {
			return fmt.Sprintf("Bad getsockopt optval: expected: %d actual: %d bytes", w, len(got))
		}
		if g := int32(binary.NativeEndian.Uint32(got)); g != w {
			return fmt.Sprintf("Bad getsockopt optval: expected: %d actual: %d", w, g)
		}
		return ""
	}
	if !bytes.Equal(want, got[:min(len(got), len(want))]) || len(got) < len(want) {
		return fmt.Sprintf("Bad getsockopt optval: expected: %x actual: %x", want, got)
	}
	return ""
}

// sendtoAddr sets sendto's destination as packetdrill does: "..." is
// tcpcraft's end (where a MSG_FASTOPEN sendto connects; a connected TCP
// socket ignores the address), a family alone (AF_UNSPEC) is a socket
// address holding only that family, else a sockaddr struct.
func (r *runner) sendtoAddr(req *Request, e Expr) error {
	connectTo := func() {
		// A MSG_FASTOPEN sendto connects: like connect(), to
		// --connect_port where tcpcraft owns every port.
		if len(req.Ints) > 0 && req.Ints[0]&unix.MSG_FASTOPEN != 0 && r.env.AnyPort {
			r.localPort = r.connectPort
			r.listening = false
		}
		req.Addr = r.sockAddr(r.local())
	}
	switch e.(type) {
	case *Ellipsis:
		connectTo()
		return nil
	case *WordExpr, *IntExpr:
		v, err := r.intValue(e)
		if err != nil {
			return err
		}
		if v == unix.AF_INET || v == unix.AF_INET6 {
			connectTo()
			return nil
		}
		if v < 0 || v > 0xffff {
			return fmt.Errorf("bad address family %d", v)
		}
		req.FamilyOnly, req.Family = true, int(v)
		return nil
	}
	ap, err := r.sockaddrValue(e, r.local())
	req.Addr = r.sockAddr(ap)
	return err
}

// noteInbound follows packetdrill's socket under test: a SYN arriving
// while it listens (or before any socket) opens a new connection, which
// becomes the socket under test once accept returns it.
func (r *runner) noteInbound(pk *Packet) {
	if pk.Flags.Has(craft.FlagSYN) && !pk.Flags.Has(craft.FlagACK) {
		r.awaitingSYN = false
		if !r.haveSUT || r.listeners[r.sut] {
			r.sut, r.haveSUT = -1, true
		}
	}
}
