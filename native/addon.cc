// N-API glue: plain data in and out, one method per loader operation.
// Argument checking and defaults live in src/native/; this file still checks
// types and state, because a wrong call must throw, not crash the process.
#include <napi.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "loader.h"
#include "proc_reader.h"
#include "task_iter.h"

namespace {

using pidgen_native::Guard;
using pidgen_native::LoaderError;

// One loaded guard, shared by its JS handle and the environment's list, so
// whichever of close(), garbage collection or environment teardown comes
// first releases it, and the others find it already gone.
struct GuardSlot {
  std::unique_ptr<Guard> guard;
};

// The same for a task iterator.
struct IteratorSlot {
  std::unique_ptr<pidgen_native::TaskIterator> iterator;
};

// A helper thread that lists /proc while the caller's thread reads the task
// iterator. It lives as long as the environment and is started with the
// first iterator, outside any snapshot: a thread started per pass would be a
// new task (a PID taken, an exit logged) inside every snapshot's window.
//
// It waits on a pthread condition variable, not std::condition_variable:
// gcc 12's libstdc++ versions condition_variable::wait at GLIBCXX_3.4.30,
// newer than RHEL 9's, and the prebuilt addon must load there
// (scripts/prebuild checks it).
class ProcLister {
 public:
  ProcLister() = default;
  ProcLister(const ProcLister&) = delete;
  ProcLister& operator=(const ProcLister&) = delete;

  ~ProcLister() {
    pthread_mutex_lock(&mutex_);
    stop_ = true;
    pthread_cond_broadcast(&wake_);
    pthread_mutex_unlock(&mutex_);
    if (thread_.joinable()) thread_.join();
    pthread_cond_destroy(&wake_);
    pthread_mutex_destroy(&mutex_);
  }

  void Start() {
    if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  }

  // Lists `root` on the helper while `work` runs here; returns the pids, or
  // sets *err.
  std::vector<int32_t> ListDuring(const std::string& root, int* err, const std::function<void()>& work) {
    Start();
    pthread_mutex_lock(&mutex_);
    root_ = root;
    pending_ = true;
    done_ = false;
    pthread_cond_broadcast(&wake_);
    pthread_mutex_unlock(&mutex_);
    work();
    pthread_mutex_lock(&mutex_);
    while (!done_) pthread_cond_wait(&wake_, &mutex_);
    *err = err_;
    std::vector<int32_t> pids = std::move(pids_);
    pthread_mutex_unlock(&mutex_);
    return pids;
  }

 private:
  void Run() {
    pthread_mutex_lock(&mutex_);
    for (;;) {
      while (!stop_ && !pending_) pthread_cond_wait(&wake_, &mutex_);
      if (stop_) break;
      pending_ = false;
      std::string root = root_;
      pthread_mutex_unlock(&mutex_);
      int err = 0;
      std::vector<int32_t> pids = pidgen_native::ListPids(root, &err);
      pthread_mutex_lock(&mutex_);
      pids_ = std::move(pids);
      err_ = err;
      done_ = true;
      pthread_cond_broadcast(&wake_);
    }
    pthread_mutex_unlock(&mutex_);
  }

