package probe

// The system calls beyond the socket basics that packetdrill's suites
// use: sendmsg/recvmsg (iovecs, msg_flags, control messages with integer
// data such as TCP_CM_INQ), poll, epoll_create/epoll_ctl/epoll_wait,
// ioctl (SIOCINQ, SIOCOUTQ, FIONREAD), open, pipe, splice and sendfile.
// The runner half turns a script line into a Request and checks what came
// back; the executor half (executeMore) makes the call.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noFDCalls take no descriptor as their first argument.
var noFDCalls = map[string]bool{"socket": true, "epoll_create": true, "pipe": true, "open": true, "poll": true}

// newFDCalls return a new descriptor the script names by its result.
var newFDCalls = map[string]bool{"socket": true, "accept": true, "epoll_create": true, "open": true}

// moreSymbols are the constants of these calls.
var moreSymbols = map[string]int64{
	"POLLIN": unix.POLLIN, "POLLPRI": unix.POLLPRI, "POLLOUT": unix.POLLOUT, "POLLERR": unix.POLLERR,
	"POLLHUP": unix.POLLHUP, "POLLNVAL": unix.POLLNVAL, "POLLRDNORM": 0x40,
	"POLLRDBAND": 0x80, "POLLWRNORM": 0x100, "POLLWRBAND": 0x200,
	"POLLMSG": 0x400, "POLLRDHUP": unix.POLLRDHUP,
	"EPOLLIN": unix.EPOLLIN, "EPOLLPRI": unix.EPOLLPRI, "EPOLLOUT": unix.EPOLLOUT, "EPOLLERR": unix.EPOLLERR,
	"EPOLLHUP": unix.EPOLLHUP, "EPOLLRDNORM": unix.EPOLLRDNORM, "EPOLLRDBAND": unix.EPOLLRDBAND,
	"EPOLLWRNORM": unix.EPOLLWRNORM, "EPOLLWRBAND": unix.EPOLLWRBAND, "EPOLLMSG": unix.EPOLLMSG,
	"EPOLLRDHUP": unix.EPOLLRDHUP, "EPOLLEXCLUSIVE": unix.EPOLLEXCLUSIVE, "EPOLLWAKEUP": unix.EPOLLWAKEUP,
	"EPOLLONESHOT": unix.EPOLLONESHOT, "EPOLLET": unix.EPOLLET & 0xffffffff,
	"EPOLL_CTL_ADD": unix.EPOLL_CTL_ADD, "EPOLL_CTL_MOD": unix.EPOLL_CTL_MOD, "EPOLL_CTL_DEL": unix.EPOLL_CTL_DEL,
	"SIOCINQ": unix.SIOCINQ, "SIOCOUTQ": unix.SIOCOUTQ, "FIONREAD": unix.SIOCINQ, "SIOCOUTQNSD": unix.SIOCOUTQNSD,
	"TCP_CM_INQ": unix.TCP_CM_INQ, "TCP_INQ": unix.TCP_INQ,
	"MSG_ERRQUEUE": unix.MSG_ERRQUEUE, "MSG_CTRUNC": unix.MSG_CTRUNC, "MSG_CMSG_CLOEXEC": unix.MSG_CMSG_CLOEXEC,
	"MSG_CONFIRM": unix.MSG_CONFIRM, "MSG_WAITFORONE": unix.MSG_WAITFORONE,
	"O_CREAT": unix.O_CREAT, "O_TRUNC": unix.O_TRUNC, "O_APPEND": unix.O_APPEND, "O_CLOEXEC": unix.O_CLOEXEC,
	"SPLICE_F_MOVE": unix.SPLICE_F_MOVE, "SPLICE_F_NONBLOCK": unix.SPLICE_F_NONBLOCK,
	"SPLICE_F_MORE": unix.SPLICE_F_MORE,
	"SO_ZEROCOPY":   unix.SO_ZEROCOPY, "SO_TIMESTAMPING": unix.SO_TIMESTAMPING,
	"SOL_IPV6": unix.SOL_IPV6, "IP_RECVERR": unix.IP_RECVERR, "IPV6_RECVERR": unix.IPV6_RECVERR,
	"IPV6_TCLASS": unix.IPV6_TCLASS, "IPV6_V6ONLY": unix.IPV6_V6ONLY, "IP_FREEBIND": unix.IP_FREEBIND,
	"SO_EE_ORIGIN_NONE": unix.SO_EE_ORIGIN_NONE, "SO_EE_ORIGIN_LOCAL": unix.SO_EE_ORIGIN_LOCAL,
	"SO_EE_ORIGIN_ICMP": unix.SO_EE_ORIGIN_ICMP, "SO_EE_ORIGIN_ICMP6": unix.SO_EE_ORIGIN_ICMP6,
	"SO_EE_ORIGIN_TXSTATUS": unix.SO_EE_ORIGIN_TXSTATUS, "SO_EE_ORIGIN_TIMESTAMPING": unix.SO_EE_ORIGIN_TIMESTAMPING,
	"SO_EE_ORIGIN_ZEROCOPY": 5, "SO_EE_ORIGIN_TXTIME": 6, "SO_EE_CODE_ZEROCOPY_COPIED": 1,
	"SCM_TIMESTAMPING": unix.SCM_TIMESTAMPING, "SCM_TSTAMP_SND": 0, "SCM_TSTAMP_SCHED": 1, "SCM_TSTAMP_ACK": 2,
	"SOF_TIMESTAMPING_TX_HARDWARE": unix.SOF_TIMESTAMPING_TX_HARDWARE, "SOF_TIMESTAMPING_TX_SOFTWARE": unix.SOF_TIMESTAMPING_TX_SOFTWARE,
	"SOF_TIMESTAMPING_RX_HARDWARE": unix.SOF_TIMESTAMPING_RX_HARDWARE, "SOF_TIMESTAMPING_RX_SOFTWARE": unix.SOF_TIMESTAMPING_RX_SOFTWARE,
	"SOF_TIMESTAMPING_SOFTWARE": unix.SOF_TIMESTAMPING_SOFTWARE, "SOF_TIMESTAMPING_SYS_HARDWARE": unix.SOF_TIMESTAMPING_SYS_HARDWARE,
	"SOF_TIMESTAMPING_RAW_HARDWARE": unix.SOF_TIMESTAMPING_RAW_HARDWARE, "SOF_TIMESTAMPING_OPT_ID": unix.SOF_TIMESTAMPING_OPT_ID,
	"SOF_TIMESTAMPING_TX_SCHED": unix.SOF_TIMESTAMPING_TX_SCHED, "SOF_TIMESTAMPING_TX_ACK": unix.SOF_TIMESTAMPING_TX_ACK,
	"SOF_TIMESTAMPING_OPT_CMSG": unix.SOF_TIMESTAMPING_OPT_CMSG, "SOF_TIMESTAMPING_OPT_TSONLY": unix.SOF_TIMESTAMPING_OPT_TSONLY,
	"SOF_TIMESTAMPING_OPT_STATS": unix.SOF_TIMESTAMPING_OPT_STATS, "SOF_TIMESTAMPING_OPT_PKTINFO": unix.SOF_TIMESTAMPING_OPT_PKTINFO,
	"SOF_TIMESTAMPING_OPT_TX_SWHW": unix.SOF_TIMESTAMPING_OPT_TX_SWHW,
}

