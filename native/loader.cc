// libbpf side of the addon. See loader.h.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "pidgen.skel.h"

namespace pidgen_native {

// A pinned .bss is mapped by hand, so its layout must be the skeleton's.
static_assert(sizeof(SharedState) == sizeof(*pidgen{}.bss), "SharedState must match the skeleton's .bss");
// TS reads log records at fixed offsets (src/model/layout.ts LOG_EVENT).
static_assert(sizeof(pidgen_log_event) == 64, "pidgen_log_event must stay 64 bytes without padding");

namespace {

// libbpf prints through one process-wide callback. We capture what it says
// during a step so a refused attach point falls through silently (fexit is
// refused with EPERM on many hosts, and that is not worth a warning), yet the
// verifier's words are still there for the error when every point fails.
// libbpf calls it on the thread doing the load, so the sink is per thread:
// the task iterator can load on a worker thread while the guard loads on
// the main one.
thread_local std::string* log_sink = nullptr;
thread_local bool log_verbose = false;

int CaptureLibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  // One call can carry a whole verifier log (libbpf prints it with a single
  // "%s"), and its reason is in the last lines: format it at full length, a
  // fixed buffer would keep only the first lines.
  va_list measure;
  va_copy(measure, args);
  int length = vsnprintf(nullptr, 0, format, measure);
  va_end(measure);
  if (length < 0) return 0;
  std::string formatted(static_cast<size_t>(length) + 1, '\0');
  vsnprintf(formatted.data(), formatted.size(), format, args);
  formatted.resize(static_cast<size_t>(length));
  const char* line = formatted.c_str();
  // Verbose shows warnings and info; libbpf's debug level is a firehose.
  if ((log_verbose && level != LIBBPF_DEBUG) || (level == LIBBPF_WARN && log_sink == nullptr)) fputs(line, stderr);
  if (log_sink != nullptr && level != LIBBPF_DEBUG) {
    log_sink->append(line);
    // Keep the tail: the verifier's last lines say why.
    if (log_sink->size() > 8192) log_sink->erase(0, log_sink->size() - 8192);
  }
  return 0;
}

}  // namespace

static_assert(sizeof(sigset_t) <= 128, "SignalBlock::saved_ must hold a sigset_t");

SignalBlock::SignalBlock() {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, reinterpret_cast<sigset_t*>(saved_));
}

SignalBlock::~SignalBlock() { pthread_sigmask(SIG_SETMASK, reinterpret_cast<sigset_t*>(saved_), nullptr); }

LogCapture::LogCapture(std::string* sink, bool verbose) {
  log_sink = sink;
  log_verbose = verbose;
  libbpf_set_print(CaptureLibbpfPrint);
}

LogCapture::~LogCapture() {
  log_sink = nullptr;
  log_verbose = false;
}

namespace {

struct AttachPoint {
  const char* name;    // what TS passes
  const char* target;  // what errors and bpftool call it
  unsigned int id;     // PIDGEN_ATTACH_*
};
constexpr AttachPoint kAttachPoints[] = {
    {"fexit", PIDGEN_ATTACH_FEXIT_POINT, PIDGEN_ATTACH_FEXIT},
    {"tp_btf", PIDGEN_ATTACH_TP_BTF_POINT, PIDGEN_ATTACH_TP_BTF},
    {"raw_tp", PIDGEN_ATTACH_RAW_TP_POINT, PIDGEN_ATTACH_RAW_TP},
};

const AttachPoint* FindAttach(const std::string& name) {
  for (const AttachPoint& point : kAttachPoints) {
    if (name == point.name) return &point;
  }
  return nullptr;
}

const AttachPoint* FindAttach(unsigned int id) {
  for (const AttachPoint& point : kAttachPoints) {
    if (id == point.id) return &point;
  }
  return nullptr;
}

bpf_program* ProgramFor(pidgen* skel, unsigned int id) {
  if (id == PIDGEN_ATTACH_FEXIT) return skel->progs.pidgen_fexit;
  if (id == PIDGEN_ATTACH_TP_BTF) return skel->progs.pidgen_tp_btf;
  return skel->progs.pidgen_raw_tp;
}

// The exit logger beside each counter program: raw_tp where the counter is
// raw_tp (tp_btf may be what failed), tp_btf otherwise (it loads wherever
// fexit does).
bpf_program* ExitProgramFor(pidgen* skel, unsigned int id) {
  return id == PIDGEN_ATTACH_RAW_TP ? skel->progs.pidgen_exit_raw_tp : skel->progs.pidgen_exit_tp_btf;
}

// Appends each log record to the drain's output, as raw bytes: TS reads
// them at fixed offsets (struct pidgen_log_event, bpf/pidgen.h).
int AppendRecord(void* ctx, void* data, size_t size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size);
  return 0;
}

