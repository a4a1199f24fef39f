// See task_iter.h.
#include "task_iter.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "task_iter.skel.h"

namespace pidgen_native {

TaskIterator* TaskIterator::Open(Program program, bool verbose, LoaderError* error) {
  std::string log;
  LogCapture capture(&log, verbose);
  const bool sleepable = program == Program::kSleepable;
  const char* target = sleepable ? "iter.s/task" : "iter/task";
  auto fail = [&](const char* op, int err, task_iter* skel) -> TaskIterator* {
    task_iter::destroy(skel);
    *error = LoaderError{op, target, err < 0 ? -err : err, log};
    return nullptr;
  };

  // Open: parse the embedded object.
  task_iter* skel = task_iter::open();
  if (skel == nullptr) return fail("open", errno, nullptr);

  // Configure: one of the programs.
  bpf_program__set_autoload(skel->progs.pidgen_iter, program == Program::kPlain);
  bpf_program__set_autoload(skel->progs.pidgen_iter_cmdline, sleepable);
  bpf_program__set_autoload(skel->progs.pidgen_iter_minimal, program == Program::kMinimal);

  // Load: the verifier checks it (sleepable iterators need 5.18+ for
  // bpf_copy_from_user_task; older kernels refuse here).
  int err;
  {
    SignalBlock quiet;  // see loader.h: pending signals make the verifier give up
    err = task_iter::load(skel);
  }
  if (err != 0) return fail("load", err, skel);

  // Attach: an iterator link; each read creates a fresh iterator from it.
  bpf_program* prog = sleepable                        ? skel->progs.pidgen_iter_cmdline
                      : program == Program::kMinimal ? skel->progs.pidgen_iter_minimal
                                                     : skel->progs.pidgen_iter;
  bpf_link* link = bpf_program__attach_iter(prog, nullptr);
  if (link == nullptr) return fail("attach", errno, skel);

  TaskIterator* iterator = new TaskIterator();
  iterator->skel_ = skel;
  iterator->link_ = link;
  iterator->link_fd_ = bpf_link__fd(link);
  iterator->options_ = &skel->bss->iter_options;
  iterator->sleepable_ = sleepable;
  return iterator;
}

// Names inside the pin directory; src/pin/ removes exactly these.
constexpr const char* kPinIter = PIDGEN_PIN_ITER;
constexpr const char* kPinIterBss = PIDGEN_PIN_ITER_BSS;

TaskIterator* TaskIterator::OpenPinned(const std::string& dir, bool sleepable, LoaderError* error) {
  TaskIterator* iterator = new TaskIterator();
  iterator->sleepable_ = sleepable;
  auto fail = [&](const char* op, const std::string& target, int err) -> TaskIterator* {
    delete iterator;
    *error = LoaderError{op, target, err, ""};
    return nullptr;
  };
  const std::string link_path = dir + "/" + kPinIter;
  const std::string bss_path = dir + "/" + kPinIterBss;
  iterator->link_fd_ = bpf_obj_get(link_path.c_str());
  if (iterator->link_fd_ < 0) return fail("open pinned link", link_path, errno);
  iterator->bss_fd_ = bpf_obj_get(bss_path.c_str());
  if (iterator->bss_fd_ < 0) return fail("open pinned map", bss_path, errno);
  iterator->options_map_size_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* mapped = mmap(nullptr, iterator->options_map_size_, PROT_READ | PROT_WRITE, MAP_SHARED, iterator->bss_fd_, 0);
  if (mapped == MAP_FAILED) {
    iterator->options_map_size_ = 0;
    return fail("mmap", bss_path, errno);
  }
  // iter_options is the only .bss variable: it sits at offset 0.
  iterator->options_ = static_cast<unsigned int*>(mapped);
  return iterator;
}

bool TaskIterator::Pin(const std::string& dir, LoaderError* error) {
  if (skel_ == nullptr) {
    *error = LoaderError{"pin", dir, EINVAL, "only an iterator loaded by this process can be pinned"};
    return false;
  }
  const std::string bss_path = dir + "/" + kPinIterBss;
  int err = bpf_map__pin(skel_->maps.bss, bss_path.c_str());
  if (err != 0) {
    *error = LoaderError{"pin map", bss_path, -err, ""};
    return false;
  }
  const std::string link_path = dir + "/" + kPinIter;
  err = bpf_link__pin(link_, link_path.c_str());
  if (err != 0) {
    unlink(bss_path.c_str());
    *error = LoaderError{"pin link", link_path, -err, ""};
    return false;
  }
  return true;
}

TaskIterator::~TaskIterator() { Close(); }

void TaskIterator::Close() {
  if (link_ != nullptr) bpf_link__destroy(link_);
  link_ = nullptr;
  if (skel_ != nullptr) {
    task_iter::destroy(skel_);
    skel_ = nullptr;
  } else {
    if (options_map_size_ != 0) munmap(options_, options_map_size_);
    if (link_fd_ >= 0) close(link_fd_);
    if (bss_fd_ >= 0) close(bss_fd_);
  }
  options_ = nullptr;
  options_map_size_ = 0;
  link_fd_ = bss_fd_ = -1;
}

bool TaskIterator::Read(unsigned int options, std::string* out, LoaderError* error) {
  const char* target = sleepable_ ? "iter.s/task" : "iter/task";
  __atomic_store_n(options_, options, __ATOMIC_SEQ_CST);
  int fd = bpf_iter_create(link_fd_);
  if (fd < 0) {
    *error = LoaderError{"bpf_iter_create", target, errno, ""};
    return false;
  }
  out->clear();
  // The seq_file hands out up to a page (more for big records) per read;
  // a large buffer keeps the syscall count low.
  char buffer[64 * 1024];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out->append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // Any error ends the pass, EAGAIN included: a pass cut short cannot
      // be resumed, so the caller gets the errno and decides.
      *error = LoaderError{"read iterator", target, errno, ""};
      close(fd);
      return false;
    }
    break;
  }
  close(fd);
  return true;
}

}  // namespace pidgen_native