// cmsgHdrLen is CMSG_LEN(0) and cmsgAlign CMSG_ALIGN's unit on 64-bit
// Linux: struct cmsghdr is a size_t length and two ints.
const (
	cmsgHdrLen = 16
	cmsgAlign  = 8
)

func cmsgSpace(n int) int { return cmsgHdrLen + (n+cmsgAlign-1)/cmsgAlign*cmsgAlign }

// cmsg is one control message; ee marks data that is a struct
// sock_extended_err followed by the offender's address (IP_RECVERR).
type cmsg struct {
	level, typ int32
	data       []byte
	ee         bool
	// ts: data is a struct scm_timestamping whose non-zero times are
	// script times, checked against the live ones within the tolerance.
	ts bool
}

// scmTimestampingLen is struct scm_timestamping: three struct timespec.
const scmTimestampingLen = 48

// sockExtendedErrFields are struct sock_extended_err's fields: offset and
// size (linux/errqueue.h).
var sockExtendedErrFields = []struct {
	name      string
	off, size int
}{{"ee_errno", 0, 4}, {"ee_origin", 4, 1}, {"ee_type", 5, 1}, {"ee_code", 6, 1}, {"ee_info", 8, 4}, {"ee_data", 12, 4}}

// eeWords are packetdrill's words for the fields in its errors.
var eeWords = map[string]string{"ee_errno": "errno", "ee_origin": "origin", "ee_type": "type", "ee_code": "code", "ee_info": "info", "ee_data": "data"}

