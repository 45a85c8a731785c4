//go:build !amd64

package release

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cloneHelper forks the helper: on this architecture there is no
// assembly helper that could share the parent's memory (hold_amd64.s), so
// it runs on a copy of it.
func cloneHelper(plan *helperPlan) (uintptr, syscall.Errno) {
	return forkAndHold(plan)
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
	for i := uintptr(0); i < plan.n; i++ {
		if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, plan.closes[i][0], plan.closes[i][1], 0); e != 0 {
			// Without close_range (Linux 5.9) the helper would hold
			// the parent's output pipes too: give up at once, and
			// the parent pays the wait.
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
		}
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, plan.pipe, uintptr(unsafe.Pointer(&plan.buf[0])), uintptr(len(plan.buf)))
		if e == syscall.EINTR || (e == 0 && n > 0) {
			continue
		}
		break
	}
	syscall.RawSyscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0)
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	return 0, 0 // not reached
}
