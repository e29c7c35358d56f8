/**
 * Shell completion and man pages generated from the commander definitions of
 * `livegraft` and `livegraft-agent`, exercised in real bash and zsh, and
 * rendered by man with warnings on.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cliFiles, type CliFile } from '../cli-files.ts';
import { run } from '../debian-root.ts';

describe('man pages and shell completion for livegraft and livegraft-agent', () => {
  let dir: string;
  let files: Map<string, string>;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lg-cli-docs-'));
    files = new Map((await cliFiles('0.0.0')).map((f: CliFile) => [f.path, f.content]));
    for (const [p, c] of files) writeFileSync(join(dir, p.replace(/\//g, '_')), c);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const file = (p: string): string => join(dir, p.replace(/\//g, '_'));

  /** COMPREPLY for the words typed so far (the last one is being completed). */
  const bash = async (script: string, words: string[]): Promise<string[]> => {
    const fn = `_${(words[0] ?? '').replace(/[^A-Za-z0-9]/g, '_')}`;
    const quoted = words.map((w) => `'${w}'`).join(' ');
    const r = await run('bash', [
      '-c',
      `source '${file(script)}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; cd '${dir}'; ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    return r.stdout.split('\n').filter(Boolean);
  };

  it('bash completes livegraft-agent commands, their options, and files after an option that takes one', async () => {
    const script = 'bash-completion/completions/livegraft-agent';
    const top = await bash(script, ['livegraft-agent', '']);
    for (const c of ['enroll', 'check', 'update', 'rollback', 'boot', 'run', 'status']) assert.ok(top.includes(c), c);
    assert.deepEqual(await bash(script, ['livegraft-agent', 'rol']), ['rollback']);
    const enroll = await bash(script, ['livegraft-agent', 'enroll', '--']);
    for (const o of ['--server', '--key', '--root', '--json', '--help']) assert.ok(enroll.includes(o), o);
    assert.ok(!enroll.includes('--allow-downgrade'), 'options of another command');
    const global = await bash(script, ['livegraft-agent', '--state-dir', '/tmp', 'update', '--al']);
    assert.deepEqual(global, ['--allow-downgrade']);
    writeFileSync(join(dir, 'root-7.json'), '{}');
    assert.deepEqual(await bash(script, ['livegraft-agent', 'enroll', '--root', 'root-']), ['root-7.json']);
  });

  it('bash completes livegraft command groups and their subcommands', async () => {
    const script = 'bash-completion/completions/livegraft';
    const top = await bash(script, ['livegraft', '']);
    for (const c of ['build', 'server', 'publish', 'hosts', 'feeds', 'keys', 'tokens']) assert.ok(top.includes(c), c);
    const keys = await bash(script, ['livegraft', 'keys', '']);
    assert.deepEqual([...keys].sort(), ['fingerprint', 'init', 'rotate', 'sign-root']);
    const fp = await bash(script, ['livegraft', 'keys', 'fingerprint', '--']);
    for (const o of ['--server', '--root', '--json']) assert.ok(fp.includes(o), o);
  });

  it('zsh loads both completion functions and walks the same command tree', async () => {
    for (const name of ['livegraft-agent', 'livegraft']) {
      const path = file(`zsh/vendor-completions/_${name}`);
      const syntax = await run('zsh', ['-n', path]);
      assert.equal(syntax.code, 0, syntax.stderr);
      const fn = `_${name.replace(/-/g, '_')}`;
      // Define the functions without running the completion itself, then ask the tree.
      const r = await run('zsh', [
        '-c',
        `eval "$(sed '$d' '${path}')"; ${fn}_tree ''; print -l -- "\${subs[@]%%:*}"; ${fn}_tree 'keys'; print -- "KEYS \${subs[@]%%:*}"`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      if (name === 'livegraft-agent') {
        assert.match(r.stdout, /^enroll$/m);
        assert.match(r.stdout, /^rollback$/m);
      } else {
        assert.match(r.stdout, /^feeds$/m);
        assert.match(r.stdout, /^KEYS .*fingerprint/m);
      }
    }
  });

  it('the man pages list every command and render without warnings', async () => {
    for (const [page, cmds] of [
      ['man/man8/livegraft-agent.8', ['enroll', 'update', 'rollback', 'boot', 'run', 'pin-root']],
      ['man/man1/livegraft.1', ['publish', 'feeds create', 'keys fingerprint', 'tokens create']],
    ] as const) {
      const text = files.get(page) ?? '';
      for (const c of cmds)
        assert.ok(
          text.includes(`\\- ${c.replace(/-/g, '\\-')}`) || text.includes(` ${c.replace(/-/g, '\\-')}`),
          `${page}: ${c}`,
        );
      const r = await run('man', ['--warnings', '-E', 'UTF-8', '-l', '-Tutf8', '-Z', file(page)], {
        env: { ...process.env, LC_ALL: 'C.UTF-8', MANWIDTH: '80' },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '', `${page}: ${r.stderr}`);
    }
  });
});
