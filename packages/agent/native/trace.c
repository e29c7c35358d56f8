/*
 * Stopping every thread of a process without racing thread creation
 * (PTRACE_SEIZE with PTRACE_O_TRACECLONE, then PTRACE_INTERRUPT), running a
 * syscall inside it, and letting it go. Every wait is bounded by a deadline.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define SEIZE_OPTIONS (PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC)

int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_alarm(int sig) { (void)sig; }

/* waitpid with a deadline: a repeating timer interrupts the wait (no SA_RESTART). */
static pid_t timed_wait(pid_t who, int *status, int64_t deadline) {
  static int installed;
  if (!installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    installed = 1;
  }
  for (;;) {
    pid_t r = waitpid(who, status, __WALL | WNOHANG);
    if (r != 0) return r < 0 ? -errno : r;
    int64_t left = deadline - now_ns();
    if (left <= 0) return -ETIMEDOUT;
    struct itimerval it = {{0, 1000}, {left / 1000000000LL, (left % 1000000000LL) / 1000 + 1}};
    setitimer(ITIMER_REAL, &it, NULL);
    r = waitpid(who, status, __WALL);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    if (r > 0) return r;
    if (errno != EINTR) return -errno;
  }
}

static int find_thread(struct target *t, pid_t tid) {
  for (int i = 0; i < t->nthreads; i++)
    if (t->threads[i].tid == tid) return i;
  return -1;
}

static int add_thread(struct target *t, pid_t tid) {
  if (t->nthreads >= MAX_THREADS) return -1;
  t->threads[t->nthreads] = (struct thread){.tid = tid};
  return t->nthreads++;
}

static void drop_thread(struct target *t, int i) { t->threads[i] = t->threads[--t->nthreads]; }

/*
 * A thread that must reach the stop (or run an injected syscall) waits for a
 * CPU like any other; on a busy host that wait is most of the stop. For the
 * length of the stop its nice value is raised to the highest, so that the
 * scheduler runs it at once; the original value is put back while it is still
 * stopped, before it runs its own code again. Needs CAP_SYS_NICE (else nothing
 * changes). A thread it creates meanwhile inherits the raised value: it gets
 * its creator's original one back the same way.
 */
#define BOOST_NICE (-20)

static void boost(struct target *t, int i) {
  struct thread *th = &t->threads[i];
  if (th->boosted) return;
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, (id_t)th->tid);
  if (errno != 0 || nice <= BOOST_NICE) return;
  if (setpriority(PRIO_PROCESS, (id_t)th->tid, BOOST_NICE) != 0) return;
  th->orig_nice = nice;
  th->boosted = 1;
}

/* A thread created by thread `parent` during the stop: it runs with its creator's raised value until restored. */
static void inherit_boost(struct target *t, int child, int parent) {
  if (child < 0 || parent < 0 || !t->threads[parent].boosted) return;
  t->threads[child].boosted = 1;
  t->threads[child].orig_nice = t->threads[parent].orig_nice;
}

static void unboost(struct target *t, int i) {
  struct thread *th = &t->threads[i];
  if (!th->boosted) return;
  setpriority(PRIO_PROCESS, (id_t)th->tid, th->orig_nice);
  th->boosted = 0;
}

/* Is the thread gone or exiting (the kernel refuses to attach to an exiting thread with EPERM)? */
static int thread_gone(pid_t pid, pid_t tid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
  FILE *fp = fopen(path, "re");
  if (!fp) return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = 0;
  char *close = strrchr(buf, ')');
  return !close || close[1] != ' ' || close[2] == 'Z' || close[2] == 'X';
}

/* Is the thread already ours (a thread created by a seized one is attached to us by the kernel)? */
static int traced_by_us(pid_t pid, pid_t tid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
  FILE *fp = fopen(path, "re");
  if (!fp) return 0;
  int ours = 0;
  while (fgets(line, sizeof line, fp))
    if (!strncmp(line, "TracerPid:", 10)) ours = atoi(line + 10) == (int)getpid();
  fclose(fp);
  return ours;
}

