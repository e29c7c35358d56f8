/*
 * livegraft-uspatch: applies or reverts a user-space live patch in one
 * running process, and prints one JSON object.
 *
 *   livegraft-uspatch apply  < plan     maps the new code near the library, writes the entry jumps
 *   livegraft-uspatch revert < plan     restores the entry bytes, unmaps the code
 *   livegraft-uspatch version
 *
 * Exit 0 when the operation was done; 1 when it was refused or failed, in
 * which case the process is left as it was (every thread resumed, nothing
 * written). The JSON names the reason, the step and the errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "plan.h"

#define VERSION "1"
#define REACH 0x7ff00000LL /* what a rel32 may span, with a margin */
#define STACK_SCAN_MAX (1024 * 1024)
#define RUN_OUT_STEPS 4000
#define RUN_OUT_NS 20000000LL /* the others wait at most this long per attempt */

static const char *REASONS[] = {"",       "seccomp",           "not-dumpable",     "traced",         "no-address-space",
                                "function-too-short", "build-id-mismatch", "bytes-mismatch", "busy", "permission",
                                "exited", "timeout",           "error"};

const char *reason_name(enum reason r) { return REASONS[r]; }

int fail(struct failure *f, enum reason r, const char *step, int err, const char *fmt, ...) {
  if (f->reason != R_NONE) return -1; /* keep the first failure */
  f->reason = r;
  f->step = step;
  f->err = err;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->message, sizeof f->message, fmt, ap);
  va_end(ap);
  return -1;
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

static void hex(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
}

static struct target T;
static struct map MAPS[MAX_MAPS];
static int NMAPS;

/*
 * The ranges a thread must not be in: (lo, hi] for return addresses; for
 * instruction pointers (lo, hi) in a function about to get a jump at lo (a
 * thread at lo will take the jump), [lo, hi) in code about to be unmapped.
 */
struct range {
  uint64_t lo, hi;
  int ip_at_lo_inside;
};

static int in_ranges(const struct range *r, int n, uint64_t v, int ret_addr) {
  for (int i = 0; i < n; i++) {
    if (ret_addr ? (v > r[i].lo && v <= r[i].hi) : (v > r[i].lo && v < r[i].hi)) return 1;
    if (!ret_addr && r[i].ip_at_lo_inside && v == r[i].lo) return 1;
  }
  return 0;
}

/* Is thread i executing in, or returning into, one of the ranges? Reads its live stack conservatively. */
static int thread_busy(int i, const struct range *r, int n, char *why, size_t whylen) {
  static uint64_t words[8192];
  uint64_t ip, sp;
  if (thread_regs_ip_sp(&T, i, &ip, &sp) != 0) return 0;
  if (in_ranges(r, n, ip, 0)) {
    snprintf(why, whylen, "thread %d is executing at 0x%llx", (int)T.threads[i].tid, (unsigned long long)ip);
    return 1;
  }
  uint64_t top = sp;
  for (int pass = 0; pass < 2 && top == sp; pass++) {
    /* The mappings were read before the stop; a thread created since has a stack they do not list. */
    if (pass == 1) NMAPS = read_maps(T.pid, MAPS, MAX_MAPS);
    for (int m = 0; m < NMAPS; m++)
      if (sp >= MAPS[m].start && sp < MAPS[m].end) top = MAPS[m].end;
  }
  if (top - sp > STACK_SCAN_MAX) top = sp + STACK_SCAN_MAX;
  for (uint64_t a = sp & ~7ULL; a < top; a += sizeof words) {
    size_t len = top - a < sizeof words ? (size_t)(top - a) : sizeof words;
    ssize_t got = mem_read(T.memfd, a, words, len);
    if (got <= 0) break;
    for (ssize_t k = 0; k < got / 8; k++)
      if (in_ranges(r, n, words[k], 1)) {
        snprintf(why, whylen, "thread %d has a return address 0x%llx on its stack", (int)T.threads[i].tid,
                 (unsigned long long)words[k]);
        return 2;
      }
  }
  return 0;
}