  std::thread thread_;
  pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t wake_ = PTHREAD_COND_INITIALIZER;
  bool stop_ = false;
  bool pending_ = false;
  bool done_ = false;
  std::string root_;
  std::vector<int32_t> pids_;
  int err_ = 0;
};

// Per-environment state. Its destructor runs at environment teardown (the
// main thread exiting, or a worker ending) and closes every guard and
// iterator still open, so no program outlives the environment that loaded it.
struct AddonData {
  Napi::FunctionReference error_class;
  Napi::FunctionReference handle_ctor;
  Napi::FunctionReference iterator_ctor;
  std::vector<std::shared_ptr<GuardSlot>> slots;
  std::vector<std::shared_ptr<IteratorSlot>> iterator_slots;
  ProcLister lister;
  ~AddonData() {
    for (auto& slot : slots) slot->guard.reset();
    for (auto& slot : iterator_slots) slot->iterator.reset();
  }
};

// Throws the TS-defined PidgenError (set by setErrorClass) carrying code, op,
// errno and the attach point or map; falls back to a plain Error before then.
// A PidgenError (the class TS registered), or a plain Error before that.
Napi::Error MakePidgenError(Napi::Env env, const std::string& message, const std::string& code, const std::string& op,
                            int err, const std::string& target, const std::string& log) {
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object details = Napi::Object::New(env);
  details.Set("code", code);
  details.Set("op", op);
  if (err != 0) {
    details.Set("errno", err);
    details.Set("errnoName", pidgen_native::ErrnoName(err));
  }
  if (!target.empty()) details.Set("target", target);
  if (!log.empty()) details.Set("log", log);
  if (data != nullptr && !data->error_class.IsEmpty()) {
    return Napi::Error(env, data->error_class.New({Napi::String::New(env, message), details}));
  }
  return Napi::Error::New(env, message);
}

[[noreturn]] void ThrowPidgenError(Napi::Env env, const std::string& message, const std::string& code,
                                   const std::string& op, int err, const std::string& target,
                                   const std::string& log) {
  throw MakePidgenError(env, message, code, op, err, target, log);
}

Napi::Error MakeLoaderError(Napi::Env env, const LoaderError& e) {
  std::string message = e.op + " " + e.target + ": " + pidgen_native::ErrnoName(e.err) + " (" +
                        std::string(strerror(e.err)) + ")";
  return MakePidgenError(env, message, pidgen_native::ErrnoName(e.err), e.op, e.err, e.target, e.log);
}

[[noreturn]] void ThrowLoaderError(Napi::Env env, const LoaderError& e) { throw MakeLoaderError(env, e); }

[[noreturn]] void ThrowReaddirError(Napi::Env env, const std::string& path, int err) {
  ThrowPidgenError(env, "readdir " + path + ": " + pidgen_native::ErrnoName(err) + " (" + strerror(err) + ")",
                   pidgen_native::ErrnoName(err), "readdir", err, path, "");
}

Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<int32_t>& values) {
  Napi::Int32Array array = Napi::Int32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), array.Data());
  return array;
}

Napi::Object CounterToObject(Napi::Env env, uint32_t inum, const pidgen_ns_counter& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("inum", Napi::Number::New(env, inum));
  o.Set("generation", Napi::BigInt::New(env, static_cast<uint64_t>(c.generation)));
  o.Set("allocations", Napi::BigInt::New(env, static_cast<uint64_t>(c.allocations)));
  o.Set("bumpedAtNs", Napi::BigInt::New(env, static_cast<uint64_t>(c.bumped_at_ns)));
  o.Set("lastNr", Napi::Number::New(env, c.last_nr));
  o.Set("flags", Napi::Number::New(env, c.flags));
  return o;
}

Napi::Object MetaToObject(Napi::Env env, const pidgen_meta& meta) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("layoutVersion", meta.layout_version);
  o.Set("attach", meta.attach);
  o.Set("attachedBoottimeNs", Napi::BigInt::New(env, static_cast<uint64_t>(meta.attached_boottime_ns)));
  o.Set("attachedRealtimeNs", Napi::BigInt::New(env, static_cast<uint64_t>(meta.attached_realtime_ns)));
  o.Set("iter", meta.iter);
  return o;
}

uint32_t Uint32Arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    ThrowPidgenError(info.Env(), std::string(name) + " must be a number", "EINVAL", "argument", EINVAL,
                     "", "");
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= 4294967295.0) || value != static_cast<uint32_t>(value)) {
    ThrowPidgenError(info.Env(), std::string(name) + " must be an unsigned 32-bit integer", "EINVAL",
                     "argument", EINVAL, "", "");
  }
  return static_cast<uint32_t>(value);
}

