// ESLint (flat config): neostandard, fastify's style, with its TypeScript support
// (typescript-eslint's parser and its versions of the core rules), plus typescript-eslint's
// recommended rules. `npm test` runs it; `npm run lint -- --fix` fixes the style findings.
import globals from 'globals';
import neostandard, { plugins, resolveIgnoresFromGitignore } from 'neostandard';

const tseslint = plugins['typescript-eslint'];
const TS = ['**/*.ts'];

// The dashboard runs in the browser as plain ES modules: browser globals, and none of node's
// (neostandard's base config gives every file node's).
const nodeOnly = Object.keys(globals.node).filter((name) => !(name in globals.browser));

export default [
  // first, so that neostandard's choices below win where both set a rule (no-unused-vars)
  ...tseslint.configs.recommended.map((config) => ({ ...config, files: TS })),

  ...neostandard({
    ts: true,
    semi: true, // the code ends its statements with semicolons
    noJsx: true, // no JSX here (the dashboard builds its DOM with dom.js's h())
    ignores: resolveIgnoresFromGitignore(), // node_modules, dist, coverage, .tap, bench/results, test-artifacts
  }),

  {
    name: 'wiihey/dashboard',
    files: ['src/dashboard/public/**/*.js'],
    languageOptions: {
      globals: { ...Object.fromEntries(nodeOnly.map((name) => [name, 'off'])), ...globals.browser },
    },
  },

  {
    // The code is formatted like prettier (print width 150, single quotes, trailing commas "all").
    // These rules of neostandard's style are set to the layout prettier writes, rather than
    // turned off or the whole code base rewritten to standard's layout:
    name: 'wiihey/layout',
    rules: {
      // `function name(`, `method(`, but `function (` and `async (`
      '@stylistic/space-before-function-paren': ['error', { anonymous: 'always', named: 'never', asyncArrow: 'always' }],
      // a trailing comma wherever an item ends a line (neostandard forbids it in calls and
      // parameter lists and ignores it elsewhere)
      '@stylistic/comma-dangle': ['error', 'always-multiline'],
      // `function* gen()` and `yield* other`
      '@stylistic/generator-star-spacing': ['error', { before: false, after: true }],
      '@stylistic/yield-star-spacing': ['error', 'after'],
    },
  },

  {
    name: 'wiihey/void',
    rules: {
      // `void promise;` as a statement says "not awaited, on purpose" (the convention of
      // typescript-eslint's no-floating-promises), and `void el.offsetWidth;` forces a reflow;
      // `void` inside an expression stays an error
      'no-void': ['error', { allowAsStatement: true }],
    },
  },
];
