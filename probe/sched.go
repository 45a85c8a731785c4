package probe

// Scheduling: a script's timing is the machine's as much as the kernel's.
// On a busy machine a thread of ours that wakes for an event (the runner's
// timer, the helper reading a request, the reply crossing back) waits for
// a CPU behind whatever ran there, and every hop of an event can wait
// again; a code block reading tcpi_rwnd_limited then measures those waits.
// packetdrill avoids them by running under SCHED_RR at the policy's lowest
// priority on machines with more than one CPU (run.c,
// set_scheduling_priority); tcpcraft does the same, for all its threads
// and, by inheritance across fork and exec, for the helper process and the
// script's shell commands.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetRealtimeScheduling puts every thread of the calling process under
// SCHED_RR at the policy's lowest priority, as packetdrill does; threads
// and processes created afterwards inherit it. On a single CPU it does
// nothing (a real-time thread there could keep the rest of the machine
// waiting, packetdrill's reason too). Linux throttles real-time threads to
// kernel.sched_rt_runtime_us of every period (95%) anyway, and nothing in
// probe spins for long. It needs CAP_SYS_NICE; the error says why it could
// not, and the caller may go on without (only timing suffers).
func SetRealtimeScheduling() error {
	if runtime.NumCPU() <= 1 {
		return nil
	}
	prio, _, errno := unix.RawSyscall(unix.SYS_SCHED_GET_PRIORITY_MIN, unix.SCHED_RR, 0, 0)
	if errno != 0 {
		return fmt.Errorf("sched_get_priority_min(SCHED_RR): %w", errno)
	}
	param := struct{ priority int32 }{int32(prio)}
	// sched_setscheduler(2) acts on one thread: set each the process
	// has, again until a pass finds no new one (the Go runtime may
	// start threads meanwhile, from a thread not yet set).
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		tids, err := threads()
		if err != nil {
			return err
		}
		fresh := false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh = true
			_, _, errno := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(tid), unix.SCHED_RR, uintptr(unsafe.Pointer(&param)))
			switch {
			case errno == unix.ESRCH: // the thread exited meanwhile
			case errno != 0:
				return fmt.Errorf("sched_setscheduler(SCHED_RR, %d): %w", param.priority, errno)
			}
			done[tid] = true
		}
		if !fresh {
			return nil
		}
	}
	return errors.New("sched_setscheduler: the process kept starting threads")
}

// threads lists the calling process's thread ids.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("listing threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
