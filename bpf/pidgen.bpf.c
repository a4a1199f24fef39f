// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pidgen: a per-PID-namespace generation counter, the never-merged
 * /proc/pid_gen, kept from BPF on the PID allocation path.
 *
 * Three programs do the same job from different attach points; the loader
 * loads exactly one of them (fexit first, then tp_btf, then raw_tp) and
 * reports which one it got. Beside it, one exit logger (tp_btf, or raw_tp
 * where that is what loads) writes task exits to the log while a snapshot
 * runs; between snapshots it returns at its first test.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "core_types.h"
#include "core_fixes.bpf.h"
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

/* The number `task`'s thread group has at `level`, if that level is `ns`. */
static __always_inline __u32 tgid_at(struct task_struct *task, unsigned int level, struct pid_namespace *ns)
{
	struct pid *leader;
	struct upid *upid;

	if (!task)
		return 0;
	leader = BPF_CORE_READ(task, group_leader, thread_pid);
	if (!leader || BPF_CORE_READ(leader, level) < level)
		return 0;
	upid = pidgen_upid_at(leader, level);
	if (BPF_CORE_READ(upid, ns) != ns)
		return 0;
	return BPF_CORE_READ(upid, nr);
}

/* The number `task` itself has at `level`, if that level is `ns`. */
static __always_inline __u32 tid_at(struct task_struct *task, unsigned int level, struct pid_namespace *ns)
{
	struct pid *pid;
	struct upid *upid;

	pid = BPF_CORE_READ(task, thread_pid);
	if (!pid || BPF_CORE_READ(pid, level) < level)
		return 0;
	upid = pidgen_upid_at(pid, level);
	if (BPF_CORE_READ(upid, ns) != ns)
		return 0;
	return BPF_CORE_READ(upid, nr);
}

/* Writes one log record; a full ring is counted, so the reader knows the log
 * has a hole (it then rescans). `task` is NULL on the fexit path. */
static __always_inline void log_event(struct pid *pid, struct task_struct *task, unsigned int level,
				      struct pid_namespace *ns, __u32 inum, __u32 nr, __u64 start_ns,
				      __u32 flags)
{
	struct pidgen_log_event *event;

	event = bpf_ringbuf_reserve(&pidgen_log, sizeof(*event), 0);
	if (!event) {
		__sync_fetch_and_add(&stats.log_drops, 1);
		return;
	}
	event->start_ns = start_ns;
	event->at_ns = bpf_ktime_get_boot_ns();
	/* pidfs gives every struct pid an inode number that is never reused
	 * (6.9+): the one identity that tells two holders of a PID apart. Read
	 * here, not per fork: only logged events need it. */
	event->ino = pidgen_pid_ino(pid);
	event->inum = inum;
	event->nr = nr;
	event->tgid = tgid_at(task, level, ns);
	event->flags = flags;
	event->creator_tid = 0;
	event->creator_tgid = 0;
	if (!(flags & PIDGEN_EVENT_EXIT)) {
		/* Both creation hooks run in the forking task (alloc_pid and
		 * task_newtask are called from its copy_process()), so current is
		 * the creator: the parent of a process, a sibling of a thread. An
		 * output that stands in for the kernel's task_newtask names it. */
		struct task_struct *creator = (struct task_struct *)bpf_get_current_task();

		event->creator_tid = tid_at(creator, level, ns);
		if (event->creator_tid)
			event->creator_tgid = tgid_at(creator, level, ns);
	}
	__builtin_memset(event->comm, 0, sizeof(event->comm));
	if (task)
		BPF_CORE_READ_STR_INTO(&event->comm, task, comm);
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
static __always_inline void count_pid(struct pid *pid, struct task_struct *task, __u64 start_ns, __u32 event_flags)
{
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
		upid = pidgen_upid_at(pid, i);
		nr = BPF_CORE_READ(upid, nr);
		ns = BPF_CORE_READ(upid, ns);
		inum = BPF_CORE_READ(ns, ns.inum);
		if (nr <= 0 || !inum) {
			__sync_fetch_and_add(&stats.read_errors, 1);
			continue;
		}
		count_allocation(inum, nr);
		if (logged && inum == logged)
			log_event(pid, task, i, ns, inum, nr, start_ns, event_flags);
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
	count_pid(ret, NULL, bpf_ktime_get_boot_ns(), 0);
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
	count_pid(BPF_CORE_READ(task, thread_pid), task, BPF_CORE_READ(task, start_boottime), flags);
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

/*
 * The exit logger. sched_process_exit fires in do_exit(), for every task
 * (thread or process), before exit_notify() and long before release_task()
 * frees the PID; the ring record is submitted when the program returns. So
 * a task's exit record is in the log before its number can be handed to
 * anyone else: a snapshot that drains the log after its window end knows
 * every task of the walk that died before a successor could take its
 * number (the proof is in src/snapshot/coherent.ts, verifyExited).
 */
static __always_inline void log_exit(struct task_struct *task)
{
	__u32 logged = log_inum;
	struct pid *pid;
	unsigned int level;
	__u32 flags = PIDGEN_EVENT_EXIT | PIDGEN_EVENT_EXACT_START;

	/* Between snapshots: one load and out. */
	if (!logged)
		return;
	pid = BPF_CORE_READ(task, thread_pid);
	if (!pid)
		return;
	level = BPF_CORE_READ(pid, level);
	if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		flags |= PIDGEN_EVENT_THREAD;
	for (unsigned int i = 0; i <= PIDGEN_MAX_NS_LEVEL; i++) {
		struct upid *upid;
		struct pid_namespace *ns;

		if (i > level)
			break;
		upid = pidgen_upid_at(pid, i);
		ns = BPF_CORE_READ(upid, ns);
		if (BPF_CORE_READ(ns, ns.inum) != logged)
			continue;
		log_event(pid, task, i, ns, logged, BPF_CORE_READ(upid, nr), BPF_CORE_READ(task, start_boottime), flags);
		return;
	}
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(pidgen_exit_tp_btf, struct task_struct *task)
{
	log_exit(task);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(pidgen_exit_raw_tp, struct task_struct *task)
{
	log_exit(task);
	return 0;
}