/*
 * Is any thread in a range? A thread that is lets the others wait while it
 * runs on alone, one instruction at a time, until it is out (bounded):
 * LibCare's "run to the return address", without breakpoints.
 */
static int threads_busy(const struct range *r, int n, char *why, size_t whylen) {
  int64_t until = now_ns() + RUN_OUT_NS;
  for (int i = 0; i < T.nthreads; i++) {
    if (!T.threads[i].stopped) return 1;
    int steps = 0;
    while (thread_busy(i, r, n, why, whylen)) {
      if (++steps > RUN_OUT_STEPS || now_ns() > until || !thread_steppable(&T, i)) return 1;
      int s = step_thread(&T, i, 1000);
      if (s < 0) return 1;
      if (s == 1) { /* it exited: look at whatever thread took its slot */
        i--;
        break;
      }
    }
  }
  return 0;
}

static void backoff(int attempt) {
  struct timespec ts = {0, (long)(attempt < 10 ? attempt : 10) * 2000000L};
  nanosleep(&ts, NULL);
}

/* Common checks before stopping: not traced by someone else, the build-id at base. */
static int precheck(struct plan *p, struct failure *f) {
  char tracer[32];
  if (proc_status_field(p->pid, "TracerPid", tracer, sizeof tracer) != 0)
    return fail(f, R_EXITED, "status", ESRCH, "process %d is gone", (int)p->pid);
  if (strcmp(tracer, "0") != 0) return fail(f, R_TRACED, "status", EBUSY, "process is traced by %s", tracer);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", (int)p->pid);
  T.pid = p->pid;
  T.memfd = open(path, O_RDWR | O_CLOEXEC);
  if (T.memfd < 0) return fail(f, errno == ENOENT ? R_EXITED : R_PERMISSION, "open-mem", errno, "cannot open %s", path);
  uint8_t id[64];
  int n = build_id_at(T.memfd, p->base, id, sizeof id);
  if (n < 0) return fail(f, R_BUILD_ID_MISMATCH, "build-id", -n, "no ELF build-id at 0x%llx", (unsigned long long)p->base);
  if (n != p->build_id_len || memcmp(id, p->build_id, (size_t)n) != 0)
    return fail(f, R_BUILD_ID_MISMATCH, "build-id", 0, "the library at 0x%llx has another build-id", (unsigned long long)p->base);
  NMAPS = read_maps(p->pid, MAPS, MAX_MAPS);
  if (NMAPS <= 0) return fail(f, R_EXITED, "maps", -NMAPS, "cannot read the mappings");
  T.syscall_insn = find_syscall_insn(T.memfd, MAPS, NMAPS, p->base + p->funcs[0].offset);
  return 0;
}

/* Stops every thread and checks, backing off while a thread is inside a range. */
typedef int (*check_fn)(struct plan *p, struct failure *f);

/* Is the process dumpable? Asked inside it (an injected prctl); the threads are stopped. */
static int check_dumpable(struct failure *f) {
  uint64_t args[6] = {PR_GET_DUMPABLE, 0, 0, 0, 0, 0};
  int64_t ret;
  if (inject_syscall(&T, SYS_prctl, args, &ret, f) != 0) return -1;
  if (ret == 0) return fail(f, R_NOT_DUMPABLE, "dumpable", EPERM, "the process is not dumpable (PR_SET_DUMPABLE 0)");
  return 0;
}

/* Stops every thread, retrying (bounded) when the process forks meanwhile. */
static int stop_retrying(struct plan *p, struct failure *f) {
  for (int a = 1;; a++) {
    if (stop_all(&T, p->timeout_ms, f) == 0) return 0;
    if (f->reason != R_BUSY || a >= p->attempts) return -1;
    resume_all(&T);
    memset(f, 0, sizeof *f);
    backoff(a);
  }
}

