// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pidgen: a per-PID-namespace generation counter, the never-merged
 * /proc/pid_gen, kept from BPF on the PID allocation path.
 *
 * Three programs do the same job from different attach points; the loader
 * loads exactly one of them (fexit first, then tp_btf, then raw_tp) and
 * reports which one it got.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "core_types.h"
#include "pidgen.h"

#define EEXIST 17
#define MAX_ERRNO 4095

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PIDGEN_MAX_NAMESPACES);
	__type(key, __u32); /* PID namespace inode number */
	__type(value, struct pidgen_ns_counter);
} pidgen_ns SEC(".maps");

/* Written by the loader, read by whoever opens a pinned counter. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pidgen_meta);
} pidgen_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PIDGEN_LOG_BYTES);
} pidgen_log SEC(".maps");

struct pidgen_stats stats = {};

/*
 * The namespace whose allocations go to pidgen_log; 0 logs nothing. The
 * loader sets it (through the mmapped .bss) while a snapshot is in progress,
 * so the fork path pays for a ring-buffer write only when someone is reading.
 */
__u32 log_inum = 0;

/*
 * pidfs gives every struct pid an inode number that is never reused (6.9+):
 * the one identity that tells two holders of a PID apart; 0 before 6.9.
 *
 * A subprogram of its own, not inlined: inlined into count_pid()'s loop,
 * clang 14 hoisted the loop-invariant `pid + offsetof(ino)` above the
 * field-exists branch, so on kernels without pid->ino the verifier reached
 * the instruction libbpf poisons for the failed relocation and refused every
 * attach point ("failed to resolve CO-RE relocation ... struct pid.ino",
 * EINVAL, seen on Debian 12's 6.1 and Debian 11's 5.10).
 */
static __noinline __u64 pidfs_ino(struct pid *pid)
{
	if (!bpf_core_field_exists(pid->ino))
		return 0;
	return BPF_CORE_READ(pid, ino);
}

static __always_inline void log_allocation(struct pid *pid, __u32 inum, __u32 nr, __u64 start_ns, __u32 flags)
{
	struct pidgen_alloc_event *event;
	/* Read here, not per fork: only logged allocations need it. */
	__u64 ino = pidfs_ino(pid);

	event = bpf_ringbuf_reserve(&pidgen_log, sizeof(*event), 0);
	if (!event) {
		/* The reader must know the log has a hole: it then rescans. */
		__sync_fetch_and_add(&stats.log_drops, 1);
		return;
	}
	event->start_ns = start_ns;
	event->ino = ino;
	event->inum = inum;
	event->nr = nr;
	event->flags = flags;
	event->reserved = 0;
	bpf_ringbuf_submit(event, 0);
}

/*
 * Count one allocated PID number in its namespace.
 *
 * The bump rule: a number not greater than the previous one recorded in the
 * namespace means the allocator wrapped (or set_tid / an ns_last_pid write
 * moved the cursor back), so a PID number may now name a different task.
 * last_nr is swapped atomically, so two CPUs never both compare against the
 * same previous value: an out-of-order pair bumps (a false bump, allowed),
 * and a real descent is always seen by whichever CPU records second.
 */