func eeField(b []byte, off, size int) uint32 {
	if off+size > len(b) {
		return 0
	}
	if size == 1 {
		return uint32(b[off])
	}
	return binary.NativeEndian.Uint32(b[off:])
}

// decodeCmsgs reads control messages; a truncated one ends the list.
func decodeCmsgs(b []byte) []cmsg {
	var out []cmsg
	for len(b) >= cmsgHdrLen {
		n := int(binary.NativeEndian.Uint64(b))
		if n < cmsgHdrLen || n > len(b) {
			break
		}
		out = append(out, cmsg{level: int32(binary.NativeEndian.Uint32(b[8:])), typ: int32(binary.NativeEndian.Uint32(b[12:])), data: b[cmsgHdrLen:n]})
		b = b[min(cmsgSpace(n-cmsgHdrLen), len(b)):]
	}
	return out
}

// fieldsOf reads a {name=value, ...} struct; names may be calls
// (msg_iov(1)=...), which are keyed by the call's name.
func fieldsOf(e Expr, what string) (map[string]Expr, error) {
	l, ok := e.(*ListExpr)
	if !ok || l.Open != '{' {
		return nil, fmt.Errorf("expected %s as {field=value, ...}, found %s", what, e)
	}
	m := map[string]Expr{}
	for _, el := range l.Elems {
		f, ok := el.(*BinaryExpr)
		if !ok || f.Op != "=" {
			if _, ok := el.(*Ellipsis); ok {
				continue
			}
			return nil, fmt.Errorf("expected field=value in %s, found %s", what, el)
		}
		switch k := f.Left.(type) {
		case *WordExpr:
			m[k.Name] = f.Right
		case *CallExpr:
			m[k.Name] = f.Right
		default:
			return nil, fmt.Errorf("bad field name %s in %s", f.Left, what)
		}
	}
	return m, nil
}

// listOf reads [a, b, ...]; a lone element without brackets is a list of one.
func listOf(e Expr) []Expr {
	if l, ok := e.(*ListExpr); ok && l.Open == '[' {
		return l.Elems
	}
	return []Expr{e}
}

// msgRequest fills a sendmsg/recvmsg request from the script's msghdr and
// returns the expected msg_flags and control messages (nil: not checked).
func (r *runner) msgRequest(req *Request, msg Expr) (wantFlags *int64, wantCtl []cmsg, err error) {
	f, err := fieldsOf(msg, "a struct msghdr")
	if err != nil {
		return nil, nil, err
	}
	for name := range f {
		switch name {
		case "msg_name", "msg_iov", "msg_flags", "msg_control":
		default:
			return nil, nil, fmt.Errorf("unknown msghdr field %s", name)
		}
	}
	if iov, ok := f["msg_iov"]; ok {
		for _, el := range listOf(iov) {
			l, ok := el.(*ListExpr)
			if !ok || l.Open != '{' || len(l.Elems) != 2 {
				return nil, nil, fmt.Errorf("expected an iovec {..., LEN}, found %s", el)
			}
			n, err := r.intValue(l.Elems[1])
			if err != nil {
				return nil, nil, err
			}
			if n < 0 || n > maxBuffer {
				return nil, nil, fmt.Errorf("iovec length %d out of range", n)
			}
			req.Iov = append(req.Iov, int(n))
		}
	}
	if fl, ok := f["msg_flags"]; ok {
		v, err := r.intValue(fl)
		if err != nil {
			return nil, nil, err
		}
		wantFlags = &v
	}
	if c, ok := f["msg_control"]; ok {
		wantCtl = []cmsg{}
		for _, el := range listOf(c) {
			cf, err := fieldsOf(el, "a control message")
			if err != nil {
				return nil, nil, err
			}
			var m cmsg
			for _, k := range []string{"cmsg_level", "cmsg_type"} {
				e, ok := cf[k]
				if !ok {
					return nil, nil, fmt.Errorf("control message without %s", k)
				}
				v, err := r.intValue(e)
				if err != nil {
					return nil, nil, err
				}
				if k == "cmsg_level" {
					m.level = int32(v)
				} else {
					m.typ = int32(v)
				}
			}
			if d, ok := cf["cmsg_data"]; ok {
				l, isStruct := d.(*ListExpr)
				first := ""
				if isStruct && l.Open == '{' && len(l.Elems) > 0 {
					first = l.Elems[0].String()
				}
				switch {
				case strings.HasPrefix(first, "ee_"):
					if m.data, err = r.extendedErr(l, m.level); err != nil {
						return nil, nil, err
					}
					m.ee = true
				case strings.HasPrefix(first, "scm_"):
					if m.data, err = r.scmTimestamping(l); err != nil {
						return nil, nil, err
					}
					m.ts = true
				default:
					v, err := r.intValue(d)
					if err != nil {
						return nil, nil, fmt.Errorf("control message data %s: only integers and extended errors are supported (not timestamps)", d)
					}
					m.data = intOption(v)
				}
			}
			wantCtl = append(wantCtl, m)
		}
	}
	return wantFlags, wantCtl, nil
}

