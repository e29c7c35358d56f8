/**
 * livegraft-agent_<version>_amd64.deb: the agent bundled for Debian 12's own
 * Node.js (18), the native user-space patch helper (static, built here from
 * source with Debian's gcc), its systemd units, the example settings (a
 * conffile), the state directory, the man page and shell completion.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { buildDeb, type DebFile } from './deb.ts';
import { cliFiles } from './cli-files.ts';

export const PACKAGING = import.meta.dirname;
export const REPO = join(PACKAGING, '..');
/** The oldest Node.js the package runs on: Debian 12's. */
export const NODE_TARGET = 'node18';
export const MAINTAINER = 'Livegraft maintainers <maintainers@livegraft.invalid>';

export function version(): string {
  return (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The agent as one CommonJS file with a /usr/bin/node shebang, and the npm packages inside it. */
export async function bundleAgent(): Promise<{ code: string; packages: { name: string; license: string }[] }> {
  const r = await build({
    entryPoints: [join(PACKAGING, 'agent/entry.ts')],
    bundle: true,
    platform: 'node',
    target: NODE_TARGET,
    format: 'cjs',
    minify: true,
    keepNames: true,
    legalComments: 'none',
    // CommonJS has no import.meta: code that finds files beside itself gets this file's URL.
    banner: {
      js: "#!/usr/bin/node\nconst __livegraftImportMetaUrl = require('node:url').pathToFileURL(__filename).href;",
    },
    define: { 'import.meta.url': '__livegraftImportMetaUrl' },
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const names = new Set<string>();
  for (const input of Object.keys(r.metafile.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1] && !m[1].startsWith('@livegraft/')) names.add(m[1]);
  }
  const packages = [...names].sort().map((name) => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as {
      license?: string;
    };
    return { name, license: pkg.license ?? 'UNKNOWN' };
  });
  if (r.warnings.length > 0) throw new Error(`esbuild: ${r.warnings.map((w) => w.text).join('; ')}`);
  const out = r.outputFiles[0];
  if (out === undefined) throw new Error('esbuild wrote no output');
  return { code: out.text, packages };
}

/** Where the package installs the user-space patch helper (the agent looks there beside /usr/bin). */
export const HELPER_PATH = 'usr/libexec/livegraft-agent/livegraft-uspatch';

/**
 * Builds the user-space helper from source (packages/agent/native/build.sh:
 * Debian's gcc, static-pie, hardened) and returns it stripped, with the
 * Built-Using entry of the C library linked into it.
 */
export function nativeHelper(): { bytes: Buffer; builtUsing: string } {
  const native = join(REPO, 'packages/agent/native');
  execFileSync('bash', [join(native, 'build.sh')], { stdio: 'pipe' });
  const built = join(REPO, 'packages/agent/dist/livegraft-uspatch');
  const tmp = mkdtempSync(join(tmpdir(), 'lg-uspatch-'));
  let bytes: Buffer;
  try {
    execFileSync('strip', ['--strip-all', '-o', join(tmp, 'helper'), built], { stdio: 'pipe' });
    bytes = readFileSync(join(tmp, 'helper'));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const libc = execFileSync('dpkg-query', ['-W', '-f', '${source:Package} ${source:Version}', 'libc6-dev'], {
    encoding: 'utf8',
  }).trim();
  const [pkg, ver] = libc.split(' ');
  if (pkg === undefined || ver === undefined) throw new Error(`cannot tell the C library's source package: ${libc}`);
  return { bytes, builtUsing: `${pkg} (= ${ver})` };
}

/**
 * The user-space patch helper is static on purpose: it must run whatever the
 * host's libraries are (it patches them). It is a static PIE (for ASLR), an
 * ELF of type DYN without NEEDED entries, which lintian takes for a shared
 * library without dependencies.
 */
const LINTIAN_OVERRIDES = `# Static on purpose: the helper patches the host's shared libraries, so it uses none.
livegraft-agent: statically-linked-binary [${HELPER_PATH}]
# A static PIE executable (ELF type DYN, no NEEDED entries), not a shared library.
livegraft-agent: shared-library-lacks-prerequisites [${HELPER_PATH}]
`;

function changelog(v: string): string {
  return [
    `livegraft-agent (${v}) unstable; urgency=medium`,
    '',
    '  * Release built from the Livegraft repository.',
    '',
    ` -- ${MAINTAINER}  ${new Date(Date.UTC(2026, 0, 1)).toUTCString().replace('GMT', '+0000')}`,
    '',
  ].join('\n');
}

export async function buildAgentDeb(outDir: string): Promise<string> {
  const v = version();
  const { code, packages } = await bundleAgent();
  const helper = nativeHelper();
  const bad = packages.filter((p) => !/^(MIT|ISC|Apache-2\.0|BSD-[23]-Clause|0BSD)$/.test(p.license));
  if (bad.length > 0) throw new Error(`bundled packages with unexpected licenses: ${JSON.stringify(bad)}`);
  const docs = new Map((await cliFiles(v)).map((f) => [f.path, f.content]));
  const generated = (p: string): string => {
    const c = docs.get(p);
    if (c === undefined) throw new Error(`no generated ${p}`);
    return c;
  };
  const read = (p: string): string => readFileSync(join(PACKAGING, 'agent', p), 'utf8');
  const copyright = read('debian/copyright').replace(
    ' The bundled agent also contains commander (MIT), tuf-js and @tufjs/models (MIT),\n typebox (MIT) and their dependencies, each under its own license.\n',
    ` The bundled agent also contains these npm packages, each under its license:\n${packages.map((p) => ` ${p.name} (${p.license})`).join('\n')}\n`,
  );
  const doc = 'usr/share/doc/livegraft-agent';
  const files: DebFile[] = [
    { path: 'usr/bin/livegraft-agent', content: code, mode: 0o755 },
    { path: HELPER_PATH, content: helper.bytes, mode: 0o755 },
    { path: 'usr/share/lintian/overrides/livegraft-agent', content: LINTIAN_OVERRIDES, mode: 0o644 },
    { path: 'lib/systemd/system/livegraft-agent.service', content: read('livegraft-agent.service'), mode: 0o644 },
    {
      path: 'lib/systemd/system/livegraft-agent-boot.service',
      content: read('livegraft-agent-boot.service'),
      mode: 0o644,
    },
    { path: 'etc/livegraft/agent.conf', content: read('agent.conf'), mode: 0o644 },
    {
      path: 'usr/share/man/man8/livegraft-agent.8.gz',
      content: generated('man/man8/livegraft-agent.8'),
      mode: 0o644,
      gzip: true,
    },
    {
      path: 'usr/share/bash-completion/completions/livegraft-agent',
      content: generated('bash-completion/completions/livegraft-agent'),
      mode: 0o644,
    },
    {
      path: 'usr/share/zsh/vendor-completions/_livegraft-agent',
      content: generated('zsh/vendor-completions/_livegraft-agent'),
      mode: 0o644,
    },
    { path: `${doc}/copyright`, content: copyright, mode: 0o644 },
    { path: `${doc}/changelog.gz`, content: changelog(v), mode: 0o644, gzip: true },
  ];
  return buildDeb(
    {
      name: 'livegraft-agent',
      version: v,
      architecture: 'amd64',
      maintainer: MAINTAINER,
      section: 'admin',
      depends: ['nodejs (>= 18)', 'kmod', 'ca-certificates'],
      builtUsing: [helper.builtUsing],
      description: [
        'Livegraft host agent: live kernel patches without a reboot',
        'The agent checks in with a self-hosted Livegraft server, fetches the patch level the server wants through signed TUF metadata, verifies the module against the running kernel and applies it through the kernel livepatch interface, with rollback and re-apply at boot.',
        'It also live-patches shared libraries (glibc, OpenSSL) inside running processes through a small native helper.',
      ],
      files,
      dirs: ['var/lib/livegraft'],
      conffiles: ['/etc/livegraft/agent.conf'],
      scripts: {
        postinst: read('debian/postinst'),
        prerm: read('debian/prerm'),
        postrm: read('debian/postrm'),
      },
    },
    outDir,
  );
}