static __always_inline void count_allocation(__u32 inum, __u32 nr)
{
	struct pidgen_ns_counter *counter;
	__u32 previous;

	counter = bpf_map_lookup_elem(&pidgen_ns, &inum);
	if (!counter) {
		struct pidgen_ns_counter first = {
			.allocations = 1,
			.last_nr = nr,
		};
		long err;

		/*
		 * nr 1 is the first number a new namespace hands out (its init),
		 * so there is no earlier number to compare with. Any other first
		 * sighting means we attached after the namespace was born and do
		 * not know what it allocated before: start with a bump instead of
		 * silently taking nr as the baseline.
		 */
		if (nr != 1) {
			first.generation = 1;
			first.bumped_at_ns = bpf_ktime_get_boot_ns();
			first.flags = PIDGEN_NS_FIRST_SEEN_LATE;
		}
		err = bpf_map_update_elem(&pidgen_ns, &inum, &first, BPF_NOEXIST);
		if (!err)
			return;
		if (err != -EEXIST) {
			__sync_fetch_and_add(&stats.ns_map_full, 1);
			return;
		}
		/* Another CPU (or the loader's seed) created it first. */
		counter = bpf_map_lookup_elem(&pidgen_ns, &inum);
		if (!counter)
			return;
	}

	__sync_fetch_and_add(&counter->allocations, 1);
	previous = __sync_lock_test_and_set(&counter->last_nr, nr);
	if (nr <= previous) {
		__sync_fetch_and_add(&counter->generation, 1);
		/* The clock is read only on a bump, off the common fork path. */
		counter->bumped_at_ns = bpf_ktime_get_boot_ns();
	}
}

/* Every level of a struct pid carries a number in its own namespace, from
 * the task's own namespace (numbers[level]) up to the root (numbers[0]). */
static __always_inline void count_pid(struct pid *pid, __u64 start_ns, __u32 event_flags)
{
	__u64 numbers_offset = bpf_core_field_offset(struct pid, numbers);
	__u64 upid_size = bpf_core_type_size(struct upid);
	__u32 logged = log_inum;
	unsigned int level;

	if (!pid)
		return;
	level = BPF_CORE_READ(pid, level);

	for (unsigned int i = 0; i <= PIDGEN_MAX_NS_LEVEL; i++) {
		struct upid *upid;
		struct pid_namespace *ns;
		__u32 inum;
		int nr;

		if (i > level)
			break;
		upid = (void *)pid + numbers_offset + i * upid_size;
		nr = BPF_CORE_READ(upid, nr);
		ns = BPF_CORE_READ(upid, ns);
		inum = BPF_CORE_READ(ns, ns.inum);
		if (nr <= 0 || !inum) {
			__sync_fetch_and_add(&stats.read_errors, 1);
			continue;
		}
		count_allocation(inum, nr);
		if (logged && inum == logged)
			log_allocation(pid, inum, nr, start_ns, event_flags);
	}
}

/*
 * fexit/alloc_pid sees every allocation right after the cursor moved, even
 * for forks that fail later in copy_process(). Many kernels refuse fentry/
 * fexit (lockdown, no trampolines); the loader then falls through.
 */
SEC("fexit/alloc_pid")
int BPF_PROG(pidgen_fexit, struct pid_namespace *ns, int *set_tid,
	     unsigned long set_tid_size, struct pid *ret)
{
	/* alloc_pid() returns ERR_PTR(-errno) on failure. */
	if ((unsigned long)ret >= (unsigned long)-MAX_ERRNO)
		return 0;
	/* No task exists yet: the allocation time stands in for its start, and
	 * whether it will be a thread is not known here. */
	count_pid(ret, bpf_ktime_get_boot_ns(), 0);
	return 0;
}

/*
 * task_newtask fires at the end of copy_process(), after attach_pid(), for
 * every new task including io_uring and vhost workers (sched_process_fork
 * misses those). It does not fire for forks that fail after alloc_pid();
 * their numbers never named a visible task, so skipping them cannot hide a
 * reuse a /proc reader could see.
 */
static __always_inline void count_new_task(struct task_struct *task)
{
	__u32 flags = PIDGEN_EVENT_EXACT_START;

	if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		flags |= PIDGEN_EVENT_THREAD;
	count_pid(BPF_CORE_READ(task, thread_pid), BPF_CORE_READ(task, start_boottime), flags);
}

SEC("tp_btf/task_newtask")
int BPF_PROG(pidgen_tp_btf, struct task_struct *task, unsigned long clone_flags)
{
	count_new_task(task);
	return 0;
}

SEC("raw_tp/task_newtask")
int BPF_PROG(pidgen_raw_tp, struct task_struct *task, unsigned long clone_flags)
{
	count_new_task(task);
	return 0;
}
