/** Jest runs TypeScript straight from src (no prior build needed for imports);
 *  tests that spawn CLIs use the dist build that `npm test` makes first. tsconfig.test.json sets
 *  isolatedModules, so ts-jest only transpiles each file: `npm test` type-checks the whole tree
 *  with `tsc -p tsconfig.test.json` before jest starts. */
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }],
  },
  moduleNameMapper: {
    '^@trustee/(replicator|sdk|server)$': '<rootDir>/packages/$1/src/index.ts',
  },
  testMatch: [
    '<rootDir>/packages/*/src/**/*.test.ts',
    '<rootDir>/packages/*/test/**/*.test.ts',
    '<rootDir>/tests/**/*.test.ts',
  ],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  // A per-run pool of RSA identity / replication CA keys for the cluster helpers.
  globalSetup: '<rootDir>/packages/server/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/packages/server/test/support/global-teardown.ts',
  reporters: ['default', '<rootDir>/packages/server/test/support/timings-reporter.js'],
  // Longest files first even on a clean clone (durations committed in tests/test-timings.json).
  testSequencer: '<rootDir>/packages/server/test/support/test-sequencer.js',
  testTimeout: 120000,
  // 3 workers on 2 cores: test files mostly wait (failovers, backoffs), see README "Development".
  maxWorkers: 3,
};
