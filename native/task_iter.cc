// See task_iter.h.
#include "task_iter.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>

#include "task_iter.skel.h"

namespace pidgen_native {

TaskIterator* TaskIterator::Open(bool sleepable, bool verbose, LoaderError* error) {
  std::string log;
  LogCapture capture(&log, verbose);
  const char* target = sleepable ? "iter.s/task" : "iter/task";
  auto fail = [&](const char* op, int err, task_iter* skel) -> TaskIterator* {
    task_iter::destroy(skel);
    *error = LoaderError{op, target, err < 0 ? -err : err, log};
    return nullptr;
  };

  // Open: parse the embedded object.
  task_iter* skel = task_iter::open();
  if (skel == nullptr) return fail("open", errno, nullptr);

  // Configure: one of the two programs.
  bpf_program__set_autoload(skel->progs.pidgen_iter, !sleepable);
  bpf_program__set_autoload(skel->progs.pidgen_iter_cmdline, sleepable);

  // Load: the verifier checks it (sleepable iterators need 5.18+ for
  // bpf_copy_from_user_task; older kernels refuse here).
  int err = task_iter::load(skel);
  if (err != 0) return fail("load", err, skel);

  // Attach: an iterator link; each read creates a fresh iterator from it.
  bpf_program* prog = sleepable ? skel->progs.pidgen_iter_cmdline : skel->progs.pidgen_iter;
  bpf_link* link = bpf_program__attach_iter(prog, nullptr);
  if (link == nullptr) return fail("attach", errno, skel);

  TaskIterator* iterator = new TaskIterator();
  iterator->skel_ = skel;
  iterator->link_ = link;
  iterator->sleepable_ = sleepable;
  return iterator;
}

TaskIterator::~TaskIterator() { Close(); }

void TaskIterator::Close() {
  if (link_ != nullptr) bpf_link__destroy(link_);
  link_ = nullptr;
  if (skel_ != nullptr) task_iter::destroy(skel_);
  skel_ = nullptr;
}

bool TaskIterator::Read(unsigned int options, std::string* out, LoaderError* error) {
  const char* target = sleepable_ ? "iter.s/task" : "iter/task";
  skel_->bss->iter_options = options;
  int fd = bpf_iter_create(bpf_link__fd(link_));
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
      // EAGAIN is the kernel's "the task list changed under me, retry".
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