// checkMsg compares recvmsg's msg_flags and control messages with the
// script's, in packetdrill's words.
func (r *runner) checkMsg(wantFlags *int64, wantCtl []cmsg, rep Reply) string {
	if wantFlags != nil && rep.Flags != *wantFlags {
		return fmt.Sprintf("Expected msg_flags 0x%08X but got 0x%08X", *wantFlags, rep.Flags)
	}
	if wantCtl == nil {
		return ""
	}
	got := decodeCmsgs(rep.Data)
	for i := range min(len(got), len(wantCtl)) {
		e, a := wantCtl[i], got[i]
		switch {
		case a.level != e.level:
			return fmt.Sprintf("Bad level in cmsg %d: expected=%d actual=%d", i, e.level, a.level)
		case a.typ != e.typ:
			return fmt.Sprintf("Bad type in cmsg %d: expected=%d actual=%d", i, e.typ, a.typ)
		case len(a.data) != len(e.data):
			return fmt.Sprintf("Bad len in cmsg %d: expected=%d actual=%d", i, cmsgHdrLen+len(e.data), cmsgHdrLen+len(a.data))
		case e.ts:
			for k := range 3 {
				es := int64(binary.NativeEndian.Uint64(e.data[16*k:]))
				ens := int64(binary.NativeEndian.Uint64(e.data[16*k+8:]))
				if es == 0 && ens == 0 {
					continue // not checked, as in packetdrill
				}
				// A script time, placed on the run's clock by the
				// events around it (relative events follow when the
				// previous one happened, so the two clocks drift).
				st := time.Duration(es)*time.Second + time.Duration(ens)
				want := r.start.Add(r.liveFor(st))
				as := int64(binary.NativeEndian.Uint64(a.data[16*k:]))
				ans := int64(binary.NativeEndian.Uint64(a.data[16*k+8:]))
				got := time.Unix(as, ans)
				if d := got.Sub(want); d > r.tolerance || d < -r.tolerance {
					return fmt.Sprintf("Bad timestamp %d in scm_timestamping %d: expected=%s sec actual=%s sec (script time); tolerance %s sec",
						k, i, secs(r.since(want)), secs(r.since(got)), secs(r.tolerance))
				}
			}
		case e.ee:
			for _, f := range sockExtendedErrFields {
				if w, g := eeField(e.data, f.off, f.size), eeField(a.data, f.off, f.size); w != g {
					return fmt.Sprintf("Bad %s in extended err %d: expected=%d actual=%d", eeWords[f.name], i, w, g)
				}
			}
		case string(a.data) != string(e.data):
			return fmt.Sprintf("Bad data in cmsg %d: expected=%d actual=%d", i, int32(binary.NativeEndian.Uint32(e.data)), int32(binary.NativeEndian.Uint32(a.data)))
		}
	}
	if len(got) > len(wantCtl) {
		return fmt.Sprintf("received more than %d cmsgs", len(wantCtl))
	}
	if len(got) < len(wantCtl) {
		return fmt.Sprintf("received only %d cmsgs", len(got))
	}
	return ""
}

