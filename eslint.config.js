import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const apps = ['server', 'agent', 'cli', 'builder', 'dashboard'];
const otherApps = (app) => [...apps.filter((a) => a !== app).map((a) => `@livegraft/${a}`), '../../*/src/*'];

// The agent's layers point one way (packages/agent/README.md): operations use kernel, delivery and
// state; state may use kernel; nothing below reaches up; the kernel knows nothing of HTTP.
const above = ['../operations/*', '../userspace/*', '../cli/*'];
const agentLayers = {
  lib: { patterns: ['../kernel/*', '../delivery/*', '../state/*', ...above] },
  kernel: {
    patterns: ['../delivery/*', '../state/*', ...above],
    paths: ['node:http', 'node:https', 'http', 'https', 'undici'],
    globals: ['fetch'],
  },
  delivery: { patterns: ['../kernel/*', '../state/*', ...above] },
  state: { patterns: ['../delivery/*', ...above] },
  userspace: { patterns: ['../operations/*', '../cli/*'] },
  operations: { patterns: ['../cli/*'] },
};

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '.cache/**', 'out/**'] },
  js.configs.recommended,
  { files: ['**/*.mjs', '**/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
    },
  },
  // protocol imports nothing internal; apps never import each other.
  {
    files: ['packages/protocol/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['@livegraft/*', '../../*'] }] },
  },
  ...apps.map((app) => ({
    files: [`packages/${app}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns: otherApps(app) }] },
  })),
  ...Object.entries(agentLayers).map(([layer, { patterns, paths = [], globals = [] }]) => ({
    files: [`packages/agent/src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', { paths, patterns: [...otherApps('agent'), ...patterns] }],
      ...(globals.length > 0 ? { 'no-restricted-globals': ['error', ...globals] } : {}),
    },
  })),
);
