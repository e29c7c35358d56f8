#!/usr/bin/env bash
# Builds the user-space patch helper: static (static-pie), from this directory's
# C source, with Debian's gcc and Debian's hardening flags (PIE, fortify, stack
# protector, full RELRO). Output: ../dist/livegraft-uspatch (rebuilt when a
# source or this script changed).
set -euo pipefail
cd "$(dirname "$0")"
out=../dist/livegraft-uspatch
mkdir -p ../dist
if [ -x "$out" ] && [ -z "$(find . -name '*.[ch]' -newer "$out" -print -quit)" ] && [ build.sh -ot "$out" ]; then
  exit 0
fi
${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -fPIE -static-pie -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
  -Wl,-z,relro,-z,now -o "$out.tmp" main.c plan.c trace.c proc.c bpf.c sha256.c
mv "$out.tmp" "$out"