class GuardHandle : public Napi::ObjectWrap<GuardHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GuardHandle",
                       {
                           InstanceAccessor<&GuardHandle::Attach>("attach"),
                           InstanceAccessor<&GuardHandle::Closed>("closed"),
                           InstanceAccessor<&GuardHandle::Pinned>("pinned"),
                           InstanceAccessor<&GuardHandle::Meta>("meta"),
                           InstanceMethod<&GuardHandle::Pin>("pin"),
                           InstanceMethod<&GuardHandle::SetPinnedIterator>("setPinnedIterator"),
                           InstanceMethod<&GuardHandle::ReadAll>("readAll"),
                           InstanceMethod<&GuardHandle::Read>("read"),
                           InstanceMethod<&GuardHandle::Seed>("seed"),
                           InstanceMethod<&GuardHandle::Stats>("stats"),
                           InstanceMethod<&GuardHandle::SetLogNamespace>("setLogNamespace"),
                           InstanceMethod<&GuardHandle::DrainLog>("drainLog"),
                           InstanceMethod<&GuardHandle::Close>("close"),
                       });
  }

  // Constructed only by open(): JS cannot make one by hand.
  explicit GuardHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GuardHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      ThrowPidgenError(info.Env(), "GuardHandle is created by open()", "EINVAL", "construct", EINVAL, "",
                       "");
    }
    auto* slot = info[0].As<Napi::External<std::shared_ptr<GuardSlot>>>().Data();
    slot_ = *slot;
  }

  ~GuardHandle() override {
    if (slot_) slot_->guard.reset();
  }

 private:
  Guard* Live(Napi::Env env, const char* op) {
    if (!slot_ || !slot_->guard) {
      ThrowPidgenError(env, std::string(op) + ": guard is closed", "EBADF", op, EBADF, "", "");
    }
    return slot_->guard.get();
  }

  bool IsOpen() const { return slot_ && slot_->guard; }

  Napi::Value Attach(const Napi::CallbackInfo& info) {
    return IsOpen() ? Napi::String::New(info.Env(), slot_->guard->attach()) : info.Env().Null();
  }

  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !IsOpen()); }

  Napi::Value Pinned(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), IsOpen() && slot_->guard->pinned());
  }

  Napi::Value Meta(const Napi::CallbackInfo& info) {
    return MetaToObject(info.Env(), Live(info.Env(), "meta")->meta());
  }

  Napi::Value SetPinnedIterator(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t flags = Uint32Arg(info, 0, "flags");
    LoaderError error;
    if (!Live(env, "setPinnedIterator")->SetPinnedIterator(flags, &error)) ThrowLoaderError(env, error);
    return env.Undefined();
  }

  // pin(dir): pins link and maps under dir, which must exist.
  Napi::Value Pin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      ThrowPidgenError(env, "pin: a directory path is required", "EINVAL", "pin", EINVAL, "", "");
    }
    LoaderError error;
    if (!Live(env, "pin")->Pin(info[0].As<Napi::String>().Utf8Value(), &error)) ThrowLoaderError(env, error);
    return env.Undefined();
  }

  Napi::Value ReadAll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<pidgen_native::NamespaceCounter> counters;
    LoaderError error;
    if (!Live(env, "readAll")->ReadAll(&counters, &error)) ThrowLoaderError(env, error);
    Napi::Array result = Napi::Array::New(env, counters.size());
    for (size_t i = 0; i < counters.size(); i++) {
      result.Set(i, CounterToObject(env, counters[i].inum, counters[i].counter));
    }
    return result;
  }

  // Returns null when the namespace has no record yet.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t inum = Uint32Arg(info, 0, "inum");
    pidgen_ns_counter counter;
    LoaderError error;
    if (!Live(env, "read")->Read(inum, &counter, &error)) {
      if (error.err == ENOENT) return env.Null();
      ThrowLoaderError(env, error);
    }
    return CounterToObject(env, inum, counter);
  }

  Napi::Value Seed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t inum = Uint32Arg(info, 0, "inum");
    uint32_t last_nr = Uint32Arg(info, 1, "lastNr");
    bool stored = false;
    LoaderError error;
    if (!Live(env, "seed")->Seed(inum, last_nr, &stored, &error)) ThrowLoaderError(env, error);
    return Napi::Boolean::New(env, stored);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    pidgen_stats stats = Live(env, "stats")->Stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("nsMapFull", Napi::BigInt::New(env, static_cast<uint64_t>(stats.ns_map_full)));
    o.Set("readErrors", Napi::BigInt::New(env, static_cast<uint64_t>(stats.read_errors)));
    o.Set("logDrops", Napi::BigInt::New(env, static_cast<uint64_t>(stats.log_drops)));
    return o;
  }

  Napi::Value SetLogNamespace(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t inum = Uint32Arg(info, 0, "inum");
    Live(env, "setLogNamespace")->SetLogNamespace(inum);
    return env.Undefined();
  }

  // Every allocation record in the ring, as one Buffer of fixed-size records.
  Napi::Value DrainLog(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string records;
    LoaderError error;
    if (!Live(env, "drainLog")->DrainLog(&records, &error)) ThrowLoaderError(env, error);
    return Napi::Buffer<char>::Copy(env, records.data(), records.size());
  }

  // Closing twice is safe; after close every read throws EBADF.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (slot_) slot_->guard.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<GuardSlot> slot_;
};

