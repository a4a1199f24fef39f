/*
 * ref-walker: the cost of /proc itself, for `pidgen bench`.
 *
 * Usage: ref-walker [--no-threads] [--no-pidfd] [PROC_ROOT]
 *
 * Reads exactly what pidgen's procfs source reads, with the same syscalls as
 * native/proc_reader.cc, and parses nothing: list PROC_ROOT (default /proc);
 * then for each numeric entry open /proc/<pid> as a directory fd,
 * pidfd_open + fstat + close (the pidfs inode; --no-pidfd skips it, as pidgen
 * does before 6.9), read `stat`, `status` and `cmdline` through that fd in
 * 4 KiB reads until EOF, list `task/` and read each `task/<tid>/stat`.
 * Tasks that vanish mid-walk are skipped, as pidgen skips them.
 *
 * Prints one JSON line:
 *   {"walkNs":N,"processes":P,"tasks":T,"bytes":B}
 * where walkNs is CLOCK_MONOTONIC time of the walk alone (no exec, no exit).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static uint64_t total_bytes;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whole file through dirfd, like ReadAt in native/proc_reader.cc; 0 or errno. */
static int read_at(int dirfd, const char *name) {
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char chunk[4096];
  int err = 0;
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n > 0) {
      total_bytes += (uint64_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    break;
  }
  close(fd);
  return err;
}

static int parse_number(const char *name, long *value) {
  char *end = NULL;
  long n = strtol(name, &end, 10);
  if (end == name || *end != '\0' || n <= 0 || n > INT32_MAX) return 0;
  *value = n;
  return 1;
}

/* Numeric entries of a directory stream, in readdir order. */
static long *list_numbers(DIR *dir, size_t *count) {
  size_t cap = 1024, n = 0;
  long *numbers = malloc(cap * sizeof *numbers);
  if (!numbers) {
    perror("ref-walker: malloc");
    exit(1);
  }
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    long value;
    if (!parse_number(entry->d_name, &value)) continue;
    if (n == cap) {
      cap *= 2;
      numbers = realloc(numbers, cap * sizeof *numbers);
      if (!numbers) {
        perror("ref-walker: realloc");
        exit(1);
      }
    }
    numbers[n++] = value;
  }
  *count = n;
  return numbers;
}

/* Reads task/<tid>/stat for every thread; returns how many were read. */
static long read_threads(int process_dirfd) {
  int taskfd = openat(process_dirfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (taskfd < 0) return 0;
  DIR *dir = fdopendir(taskfd);
  if (!dir) {
    close(taskfd);
    return 0;
  }
  size_t count;
  long *tids = list_numbers(dir, &count);
  long read = 0;
  char path[40];
  for (size_t i = 0; i < count; i++) {
    snprintf(path, sizeof path, "task/%ld/stat", tids[i]);
    if (read_at(process_dirfd, path) == 0) read++;
  }
  free(tids);
  closedir(dir);
  return read;
}

int main(int argc, char **argv) {
  int threads = 1, pidfd = 1;
  const char *proc_root = "/proc";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--no-threads") == 0) threads = 0;
    else if (strcmp(argv[i], "--no-pidfd") == 0) pidfd = 0;
    else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: ref-walker [--no-threads] [--no-pidfd] [PROC_ROOT]\n");
      return 2;
    } else proc_root = argv[i];
  }

  int64_t start = now_ns();
  int rootfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    fprintf(stderr, "ref-walker: open %s: %s\n", proc_root, strerror(errno));
    return 1;
  }
  /* pidgen lists /proc with its own readdir, then opens by number. */
  DIR *listing = opendir(proc_root);
  if (!listing) {
    fprintf(stderr, "ref-walker: opendir %s: %s\n", proc_root, strerror(errno));
    return 1;
  }
  size_t count;
  long *pids = list_numbers(listing, &count);
  closedir(listing);

  long processes = 0, tasks = 0;
  char name[16];
  for (size_t i = 0; i < count; i++) {
    snprintf(name, sizeof name, "%ld", pids[i]);
    int dirfd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) continue; /* gone since the listing */
    if (pidfd) {
      int fd = (int)syscall(SYS_pidfd_open, (pid_t)pids[i], 0);
      if (fd >= 0) {
        struct stat st;
        (void)fstat(fd, &st);
        close(fd);
      }
    }
    int gone = read_at(dirfd, "stat") != 0;
    gone |= read_at(dirfd, "status") != 0;
    gone |= read_at(dirfd, "cmdline") != 0;
    long thread_count = threads ? read_threads(dirfd) : 0;
    close(dirfd);
    if (gone) continue;
    processes++;
    tasks += thread_count > 0 ? thread_count : 1;
  }
  close(rootfd);
  free(pids);
  int64_t walk_ns = now_ns() - start;

  printf("{\"walkNs\":%lld,\"processes\":%ld,\"tasks\":%ld,\"bytes\":%llu}\n", (long long)walk_ns, processes, tasks,
         (unsigned long long)total_bytes);
  return 0;
}