/* Seizes every thread listed in /proc/PID/task until a pass finds no new one. */
static int seize_all(struct target *t, struct failure *f) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)t->pid);
  for (int pass = 0; pass < 100; pass++) {
    DIR *d = opendir(path);
    if (!d) return fail(f, errno == ENOENT ? R_EXITED : R_ERROR, "list-threads", errno, "cannot list %s", path);
    int added = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
      pid_t tid = (pid_t)atoi(e->d_name);
      if (tid <= 0 || find_thread(t, tid) >= 0) continue;
      if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)SEIZE_OPTIONS) != 0) {
        int err = errno;
        if (err == ESRCH || (err == EPERM && thread_gone(t->pid, tid))) continue; /* it exited meanwhile */
        if (err == EPERM && traced_by_us(t->pid, tid)) { /* created meanwhile: attached through PTRACE_O_TRACECLONE */
          if (add_thread(t, tid) < 0) {
            closedir(d);
            return fail(f, R_ERROR, "seize", E2BIG, "more than %d threads", MAX_THREADS);
          }
          added++;
          continue;
        }
        closedir(d);
        return fail(f, err == EPERM ? R_PERMISSION : R_ERROR, "seize", err, "cannot attach to thread %d", (int)tid);
      }
      if (add_thread(t, tid) < 0) {
        closedir(d);
        return fail(f, R_ERROR, "seize", E2BIG, "more than %d threads", MAX_THREADS);
      }
      added++;
    }
    closedir(d);
    if (!added) return t->nthreads > 0 ? 0 : fail(f, R_EXITED, "seize", ESRCH, "the process has no threads");
  }
  return fail(f, R_BUSY, "seize", EAGAIN, "threads kept appearing");
}

/* A child the target forked while it was being stopped is traced by us: let it go at once. */
static void release_child(pid_t child, int64_t deadline) {
  int st;
  if (timed_wait(child, &st, deadline) == child && WIFSTOPPED(st)) ptrace(PTRACE_DETACH, child, NULL, NULL);
}

int stop_all(struct target *t, int timeout_ms, struct failure *f) {
  t->nthreads = 0;
  if (seize_all(t, f) != 0) return -1;
  t->stop_start_ns = now_ns();
  int64_t deadline = t->stop_start_ns + (int64_t)timeout_ms * 1000000LL;
  for (int i = 0; i < t->nthreads; i++)
    if (ptrace(PTRACE_INTERRUPT, t->threads[i].tid, NULL, NULL) != 0 && errno != ESRCH)
      return fail(f, R_ERROR, "interrupt", errno, "cannot interrupt thread %d", (int)t->threads[i].tid);
  /* After the interrupts: a running thread stops at once (an IPI); a sleeping one was woken and now waits for a CPU. */
  for (int i = 0; i < t->nthreads; i++) boost(t, i);
  int forked = 0;
  for (;;) {
    int waiting = 0;
    for (int i = 0; i < t->nthreads; i++) waiting += !t->threads[i].stopped;
    if (!waiting) break;
    int st;
    pid_t tid = timed_wait(-1, &st, deadline);
    if (tid == -ETIMEDOUT) return fail(f, R_TIMEOUT, "stop", ETIMEDOUT, "%d thread(s) did not stop within %d ms", waiting, timeout_ms);
    if (tid < 0) return fail(f, R_ERROR, "stop", -tid, "waitpid failed");
    int i = find_thread(t, tid);
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      if (i >= 0) drop_thread(t, i);
      if (tid == t->pid && WIFSIGNALED(st)) return fail(f, R_EXITED, "stop", ESRCH, "the process was killed");
      if (t->nthreads == 0) return fail(f, R_EXITED, "stop", ESRCH, "the process exited");
      continue;
    }
    if (!WIFSTOPPED(st)) continue;
    if (i < 0) i = add_thread(t, tid); /* a new thread, auto-attached through PTRACE_O_TRACECLONE */
    if (i < 0) return fail(f, R_ERROR, "stop", E2BIG, "more than %d threads", MAX_THREADS);
    t->threads[i].stopped = 1;
    int event = st >> 16, sig = WSTOPSIG(st);
    unsigned long msg = 0;
    switch (event) {
      case 0: /* a signal on its way: deliver it when resuming */
        if (sig != SIGTRAP || t->threads[i].sig == 0) t->threads[i].sig = sig;
        break;
      case PTRACE_EVENT_CLONE: {
        ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg);
        int k = find_thread(t, (pid_t)msg);
        if (k < 0 && (k = add_thread(t, (pid_t)msg)) < 0)
          return fail(f, R_ERROR, "stop", E2BIG, "more than %d threads", MAX_THREADS);
        inherit_boost(t, k, i);
        break;
      }
      case PTRACE_EVENT_FORK:
      case PTRACE_EVENT_VFORK:
        ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg);
        release_child((pid_t)msg, deadline);
        forked = 1;
        break;
      case PTRACE_EVENT_EXEC: return fail(f, R_EXITED, "stop", ESRCH, "the process called exec");
      default: break; /* PTRACE_EVENT_STOP: our interrupt, or a group stop */
    }
  }
  t->stopping_ns += now_ns() - t->stop_start_ns;
  if (forked) return fail(f, R_BUSY, "stop", EAGAIN, "the process forked while being stopped");
  return 0;
}

