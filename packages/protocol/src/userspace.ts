import { Type, type Static } from 'typebox';
import { CveId, FixCommit, FixId, PatchFileName } from './fix.ts';
import { Sha256 } from './manifest.ts';
import { validator } from './validate.ts';

/**
 * User-space live patches: a level of fixes for one shared library build
 * (e.g. Debian's libc.so.6 of libc6 2.36-9+deb12u7), applied inside running
 * processes that map that build.
 *
 * The builder rebuilds the library's affected translation units from the
 * Debian source package, with and without the upstream patch, diffs them
 * function by function, and links the changed functions into one block of
 * position-independent code. Every reference from that code to the library
 * (its functions, data, GOT and PLT entries) is resolved by the builder to an
 * offset from the library's load base and listed as a relocation, so the
 * native helper needs no symbol tables: it maps the code near the library,
 * applies the relocations against the two bases, checks each function's
 * original bytes, then writes a 5-byte `jmp rel32` over each function entry.
 *
 * Offsets are ELF virtual addresses of the shared object (st_value), i.e.
 * relative to the load base: the start of the lowest mapping of the file
 * (its first PT_LOAD has p_vaddr 0 on Debian's libraries).
 */

/** An ELF NT_GNU_BUILD_ID, lower-case hex (Debian: 20 bytes, SHA-1). */
export const BuildId = Type.String({ pattern: '^[0-9a-f]{16,80}$' });
/** A Debian package version, e.g. 2.36-9+deb12u7 or 3.0.20-1~deb12u2. */
export const DebianVersion = Type.String({ pattern: '^([0-9]+:)?[0-9][A-Za-z0-9.+~-]{0,99}$' });
/** A Debian package name. */
export const DebianPackage = Type.String({ pattern: '^[a-z0-9][a-z0-9.+-]{1,63}$' });
/** A library's soname, e.g. libc.so.6, libcrypto.so.3. */
export const Soname = Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}\\.so(\\.[0-9]+)*$' });
/** A symbol name of a shared library (may carry a version, e.g. memcpy@GLIBC_2.14). */
export const LibSymbol = Type.String({ pattern: '^[A-Za-z_.][A-Za-z0-9_.@$]{0,199}$' });

/** Largest library offset or code offset the format carries (shared objects here are well below). */
const MAX_OFFSET = 0x7fff_ffff;

/** Which shared object a bundle is for. The build-id is the identity; the rest is for people and reports. */
export const LibraryIdentity = Type.Object(
  {
    buildId: BuildId,
    soname: Soname,
    /** The binary package that ships it (libc6, libssl3). */
    package: DebianPackage,
    /** That binary package's version. */
    version: DebianVersion,
    /** The source package it was built from (glibc, openssl). */
    sourcePackage: DebianPackage,
    arch: Type.Literal('amd64'),
    /** Path of the file inside the package, e.g. /usr/lib/x86_64-linux-gnu/libc.so.6 (informative). */
    path: Type.String({ pattern: '^/[A-Za-z0-9_./+-]{1,255}$' }),
  },
  { additionalProperties: false },
);
export type LibraryIdentity = Static<typeof LibraryIdentity>;

/**
 * A relocation the helper applies to the new code after mapping it.
 * Let L be the library's load base and C the address the code was mapped at.
 * S = (base === 'library' ? L : C) + target; P = C + offset.
 *   pc32:  write int32(S + addend - P) at P (must fit, else refuse: code too far from the library)
 *   abs64: write uint64(S + addend) at P
 * References inside the code block that are position-independent are already
 * resolved by the builder and are not listed.
 */
