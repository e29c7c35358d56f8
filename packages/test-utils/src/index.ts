export { elfWithModinfo } from './elf.ts';
