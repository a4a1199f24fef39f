// libbpf side of the addon. See loader.h.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

#include "pidgen.skel.h"

namespace pidgen_native {
namespace {

// libbpf prints through one process-wide callback. We capture what it says
// during a step so a refused attach point falls through silently (fexit is
// refused with EPERM on many hosts, and that is not worth a warning), yet the
// verifier's words are still there for the error when every point fails.
std::mutex log_mutex;
std::string* log_sink = nullptr;
bool log_verbose = false;

int CaptureLibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  char line[1024];
  vsnprintf(line, sizeof line, format, args);
  // Verbose shows warnings and info; libbpf's debug level is a firehose.
  if ((log_verbose && level != LIBBPF_DEBUG) || (level == LIBBPF_WARN && log_sink == nullptr)) fputs(line, stderr);
  if (log_sink != nullptr && level != LIBBPF_DEBUG) {
    log_sink->append(line);
    // Keep the tail: the verifier's last lines say why.
    if (log_sink->size() > 8192) log_sink->erase(0, log_sink->size() - 8192);
  }
  return 0;
}

class LogCapture {
 public:
  LogCapture(std::string* sink, bool verbose) : lock_(log_mutex) {
    log_sink = sink;
    log_verbose = verbose;
    libbpf_set_print(CaptureLibbpfPrint);
  }
  ~LogCapture() {
    log_sink = nullptr;
    log_verbose = false;
  }

 private:
  std::lock_guard<std::mutex> lock_;
};

bpf_program* ProgramFor(pidgen* skel, const std::string& attach) {
  if (attach == "fexit") return skel->progs.pidgen_fexit;
  if (attach == "tp_btf") return skel->progs.pidgen_tp_btf;
  if (attach == "raw_tp") return skel->progs.pidgen_raw_tp;
  return nullptr;
}

std::string AttachTarget(const std::string& attach) {
  if (attach == "fexit") return "fexit/alloc_pid";
  return attach + "/task_newtask";
}

// Appends each allocation record to the drain's output, as raw bytes: TS
// reads them at fixed offsets (struct pidgen_alloc_event, bpf/pidgen.h).
int AppendRecord(void* ctx, void* data, size_t size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size);
  return 0;
}

}  // namespace