// moreRequest builds the request of the calls in this file.
func (r *runner) moreRequest(sc *Syscall, req *Request) (func(Reply) string, error) {
	a := sc.Args
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
	switch sc.Name {
	case "sendmsg", "recvmsg":
		if err := ints(a[2]); err != nil {
			return nil, err
		}
		wantFlags, wantCtl, err := r.msgRequest(req, a[1])
		if err != nil {
			return nil, err
		}
		if sc.Name == "sendmsg" {
			if len(wantCtl) > 0 {
				return nil, errors.New("sendmsg with control messages is not supported")
			}
			// msg_name ... is where a MSG_FASTOPEN sendmsg connects.
			if err := r.sendtoAddr(req, &Ellipsis{}); err != nil {
				return nil, err
			}
			return nil, nil
		}
		req.Len = 0
		for _, m := range wantCtl {
			req.Len += cmsgSpace(len(m.data))
		}
		return func(rep Reply) string { return r.checkMsg(wantFlags, wantCtl, rep) }, nil
	case "poll":
		fds := listOf(a[0])
		var want []int64
		for _, el := range fds {
			f, err := fieldsOf(el, "a struct pollfd")
			if err != nil {
				return nil, err
			}
			fdE, ok1 := f["fd"]
			evE, ok2 := f["events"]
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("a struct pollfd needs fd and events: %s", el)
			}
			fd, err := r.fdValue(fdE)
			if err != nil {
				return nil, err
			}
			ev, err := r.intValue(evE)
			if err != nil {
				return nil, err
			}
			req.Poll = append(req.Poll, [2]int64{int64(fd), ev})
			rev := int64(-1)
			if re, ok := f["revents"]; ok {
				if rev, err = r.intValue(re); err != nil {
					return nil, err
				}
			}
			want = append(want, rev)
		}
		if err := ints(a[1], a[2]); err != nil {
			return nil, err
		}
		if int(req.Ints[0]) != len(req.Poll) {
			return nil, fmt.Errorf("poll: nfds %d but %d pollfds", req.Ints[0], len(req.Poll))
		}
		return func(rep Reply) string {
			for i, w := range want {
				if w >= 0 && i < len(rep.Ints) && rep.Ints[i] != w {
					return fmt.Sprintf("Expected revents 0x%x but got 0x%x for pollfd %d", w, rep.Ints[i], i)
				}
			}
			return ""
		}, nil
	case "epoll_create":
		return nil, ints(a[0])
	case "epoll_ctl":
		if err := ints(a[1]); err != nil {
			return nil, err
		}
		target, err := r.fdValue(a[2])
		if err != nil {
			return nil, err
		}
		req.FD2 = target
		f, err := fieldsOf(a[3], "a struct epoll_event")
		if err != nil {
			return nil, err
		}
		ev, data, err := r.epollEvent(f)
		if err != nil {
			return nil, err
		}
		req.Ints = append(req.Ints, ev, data)
		return nil, nil
	case "epoll_wait":
		if err := ints(a[2], a[3]); err != nil {
			return nil, err
		}
		var want [][2]int64
		for _, el := range listOf(a[1]) {
			if _, ok := el.(*Ellipsis); ok {
				continue
			}
			f, err := fieldsOf(el, "a struct epoll_event")
			if err != nil {
				return nil, err
			}
			ev, data, err := r.epollEvent(f)
			if err != nil {
				return nil, err
			}
			want = append(want, [2]int64{ev, data})
		}
		return func(rep Reply) string {
			for i := range min(len(want), int(rep.Ret)) {
				if 2*i+1 >= len(rep.Ints) {
					break
				}
				if ev := rep.Ints[2*i]; ev != want[i][0] {
					return fmt.Sprintf("epoll_event->events does not match script: expected: 0x%x actual: 0x%x", want[i][0], ev)
				}
				if d := rep.Ints[2*i+1]; d != want[i][1] {
					return fmt.Sprintf("epoll_event->data does not match script: expected: %d actual: %d", want[i][1], d)
				}
			}
			return ""
		}, nil
	case "ioctl":
		if err := ints(a[1]); err != nil {
			return nil, err
		}
		if _, any := a[2].(*Ellipsis); any {
			return nil, nil
		}
		want, err := r.intValue(a[2])
		if err != nil {
			return nil, err
		}
		return func(rep Reply) string {
			if len(rep.Ints) > 0 && rep.Ints[0] != want {
				return fmt.Sprintf("Bad ioctl optval: expected: %d actual: %d", want, rep.Ints[0])
			}
			return ""
		}, nil
	case "open":
		s, ok := a[0].(*StringExpr)
		if !ok {
			return nil, fmt.Errorf("open: expected a path string, found %s", a[0])
		}
		req.Path = s.Value
		return nil, ints(a[1:]...)
	case "pipe":
		fds := listOf(a[0])
		if len(fds) != 2 {
			return nil, fmt.Errorf("pipe: expected [READ_FD, WRITE_FD], found %s", a[0])
		}
		var script [2]int64
		for i, e := range fds {
			v, err := r.intValue(e)
			if err != nil {
				return nil, err
			}
			script[i] = v
		}
		return func(rep Reply) string {
			if len(rep.Ints) == 2 {
				r.fds[script[0]], r.fds[script[1]] = int(rep.Ints[0]), int(rep.Ints[1])
			}
			return ""
		}, nil
	case "splice":
		for _, i := range []int{1, 3} {
			if v, err := r.intValue(a[i]); err != nil || v != 0 {
				return nil, errors.New("splice: only NULL offsets are supported")
			}
		}
		out, err := r.fdValue(a[2])
		if err != nil {
			return nil, err
		}
		req.FD2 = out
		return nil, ints(a[4], a[5])
	case "sendfile":
		in, err := r.fdValue(a[1])
		if err != nil {
			return nil, err
		}
		req.FD2 = in
		off := int64(-1)
		if v, err := r.intValue(a[2]); err == nil {
			off = v
		}
		if err := ints(a[3]); err != nil {
			return nil, err
		}
		req.Ints = append(req.Ints, off)
		return nil, nil
	}
	return nil, fmt.Errorf("unsupported system call")
}

