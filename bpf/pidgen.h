/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Records shared by the BPF programs (pidgen.bpf.c) and the native loader
 * (native/). Both sides compile this file, so it includes nothing from the
 * kernel or libc: plain C integer types only, with sizes fixed by layout.
 */
#ifndef PIDGEN_H
#define PIDGEN_H

/*
 * Bumped whenever a record below changes shape. `pidgen pin` stores it next
 * to pinned maps so a newer pidgen refuses an incompatible older pin.
 */
#define PIDGEN_LAYOUT_VERSION 3

/* Deepest PID namespace nesting the kernel allows (MAX_PID_NS_LEVEL). */
#define PIDGEN_MAX_NS_LEVEL 32

/* Namespaces tracked at once; a new one is refused (and counted) past this. */
#define PIDGEN_MAX_NAMESPACES 16384

/* pidgen_ns_counter.flags */
/* First allocation seen here had nr > 1: what came before is unknown, so the
 * record starts with a conservative bump instead of a silent baseline. */
#define PIDGEN_NS_FIRST_SEEN_LATE 0x1u
/* lastNr was seeded from ns_last_pid by the loader when the guard opened. */
#define PIDGEN_NS_SEEDED 0x2u

/* Value of the ns_counters map, keyed by the PID namespace inode number. */
struct pidgen_ns_counter {
	unsigned long long generation;   /* bumps: an nr not above the previous one */
	unsigned long long allocations;  /* PID numbers allocated in this namespace */
	unsigned long long bumped_at_ns; /* CLOCK_BOOTTIME of the latest bump, 0 if none */
	unsigned int last_nr;            /* most recently recorded nr */
	unsigned int flags;              /* PIDGEN_NS_* */
};

/* Loader-visible health counters (in .bss). Any change during a window means
 * the window cannot be vouched for. */
struct pidgen_stats {
	unsigned long long ns_map_full;  /* a namespace could not get a record */
	unsigned long long read_errors;  /* a kernel read failed mid-walk of pid levels */
	unsigned long long log_drops;    /* allocation events lost: the log ring was full */
};

/* pidgen_log_event.flags */
#define PIDGEN_EVENT_THREAD 0x1u      /* the task is a thread, not a process */
#define PIDGEN_EVENT_EXACT_START 0x2u /* start_ns is task->start_boottime */
#define PIDGEN_EVENT_EXIT 0x4u        /* the task exited (do_exit); else it was created */

/*
 * One record of the log ring, written only while a snapshot logs a
 * namespace: a PID number handed to a new task there (task_newtask, or
 * alloc_pid for fexit), or a task of that namespace exiting
 * (sched_process_exit). The snapshot uses the first to know exactly which
 * PIDs changed hands inside its window, and the second to close the window
 * end (src/snapshot/coherent.ts). 64 bytes, no padding, so TS reads records
 * at fixed offsets.
 */
struct pidgen_log_event {
	unsigned long long start_ns; /* CLOCK_BOOTTIME: the task's start, or the allocation time (fexit) */
	unsigned long long at_ns;    /* CLOCK_BOOTTIME when the program ran: task_newtask, or the exit */
	unsigned long long ino;      /* pidfs inode of the struct pid (6.9+), else 0 */
	unsigned int inum;           /* namespace the number belongs to */
	unsigned int nr;             /* the number (a TID), as that namespace sees it */
	unsigned int tgid;           /* its thread group there; 0 when not known (fexit) */
	unsigned int flags;          /* PIDGEN_EVENT_* */
	unsigned int creator_tid;    /* creation: the task that made it (current), as that namespace */
	unsigned int creator_tgid;   /* numbers it, and its thread group; 0 when it has no number there
	                              * (it forked into a child namespace) and on exits */
	char comm[16];               /* the task's name then; empty for fexit */
};

/* pidgen_meta.attach, and the kernel hook each id stands for (as libbpf and
 * bpftool name it). src/model/layout.ts mirrors both. */
