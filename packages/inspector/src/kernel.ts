import { LivegraftError } from '@livegraft/protocol';
import { tryParseVersion, type UpstreamVersion } from './version.ts';
import { upstreamOfDebianVersion, type DebianMapping } from './debian.ts';

/** Pasted input is bounded: a /proc/version line is ~200 bytes. */
export const MAX_KERNEL_INPUT = 4096;

export type Distro = 'debian' | 'ubuntu' | 'other' | 'upstream';

export interface InspectionWarning {
  code: string;
  message: string;
}

/** What a kernel string says, resolved to the upstream version it is evaluated as. */
export interface KernelTarget {
  /** `uname -r` if one was found, else the bare version given. */
  release: string;
  distro: Distro;
  upstream: UpstreamVersion;
  /** Debian package version whose changelog fixes are subtracted, when known exactly. */
  debianPackageVersion: string | null;
  warnings: InspectionWarning[];
  /** Hosts with the same key share one evaluation. */
  key: string;
}

// Debian flavours are architecture names, optionally cloud-/rt- prefixed.
const DEBIAN_FLAVOUR =
  /^(?:cloud-|rt-)?(?:amd64|arm64|i386|686|686-pae|armmp|armmp-lpae|armel|marvell|rpi|powerpc64le|ppc64el|s390x|riscv64|loong64|mips\w*|octeon|loongson-3|m68k|sparc64|alpha-\w+|parisc\w*|4kc-malta|5kc-malta)$/;
const UBUNTU_FLAVOUR =
  /^(?:generic|lowlatency|generic-64k|generic-lpae|aws|azure|azure-fde|gcp|gke|gkeop|kvm|oracle|ibm|raspi|raspi-nolpae|nvidia|nvidia-lowlatency|intel-iotg|realtime|oem|virtual)$/;

const PROC_RE = /Linux version (\S+)/;
// The package version follows the build number (`#1 SMP ... Debian 6.1.192-2 (date)`); the
// compiler's `(Debian 12.2.0-14+deb12u1)` comes earlier in the line, so the last match wins.
const DEBIAN_PKG_RE = /\bDebian (\d+:)?(\d+\.\d+(?:\.\d+)?[-+~.\w]*-[\w.+~]+)/g;
// /proc/version_signature: "Ubuntu 5.15.0-91.101-generic 5.15.131"
const UBUNTU_SIG_RE = /\bUbuntu (\d+\.\d+\.\d+-\d+\.\d+)-(\S+) (\d+\.\d+\.\d+)\b/;
const RELEASE_RE = /^(\d+\.\d+(?:\.\d+){0,2})(.*)$/;

/** The Debian package version a kernel string names (`... Debian 6.1.192-3 (...)`), or null. */
export function debianPackageVersionIn(text: string): string | null {
  if (text.length > MAX_KERNEL_INPUT) return null;
  const m = [...text.matchAll(DEBIAN_PKG_RE)].at(-1);
  return m === undefined ? null : `${m[1] ?? ''}${m[2] as string}`;
}

/**
 * Parses a bare upstream version (`6.1.100`), a `uname -r` (`6.1.0-56-amd64`), a /proc/version
 * line, or several of them pasted together. Throws KERNEL_VERSION_UNKNOWN when the upstream base
 * cannot be told (a distribution ABI name without the package version or signature).
 */
