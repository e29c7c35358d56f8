/*
 * Seccomp: before injecting a syscall, run every filter of the thread (read
 * with PTRACE_SECCOMP_GET_FILTER) on that syscall's exact arguments, so that
 * a filter that would kill the process or fail the call refuses the patch
 * instead. Classic BPF, as the kernel's seccomp uses it.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#include "common.h"

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

#define MAX_INSNS 4096

static uint32_t data_word(const struct seccomp_data *d, uint32_t off, int *ok) {
  if (off % 4 != 0 || off + 4 > sizeof *d) {
    *ok = 0;
    return 0;
  }
  uint32_t v;
  memcpy(&v, (const uint8_t *)d + off, 4);
  return v;
}

/* Runs one filter. Returns its 32-bit result, or -1 if it cannot be run (then the caller refuses). */
static int64_t run_filter(const struct sock_filter *p, int n, const struct seccomp_data *d) {
  uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = {0};
  int ok = 1;
  for (int pc = 0; pc < n && ok; pc++) {
    const struct sock_filter *f = &p[pc];
    uint32_t k = f->k;
    switch (f->code) {
      case BPF_LD | BPF_W | BPF_ABS: A = data_word(d, k, &ok); break;
      case BPF_LD | BPF_W | BPF_LEN: A = sizeof *d; break;
      case BPF_LDX | BPF_W | BPF_LEN: X = sizeof *d; break;
      case BPF_LD | BPF_IMM: A = k; break;
      case BPF_LDX | BPF_IMM: X = k; break;
      case BPF_LD | BPF_MEM: if (k >= BPF_MEMWORDS) return -1; A = M[k]; break;
      case BPF_LDX | BPF_MEM: if (k >= BPF_MEMWORDS) return -1; X = M[k]; break;
      case BPF_ST: if (k >= BPF_MEMWORDS) return -1; M[k] = A; break;
      case BPF_STX: if (k >= BPF_MEMWORDS) return -1; M[k] = X; break;
      case BPF_ALU | BPF_ADD | BPF_K: A += k; break;
      case BPF_ALU | BPF_ADD | BPF_X: A += X; break;
      case BPF_ALU | BPF_SUB | BPF_K: A -= k; break;
      case BPF_ALU | BPF_SUB | BPF_X: A -= X; break;
      case BPF_ALU | BPF_MUL | BPF_K: A *= k; break;
      case BPF_ALU | BPF_MUL | BPF_X: A *= X; break;
      case BPF_ALU | BPF_DIV | BPF_K: if (!k) return -1; A /= k; break;
      case BPF_ALU | BPF_DIV | BPF_X: if (!X) return 0; A /= X; break;
      case BPF_ALU | BPF_MOD | BPF_K: if (!k) return -1; A %= k; break;
      case BPF_ALU | BPF_MOD | BPF_X: if (!X) return 0; A %= X; break;
      case BPF_ALU | BPF_AND | BPF_K: A &= k; break;
      case BPF_ALU | BPF_AND | BPF_X: A &= X; break;
      case BPF_ALU | BPF_OR | BPF_K: A |= k; break;
      case BPF_ALU | BPF_OR | BPF_X: A |= X; break;
      case BPF_ALU | BPF_XOR | BPF_K: A ^= k; break;
      case BPF_ALU | BPF_XOR | BPF_X: A ^= X; break;
      case BPF_ALU | BPF_LSH | BPF_K: A = k < 32 ? A << k : 0; break;
      case BPF_ALU | BPF_LSH | BPF_X: A = X < 32 ? A << X : 0; break;
      case BPF_ALU | BPF_RSH | BPF_K: A = k < 32 ? A >> k : 0; break;
      case BPF_ALU | BPF_RSH | BPF_X: A = X < 32 ? A >> X : 0; break;
      case BPF_ALU | BPF_NEG: A = -A; break;
      case BPF_JMP | BPF_JA: pc += (int)k; break;
      case BPF_JMP | BPF_JEQ | BPF_K: pc += A == k ? f->jt : f->jf; break;
      case BPF_JMP | BPF_JEQ | BPF_X: pc += A == X ? f->jt : f->jf; break;
      case BPF_JMP | BPF_JGT | BPF_K: pc += A > k ? f->jt : f->jf; break;
      case BPF_JMP | BPF_JGT | BPF_X: pc += A > X ? f->jt : f->jf; break;
      case BPF_JMP | BPF_JGE | BPF_K: pc += A >= k ? f->jt : f->jf; break;
      case BPF_JMP | BPF_JGE | BPF_X: pc += A >= X ? f->jt : f->jf; break;
      case BPF_JMP | BPF_JSET | BPF_K: pc += (A & k) ? f->jt : f->jf; break;
      case BPF_JMP | BPF_JSET | BPF_X: pc += (A & X) ? f->jt : f->jf; break;
      case BPF_MISC | BPF_TAX: X = A; break;
      case BPF_MISC | BPF_TXA: A = X; break;
      case BPF_RET | BPF_K: return k;
      case BPF_RET | BPF_A: return A;
      default: return -1;
    }
  }
  return -1;
}

enum seccomp_verdict seccomp_check(pid_t tid, int nr, uint64_t ip, const uint64_t args[6]) {
  char mode[16];
  if (proc_status_field(tid, "Seccomp", mode, sizeof mode) != 0) return SC_UNKNOWN;
  if (strcmp(mode, "0") == 0) return SC_ALLOW;
  if (strcmp(mode, "2") != 0) return SC_DENY; /* strict mode: only read/write/exit */
  struct seccomp_data d = {.nr = nr, .arch = AUDIT_ARCH_X86_64, .instruction_pointer = ip};
  for (int i = 0; i < 6; i++) d.args[i] = args[i];
  static struct sock_filter prog[MAX_INSNS];
  for (unsigned long idx = 0; idx < 1024; idx++) {
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)idx, NULL);
    if (n < 0) return errno == ENOENT && idx > 0 ? SC_ALLOW : SC_UNKNOWN;
    if (n == 0 || n > MAX_INSNS) return SC_UNKNOWN;
    if (ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)idx, prog) != n) return SC_UNKNOWN;
    int64_t r = run_filter(prog, (int)n, &d);
    if (r < 0) return SC_UNKNOWN;
    uint32_t action = (uint32_t)r & SECCOMP_RET_ACTION_FULL;
    if (action != SECCOMP_RET_ALLOW && action != SECCOMP_RET_LOG) return SC_DENY;
  }
  return SC_UNKNOWN;
}