// Puts a native object in a slot shared by its JS handle and the
// environment's list (which the teardown hook empties), and wraps it with
// `ctor`. Slots already released are dropped first, so a long-lived process
// that opens and closes many objects does not grow the list.
template <typename Slot, typename T>
Napi::Value Adopt(Napi::Env env, std::vector<std::shared_ptr<Slot>>& slots, std::unique_ptr<T> Slot::*member,
                  T* object, Napi::FunctionReference& ctor) {
  std::erase_if(slots, [member](const std::shared_ptr<Slot>& slot) { return !((*slot).*member); });
  auto slot = std::make_shared<Slot>();
  ((*slot).*member).reset(object);
  slots.push_back(slot);
  return ctor.New({Napi::External<std::shared_ptr<Slot>>::New(env, &slot)});
}

class TaskIteratorHandle : public Napi::ObjectWrap<TaskIteratorHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TaskIteratorHandle",
                       {
                           InstanceAccessor<&TaskIteratorHandle::Sleepable>("sleepable"),
                           InstanceMethod<&TaskIteratorHandle::Read>("read"),
                           InstanceMethod<&TaskIteratorHandle::ReadListing>("readListing"),
                           InstanceMethod<&TaskIteratorHandle::Pin>("pin"),
                           InstanceMethod<&TaskIteratorHandle::Close>("close"),
                       });
  }

  explicit TaskIteratorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TaskIteratorHandle>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      ThrowPidgenError(info.Env(), "TaskIteratorHandle is created by openTaskIterator()", "EINVAL", "construct",
                       EINVAL, "", "");
    }
    slot_ = *info[0].As<Napi::External<std::shared_ptr<IteratorSlot>>>().Data();
  }

  ~TaskIteratorHandle() override {
    if (slot_) slot_->iterator.reset();
  }

 private:
  pidgen_native::TaskIterator* Live(Napi::Env env) {
    if (!slot_ || !slot_->iterator) ThrowPidgenError(env, "read: iterator is closed", "EBADF", "read", EBADF, "", "");
    return slot_->iterator.get();
  }

  Napi::Value Sleepable(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), Live(info.Env())->sleepable());
  }

  // read(options): every record of one pass, as one Buffer.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t options = Uint32Arg(info, 0, "options");
    std::string records;
    LoaderError error;
    if (!Live(env)->Read(options, &records, &error)) ThrowLoaderError(env, error);
    return Napi::Buffer<char>::Copy(env, records.data(), records.size());
  }

  // readListing(options, procRoot): read()'s Buffer, and procRoot's
  // numeric entries (listPids) as an Int32Array, as [records, pids]. The
  // listing runs on the environment's helper thread (ProcLister) during the
  // pass: both are kernel work on different objects, and listing /proc
  // costs about a third of a pass.
  Napi::Value ReadListing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t options = Uint32Arg(info, 0, "options");
    if (info.Length() < 2 || !info[1].IsString()) {
      ThrowPidgenError(env, "readListing(options: number, procRoot: string)", "EINVAL", "readListing", EINVAL, "", "");
    }
    std::string root = info[1].As<Napi::String>().Utf8Value();
    pidgen_native::TaskIterator* iterator = Live(env);
    int list_err = 0;
    std::string records;
    LoaderError error;
    bool read = false;
    std::vector<int32_t> pids = env.GetInstanceData<AddonData>()->lister.ListDuring(
        root, &list_err, [&] { read = iterator->Read(options, &records, &error); });
    if (!read) ThrowLoaderError(env, error);
    if (list_err != 0) ThrowReaddirError(env, root, list_err);
    Napi::Array result = Napi::Array::New(env, 2);
    result.Set(0u, Napi::Buffer<char>::Copy(env, records.data(), records.size()));
    result.Set(1u, ToInt32Array(env, pids));
    return result;
  }

  Napi::Value Pin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      ThrowPidgenError(env, "pin: a directory path is required", "EINVAL", "pin", EINVAL, "", "");
    }
    LoaderError error;
    if (!Live(env)->Pin(info[0].As<Napi::String>().Utf8Value(), &error)) ThrowLoaderError(env, error);
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (slot_) slot_->iterator.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<IteratorSlot> slot_;
};

