/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The few kernel types pidgen's BPF programs touch, declared by hand with
 * preserve_access_index. libbpf relocates every field access against the
 * running kernel's BTF (CO-RE), so these need only name the fields we read,
 * and the build does not depend on the build host's kernel or on a generated
 * vmlinux.h.
 */
#ifndef PIDGEN_CORE_TYPES_H
#define PIDGEN_CORE_TYPES_H

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum; /* what readlink(/proc/<pid>/ns/pid) shows */
};

struct idr {
	unsigned int idr_next; /* the cyclic allocation cursor; ns_last_pid is idr_next - 1 */
};

struct pid_namespace {
	struct idr idr;
	unsigned int level;
	struct ns_common ns;
};

struct upid {
	int nr;
	struct pid_namespace *ns;
};

struct pid {
	unsigned int level;
	unsigned long long ino; /* pidfs inode number, since Linux 6.9; see core_fixes.bpf.h */
	/* Indexed only through pidgen_upid_at() (core_fixes.bpf.h). */
	struct upid numbers[1];
};

typedef struct {
	unsigned int val;
} kuid_t;

struct cred {
	kuid_t uid; /* real uid: the first field of `Uid:` in /proc/<pid>/status */
};

struct mm_struct {
	unsigned long arg_start; /* the argv area /proc/<pid>/cmdline reads */
	unsigned long arg_end;
};

struct task_struct {
	unsigned int __state; /* named `state` before 5.14; see core_fixes.bpf.h */
	unsigned int flags;   /* PF_* */
	struct mm_struct *mm;
	int exit_state;
	int pid;
	int tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	struct pid *thread_pid;
	unsigned long long start_boottime; /* what /proc/<pid>/stat field 22 shows, in ticks */
	const struct cred *real_cred;
	char comm[16];
};

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	unsigned long long session_id;
	unsigned long long seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

#pragma clang attribute pop

#endif /* PIDGEN_CORE_TYPES_H */