uint64_t ClockNs(clockid_t clock) {
  timespec now;
  clock_gettime(clock, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000000ull + static_cast<uint64_t>(now.tv_nsec);
}

// Names of the pinned objects inside a pin directory. `pidgen unpin`
// removes exactly these (src/pin/).
constexpr const char* kPinLink = PIDGEN_PIN_LINK;
constexpr const char* kPinExitLink = PIDGEN_PIN_EXIT_LINK;
constexpr const char* kPinNs = PIDGEN_PIN_NS;
constexpr const char* kPinLog = PIDGEN_PIN_LOG;
constexpr const char* kPinBss = PIDGEN_PIN_BSS;
constexpr const char* kPinMeta = PIDGEN_PIN_META;

std::string PinPath(const std::string& dir, const char* name) { return dir + "/" + name; }

}  // namespace

uint64_t BoottimeNs() { return ClockNs(CLOCK_BOOTTIME); }

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
  const AttachPoint* point = FindAttach(attach);
  if (point == nullptr) {
    *error = LoaderError{"select attach point", attach, EINVAL, ""};
    return nullptr;
  }
  auto fail = [&](const char* op, int err, pidgen* skel) -> Guard* {
    pidgen::destroy(skel);
    *error = LoaderError{op, point->target, err < 0 ? -err : err, log};
    return nullptr;
  };

  // Open: parse the embedded object; nothing is in the kernel yet.
  pidgen* skel = pidgen::open();
  if (skel == nullptr) return fail("open", errno, nullptr);

  // Configure: load only the program for the requested attach point, and
  // its exit logger.
  bpf_program* chosen = ProgramFor(skel, point->id);
  bpf_program* exit_logger = ExitProgramFor(skel, point->id);
  bpf_program* all[] = {skel->progs.pidgen_fexit, skel->progs.pidgen_tp_btf, skel->progs.pidgen_raw_tp,
                        skel->progs.pidgen_exit_tp_btf, skel->progs.pidgen_exit_raw_tp};
  for (bpf_program* prog : all) bpf_program__set_autoload(prog, prog == chosen || prog == exit_logger);

  // Load: verify the program and create the maps.
  int err;
  {
    SignalBlock quiet;
    err = pidgen::load(skel);
  }
  if (err != 0) return fail("load", err, skel);

  // Attach: from here on every PID allocation is counted.
  bpf_link* link = bpf_program__attach(chosen);
  if (link == nullptr) return fail("attach", errno, skel);
  if (point->id == PIDGEN_ATTACH_FEXIT) skel->links.pidgen_fexit = link;
  else if (point->id == PIDGEN_ATTACH_TP_BTF) skel->links.pidgen_tp_btf = link;
  else skel->links.pidgen_raw_tp = link;
  // The exit logger closes the snapshot's window end; without it the guard
  // cannot vouch for a window, so its failure fails the open.
  bpf_link* exit_link = bpf_program__attach(exit_logger);
  if (exit_link == nullptr) {
    int saved = errno;
    *error = LoaderError{"attach", bpf_program__section_name(exit_logger), saved, log};
    pidgen::destroy(skel);
    return nullptr;
  }
  if (exit_logger == skel->progs.pidgen_exit_raw_tp) skel->links.pidgen_exit_raw_tp = exit_link;
  else skel->links.pidgen_exit_tp_btf = exit_link;

  Guard* guard = new Guard();
  guard->skel_ = skel;
  guard->ns_fd_ = bpf_map__fd(skel->maps.pidgen_ns);
  guard->log_fd_ = bpf_map__fd(skel->maps.pidgen_log);
  guard->meta_fd_ = bpf_map__fd(skel->maps.pidgen_meta);
  guard->bss_fd_ = bpf_map__fd(skel->maps.bss);
  guard->shared_ = reinterpret_cast<SharedState*>(skel->bss);
  guard->attach_ = point->target;
  guard->meta_ = pidgen_meta{PIDGEN_LAYOUT_VERSION, point->id, ClockNs(CLOCK_BOOTTIME), ClockNs(CLOCK_REALTIME), 0, 0};
  uint32_t zero = 0;
  if (bpf_map_update_elem(guard->meta_fd_, &zero, &guard->meta_, BPF_ANY) != 0 || !guard->StartLogReader(error)) {
    int saved = errno;
    delete guard;  // destroys the skeleton too
    if (error->op.empty()) *error = LoaderError{"map update", "pidgen_meta", saved, log};
    return nullptr;
  }
  return guard;
}