void resume_all(struct target *t) {
  for (int i = 0; i < t->nthreads; i++) unboost(t, i);
  for (int i = 0; i < t->nthreads; i++)
    if (t->threads[i].stopped)
      ptrace(PTRACE_DETACH, t->threads[i].tid, NULL, (void *)(long)t->threads[i].sig);
  if (t->stop_start_ns) {
    int64_t held = now_ns() - t->stop_start_ns;
    t->stopped_ns += held;
    if (held > t->max_hold_ns) t->max_hold_ns = held;
  }
  t->stop_start_ns = 0;
  t->nthreads = 0;
}

int thread_regs_ip_sp(struct target *t, int i, uint64_t *ip, uint64_t *sp) {
  struct user_regs_struct r;
  if (ptrace(PTRACE_GETREGS, t->threads[i].tid, NULL, &r) != 0) return -errno;
  *ip = r.rip;
  *sp = r.rsp;
  return 0;
}

/* The thread the syscalls run in: the main thread when it is there. */
static int injection_thread(struct target *t) {
  int k = find_thread(t, t->pid);
  return k >= 0 ? k : 0;
}

int inject_syscall(struct target *t, int nr, const uint64_t args[6], int64_t *ret, struct failure *f) {
  if (!t->syscall_insn) return fail(f, R_ERROR, "inject", ENOENT, "no syscall instruction found in the process");
  int k = injection_thread(t);
  pid_t tid = t->threads[k].tid;
  enum seccomp_verdict v = seccomp_check(tid, nr, t->syscall_insn + 2, args);
  if (v != SC_ALLOW)
    return fail(f, R_SECCOMP, "seccomp", EPERM,
                v == SC_DENY ? "a seccomp filter of the process does not allow syscall %d"
                             : "the process has a seccomp filter that cannot be read (syscall %d)",
                nr);
  struct user_regs_struct saved, r;
  if (ptrace(PTRACE_GETREGS, tid, NULL, &saved) != 0) return fail(f, R_ERROR, "inject", errno, "PTRACE_GETREGS");
  r = saved;
  r.rip = t->syscall_insn;
  r.rax = (uint64_t)nr;
  r.orig_rax = (uint64_t)-1; /* not inside a syscall: no restart logic on resume */
  r.rdi = args[0];
  r.rsi = args[1];
  r.rdx = args[2];
  r.r10 = args[3];
  r.r8 = args[4];
  r.r9 = args[5];
  if (ptrace(PTRACE_SETREGS, tid, NULL, &r) != 0) return fail(f, R_ERROR, "inject", errno, "PTRACE_SETREGS");
  int64_t deadline = now_ns() + 1000000000LL;
  int rc = -1;
  for (int steps = 0; steps < 64; steps++) {
    if (ptrace(PTRACE_SINGLESTEP, tid, NULL, NULL) != 0) {
      fail(f, R_ERROR, "inject", errno, "PTRACE_SINGLESTEP");
      break;
    }
    int st;
    pid_t w = timed_wait(tid, &st, deadline);
    if (w == -ETIMEDOUT) {
      fail(f, R_TIMEOUT, "inject", ETIMEDOUT, "syscall %d did not return within 1 s", nr);
      t->threads[k].stopped = 0;
      return -1;
    }
    if (w < 0 || WIFEXITED(st) || WIFSIGNALED(st)) {
      t->threads[k].stopped = 0;
      return fail(f, R_EXITED, "inject", ESRCH, "the thread exited during syscall %d", nr);
    }
    if (ptrace(PTRACE_GETREGS, tid, NULL, &r) != 0) {
      fail(f, R_ERROR, "inject", errno, "PTRACE_GETREGS");
      break;
    }
    if (r.rip == t->syscall_insn + 2) {
      *ret = (int64_t)r.rax;
      rc = 0;
      break;
    }
    int event = st >> 16, sig = WSTOPSIG(st);
    if (event == 0 && sig != SIGTRAP) t->threads[k].sig = sig; /* hold it, deliver on resume */
    if (r.rip != t->syscall_insn) {
      fail(f, R_ERROR, "inject", EFAULT, "the thread left the injected syscall (at 0x%llx)", (unsigned long long)r.rip);
      break;
    }
  }
  if (rc != 0 && f->reason == R_NONE) fail(f, R_ERROR, "inject", EAGAIN, "syscall %d did not complete", nr);
  if (ptrace(PTRACE_SETREGS, tid, NULL, &saved) != 0 && rc == 0)
    return fail(f, R_ERROR, "inject", errno, "cannot restore registers");
  return rc;
}

