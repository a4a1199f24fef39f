/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel types recorder.bpf.c reads, declared by hand with
 * preserve_access_index: libbpf relocates each field against the running
 * kernel's BTF (CO-RE), so only the fields read are named. Declared here, not
 * taken from pidgen's bpf/, so the ground truth shares no code with what it
 * judges.
 */
#ifndef RECORDER_KERNEL_TYPES_H
#define RECORDER_KERNEL_TYPES_H

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum; /* readlink /proc/<pid>/ns/pid */
};

struct pid_namespace {
	unsigned int level;
	struct ns_common ns;
};

struct upid {
	int nr;
	struct pid_namespace *ns;
};

struct pid {
	unsigned int level;
	unsigned long long ino; /* pidfs inode, added with pidfs in 6.9; checked with bpf_core_field_exists */
	struct upid numbers[1]; /* flexible; indexed by offset + i * sizeof(struct upid) */
};

struct task_struct {
	int pid;
	int tgid;
	int exit_code;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	struct pid *thread_pid;
	unsigned long long start_boottime;
	char comm[16];
};

#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long orig_ax; /* the syscall number on x86-64 */
};
#define RECORDER_SYSCALL_NR(regs) BPF_CORE_READ(regs, orig_ax)
#define RECORDER_NR_WAIT4 61
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs {
	int syscallno;
};
#define RECORDER_SYSCALL_NR(regs) BPF_CORE_READ(regs, syscallno)
#define RECORDER_NR_WAIT4 260
#else
#error "recorder.bpf.c: add this architecture's pt_regs syscall number and __NR_wait4"
#endif

#pragma clang attribute pop

#endif /* RECORDER_KERNEL_TYPES_H */