static int stop_when_idle(struct plan *p, const struct range *r, int nr, check_fn check, int dumpable, int *attempts,
                          struct failure *f) {
  char why[200] = "";
  for (int a = 1; a <= p->attempts; a++) {
    *attempts = a;
    if (stop_all(&T, p->timeout_ms, f) != 0) {
      if (f->reason == R_BUSY && a < p->attempts) { /* forked meanwhile: try again */
        resume_all(&T);
        memset(f, 0, sizeof *f);
        backoff(a);
        continue;
      }
      return -1;
    }
    if (a == 1 && dumpable && check_dumpable(f) != 0) return -1;
    if (check(p, f) != 0) return -1;
    if (!threads_busy(r, nr, why, sizeof why)) return 0;
    resume_all(&T);
    if (a < p->attempts) backoff(a);
  }
  return fail(f, R_BUSY, "safety", EBUSY, "still in use after %d attempts: %s", p->attempts, why);
}

/* The original bytes of each function, read and hashed before any stop; compared again inside the stop. */
static uint8_t *ORIG[MAX_FUNCS];

static void free_original(void) {
  for (int i = 0; i < MAX_FUNCS; i++) {
    free(ORIG[i]);
    ORIG[i] = NULL;
  }
}

/* Before stopping: each function holds the bytes the level was built for (its sha256). Kept for the stop. */
static int read_original(struct plan *p, struct failure *f) {
  for (int i = 0; i < p->nfuncs; i++) {
    struct func *fn = &p->funcs[i];
    uint8_t sum[32];
    free(ORIG[i]);
    ORIG[i] = malloc(fn->size);
    if (!ORIG[i]) return fail(f, R_ERROR, "verify", ENOMEM, "out of memory");
    ssize_t got = mem_read(T.memfd, p->base + fn->offset, ORIG[i], fn->size);
    if (got != (ssize_t)fn->size) return fail(f, R_ERROR, "verify", EIO, "cannot read function at +0x%lx", fn->offset);
    sha256(ORIG[i], fn->size, sum);
    if (memcmp(sum, fn->sha, 32) != 0)
      return fail(f, R_BYTES_MISMATCH, "verify", 0, "function at +0x%lx does not hold the expected bytes%s", fn->offset,
                  ORIG[i][0] == 0xe9 ? " (it starts with a jump: already patched?)" : "");
  }
  return 0;
}

/* Inside the stop: the functions still hold the bytes hashed before it (no hashing in the critical window). */
static int check_original(struct plan *p, struct failure *f) {
  static uint8_t buf[65536];
  for (int i = 0; i < p->nfuncs; i++) {
    struct func *fn = &p->funcs[i];
    for (uint64_t o = 0; o < fn->size; o += sizeof buf) {
      size_t n = fn->size - o < sizeof buf ? (size_t)(fn->size - o) : sizeof buf;
      if (mem_read(T.memfd, p->base + fn->offset + o, buf, n) != (ssize_t)n)
        return fail(f, R_ERROR, "verify", EIO, "cannot read function at +0x%lx", fn->offset);
      if (memcmp(buf, ORIG[i] + o, n) != 0)
        return fail(f, R_BYTES_MISMATCH, "verify", 0, "function at +0x%lx changed while it was being patched", fn->offset);
    }
  }
  return 0;
}

static void jmp_bytes(uint64_t from, uint64_t to, uint8_t out[5]) {
  int32_t rel = (int32_t)(int64_t)(to - (from + 5));
  out[0] = 0xe9;
  memcpy(out + 1, &rel, 4);
}

