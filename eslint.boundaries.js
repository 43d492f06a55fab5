// Declared boundaries (docs/ARCHITECTURE.md), imported by eslint.config.js and held to by
// test/contract/boundaries.test.ts: the agent never imports the functions; the functions import the
// agent only through the contract (the field catalogue, the batch and its codec, object keys and
// store, the parser types and protocol descriptors, metrics and the /healthz and /readyz answers
// every role gives (status-server.ts)). Code both share that is not the contract (marketplace
// signing and semver) lives in lib/, which imports neither. The CLI, which starts every role, is
// the one place that sees both.
export default [
  {
    files: ['agent/**/*.ts'],
    ignores: ['agent/cli/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(\\.\\./)+functions/', message: 'the agent does not import the functions: share code through agent/contract (docs/ARCHITECTURE.md)' }] }],
    },
  },
  {
    files: ['functions/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              // Any path into agent/ but the contract's files.
              regex: '^(\\.\\./)+agent/(?!contract/[^/]+\\.ts$|shipping/(batch|codec|keys|store)\\.ts$|protocols/(parser|descriptors)\\.ts$|capture/message\\.ts$|metrics\\.ts$|status-server\\.ts$)',
              message: 'the functions import the agent only through the contract (agent/contract, shipping batch/codec/keys/store, parser types, descriptors, metrics and the health/readiness answers): docs/ARCHITECTURE.md',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['lib/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(\\.\\./)+(agent|functions)/', message: 'lib/ is shared by the agent and the functions and imports neither (docs/ARCHITECTURE.md)' }] }],
    },
  },
];
