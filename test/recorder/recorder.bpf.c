// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * recorder: every task of one PID namespace, from birth to free, with exact
 * CLOCK_BOOTTIME times, as ground truth for pidgen's coherence tests.
 *
 * The loader creates the namespace itself and attaches these programs before
 * it forks the namespace's first task (its init), so no task of it predates
 * the log. A task is "ours" when task_newtask sees it born in that namespace
 * (tasks of namespaces nested inside count too, by their number in it); its
 * state then lives in task-local storage, which the kernel frees with the
 * task_struct, so a later task in the same memory can never inherit it.
 *
 * What each event proves (see recorder.h for the fields):
 *   task_newtask      fires at the end of copy_process(), after alloc_pid(),
 *                     after start_boottime is set and after attach_pid() made
 *                     the task visible. So: PID taken < start_ns < visible <
 *                     time_ns.
 *   task_rename       fires in __set_task_comm() before the new name is
 *                     copied in; the copy is done before the renaming task's
 *                     next traced event (it is that task's own syscall).
 *   sched_process_exec after the exec (comm already the new one).
 *   sched_process_exit early in do_exit(): the task still holds its PID, and
 *                     will until its release. Exit < release.
 *   sched_process_wait at the start of do_wait(); the wait4 that returns a
 *                     child's pid reaped (released) it in between:
 *                     do_wait start < release < wait4 return.
 *   sched_switch      with prev_state TASK_DEAD: the task's last switch out.
 *                     A thread releases itself in exit_notify(), before
 *                     that: release < final switch.
 *   sched_process_free from delayed_put_task_struct(), an RCU grace period
 *                     after release_task() freed the PID: release < free,
 *                     often by milliseconds, and a successor can take the
 *                     number before it fires.
 * No tracepoint sits at the release itself (free_pid()), and fentry/kprobes
 * are refused here; the checker therefore works with the bracket
 * [release lower bound, release upper bound] built from the events above.
 *
 * Losses. A full ring is counted (dropped). A run the kernel skips does not
 * run us at all, so the programs check each other instead: an exit of a task
 * of the namespace that has no storage means its task_newtask was missed
 * (unknown_exits); a rename that finds a comm other than the last one
 * recorded means a rename was missed (flagged on the event); a free without
 * an exit before it means the exit was missed. A missed free or switch only
 * widens a bracket (other bounds remain), so the log reader merely notes it.
 */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "kernel_types.h"
#include "recorder.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_NS_LEVEL 32   /* MAX_PID_NS_LEVEL */
#define TASK_DEAD 0x80    /* include/linux/sched.h */

/* The loader's tgid (global), set before load. The namespace to record is
 * the one whose init the loader forks: the first task it forks after its
 * unshare(CLONE_NEWPID). (The namespace has no inode to filter on before
 * that: /proc/self/ns/pid_for_children is ENOENT until it has a reaper.) */
const volatile __u32 recorder_tgid = 0;

/* Learnt from that first task: the namespace's inode number and level. */
__u32 target_inum = 0;
__u32 target_level = 0;
__u32 level_known = 0;

struct recorder_stats stats = {};

struct task_info {
	unsigned long long start_ns;
	unsigned long long ino;
	unsigned long long exit_ns;
	unsigned long long dead_ns;
	unsigned long long wait_begin_ns;
	unsigned int tid;
	unsigned int tgid;
	char comm[16]; /* as last recorded: at birth, or the latest rename */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_info);
} tasks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RECORDER_RING_BYTES);
} events SEC(".maps");

static __always_inline struct upid *upid_at(struct pid *pid, unsigned int level)
{
	__u64 numbers_offset = bpf_core_field_offset(struct pid, numbers);
	__u64 upid_size = bpf_core_type_size(struct upid);

	return (void *)pid + numbers_offset + (level & 63) * upid_size;
}

