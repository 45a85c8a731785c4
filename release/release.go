// Package release lets tcpcraft exit without waiting for the kernel to
// release its packet and nf_tables sockets.
//
// Releasing an AF_PACKET socket waits for an RCU grace period
// (synchronize_net in packet_release, net/packet/af_packet.c), and so does
// closing the netlink socket of a deleted nf_tables table (nf_tables'
// netlink notifier flushes the worker that frees it after synchronize_rcu,
// net/netfilter/nf_tables_api.c). On a 250 Hz kernel a grace period is
// 8-16 ms, and the last close of a file happens in the exiting process,
// before its parent's wait returns: a short `tcpcraft connect` was mostly
// that wait (docs/PERFORMANCE.md, "RCU grace periods").
//
// The kernel releases a socket when its last descriptor is closed. Later
// forks a helper process that keeps duplicates of the sockets until
// tcpcraft has exited — it reads a pipe whose only writer is tcpcraft, so
// it sees end-of-file when tcpcraft is gone, however it ends — and then
// exits, so the grace periods pass in the helper, after tcpcraft's exit.
// tcpcraft's own closes then only drop a reference.
//
// Why a bare fork and not a helper program: starting one (fork and exec of
// tcpcraft itself, whose Go runtime then starts) cost 0.5-2.5 ms on the
// way out and 2-3 ms of CPU beside the next run. The forked child is a
// copy of this process that runs no Go code of consequence: from the fork
// to its exit it makes raw system calls only, in one function that cannot
// grow its stack or enter the runtime (the rules of the child half of
// syscall.forkExec), with every signal blocked.
//
// Before it exits the helper waits for one RCU grace period of its own
// (membarrier(MEMBARRIER_CMD_GLOBAL) is synchronize_rcu): by then the
// nf_tables worker that frees the deleted table has run, and closing the
// guard's socket does not find it pending — otherwise the close flushes it
// while holding the namespace's nf_tables commit mutex, and the next
// tcpcraft's guard waited for that.
//
// What it must not do: keep anything working. The caller has undone its
// effects first (the guard's table is deleted, which is synchronous: the
// rule drops nothing once tcpcraft exits); the helper only holds what is
// left to free, for as long as tcpcraft lives plus a grace period or two.
// It holds no other descriptor (no output pipe stays open because of it),
// leaves the terminal's session (a Ctrl-C is for tcpcraft), and is named
// tcpcraft-linger in ps. If it cannot be made, Later says so and the
// caller closes as before, paying the wait.
package release

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxHeld bounds the descriptors one helper holds.
const maxHeld = 16

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL (include/uapi/linux/membarrier.h):
// it returns after an RCU grace period.
const membarrierCmdGlobal = 1

// helperPlan is everything the helper does, worked out before the fork:
// the child may not allocate.
type helperPlan struct {
	pipe   uintptr                 // the read end; end-of-file when the parent is gone
	closes [maxHeld + 2][2]uintptr // close_range ranges: all but the held and the pipe
	n      int
	name   [16]byte // PR_SET_NAME
}

// Conn is a socket whose descriptor Control lends (syscall.RawConn is
// one).
type Conn interface {
	Control(f func(fd uintptr)) error
}

// Later forks a helper that holds duplicates of conns' descriptors until
// this process has exited, and returns its pid. The caller then closes its
// own as usual; those closes no longer wait. The helper is not waited for:
// when this process exits it is left to init (or the nearest subreaper),
// which reaps it.
func Later(conns ...Conn) (int, error) {
	if len(conns) == 0 || len(conns) > maxHeld {
		return 0, fmt.Errorf("release helper: %d sockets, want 1 to %d", len(conns), maxHeld)
	}
	// Duplicates, so that the numbers stay ours whatever else closes.
	var held []int
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}()
	for _, rc := range conns {
		fd, err := dupOf(rc)
		if err != nil {
			return 0, fmt.Errorf("release helper: %w", err)
		}
		held = append(held, fd)
	}
	// The write end is never closed by us: it goes with this process, and
	// that end-of-file is the helper's signal. Close-on-exec, so that no
	// program tcpcraft starts later inherits it (and keeps the helper).
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("release helper: pipe: %w", err)
	}
	defer unix.Close(p[0])
	plan := &helperPlan{pipe: uintptr(p[0])}
	copy(plan.name[:15], "tcpcraft-linger")
	keep := append(slices.Clone(held), p[0])
	slices.Sort(keep)
	from := 0
	for _, fd := range keep {
		if fd > from {
			plan.closes[plan.n] = [2]uintptr{uintptr(from), uintptr(fd - 1)}
			plan.n++
		}
		from = fd + 1
	}
	plan.closes[plan.n] = [2]uintptr{uintptr(from), uintptr(^uint32(0))} // ~0U: to the last
	plan.n++

	pid, err := forkHelper(plan)
	if err != nil {
		unix.Close(p[1])
		return 0, fmt.Errorf("release helper: fork: %w", err)
	}
	return pid, nil
}

// forkHelper forks the helper. Signals are blocked on this thread across
// the fork, so the child starts with them blocked: a Go signal handler
// must not run in it.
func forkHelper(plan *helperPlan) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old [1]uint64 // the kernel's sigset_t: 64 signals
	all[0] = ^uint64(0)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), unsafe.Sizeof(all), 0, 0); e != 0 {
		return 0, e
	}
	pid, e := forkAndHold(plan)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, unsafe.Sizeof(old), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(pid), nil
}

// forkAndHold is fork(2) (clone with SIGCHLD and nothing shared; the
// argument order of clone differs between architectures, and all but the
// flags are 0) and, in the child, the helper's whole life. Raw system
// calls only: the child runs on a copy of the parent's memory without the
// parent's other threads, so the Go runtime (its locks, its allocator, its
// scheduler) is off limits, and so is growing the stack (go:nosplit).
//
//go:nosplit
//go:norace
func forkAndHold(plan *helperPlan) (uintptr, syscall.Errno) {
	pid, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 || pid != 0 {
		return pid, e
	}
	syscall.RawSyscall(syscall.SYS_SETSID, 0, 0, 0)
	syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&plan.name[0])), 0, 0, 0, 0)
	for i := 0; i < plan.n; i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, plan.closes[i][0], plan.closes[i][1], 0); e != 0 {
			// Without close_range (Linux 5.9) the helper would hold
			// the parent's output pipes too: give up at once, and
			// the parent pays the wait.
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
		}
	}
	var b [64]byte
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, plan.pipe, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == syscall.EINTR || (e == 0 && n > 0) {
			continue
		}
		break
	}
	syscall.RawSyscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	return 0, 0 // not reached
}

// dupOf duplicates rc's descriptor, close-on-exec.
func dupOf(rc Conn) (int, error) {
	if rc == nil {
		return -1, errors.New("no socket")
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 3)
	}); err != nil {
		return -1, fmt.Errorf("duplicating a socket: %w", err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("duplicating a socket: %w", dupErr)
	}
	return fd, nil
}