// extendedErr encodes {ee_errno=..., ee_origin=..., ...} as the kernel's
// IP_RECVERR data: struct sock_extended_err, then room for the offender's
// sockaddr_in (SOL_IP) or sockaddr_in6, as packetdrill sizes it.
func (r *runner) extendedErr(l *ListExpr, level int32) ([]byte, error) {
	f, err := fieldsOf(l, "a struct sock_extended_err")
	if err != nil {
		return nil, err
	}
	n := 16 + unix.SizeofSockaddrInet6
	if level == unix.SOL_IP {
		n = 16 + unix.SizeofSockaddrInet4
	}
	b := make([]byte, n)
	for name := range f {
		if _, ok := eeWords[name]; !ok {
			return nil, fmt.Errorf("unknown sock_extended_err field %s", name)
		}
	}
	for _, fd := range sockExtendedErrFields {
		e, ok := f[fd.name]
		if !ok {
			continue
		}
		v, err := r.intValue(e)
		if err != nil {
			return nil, err
		}
		if fd.size == 1 {
			b[fd.off] = byte(v)
		} else {
			binary.NativeEndian.PutUint32(b[fd.off:], uint32(v))
		}
	}
	return b, nil
}

// timePoint is an event's time as written and when it happened (both
// since the script's start).
type timePoint struct{ written, at time.Duration }

// noteTimeline records an event that has happened.
func (r *runner) noteTimeline(ev *Event, at time.Duration) {
	switch ev.Time.Kind {
	case TimeAbsolute, TimeAbsoluteRange:
		r.written = ev.Time.Start
	case TimeRelative, TimeRelativeRange:
		r.written += ev.Time.Start
	default: // "*": it happened when it happened
		r.written = at
	}
	r.timeline = append(r.timeline, timePoint{written: r.written, at: at})
}

// liveFor places a script time on the run's clock: shifted by the drift
// of the first event written at the latest time not after it (events
// written at the same time happen one after another; the first is the
// one the kernel's clock saw then).
func (r *runner) liveFor(script time.Duration) time.Duration {
	shift := time.Duration(0)
	last := time.Duration(-1)
	for _, p := range r.timeline {
		if p.written > script {
			break
		}
		if p.written != last {
			shift, last = p.at-p.written, p.written
		}
	}
	return script + shift
}

