// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * recorder: runs a command as PID 1 of a new PID (and mount) namespace and
 * logs every task of that namespace from birth to free (recorder.bpf.c).
 *
 *   recorder LOG SUMMARY -- command [args...]
 *
 * Like `unshare -pfm --mount-proc command`, but the programs are attached
 * after unshare() and before the namespace's first task is forked, so the
 * log holds every task the namespace ever had. LOG gets the raw records (struct
 * recorder_event, recorder.h); SUMMARY gets one JSON object with the
 * namespace and the loss counters. After the command exits (which ends the
 * namespace), the recorder waits (a few seconds at most) until every task's
 * END record is written, then drains the ring. Exit status: the command's
 * (128 + signal if killed), or 75 if the log has a hole (lost events, a task
 * without storage, a task never seen born, a program run the kernel
 * skipped): a log
 * with a hole must fail its test, not pass on what it happened to hold.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <bpf/libbpf.h>

#include "recorder.h"
#include "recorder.skel.h"

#define EXIT_HOLE 75
/* How long to wait, after the namespace died, for its last tasks' END
 * records: sched_process_free runs an RCU grace period after the reap. */
#define END_WAIT_NS (3ull * 1000 * 1000 * 1000)

struct log_state {
	FILE *file;
	unsigned long long count;
	unsigned long long max_seq;
	int write_failed;
};

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
	/* Killing the namespace's init kills every task in it. */
	(void)sig;
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
}

static unsigned long long boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static int print_libbpf(enum libbpf_print_level level, const char *format, va_list args)
{
	if (level == LIBBPF_DEBUG && !getenv("RECORDER_VERBOSE"))
		return 0;
	return vfprintf(stderr, format, args);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct log_state *log = ctx;
	const struct recorder_event *e = data;

	if (size < sizeof(*e))
		return 0;
	if (fwrite(e, sizeof(*e), 1, log->file) != 1)
		log->write_failed = 1;
	log->count++;
	if (e->seq > log->max_seq)
		log->max_seq = e->seq;
	return 0;
}