static int check_patched(struct plan *p, struct failure *f) {
  for (int i = 0; i < p->nfuncs; i++) {
    struct func *fn = &p->funcs[i];
    uint8_t want[5], have[5];
    jmp_bytes(p->base + fn->offset, p->code_addr + fn->code_offset, want);
    if (mem_read(T.memfd, p->base + fn->offset, have, 5) != 5) return fail(f, R_ERROR, "verify", EIO, "cannot read");
    if (memcmp(want, have, 5) != 0)
      return fail(f, R_BYTES_MISMATCH, "verify", 0, "function at +0x%lx is not patched by the code at 0x%llx", fn->offset,
                  (unsigned long long)p->code_addr);
    if (!fn->has_saved) return fail(f, R_ERROR, "verify", EINVAL, "no saved bytes for function at +0x%lx", fn->offset);
    uint8_t *buf = malloc(fn->size), sum[32];
    if (!buf) return fail(f, R_ERROR, "verify", ENOMEM, "out of memory");
    ssize_t got = mem_read(T.memfd, p->base + fn->offset, buf, fn->size);
    memcpy(buf, fn->saved, 5);
    sha256(buf, fn->size, sum);
    free(buf);
    if (got != (ssize_t)fn->size || memcmp(sum, fn->sha, 32) != 0)
      return fail(f, R_BYTES_MISMATCH, "verify", 0, "saved bytes of function at +0x%lx do not restore the original", fn->offset);
  }
  return 0;
}

/* Picks a free, page-aligned address for `len` bytes from which every jump and pc32 reference reaches. */
static int pick_address(struct plan *p, uint64_t len, uint64_t skip_below, uint64_t *out) {
  uint64_t lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < p->nfuncs; i++) {
    uint64_t a = p->base + p->funcs[i].offset;
    if (a < lo) lo = a;
    if (a + 5 > hi) hi = a + 5;
  }
  for (int i = 0; i < p->nrelocs; i++)
    if (p->relocs[i].library && !p->relocs[i].abs64) {
      uint64_t a = p->base + p->relocs[i].target;
      if (a < lo) lo = a;
      if (a > hi) hi = a;
    }
  int64_t win_lo = (int64_t)hi - REACH, win_hi = (int64_t)lo + REACH - (int64_t)len;
  if (win_lo < 0x10000) win_lo = 0x10000;
  int64_t best = -1;
  uint64_t best_d = UINT64_MAX;
  for (int m = 0; m <= NMAPS; m++) {
    int64_t gs = m == 0 ? 0x10000 : (int64_t)MAPS[m - 1].end + 4096;
    int64_t ge = m == NMAPS ? 0x7ffffffff000LL : (int64_t)MAPS[m].start - 4096;
    int64_t a = gs > win_lo ? gs : win_lo;
    int64_t b = (ge - (int64_t)len < win_hi ? ge - (int64_t)len : win_hi);
    a = (a + 4095) & ~4095LL;
    b &= ~4095LL;
    if (a > b) continue;
    int64_t c = (int64_t)p->base < a ? a : ((int64_t)p->base > b ? b : (int64_t)p->base & ~4095LL);
    if ((uint64_t)c < skip_below && skip_below) continue;
    uint64_t d = (uint64_t)(c > (int64_t)p->base ? c - (int64_t)p->base : (int64_t)p->base - c);
    if (d < best_d) best_d = d, best = c;
  }
  if (best < 0) return -1;
  *out = (uint64_t)best;
  return 0;
}

static int write_checked(uint64_t addr, const void *buf, size_t len) {
  uint8_t back[4096];
  if (mem_write(T.memfd, addr, buf, len) != (ssize_t)len) return -1;
  for (size_t o = 0; o < len; o += sizeof back) {
    size_t n = len - o < sizeof back ? len - o : sizeof back;
    if (mem_read(T.memfd, addr + o, back, n) != (ssize_t)n || memcmp(back, (const uint8_t *)buf + o, n) != 0) return -1;
  }
  return 0;
}

