/* What one call of the helper does, read from standard input (see plan.c for the format). */
#ifndef LG_PLAN_H
#define LG_PLAN_H

#include "common.h"

struct func {
  uint64_t offset, size, code_offset;
  uint8_t sha[32];
  uint8_t saved[5];
  int has_saved;
};
struct reloc {
  uint64_t offset, target;
  int64_t addend;
  int abs64;   /* else pc32 */
  int library; /* else code */
};
struct plan {
  pid_t pid;
  uint64_t base;
  uint8_t build_id[64];
  int build_id_len;
  uint8_t *text;
  uint64_t text_size;
  uint64_t code_addr; /* revert: where the code was mapped */
  struct func funcs[MAX_FUNCS];
  int nfuncs;
  struct reloc *relocs;
  int nrelocs;
  int attempts;
  int timeout_ms;
};

/* Reads one plan. 0: read; 1: nothing more; -1: unreadable (err says why). *more: another plan follows. */
int plan_read(FILE *in, struct plan *p, char *err, size_t errlen, int *more);
void plan_free(struct plan *p);

#endif
