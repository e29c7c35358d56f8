export * from './errors.ts';
export * from './validate.ts';
export * from './kernel.ts';
export * from './fix.ts';
export * from './manifest.ts';
export * from './api.ts';
export * from './exit-codes.ts';
export * from './modinfo.ts';