/* PID 1 of the new namespace: its own /proc, then the command. */
static void run_init(char **argv)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
		fprintf(stderr, "recorder: mount proc on /proc: %s\n", strerror(errno));
		_exit(127);
	}
	execvp(argv[0], argv);
	fprintf(stderr, "recorder: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int main(int argc, char **argv)
{
	struct recorder_bpf *skel = NULL;
	struct bpf_link *links[16] = {0};
	struct ring_buffer *ring = NULL;
	struct log_state log = {0};
	struct bpf_program *prog;
	struct stat ns = {0};
	FILE *summary = NULL;
	int nlinks = 0, status = 0, exit_code = 1, err, misses_unknown = 0;
	unsigned long long misses = 0;
	unsigned long long started_ns, stopped_ns, deadline;
	pid_t pid;

	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: recorder LOG SUMMARY -- command [args...]\n");
		return 2;
	}
	libbpf_set_print(print_libbpf);

	/* The namespace first, so its inode can be the filter before load. */
	if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) {
		fprintf(stderr, "recorder: unshare(CLONE_NEWPID | CLONE_NEWNS): %s\n", strerror(errno));
		return 1;
	}
	/* Our /proc mount must not leak into the parent's mount namespace. */
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		fprintf(stderr, "recorder: mount --make-rprivate /: %s\n", strerror(errno));
		return 1;
	}
	/* Open, configure, load, attach. */
	skel = recorder_bpf__open();
	if (!skel) {
		fprintf(stderr, "recorder: open BPF object: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->recorder_tgid = (unsigned int)getpid();
	err = recorder_bpf__load(skel);
	if (err) {
		fprintf(stderr, "recorder: load BPF object: %s\n", strerror(-err));
		goto cleanup;
	}
	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_link *link = bpf_program__attach(prog);

		if (!link) {
			fprintf(stderr, "recorder: attach %s: %s\n", bpf_program__section_name(prog), strerror(errno));
			goto cleanup;
		}
		if (nlinks == (int)(sizeof(links) / sizeof(links[0]))) {
			bpf_link__destroy(link);
			fprintf(stderr, "recorder: attach %s: too many programs\n", bpf_program__section_name(prog));
			goto cleanup;
		}
		links[nlinks++] = link;
	}

	/* The log file and the ring reader. */
	log.file = fopen(argv[1], "w");
	if (!log.file) {
		fprintf(stderr, "recorder: open %s: %s\n", argv[1], strerror(errno));
		goto cleanup;
	}
	setvbuf(log.file, NULL, _IOFBF, 1 << 20);
	ring = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, &log, NULL);
	if (!ring) {
		fprintf(stderr, "recorder: ring_buffer__new (events): %s\n", strerror(errno));
		goto cleanup;
	}

	/* The namespace's init: forked only now, so it is logged from birth. */
	signal(SIGTERM, forward_signal);
	signal(SIGINT, forward_signal);
	started_ns = boottime_ns();
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "recorder: fork: %s\n", strerror(errno));
		goto cleanup;
	}
	if (pid == 0)
		run_init(argv + 4);
	child_pid = pid;
	/* The programs learnt the namespace from this fork; check them (the
	 * init may already be gone if the command was quick: then trust them). */
	{
		char path[64];
		int stat_err;

		snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
		stat_err = stat(path, &ns) == 0 ? 0 : errno;
		if (!skel->bss->level_known || (stat_err == 0 && skel->bss->target_inum != (unsigned int)ns.st_ino)) {
			fprintf(stderr, "recorder: the programs did not see the namespace's init fork (learnt inum %u, %s says %lu)\n",
				skel->bss->target_inum, path, stat_err ? 0ul : (unsigned long)ns.st_ino);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			goto cleanup;
		}
	}

	/* Drain while the namespace lives. */
	for (;;) {
		err = ring_buffer__poll(ring, 20);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "recorder: ring_buffer__poll (events): %s\n", strerror(-err));
			kill(pid, SIGKILL);
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	child_pid = 0;

	/* The namespace is dead; its last END records follow an RCU grace period. */
	deadline = boottime_ns() + END_WAIT_NS;
	while (skel->bss->stats.ended < skel->bss->stats.born && boottime_ns() < deadline)
		ring_buffer__poll(ring, 20);
	ring_buffer__consume(ring);
	stopped_ns = boottime_ns();
	if (fflush(log.file) != 0)
		log.write_failed = 1;

	/* A program the kernel skipped (it was already running on that CPU:
	 * bpf_prog_inc_misses_counter()) wrote nothing and counted nothing, so
	 * its misses are holes too. */
	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) {
			fprintf(stderr, "recorder: get info of %s: %s\n", bpf_program__name(prog), strerror(errno));
			misses_unknown = 1;
			continue;
		}
		if (info.recursion_misses) {
			fprintf(stderr, "recorder: %s was skipped %llu times (recursion misses)\n", bpf_program__name(prog),
				(unsigned long long)info.recursion_misses);
			misses += info.recursion_misses;
		}
	}

	{
		const struct recorder_stats *s = &skel->bss->stats;
		unsigned long long gaps = s->seq - log.count - s->dropped;
		int hole = s->dropped || s->storage_failed || s->unknown_exits || gaps || log.write_failed || misses ||
			   misses_unknown;

		summary = fopen(argv[2], "w");
		if (!summary) {
			fprintf(stderr, "recorder: open %s: %s\n", argv[2], strerror(errno));
			goto cleanup;
		}
		fprintf(summary,
			"{\"inum\":%u,\"level\":%u,\"recordSize\":%zu,\"events\":%llu,\"seq\":%llu,\"maxSeq\":%llu,"
			"\"dropped\":%llu,\"storageFailed\":%llu,\"unknownExits\":%llu,\"unaccounted\":%llu,"
			"\"recursionMisses\":%llu,\"born\":%llu,\"ended\":%llu,\"writeFailed\":%s,"
			"\"startedNs\":\"%llu\",\"stoppedNs\":\"%llu\",\"status\":%d}\n",
			skel->bss->target_inum, skel->bss->target_level, sizeof(struct recorder_event), log.count, s->seq,
			log.max_seq, s->dropped, s->storage_failed, s->unknown_exits, gaps, misses, s->born, s->ended,
			log.write_failed ? "true" : "false", started_ns, stopped_ns, status);
		if (fclose(summary) != 0)
			fprintf(stderr, "recorder: write %s: %s\n", argv[2], strerror(errno));
		if (s->ended != s->born)
			fprintf(stderr, "recorder: %llu of %llu tasks got no sched_process_free (their brackets use other bounds)\n",
				s->born - s->ended, s->born);
		if (hole) {
			fprintf(stderr,
				"recorder: the log has a hole: %llu dropped (ring full), %llu tasks without storage, %llu exits of "
				"tasks never seen born, %llu unaccounted, %llu skipped runs%s\n",
				s->dropped, s->storage_failed, s->unknown_exits, gaps, misses, log.write_failed ? ", write failed" : "");
			exit_code = EXIT_HOLE;
		} else if (WIFEXITED(status)) {
			exit_code = WEXITSTATUS(status);
		} else {
			exit_code = 128 + WTERMSIG(status);
		}
	}

cleanup:
	ring_buffer__free(ring);
	if (log.file)
		fclose(log.file);
	for (int i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	recorder_bpf__destroy(skel);
	return exit_code;
}
