package probe

import (
	"fmt"
	"strconv"
	"strings"
)

// ScriptError is a script that parses but cannot be run as written: an
// unsupported system call or option, or a line that the chosen mode does
// not allow. Pos is where.
type ScriptError struct {
	Path string
	Pos  Pos
	Msg  string
	// ModeForbids is set when the script is fine but the mode (--target,
	// packets only) does not allow the line: a usage error.
	ModeForbids bool
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Path, e.Pos.Line, e.Pos.Col, e.Msg)
}

// syscallArity is how many arguments each supported call takes.
var syscallArity = map[string][]int{
	"socket": {3}, "bind": {3}, "listen": {2}, "accept": {3}, "connect": {3},
	"read": {3}, "write": {3}, "send": {4}, "recv": {4}, "sendto": {6}, "recvfrom": {6},
	"shutdown": {2}, "close": {1}, "fcntl": {2, 3}, "setsockopt": {5}, "getsockopt": {5},
	"sendmsg": {3}, "recvmsg": {3}, "poll": {3}, "epoll_create": {1}, "epoll_ctl": {4},
	"epoll_wait": {4}, "ioctl": {3}, "open": {2, 3}, "pipe": {1}, "splice": {6}, "sendfile": {4},
}

// Validate checks that a parsed script can run: only supported system
// calls, with the right number of arguments, and only supported options.
// packetsOnly (--target) also refuses system calls and shell lines. It
// returns nil or a *ScriptError.
func Validate(s *Script, packetsOnly bool) error {
	fail := func(p Pos, format string, args ...any) error {
		return &ScriptError{Path: s.Path, Pos: p, Msg: fmt.Sprintf(format, args...)}
	}
	forbid := func(p Pos, format string, args ...any) error {
		return &ScriptError{Path: s.Path, Pos: p, Msg: fmt.Sprintf(format, args...), ModeForbids: true}
	}
	if s.Unsupported != nil {
		return s.Unsupported
	}
	for _, o := range s.Options {
		if err := checkScriptOption(o); err != nil {
			return fail(o.Pos, "%v", err)
		}
	}
	if packetsOnly {
		for _, sh := range []*Shell{s.Init, s.Cleanup} {
			if sh != nil {
				return forbid(sh.Pos, "shell lines need a kernel to run on; with --target a script may only have packet lines")
			}
		}
	}
	for _, ev := range s.Events {
		switch {
		case ev.Syscall != nil:
			sc := ev.Syscall
			if packetsOnly {
				return forbid(sc.NamePos, "system call %s: with --target a script may only have packet lines (the kernel under test is not ours to drive)", sc.Name)
			}
			arity, ok := syscallArity[sc.Name]
			if !ok {
				return fail(sc.NamePos, "unsupported system call %s (supported: %s)", sc.Name, strings.Join(SupportedSyscalls(), ", "))
			}
			good := false
			for _, n := range arity {
				good = good || n == len(sc.Args)
			}
			if !good {
				return fail(sc.NamePos, "%s takes %s arguments, not %d", sc.Name, joinInts(arity, " or "), len(sc.Args))
			}
		case ev.Shell != nil && packetsOnly:
			return forbid(ev.Shell.Pos, "shell lines need a kernel to run on; with --target a script may only have packet lines")
		case ev.Code != nil && packetsOnly:
			return forbid(ev.Pos, "code blocks read the kernel's TCP_INFO; with --target a script may only have packet lines")
		case ev.Packet != nil && ev.Packet.ICMP != nil && ev.Packet.Dir == Outbound:
			return fail(ev.Packet.Pos, "outbound ICMP lines (an ICMP message from the kernel) are not supported")
		case ev.Packet != nil && ev.Packet.SrcPort != 0 && ev.Packet.Dir == Inbound:
			return fail(ev.Packet.Pos, "an explicit source port on an inbound packet is not supported (tcpcraft chooses its own port)")
		}
	}
	return nil
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}