#define PIDGEN_ATTACH_FEXIT 1
#define PIDGEN_ATTACH_TP_BTF 2
#define PIDGEN_ATTACH_RAW_TP 3
#define PIDGEN_ATTACH_FEXIT_POINT "fexit/alloc_pid"
#define PIDGEN_ATTACH_TP_BTF_POINT "tp_btf/task_newtask"
#define PIDGEN_ATTACH_RAW_TP_POINT "raw_tp/task_newtask"

/* Names under a pin directory (`pidgen pin`). */
#define PIDGEN_PIN_LINK "link"         /* keeps the counter's program attached */
#define PIDGEN_PIN_EXIT_LINK "exit_link" /* keeps the exit logger attached */
#define PIDGEN_PIN_NS "ns"             /* the pidgen_ns map */
#define PIDGEN_PIN_LOG "log"           /* the allocation log ring */
#define PIDGEN_PIN_BSS "bss"           /* the counter's .bss: health counters, log_inum */
#define PIDGEN_PIN_META "meta"         /* struct pidgen_meta */
#define PIDGEN_PIN_ITER "iter"         /* the task iterator's link */
#define PIDGEN_PIN_ITER_BSS "iter_bss" /* the task iterator's .bss: its options */

/*
 * The one value of the pidgen_meta map: what a later pidgen needs to know
 * about a pinned counter before it trusts the other pinned maps.
 */
struct pidgen_meta {
	unsigned int layout_version;              /* PIDGEN_LAYOUT_VERSION of the pinner */
	unsigned int attach;                      /* PIDGEN_ATTACH_* */
	unsigned long long attached_boottime_ns;  /* CLOCK_BOOTTIME when it was attached */
	unsigned long long attached_realtime_ns;  /* CLOCK_REALTIME then, for people */
	unsigned int iter;                        /* PIDGEN_PINNED_ITER_* */
	unsigned int reserved;
};

/* pidgen_meta.iter: the task iterator pinned beside the counter, if any. */
#define PIDGEN_PINNED_ITER 0x1u           /* `iter` and `iter_bss` are pinned */
#define PIDGEN_PINNED_ITER_SLEEPABLE 0x2u /* it is iter.s/task: it copies argv */

/* Size of the allocation log ring buffer (a power of two, page multiple). */
#define PIDGEN_LOG_BYTES (1u << 20)

/* ---- task iterator (bpf/task_iter.bpf.c) ---- */

/* Longest argv the sleepable iterator copies; longer ones are flagged and
 * read from /proc instead, so nothing is silently cut. */
#define PIDGEN_CMDLINE_MAX 4096

/* pidgen_task_record.record_flags */
#define PIDGEN_TASK_CMDLINE 0x1u           /* cmdline bytes follow the record */
#define PIDGEN_TASK_CMDLINE_TRUNCATED 0x2u /* argv longer than PIDGEN_CMDLINE_MAX */
#define PIDGEN_TASK_CMDLINE_FAILED 0x4u    /* copying argv from the task failed */

/*
 * One task, as the iterator writes it. All numbers are as the scanning PID
 * namespace sees them. 72 bytes; when PIDGEN_TASK_CMDLINE is set,
 * cmdline_len bytes of argv follow, then zero padding to a multiple of 8.
 */
struct pidgen_task_record {
	unsigned long long start_ns;    /* task->start_boottime, CLOCK_BOOTTIME */
	unsigned long long ino;         /* pidfs inode of the task's struct pid (6.9+), else 0 */
	unsigned int tgid;
	unsigned int tid;
	unsigned int ppid;              /* real parent's tgid; 0 if outside the namespace */
	unsigned int uid;               /* real uid */
	unsigned int flags;             /* task->flags (PF_KTHREAD = 0x00200000) */
	unsigned int state;             /* task->__state */
	unsigned int exit_state;        /* task->exit_state (EXIT_ZOMBIE = 0x20) */
	unsigned int cmdline_len;
	unsigned int record_flags;      /* PIDGEN_TASK_* */
	unsigned int reserved;
	char comm[16];
};

/* Iterator settings, in its .bss, written by the loader before each run. */
#define PIDGEN_ITER_THREADS 0x1u /* emit every thread, not only group leaders */
#define PIDGEN_ITER_CMDLINE 0x2u /* copy argv (sleepable program only) */

#endif /* PIDGEN_H */
