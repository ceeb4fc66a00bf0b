import { rmSync } from 'node:fs';
import { KEY_POOL_ENV } from './test-keys';

/** Removes the run's key pool (private keys) when jest ends. */
export default function globalTeardown(): void {
  const dir = process.env[KEY_POOL_ENV];
  if (dir) rmSync(dir, { recursive: true, force: true });
}