export const UserspaceReloc = Type.Object(
  {
    offset: Type.Integer({ minimum: 0, maximum: MAX_OFFSET }),
    kind: Type.Union([Type.Literal('pc32'), Type.Literal('abs64')]),
    base: Type.Union([Type.Literal('library'), Type.Literal('code')]),
    target: Type.Integer({ minimum: 0, maximum: MAX_OFFSET }),
    addend: Type.Integer({ minimum: -0x8000_0000, maximum: 0x7fff_ffff }),
    /** What the target is, for people: `memcpy@plt`, `__libc_errno@got`, `_nl_default_dirname`. */
    symbol: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type UserspaceReloc = Static<typeof UserspaceReloc>;

/** One function of the library replaced by new code. */
export const UserspaceFunction = Type.Object(
  {
    symbol: LibSymbol,
    /** True when the symbol is local (not in .dynsym; found through the debug symbols of that build-id). */
    local: Type.Boolean(),
    /** Entry of the original function, from the load base. */
    offset: Type.Integer({ minimum: 0, maximum: MAX_OFFSET }),
    /** Size of the original function in bytes (>= 5: the jump must fit inside it). */
    size: Type.Integer({ minimum: 5, maximum: 1024 * 1024 }),
    /** sha256 of the original `size` bytes at `offset`, as the file (and the mapped code) holds them. */
    sha256: Sha256,
    /** Entry of the replacement inside the code block. */
    codeOffset: Type.Integer({ minimum: 0, maximum: MAX_OFFSET }),
    /** The fixes (by id) that change this function. */
    fixes: Type.Array(FixId, { minItems: 1, maxItems: 50 }),
  },
  { additionalProperties: false },
);
export type UserspaceFunction = Static<typeof UserspaceFunction>;

/** A fix carried by a user-space level. */
export const UserspaceManifestFix = Type.Object(
  {
    id: FixId,
    title: Type.String({ maxLength: 200 }),
    cves: Type.Array(CveId, { maxItems: 200 }),
    /** Symbols of the functions this fix replaces. */
    functions: Type.Array(LibSymbol, { minItems: 1, maxItems: 200 }),
    commits: Type.Optional(Type.Array(FixCommit, { maxItems: 20 })),
  },
  { additionalProperties: false },
);
export type UserspaceManifestFix = Static<typeof UserspaceManifestFix>;

/**
 * The new code: an ELF64 x86-64 relocatable object (ET_REL) with one
 * SHF_ALLOC|SHF_EXECINSTR PROGBITS section named `.text` holding the whole
 * code block (functions first, then the read-only data they use). The
 * object carries no relocation sections; `relocs` of the manifest are the
 * only relocations. The helper maps `.text` read+execute (page aligned,
 * within ±2 GiB of the library).
 */
export const UserspaceCode = Type.Object(
  {
    file: Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{0,99}\\.o$' }),
    sha256: Sha256,
    /** Size of the object file. */
    size: Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024 }),
    /** Size of its `.text` section: what the helper maps. */
    textSize: Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024 }),
  },
  { additionalProperties: false },
);
export type UserspaceCode = Static<typeof UserspaceCode>;

/**
 * The manifest of a user-space level: signed as the TUF target custom data
 * of its code object. Levels are cumulative per library build-id: level N
 * carries every fix of N-1 that still applies, and replaces it.
 */
export const UserspaceManifest = Type.Object(
  {
    schema: Type.Literal(1),
    kind: Type.Literal('userspace'),
    library: LibraryIdentity,
    level: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    functions: Type.Array(UserspaceFunction, { minItems: 1, maxItems: 500 }),
    relocs: Type.Array(UserspaceReloc, { maxItems: 100_000 }),
    code: UserspaceCode,
    fixes: Type.Array(UserspaceManifestFix, { minItems: 1, maxItems: 500 }),
    cves: Type.Array(CveId, { maxItems: 2000 }),
    builtAt: Type.String({ format: 'date-time' }),
    builder: Type.String({ maxLength: 64 }),
  },
  { additionalProperties: false },
);
export type UserspaceManifest = Static<typeof UserspaceManifest>;
export const userspaceManifestValidator = validator(UserspaceManifest, 'user-space manifest');

/** TUF target path (without hash prefix) of a user-space level's code object. */
export function userspaceTargetPath(buildId: string, level: number, file: string): string {
  return `userspace/${buildId}/${level}/${file}`;
}

export const UserspaceTargetCustom = Type.Object({
  livegraft: Type.Object({ userspace: UserspaceManifest }),
});
export type UserspaceTargetCustom = Static<typeof UserspaceTargetCustom>;
export const userspaceTargetCustomValidator = validator(UserspaceTargetCustom, 'TUF user-space target custom metadata');

