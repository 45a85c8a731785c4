//go:build amd64

package release

import (
	"syscall"
	"unsafe"
)

// cloneHelper starts the helper as a process that shares this one's memory
// (clone with CLONE_VM, in assembly: hold_amd64.s) and runs on a stack at
// the end of the plan's page. Against fork, nothing is copied: no page
// tables duplicated with a TLB shootdown, no copy-on-write faults in what
// tcpcraft still does before it exits, and tcpcraft's exit does not tear
// down its address space (the helper, its last user, does, after it).
func cloneHelper(plan *helperPlan) (uintptr, syscall.Errno) {
	pid, errno := cloneAndHold(plan)
	return pid, syscall.Errno(errno)
}

// cloneAndHold is in hold_amd64.s.
//
//go:noescape
func cloneAndHold(plan *helperPlan) (pid uintptr, errno uintptr)

// The offsets hold_amd64.s reads the plan by: a constant index out of
// range (or an unsigned constant below zero) fails the build.
var (
	_ = [1]struct{}{}[unsafe.Offsetof(helperPlan{}.pipe)-0]
	_ = [1]struct{}{}[unsafe.Offsetof(helperPlan{}.n)-8]
	_ = [1]struct{}{}[unsafe.Offsetof(helperPlan{}.name)-16]
	_ = [1]struct{}{}[unsafe.Offsetof(helperPlan{}.closes)-32]
	_ = [1]struct{}{}[unsafe.Offsetof(helperPlan{}.buf)-320]
	_ = [1]struct{}{}[planPage-4096]
)
