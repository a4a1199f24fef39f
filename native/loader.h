// Loader for bpf/pidgen.bpf.c: open -> configure -> load -> attach, one
// attach point per call, plus map reads. Mechanism only: which attach points
// to try, in which order, and what a counter means is decided in TypeScript.
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
  std::string target;  // attach point or map name
  int err;             // positive errno
  std::string log;     // libbpf/verifier lines captured during the step
};

struct NamespaceCounter {
  uint32_t inum;
  pidgen_ns_counter counter;
};

class Guard {
 public:
  // Loads only the program for `attach` ("fexit", "tp_btf" or "raw_tp").
  // Returns nullptr and fills `error` when any step fails; nothing stays
  // loaded then.
  static Guard* Open(const std::string& attach, bool verbose, LoaderError* error);
  ~Guard();

  const std::string& attach() const { return attach_; }
  bool closed() const { return skel_ == nullptr; }
  void Close();

  bool ReadAll(std::vector<NamespaceCounter>* out, LoaderError* error) const;
  // false with error->err == ENOENT when the namespace has no record.
  bool Read(uint32_t inum, pidgen_ns_counter* out, LoaderError* error) const;
  // Creates the record only if the programs have not made one yet.
  // Returns true if the seed was stored, false if a record already existed.
  bool Seed(uint32_t inum, uint32_t last_nr, bool* stored, LoaderError* error) const;
  pidgen_stats Stats() const;

  // Allocation log: which namespace's allocations the programs write to the
  // ring (0: none), and a non-blocking drain of every record there is.
  void SetLogNamespace(uint32_t inum);
  bool DrainLog(std::string* records, LoaderError* error);

 private:
  Guard(struct pidgen* skel, std::string attach) : skel_(skel), attach_(std::move(attach)) {}
  struct pidgen* skel_;
  struct ring_buffer* log_ = nullptr;
  std::string drained_;  // the ring's callback appends here during DrainLog
  std::string attach_;
};

// Name of an errno ("EPERM"), or "E<n>" when unknown.
std::string ErrnoName(int err);

// CLOCK_BOOTTIME in nanoseconds: the clock the kernel stamps start times
// with, and the one trace tools use. Node has no binding for it.
uint64_t BoottimeNs();

// libbpf's own version, for `pidgen doctor`.
std::string LibbpfVersion();

}  // namespace pidgen_native