// openTaskIterator({ sleepable: boolean, verbose?: boolean })
// { sleepable, minimal }: which program of bpf/task_iter.bpf.c to load
// (`minimal` is pidgen bench's yardstick).
pidgen_native::TaskIterator::Program ProgramOf(Napi::Object options) {
  using Program = pidgen_native::TaskIterator::Program;
  if (options.Get("minimal").ToBoolean().Value()) return Program::kMinimal;
  return options.Get("sleepable").ToBoolean().Value() ? Program::kSleepable : Program::kPlain;
}

Napi::Value OpenTaskIterator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    ThrowPidgenError(env, "openTaskIterator: options object required", "EINVAL", "openTaskIterator", EINVAL, "", "");
  }
  Napi::Object options = info[0].As<Napi::Object>();
  LoaderError error;
  const bool sleepable = options.Get("sleepable").ToBoolean().Value();
  Napi::Value pinned = options.Get("pinnedDir");
  pidgen_native::TaskIterator* iterator =
      pinned.IsString()
          ? pidgen_native::TaskIterator::OpenPinned(pinned.As<Napi::String>().Utf8Value(), sleepable, &error)
          : pidgen_native::TaskIterator::Open(ProgramOf(options), options.Get("verbose").ToBoolean().Value(), &error);
  if (iterator == nullptr) ThrowLoaderError(env, error);
  AddonData* data = env.GetInstanceData<AddonData>();
  data->lister.Start();  // now, not inside a snapshot's window (ProcLister)
  return Adopt(env, data->iterator_slots, &IteratorSlot::iterator, iterator, data->iterator_ctor);
}

// openTaskIteratorAsync({ sleepable, verbose }): openTaskIterator's load on
// a worker thread, as a Promise, so the caller can load the guard on the
// main thread meanwhile (each load is mostly libbpf parsing the kernel's
// BTF and the verifier, tens of milliseconds).
class OpenIteratorWorker : public Napi::AsyncWorker {
 public:
  OpenIteratorWorker(Napi::Env env, pidgen_native::TaskIterator::Program program, bool verbose)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), program_(program), verbose_(verbose) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { iterator_ = pidgen_native::TaskIterator::Open(program_, verbose_, &error_); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (iterator_ == nullptr) {
      deferred_.Reject(MakeLoaderError(env, error_).Value());
      return;
    }
    AddonData* data = env.GetInstanceData<AddonData>();
    data->lister.Start();  // now, not inside a snapshot's window (ProcLister)
    try {
      deferred_.Resolve(Adopt(env, data->iterator_slots, &IteratorSlot::iterator, iterator_, data->iterator_ctor));
    } catch (const Napi::Error& error) {
      deferred_.Reject(error.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  pidgen_native::TaskIterator::Program program_;
  bool verbose_;
  pidgen_native::TaskIterator* iterator_ = nullptr;
  LoaderError error_;
};

Napi::Value OpenTaskIteratorAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    ThrowPidgenError(env, "openTaskIteratorAsync: options object required", "EINVAL", "openTaskIteratorAsync", EINVAL,
                     "", "");
  }
  Napi::Object options = info[0].As<Napi::Object>();
  auto* worker = new OpenIteratorWorker(env, ProgramOf(options), options.Get("verbose").ToBoolean().Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deletes itself after OnOK
  return promise;
}

// Hands a loaded or pinned guard to JS; the environment's list keeps it
// reachable for the teardown hook.
Napi::Value WrapGuard(Napi::Env env, Guard* guard) {
  AddonData* data = env.GetInstanceData<AddonData>();
  return Adopt(env, data->slots, &GuardSlot::guard, guard, data->handle_ctor);
}

// open({ attach: "fexit" | "tp_btf" | "raw_tp", verbose?: boolean })
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    ThrowPidgenError(env, "open: options object required", "EINVAL", "open", EINVAL, "", "");
  }
  Napi::Object options = info[0].As<Napi::Object>();
  Napi::Value attach = options.Get("attach");
  if (!attach.IsString()) ThrowPidgenError(env, "open: options.attach must be a string", "EINVAL", "open", EINVAL, "", "");
  bool verbose = options.Get("verbose").ToBoolean().Value();

  LoaderError error;
  Guard* guard = Guard::Open(attach.As<Napi::String>().Utf8Value(), verbose, &error);
  if (guard == nullptr) ThrowLoaderError(env, error);
  return WrapGuard(env, guard);
}

