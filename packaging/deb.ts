/**
 * A Debian binary package from a staged tree, with dpkg-deb only: file modes,
 * md5sums, Installed-Size and the control file are written here.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

/** 2026-01-01T00:00:00Z: every file's time stamp in the package. */
export const SOURCE_DATE_EPOCH = 1767225600;

export interface DebFile {
  /** Path inside the package, without a leading slash. */
  path: string;
  content: string | Buffer;
  mode: 0o644 | 0o755;
  /** gzip -9n the content (man pages, changelogs). */
  gzip?: boolean;
}

export interface DebSpec {
  name: string;
  version: string;
  architecture: 'all' | 'amd64';
  maintainer: string;
  section: string;
  depends: string[];
  recommends?: string[];
  /** Source packages whose code is built in (static linking), e.g. `glibc (= 2.36-9+deb12u13)`. */
  builtUsing?: string[];
  homepage?: string;
  /** First line, then the long description (one paragraph per entry). */
  description: [string, ...string[]];
  files: DebFile[];
  /** Empty directories the package owns. */
  dirs: string[];
  conffiles: string[];
  /** DEBIAN/postinst, prerm, postrm ... */
  scripts: Record<string, string>;
}

/** Gzip with no name and no time stamp (what gzip -9n gives), so builds are reproducible. */
export function gzipN(data: string | Buffer): Buffer {
  const gz = gzipSync(data, { level: 9 });
  gz.writeUInt32LE(0, 4); // MTIME
  return gz;
}

function walkFiles(root: string, dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walkFiles(root, join(dir, e.name)) : [relative(root, join(dir, e.name))]))
    .sort();
}

/** Control-file description: continuation lines start with a space, paragraphs are separated by " .". */
function wrap(text: string): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > 78) {
      lines.push(` ${line}`);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(` ${line}`);
  return lines.join('\n');
}

/** Builds `<outDir>/<name>_<version>_<arch>.deb`; returns its path. */
export function buildDeb(spec: DebSpec, outDir: string): string {
  const tree = join(outDir, `${spec.name}.tree`);
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
  for (const f of spec.files) {
    const p = join(tree, f.path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.gzip ? gzipN(f.content) : f.content);
    chmodSync(p, f.mode);
  }
  for (const d of spec.dirs) mkdirSync(join(tree, d), { recursive: true });
  const payload = walkFiles(tree).filter((p) => !p.startsWith('DEBIAN/'));
  const md5 = payload
    .filter((p) => !spec.conffiles.includes(`/${p}`))
    .map(
      (p) =>
        `${createHash('md5')
          .update(readFileSync(join(tree, p)))
          .digest('hex')}  ${p}\n`,
    )
    .join('');
  const installedKiB =
    payload.reduce((n, p) => n + Math.ceil(statSync(join(tree, p)).size / 1024), 0) + spec.dirs.length;
  const control = [
    `Package: ${spec.name}`,
    `Version: ${spec.version}`,
    `Architecture: ${spec.architecture}`,
    `Maintainer: ${spec.maintainer}`,
    `Installed-Size: ${installedKiB}`,
    `Depends: ${spec.depends.join(', ')}`,
    ...(spec.recommends?.length ? [`Recommends: ${spec.recommends.join(', ')}`] : []),
    ...(spec.builtUsing?.length ? [`Built-Using: ${spec.builtUsing.join(', ')}`] : []),
    `Section: ${spec.section}`,
    'Priority: optional',
    ...(spec.homepage ? [`Homepage: ${spec.homepage}`] : []),
    `Description: ${spec.description[0]}`,
    spec.description
      .slice(1)
      .map((p) => wrap(p))
      .join('\n .\n'),
  ];
  writeFileSync(join(tree, 'DEBIAN/control'), control.join('\n') + '\n');
  writeFileSync(join(tree, 'DEBIAN/md5sums'), md5);
  if (spec.conffiles.length > 0) writeFileSync(join(tree, 'DEBIAN/conffiles'), spec.conffiles.join('\n') + '\n');
  for (const [name, body] of Object.entries(spec.scripts)) {
    writeFileSync(join(tree, 'DEBIAN', name), body);
    chmodSync(join(tree, 'DEBIAN', name), 0o755);
  }
  for (const f of ['control', 'md5sums', 'conffiles']) {
    const p = join(tree, 'DEBIAN', f);
    try {
      chmodSync(p, 0o644);
    } catch {
      // conffiles is optional
    }
  }
  // Directories 0755 whatever the umask; one fixed time stamp, so the same input gives the same bytes.
  execFileSync('find', [tree, '-type', 'd', '-exec', 'chmod', '0755', '{}', '+']);
  execFileSync('find', [tree, '-exec', 'touch', '-h', '-d', `@${SOURCE_DATE_EPOCH}`, '{}', '+']);
  const deb = join(outDir, `${spec.name}_${spec.version}_${spec.architecture}.deb`);
  rmSync(deb, { force: true });
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', tree, deb], {
    stdio: 'pipe',
    env: { ...process.env, SOURCE_DATE_EPOCH: String(SOURCE_DATE_EPOCH) },
  });
  return deb;
}
