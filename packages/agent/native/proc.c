/* The target's /proc files and memory: status fields, mappings, build-id, a syscall instruction. */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

/* Copies the value of `Field:` from /proc/PID/status (trimmed). Returns 0, or -errno. */
int proc_status_field(pid_t pid, const char *field, char *out, size_t outlen) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *fp = fopen(path, "re");
  if (!fp) return -errno;
  size_t flen = strlen(field);
  int rc = -ENOENT;
  while (fgets(line, sizeof line, fp)) {
    if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
      char *v = line + flen + 1;
      while (*v == ' ' || *v == '\t') v++;
      v[strcspn(v, "\n")] = 0;
      snprintf(out, outlen, "%s", v);
      rc = 0;
      break;
    }
  }
  fclose(fp);
  return rc;
}

/* Reads /proc/PID/maps into `maps` (sorted by address, as the kernel lists them). Returns the count or -errno. */
int read_maps(pid_t pid, struct map *maps, int max) {
  char path[64], line[4096];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *fp = fopen(path, "re");
  if (!fp) return -errno;
  int n = 0;
  while (n < max && fgets(line, sizeof line, fp)) {
    unsigned long long s, e;
    char perms[8];
    if (sscanf(line, "%llx-%llx %7s", &s, &e, perms) != 3) continue;
    maps[n].start = s;
    maps[n].end = e;
    maps[n].exec = perms[2] == 'x';
    n++;
  }
  fclose(fp);
  return n;
}

ssize_t mem_read(int memfd, uint64_t addr, void *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = pread(memfd, (char *)buf + done, len - done, (off_t)(addr + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return done > 0 ? (ssize_t)done : r;
    done += (size_t)r;
  }
  return (ssize_t)done;
}

ssize_t mem_write(int memfd, uint64_t addr, const void *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = pwrite(memfd, (const char *)buf + done, len - done, (off_t)(addr + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return done > 0 ? (ssize_t)done : r;
    done += (size_t)r;
  }
  return (ssize_t)done;
}

/* The NT_GNU_BUILD_ID of the ELF image mapped at `base`. Returns its length, or -errno. */
int build_id_at(int memfd, uint64_t base, uint8_t *out, size_t max) {
  Elf64_Ehdr eh;
  if (mem_read(memfd, base, &eh, sizeof eh) != (ssize_t)sizeof eh) return -EIO;
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) return -ENOEXEC;
  if (eh.e_phnum == 0 || eh.e_phnum > 64 || eh.e_phentsize != sizeof(Elf64_Phdr)) return -ENOEXEC;
  Elf64_Phdr ph[64];
  size_t phlen = eh.e_phnum * sizeof(Elf64_Phdr);
  if (mem_read(memfd, base + eh.e_phoff, ph, phlen) != (ssize_t)phlen) return -EIO;
  for (int i = 0; i < eh.e_phnum; i++) {
    if (ph[i].p_type != PT_NOTE || ph[i].p_memsz > 65536) continue;
    uint8_t notes[65536];
    size_t len = ph[i].p_memsz;
    if (mem_read(memfd, base + ph[i].p_vaddr, notes, len) != (ssize_t)len) continue;
    size_t off = 0;
    while (off + sizeof(Elf64_Nhdr) <= len) {
      Elf64_Nhdr *nh = (Elf64_Nhdr *)(notes + off);
      size_t name = off + sizeof *nh, desc = name + ((nh->n_namesz + 3) & ~3u);
      size_t next = desc + ((nh->n_descsz + 3) & ~3u);
      if (next > len) break;
      if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(notes + name, "GNU", 4) == 0) {
        if (nh->n_descsz > max) return -ENOSPC;
        memcpy(out, notes + desc, nh->n_descsz);
        return (int)nh->n_descsz;
      }
      off = next;
    }
  }
  return -ENOENT;
}

/* Address of a `syscall` instruction (0f 05) in an executable mapping, the one holding `prefer` first; 0 if none. */
uint64_t find_syscall_insn(int memfd, const struct map *maps, int n, uint64_t prefer) {
  static uint8_t buf[65536];
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < n; i++) {
      const struct map *m = &maps[i];
      int holds = prefer >= m->start && prefer < m->end;
      if (!m->exec || (pass == 0) != holds || m->start >= 0x800000000000ULL) continue;
      for (uint64_t a = m->start; a < m->end; a += sizeof buf - 1) {
        size_t len = m->end - a < sizeof buf ? (size_t)(m->end - a) : sizeof buf;
        ssize_t r = mem_read(memfd, a, buf, len);
        if (r < 2) break;
        for (ssize_t k = 0; k + 1 < r; k++)
          if (buf[k] == 0x0f && buf[k + 1] == 0x05) return a + (uint64_t)k;
      }
    }
  }
  return 0;
}
