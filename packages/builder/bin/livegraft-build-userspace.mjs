#!/usr/bin/env node
// Launcher: runs the TypeScript entry point through tsx, wherever it is called from.
import { register } from 'tsx/esm/api';

register();
await import('../src/userspace/bin.ts');
