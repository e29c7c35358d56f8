export { buildPatch, BUILDER_ID, type BuildOptions, type BuildResult } from './build.ts';
export { DEFAULT_HEADERS_ROOTS, resolveHeaders, type HeadersRoots } from './headers.ts';
export { procVersionFromHeaders, targetKernel, type TargetKernel } from './kernel-id.ts';
export { MAKE_TIMEOUT_MS, MAX_MAKE_OUTPUT_BYTES } from './kbuild.ts';
export { spawnRunner, type ProcessRunner, type ProcessResult, type RunOptions } from './runner.ts';
export { formatSummary } from './summary.ts';
