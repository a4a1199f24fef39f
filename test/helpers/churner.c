/*
 * churner: ground truth for pidgen's coherence tests.
 *
 * Usage: churner <seconds> <logfile> [longlived=N] [threads=T] [warmup=0|1] [threadchurn=K] [maxlive=M]
 *
 * Meant to run in a child PID namespace with a small pid_max (e.g. 400), so
 * PID numbers are reused many times a second. It:
 *   1. (warmup=1, default) forks short-lived children until the PID numbers
 *      wrap once, so the long-lived tasks below sit in the range that is
 *      recycled (after a wrap the kernel restarts at 300);
 *   2. starts N (default 20) long-lived children; every 4th one also runs T
 *      (default 3) extra threads; all of them just sleep;
 *   2b. (threadchurn=K, default 0) starts K processes whose threads come and
 *      go (1-5 ms each, up to 4 at once): a thread's TID is freed as soon as
 *      it exits, so TIDs move between thread groups and processes;
 *   2c. (maxlive=M, default 0 = no limit) keeps at most M short-lived
 *      children alive (unreaped) at once, so the namespace never runs out of
 *      PID numbers: other programs in it (a CLI, a thread pool) can still
 *      start their threads while it churns;
 *   3. prints "ready churner=<pid>" on stdout;
 *   4. forks short-lived children at full speed for <seconds> (or until
 *      SIGTERM/SIGINT/SIGUSR1). Before each fork the parent names itself
 *      c<hex seq>, so the child carries that unique name from birth; the
 *      child also sets it, sleeps 1-5 ms and _exit(0)s. The parent never
 *      blocks: it reaps with waitpid(-1, WNOHANG);
 *   5. SIGKILLs the long-lived ones (by PID), reaps everything, writes the log
 *      and prints "summary forks=.. seconds=.. forks_per_s=.. wraps=.. ...".
 *
 * Log lines (CLOCK_BOOTTIME ns, the clock of task->start_boottime):
 *   kind pid tgid name fork_before fork_after reap_before reap_after
 * kind is child (short-lived), long (long-lived process) or thread. The name
 * "-" means "any": a thread churner's own comm keeps changing.
 * fork_before/after bracket the fork() (pthread_create() for threads): the
 * kernel allocates the PID and sets start_boottime in between. reap_before/
 * after bracket the waitpid() that returned the child: its PID is freed in
 * between. A thread's PID is freed after its process was SIGKILLed
 * (reap_before = just before kill()) and before the process is reaped
 * (reap_after). Nothing is written to the log until the end: the records
 * live in memory mapped MADV_DONTFORK, so they do not slow down fork().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum kind { K_CHILD = 0, K_LONG = 1, K_THREAD = 2 };
static const char *const kind_names[] = {"child", "long", "thread"};

typedef struct {
  int64_t fork_before, fork_after, reap_before, reap_after;
  int32_t pid, tgid;
  char name[16];
  uint8_t kind;
} rec_t;

static rec_t *recs;
static size_t nrecs, caprecs;
static int32_t *slot_of_pid; /* pid -> index+1 of the live child record holding it */
static long pid_max_seen;

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

static inline int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "churner: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void *map_dontfork(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  if (madvise(p, bytes, MADV_DONTFORK) != 0) die("madvise(MADV_DONTFORK)");
  return p;
}

static rec_t *new_rec(void) {
  if (nrecs >= caprecs) return NULL;
  rec_t *r = &recs[nrecs++];
  memset(r, 0, sizeof *r);
  r->reap_before = r->reap_after = -1;
  return r;
}