static int relocate(struct plan *p, uint8_t *code, uint64_t at, struct failure *f) {
  for (int i = 0; i < p->nrelocs; i++) {
    struct reloc *r = &p->relocs[i];
    uint64_t s = (r->library ? p->base : at) + r->target + (uint64_t)r->addend;
    if (r->abs64) {
      memcpy(code + r->offset, &s, 8);
    } else {
      int64_t v = (int64_t)(s - (at + r->offset));
      if (v < INT32_MIN || v > INT32_MAX) return fail(f, R_NO_ADDRESS_SPACE, "relocate", ERANGE, "relocation %d does not reach", i);
      int32_t v32 = (int32_t)v;
      memcpy(code + r->offset, &v32, 4);
    }
  }
  return 0;
}

static int unmap_code(uint64_t addr, uint64_t len, struct failure *f) {
  uint64_t args[6] = {addr, len, 0, 0, 0, 0};
  int64_t ret;
  if (inject_syscall(&T, SYS_munmap, args, &ret, f) != 0) return -1;
  return ret == 0 ? 0 : fail(f, R_ERROR, "munmap", (int)-ret, "munmap failed");
}

/*
 * Maps `len` bytes read+execute near the library, inside the process (an
 * injected mmap); the threads are stopped. Sets *at. Nothing the process
 * runs can reach the new mapping yet.
 */
static int map_code(struct plan *p, uint64_t len, uint64_t *at, struct failure *f) {
  uint64_t skip = 0;
  int64_t ret = -EEXIST;
  for (int tries = 0; tries < 8 && ret == -EEXIST; tries++) {
    if (pick_address(p, len, skip, at) != 0)
      return fail(f, R_NO_ADDRESS_SPACE, "place", ENOMEM, "no free range within 2 GiB of the library");
    uint64_t args[6] = {*at, len, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, (uint64_t)-1, 0};
    if (inject_syscall(&T, SYS_mmap, args, &ret, f) != 0) return -1;
    skip = *at + len;
  }
  if (ret == -EPERM || ret == -EACCES) return fail(f, R_SECCOMP, "mmap", (int)-ret, "the process may not map executable memory");
  if (ret < 0 && ret > -4096) return fail(f, R_NO_ADDRESS_SPACE, "mmap", (int)-ret, "mmap near the library failed");
  if ((uint64_t)ret != *at) {
    unmap_code((uint64_t)ret, len, f);
    return fail(f, R_NO_ADDRESS_SPACE, "mmap", EEXIST, "the kernel placed the code elsewhere");
  }
  return 0;
}

/* Takes the mapping back after a failure, in a stop of its own if the threads run; best effort. */
static void unmap_after_failure(struct plan *p, uint64_t at, uint64_t len) {
  struct failure uf = {0};
  if (T.nthreads == 0 && stop_retrying(p, &uf) != 0) return; /* gone or unreachable: nothing runs the code anyway */
  unmap_code(at, len, &uf);
}

/*
 * Apply, in three steps so that the process is held as briefly as possible
 * where it matters:
 *   1. no stop: the build-id, the mappings, the functions' bytes and hashes;
 *   2. a short stop: is it dumpable, and the code block mapped next to the
 *      library (two injected syscalls); nothing reachable changes, so no
 *      safety check is needed and the threads go on at once;
 *   3. threads running: the code relocated for that address and written into
 *      the mapping (unreachable until the jumps), read back;
 *   4. the critical stop: the functions still hold the hashed bytes, no
 *      thread is inside one (instruction pointers, stacks), the jumps.
 */
