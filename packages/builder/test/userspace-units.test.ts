// The parts of user-space builds that read Debian's files: apt sources into
// deb-src lines, debian/rules variables and OpenSSL's Makefile.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { debSrcLines, parseAptSources } from '../src/userspace/debian-source.ts';
import { rulesVariable } from '../src/userspace/glibc-recipe.ts';
import { maintOptions, opensslConfigureArgs, opensslObjectTarget } from '../src/userspace/recipes.ts';
import { scratch } from './helpers.ts';

describe('apt sources to deb-src lines', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch('lg-us-apt-');
  });
  after(() => tmp?.cleanup());

  it('reads one-line and deb822 entries, keeps Debian archives only, with their keys', async () => {
    const etc = path.join(tmp.dir, 'apt');
    await mkdir(path.join(etc, 'sources.list.d'), { recursive: true });
    await writeFile(
      path.join(etc, 'sources.list'),
      'deb https://packages.example.com/apt stable main\n# deb http://deb.debian.org/debian sid main\n',
    );
    await writeFile(
      path.join(etc, 'sources.list.d', 'debian.sources'),
      [
        'Types: deb',
        'URIs: http://deb.debian.org/debian',
        'Suites: bookworm bookworm-updates',
        'Components: main',
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
        '',
        'Types: deb',
        'URIs: http://deb.debian.org/debian-security',
        'Suites: bookworm-security',
        'Components: main',
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
        '',
        'Types: deb',
        'URIs: https://deb.nodesource.com/node_20.x',
        'Suites: nodistro',
        'Components: main',
      ].join('\n'),
    );
    assert.deepEqual(await debSrcLines(etc), [
      'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main',
      'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main',
      'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main',
    ]);
  });

  it('one-line entries with options', () => {
    assert.deepEqual(
      parseAptSources('deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n', false),
      [
        {
          uri: 'http://mirror.example/debian',
          suites: ['bookworm'],
          components: ['main', 'contrib'],
          signedBy: '/k.gpg',
        },
      ],
    );
  });
});

describe('debian/rules and the OpenSSL Makefile', () => {
  const rules = [
    'export DEB_BUILD_MAINT_OPTIONS = hardening=+all future=+lfs',
    'CONFARGS  = --prefix=/usr --libdir=lib/$(DEB_HOST_MULTIARCH) no-idea',
    'ifeq ($(DEB_HOST_ARCH_CPU), amd64)',
    '\tCONFARGS += enable-ec_nistp_64_gcc_128',
    'endif',
    'DEB_GCC_VERSION ?= -12',
    'HOST_CFLAGS = -pipe -O2 -g -fdebug-prefix-map=$(CURDIR)=. $(call xx,extra_cflags)',
  ].join('\n');

  it('reads the maintainer build options, the configure arguments and make variables', () => {
    assert.equal(maintOptions(rules), 'hardening=+all future=+lfs');
    assert.deepEqual(opensslConfigureArgs(rules), [
      '--prefix=/usr',
      '--libdir=lib/x86_64-linux-gnu',
      'no-idea',
      'enable-ec_nistp_64_gcc_128',
    ]);
    assert.equal(rulesVariable(rules, 'DEB_GCC_VERSION', '/src'), '-12');
    assert.equal(rulesVariable(rules, 'HOST_CFLAGS', '/src'), '-pipe -O2 -g -fdebug-prefix-map=/src=.');
    assert.equal(rulesVariable(rules, 'NOPE', '/src'), undefined);
  });

  it('finds the shared-library object of a unit', () => {
    const makefile = [
      'crypto/crmf/libcrypto-lib-crmf_lib.o: ../crypto/crmf/crmf_lib.c',
      'crypto/crmf/libcrypto-shlib-crmf_lib.o: ../crypto/crmf/crmf_lib.c',
      'ssl/libssl-shlib-s3_lib.o: ../ssl/s3_lib.c',
    ].join('\n');
    assert.equal(
      opensslObjectTarget(makefile, 'crypto/crmf/crmf_lib.c', 'libcrypto'),
      'crypto/crmf/libcrypto-shlib-crmf_lib.o',
    );
    assert.equal(opensslObjectTarget(makefile, 'ssl/s3_lib.c', 'libssl'), 'ssl/libssl-shlib-s3_lib.o');
    assert.equal(opensslObjectTarget(makefile, 'ssl/s3_lib.c', 'libcrypto'), undefined);
  });
});
