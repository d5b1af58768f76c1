import { rmSync } from 'node:fs';

// The run's SQLite databases (the config's E2E_DB_DIR): removed once every test has run.
export default function globalTeardown() {
  const dir = process.env.E2E_DB_DIR;
  if (dir) rmSync(dir, { recursive: true, force: true });
}