/** Why the helper refused or failed to patch a process (stable codes). */
export const UserspaceRefusal = Type.Union([
  Type.Literal('seccomp'),
  Type.Literal('not-dumpable'),
  Type.Literal('traced'),
  Type.Literal('no-address-space'),
  Type.Literal('function-too-short'),
  Type.Literal('build-id-mismatch'),
  Type.Literal('bytes-mismatch'),
  Type.Literal('busy'),
  Type.Literal('permission'),
  Type.Literal('exited'),
  Type.Literal('timeout'),
  Type.Literal('error'),
]);
export type UserspaceRefusal = Static<typeof UserspaceRefusal>;

/** What a host reports per library build-id at check-in. */
export const UserspaceLibraryStatus = Type.Object(
  {
    buildId: BuildId,
    soname: Soname,
    /** The level applied to the processes it patched (0: none). */
    level: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    /** CVEs that level fixes. */
    cves: Type.Array(CveId, { maxItems: 2000 }),
    patched: Type.Integer({ minimum: 0 }),
    unpatched: Type.Integer({ minimum: 0 }),
    refused: Type.Integer({ minimum: 0 }),
    /** Refusal counts by reason. */
    refusals: Type.Optional(Type.Record(Type.String({ pattern: '^[a-z][a-z-]{0,31}$' }), Type.Integer({ minimum: 0 }))),
    /** The crash-loop guard halted this level for this build-id on the host. */
    halted: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type UserspaceLibraryStatus = Static<typeof UserspaceLibraryStatus>;

/** What the server wants a host to run for one library build-id. */
export const UserspaceDesired = Type.Object(
  {
    buildId: BuildId,
    /** 0 = roll back (restore every process). */
    level: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    reason: Type.Union([Type.Literal('feed'), Type.Literal('pin'), Type.Literal('rollback'), Type.Literal('halt')]),
    allowDowngrade: Type.Boolean(),
    /** The TUF target path of that level's code object (absent at level 0). */
    target: Type.Optional(Type.String({ maxLength: 300 })),
  },
  { additionalProperties: false },
);
export type UserspaceDesired = Static<typeof UserspaceDesired>;

/**
 * A user-space fix in the catalogue (catalogue/userspace/<id>/fix.json): an
 * upstream patch against a Debian source package, for one library of one
 * binary package build.
 */
export const UserspaceFixSpec = Type.Object(
  {
    id: FixId,
    title: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 4000 })),
    cves: Type.Array(CveId, { maxItems: 200, uniqueItems: true }),
    /** The Debian source package and the version whose build is patched, e.g. openssl 3.0.20-1~deb12u2. */
    source: Type.Object({ package: DebianPackage, version: DebianVersion }, { additionalProperties: false }),
    /** The binary package and library inside it. */
    library: Type.Object(
      {
        package: DebianPackage,
        path: Type.String({ pattern: '^/[A-Za-z0-9_./+-]{1,255}$' }),
        /** A package with the library's detached debug symbols (e.g. libc6-dbg), to find local functions. */
        debugPackage: Type.Optional(DebianPackage),
      },
      { additionalProperties: false },
    ),
    /** Unified diffs against the unpacked source tree (Debian patches applied), in order. */
    patches: Type.Array(PatchFileName, { minItems: 1, maxItems: 20, uniqueItems: true }),
    commits: Type.Optional(Type.Array(FixCommit, { maxItems: 20 })),
    /** The first Debian version of the binary package carrying the fix. */
    fixedIn: Type.Optional(DebianVersion),
    /** A program that shows the flaw against the library: prints VULNERABLE or FIXED and exits 0 either way. */
    trigger: Type.Optional(
      Type.Object(
        { source: Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\\.c$' }) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type UserspaceFixSpec = Static<typeof UserspaceFixSpec>;
export const userspaceFixSpecValidator = validator(UserspaceFixSpec, 'user-space fix.json');

/** Largest code object the server accepts for a user-space level. */
export const MAX_USERSPACE_OBJECT_BYTES = 4 * 1024 * 1024;

/** POST /userspace/levels: a built level (manifest and its code object, base64) to record, and publish. */
export const UserspacePublishRequest = Type.Object(
  {
    manifest: UserspaceManifest,
    object: Type.String({ maxLength: Math.ceil(MAX_USERSPACE_OBJECT_BYTES / 3) * 4, pattern: '^[A-Za-z0-9+/=]+$' }),
    publish: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type UserspacePublishRequest = Static<typeof UserspacePublishRequest>;

/** A stored user-space level, as the server lists it. */
export const UserspaceLevelRecord = Type.Object({
  buildId: BuildId,
  level: Type.Integer({ minimum: 1 }),
  soname: Type.String(),
  package: Type.String(),
  version: Type.String(),
  cves: Type.Array(Type.String()),
  fixIds: Type.Array(Type.String()),
  functions: Type.Array(Type.String()),
  codeSha256: Sha256,
  size: Type.Integer(),
  published: Type.Boolean(),
  halted: Type.Boolean(),
  createdAt: Type.String(),
  publishedAt: Type.Union([Type.String(), Type.Null()]),
  /** The TUF target path (without the consistent-snapshot hash prefix). */
  target: Type.String(),
});
export type UserspaceLevelRecord = Static<typeof UserspaceLevelRecord>;

/** A host's user-space libraries as the server last heard them. */
export const HostUserspaceLibrary = Type.Object({
  ...UserspaceLibraryStatus.properties,
  updatedAt: Type.String(),
  /** The host's pin for this build-id, if any. */
  pinned: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
});
export type HostUserspaceLibrary = Static<typeof HostUserspaceLibrary>;

/** A host's library in the compliance report: the CVEs live-patched in every process, and those still open. */
export const ComplianceUserspaceRow = Type.Object({
  hostId: Type.String(),
  hostname: Type.String(),
  soname: Type.String(),
  buildId: Type.String(),
  package: Type.Union([Type.String(), Type.Null()]),
  version: Type.Union([Type.String(), Type.Null()]),
  level: Type.Integer({ minimum: 0 }),
  /** Fixed in every process that maps the build. */
  fixedCves: Type.Array(Type.String()),
  /** Fixed by a published level not applied, or applied while some processes still run the old code. */
  openCves: Type.Array(Type.String()),
  patched: Type.Integer({ minimum: 0 }),
  unpatched: Type.Integer({ minimum: 0 }),
  refused: Type.Integer({ minimum: 0 }),
});
export type ComplianceUserspaceRow = Static<typeof ComplianceUserspaceRow>;

/**
 * A feed's user-space level for one library build-id. Like a kernel feed
 * level: a published level lands in every feed with `autoPublish`, moves on
 * by promotion (the feed's rule, or an operator), or is set by hand; a level
 * set below the feed's previous one is a rollback (`allowDowngrade`).
 */
export const UserspaceFeedLevel = Type.Object({
  feed: Type.String(),
  buildId: BuildId,
  level: Type.Integer({ minimum: 0 }),
  previousLevel: Type.Integer({ minimum: 0 }),
  source: Type.Union([
    Type.Literal('publish'),
    Type.Literal('promotion'),
    Type.Literal('set'),
    Type.Literal('rollback'),
  ]),
  allowDowngrade: Type.Boolean(),
  setAt: Type.String(),
  /** Since when the feed's promotion rule's host condition has held (rules that count hosts). */
  healthySince: Type.Union([Type.String(), Type.Null()]),
});
export type UserspaceFeedLevel = Static<typeof UserspaceFeedLevel>;

/** PUT /userspace/feeds/:feed/levels/:buildId: set a feed's level by hand (below the current one: a rollback). */
export const UserspaceSetLevelRequest = Type.Object(
  { level: Type.Integer({ minimum: 0, maximum: 1_000_000 }) },
  { additionalProperties: false },
);
export type UserspaceSetLevelRequest = Static<typeof UserspaceSetLevelRequest>;

/** POST /userspace/feeds/:feed/promote: the feed's levels to the feed it promotes to (or `to`), now. */
export const UserspacePromoteRequest = Type.Object(
  { to: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })), buildId: Type.Optional(BuildId) },
  { additionalProperties: false },
);
export type UserspacePromoteRequest = Static<typeof UserspacePromoteRequest>;

/** One feed level a promotion moved. */
export const UserspacePromotion = Type.Object({
  from: Type.String(),
  to: Type.String(),
  buildId: BuildId,
  level: Type.Integer({ minimum: 1 }),
  previous: Type.Integer({ minimum: 0 }),
});
export type UserspacePromotion = Static<typeof UserspacePromotion>;
