/* Shared declarations of the user-space patch helper (livegraft-uspatch). */
#ifndef LG_COMMON_H
#define LG_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAX_THREADS 4096
#define MAX_FUNCS 500
#define MAX_RELOCS 100000
#define MAX_MAPS 65536

/* Why an operation failed; the names are the protocol's UserspaceRefusal codes. */
enum reason {
  R_NONE = 0,
  R_SECCOMP,
  R_NOT_DUMPABLE,
  R_TRACED,
  R_NO_ADDRESS_SPACE,
  R_FUNCTION_TOO_SHORT,
  R_BUILD_ID_MISMATCH,
  R_BYTES_MISMATCH,
  R_BUSY,
  R_PERMISSION,
  R_EXITED,
  R_TIMEOUT,
  R_ERROR,
};

/* The first failure of an operation: reason, step, errno and a message. */
struct failure {
  enum reason reason;
  const char *step;
  int err;
  char message[256];
};

int fail(struct failure *f, enum reason r, const char *step, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
const char *reason_name(enum reason r);

/* sha256.c */
void sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/* proc.c: the target's memory and /proc files. */
struct map {
  uint64_t start, end;
  int exec;
};
int proc_status_field(pid_t pid, const char *field, char *out, size_t outlen);
int read_maps(pid_t pid, struct map *maps, int max);
ssize_t mem_read(int memfd, uint64_t addr, void *buf, size_t len);
ssize_t mem_write(int memfd, uint64_t addr, const void *buf, size_t len);
int build_id_at(int memfd, uint64_t base, uint8_t *out, size_t max);
uint64_t find_syscall_insn(int memfd, const struct map *maps, int n, uint64_t prefer);

/* bpf.c: does every seccomp filter of a thread allow this syscall? */
enum seccomp_verdict { SC_ALLOW, SC_DENY, SC_UNKNOWN };
enum seccomp_verdict seccomp_check(pid_t tid, int nr, uint64_t ip, const uint64_t args[6]);

/* trace.c: stop every thread, inject syscalls, resume. */
struct thread {
  pid_t tid;
  int stopped;
  int sig; /* signal to deliver when resuming */
  int boosted; /* its nice value was raised for the stop; orig_nice is put back before it resumes */
  int orig_nice;
};
struct target {
  pid_t pid;
  int memfd;
  struct thread threads[MAX_THREADS];
  int nthreads;
  uint64_t syscall_insn; /* address of a `syscall` instruction in the target */
  int64_t stop_start_ns;
  int64_t stopped_ns; /* total time any thread was held, summed over attempts */
  int64_t stopping_ns; /* of which: from the interrupts until every thread had stopped */
  int64_t max_hold_ns; /* the longest single stop (an apply stops twice: to map the code, then for the jumps) */
};
int64_t now_ns(void);
int stop_all(struct target *t, int timeout_ms, struct failure *f);
void resume_all(struct target *t);
int inject_syscall(struct target *t, int nr, const uint64_t args[6], int64_t *ret, struct failure *f);
int thread_regs_ip_sp(struct target *t, int i, uint64_t *ip, uint64_t *sp);
int step_thread(struct target *t, int i, int timeout_ms);
int thread_steppable(struct target *t, int i);

#endif