/* Is a SIGTRAP queued for the thread (a step trap we must not leave behind)? */
static int trap_pending(pid_t tid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)tid, (int)tid);
  FILE *fp = fopen(path, "re");
  if (!fp) return 0;
  int pending = 0;
  while (fgets(line, sizeof line, fp))
    if (!strncmp(line, "SigPnd:", 7)) pending = (strtoull(line + 7, NULL, 16) >> (SIGTRAP - 1)) & 1;
  fclose(fp);
  return pending;
}

/* Lets the thread take its queued SIGTRAP as a signal-delivery stop, so that resuming it with 0 discards it. */
static void absorb_trap(struct target *t, int i) {
  pid_t tid = t->threads[i].tid;
  int st;
  if (ptrace(PTRACE_CONT, tid, NULL, NULL) != 0) return;
  if (timed_wait(tid, &st, now_ns() + 1000000000LL) != tid || !WIFSTOPPED(st)) {
    t->threads[i].stopped = 0;
    return;
  }
  if ((st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP) t->threads[i].sig = WSTOPSIG(st);
  if (trap_pending(tid)) { /* another signal came first: once more */
    if (ptrace(PTRACE_CONT, tid, NULL, NULL) == 0 && timed_wait(tid, &st, now_ns() + 1000000000LL) == tid && WIFSTOPPED(st)) {
      if ((st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP) t->threads[i].sig = WSTOPSIG(st);
    } else {
      t->threads[i].stopped = 0;
    }
  }
}

/*
 * Single-steps thread i once (bounded). Returns 0 when it stopped again,
 * 1 when it exited, -1 when it did not come back in time or left through an
 * event (then it is stopped again, or gone, and the caller backs off).
 */
int step_thread(struct target *t, int i, int timeout_ms) {
  pid_t tid = t->threads[i].tid;
  if (ptrace(PTRACE_SINGLESTEP, tid, NULL, NULL) != 0) return -1;
  int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000LL;
  for (;;) {
    int st;
    pid_t w = timed_wait(tid, &st, deadline);
    if (w == -ETIMEDOUT) { /* not scheduled for that long: stop it again, and take its step trap */
      ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
      w = timed_wait(tid, &st, now_ns() + 1000000000LL);
      if (w != tid || !WIFSTOPPED(st)) {
        t->threads[i].stopped = 0;
        return -1;
      }
      if ((st >> 16) != 0 && trap_pending(tid)) absorb_trap(t, i);
      return -1;
    }
    if (w < 0) return -1;
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      drop_thread(t, i);
      return 1;
    }
    int event = st >> 16, sig = WSTOPSIG(st);
    if (event == 0 && sig != SIGTRAP) {
      t->threads[i].sig = sig; /* hold it; deliver on resume */
      return 0;
    }
    if (event == PTRACE_EVENT_CLONE) { /* a new thread: it reports its own stop */
      unsigned long msg = 0;
      ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg);
      int k = add_thread(t, (pid_t)msg);
      inherit_boost(t, k, i);
      if (k >= 0 && timed_wait((pid_t)msg, &st, now_ns() + 200000000LL) == (pid_t)msg && WIFSTOPPED(st))
        t->threads[k].stopped = 1;
      return -1;
    }
    if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK) {
      unsigned long msg = 0;
      ptrace(PTRACE_GETEVENTMSG, tid, NULL, &msg);
      release_child((pid_t)msg, now_ns() + 200000000LL);
      return -1;
    }
    return event == 0 ? 0 : -1;
  }
}

/*
 * May thread i be single-stepped out of a function? Not while it is inside a
 * syscall or about to make one: it could block there with the others held,
 * and a step trap left pending would reach the process after we are gone.
 */
int thread_steppable(struct target *t, int i) {
  struct user_regs_struct r;
  if (ptrace(PTRACE_GETREGS, t->threads[i].tid, NULL, &r) != 0) return 0;
  if ((long)r.orig_rax >= 0) return 0;
  uint8_t insn[2];
  if (mem_read(t->memfd, r.rip, insn, 2) != 2) return 0;
  if ((insn[0] == 0x0f && (insn[1] == 0x05 || insn[1] == 0x34)) || (insn[0] == 0xcd && insn[1] == 0x80)) return 0;
  return 1;
}
