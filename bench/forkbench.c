/*
 * forkbench: the cost of the fork path, for `pidgen bench`'s guard overhead.
 *
 * Usage: forkbench FORKS [--pin] [--bpf-stats PREFIX]
 *
 * FORKS times: fork(), the child _exit(0)s at once, the parent waitpid()s
 * it. Every fork allocates one PID, so it runs pidgen's programs on the PID
 * allocation path once. Prints one JSON line:
 *   {"forks":N,"totalNs":T,"nsPerFork":T/N}
 * with CLOCK_MONOTONIC time of the loop alone.
 *
 * --pin pins the loop (and so each child, which inherits the mask) to the
 * highest CPU it may run on. On a small VM an unpinned child lands on
 * either CPU and the time per fork swings by tens of percent from run to
 * run; pinned, the guard's cost is less lost in that noise.
 *
 * --bpf-stats PREFIX measures the kernel's own account of the BPF programs
 * whose names start with PREFIX: it turns on run-time statistics for the
 * duration of the loop (BPF_ENABLE_STATS, kernel >= 5.8; released when this
 * process exits, so nothing global is left changed) and adds
 *   "bpfRuns":R,"bpfNs":B
 * the programs' run count and run time during the loop. Statistics cost a
 * little themselves, so this run's nsPerFork is not one to compare.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<linux/bpf.h>)
#include <linux/bpf.h>
#define HAVE_BPF_STATS 1
#endif

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#ifdef HAVE_BPF_STATS
static long sys_bpf(int cmd, union bpf_attr *attr) {
  return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

/* Sums run_cnt and run_time_ns over loaded programs named PREFIX*. */
static int sum_prog_stats(const char *prefix, uint64_t *runs, uint64_t *ns) {
  *runs = 0;
  *ns = 0;
  uint32_t id = 0;
  for (;;) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.start_id = id;
    if (sys_bpf(BPF_PROG_GET_NEXT_ID, &attr) != 0) return errno == ENOENT ? 0 : -errno;
    id = attr.next_id;
    memset(&attr, 0, sizeof attr);
    attr.prog_id = id;
    int fd = (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
    if (fd < 0) continue; /* unloaded meanwhile */
    struct bpf_prog_info info;
    memset(&info, 0, sizeof info);
    memset(&attr, 0, sizeof attr);
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = sizeof info;
    attr.info.info = (uint64_t)(uintptr_t)&info;
    if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) == 0 && strncmp(info.name, prefix, strlen(prefix)) == 0) {
      *runs += info.run_cnt;
      *ns += info.run_time_ns;
    }
    close(fd);
  }
}
#endif

int main(int argc, char **argv) {
  long forks = 0;
  int pin = 0;
  const char *stats_prefix = NULL;
  for (int i = 1; i < argc; i++) {
    char *end = NULL;
    if (strcmp(argv[i], "--pin") == 0) {
      pin = 1;
    } else if (strcmp(argv[i], "--bpf-stats") == 0 && i + 1 < argc) {
      stats_prefix = argv[++i];
    } else {
      forks = strtol(argv[i], &end, 10);
      if (*end != '\0') forks = -1;
    }
  }
  if (forks < 1) {
    fprintf(stderr, "usage: forkbench FORKS [--pin] [--bpf-stats PREFIX]\n");
    return 2;
  }
  if (pin) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
      fprintf(stderr, "forkbench: sched_getaffinity: %s\n", strerror(errno));
      return 1;
    }
    int cpu = CPU_SETSIZE - 1;
    while (cpu > 0 && !CPU_ISSET(cpu, &set)) cpu--;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      fprintf(stderr, "forkbench: sched_setaffinity to CPU %d: %s\n", cpu, strerror(errno));
      return 1;
    }
  }

#ifdef HAVE_BPF_STATS
  int stats_fd = -1;
  uint64_t runs_before = 0, ns_before = 0;
  if (stats_prefix) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.enable_stats.type = BPF_STATS_RUN_TIME;
    stats_fd = (int)sys_bpf(BPF_ENABLE_STATS, &attr);
    if (stats_fd < 0) {
      fprintf(stderr, "forkbench: bpf(BPF_ENABLE_STATS): %s\n", strerror(errno));
      return 1;
    }
    int err = sum_prog_stats(stats_prefix, &runs_before, &ns_before);
    if (err) {
      fprintf(stderr, "forkbench: read BPF program stats: %s\n", strerror(-err));
      return 1;
    }
  }
#else
  if (stats_prefix) {
    fprintf(stderr, "forkbench: built without <linux/bpf.h>: --bpf-stats is not available\n");
    return 1;
  }
#endif

  int64_t start = now_ns();
  for (long i = 0; i < forks; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "forkbench: fork %ld of %ld failed: %s\n", i + 1, forks, strerror(errno));
      return 1;
    }
    if (pid == 0) _exit(0);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        fprintf(stderr, "forkbench: waitpid %d: %s\n", (int)pid, strerror(errno));
        return 1;
      }
    }
  }
  int64_t total = now_ns() - start;

  printf("{\"forks\":%ld,\"totalNs\":%lld,\"nsPerFork\":%.1f", forks, (long long)total, (double)total / (double)forks);
#ifdef HAVE_BPF_STATS
  if (stats_prefix) {
    uint64_t runs_after = 0, ns_after = 0;
    int err = sum_prog_stats(stats_prefix, &runs_after, &ns_after);
    if (err) {
      fprintf(stderr, "forkbench: read BPF program stats: %s\n", strerror(-err));
      return 1;
    }
    printf(",\"bpfRuns\":%llu,\"bpfNs\":%llu", (unsigned long long)(runs_after - runs_before),
           (unsigned long long)(ns_after - ns_before));
    close(stats_fd);
  }
#endif
  printf("}\n");
  return 0;
}
