/*
 * population: the task population `pidgen bench` scans.
 *
 * Usage: population PROCESSES THREADS_PER_PROCESS
 *
 * Makes PROCESSES processes (itself plus PROCESSES-1 forked children), each
 * with THREADS_PER_PROCESS tasks (its main thread plus THREADS_PER_PROCESS-1
 * pthreads), all asleep in pause(). When every task exists it prints
 *   ready processes=<P> tasks=<P*T>
 * on stdout and sleeps until it is killed.
 *
 * Meant to run inside a child PID namespace (unshare -pfm --mount-proc):
 * when the namespace's PID 1 exits, the kernel kills every task in it
 * (zap_pid_ns_processes), so cleanup needs nothing from this program. The
 * children also ask for SIGKILL when this process dies (PR_SET_PDEATHSIG),
 * for a run outside a namespace.
 *
 * 20,000 tasks are 20,000 thread stacks: threads get a 64 KiB stack (the
 * default is 8 MiB of address space each) and touch one page of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define THREAD_STACK_BYTES (64 * 1024)

static void *sleeper(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

/* Starts count pthreads; 0, or the errno of the first that failed. */
static int start_threads(long count) {
  pthread_attr_t attr;
  int err = pthread_attr_init(&attr);
  if (err) return err;
  err = pthread_attr_setstacksize(&attr, THREAD_STACK_BYTES);
  if (!err) err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (long i = 0; i < count && !err; i++) {
    pthread_t thread;
    err = pthread_create(&thread, &attr, sleeper, NULL);
    if (!err) pthread_setname_np(thread, "pgbench-thread");
  }
  pthread_attr_destroy(&attr);
  return err;
}

static long parse_count(const char *text, const char *what, long max) {
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno || end == text || *end || value < 1 || value > max) {
    fprintf(stderr, "population: %s must be an integer from 1 to %ld, got '%s'\n", what, max, text);
    exit(2);
  }
  return value;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: population PROCESSES THREADS_PER_PROCESS\n");
    return 2;
  }
  long processes = parse_count(argv[1], "PROCESSES", 1000000);
  long threads = parse_count(argv[2], "THREADS_PER_PROCESS", 10000);

  /* Each child writes one byte when all its threads run: '.' or the errno. */
  int ready[2];
  if (pipe(ready) != 0) {
    fprintf(stderr, "population: pipe: %s\n", strerror(errno));
    return 1;
  }
  pid_t parent = getpid();
  for (long i = 1; i < processes; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      /* EAGAIN here is pid_max (of this namespace or an ancestor),
       * kernel.threads-max or RLIMIT_NPROC. */
      fprintf(stderr, "population: fork of process %ld of %ld failed: %s\n", i + 1, processes, strerror(errno));
      return 1;
    }
    if (pid == 0) {
      close(ready[0]);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1); /* the parent died before prctl */
      prctl(PR_SET_NAME, "pgbench-proc");
      int err = start_threads(threads - 1);
      char byte = err ? (char)err : '.';
      if (write(ready[1], &byte, 1) != 1) _exit(1);
      close(ready[1]);
      for (;;) pause();
    }
  }
  close(ready[1]);
  int err = start_threads(threads - 1);
  if (err) {
    fprintf(stderr, "population: pthread_create in process 1: %s\n", strerror(err));
    return 1;
  }
  for (long got = 1; got < processes;) {
    char byte;
    ssize_t n = read(ready[0], &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) {
      fprintf(stderr, "population: a child died before it was ready (%ld of %ld ready)\n", got, processes);
      return 1;
    }
    if (byte != '.') {
      fprintf(stderr, "population: pthread_create in a child failed: %s\n", strerror((unsigned char)byte));
      return 1;
    }
    got++;
  }
  close(ready[0]);
  printf("ready processes=%ld tasks=%ld\n", processes, processes * threads);
  fflush(stdout);
  for (;;) pause();
}
