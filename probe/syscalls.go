package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SupportedSyscalls returns the names of the system calls scripts may use.
func SupportedSyscalls() []string {
	base := []string{"socket", "setsockopt", "getsockopt", "bind", "listen", "accept",
		"connect", "read", "write", "send", "recv", "sendto", "recvfrom", "shutdown",
		"close", "fcntl"}
	return append(base, moreSyscallNames()...)
}

// symbolValue returns the value of a symbolic constant a script may use
// (the Linux values, from x/sys/unix).
func symbolValue(name string) (int64, bool) {
	if v, ok := ipLevelSymbols[name]; ok {
		return v, true
	}
	v, ok := map[string]int64{
		"AF_INET": unix.AF_INET, "AF_INET6": unix.AF_INET6, "AF_UNSPEC": unix.AF_UNSPEC,
		"PF_INET": unix.AF_INET, "PF_INET6": unix.AF_INET6,
		"SOCK_STREAM": unix.SOCK_STREAM, "SOCK_DGRAM": unix.SOCK_DGRAM,
		"SOCK_NONBLOCK": unix.SOCK_NONBLOCK, "SOCK_CLOEXEC": unix.SOCK_CLOEXEC,
		"IPPROTO_IP": unix.IPPROTO_IP, "IPPROTO_TCP": unix.IPPROTO_TCP, "IPPROTO_UDP": unix.IPPROTO_UDP,
		"IPPROTO_IPV6": unix.IPPROTO_IPV6,
		"SOL_SOCKET":   unix.SOL_SOCKET, "SOL_TCP": unix.SOL_TCP, "SOL_IP": unix.SOL_IP,
		"SO_REUSEADDR": unix.SO_REUSEADDR, "SO_REUSEPORT": unix.SO_REUSEPORT,
		"SO_KEEPALIVE": unix.SO_KEEPALIVE, "SO_LINGER": unix.SO_LINGER,
		"SO_RCVBUF": unix.SO_RCVBUF, "SO_SNDBUF": unix.SO_SNDBUF,
		"SO_RCVLOWAT": unix.SO_RCVLOWAT, "SO_SNDLOWAT": unix.SO_SNDLOWAT,
		"SO_ERROR": unix.SO_ERROR, "SO_OOBINLINE": unix.SO_OOBINLINE,
		"SO_DEBUG": unix.SO_DEBUG, "SO_PRIORITY": unix.SO_PRIORITY, "SO_MARK": unix.SO_MARK,
		"SO_MAX_PACING_RATE": unix.SO_MAX_PACING_RATE,
		"TCP_NODELAY":        unix.TCP_NODELAY, "TCP_MAXSEG": unix.TCP_MAXSEG, "TCP_CORK": unix.TCP_CORK,
		"TCP_KEEPIDLE": unix.TCP_KEEPIDLE, "TCP_KEEPINTVL": unix.TCP_KEEPINTVL, "TCP_KEEPCNT": unix.TCP_KEEPCNT,
		"TCP_SYNCNT": unix.TCP_SYNCNT, "TCP_LINGER2": unix.TCP_LINGER2, "TCP_DEFER_ACCEPT": unix.TCP_DEFER_ACCEPT,
		"TCP_WINDOW_CLAMP": unix.TCP_WINDOW_CLAMP, "TCP_QUICKACK": unix.TCP_QUICKACK,
		"TCP_CONGESTION": unix.TCP_CONGESTION, "TCP_USER_TIMEOUT": unix.TCP_USER_TIMEOUT,
		"TCP_NOTSENT_LOWAT": unix.TCP_NOTSENT_LOWAT, "TCP_THIN_LINEAR_TIMEOUTS": unix.TCP_THIN_LINEAR_TIMEOUTS,
		"O_RDONLY": unix.O_RDONLY, "O_WRONLY": unix.O_WRONLY, "O_RDWR": unix.O_RDWR,
		"O_NONBLOCK": unix.O_NONBLOCK, "O_NDELAY": unix.O_NONBLOCK,
		"F_GETFL": unix.F_GETFL, "F_SETFL": unix.F_SETFL, "F_GETFD": unix.F_GETFD, "F_SETFD": unix.F_SETFD,
		"FD_CLOEXEC":   unix.FD_CLOEXEC,
		"MSG_DONTWAIT": unix.MSG_DONTWAIT, "MSG_PEEK": unix.MSG_PEEK, "MSG_WAITALL": unix.MSG_WAITALL,
		"MSG_MORE": unix.MSG_MORE, "MSG_EOR": unix.MSG_EOR, "MSG_NOSIGNAL": unix.MSG_NOSIGNAL,
		"MSG_OOB": unix.MSG_OOB, "MSG_TRUNC": unix.MSG_TRUNC, "MSG_DONTROUTE": unix.MSG_DONTROUTE,
		"SHUT_RD": unix.SHUT_RD, "SHUT_WR": unix.SHUT_WR, "SHUT_RDWR": unix.SHUT_RDWR,
		"INADDR_ANY": 0,
		"IP_TOS":     unix.IP_TOS, "IP_TTL": unix.IP_TTL, "IP_MTU_DISCOVER": unix.IP_MTU_DISCOVER,
		"IP_PMTUDISC_DONT": unix.IP_PMTUDISC_DONT, "IP_PMTUDISC_WANT": unix.IP_PMTUDISC_WANT,
		"IP_PMTUDISC_DO": unix.IP_PMTUDISC_DO, "IP_PMTUDISC_PROBE": unix.IP_PMTUDISC_PROBE,
		"TCP_FASTOPEN": unix.TCP_FASTOPEN, "TCP_FASTOPEN_CONNECT": unix.TCP_FASTOPEN_CONNECT,
		"TCP_INQ": unix.TCP_INQ, "TCP_SAVE_SYN": unix.TCP_SAVE_SYN,
		"MSG_FASTOPEN": unix.MSG_FASTOPEN, "MSG_ZEROCOPY": unix.MSG_ZEROCOPY,
		"TCP_FASTOPEN_KEY": unix.TCP_FASTOPEN_KEY, "TCP_FASTOPEN_NO_COOKIE": unix.TCP_FASTOPEN_NO_COOKIE,
		"TCP_INFO": unix.TCP_INFO, "TCP_CC_INFO": unix.TCP_CC_INFO, "NULL": 0,
	}[name]
	if !ok {
		v, ok = moreSymbols[name]
	}
	return v, ok
}