static int do_apply(struct plan *p, struct failure *f, int *attempts, uint8_t saved[][5]) {
  struct range r[MAX_FUNCS];
  for (int i = 0; i < p->nfuncs; i++) {
    if (p->funcs[i].size < 5)
      return fail(f, R_FUNCTION_TOO_SHORT, "plan", EINVAL, "function at +0x%lx has %lu bytes, a jump needs 5", p->funcs[i].offset,
                  p->funcs[i].size);
    r[i] = (struct range){p->base + p->funcs[i].offset, p->base + p->funcs[i].offset + p->funcs[i].size, 0};
  }
  if (precheck(p, f) != 0) return -1;
  if (read_original(p, f) != 0) return -1;
  uint8_t *code = malloc(p->text_size);
  if (!code) return fail(f, R_ERROR, "relocate", ENOMEM, "out of memory");
  uint64_t len = (p->text_size + 4095) & ~4095ULL, at = 0;
  /* Step 2: the short stop. */
  if (stop_retrying(p, f) != 0 || check_dumpable(f) != 0 || map_code(p, len, &at, f) != 0) {
    free(code);
    return -1;
  }
  resume_all(&T);
  p->code_addr = at;
  /* Step 3: the code, while the threads run. */
  memcpy(code, p->text, p->text_size);
  if (relocate(p, code, at, f) != 0 || write_checked(at, code, p->text_size) != 0) {
    free(code);
    if (f->reason == R_NONE) fail(f, R_ERROR, "write-code", errno, "cannot write the code");
    unmap_after_failure(p, at, len);
    return -1;
  }
  free(code);
  /* Step 4: the critical stop. */
  if (stop_when_idle(p, r, p->nfuncs, check_original, 0, attempts, f) != 0) {
    unmap_after_failure(p, at, len);
    return -1;
  }
  int written = 0;
  for (; written < p->nfuncs; written++) {
    struct func *fn = &p->funcs[written];
    uint64_t entry = p->base + fn->offset;
    uint8_t j[5];
    memcpy(saved[written], ORIG[written], 5);
    jmp_bytes(entry, at + fn->code_offset, j);
    if (write_checked(entry, j, 5) != 0) break;
  }
  if (written < p->nfuncs) {
    int err = errno;
    for (int i = written; i >= 0; i--) mem_write(T.memfd, p->base + p->funcs[i].offset, saved[i], 5);
    fail(f, R_ERROR, "write-jump", err, "cannot write the jump at function %d", written);
    unmap_code(at, len, f);
    return -1;
  }
  return 0;
}

/*
 * Revert. Putting the entry bytes back is safe whatever the threads do: none
 * can be inside a 5-byte jump but at its first byte. That is the critical
 * stop; the threads then go on (and leave the code block). Only unmapping the
 * code needs it unused: it is done in a later short stop, tried again (with
 * the same bounded run-out and back-off) while a thread still runs in it or a
 * stack may return into it; after the last attempt the code stays mapped
 * (4 KiB per page) and the result says why.
 */
static int do_revert(struct plan *p, struct failure *f, int *attempts, int *unmapped) {
  struct range none = {0, 0, 0};
  if (precheck(p, f) != 0) return -1;
  if (stop_when_idle(p, &none, 0, check_patched, 0, attempts, f) != 0) return -1;
  for (int i = 0; i < p->nfuncs; i++) {
    if (write_checked(p->base + p->funcs[i].offset, p->funcs[i].saved, 5) != 0) {
      int err = errno;
      uint8_t j[5];
      for (int k = 0; k <= i; k++) { /* put back what was there: still patched, consistently */
        jmp_bytes(p->base + p->funcs[k].offset, p->code_addr + p->funcs[k].code_offset, j);
        mem_write(T.memfd, p->base + p->funcs[k].offset, j, 5);
      }
      return fail(f, R_ERROR, "restore", err, "cannot restore function at +0x%lx", p->funcs[i].offset);
    }
  }
  /* The original code is back: the threads go on, and leave the code block by themselves. */
  resume_all(&T);
  struct range r = {p->code_addr, p->code_addr + p->text_size, 1};
  char why[200] = "";
  for (int a = 1; a <= p->attempts; a++) {
    struct failure uf = {0};
    if (stop_retrying(p, &uf) != 0) {
      snprintf(f->message, sizeof f->message, "code left mapped: %.200s", uf.message);
      return 0;
    }
    NMAPS = read_maps(p->pid, MAPS, MAX_MAPS);
    if (!threads_busy(&r, 1, why, sizeof why)) {
      *unmapped = unmap_code(p->code_addr, (p->text_size + 4095) & ~4095ULL, &uf) == 0;
      if (!*unmapped) snprintf(f->message, sizeof f->message, "munmap: %.200s", uf.message);
      return 0;
    }
    resume_all(&T);
    if (a < p->attempts) backoff(a);
  }
  snprintf(f->message, sizeof f->message, "code left mapped: %s", why);
  return 0;
}