export function parseKernel(input: string, debian: DebianMapping): KernelTarget {
  if (input.length > MAX_KERNEL_INPUT) {
    throw new LivegraftError('KERNEL_VERSION_UNKNOWN', `kernel string is longer than ${MAX_KERNEL_INPUT} characters`);
  }
  const text = input.trim();
  if (text === '') throw new LivegraftError('KERNEL_VERSION_UNKNOWN', 'no kernel version given');
  const warnings: InspectionWarning[] = [];
  const release = PROC_RE.exec(text)?.[1] ?? firstVersionToken(text);
  if (release === undefined) {
    throw unknown(text, 'no kernel release (like 6.1.100 or 6.1.0-56-amd64) found in it');
  }
  const rm = RELEASE_RE.exec(release);
  if (rm === null) throw unknown(text, `"${release}" does not start with a kernel version`);
  const numeric = rm[1] as string;
  const suffix = rm[2] as string;
  const parsed = tryParseVersion(numeric);
  if (parsed === undefined) throw unknown(text, `"${numeric}" is not a kernel version`);

  const debPkg = [...text.matchAll(DEBIAN_PKG_RE)].at(-1) ?? null;
  const ubuntuSig = UBUNTU_SIG_RE.exec(text);
  const flavour = /^-\d+-(.+)$/.exec(suffix)?.[1] ?? '';
  // x.y.0-N-flavour: distributions put an ABI number after x.y.0; the stable sublevel is elsewhere.
  const abiName = /^-\d+/.test(suffix) && parsed.mainline ? `${numeric}${/^-\d+/.exec(suffix)?.[0] ?? ''}` : null;

  const isDebian =
    debPkg !== null || DEBIAN_FLAVOUR.test(flavour) || /\+deb\d+/.test(suffix) || /\bDebian\b/.test(text);
  const isUbuntu = ubuntuSig !== null || UBUNTU_FLAVOUR.test(flavour) || /-Ubuntu\b|\bUbuntu\b/.test(text);

  if (isDebian && !isUbuntu) {
    if (debPkg !== null) {
      const pkg = `${debPkg[1] ?? ''}${debPkg[2] as string}`;
      const up = tryParseVersion(upstreamOfDebianVersion(pkg));
      if (up === undefined) throw unknown(text, `Debian package version ${pkg} has no upstream kernel version`);
      if (up.branch !== parsed.branch) {
        warnings.push({
          code: 'KERNEL_STRINGS_DISAGREE',
          message: `release ${release} is not in branch ${up.branch} of Debian package ${pkg}; the package version wins`,
        });
      }
      return debianTarget(release, up, pkg, debian, warnings);
    }
    if (abiName !== null) {
      const versions = debian.versionsForAbi(abiName);
      const oldest = versions[0];
      if (oldest !== undefined) {
        const up = tryParseVersion(upstreamOfDebianVersion(oldest));
        if (up !== undefined) {
          warnings.push({
            code: 'KERNEL_VERSION_AMBIGUOUS',
            message:
              `${release} names the Debian ABI ${abiName}, not the package version; ABI ${abiName} was built as ` +
              `${versions.join(', ')}. Evaluated as the oldest, ${oldest}: a newer build may have fewer CVEs. ` +
              `Paste /proc/version (it ends with "Debian <package version>") for an exact answer.`,
          });
          return debianTarget(release, up, oldest, debian, warnings);
        }
      }
      warnings.push({
        code: 'KERNEL_VERSION_AMBIGUOUS',
        message:
          `${release} names the Debian ABI ${abiName}, not the upstream version, and that ABI is not in the shipped ` +
          `changelogs. Evaluated as the first ${parsed.branch} release, so it over-reports everything fixed since. ` +
          `Paste /proc/version (it ends with "Debian <package version>") for an exact answer.`,
      });
      return target(release, 'debian', parsed, null, warnings);
    }
    warnings.push({
      code: 'DISTRO_FIXES_UNKNOWN',
      message:
        `${release} is a Debian kernel but the package version is not given, so fixes Debian backported ` +
        `beyond upstream ${parsed.text} are not subtracted. Paste /proc/version for an exact answer.`,
    });
    return target(release, 'debian', parsed, null, warnings);
  }

  if (isUbuntu) {
    if (ubuntuSig !== null) {
      const up = tryParseVersion(ubuntuSig[3] as string);
      if (up === undefined) throw unknown(text, `bad upstream version in the Ubuntu signature`);
      warnings.push({
        code: 'DISTRO_FIXES_UNKNOWN',
        message: `Ubuntu ${ubuntuSig[1]} evaluated as its upstream base ${up.text}; fixes Ubuntu backported beyond it are not known`,
      });
      return target(release, 'ubuntu', up, null, warnings);
    }
    if (abiName !== null) {
      throw unknown(
        text,
        `${release} is an Ubuntu ABI name: ${abiName} does not say which upstream ${parsed.branch}.y it is based on. ` +
          `Paste /proc/version_signature (e.g. "Ubuntu 5.15.0-91.101-generic 5.15.131") as well`,
      );
    }
  }

  if (abiName !== null) {
    throw unknown(
      text,
      `${release} looks like a distribution ABI name (${abiName}); the upstream stable version it is based on is not in it`,
    );
  }
  if (/^-rc\d+/.test(suffix)) {
    warnings.push({
      code: 'KERNEL_RELEASE_CANDIDATE',
      message: `${release} is a release candidate, evaluated as ${parsed.text}: fixes merged during its -rc cycle are not distinguished`,
    });
    return target(release, 'upstream', parsed, null, warnings);
  }
  if (suffix !== '' && !/^[-+]?$/.test(suffix)) {
    warnings.push({
      code: 'DISTRO_FIXES_UNKNOWN',
      message: `${release} evaluated as upstream ${parsed.text}; fixes its vendor backported beyond that are not known`,
    });
    return target(release, isUbuntu ? 'ubuntu' : 'other', parsed, null, warnings);
  }
  return target(release, 'upstream', parsed, null, warnings);
}

function debianTarget(
  release: string,
  up: UpstreamVersion,
  pkg: string,
  debian: DebianMapping,
  warnings: InspectionWarning[],
): KernelTarget {
  if (debian.fixesFor(pkg) === undefined) {
    warnings.push({
      code: 'DISTRO_FIXES_UNKNOWN',
      message: `Debian package ${pkg} is not in the CVE data's Debian changelogs; evaluated as upstream ${up.text} without Debian's own fixes (refresh the data with \`livegraft cve update\`)`,
    });
    return target(release, 'debian', up, null, warnings);
  }
  return target(release, 'debian', up, pkg, warnings);
}

function target(
  release: string,
  distro: Distro,
  upstream: UpstreamVersion,
  debianPackageVersion: string | null,
  warnings: InspectionWarning[],
): KernelTarget {
  const key = debianPackageVersion === null ? upstream.text : `${upstream.text}+debian:${debianPackageVersion}`;
  return { release, distro, upstream, debianPackageVersion, warnings, key };
}

function firstVersionToken(text: string): string | undefined {
  for (const tok of text.split(/\s+/)) {
    if (/^\d+\.\d+/.test(tok)) return tok;
  }
  return undefined;
}

function unknown(input: string, why: string): LivegraftError {
  const shown = input.length > 200 ? `${input.slice(0, 200)}...` : input;
  return new LivegraftError('KERNEL_VERSION_UNKNOWN', `cannot tell the upstream kernel version of "${shown}": ${why}`, {
    details: { input: shown },
  });
}