std::string PathArg(const Napi::CallbackInfo& info, const char* op) {
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowPidgenError(info.Env(), std::string(op) + ": a directory path is required", "EINVAL", op, EINVAL, "", "");
  }
  return info[0].As<Napi::String>().Utf8Value();
}

// openPinned(dir): the counter `pidgen pin` left in bpffs; loads nothing.
Napi::Value OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LoaderError error;
  Guard* guard = Guard::OpenPinned(PathArg(info, "openPinned"), &error);
  if (guard == nullptr) ThrowLoaderError(env, error);
  return WrapGuard(env, guard);
}

// readPinnedMeta(dir): the pin's layout version, attach point and times.
Napi::Value ReadPinnedMeta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pidgen_meta meta;
  LoaderError error;
  if (!Guard::ReadPinnedMeta(PathArg(info, "readPinnedMeta"), &meta, &error)) ThrowLoaderError(env, error);
  return MetaToObject(env, meta);
}

// setErrorClass(PidgenError): errors thrown from here are instances of the
// TS class, so callers can test `instanceof` and read `code`.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    ThrowPidgenError(env, "setErrorClass: a constructor is required", "EINVAL", "setErrorClass", EINVAL, "", "");
  }
  env.GetInstanceData<AddonData>()->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// lockFile(path): an exclusive flock on path (opened read-only), without
// waiting. Returns the fd holding the lock, or -1 when another process holds
// it. The kernel drops the lock when the fd closes or the process dies, so a
// killed snapshot never leaves a stale lock.
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, "lockFile");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowLoaderError(env, LoaderError{"open for lock", path, errno, ""});
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowLoaderError(env, LoaderError{"flock", path, err, ""});
  }
  return Napi::Number::New(env, fd);
}

Napi::Value UnlockFile(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(Uint32Arg(info, 0, "fd"));
  close(fd);
  return info.Env().Undefined();
}

Napi::Value BoottimeNs(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), pidgen_native::BoottimeNs());
}

void SetFile(Napi::Env env, Napi::Object target, const char* name, const char* err_name,
             const pidgen_native::FileRead& file) {
  if (file.err != 0) {
    target.Set(err_name, file.err);
  } else {
    target.Set(name, Napi::Buffer<char>::Copy(env, file.bytes.data(), file.bytes.size()));
  }
}

