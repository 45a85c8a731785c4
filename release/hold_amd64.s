#include "textflag.h"

// Offsets in vmPlan (checked in hold_amd64.go).
#define PLAN_PIPE 0
#define PLAN_N 8
#define PLAN_NAME 16
#define PLAN_CLOSES 32
#define PLAN_BUF 320
#define PLAN_STACK 4096

// func cloneAndHold(plan *vmPlan) (pid uintptr, errno uintptr)
//
// clone(CLONE_VM|SIGCHLD) with the child's stack at the end of the plan's
// page. The child shares this process's memory, so it runs no Go code and
// touches nothing but the plan's page: from here to its exit it lives in
// registers and raw system calls.
TEXT ·cloneAndHold(SB), NOSPLIT, $0-24
	MOVQ plan+0(FP), R12
	MOVQ $0x111, DI        // CLONE_VM | SIGCHLD
	LEAQ PLAN_STACK(R12), SI
	MOVQ $0, DX
	MOVQ $0, R10
	MOVQ $0, R8
	MOVQ $56, AX           // SYS_clone
	SYSCALL
	CMPQ AX, $0
	JEQ child
	CMPQ AX, $0xfffffffffffff001
	JLS parentok
	NEGQ AX
	MOVQ $0, pid+8(FP)
	MOVQ AX, errno+16(FP)
	RET
parentok:
	MOVQ AX, pid+8(FP)
	MOVQ $0, errno+16(FP)
	RET

child:
	// R12 (the plan) survives: the child starts with the parent's
	// registers but for AX and SP.
	MOVQ $112, AX          // SYS_setsid
	SYSCALL
	MOVQ $15, DI           // PR_SET_NAME
	LEAQ PLAN_NAME(R12), SI
	MOVQ $0, DX
	MOVQ $0, R10
	MOVQ $0, R8
	MOVQ $157, AX          // SYS_prctl
	SYSCALL
	MOVQ PLAN_N(R12), R13  // close ranges left
	LEAQ PLAN_CLOSES(R12), R14
closeloop:
	CMPQ R13, $0
	JEQ closed
	MOVQ 0(R14), DI
	MOVQ 8(R14), SI
	MOVQ $0, DX
	MOVQ $436, AX          // SYS_close_range
	SYSCALL
	CMPQ AX, $0
	JNE fail
	ADDQ $16, R14
	DECQ R13
	JMP closeloop
closed:
	MOVQ PLAN_PIPE(R12), R15
readloop:
	MOVQ R15, DI
	LEAQ PLAN_BUF(R12), SI
	MOVQ $64, DX
	MOVQ $0, AX            // SYS_read
	SYSCALL
	CMPQ AX, $-4           // EINTR: again
	JEQ readloop
	CMPQ AX, $0
	JGT readloop           // data: nobody writes, but read on
	MOVQ $1, DI            // MEMBARRIER_CMD_GLOBAL: an RCU grace period
	MOVQ $0, SI
	MOVQ $0, DX
	MOVQ $324, AX          // SYS_membarrier
	SYSCALL
	MOVQ $0, DI
	MOVQ $231, AX          // SYS_exit_group
	SYSCALL
fail:
	MOVQ $1, DI
	MOVQ $231, AX
	SYSCALL
	JMP fail
