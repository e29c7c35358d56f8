export { classifyReference, type Classification } from './classify.ts';
export { diffObjects, type DiffOptions } from './diff.ts';
export { extractPatchObject, MAX_ANONYMOUS_COPY_BYTES } from './extract.ts';
export { canonicalName, parentName } from './names.ts';
export {
  describeKlp,
  writeKlpRelocations,
  type KlpSectionInfo,
  type KlpSymbolInfo,
  type WriteKlpOptions,
} from './postlink.ts';
export type {
  ChangedFunction,
  DiffResult,
  ExtractResult,
  ExtractUnit,
  KlpReloc,
  PatchedFunction,
  Refusal,
  SymbolLocation,
  SymbolQuery,
  SymbolResolver,
} from './types.ts';