/* Resumes the process and prints the one result line of this plan. */
static void report(int apply, const char *op, struct plan *pp, struct failure *f, int rc, int attempts, int unmapped,
                   uint8_t saved[][5]) {
  const struct plan *p = pp;
  int threads = T.nthreads;
  resume_all(&T);
  printf("{\"ok\":%s,\"op\":\"%s\",\"pid\":%d,\"attempts\":%d,\"threads\":%d,\"stopUs\":%lld,\"stoppingUs\":%lld,\"holdUs\":%lld",
         rc == 0 ? "true" : "false", op, (int)p->pid, attempts, threads, (long long)(T.stopped_ns / 1000),
         (long long)(T.stopping_ns / 1000), (long long)(T.max_hold_ns / 1000));
  if (rc == 0) {
    printf(",\"code\":\"0x%llx\",\"codeSize\":%lu", (unsigned long long)p->code_addr, (unsigned long)p->text_size);
    if (apply) {
      printf(",\"functions\":[");
      for (int i = 0; i < p->nfuncs; i++) {
        printf("%s{\"offset\":%lu,\"saved\":\"", i ? "," : "", (unsigned long)p->funcs[i].offset);
        hex(saved[i], 5);
        printf("\"}");
      }
      printf("]");
    } else {
      printf(",\"unmapped\":%s", unmapped ? "true" : "false");
      if (!unmapped) {
        printf(",\"message\":");
        json_str(f->message);
      }
    }
  } else {
    printf(",\"reason\":\"%s\",\"step\":\"%s\",\"errno\":%d,\"message\":", reason_name(f->reason), f->step ? f->step : "",
           f->err);
    json_str(f->message);
  }
  printf("}\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  const char *op = argc > 1 ? argv[1] : "";
  if (!strcmp(op, "version")) {
    printf("{\"ok\":true,\"op\":\"version\",\"version\":\"%s\"}\n", VERSION);
    return 0;
  }
  int apply = !strcmp(op, "apply");
  if (!apply && strcmp(op, "revert") != 0) {
    fprintf(stderr, "usage: livegraft-uspatch apply|revert < plan, or livegraft-uspatch version\n");
    return 64;
  }
  /*
   * Be scheduled at once when a stopped thread reports: the process waits on
   * us. As high as the target's threads get while they are held (trace.c), so
   * that they never crowd us out. Needs CAP_SYS_NICE; harmless otherwise.
   */
  setpriority(PRIO_PROCESS, 0, -20);
  static struct plan p;
  static uint8_t saved[MAX_FUNCS][5];
  char err[256];
  int more = 1, worst = 0, count = 0;
  while (more) {
    int pr = plan_read(stdin, &p, err, sizeof err, &more);
    if (pr == 1 && count > 0) break;
    count++;
    if (pr != 0) {
      printf("{\"ok\":false,\"op\":\"%s\",\"pid\":%d,\"reason\":\"error\",\"step\":\"plan\",\"errno\":%d,\"message\":", op,
             (int)p.pid, EINVAL);
      json_str(pr == 1 ? "empty plan" : err);
      printf("}\n");
      fflush(stdout);
      worst = 1;
      continue;
    }
    if (T.memfd > 0) close(T.memfd);
    memset(&T, 0, sizeof T);
    struct failure f = {0};
    int attempts = 0, unmapped = 0;
    int rc = apply ? do_apply(&p, &f, &attempts, saved) : do_revert(&p, &f, &attempts, &unmapped);
    if (rc != 0) worst = 1;
    report(apply, op, &p, &f, rc, attempts, unmapped, saved);
  }
  plan_free(&p);
  free_original();
  return worst;
}