// Request is one system call for the kernel under test, with every value
// already resolved to what the kernel sees (live file descriptors, concrete
// addresses). It is what the runner sends to the helper process.
type Request struct {
	ID   uint64 `json:"id"`
	Call string `json:"call"`
	FD   int    `json:"fd"`
	// Ints are the call's integer arguments after the descriptor:
	// socket: domain, type, protocol; listen: backlog; send/recv and
	// sendto/recvfrom: flags; shutdown: how; fcntl: cmd[, arg];
	// setsockopt/getsockopt: level, name.
	Ints []int64 `json:"ints,omitempty"`
	// Addr is the socket address of bind, connect and sendto ("ip:port").
	Addr string `json:"addr,omitempty"`
	// Len is the buffer length of read/write/send/recv/sendto/recvfrom and
	// the option length of getsockopt.
	Len int `json:"len,omitempty"`
	// Data is the option value of setsockopt and the bytes to send (nil:
	// Len zero bytes, as packetdrill writes for a "..." buffer).
	Data []byte `json:"data,omitempty"`
	// Blocking marks a call the script expects to block: the executor
	// reports when the calling thread goes to sleep in the kernel.
	Blocking bool `json:"blocking,omitempty"`
	// Null passes a NULL buffer of Len bytes (packetdrill's NULL), which
	// the kernel answers with EFAULT where it touches it.
	Null bool `json:"null,omitempty"`
	// FamilyOnly replaces Addr by a socket address holding only Family
	// (packetdrill's sendto(..., AF_UNSPEC, ...)).
	FamilyOnly bool `json:"family_only,omitempty"`
	Family     int  `json:"family,omitempty"`
	// FD2 is a second live descriptor (epoll_ctl's target, splice's
	// and sendfile's other end), Iov the iovec lengths of sendmsg and
	// recvmsg, Path open's path and Poll poll's (fd, events) pairs.
	FD2  int        `json:"fd2,omitempty"`
	Iov  []int      `json:"iov,omitempty"`
	Path string     `json:"path,omitempty"`
	Poll [][2]int64 `json:"poll,omitempty"`
}