/* pid's number in the target namespace, or 0 if it has none there. */
static __always_inline __u32 nr_in_target(struct pid *pid)
{
	unsigned int level = target_level;
	struct upid *upid;

	if (!pid || !level_known || level > MAX_NS_LEVEL || BPF_CORE_READ(pid, level) < level)
		return 0;
	upid = upid_at(pid, level);
	if (BPF_CORE_READ(upid, ns, ns.inum) != target_inum)
		return 0;
	return BPF_CORE_READ(upid, nr);
}

/*
 * Whether a new task with this pid belongs to the target namespace. The
 * loader's first fork after unshare is the namespace's init (nr 1 at the
 * deepest level of its pid): that names the namespace for everything after.
 */
static __always_inline bool in_target(struct pid *pid)
{
	struct task_struct *current = bpf_get_current_task_btf();
	unsigned int level;
	struct upid *upid;

	if (!pid)
		return false;
	if (level_known)
		return nr_in_target(pid) != 0;
	if (BPF_CORE_READ(current, tgid) != recorder_tgid)
		return false;
	level = BPF_CORE_READ(pid, level);
	if (level == 0 || level > MAX_NS_LEVEL)
		return false;
	upid = upid_at(pid, level);
	if (BPF_CORE_READ(upid, nr) != 1)
		return false;
	target_inum = BPF_CORE_READ(upid, ns, ns.inum);
	target_level = level;
	/* Every other task of the namespace descends from the init, which runs
	 * only after this fork returns and wakes it: that wakeup orders these
	 * stores before any of their forks. */
	level_known = 1;
	return true;
}

static __always_inline unsigned long long pid_ino(struct pid *pid)
{
	/* pidfs gives every struct pid an inode number that is never reused (6.9+). */
	if (bpf_core_field_exists(pid->ino))
		return BPF_CORE_READ(pid, ino);
	return 0;
}

/* Reserves an event and fills what every kind has; NULL (counted) when full. */
static __always_inline struct recorder_event *begin_event(unsigned int kind, const struct task_info *subject)
{
	struct task_struct *current = bpf_get_current_task_btf();
	struct recorder_event *e;
	__u64 seq = __sync_fetch_and_add(&stats.seq, 1);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		/* The log now has a hole; the loader and the test fail on it. */
		__sync_fetch_and_add(&stats.dropped, 1);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->seq = seq;
	e->time_ns = bpf_ktime_get_boot_ns();
	e->kind = kind;
	e->actor = nr_in_target(BPF_CORE_READ(current, thread_pid));
	if (e->actor)
		e->actor_start = BPF_CORE_READ(current, start_boottime);
	if (subject) {
		e->start_ns = subject->start_ns;
		e->ino = subject->ino;
		e->tid = subject->tid;
		e->tgid = subject->tgid;
	}
	return e;
}

static __always_inline struct task_info *ours(struct task_struct *task)
{
	return bpf_task_storage_get(&tasks, task, 0, 0);
}

