// Loader for bpf/pidgen.bpf.c: open -> configure -> load -> attach, one
// attach point per call; or the same maps opened from bpffs pins. Plus map
// reads. Mechanism only: which attach points to try, in which order, and
// what a counter means is decided in TypeScript.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "pidgen.h"
}

struct pidgen;       // generated skeleton (pidgen.skel.h)
struct ring_buffer;  // libbpf

namespace pidgen_native {

// A failed step: which operation, on what, and the errno. The N-API layer
// turns it into the TS-defined PidgenError.
struct LoaderError {
  std::string op;      // e.g. "load", "attach", "map lookup"
  std::string target;  // attach point, map name or path
  int err;             // positive errno
  std::string log;     // libbpf/verifier lines captured during the step
};

struct NamespaceCounter {
  uint32_t inum;
  pidgen_ns_counter counter;
};

// The .bss the programs share with user space: health counters and the
// namespace being logged. Same layout as the skeleton's pidgen__bss.
struct SharedState {
  pidgen_stats stats;
  uint32_t log_inum;
};

class Guard {
 public:
  // Loads only the program for `attach` ("fexit", "tp_btf" or "raw_tp").
  // Returns nullptr and fills `error` when any step fails; nothing stays
  // loaded then.
  static Guard* Open(const std::string& attach, bool verbose, LoaderError* error);
  // Opens the maps `pidgen pin` left in `dir`; loads nothing. Refuses a pin
  // of another layout version (error->err = EPROTO).
  static Guard* OpenPinned(const std::string& dir, LoaderError* error);
  // Reads the meta record of a pin directory without opening anything else.
  static bool ReadPinnedMeta(const std::string& dir, pidgen_meta* meta, LoaderError* error);
  ~Guard();

  const std::string& attach() const { return attach_; }
  bool pinned() const { return pinned_; }
  const pidgen_meta& meta() const { return meta_; }
  void Close();

  // Pins link and maps under `dir` (which must exist), so the counter keeps
  // counting after this process exits. On failure nothing stays pinned.
  bool Pin(const std::string& dir, LoaderError* error);
  // Records in the meta map whether a task iterator is pinned beside it.
  bool SetPinnedIterator(unsigned int iter_flags, LoaderError* error);

  bool ReadAll(std::vector<NamespaceCounter>* out, LoaderError* error) const;
  // false with error->err == ENOENT when the namespace has no record.
  bool Read(uint32_t inum, pidgen_ns_counter* out, LoaderError* error) const;
  // Creates the record only if the programs have not made one yet.
  bool Seed(uint32_t inum, uint32_t last_nr, bool* stored, LoaderError* error) const;
  pidgen_stats Stats() const;

  // Allocation log: which namespace's allocations the programs write to the
  // ring (0: none), and a non-blocking drain of every record there is.
  void SetLogNamespace(uint32_t inum);
  bool DrainLog(std::string* records, LoaderError* error);

 private:
  Guard() = default;
  bool StartLogReader(LoaderError* error);

  struct pidgen* skel_ = nullptr;  // set when loaded here
  // Map fds: the skeleton's when loaded here, our own when opened from pins.
  int ns_fd_ = -1;
  int log_fd_ = -1;
  int meta_fd_ = -1;
  int bss_fd_ = -1;
  SharedState* shared_ = nullptr;  // the mmapped .bss
  size_t shared_size_ = 0;         // mmap length when we mapped it ourselves
  struct ring_buffer* log_ = nullptr;
  std::string drained_;  // the ring's callback appends here during DrainLog
  std::string attach_;
  bool pinned_ = false;
  pidgen_meta meta_ = {};
};

// Routes libbpf's messages on this thread into `sink` (and to stderr when
// verbose) for the lifetime of the object, so a refused load says why
// without printing.
class LogCapture {
 public:
  LogCapture(std::string* sink, bool verbose);
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
};

// Blocks every signal on this thread for its lifetime. The verifier gives
// up with EAGAIN when a signal is pending, and a profiler (SIGPROF) or a
// tracer can keep one pending often enough to exhaust libbpf's retries.
// Blocked signals wait (milliseconds) or go to another thread.
class SignalBlock {
 public:
  SignalBlock();
  ~SignalBlock();
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;

 private:
  unsigned char saved_[128];  // a sigset_t, without pulling <signal.h> into every includer
};

// Name of an errno ("EPERM"), or "E<n>" when unknown.
std::string ErrnoName(int err);

// CLOCK_BOOTTIME in nanoseconds: the clock the kernel stamps start times
// with, and the one trace tools use. Node has no binding for it.
uint64_t BoottimeNs();

// libbpf's own version, for `pidgen doctor`.
std::string LibbpfVersion();

}  // namespace pidgen_native
