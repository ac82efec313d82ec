import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';
import { SkipReporter } from './test/support/skip-reporter.js';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

// Tests import workspace packages from source, so a unit test never runs
// against a stale dist/. End-to-end tests spawn the compiled daemons, which
// is why `make test` builds first.
export default defineConfig({
  resolve: {
    alias: {
      '@sluice/native': pkg('native'),
      '@sluice/protocol': pkg('protocol'),
      '@sluice/core': pkg('core'),
      '@sluice/report': pkg('report'),
      '@sluice/transit': pkg('transit'),
      '@sluice/ingress': pkg('ingress'),
      '@sluice/egress': pkg('egress'),
      '@sluice/cli': pkg('cli'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // The default report, then every skipped test with its reason.
    reporters: ['default', new SkipReporter()],
  },
});