// scmTimestamping encodes {scm_sec=S, scm_nsec=N} (the first of struct
// scm_timestamping's three times, the software one) as script time.
func (r *runner) scmTimestamping(l *ListExpr) ([]byte, error) {
	f, err := fieldsOf(l, "a struct scm_timestamping")
	if err != nil {
		return nil, err
	}
	b := make([]byte, scmTimestampingLen)
	for name, e := range f {
		v, err := r.intValue(e)
		if err != nil {
			return nil, err
		}
		switch name {
		case "scm_sec":
			binary.NativeEndian.PutUint64(b[0:], uint64(v))
		case "scm_nsec":
			binary.NativeEndian.PutUint64(b[8:], uint64(v))
		default:
			return nil, fmt.Errorf("unknown scm_timestamping field %s", name)
		}
	}
	return b, nil
}

// epollEvent reads {events=..., fd=N} or {events=..., ptr=N} (or u32/u64):
// the data is the script's number (an fd as the script names it).
func (r *runner) epollEvent(f map[string]Expr) (events, data int64, err error) {
	e, ok := f["events"]
	if !ok {
		return 0, 0, errors.New("struct epoll_event without events")
	}
	if events, err = r.intValue(e); err != nil {
		return 0, 0, err
	}
	for _, k := range []string{"fd", "ptr", "u32", "u64"} {
		if d, ok := f[k]; ok {
			data, err = r.intValue(d)
			return events, data, err
		}
	}
	return events, 0, nil
}

// iovecGap separates the buffers of one iovec in memory.
const iovecGap = 64

// iovecBuffers gives each iovec element a buffer of its own with a gap
// before the next, as packetdrill's separate allocations are. Adjacent
// buffers (Go packs small allocations together) would be one run of
// memory, which MSG_ZEROCOPY pins as one fragment where the kernel
// otherwise takes one per element (skb_can_coalesce), and MAX_SKB_FRAGS
// would split the data elsewhere than under packetdrill.
func iovecBuffers(lens []int) [][]byte {
	total := 0
	for _, n := range lens {
		total += n + iovecGap
	}
	backing := make([]byte, total)
	bufs := make([][]byte, len(lens))
	off := 0
	for i, n := range lens {
		bufs[i] = backing[off : off+n : off+n]
		off += n + iovecGap
	}
	return bufs
}

