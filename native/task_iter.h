// Loader for bpf/task_iter.bpf.c: the fast snapshot source. Loads one of its
// two programs (sleepable with argv, or plain), attaches it as an iterator,
// and reads every record per run. Mechanism only; src/iter/ parses records.
#pragma once

#include <string>

#include "loader.h"

struct task_iter;  // generated skeleton (task_iter.skel.h)
struct bpf_link;

namespace pidgen_native {

class TaskIterator {
 public:
  enum class Program {
    kPlain,      // iter/task: every field through BPF_CORE_READ, no argv
    kSleepable,  // iter.s/task: direct loads, copies argv (5.18+)
    kMinimal,    // pidgen bench's yardstick: a fixed record, nothing else
  };
  static TaskIterator* Open(Program program, bool verbose, LoaderError* error);
  // The iterator `pidgen pin` left in dir (`iter` link, `iter_bss` map);
  // loads nothing.
  static TaskIterator* OpenPinned(const std::string& dir, bool sleepable, LoaderError* error);
  ~TaskIterator();

  // Pins the iterator link and its settings map under dir.
  bool Pin(const std::string& dir, LoaderError* error);

  bool sleepable() const { return sleepable_; }
  // One pass over every task of the reader's PID namespace: the packed
  // records the program wrote (options: PIDGEN_ITER_*).
  bool Read(unsigned int options, std::string* out, LoaderError* error);
  void Close();

 private:
  TaskIterator() = default;
  struct task_iter* skel_ = nullptr;  // loaded here, or null when pinned
  struct bpf_link* link_ = nullptr;
  int link_fd_ = -1;       // the iterator link (skeleton-owned unless pinned)
  int bss_fd_ = -1;        // pinned only
  unsigned int* options_ = nullptr;  // iter_options in the mmapped .bss
  size_t options_map_size_ = 0;      // pinned only: our own mmap
  bool sleepable_ = false;
};

}  // namespace pidgen_native