// Reply is the result of a Request. A blocking call gets two replies: one
// with Event "blocked" (the thread is asleep in the kernel) and one with
// Event "done".
type Reply struct {
	ID    uint64 `json:"id"`
	Event string `json:"event"` // "blocked" or "done"
	Ret   int64  `json:"ret"`
	// Errno is the error number when Ret is -1.
	Errno int `json:"errno,omitempty"`
	// Data is what getsockopt returned; Addr the peer address accept or
	// recvfrom returned.
	Data []byte `json:"data,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Flags is recvmsg's msg_flags; Ints other values a call returned
	// (poll's revents, epoll_wait's events and data, pipe's two
	// descriptors, ioctl's value).
	Flags int64   `json:"flags,omitempty"`
	Ints  []int64 `json:"ints,omitempty"`
	// Start and End are when the call entered and left the kernel, and
	// Blocked when the thread was seen asleep (Unix nanoseconds).
	Start   int64 `json:"start,omitempty"`
	End     int64 `json:"end,omitempty"`
	Blocked int64 `json:"blocked,omitempty"`
	// Err is set when the request itself could not be executed (a bad
	// request, not a failing system call).
	Err string `json:"err,omitempty"`
}

// ErrnoName returns the symbolic name of errno ("EINPROGRESS"), or
// "errno N" for numbers without one.
func ErrnoName(errno int) string {
	if n := unix.ErrnoName(unix.Errno(errno)); n != "" {
		return n
	}
	return "errno " + strconv.Itoa(errno)
}

// errnoByName returns the number of an errno name.
func errnoByName(name string) (int, bool) {
	for e := unix.Errno(1); e < 256; e++ {
		if unix.ErrnoName(e) == name {
			return int(e), true
		}
	}
	// Aliases that ErrnoName does not return.
	switch name {
	case "EWOULDBLOCK":
		return int(unix.EAGAIN), true
	case "EDEADLOCK":
		return int(unix.EDEADLK), true
	case "ENOTSUP", "EOPNOTSUPP":
		return int(unix.EOPNOTSUPP), true
	}
	return 0, false
}

// errnoText is strerror's text, capitalised as packetdrill prints it.
func errnoText(errno int) string {
	s := unix.Errno(errno).Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Execute runs one request in the calling process, in whatever network
// namespace the sockets involved were created in (socket(2) uses the
// calling thread's). onBlocked, if not nil, is called (from another
// goroutine) when a Blocking request's thread is seen asleep in the kernel.
// It never panics on a bad request: the Reply's Err says what was wrong.
func Execute(req Request, onBlocked func(at time.Time)) Reply {
	rep := Reply{ID: req.ID, Event: "done"}
	// The thread must stay the same for the whole call, so that its state
	// in /proc tells whether the call sleeps.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var stop chan struct{}
	if req.Blocking && onBlocked != nil {
		stop = make(chan struct{})
		go watchBlocked(unix.Gettid(), stop, onBlocked)
	}
	rep.Start = time.Now().UnixNano()
	ret, errno, err := execute(req, &rep)
	rep.End = time.Now().UnixNano()
	if stop != nil {
		close(stop)
	}
	switch {
	case err != nil:
		rep.Err = err.Error()
		rep.Ret = -1
	case errno != 0:
		rep.Ret, rep.Errno = -1, int(errno)
	default:
		rep.Ret = ret
	}
	return rep
}

// watchBlocked polls the thread's state until it is sleeping (S) or in an
// uninterruptible wait (D) — packetdrill's test for "the blocking call has
// blocked" — or until stop is closed.
func watchBlocked(tid int, stop <-chan struct{}, onBlocked func(time.Time)) {
	path := fmt.Sprintf("/proc/self/task/%d/stat", tid)
	tick := time.NewTicker(100 * time.Microsecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		// The state follows the command name in parentheses, which may
		// itself contain ") ".
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			return
		}
		if st := b[i+2]; st == 'S' || st == 'D' {
			select {
			case <-stop:
			default:
				onBlocked(time.Now())
			}
			return
		}
	}
}

func parseSockaddr(s string) (unix.Sockaddr, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("socket address %q: %w", s, err)
	}
	if !ap.Addr().Is4() {
		// IPv6, and IPv4-mapped IPv6 for AF_INET6 sockets speaking IPv4.
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, nil
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, nil
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return ""
}

func toErrno(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EINVAL
}

// retryEINTR repeats a call interrupted by a signal (Go's runtime sends
// some), as a C program with SA_RESTART handlers would see it restarted.
func retryEINTR(f func() error) error {
	for {
		err := f()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (r Request) int(i int, what string) (int, error) {
	if i >= len(r.Ints) {
		return 0, fmt.Errorf("%s: missing %s", r.Call, what)
	}
	return int(r.Ints[i]), nil
}

// maxBuffer bounds the buffers a request may ask for.
const maxBuffer = 64 << 20

// execute performs the call; a non-nil error is a bad request.
func execute(req Request, rep *Reply) (ret int64, errno unix.Errno, err error) {
	if req.Len < 0 || req.Len > maxBuffer {
		return 0, 0, fmt.Errorf("%s: buffer length %d out of range", req.Call, req.Len)
	}
	buffer := func() []byte {
		if req.Data != nil {
			return req.Data
		}
		return make([]byte, req.Len)
	}
	fd := req.FD
	switch req.Call {
	case "socket":
		if len(req.Ints) != 3 {
			return 0, 0, errors.New("socket: want domain, type, protocol")
		}
		nfd, e := unix.Socket(int(req.Ints[0]), int(req.Ints[1])|unix.SOCK_CLOEXEC, int(req.Ints[2]))
		return int64(nfd), toErrno(e), nil
	case "bind", "connect":
		if req.FamilyOnly && req.Call == "connect" {
			return rawConnectFamily(fd, req.Family)
		}
		sa, err := parseSockaddr(req.Addr)
		if err != nil {
			return 0, 0, err
		}
		if req.Call == "bind" {
			return 0, toErrno(unix.Bind(fd, sa)), nil
		}
		return 0, toErrno(unix.Connect(fd, sa)), nil
	case "listen":
		backlog, err := req.int(0, "backlog")
		if err != nil {
			return 0, 0, err
		}
		return 0, toErrno(unix.Listen(fd, backlog)), nil
	case "accept":
		var nfd int
		var sa unix.Sockaddr
		e := retryEINTR(func() (err error) { nfd, sa, err = unix.Accept4(fd, unix.SOCK_CLOEXEC); return })
		if e == nil {
			rep.Addr = sockaddrString(sa)
		}
		return int64(nfd), toErrno(e), nil
	case "read", "recv", "recvfrom", "write", "send", "sendto":
		if req.Null || req.FamilyOnly {
			return rawIO(req)
		}
	}
	switch req.Call {
	case "read", "recv", "recvfrom":
		flags := 0
		if req.Call != "read" {
			if flags, err = req.int(0, "flags"); err != nil {
				return 0, 0, err
			}
		}
		buf := make([]byte, req.Len)
		var n int
		var sa unix.Sockaddr
		e := retryEINTR(func() (err error) {
			if req.Call == "read" {
				n, err = unix.Read(fd, buf)
			} else {
				n, sa, err = unix.Recvfrom(fd, buf, flags)
			}
			return
		})
		if sa != nil {
			rep.Addr = sockaddrString(sa)
		}
		return int64(n), toErrno(e), nil
	case "write", "send", "sendto":
		flags := 0
		var to unix.Sockaddr
		if req.Call != "write" {
			if flags, err = req.int(0, "flags"); err != nil {
				return 0, 0, err
			}
		}
		if req.Call == "sendto" && req.Addr != "" {
			if to, err = parseSockaddr(req.Addr); err != nil {
				return 0, 0, err
			}
		}
		buf := buffer()
		var n int
		e := retryEINTR(func() (err error) {
			if req.Call == "write" {
				n, err = unix.Write(fd, buf)
			} else {
				n, err = unix.SendmsgN(fd, buf, nil, to, flags|unix.MSG_NOSIGNAL)
			}
			return
		})
		return int64(n), toErrno(e), nil
	case "shutdown":
		how, err := req.int(0, "how")
		if err != nil {
			return 0, 0, err
		}
		return 0, toErrno(unix.Shutdown(fd, how)), nil
	case "close":
		return 0, toErrno(unix.Close(fd)), nil
	case "fcntl":
		cmd, err := req.int(0, "command")
		if err != nil {
			return 0, 0, err
		}
		arg := 0
		if len(req.Ints) > 1 {
			arg = int(req.Ints[1])
		}
		v, e := unix.FcntlInt(uintptr(fd), cmd, arg)
		return int64(v), toErrno(e), nil
	case "setsockopt":
		if len(req.Ints) != 2 {
			return 0, 0, errors.New("setsockopt: want level, name")
		}
		return 0, toErrno(unix.SetsockoptString(fd, int(req.Ints[0]), int(req.Ints[1]), string(req.Data))), nil
	case "getsockopt":
		if len(req.Ints) != 2 {
			return 0, 0, errors.New("getsockopt: want level, name")
		}
		buf := make([]byte, max(req.Len, 1))
		n := uint32(req.Len)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(req.Ints[0]), uintptr(req.Ints[1]),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e == 0 {
			rep.Data = buf[:min(int(n), len(buf))]
		}
		return 0, e, nil
	}
	return executeMore(req, rep)
}

// intOption encodes an int socket option value as the kernel reads it.
func intOption(v int64) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(int32(v)))
	return b
}

// lingerOption encodes struct linger {int l_onoff; int l_linger;}.
func lingerOption(onoff, linger int64) []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint32(b, uint32(int32(onoff)))
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(linger)))
	return b
}

// rawConnectFamily calls connect with a sockaddr_storage holding only
// family, passed whole as packetdrill does: with AF_UNSPEC the kernel
// disconnects the socket (inet_stream_connect, RFC 793's ABORT).
func rawConnectFamily(fd, family int) (int64, unix.Errno, error) {
	var raw [128]byte
	binary.NativeEndian.PutUint16(raw[0:], uint16(family))
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&raw[0])), uintptr(len(raw)))
	runtime.KeepAlive(&raw)
	return 0, e, nil
}

// rawIO runs read/write and their socket variants with a NULL buffer or a
// bare-family socket address, which x/sys/unix's wrappers cannot pass.
func rawIO(req Request) (int64, unix.Errno, error) {
	var buf unsafe.Pointer
	var keep []byte
	if !req.Null && req.Len > 0 {
		keep = req.Data
		if keep == nil {
			keep = make([]byte, req.Len)
		}
		buf = unsafe.Pointer(&keep[0])
	}
	flags := 0
	if req.Call != "read" && req.Call != "write" {
		f, err := req.int(0, "flags")
		if err != nil {
			return 0, 0, err
		}
		flags = f
	}
	// A sockaddr_storage: packetdrill passes its whole size with a bare
	// family.
	var raw [128]byte
	var sa unsafe.Pointer
	var salen uintptr
	if req.FamilyOnly || req.Addr != "" {
		if req.FamilyOnly {
			binary.NativeEndian.PutUint16(raw[0:], uint16(req.Family))
			salen = uintptr(len(raw))
		} else {
			ap, err := netip.ParseAddrPort(req.Addr)
			if err != nil {
				return 0, 0, fmt.Errorf("socket address %q: %w", req.Addr, err)
			}
			binary.BigEndian.PutUint16(raw[2:], ap.Port())
			if ap.Addr().Is4() {
				binary.NativeEndian.PutUint16(raw[0:], unix.AF_INET)
				a4 := ap.Addr().As4()
				copy(raw[4:], a4[:])
				salen = unix.SizeofSockaddrInet4
			} else {
				binary.NativeEndian.PutUint16(raw[0:], unix.AF_INET6)
				a16 := ap.Addr().As16()
				copy(raw[8:], a16[:])
				salen = unix.SizeofSockaddrInet6
			}
		}
		sa = unsafe.Pointer(&raw[0])
	}
	var r1 uintptr
	var e unix.Errno
	for {
		switch req.Call {
		case "read":
			r1, _, e = unix.Syscall(unix.SYS_READ, uintptr(req.FD), uintptr(buf), uintptr(req.Len))
		case "write":
			r1, _, e = unix.Syscall(unix.SYS_WRITE, uintptr(req.FD), uintptr(buf), uintptr(req.Len))
		case "recv", "recvfrom":
			r1, _, e = unix.Syscall6(unix.SYS_RECVFROM, uintptr(req.FD), uintptr(buf), uintptr(req.Len), uintptr(flags), 0, 0)
		default:
			r1, _, e = unix.Syscall6(unix.SYS_SENDTO, uintptr(req.FD), uintptr(buf), uintptr(req.Len),
				uintptr(flags|unix.MSG_NOSIGNAL), uintptr(sa), salen)
		}
		if e != unix.EINTR {
			break
		}
	}
	runtime.KeepAlive(keep)
	runtime.KeepAlive(&raw)
	if e != 0 {
		return 0, e, nil
	}
	return int64(r1), 0, nil
}
