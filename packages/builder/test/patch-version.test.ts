import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LivegraftError } from '@livegraft/protocol';
import { targetFromCmd } from '../src/patch/compile.ts';
import { alreadyFixedReason, compareVersions } from '../src/patch/version.ts';

describe('compareVersions', () => {
  it('compares numerically, part by part', () => {
    assert.equal(compareVersions('6.1.176', '6.1.187'), -1);
    assert.equal(compareVersions('6.1.187', '6.1.176'), 1);
    assert.equal(compareVersions('6.1.99', '6.1.100'), -1);
    assert.equal(compareVersions('6.1.176', '6.1.176'), 0);
    assert.equal(compareVersions('6.1', '6.1.0'), 0);
    assert.equal(compareVersions('6.10.1', '6.9.20'), 1);
  });
});

describe('alreadyFixedReason', () => {
  it('a build at or after the stable release that took the fix needs no live patch', () => {
    assert.equal(
      alreadyFixedReason({ '6.1': '6.1.177' }, '6.1.187'),
      'already fixed in 6.1.187 (the fix entered 6.1 in 6.1.177)',
    );
    assert.equal(
      alreadyFixedReason({ '6.1': '6.1.177' }, '6.1.177'),
      'already fixed in 6.1.177 (the fix entered 6.1 in 6.1.177)',
    );
  });

  it('an older build, another branch, or no fixedIn: not fixed', () => {
    assert.equal(alreadyFixedReason({ '6.1': '6.1.177' }, '6.1.176'), undefined);
    assert.equal(alreadyFixedReason({ '6.6': '6.6.50' }, '6.1.187'), undefined);
    assert.equal(alreadyFixedReason(undefined, '6.1.187'), undefined);
    assert.equal(alreadyFixedReason({}, '6.1.187'), undefined);
  });
});

// Shortened from real kbuild .cmd files of the 6.1 tree (the first line is the compile command).
const FLAGS =
  '-nostdinc -I./arch/x86/include -I./include -include ./include/linux/kconfig.h -D__KERNEL__ -O2 -pg -mrecord-mcount -mfentry -DCC_USING_FENTRY -g -ffunction-sections -fdata-sections';
const BUILTIN_CMD = [
  `cmd_net/ipv4/icmp.o := gcc-12 -Wp,-MMD,net/ipv4/.icmp.o.d ${FLAGS}    -DKBUILD_MODFILE='"net/ipv4/icmp"' -DKBUILD_BASENAME='"icmp"' -DKBUILD_MODNAME='"icmp"' -D__KBUILD_MODNAME=kmod_icmp -c -o net/ipv4/icmp.o net/ipv4/icmp.c   ; ./tools/objtool/objtool --hacks=jump_label --orc --retpoline --rethunk --sls --static-call --uaccess   net/ipv4/icmp.o`,
  '',
  'source_net/ipv4/icmp.o := net/ipv4/icmp.c',
  '',
  'deps_net/ipv4/icmp.o := \\',
  '    $(wildcard include/config/MODULES) \\',
  '  include/linux/module.h \\',
  '',
].join('\n');
const MODULE_CMD = [
  `cmd_net/ipv4/ipip.o := gcc-12 -Wp,-MMD,net/ipv4/.ipip.o.d ${FLAGS}  -DMODULE  -DKBUILD_BASENAME='"ipip"' -DKBUILD_MODNAME='"ipip"' -D__KBUILD_MODNAME=kmod_ipip -c -o net/ipv4/ipip.o net/ipv4/ipip.c   ; ./tools/objtool/objtool --hacks=jump_label --orc --retpoline --rethunk --sls --static-call --uaccess   --module net/ipv4/ipip.o`,
  '',
  'source_net/ipv4/ipip.o := net/ipv4/ipip.c',
  '',
].join('\n');

describe('targetFromCmd', () => {
  it('built-in units belong to vmlinux even though kbuild gives them a KBUILD_MODNAME', () => {
    assert.equal(targetFromCmd(BUILTIN_CMD, 'net/ipv4/icmp.c'), 'vmlinux');
  });

  it('-DMODULE units belong to KBUILD_MODNAME', () => {
    assert.equal(targetFromCmd(MODULE_CMD, 'net/ipv4/ipip.c'), 'ipip');
  });

  it('a unit of a composite module takes the module name, not its own basename', () => {
    const cmd = MODULE_CMD.replace(`-DKBUILD_MODNAME='"ipip"'`, `-DKBUILD_MODNAME='"nf_conntrack"'`);
    assert.equal(targetFromCmd(cmd, 'net/netfilter/nf_conntrack_core.c'), 'nf_conntrack');
  });

  it('a module unit without KBUILD_MODNAME is an error', () => {
    const cmd = MODULE_CMD.replace(/-DKBUILD_MODNAME=\S+/, '');
    assert.throws(
      () => targetFromCmd(cmd, 'net/ipv4/ipip.c'),
      (err: unknown) => err instanceof LivegraftError && err.code === 'BUILD_FAILED' && /ipip\.c/.test(err.message),
    );
  });
});