uint64_t BoottimeNs() {
  timespec now;
  clock_gettime(CLOCK_BOOTTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
  std::string unknown("E");
  unknown += std::to_string(err);
  return unknown;
}

std::string LibbpfVersion() {
  return std::to_string(libbpf_major_version()) + "." + std::to_string(libbpf_minor_version());
}

Guard* Guard::Open(const std::string& attach, bool verbose, LoaderError* error) {
  std::string log;
  LogCapture capture(&log, verbose);
  const std::string target = AttachTarget(attach);
  auto fail = [&](const char* op, int err, pidgen* skel) -> Guard* {
    pidgen::destroy(skel);
    *error = LoaderError{op, target, err < 0 ? -err : err, log};
    return nullptr;
  };

  // Open: parse the embedded object; nothing is in the kernel yet.
  pidgen* skel = pidgen::open();
  if (skel == nullptr) return fail("open", errno, nullptr);

  // Configure: load only the program for the requested attach point.
  bpf_program* chosen = ProgramFor(skel, attach);
  if (chosen == nullptr) return fail("select attach point", EINVAL, skel);
  bpf_program* all[] = {skel->progs.pidgen_fexit, skel->progs.pidgen_tp_btf,
                        skel->progs.pidgen_raw_tp};
  for (bpf_program* prog : all) bpf_program__set_autoload(prog, prog == chosen);

  // Load: verify the program and create the maps.
  int err = pidgen::load(skel);
  if (err != 0) return fail("load", err, skel);

  // Attach: from here on every PID allocation is counted.
  bpf_link* link = bpf_program__attach(chosen);
  if (link == nullptr) return fail("attach", errno, skel);
  if (attach == "fexit") skel->links.pidgen_fexit = link;
  else if (attach == "tp_btf") skel->links.pidgen_tp_btf = link;
  else skel->links.pidgen_raw_tp = link;

  // Log reader: each drain appends the records to the guard's buffer.
  Guard* guard = new Guard(skel, attach);
  guard->log_ = ring_buffer__new(bpf_map__fd(skel->maps.pidgen_log), AppendRecord, &guard->drained_, nullptr);
  if (guard->log_ == nullptr) {
    int err = errno;
    delete guard;  // destroys the skeleton too
    *error = LoaderError{"ring_buffer__new", "pidgen_log", err, log};
    return nullptr;
  }
  return guard;
}

Guard::~Guard() { Close(); }

void Guard::Close() {
  // Destroying the skeleton detaches the link and closes every fd; the
  // kernel frees the programs and maps once no fd or pin refers to them.
  if (log_ != nullptr) ring_buffer__free(log_);
  log_ = nullptr;
  if (skel_ != nullptr) pidgen::destroy(skel_);
  skel_ = nullptr;
}

void Guard::SetLogNamespace(uint32_t inum) {
  // .bss is mmapped: the programs see the store on their next run.
  __atomic_store_n(&skel_->bss->log_inum, inum, __ATOMIC_SEQ_CST);
}

bool Guard::DrainLog(std::string* records, LoaderError* error) {
  drained_.clear();
  int n = ring_buffer__consume(log_);
  records->swap(drained_);
  if (n < 0) {
    *error = LoaderError{"ring buffer consume", "pidgen_log", -n, ""};
    return false;
  }
  return true;
}

bool Guard::ReadAll(std::vector<NamespaceCounter>* out, LoaderError* error) const {
  const int fd = bpf_map__fd(skel_->maps.pidgen_ns);
  const uint32_t capacity = bpf_map__max_entries(skel_->maps.pidgen_ns);
  std::vector<uint32_t> keys(capacity);
  std::vector<pidgen_ns_counter> values(capacity);
  out->clear();

  // One syscall for the whole map where the kernel has batch ops (5.6+).
  uint32_t out_batch = 0;
  uint32_t count = capacity;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int err = bpf_map_lookup_batch(fd, nullptr, &out_batch, keys.data(), values.data(), &count, &opts);
  // ENOENT means "this batch reached the end": count is still valid.
  if (err == 0 || errno == ENOENT) {
    for (uint32_t i = 0; i < count; i++) out->push_back({keys[i], values[i]});
    // The first batch asks for max_entries, so it is every entry there is.
    return true;
  }
  if (errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP) {
    *error = LoaderError{"map lookup batch", "pidgen_ns", errno, ""};
    return false;
  }

  // Fallback: walk keys one by one. A key deleted under us is skipped.
  uint32_t key = 0;
  uint32_t next = 0;
  uint32_t* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    pidgen_ns_counter value;
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) out->push_back({next, value});
    key = next;
    previous = &key;
  }
  if (errno != ENOENT) {
    *error = LoaderError{"map get next key", "pidgen_ns", errno, ""};
    return false;
  }
  return true;
}

bool Guard::Read(uint32_t inum, pidgen_ns_counter* out, LoaderError* error) const {
  const int fd = bpf_map__fd(skel_->maps.pidgen_ns);
  if (bpf_map_lookup_elem(fd, &inum, out) != 0) {
    *error = LoaderError{"map lookup", "pidgen_ns", errno, ""};
    return false;
  }
  return true;
}

bool Guard::Seed(uint32_t inum, uint32_t last_nr, bool* stored, LoaderError* error) const {
  const int fd = bpf_map__fd(skel_->maps.pidgen_ns);
  pidgen_ns_counter seed = {};
  seed.last_nr = last_nr;
  seed.flags = PIDGEN_NS_SEEDED;
  // BPF_NOEXIST: if the programs already recorded an allocation here, their
  // record (which may carry a conservative bump) wins over our seed.
  if (bpf_map_update_elem(fd, &inum, &seed, BPF_NOEXIST) == 0) {
    *stored = true;
    return true;
  }
  if (errno == EEXIST) {
    *stored = false;
    return true;
  }
  *error = LoaderError{"map update (seed)", "pidgen_ns", errno, ""};
  return false;
}

pidgen_stats Guard::Stats() const { return skel_->bss->stats; }

}  // namespace pidgen_native
