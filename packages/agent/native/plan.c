/*
 * The plan, one directive per line on standard input (numbers in decimal,
 * addresses and bytes in hex):
 *   pid N                       the process
 *   base HEX                    load base of the library in it
 *   buildid HEX                 the library's build-id (checked in memory at base)
 *   text HEX                    apply: the new code (relocations not applied)
 *   reloc OFF pc32|abs64 library|code TARGET ADDEND
 *   func OFF SIZE SHA256 CODEOFF [SAVED]   a replaced function; SAVED: its first 5 bytes (revert)
 *   code HEX SIZE               revert: where the code is mapped and its size
 *   attempts N, timeout-ms N    bounds (defaults 20 and 2000)
 *   next                        ends this plan; another follows (one result line each)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

static int unhex(const char *s, uint8_t *out, size_t max) {
  size_t n = strlen(s);
  if (n % 2 || n / 2 > max) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return (int)(n / 2);
}

void plan_free(struct plan *p) {
  free(p->text);
  free(p->relocs);
  p->text = NULL;
  p->relocs = NULL;
}

int plan_read(FILE *in, struct plan *p, char *err, size_t errlen, int *more) {
  plan_free(p);
  memset(p, 0, sizeof *p);
  *more = 0;
  int lines = 0, bad_line = 0;
  p->attempts = 20;
  p->timeout_ms = 2000;
  p->relocs = calloc(MAX_RELOCS, sizeof *p->relocs);
  if (!p->relocs) return snprintf(err, errlen, "out of memory"), -1;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int lineno = 0;
  while ((len = getline(&line, &cap, in)) > 0) {
    lineno++;
    line[strcspn(line, "\r\n")] = 0;
    char *arg = strchr(line, ' ');
    if (arg) *arg++ = 0;
    else arg = line + strlen(line);
    int ok = 1;
    if (line[0] == 0 || line[0] == '#') continue;
    if (!strcmp(line, "next")) {
      *more = 1;
      break;
    }
    lines++;
    if (bad_line) continue; /* skip to the end of a plan that cannot be read */
    if (!strcmp(line, "pid")) ok = sscanf(arg, "%d", &p->pid) == 1 && p->pid > 0;
    else if (!strcmp(line, "base")) ok = sscanf(arg, "%lx", &p->base) == 1;
    else if (!strcmp(line, "buildid")) ok = (p->build_id_len = unhex(arg, p->build_id, sizeof p->build_id)) > 0;
    else if (!strcmp(line, "attempts")) ok = sscanf(arg, "%d", &p->attempts) == 1 && p->attempts > 0 && p->attempts <= 1000;
    else if (!strcmp(line, "timeout-ms")) ok = sscanf(arg, "%d", &p->timeout_ms) == 1 && p->timeout_ms > 0 && p->timeout_ms <= 60000;
    else if (!strcmp(line, "code")) ok = sscanf(arg, "%lx %lu", &p->code_addr, &p->text_size) == 2;
    else if (!strcmp(line, "text")) {
      size_t n = strlen(arg) / 2;
      free(p->text);
      p->text = malloc(n ? n : 1);
      ok = p->text && n > 0 && n <= 16 * 1024 * 1024 && unhex(arg, p->text, n) == (int)n;
      p->text_size = n;
    } else if (!strcmp(line, "reloc")) {
      char kind[8], base[8];
      struct reloc *r = &p->relocs[p->nrelocs];
      ok = p->nrelocs < MAX_RELOCS && sscanf(arg, "%lu %7s %7s %lu %ld", &r->offset, kind, base, &r->target, &r->addend) == 5 &&
           (!strcmp(kind, "pc32") || !strcmp(kind, "abs64")) && (!strcmp(base, "library") || !strcmp(base, "code"));
      if (ok) {
        r->abs64 = !strcmp(kind, "abs64");
        r->library = !strcmp(base, "library");
        p->nrelocs++;
      }
    } else if (!strcmp(line, "func")) {
      char sha[80], saved[16] = "";
      if (p->nfuncs >= MAX_FUNCS) {
        ok = 0;
        goto bad;
      }
      struct func *fn = &p->funcs[p->nfuncs];
      int n = sscanf(arg, "%lu %lu %79s %lu %15s", &fn->offset, &fn->size, sha, &fn->code_offset, saved);
      ok = n >= 4 && unhex(sha, fn->sha, 32) == 32 && (n == 4 || unhex(saved, fn->saved, 5) == 5);
      fn->has_saved = n == 5;
      if (ok) p->nfuncs++;
    } else ok = 0;
  bad:
    if (!ok) {
      snprintf(err, errlen, "plan line %d: cannot read '%.100s'", lineno, line);
      bad_line = 1;
    }
  }
  free(line);
  if (bad_line) return -1;
  if (lines == 0 && !*more) return 1; /* nothing more */
  if (!p->pid || !p->base || !p->build_id_len || !p->nfuncs || !p->text_size)
    return snprintf(err, errlen, "plan: pid, base, buildid, func and text/code are required"), -1;
  for (int i = 0; i < p->nrelocs; i++) {
    uint64_t w = p->relocs[i].abs64 ? 8 : 4;
    if (p->relocs[i].offset + w > p->text_size)
      return snprintf(err, errlen, "plan: relocation %d lies outside the code", i), -1;
  }
  for (int i = 0; i < p->nfuncs; i++)
    if (p->funcs[i].code_offset >= p->text_size)
      return snprintf(err, errlen, "plan: function %d enters outside the code", i), -1;
  return 0;
}
