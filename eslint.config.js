// A short rule set; each rule says why it is here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/results/**', 'helm/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      // `any` switches the type checker off; src/ must stay fully typed.
      '@typescript-eslint/no-explicit-any': 'error',
      // Unused code is dead weight on a hot path and misleads readers; `_x` marks a deliberate skip.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // Type-only imports vanish at build time, so the runtime import graph stays honest.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // `==` coercions hide bugs in header and status handling.
      eqeqeq: ['error', 'always'],
      // Logs go through pino; a stray console.log corrupts the JSON log stream.
      'no-console': 'error',
    },
  },
  // The folders are the architecture: dependencies point one way (README, Design notes).
  // Type-only imports count too, since they couple the layers just as much.
  ...layer('src/exchange/**', ['proxy', 'admin', 'policies', 'runtime', 'app'], 'the shared per-exchange types sit below every other layer'),
  ...layer('src/policies/**', ['proxy', 'admin', 'runtime', 'app'], 'policies see an exchange through src/exchange only, never a transport or the admin side'),
  ...layer('src/config/**', ['proxy', 'admin', 'policies', 'exchange', 'runtime', 'app'], 'config is pure data plus validation'),
  ...layer('src/deadletter/**', ['proxy', 'admin', 'policies', 'runtime', 'app'], 'the journal is storage: it knows the config and the entry shape (exchange/), nothing of the request path'),
  ...layer('src/admin/**', ['proxy', 'runtime', 'app'], 'admin reads a state registry (admin/registry.ts), not proxy internals'),
  {
    files: ['test/**/*.ts', 'bench/**'],
    rules: {
      // Tests and benchmarks may print and may be loose about types of fixtures.
      'no-console': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['bench/**/*.js', 'bench/**/*.mjs', 'scripts/**/*.js', 'scripts/**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', performance: 'readonly', URL: 'readonly', setImmediate: 'readonly' },
    },
  },
);

/** A no-restricted-imports rule that keeps `files` from importing the named src/ folders or modules. */
function layer(files, forbidden, why) {
  const patterns = forbidden.flatMap((f) => [`../${f}`, `../${f}/*`, `../${f}.js`, `./${f}/*`]);
  return [{ files: [files], rules: { 'no-restricted-imports': ['error', { patterns: [{ group: patterns, message: why }] }] } }];
}
