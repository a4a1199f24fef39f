// The /proc read primitive: every file of one process read through one
// /proc/<pid> directory fd. The fd pins that process's `struct pid`; if the
// process dies and its number goes to a new task, reads through the old fd
// fail (ENOENT/ESRCH) instead of returning the new task's data, so one entry
// never mixes two tasks. Node has no openat(), hence this primitive; it reads
// a batch of processes per call because it is the snapshot's hot path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pidgen_native {

// A file read, or the errno that stopped it (0 = read).
struct FileRead {
  int err = 0;
  std::string bytes;
};

struct ThreadRead {
  int32_t tid = 0;
  FileRead stat;
};

struct ProcessRead {
  int32_t pid = 0;
  int open_err = 0;  // opening /proc/<pid> itself failed: nothing else was tried
  FileRead stat;
  FileRead status;
  FileRead cmdline;
  int threads_err = 0;  // listing task/ failed
  std::vector<ThreadRead> threads;
  int pidfd_err = -1;   // -1: not asked; 0: pidfd_ino is valid
  uint64_t pidfd_ino = 0;
};

struct ReadOptions {
  bool stat = true;
  bool threads = true;
  bool cmdline = true;
  bool status = true;
  bool pidfd = false;  // pidfd_open + fstat: the pidfs inode (6.9+)
};

// The numeric entries of proc_root (the processes it lists), ascending, or
// the errno of opening or reading it in *err. Native because the bpf-iter
// source checks /proc's list on every pass, and readdirSync() makes one JS
// string per entry.
std::vector<int32_t> ListPids(const std::string& proc_root, int* err);

// Reads each pid's stat, status, cmdline, task/*/stat (and pidfs inode)
// through its own directory fd under proc_root.
std::vector<ProcessRead> ReadProcesses(const std::string& proc_root, const std::vector<int32_t>& pids,
                                       const ReadOptions& options);

}  // namespace pidgen_native