static void set_comm(const char *name) { prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static inline uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* ---- statistics ---- */
static uint64_t forks, fork_failures, wraps, throttled;
static int last_pid = -1;
static long live_children, max_live;

/* Reaps every child that has finished, without blocking. */
static void reap_ready(void) {
  for (;;) {
    int status;
    int64_t before = now_ns();
    pid_t p = waitpid(-1, &status, WNOHANG);
    int64_t after = now_ns();
    if (p <= 0) return;
    if (p <= pid_max_seen && slot_of_pid[p]) {
      rec_t *r = &recs[slot_of_pid[p] - 1];
      r->reap_before = before;
      r->reap_after = after;
      slot_of_pid[p] = 0;
      if (r->kind == K_CHILD) live_children--;
    }
  }
}

/* Forks one short-lived child. Returns 1 if forked, 0 if fork failed transiently. */
static int fork_short(uint64_t seq) {
  rec_t *r = new_rec();
  if (!r) {
    stop_requested = 1;
    return 0;
  }
  /* The records are not mapped in the child (MADV_DONTFORK): keep a copy. */
  char name[16];
  snprintf(name, sizeof name, "c%llx", (unsigned long long)seq);
  memcpy(r->name, name, sizeof name);
  set_comm(name);
  /* 1..5 ms, decided in the parent so every child differs. */
  long sleep_ns = 1000000L + (long)(next_rand() % 4000001ULL);
  int64_t before = now_ns();
  pid_t p = fork();
  int64_t after = now_ns();
  if (p == 0) {
    set_comm(name);
    struct timespec ts = {0, sleep_ns};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    _exit(0);
  }
  if (p < 0) {
    nrecs--;
    if (errno == EAGAIN || errno == ENOMEM) {
      fork_failures++;
      return 0;
    }
    die("fork");
  }
  r->kind = K_CHILD;
  r->pid = r->tgid = p;
  r->fork_before = before;
  r->fork_after = after;
  if (p <= pid_max_seen) slot_of_pid[p] = (int32_t)(r - recs) + 1;
  forks++;
  live_children++;
  if (last_pid >= 0 && p < last_pid) wraps++;
  last_pid = p;
  return 1;
}

/* ---- long-lived processes and their threads ---- */

struct thread_report {
  int32_t tid;
  char name[16];
  int64_t fork_before, fork_after;
};

struct thread_slot {
  char name[16];
  volatile int32_t tid;
};

static void *sleeper_thread(void *arg) {
  struct thread_slot *slot = arg;
  set_comm(slot->name);
  __atomic_store_n(&slot->tid, (int32_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
  for (;;) pause();
  return NULL;
}

/* Body of a long-lived child: start `threads` threads, report them on fd, sleep. */
static void long_lived_child(const char *name, int index, int threads, int fd) {
  set_comm(name);
  for (int j = 0; j < threads; j++) {
    struct thread_slot *slot = calloc(1, sizeof *slot);
    if (!slot) _exit(2);
    snprintf(slot->name, sizeof slot->name, "T%x_%x", (unsigned)index & 0xffffu, (unsigned)j & 0xffffu);
    /* Name ourselves first so the thread has its name from birth, too. */
    set_comm(slot->name);
    pthread_t t;
    struct thread_report rep;
    memset(&rep, 0, sizeof rep);
    rep.fork_before = now_ns();
    if (pthread_create(&t, NULL, sleeper_thread, slot) != 0) _exit(3);
    rep.fork_after = now_ns();
    set_comm(name);
    while (__atomic_load_n(&slot->tid, __ATOMIC_ACQUIRE) == 0) sched_yield();
    rep.tid = slot->tid;
    memcpy(rep.name, slot->name, sizeof rep.name);
    if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep) _exit(4);
  }
  close(fd);
  for (;;) pause();
}

/* ---- thread churners: processes whose threads come and go ---- */

/*
 * A thread's TID is freed when the thread itself exits, with nobody reaping
 * it, so a forked child can take it right away. Each thread churner keeps up
 * to TC_LIVE threads alive at once, each named t<churner>_<hex seq> from birth
 * (the creating main thread names itself first, so its own comm keeps
 * changing: it is logged with the name "-", "any"). The records live in
 * memory shared with the churner, which writes them to the log at the end.
 * Bounds: fork_* bracket pthread_create(); reap_before is taken by the thread
 * just before it returns; reap_after is when the churner reaped the whole
 * thread churner process (sound, if loose: pthread_join returns before the
 * kernel frees the TID).
 */
#define TC_LIVE 4
#define TC_CAP ((size_t)1 << 21)

typedef struct {
  int64_t fork_before, fork_after, reap_before;
  long sleep_ns;
  int32_t tid;
  char name[16];
} trec_t;

typedef struct {
  volatile int stop;
  volatile uint64_t n;
  trec_t recs[];
} tc_shared_t;

static void *churned_thread(void *arg) {
  trec_t *r = arg;
  set_comm(r->name);
  __atomic_store_n(&r->tid, (int32_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
  struct timespec ts = {0, r->sleep_ns};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  r->reap_before = now_ns();
  return NULL;
}

static void thread_churner(tc_shared_t *sh, int index) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t th[TC_LIVE];
  int busy[TC_LIVE] = {0};
  uint64_t seq = 0;
  while (!__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE)) {
    int free_slot = -1;
    for (int i = 0; i < TC_LIVE; i++) {
      if (busy[i] && pthread_tryjoin_np(th[i], NULL) == 0) busy[i] = 0;
      if (!busy[i]) free_slot = i;
    }
    if (free_slot < 0 || sh->n >= TC_CAP) {
      struct timespec ts = {0, 50000};
      nanosleep(&ts, NULL);
      continue;
    }
    trec_t *r = &sh->recs[sh->n];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "t%x_%llx", (unsigned)index & 0xffu, (unsigned long long)(seq++ & 0xffffffffffULL));
    r->sleep_ns = 1000000L + (long)(next_rand() % 4000001ULL);
    r->reap_before = -1;
    set_comm(r->name);
    r->fork_before = now_ns();
    int rc = pthread_create(&th[free_slot], &attr, churned_thread, r);
    r->fork_after = now_ns();
    if (rc != 0) { /* EAGAIN when the namespace is out of PIDs */
      sched_yield();
      continue;
    }
    busy[free_slot] = 1;
    __atomic_store_n(&sh->n, sh->n + 1, __ATOMIC_RELEASE);
  }
  for (int i = 0; i < TC_LIVE; i++)
    if (busy[i]) pthread_join(th[i], NULL);
  _exit(0);
}

static void drain_all(void) {
  for (;;) {
    int status;
    int64_t before = now_ns();
    pid_t p = waitpid(-1, &status, 0);
    int64_t after = now_ns();
    if (p < 0) {
      if (errno == EINTR) continue;
      if (errno == ECHILD) return;
      die("waitpid");
    }
    if (p <= pid_max_seen && slot_of_pid[p]) {
      rec_t *r = &recs[slot_of_pid[p] - 1];
      if (r->reap_before < 0) r->reap_before = before;
      r->reap_after = after;
      slot_of_pid[p] = 0;
      if (r->kind == K_CHILD) live_children--;
      /* Threads of this process: their PIDs were freed by now. */
      if (r->kind == K_LONG)
        for (size_t i = 0; i < nrecs; i++)
          if (recs[i].kind == K_THREAD && recs[i].tgid == p) recs[i].reap_after = after;
    }
  }
}

static long read_pid_max(void) {
  FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
  long v = 4194304;
  if (f) {
    if (fscanf(f, "%ld", &v) != 1) v = 4194304;
    fclose(f);
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: churner <seconds> <logfile> [longlived=N] [threads=T] [warmup=0|1] [threadchurn=K] [maxlive=M]\n");
    return 2;
  }
  double seconds = atof(argv[1]);
  const char *logpath = argv[2];
  int longlived = 20, threads = 3, warmup = 1, threadchurn = 0;
  for (int i = 3; i < argc; i++) {
    if (!strncmp(argv[i], "longlived=", 10)) longlived = atoi(argv[i] + 10);
    else if (!strncmp(argv[i], "threads=", 8)) threads = atoi(argv[i] + 8);
    else if (!strncmp(argv[i], "warmup=", 7)) warmup = atoi(argv[i] + 7);
    else if (!strncmp(argv[i], "threadchurn=", 12)) threadchurn = atoi(argv[i] + 12);
    else if (!strncmp(argv[i], "maxlive=", 8)) max_live = atol(argv[i] + 8);
    else {
      fprintf(stderr, "churner: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  rng ^= (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);

  pid_max_seen = read_pid_max();
  caprecs = (size_t)1 << 24; /* 16M records; virtual only until touched */
  recs = map_dontfork(caprecs * sizeof(rec_t));
  slot_of_pid = map_dontfork((size_t)(pid_max_seen + 1) * sizeof(int32_t));

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);

  char own_name[16] = "churner";
  set_comm(own_name);
  uint64_t seq = 0;

  /* 1. Warm-up: run until the PID numbers wrap once. */
  if (warmup) {
    uint64_t limit = (uint64_t)pid_max_seen * 4 + 1000;
    while (wraps == 0 && forks < limit && !stop_requested) {
      reap_ready();
      if (!fork_short(seq++)) sched_yield();
    }
    drain_all();
  }
  uint64_t warm_forks = forks, warm_wraps = wraps;

  /* 2. Long-lived processes, every 4th with threads. */
  pid_t *long_pids = calloc((size_t)(longlived > 0 ? longlived : 1), sizeof(pid_t));
  for (int i = 0; i < longlived; i++) {
    rec_t *r = new_rec();
    if (!r) die("records");
    char name[16];
    snprintf(name, sizeof name, "L%x", i);
    memcpy(r->name, name, sizeof name);
    int nthreads = (i % 4 == 0) ? threads : 0;
    int fds[2];
    if (pipe(fds) != 0) die("pipe");
    set_comm(name);
    int64_t before = now_ns();
    pid_t p = fork();
    int64_t after = now_ns();
    if (p == 0) {
      close(fds[0]);
      long_lived_child(name, i, nthreads, fds[1]);
    }
    if (p < 0) die("fork long-lived");
    set_comm(own_name);
    close(fds[1]);
    r->kind = K_LONG;
    r->pid = r->tgid = p;
    r->fork_before = before;
    r->fork_after = after;
    if (p <= pid_max_seen) slot_of_pid[p] = (int32_t)(r - recs) + 1;
    long_pids[i] = p;
    if (last_pid >= 0 && p < last_pid) wraps++;
    last_pid = p;
    struct thread_report rep;
    ssize_t n;
    while ((n = read(fds[0], &rep, sizeof rep)) == (ssize_t)sizeof rep) {
      rec_t *t = new_rec();
      if (!t) die("records");
      t->kind = K_THREAD;
      t->pid = rep.tid;
      t->tgid = p;
      memcpy(t->name, rep.name, sizeof t->name);
      t->name[15] = 0;
      t->fork_before = rep.fork_before;
      t->fork_after = rep.fork_after;
    }
    if (n < 0) die("read thread reports");
    close(fds[0]);
  }

  /* 2b. Thread churners. */
  pid_t *tc_pids = calloc((size_t)(threadchurn > 0 ? threadchurn : 1), sizeof(pid_t));
  tc_shared_t **tc_sh = calloc((size_t)(threadchurn > 0 ? threadchurn : 1), sizeof *tc_sh);
  size_t tc_bytes = sizeof(tc_shared_t) + TC_CAP * sizeof(trec_t);
  for (int k = 0; k < threadchurn; k++) {
    tc_sh[k] = mmap(NULL, tc_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (tc_sh[k] == MAP_FAILED) die("mmap shared");
    rec_t *r = new_rec();
    if (!r) die("records");
    memcpy(r->name, "-", 2); /* its comm keeps changing: any name */
    char name[16];
    snprintf(name, sizeof name, "TC%x", k);
    set_comm(name);
    int64_t before = now_ns();
    pid_t p = fork();
    int64_t after = now_ns();
    if (p == 0) {
      rng ^= (uint64_t)getpid() * 0x2545f4914f6cdd1dULL;
      thread_churner(tc_sh[k], k);
    }
    if (p < 0) die("fork thread churner");
    set_comm(own_name);
    /* The short-lived children need not inherit it. */
    madvise(tc_sh[k], tc_bytes, MADV_DONTFORK);
    r->kind = K_LONG;
    r->pid = r->tgid = p;
    r->fork_before = before;
    r->fork_after = after;
    if (p <= pid_max_seen) slot_of_pid[p] = (int32_t)(r - recs) + 1;
    tc_pids[k] = p;
    if (last_pid >= 0 && p < last_pid) wraps++;
    last_pid = p;
  }

  printf("ready churner=%d warmup_forks=%llu warmup_wraps=%llu\n", (int)getpid(), (unsigned long long)warm_forks,
         (unsigned long long)warm_wraps);
  fflush(stdout);

  /* 3. The churn. */
  uint64_t hot_forks0 = forks, hot_wraps0 = wraps, hot_fail0 = fork_failures;
  int64_t start = now_ns();
  int64_t end = start + (int64_t)(seconds * 1e9);
  int64_t t = start;
  while (!stop_requested && t < end) {
    reap_ready();
    if (max_live > 0 && live_children >= max_live) {
      throttled++;
      struct timespec ts = {0, 20000};
      nanosleep(&ts, NULL);
    } else if (!fork_short(seq++)) {
      sched_yield();
    }
    t = now_ns();
  }
  int64_t stopped = now_ns();
  set_comm(own_name);

  /* 4. Kill the long-lived ones by PID, reap everything. */
  for (int i = 0; i < longlived; i++) {
    pid_t p = long_pids[i];
    int64_t before = now_ns();
    if (p > 0 && p <= pid_max_seen && slot_of_pid[p]) {
      recs[slot_of_pid[p] - 1].reap_before = before;
      for (size_t k = 0; k < nrecs; k++)
        if (recs[k].kind == K_THREAD && recs[k].tgid == p) recs[k].reap_before = before;
    }
    kill(p, SIGKILL);
  }
  int64_t *tc_reap_before = calloc((size_t)(threadchurn > 0 ? threadchurn : 1), sizeof(int64_t));
  for (int k = 0; k < threadchurn; k++) {
    pid_t p = tc_pids[k];
    tc_reap_before[k] = now_ns();
    if (p > 0 && p <= pid_max_seen && slot_of_pid[p]) recs[slot_of_pid[p] - 1].reap_before = tc_reap_before[k];
    __atomic_store_n(&tc_sh[k]->stop, 1, __ATOMIC_RELEASE);
  }
  drain_all();
  uint64_t thread_churned = 0;
  for (int k = 0; k < threadchurn; k++) {
    int64_t reaped_after = -1;
    for (size_t i = 0; i < nrecs; i++)
      if (recs[i].kind == K_LONG && recs[i].pid == tc_pids[k]) reaped_after = recs[i].reap_after;
    for (uint64_t j = 0; j < tc_sh[k]->n; j++) {
      trec_t *tr = &tc_sh[k]->recs[j];
      rec_t *t = new_rec();
      if (!t) die("records");
      t->kind = K_THREAD;
      t->pid = tr->tid;
      t->tgid = tc_pids[k];
      memcpy(t->name, tr->name, sizeof t->name);
      t->name[15] = 0;
      t->fork_before = tr->fork_before;
      t->fork_after = tr->fork_after;
      t->reap_before = tr->reap_before;
      t->reap_after = reaped_after;
      thread_churned++;
    }
  }

  /* 5. The log. */
  FILE *log = fopen(logpath, "w");
  if (!log) die(logpath);
  double secs = (double)(stopped - start) / 1e9;
  uint64_t hot_forks = forks - hot_forks0, hot_wraps = wraps - hot_wraps0;
  fprintf(log, "# churner pid=%d pid_max=%ld longlived=%d threads=%d\n", (int)getpid(), pid_max_seen, longlived,
          threads);
  fprintf(log, "# churn start_ns=%lld end_ns=%lld forks=%llu wraps=%llu\n", (long long)start, (long long)stopped,
          (unsigned long long)hot_forks, (unsigned long long)hot_wraps);
  fprintf(log, "# kind pid tgid name fork_before_ns fork_after_ns reap_before_ns reap_after_ns\n");
  static char buf[1 << 20];
  setvbuf(log, buf, _IOFBF, sizeof buf);
  for (size_t i = 0; i < nrecs; i++) {
    rec_t *r = &recs[i];
    fprintf(log, "%s %d %d %s %lld %lld %lld %lld\n", kind_names[r->kind], r->pid, r->tgid, r->name,
            (long long)r->fork_before, (long long)r->fork_after, (long long)r->reap_before, (long long)r->reap_after);
  }
  if (fclose(log) != 0) die("write log");

  printf("summary forks=%llu seconds=%.3f forks_per_s=%.0f wraps=%llu wraps_per_s=%.1f fork_failures=%llu threads_churned=%llu tasks=%zu throttled=%llu\n",
         (unsigned long long)hot_forks, secs, secs > 0 ? (double)hot_forks / secs : 0.0, (unsigned long long)hot_wraps,
         secs > 0 ? (double)hot_wraps / secs : 0.0, (unsigned long long)(fork_failures - hot_fail0), (unsigned long long)thread_churned, nrecs,
         (unsigned long long)throttled);
  fflush(stdout);
  return 0;
}
