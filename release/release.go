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
// starts a helper process that keeps duplicates of the sockets until
// tcpcraft has exited — it reads a pipe whose only writer is tcpcraft, so
// it sees end-of-file when tcpcraft is gone, however it ends — and then
// exits, so the grace periods pass in the helper, after tcpcraft's exit.
// tcpcraft's own closes then only drop a reference.
//
// Why a bare process and not a helper program: starting one (fork and
// exec of tcpcraft itself, whose Go runtime then starts) cost 0.5-2.5 ms
// on the way out and 2-3 ms of CPU beside the next run. The helper runs no
// Go code of consequence: from its start to its exit it makes raw system
// calls only, with every signal blocked.
//
// Why it shares tcpcraft's memory (on amd64): a fork copies the address
// space — page tables duplicated and write-protected, with a TLB
// shootdown — and every page tcpcraft writes afterwards, on its way out,
// takes a copy-on-write fault; then tcpcraft's exit tears its address
// space down before its parent's wait returns. A child made with clone
// (CLONE_VM) copies nothing, and as the last user of the address space it
// tears it down itself, after tcpcraft has exited. Such a child may not
// touch the Go runtime's memory, stack included, while tcpcraft runs on
// it: it is a few lines of assembly (hold_amd64.s) that keep to registers
// and to a page of their own outside the Go heap (newPlan), their stack
// that page's end. Elsewhere the helper is a fork (hold_other.go), a
// copy of the process that runs one go:nosplit function (the rules of
// the child half of syscall.forkExec).
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
// caller closes as before, paying the wait. Until it exits, a grace
// period after tcpcraft, ps shows it with tcpcraft's memory on amd64
// (the address space is shared, not copied).
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

// helperPlan is everything the helper does, worked out before it starts:
// the helper may not allocate. Its layout is fixed (the amd64 helper is
// assembly that reads it by offset; hold_amd64.go checks the offsets).
type helperPlan struct {
	pipe   uintptr                 // the read end; end-of-file when the parent is gone
	n      uintptr                 // close ranges in closes
	name   [16]byte                // PR_SET_NAME
	closes [maxHeld + 2][2]uintptr // close_range ranges: all but the held and the pipe
	buf    [64]byte                // what read(2) reads into
}

// newPlan is a helperPlan in a page of its own, outside the Go heap: a
// helper that shares this process's memory (hold_amd64.s) reads and writes
// it for as long as it lives, after Later has returned, so it must never
// be freed or reused. The page is not unmapped; it goes with the address
// space, when the last process using it exits.
func newPlan() (*helperPlan, error) {
	mem, err := unix.Mmap(-1, 0, planPage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mapping its plan: %w", err)
	}
	return (*helperPlan)(unsafe.Pointer(&mem[0])), nil
}

// planPage is the plan's mapping; the amd64 helper's stack is its end.
const planPage = 4096

// Conn is a socket whose descriptor Control lends (syscall.RawConn is
// one).
type Conn interface {
	Control(f func(fd uintptr)) error
}

// Later starts a helper that holds duplicates of conns' descriptors until
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
	plan, err := newPlan()
	if err != nil {
		unix.Close(p[1])
		return 0, fmt.Errorf("release helper: %w", err)
	}
	plan.pipe = uintptr(p[0])
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

	pid, err := startHelper(plan)
	if err != nil {
		unix.Close(p[1])
		return 0, fmt.Errorf("release helper: clone: %w", err)
	}
	return pid, nil
}

// startHelper starts the helper. Signals are blocked on this thread
// across the clone, so the child starts with them blocked: a Go signal
// handler must not run in it.
func startHelper(plan *helperPlan) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old [1]uint64 // the kernel's sigset_t: 64 signals
	all[0] = ^uint64(0)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), unsafe.Sizeof(all), 0, 0); e != 0 {
		return 0, e
	}
	pid, e := cloneHelper(plan)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, unsafe.Sizeof(old), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(pid), nil
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
