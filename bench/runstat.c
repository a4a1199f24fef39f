/*
 * runstat: runs one command and reports what it cost, for `pidgen bench`.
 *
 * Usage: runstat OUTFILE COMMAND [ARG...]
 *
 * Runs COMMAND with its stdout sent to OUTFILE (truncated; /dev/null to
 * discard) and its stderr inherited, and waits for it. Then prints one JSON
 * line on stdout:
 *   {"wallNs":N,"maxRssKb":K,"exitCode":C,"signal":S}
 * wallNs is CLOCK_MONOTONIC from just before fork() to just after wait4()
 * returned: the whole process, exec and exit included, as a user of the
 * command pays it. maxRssKb is the child's peak resident set (ru_maxrss from
 * wait4). Timing here rather than in Node keeps Node's spawn overhead, which
 * is milliseconds, out of the numbers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: runstat OUTFILE COMMAND [ARG...]\n");
    return 2;
  }
  int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) {
    fprintf(stderr, "runstat: open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  int64_t start = now_ns();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "runstat: fork: %s\n", strerror(errno));
    return 1;
  }
  if (pid == 0) {
    if (dup2(out, STDOUT_FILENO) < 0) _exit(126);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "runstat: exec %s: %s\n", argv[2], strerror(errno));
    _exit(127);
  }
  int status;
  struct rusage usage;
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "runstat: wait4 %d: %s\n", (int)pid, strerror(errno));
      return 1;
    }
  }
  int64_t wall = now_ns() - start;
  close(out);
  printf("{\"wallNs\":%lld,\"maxRssKb\":%ld,\"exitCode\":%d,\"signal\":%d}\n", (long long)wall, usage.ru_maxrss,
         WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return 0;
}
