/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The recorder's one record, shared by recorder.bpf.c (writes it) and
 * recorder.c (copies it to the log), and read by log.ts at fixed offsets.
 * Plain C integer types only: nothing from the kernel or libc.
 *
 * The recorder is the tests' ground truth for pidgen, and owes nothing to
 * pidgen's code: its own programs, its own types, its own loader.
 */
#ifndef RECORDER_H
#define RECORDER_H

/* recorder_event.kind */
#define RECORDER_NEW 1     /* tp_btf/task_newtask: a task was born in the namespace */
#define RECORDER_RENAME 2  /* tp_btf/task_rename: its comm is about to change to `comm` */
#define RECORDER_EXEC 3    /* tp_btf/sched_process_exec: it exec'd; `comm` is the new one */
#define RECORDER_WAITED 4  /* tp_btf/sys_exit of wait4 returning a pid: a child was reaped */
#define RECORDER_END 5     /* tp_btf/sched_process_free: the task is gone */
#define RECORDER_EXIT 6    /* tp_btf/sched_process_exit: it exits (still holds its PID) */

/*
 * One event, 96 bytes, no padding. Every event names its subject task by
 * (tid, start_ns): the number as the recorded namespace sees it, and the
 * task's start_boottime (two holders of one number never share it).
 *
 * Times are CLOCK_BOOTTIME ns: start_ns is the kernel's task->start_boottime
 * (set in copy_process() after alloc_pid(), before the task is visible);
 * every other time is bpf_ktime_get_boot_ns() when the program ran.
 *
 *            time_ns          t1                      t2               n1               n2
 *   NEW      task_newtask     real parent's start     -                real parent tgid clone flags (low 32)
 *   RENAME   task_rename      -                       -                -                1 if a rename before was missed
 *   EXEC     exec done        -                       -                old tid (global) 1 if the tid changed
 *   EXIT     sched_process_exit -                     -                -                -
 *   WAITED   wait4 returns    that do_wait's start    -                returned pid     -
 *   END      sched_process_free  exit (0: not seen)   final switch out -                exit_code
 *
 * The actor is the task the program ran in (current): for RENAME the task
 * doing the rename, for NEW the forking thread, for WAITED the waiter (also
 * the subject). actor is 0 when current is outside the namespace (the
 * recorder forking the namespace's init). END's actor means nothing: it runs
 * in an RCU callback, on whatever task the CPU was running.
 */
struct recorder_event {
	unsigned long long seq;         /* 0, 1, 2, ...: a gap is a lost event */
	unsigned long long time_ns;
	unsigned long long start_ns;    /* subject's start_boottime */
	unsigned long long ino;         /* subject's pidfs inode (6.9+), else 0 */
	unsigned long long actor_start; /* actor's start_boottime, 0 if no actor */
	unsigned long long t1;
	unsigned long long t2;
	unsigned int kind;              /* RECORDER_* */
	unsigned int tid;               /* subject's numbers in the recorded namespace */
	unsigned int tgid;
	unsigned int actor;             /* actor's tid in the namespace, 0 if none */
	unsigned int n1;
	unsigned int n2;
	char comm[16];                  /* NEW: at birth; RENAME: the new one; EXEC: after; END: at the end */
};

/* Counters in .bss, read by the loader. Any nonzero loss means the log has
 * a hole, and a run with a hole must fail, not pass on what was seen. */
struct recorder_stats {
	unsigned long long seq;            /* next sequence number */
	unsigned long long dropped;        /* ring buffer full: events lost */
	unsigned long long storage_failed; /* a new task got no task storage */
	unsigned long long unknown_exits;  /* a task of the namespace exited unseen at birth */
	unsigned long long born;           /* tasks given storage: each gets one END, unless missed */
	unsigned long long ended;          /* tasks whose END was written (or dropped) */
};

/* Ring buffer size: a power of two, a page multiple. */
#define RECORDER_RING_BYTES (64u << 20)

#endif /* RECORDER_H */
