import { defineConfig } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// Worker processes load this file again: keep the first choice of port and database in the env.
process.env.E2E_PORT ??= String(20000 + Math.floor(Math.random() * 20000));
process.env.E2E_DB_DIR ??= mkdtempSync(path.join(tmpdir(), 'ai-batch-e2e-'));
const root = path.resolve(__dirname, '..');
const bin = process.env.AI_BATCH_BIN ?? path.join(root, 'target', 'debug', 'ai-batch');
/** A SQLite database of this run, in the directory `global-teardown.ts` removes after it. */
export const databaseUrl = (name: string) =>
  `sqlite://${path.join(process.env.E2E_DB_DIR as string, name)}`;
export const serverEnv = {
  DATABASE_URL: databaseUrl('e2e.db'),
  AI_BATCH_ADDR: `127.0.0.1:${process.env.E2E_PORT}`,
  AI_BATCH_SITE_ROOT: path.join(root, 'target', 'site'),
  RUST_LOG: 'warn',
  // Admins flush by hand in the tests; results are collected by the scheduler's auto-poll.
  AI_BATCH_PROVIDER: 'emulator',
  AI_BATCH_EMULATOR_DELAY_SECS: '2',
  AI_BATCH_AUTO_FLUSH: 'false',
  AI_BATCH_POLL_INTERVAL_SECS: '1',
  AI_BATCH_SCHEDULER_TICK_MS: '500',
  // Every possible cache read happens: the tests show what a read saves; how often reads
  // happen at the default best-effort rate is the caching benchmark's business.
  AI_BATCH_EMULATOR_CACHE_HIT_RATE: '1',
};
export const aiBatchBin = bin;

export default defineConfig({
  testDir: './tests',
  globalTeardown: './global-teardown.ts',
  outputDir: './test-results',
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [['list']],
  timeout: 60_000,
  // The debug bundle on two shared cores: a re-render after a server call can take seconds.
  expect: { timeout: 10_000 },
  use: {
    baseURL: `http://127.0.0.1:${process.env.E2E_PORT}`,
    trace: 'retain-on-failure',
  },
  projects: [
    {
      name: 'chromium',
      use: {
        browserName: 'chromium',
        launchOptions: {
          executablePath: '/usr/bin/chromium',
          args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--no-first-run',
          ],
        },
      },
    },
  ],
  webServer: {
    command: `"${bin}" serve`,
    cwd: root,
    env: serverEnv,
    url: `http://127.0.0.1:${process.env.E2E_PORT}/healthz`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: 'ignore',
    stderr: 'pipe',
  },
});