SEC("tp_btf/task_newtask")
int BPF_PROG(recorder_newtask, struct task_struct *task, __u64 clone_flags)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	struct task_struct *parent;
	struct recorder_event *e;
	struct task_info *info;

	if (!in_target(pid))
		return 0;
	info = bpf_task_storage_get(&tasks, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!info) {
		/* No storage (out of memory, or the storage lock busy on this CPU):
		 * this task's later events cannot be told apart. */
		__sync_fetch_and_add(&stats.storage_failed, 1);
		return 0;
	}
	info->start_ns = BPF_CORE_READ(task, start_boottime);
	info->ino = pid_ino(pid);
	info->tid = nr_in_target(pid);
	info->tgid = nr_in_target(BPF_CORE_READ(task, group_leader, thread_pid));
	BPF_CORE_READ_STR_INTO(&info->comm, task, comm);
	__sync_fetch_and_add(&stats.born, 1);

	e = begin_event(RECORDER_NEW, info);
	if (!e)
		return 0;
	parent = BPF_CORE_READ(task, real_parent);
	e->n1 = nr_in_target(BPF_CORE_READ(parent, group_leader, thread_pid));
	if (e->n1)
		e->t1 = BPF_CORE_READ(parent, start_boottime);
	e->n2 = (__u32)clone_flags;
	__builtin_memcpy(e->comm, info->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(recorder_rename, struct task_struct *task, const char *comm)
{
	struct task_info *info = ours(task);
	struct recorder_event *e;
	char now[16];
	__u32 missed = 0;

	if (!info)
		return 0;
	/* The comm before this rename must be the one last recorded. */
	BPF_CORE_READ_STR_INTO(&now, task, comm);
	for (int i = 0; i < 16; i++) {
		if (now[i] != info->comm[i])
			missed = 1;
		if (!now[i] || missed)
			break;
	}
	e = begin_event(RECORDER_RENAME, info);
	if (!e) {
		info->comm[0] = '\0'; /* unknown now: the next rename flags itself */
		return 0;
	}
	bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), comm);
	e->n2 = missed;
	__builtin_memcpy(info->comm, e->comm, sizeof(info->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(recorder_exec, struct task_struct *task, int old_pid, void *bprm)
{
	struct task_info *info = ours(task);
	struct recorder_event *e;

	if (!info)
		return 0;
	e = begin_event(RECORDER_EXEC, info);
	if (!e)
		return 0;
	e->n1 = old_pid;
	/* A non-leader thread that execs takes over its leader's PID
	 * (de_thread() -> exchange_tids()); the checker refuses such a log. */
	e->n2 = BPF_CORE_READ(task, pid) != old_pid;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Only the task: the tracepoint gained a second argument (group_dead) in
 * 6.x, and a tp_btf program that names an argument the kernel's tracepoint
 * lacks is refused ("func 'sched_process_exit' doesn't have 2-th argument",
 * seen on Debian 12's 6.1). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(recorder_exit, struct task_struct *task)
{
	struct task_info *info = ours(task);
	struct recorder_event *e;

	if (!info) {
		/* Still hashed here: if it is of the namespace, we missed its birth. */
		if (nr_in_target(BPF_CORE_READ(task, thread_pid)))
			__sync_fetch_and_add(&stats.unknown_exits, 1);
		return 0;
	}
	e = begin_event(RECORDER_EXIT, info);
	if (!e)
		return 0;
	info->exit_ns = e->time_ns;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(recorder_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct task_info *info;

	if (prev_state != TASK_DEAD)
		return 0;
	info = ours(prev);
	if (info)
		info->dead_ns = bpf_ktime_get_boot_ns();
	return 0;
}

SEC("tp_btf/sched_process_wait")
int BPF_PROG(recorder_wait, struct pid *pid)
{
	struct task_info *info = ours(bpf_get_current_task_btf());

	if (info)
		info->wait_begin_ns = bpf_ktime_get_boot_ns();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(recorder_sys_exit, struct pt_regs *regs, long ret)
{
	struct task_info *info;
	struct recorder_event *e;

	/* Cheapest test first: this runs for every syscall on the host. */
	if (ret <= 0 || RECORDER_SYSCALL_NR(regs) != RECORDER_NR_WAIT4)
		return 0;
	info = ours(bpf_get_current_task_btf());
	if (!info)
		return 0;
	e = begin_event(RECORDER_WAITED, info);
	if (!e)
		return 0;
	e->n1 = ret;
	e->t1 = info->wait_begin_ns;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_free")
int BPF_PROG(recorder_free, struct task_struct *task)
{
	struct task_info *info = ours(task);
	struct recorder_event *e;

	if (!info)
		return 0;
	e = begin_event(RECORDER_END, info);
	if (e) {
		e->t1 = info->exit_ns;
		e->t2 = info->dead_ns;
		e->n2 = BPF_CORE_READ(task, exit_code);
		BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
		bpf_ringbuf_submit(e, 0);
	}
	/* Counted after the submit: born == ended tells the loader every END
	 * is in the ring (or counted as dropped). */
	__sync_fetch_and_add(&stats.ended, 1);
	bpf_task_storage_delete(&tasks, task);
	return 0;
}
