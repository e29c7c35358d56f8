import { LivegraftError } from '@livegraft/protocol';

/**
 * Upstream kernel versions.
 *
 * A version belongs to one branch: `6.12` for 6.12, 6.12.9, ...; `2.6.32` for 2.6.32 and 2.6.32.71.
 * The mainline release of a branch has sublevel 0 (`6.12`, `6.12.0` and `2.6.32` are the same), a
 * stable release has sublevel > 0. Every version maps to one integer `key` so comparisons are
 * plain number comparisons: key = branchKey + sublevel.
 */
export interface UpstreamVersion {
  /** Canonical text: `6.12`, `6.12.9`, `2.6.32`, `2.6.32.71`. */
  text: string;
  branch: string;
  branchKey: number;
  sublevel: number;
  key: number;
  mainline: boolean;
}

/** Sublevels stay well below this (4.9 reached 337); keys stay exact doubles. */
const SUBLEVEL_SPAN = 100_000;
const PART_SPAN = 1000;

const VERSION_RE = /^(\d{1,3})\.(\d{1,3})(?:\.(\d{1,5}))?(?:\.(\d{1,5}))?$/;

export function tryParseVersion(text: string): UpstreamVersion | undefined {
  const m = VERSION_RE.exec(text.trim());
  if (m === null) return undefined;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  const p3 = m[3] === undefined ? undefined : Number(m[3]);
  const p4 = m[4] === undefined ? undefined : Number(m[4]);
  // 2.6.x and older: the third part names the release, the fourth is the stable sublevel.
  const old = major < 3;
  if (old && p3 === undefined) {
    return build(major, minor, 0, 0);
  }
  if (old) return build(major, minor, p3 ?? 0, p4 ?? 0);
  if (p4 !== undefined) return undefined;
  return build(major, minor, undefined, p3 ?? 0);
}

export function parseVersion(text: string): UpstreamVersion {
  const v = tryParseVersion(text);
  if (v === undefined) {
    throw new LivegraftError(
      'VERSION_INVALID',
      `"${text}" is not an upstream kernel version (like 6.1.100, 6.13 or 2.6.32.71)`,
    );
  }
  return v;
}

function build(major: number, minor: number, release: number | undefined, sublevel: number): UpstreamVersion {
  if (sublevel >= SUBLEVEL_SPAN) throw new LivegraftError('VERSION_INVALID', `sublevel ${sublevel} is out of range`);
  const branch = release === undefined ? `${major}.${minor}` : `${major}.${minor}.${release}`;
  const branchKey = ((major * PART_SPAN + minor) * PART_SPAN + (release ?? 0)) * SUBLEVEL_SPAN;
  const text = sublevel === 0 ? branch : `${branch}.${sublevel}`;
  return { text, branch, branchKey, sublevel, key: branchKey + sublevel, mainline: sublevel === 0 };
}

export function compareVersions(a: UpstreamVersion | string, b: UpstreamVersion | string): number {
  const ka = typeof a === 'string' ? parseVersion(a).key : a.key;
  const kb = typeof b === 'string' ? parseVersion(b).key : b.key;
  return ka - kb;
}

/** The branch of a version, `6.1` for 6.1.100. */
export function branchOf(version: string): string {
  return parseVersion(version).branch;
}
