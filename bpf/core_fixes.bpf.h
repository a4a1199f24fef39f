/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * CO-RE shims for the kernel-version differences pidgen's programs meet, in
 * the manner of bcc's libbpf-tools/core_fixes.bpf.h: one small function per
 * difference, each citing the kernel change it works around. Both programs
 * (pidgen.bpf.c, task_iter.bpf.c) read these fields only through here.
 */
#ifndef PIDGEN_CORE_FIXES_BPF_H
#define PIDGEN_CORE_FIXES_BPF_H

#include <bpf/bpf_core_read.h>
#include "core_types.h"

/*
 * The upid of `pid` at namespace `level`: numbers[level]. numbers[] was a
 * one-element array until it became a flexible array member ("pid: Replace
 * struct pid 1-element array with flex-array", 2023), and its element size
 * is the running kernel's struct upid, so the address is computed from the
 * relocated offset and size rather than by C indexing, which would bake the
 * build host's layout in. The caller bounds `level` (<= PIDGEN_MAX_NS_LEVEL).
 */
static __always_inline struct upid *pidgen_upid_at(struct pid *pid, unsigned int level)
{
	__u64 numbers_offset = bpf_core_field_offset(struct pid, numbers);
	__u64 upid_size = bpf_core_type_size(struct upid);

	/* The masks only show the verifier bounds; callers check level <= 32,
	 * and a upid is 16 bytes, so no offset a caller asks for changes. The
	 * second is for 6.1's verifier, which loses the bound of the multiply
	 * and then refuses the sum on a BTF pointer (the sleepable iterator's
	 * direct loads): "math between ptr_ pointer and register with
	 * unbounded min value is not allowed". */
	return (void *)pid + numbers_offset + (((level & 63) * upid_size) & 0x3ff);
}

/*
 * pidfs inode number of a struct pid: unique for the boot, never reused, and
 * what fstat() on a pidfd returns. struct pid gained `ino` with pidfs in
 * v6.9 ("pidfs: convert to path_from_stashed() helper"); before that there is
 * no such identity and 0 says so.
 *
 * A subprogram of its own, never inlined: inlined into a loop, clang 14
 * hoisted the loop-invariant `pid + offsetof(ino)` above the field-exists
 * branch, so on kernels without pid->ino the verifier reached the
 * instruction libbpf poisons for the failed relocation and refused the
 * program ("failed to resolve CO-RE relocation ... struct pid.ino", EINVAL;
 * seen on Debian 12's 6.1 and Debian 11's 5.10).
 */
static __noinline __u64 pidgen_pid_ino(struct pid *pid)
{
	if (bpf_core_field_exists(pid->ino))
		return BPF_CORE_READ(pid, ino);
	return 0;
}

/* pidgen_pid_ino() for a BTF pointer (a direct load); see above for why
 * it is not inlined. */
static __noinline __attribute__((unused)) __u64 pidgen_pid_ino_direct(struct pid *pid)
{
	if (pid && bpf_core_field_exists(pid->ino))
		return pid->ino;
	return 0;
}

/* Before v5.14 (2f064a59a11f "sched: Change task_struct::state") the field
 * was `long state`. */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

/* task->__state, or task->state on kernels before v5.14. */
static __always_inline unsigned int pidgen_task_state(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return BPF_CORE_READ(task, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)task, state);
}

/* pidgen_task_state() for a BTF pointer (a direct load). */
static __always_inline unsigned int pidgen_task_state_direct(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return task->__state;
	return ((struct task_struct___pre514 *)task)->state;
}

#endif /* PIDGEN_CORE_FIXES_BPF_H */
