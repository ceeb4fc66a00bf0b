import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { INITDB_TEMPLATE_ENV } from '@trustee/replicator';
import { KEY_POOL_ENV } from './test-keys';

/** Removes the run's key pool (private keys) and initdb template when jest ends. */
export default function globalTeardown(): void {
  const dir = process.env[KEY_POOL_ENV];
  if (dir) rmSync(dir, { recursive: true, force: true });
  const template = process.env[INITDB_TEMPLATE_ENV];
  if (template) rmSync(dirname(template), { recursive: true, force: true });
}
