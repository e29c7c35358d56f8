#!/usr/bin/env bash
# Sets up a fresh Debian machine for Livegraft: the system packages the VM
# tests and the builder need, then the npm workspace (which brings Node 24).
# Idempotent and quiet when everything is already there; loud when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  linux-headers-amd64   # kbuild tree the builder compiles fixes against
  qemu-system-x86       # the real kernel runs in a TCG guest
  busybox-static        # guest userland
  cpio                  # initramfs archives
  kmod                  # depmod for the guest's module tree
  e2fsprogs             # the guest's persistent state disk
  ipxe-qemu             # QEMU's NIC option ROM (e1000)
  gcc make              # kbuild
  libc6-dev             # static libc for the agent's native user-space patch helper
  gcc-12 flex bison bc  # the patch factory compiles Debian's kernel source with its own toolchain
  libelf-dev libssl-dev # objtool and the kernel's host tools
  dwarves               # pahole: its version is part of the kernel config
  xz-utils patch        # the source tarball; applying upstream fixes
  dpkg-dev gawk         # user-space fixes: Debian source packages (dpkg-source, dpkg-buildflags), glibc's configure
  binutils              # readelf, used by tests as an independent ELF check
  postgresql            # storage contract tests and multi-node tests run a private PostgreSQL
  poppler-utils         # compliance PDF reports are checked by rendering them
  chromium              # dashboard browser tests (driven by playwright-core)
  fonts-dejavu-core     # readable screenshots; the compliance PDF embeds DejaVu Sans
  fonts-droid-fallback  # the compliance PDF's font for CJK characters DejaVu lacks
  lintian               # the agent's Debian package is checked with lintian
  systemd               # systemd-analyze verify checks the units
  debootstrap           # package install tests run in a minimal Debian 12 root
  prometheus            # promtool checks and unit-tests the alert rules
  shellcheck            # install.sh is checked with shellcheck
  zsh man-db            # the generated zsh completion and man pages are exercised
  ansible-lint          # the Ansible role in deploy/ansible
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The headers metapackage may have moved on since the last run: make sure the
# release it points at is installed too.
release=$(apt-cache depends linux-headers-amd64 | sed -n 's/.*Depends: linux-headers-//p' | head -n1)
if [ -z "$release" ]; then
  echo "setup: cannot resolve the kernel release behind linux-headers-amd64" >&2
  exit 1
fi
if [ ! -f "/usr/src/linux-headers-$release/Makefile" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "linux-headers-$release" >/dev/null
fi

# npm workspace: reinstall only when the lockfile changed since the last install.
stamp=node_modules/.livegraft-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: npm ci" >&2
  npm ci --no-fund --no-audit --loglevel=error
  echo "$want" > "$stamp"
fi
v=$(node_modules/.bin/node --version)
case "$v" in
  v24.*) ;;
  *) echo "setup: expected Node 24 from the node@24 devDependency, got $v" >&2; exit 1 ;;
esac
