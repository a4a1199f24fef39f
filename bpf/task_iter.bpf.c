// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pidgen's fast snapshot source: a task iterator that writes one fixed-size
 * record per task (struct pidgen_task_record, pidgen.h) into the iterator's
 * seq_file, so a snapshot is one read() loop instead of a /proc walk.
 *
 * Two programs, one loaded (a third, pidgen_iter_minimal, only by `pidgen
 * bench`): the sleepable iter.s/task also copies argv with
 * bpf_copy_from_user_task (5.18+) and reads through direct loads (below);
 * the plain iter/task, for older kernels, leaves argv to /proc and reads
 * every field through BPF_CORE_READ.
 */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "core_types.h"
#include "core_fixes.bpf.h"
#include "pidgen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* PIDGEN_ITER_*; written by the loader before each run. */
__u32 iter_options = 0;

/* Scratch for one record plus its argv: too big for the 512-byte stack. */
struct scratch {
	struct pidgen_task_record record;
	char cmdline[PIDGEN_CMDLINE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} pidgen_iter_scratch SEC(".maps");

/* The number `pid` has in the namespace at `level`, or 0 if the pid does not
 * reach that namespace (the task is outside the scanning namespace). */
static __always_inline __u32 nr_in(struct pid *pid, unsigned int level, struct pid_namespace *ns)
{
	struct upid *upid;

	if (!pid || level > PIDGEN_MAX_NS_LEVEL || BPF_CORE_READ(pid, level) < level)
		return 0;
	upid = pidgen_upid_at(pid, level);
	if (BPF_CORE_READ(upid, ns) != ns)
		return 0;
	return BPF_CORE_READ(upid, nr);
}

/* Fills the fixed part; returns false for a task outside the namespace. */
static __always_inline bool fill_record(struct pidgen_task_record *r, struct task_struct *task)
{
	/* The iterator lists the tasks of the reader's active PID namespace,
	 * so that namespace is the scanning one: read it off the reader.
	 * bpf_get_current_task(), not the _btf variant: that one came in 5.11
	 * ("bpf: Implement get_current_task_btf and RET_PTR_TO_BTF_ID") and 5.10
	 * refuses it ("invalid func unknown#158"), while iter/task dates from 5.8. Every
	 * read below goes through BPF_CORE_READ, so a BTF pointer buys nothing. */
	struct task_struct *me = (struct task_struct *)bpf_get_current_task();
	struct pid *my_pid = BPF_CORE_READ(me, thread_pid);
	unsigned int level = BPF_CORE_READ(my_pid, level);
	struct pid_namespace *ns;
	struct pid *pid = BPF_CORE_READ(task, thread_pid);

	if (level > PIDGEN_MAX_NS_LEVEL)
		return false;
	ns = BPF_CORE_READ(pidgen_upid_at(my_pid, level), ns);

	r->tid = nr_in(pid, level, ns);
	if (!r->tid)
		return false;
	r->tgid = nr_in(BPF_CORE_READ(task, group_leader, thread_pid), level, ns);
	r->ppid = nr_in(BPF_CORE_READ(task, real_parent, group_leader, thread_pid), level, ns);
	r->start_ns = BPF_CORE_READ(task, start_boottime);
	r->ino = pidgen_pid_ino(pid);
	r->uid = BPF_CORE_READ(task, real_cred, uid.val);
	r->flags = BPF_CORE_READ(task, flags);
	r->exit_state = BPF_CORE_READ(task, exit_state);
	r->record_flags = 0;
	r->state = pidgen_task_state(task);
	r->cmdline_len = 0;
	r->reserved = 0;
	BPF_CORE_READ_STR_INTO(&r->comm, task, comm);
	return true;
}

static __always_inline bool wanted(struct task_struct *task)
{
	/* Threads only when asked: --no-threads reads leaders alone. */
	return (iter_options & PIDGEN_ITER_THREADS) ||
	       BPF_CORE_READ(task, pid) == BPF_CORE_READ(task, tgid);
}

SEC("iter/task")
int pidgen_iter(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct pidgen_task_record record = {};

	if (!task || !wanted(task))
		return 0;
	if (fill_record(&record, task))
		bpf_seq_write(ctx->meta->seq, &record, sizeof(record));
	return 0;
}

/*
 * The sleepable program reads the task through direct loads: ctx->task and
 * bpf_get_current_task_btf() (5.11+, so always there where iter.s/task
 * loads) are BTF pointers, and a load through one is a plain memory load
 * the JIT guards with an exception-table entry. BPF_CORE_READ instead makes
 * each field a bpf_probe_read_kernel() call, and that was most of the pass:
 * about 1,500 ns per task against about 650 for the same record this way
 * (5,000 tasks, BPF run-time statistics, kernel 6.18). The offsets are
 * still CO-RE-relocated against the running kernel.
 */

/* The upid of `pid` at `level`. numbers[0] always exists and is a direct
 * load; deeper levels go through bpf_probe_read_kernel(), because kernels
 * before the flexible-array change (core_fixes.bpf.h) declare numbers[1]
 * and the verifier refuses a direct load past it. Returns false if `pid`
 * does not reach that level. */
static __always_inline bool upid_at_direct(struct pid *pid, unsigned int level, struct upid *out)
{
	if (!pid || pid->level < level)
		return false;
	if (level == 0) {
		out->nr = pid->numbers[0].nr;
		out->ns = pid->numbers[0].ns;
		return true;
	}
	return bpf_probe_read_kernel(out, sizeof(*out), pidgen_upid_at(pid, level)) == 0;
}

static __always_inline __u32 nr_in_direct(struct pid *pid, unsigned int level, struct pid_namespace *ns)
{
	struct upid upid;

	if (!upid_at_direct(pid, level, &upid) || upid.ns != ns)
		return 0;
	return upid.nr;
}

/* fill_record() with direct loads; false for a task outside the namespace. */
static __always_inline bool fill_record_direct(struct pidgen_task_record *r, struct task_struct *task)
{
	struct task_struct *me = bpf_get_current_task_btf();
	struct pid *my_pid = me->thread_pid;
	struct pid *pid = task->thread_pid;
	struct upid mine;
	unsigned int level;

	if (!my_pid)
		return false;
	level = my_pid->level;
	if (level > PIDGEN_MAX_NS_LEVEL || !upid_at_direct(my_pid, level, &mine))
		return false;
	r->tid = nr_in_direct(pid, level, mine.ns);
	if (!r->tid)
		return false;
	r->tgid = nr_in_direct(task->group_leader->thread_pid, level, mine.ns);
	r->ppid = nr_in_direct(task->real_parent->group_leader->thread_pid, level, mine.ns);
	r->start_ns = task->start_boottime;
	r->ino = pidgen_pid_ino_direct(pid);
	r->uid = task->real_cred->uid.val;
	r->flags = task->flags;
	r->exit_state = task->exit_state;
	r->record_flags = 0;
	r->state = pidgen_task_state_direct(task);
	r->cmdline_len = 0;
	r->reserved = 0;
	/* comm is NUL-padded in the kernel (strscpy_pad in __set_task_comm):
	 * a fixed copy decodes as the string does. */
	__builtin_memcpy(r->comm, task->comm, sizeof(r->comm));
	return true;
}

SEC("iter.s/task")
int pidgen_iter_cmdline(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct scratch *scratch;
	struct mm_struct *mm;
	unsigned long arg_start;
	__u32 zero = 0;
	__u64 len;

	if (!task)
		return 0;
	/* Threads only when asked: --no-threads reads leaders alone. */
	if (!(iter_options & PIDGEN_ITER_THREADS) && task->pid != task->tgid)
		return 0;
	scratch = bpf_map_lookup_elem(&pidgen_iter_scratch, &zero);
	if (!scratch || !fill_record_direct(&scratch->record, task))
		return 0;

	/* argv of processes only: threads share it, kernel threads and zombies
	 * have no mm (/proc shows an empty cmdline for them too). */
	mm = task->mm;
	if (!(iter_options & PIDGEN_ITER_CMDLINE) || !mm || task->pid != task->tgid) {
		bpf_seq_write(ctx->meta->seq, &scratch->record, sizeof(scratch->record));
		return 0;
	}
	arg_start = mm->arg_start;
	len = mm->arg_end - arg_start;
	if (len > PIDGEN_CMDLINE_MAX) {
		scratch->record.record_flags |= PIDGEN_TASK_CMDLINE_TRUNCATED;
		bpf_seq_write(ctx->meta->seq, &scratch->record, sizeof(scratch->record));
		return 0;
	}
	if (len > 0 && bpf_copy_from_user_task(scratch->cmdline, len, (void *)arg_start, task, 0) != 0) {
		scratch->record.record_flags |= PIDGEN_TASK_CMDLINE_FAILED;
		bpf_seq_write(ctx->meta->seq, &scratch->record, sizeof(scratch->record));
		return 0;
	}
	scratch->record.record_flags |= PIDGEN_TASK_CMDLINE;
	scratch->record.cmdline_len = len;
	/* Pad to 8 so the next record starts aligned. */
	len = (len + 7) & ~7ULL;
	if (len > PIDGEN_CMDLINE_MAX)
		len = PIDGEN_CMDLINE_MAX;
	bpf_seq_write(ctx->meta->seq, scratch, sizeof(scratch->record) + len);
	return 0;
}

/*
 * The yardstick `pidgen bench` measures the kernel pass against: the same
 * fixed record through bpf_seq_write, filled with three direct loads and no
 * namespace translation, argv or state. What pidgen_iter_cmdline costs
 * beyond this (without argv) is the price of its fields. Never loaded by a
 * snapshot.
 */
SEC("iter/task")
int pidgen_iter_minimal(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct pidgen_task_record record = {};

	if (!task)
		return 0;
	record.tid = task->pid;
	record.tgid = task->tgid;
	record.start_ns = task->start_boottime;
	bpf_seq_write(ctx->meta->seq, &record, sizeof(record));
	return 0;
}
