import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const apps = ['server', 'agent', 'cli', 'builder', 'dashboard'];

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
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [...apps.filter((a) => a !== app).map((a) => `@livegraft/${a}`), '../../*/src/*'],
        },
      ],
    },
  })),
);
