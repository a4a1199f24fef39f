// See proc_reader.h.
#include "proc_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <unordered_set>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace pidgen_native {
namespace {

// Reads a whole file relative to dirfd. /proc files report size 0, so read
// until EOF; most fit in the first 4 KiB, cmdline can be megabytes.
FileRead ReadAt(int dirfd, const char* name) {
  FileRead result;
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    result.err = errno;
    return result;
  }
  char chunk[4096];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n > 0) {
      result.bytes.append(chunk, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // ESRCH: the task died after open; what was read is not trustworthy.
      result.err = errno;
      result.bytes.clear();
    }
    break;
  }
  close(fd);
  return result;
}

bool ParseTid(const char* name, int32_t* tid) {
  char* end = nullptr;
  long value = strtol(name, &end, 10);
  if (end == name || *end != '\0' || value <= 0 || value > INT32_MAX) return false;
  *tid = static_cast<int32_t>(value);
  return true;
}

// Lists task/ once: every tid it shows goes to `listed`, and each one not
// in `seen` yet to `fresh` (and into `seen`).
int ListTids(DIR* dir, std::unordered_set<int32_t>* seen, std::vector<int32_t>* listed, std::vector<int32_t>* fresh) {
  rewinddir(dir);
  errno = 0;
  while (dirent* entry = readdir(dir)) {
    int32_t tid;
    if (!ParseTid(entry->d_name, &tid)) continue;
    listed->push_back(tid);
    if (seen->insert(tid).second) fresh->push_back(tid);
  }
  return errno;
}

bool Gone(int err) { return err == ENOENT || err == ESRCH; }

// Why task/ is listed again when a listed thread vanished: a listing of
// task/ can silently skip live threads. proc_task_readdir() walks the
// thread list from the last thread it emitted; if that thread exits during
// the walk, next_tid() ends the getdents() call early, and the next call
// finds its place by index instead (first_tid()), too far on, since the
// thread list lost entries ahead of it. That skip needs a thread the
// listing showed to be gone once the listing is done, so a listing is
// trusted only when every thread it showed is still there afterwards:
// newcomers are checked by reading their stat, the others by a lookup.
// Otherwise task/ is listed again, and only newcomers are read. Each round
// is triggered by another exit during a listing; the bound only stops a
// process that churns threads faster than it can be listed, and then what
// was read is still returned.
constexpr int kThreadListRounds = 32;

void ReadThreads(int process_dirfd, ProcessRead* process) {
  int taskfd = openat(process_dirfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (taskfd < 0) {
    process->threads_err = errno;
    return;
  }
  DIR* dir = fdopendir(taskfd);  // takes ownership of taskfd
  if (dir == nullptr) {
    process->threads_err = errno;
    close(taskfd);
    return;
  }
  std::unordered_set<int32_t> seen;
  char path[40];
  for (int round = 0; round < kThreadListRounds; round++) {
    std::vector<int32_t> listed;
    std::vector<int32_t> fresh;
    int err = ListTids(dir, &seen, &listed, &fresh);
    if (err != 0) {
      process->threads_err = err;
      break;
    }
    bool vanished = false;
    for (int32_t tid : fresh) {
      snprintf(path, sizeof path, "task/%d/stat", tid);
      ThreadRead thread;
      thread.tid = tid;
      thread.stat = ReadAt(process_dirfd, path);
      vanished = vanished || Gone(thread.stat.err);
      process->threads.push_back(std::move(thread));
    }
    if (!vanished && round > 0) {
      std::unordered_set<int32_t> newcomers(fresh.begin(), fresh.end());
      for (int32_t tid : listed) {
        if (newcomers.count(tid) != 0) continue;
        snprintf(path, sizeof path, "task/%d", tid);
        if (faccessat(process_dirfd, path, F_OK, 0) != 0 && Gone(errno)) {
          vanished = true;
          break;
        }
      }
    }
    if (!vanished) break;
  }
  closedir(dir);
}

}  // namespace

std::vector<int32_t> ListPids(const std::string& proc_root, int* err) {
  std::vector<int32_t> pids;
  *err = 0;
  DIR* dir = opendir(proc_root.c_str());
  if (dir == nullptr) {
    *err = errno;
    return pids;
  }
  errno = 0;
  while (dirent* entry = readdir(dir)) {
    // Only canonical decimal names: "0012" or "+12" are not PIDs.
    int32_t pid;
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9' || !ParseTid(entry->d_name, &pid)) continue;
    pids.push_back(pid);
  }
  *err = errno;
  closedir(dir);
  if (*err != 0) pids.clear();
  std::sort(pids.begin(), pids.end());
  return pids;
}

std::vector<ProcessRead> ReadProcesses(const std::string& proc_root, const std::vector<int32_t>& pids,
                                       const ReadOptions& options) {
  std::vector<ProcessRead> results;
  results.reserve(pids.size());
  int rootfd = open(proc_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char name[16];
  for (int32_t pid : pids) {
    ProcessRead process;
    process.pid = pid;
    if (rootfd < 0) {
      process.open_err = errno;
      results.push_back(std::move(process));
      continue;
    }
    snprintf(name, sizeof name, "%d", pid);
    int dirfd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
      process.open_err = errno;
      results.push_back(std::move(process));
      continue;
    }
    // pidfd before the reads: if the stat read through dirfd succeeds after
    // it, the dirfd's process held `pid` the whole time, so the pidfd names
    // that same process and not a successor.
    if (options.pidfd) {
      int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
      if (pidfd < 0) {
        process.pidfd_err = errno;
      } else {
        struct stat st;
        if (fstat(pidfd, &st) == 0) {
          process.pidfd_err = 0;
          process.pidfd_ino = st.st_ino;
        } else {
          process.pidfd_err = errno;
        }
        close(pidfd);
      }
    }
    if (options.stat) process.stat = ReadAt(dirfd, "stat");
    if (options.status) process.status = ReadAt(dirfd, "status");
    if (options.cmdline) process.cmdline = ReadAt(dirfd, "cmdline");
    if (options.threads) ReadThreads(dirfd, &process);
    close(dirfd);
    results.push_back(std::move(process));
  }
  if (rootfd >= 0) close(rootfd);
  return results;
}

}  // namespace pidgen_native
