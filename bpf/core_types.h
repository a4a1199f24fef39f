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
	unsigned long long ino; /* pidfs inode number, since Linux 6.9; guarded by bpf_core_field_exists */
	/* numbers[] is a flexible array (numbers[0] before 6.x, numbers[] after);
	 * it is indexed through bpf_core_field_offset + bpf_core_type_size so a
	 * variable index stays relocatable. */
	struct upid numbers[1];
};

struct task_struct {
	int pid;
	int tgid;
	struct pid *thread_pid;
	unsigned long long start_boottime; /* what /proc/<pid>/stat field 22 shows, in ticks */
};

#pragma clang attribute pop

#endif /* PIDGEN_CORE_TYPES_H */
