export {
  ALL_PARTS,
  ensureKernelBuild,
  expandParts,
  readKallsyms,
  withSourceTreeLock,
  type EnsureOptions,
  type KernelBuild,
  type KernelPart,
  type PartStamp,
  type PreparedStamp,
} from './ensure.ts';
export {
  compareKernelDebianVersions,
  downloadDeb,
  imagePackage,
  listAvailableBuilds,
  parseMadison,
  pickKbuildVersion,
  resolveDebianVersion,
  resolveKbuildVersion,
  upstreamOf,
  type AvailableBuild,
} from './archive.ts';
export {
  CONFIG_ALLOWED_DIFFERENCES,
  assertConfigMatches,
  compareKconfig,
  parseKconfig,
  type ConfigComparison,
  type ConfigDifference,
} from './config.ts';
export { buildHelloModule, readVermagic, relocateHeaders } from './headers.ts';
export { newcArchive, type CpioEntry } from './initramfs.ts';
export { dumpKallsyms, isStaticElf, parseKallsyms, validateKallsyms, type KallsymsEntry } from './kallsyms.ts';
export { withFileLock } from './lock.ts';
export { abiOf, buildDir, debsDir, defaultCacheDir, seriesOf } from './paths.ts';
export { KERNEL_CC, SOURCE_MAKE_ARGS, TRIAL_OBJECT, kernelVariables, makeEnv } from './source.ts';
export { TOOLS, findProgram, requireTools, type Requirement } from './tools.ts';
export { assertElf, extractVmlinux, findPayload, type Compression, type Payload } from './vmlinux.ts';
export { PREFERRED_RELEASE, pickTestRelease } from './pick.ts';