// readProcesses(procRoot, pids, { threads, cmdline, status, pidfd }):
// one object per pid with the raw bytes of each file or its errno.
Napi::Value ReadProcesses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsTypedArray() || !info[2].IsObject()) {
    ThrowPidgenError(env, "readProcesses(procRoot: string, pids: Int32Array, options: object)", "EINVAL",
                     "readProcesses", EINVAL, "", "");
  }
  Napi::TypedArray typed = info[1].As<Napi::TypedArray>();
  if (typed.TypedArrayType() != napi_int32_array) {
    ThrowPidgenError(env, "readProcesses: pids must be an Int32Array", "EINVAL", "readProcesses", EINVAL, "", "");
  }
  Napi::Int32Array pid_array = info[1].As<Napi::Int32Array>();
  std::vector<int32_t> pids(pid_array.Data(), pid_array.Data() + pid_array.ElementLength());
  Napi::Object options = info[2].As<Napi::Object>();
  pidgen_native::ReadOptions read_options;
  // stat defaults to on: every caller but the iterator's argv top-up wants it.
  read_options.stat = !options.Has("stat") || options.Get("stat").ToBoolean().Value();
  read_options.threads = options.Get("threads").ToBoolean().Value();
  read_options.cmdline = options.Get("cmdline").ToBoolean().Value();
  read_options.status = options.Get("status").ToBoolean().Value();
  read_options.pidfd = options.Get("pidfd").ToBoolean().Value();

  std::vector<pidgen_native::ProcessRead> reads =
      pidgen_native::ReadProcesses(info[0].As<Napi::String>().Utf8Value(), pids, read_options);

  Napi::Array result = Napi::Array::New(env, reads.size());
  for (size_t i = 0; i < reads.size(); i++) {
    const pidgen_native::ProcessRead& read = reads[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("pid", read.pid);
    if (read.open_err != 0) {
      o.Set("openErr", read.open_err);
      result.Set(i, o);
      continue;
    }
    if (read_options.stat) SetFile(env, o, "stat", "statErr", read.stat);
    if (read_options.status) SetFile(env, o, "status", "statusErr", read.status);
    if (read_options.cmdline) SetFile(env, o, "cmdline", "cmdlineErr", read.cmdline);
    if (read_options.threads) {
      if (read.threads_err != 0) o.Set("threadsErr", read.threads_err);
      Napi::Array threads = Napi::Array::New(env, read.threads.size());
      for (size_t t = 0; t < read.threads.size(); t++) {
        Napi::Object thread = Napi::Object::New(env);
        thread.Set("tid", read.threads[t].tid);
        SetFile(env, thread, "stat", "statErr", read.threads[t].stat);
        threads.Set(t, thread);
      }
      o.Set("threads", threads);
    }
    if (read.pidfd_err == 0) o.Set("pidfdIno", Napi::BigInt::New(env, read.pidfd_ino));
    else if (read.pidfd_err > 0) o.Set("pidfdErr", read.pidfd_err);
    result.Set(i, o);
  }
  return result;
}

// listPids(procRoot): the processes procRoot lists, ascending, as an Int32Array.
Napi::Value ListPids(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowPidgenError(env, "listPids(procRoot: string)", "EINVAL", "listPids", EINVAL, "", "");
  }
  std::string root = info[0].As<Napi::String>().Utf8Value();
  int err = 0;
  std::vector<int32_t> pids = pidgen_native::ListPids(root, &err);
  if (err != 0) ThrowReaddirError(env, root, err);
  return ToInt32Array(env, pids);
}

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), pidgen_native::LibbpfVersion());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->handle_ctor = Napi::Persistent(GuardHandle::Define(env));
  data->iterator_ctor = Napi::Persistent(TaskIteratorHandle::Define(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("open", Napi::Function::New<Open>(env, "open"));
  exports.Set("setErrorClass", Napi::Function::New<SetErrorClass>(env, "setErrorClass"));
  exports.Set("libbpfVersion", Napi::Function::New<LibbpfVersion>(env, "libbpfVersion"));
  exports.Set("openTaskIterator", Napi::Function::New<OpenTaskIterator>(env, "openTaskIterator"));
  exports.Set("openTaskIteratorAsync", Napi::Function::New<OpenTaskIteratorAsync>(env, "openTaskIteratorAsync"));
  exports.Set("openPinned", Napi::Function::New<OpenPinned>(env, "openPinned"));
  exports.Set("readPinnedMeta", Napi::Function::New<ReadPinnedMeta>(env, "readPinnedMeta"));
  exports.Set("lockFile", Napi::Function::New<LockFile>(env, "lockFile"));
  exports.Set("unlockFile", Napi::Function::New<UnlockFile>(env, "unlockFile"));
  exports.Set("boottimeNs", Napi::Function::New<BoottimeNs>(env, "boottimeNs"));
  exports.Set("readProcesses", Napi::Function::New<ReadProcesses>(env, "readProcesses"));
  exports.Set("listPids", Napi::Function::New<ListPids>(env, "listPids"));
  exports.Set("layoutVersion", Napi::Number::New(env, PIDGEN_LAYOUT_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(pidgen, Init)