bool Guard::StartLogReader(LoaderError* error) {
  // Each drain appends the records to drained_.
  log_ = ring_buffer__new(log_fd_, AppendRecord, &drained_, nullptr);
  if (log_ == nullptr) {
    *error = LoaderError{"ring_buffer__new", "pidgen_log", errno, ""};
    return false;
  }
  return true;
}

bool Guard::ReadPinnedMeta(const std::string& dir, pidgen_meta* meta, LoaderError* error) {
  const std::string path = PinPath(dir, kPinMeta);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    *error = LoaderError{"open pinned map", path, errno, ""};
    return false;
  }
  uint32_t zero = 0;
  bool ok = bpf_map_lookup_elem(fd, &zero, meta) == 0;
  if (!ok) *error = LoaderError{"map lookup", path, errno, ""};
  close(fd);
  return ok;
}

Guard* Guard::OpenPinned(const std::string& dir, LoaderError* error) {
  Guard* guard = new Guard();
  guard->pinned_ = true;
  auto fail = [&](const char* op, const std::string& target, int err) -> Guard* {
    delete guard;
    *error = LoaderError{op, target, err, ""};
    return nullptr;
  };
  auto get = [&](const char* name, int* fd) -> bool {
    *fd = bpf_obj_get(PinPath(dir, name).c_str());
    return *fd >= 0;
  };
  if (!get(kPinMeta, &guard->meta_fd_)) return fail("open pinned map", PinPath(dir, kPinMeta), errno);
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(guard->meta_fd_, &zero, &guard->meta_) != 0) {
    return fail("map lookup", PinPath(dir, kPinMeta), errno);
  }
  // The other maps' layout is only known for our own version.
  if (guard->meta_.layout_version != PIDGEN_LAYOUT_VERSION) {
    return fail("check pinned layout", PinPath(dir, kPinMeta), EPROTO);
  }
  const AttachPoint* point = FindAttach(guard->meta_.attach);
  guard->attach_ = point != nullptr ? point->target : "unknown";
  if (!get(kPinNs, &guard->ns_fd_)) return fail("open pinned map", PinPath(dir, kPinNs), errno);
  if (!get(kPinLog, &guard->log_fd_)) return fail("open pinned map", PinPath(dir, kPinLog), errno);
  if (!get(kPinBss, &guard->bss_fd_)) return fail("open pinned map", PinPath(dir, kPinBss), errno);
  // .bss is an mmapable array map: map it to share the counters and the
  // logged namespace with the programs, as the skeleton does.
  guard->shared_size_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* mapped = mmap(nullptr, guard->shared_size_, PROT_READ | PROT_WRITE, MAP_SHARED, guard->bss_fd_, 0);
  if (mapped == MAP_FAILED) {
    guard->shared_size_ = 0;
    return fail("mmap", PinPath(dir, kPinBss), errno);
  }
  guard->shared_ = static_cast<SharedState*>(mapped);
  if (!guard->StartLogReader(error)) {
    delete guard;
    return nullptr;
  }
  return guard;
}

bool Guard::SetPinnedIterator(unsigned int iter_flags, LoaderError* error) {
  meta_.iter = iter_flags;
  uint32_t zero = 0;
  if (bpf_map_update_elem(meta_fd_, &zero, &meta_, BPF_ANY) != 0) {
    *error = LoaderError{"map update", "pidgen_meta", errno, ""};
    return false;
  }
  return true;
}