// executeMore runs the calls of this file; a non-nil error is a bad request.
func executeMore(req Request, rep *Reply) (int64, unix.Errno, error) {
	fd := req.FD
	switch req.Call {
	case "sendmsg", "recvmsg":
		flags, err := req.int(0, "flags")
		if err != nil {
			return 0, 0, err
		}
		total := 0
		for _, n := range req.Iov {
			if n < 0 || n > maxBuffer || total+n > maxBuffer {
				return 0, 0, errors.New("iovec length out of range")
			}
			total += n
		}
		bufs := iovecBuffers(req.Iov)
		if req.Call == "sendmsg" {
			var to unix.Sockaddr
			if flags&unix.MSG_FASTOPEN != 0 && req.Addr != "" {
				if to, err = parseSockaddr(req.Addr); err != nil {
					return 0, 0, err
				}
			}
			var n int
			e := retryEINTR(func() (err error) {
				n, err = unix.SendmsgBuffers(fd, bufs, nil, to, flags|unix.MSG_NOSIGNAL)
				return
			})
			return int64(n), toErrno(e), nil
		}
		// The raw call: x/sys's RecvmsgBuffers reads one byte into a
		// dummy iovec when all iovecs are empty, which would change
		// what the script sees (recvmsg of an error queue returns 0).
		oob := make([]byte, req.Len)
		iov := make([]unix.Iovec, len(bufs))
		for i, b := range bufs {
			if len(b) > 0 {
				iov[i].Base = &b[0]
			}
			iov[i].SetLen(len(b))
		}
		var msg unix.Msghdr
		if len(iov) > 0 {
			msg.Iov = &iov[0]
			msg.SetIovlen(len(iov))
		}
		if len(oob) > 0 {
			msg.Control = &oob[0]
			msg.SetControllen(len(oob))
		}
		var r1 uintptr
		var e unix.Errno
		for {
			r1, _, e = unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
			if e != unix.EINTR {
				break
			}
		}
		runtime.KeepAlive(bufs)
		runtime.KeepAlive(oob)
		if e != 0 {
			return 0, e, nil
		}
		rep.Data, rep.Flags = oob[:min(int(msg.Controllen), len(oob))], int64(msg.Flags)
		return int64(r1), 0, nil
	case "poll":
		if len(req.Ints) != 2 {
			return 0, 0, errors.New("poll: want nfds, timeout")
		}
		pfds := make([]unix.PollFd, len(req.Poll))
		for i, p := range req.Poll {
			pfds[i] = unix.PollFd{Fd: int32(p[0]), Events: int16(p[1])}
		}
		var n int
		e := retryEINTR(func() (err error) { n, err = unix.Poll(pfds, int(req.Ints[1])); return })
		for _, p := range pfds {
			rep.Ints = append(rep.Ints, int64(uint16(p.Revents)))
		}
		return int64(n), toErrno(e), nil
	case "epoll_create":
		size, err := req.int(0, "size")
		if err != nil {
			return 0, 0, err
		}
		if size <= 0 {
			return 0, unix.EINVAL, nil
		}
		nfd, e := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		return int64(nfd), toErrno(e), nil
	case "epoll_ctl":
		if len(req.Ints) != 3 {
			return 0, 0, errors.New("epoll_ctl: want op, events, data")
		}
		ev := unix.EpollEvent{Events: uint32(req.Ints[1])}
		binary.NativeEndian.PutUint64((*[8]byte)(unsafe.Pointer(&ev.Fd))[:], uint64(req.Ints[2]))
		return 0, toErrno(unix.EpollCtl(fd, int(req.Ints[0]), req.FD2, &ev)), nil
	case "epoll_wait":
		if len(req.Ints) != 2 || req.Ints[0] <= 0 || req.Ints[0] > 1024 {
			return 0, 0, errors.New("epoll_wait: want maxevents (1-1024), timeout")
		}
		evs := make([]unix.EpollEvent, req.Ints[0])
		var n int
		e := retryEINTR(func() (err error) { n, err = unix.EpollWait(fd, evs, int(req.Ints[1])); return })
		for _, ev := range evs[:max(n, 0)] {
			data := binary.NativeEndian.Uint64((*[8]byte)(unsafe.Pointer(&ev.Fd))[:])
			rep.Ints = append(rep.Ints, int64(ev.Events), int64(data))
		}
		return int64(n), toErrno(e), nil
	case "ioctl":
		cmd, err := req.int(0, "request")
		if err != nil {
			return 0, 0, err
		}
		switch uint(cmd) {
		case unix.SIOCINQ, unix.SIOCOUTQ, unix.SIOCOUTQNSD:
		default:
			return 0, 0, fmt.Errorf("ioctl: request %#x is not supported (SIOCINQ, FIONREAD, SIOCOUTQ, SIOCOUTQNSD)", cmd)
		}
		v, e := unix.IoctlGetInt(fd, uint(cmd))
		if e == nil {
			rep.Ints = []int64{int64(v)}
		}
		return 0, toErrno(e), nil
	case "open":
		flags, err := req.int(0, "flags")
		if err != nil {
			return 0, 0, err
		}
		mode := 0
		if len(req.Ints) > 1 {
			mode = int(req.Ints[1])
		}
		nfd, e := unix.Open(req.Path, flags|unix.O_CLOEXEC, uint32(mode))
		return int64(nfd), toErrno(e), nil
	case "pipe":
		var p [2]int
		e := unix.Pipe2(p[:], unix.O_CLOEXEC)
		if e == nil {
			rep.Ints = []int64{int64(p[0]), int64(p[1])}
		}
		return 0, toErrno(e), nil
	case "splice":
		if len(req.Ints) != 2 {
			return 0, 0, errors.New("splice: want len, flags")
		}
		n, e := unix.Splice(fd, nil, req.FD2, nil, int(req.Ints[0]), int(req.Ints[1]))
		return n, toErrno(e), nil
	case "sendfile":
		if len(req.Ints) != 2 {
			return 0, 0, errors.New("sendfile: want count, offset")
		}
		var off *int64
		if req.Ints[1] >= 0 {
			o := req.Ints[1]
			off = &o
		}
		n, e := unix.Sendfile(fd, req.FD2, off, int(req.Ints[0]))
		return int64(n), toErrno(e), nil
	}
	return 0, 0, fmt.Errorf("unsupported system call %q", req.Call)
}

// moreSyscallNames lists the calls of this file for SupportedSyscalls.
func moreSyscallNames() []string {
	return strings.Fields("sendmsg recvmsg poll epoll_create epoll_ctl epoll_wait ioctl open pipe splice sendfile")
}
