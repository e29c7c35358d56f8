export * from './constants.ts';
export {
  bytesAtAddress,
  readElf,
  sectionByName,
  MAX_ELF_BYTES,
  type ElfFile,
  type ElfRela,
  type ElfSection,
  type ElfSegment,
  type ElfSymbol,
} from './read.ts';
export {
  appendToRelocatable,
  writeRelocatable,
  type AppendSection,
  type AppendSymbol,
  type NewObject,
  type NewRela,
  type NewSection,
  type NewSymbol,
} from './write.ts';