bool Guard::Pin(const std::string& dir, LoaderError* error) {
  if (skel_ == nullptr) {
    *error = LoaderError{"pin", dir, EINVAL, "only a guard loaded by this process can be pinned"};
    return false;
  }
  bpf_link* link = skel_->links.pidgen_fexit ? skel_->links.pidgen_fexit
                   : skel_->links.pidgen_tp_btf ? skel_->links.pidgen_tp_btf
                                                : skel_->links.pidgen_raw_tp;
  bpf_link* exit_link = skel_->links.pidgen_exit_tp_btf ? skel_->links.pidgen_exit_tp_btf : skel_->links.pidgen_exit_raw_tp;
  struct Step {
    const char* name;
    bpf_map* map;
  };
  const Step maps[] = {{kPinMeta, skel_->maps.pidgen_meta},
                       {kPinNs, skel_->maps.pidgen_ns},
                       {kPinLog, skel_->maps.pidgen_log},
                       {kPinBss, skel_->maps.bss}};
  std::vector<std::string> done;
  auto undo = [&](const char* op, const std::string& path, int err) {
    for (const std::string& pinned : done) unlink(pinned.c_str());
    *error = LoaderError{op, path, err < 0 ? -err : err, ""};
    return false;
  };
  // Maps first, the link last: a reader that finds the link finds the maps.
  for (const Step& step : maps) {
    const std::string path = PinPath(dir, step.name);
    int err = bpf_map__pin(step.map, path.c_str());
    if (err != 0) return undo("pin map", path, err);
    done.push_back(path);
  }
  const std::string exit_path = PinPath(dir, kPinExitLink);
  int err = bpf_link__pin(exit_link, exit_path.c_str());
  if (err != 0) return undo("pin link", exit_path, err);
  done.push_back(exit_path);
  const std::string link_path = PinPath(dir, kPinLink);
  err = bpf_link__pin(link, link_path.c_str());
  if (err != 0) return undo("pin link", link_path, err);
  return true;
}

Guard::~Guard() { Close(); }

void Guard::Close() {
  // Destroying the skeleton detaches the link and closes every fd; the
  // kernel frees the programs and maps once no fd or pin refers to them.
  if (log_ != nullptr) ring_buffer__free(log_);
  log_ = nullptr;
  if (skel_ != nullptr) {
    pidgen::destroy(skel_);
    skel_ = nullptr;
  } else {
    if (shared_size_ != 0) munmap(shared_, shared_size_);
    for (int fd : {ns_fd_, log_fd_, meta_fd_, bss_fd_}) {
      if (fd >= 0) close(fd);
    }
  }
  shared_ = nullptr;
  shared_size_ = 0;
  ns_fd_ = log_fd_ = meta_fd_ = bss_fd_ = -1;
}

bool Guard::ReadAll(std::vector<NamespaceCounter>* out, LoaderError* error) const {
  const uint32_t capacity = PIDGEN_MAX_NAMESPACES;
  std::vector<uint32_t> keys(capacity);
  std::vector<pidgen_ns_counter> values(capacity);
  out->clear();

  // One syscall for the whole map where the kernel has batch ops (5.6+).
  uint32_t out_batch = 0;
  uint32_t count = capacity;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int err = bpf_map_lookup_batch(ns_fd_, nullptr, &out_batch, keys.data(), values.data(), &count, &opts);
  // ENOENT means "this batch reached the end": count is still valid. The
  // first batch asks for max_entries, so it is every entry there is.
  if (err == 0 || errno == ENOENT) {
    for (uint32_t i = 0; i < count; i++) out->push_back({keys[i], values[i]});
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
  while (bpf_map_get_next_key(ns_fd_, previous, &next) == 0) {
    pidgen_ns_counter value;
    if (bpf_map_lookup_elem(ns_fd_, &next, &value) == 0) out->push_back({next, value});
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
  if (bpf_map_lookup_elem(ns_fd_, &inum, out) != 0) {
    *error = LoaderError{"map lookup", "pidgen_ns", errno, ""};
    return false;
  }
  return true;
}

bool Guard::Seed(uint32_t inum, uint32_t last_nr, bool* stored, LoaderError* error) const {
  pidgen_ns_counter seed = {};
  seed.last_nr = last_nr;
  seed.flags = PIDGEN_NS_SEEDED;
  // BPF_NOEXIST: if the programs already recorded an allocation here, their
  // record (which may carry a conservative bump) wins over our seed.
  if (bpf_map_update_elem(ns_fd_, &inum, &seed, BPF_NOEXIST) == 0) {
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

pidgen_stats Guard::Stats() const { return shared_->stats; }

void Guard::SetLogNamespace(uint32_t inum) {
  // .bss is mmapped: the programs see the store on their next run.
  __atomic_store_n(&shared_->log_inum, inum, __ATOMIC_SEQ_CST);
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

}  // namespace pidgen_native
