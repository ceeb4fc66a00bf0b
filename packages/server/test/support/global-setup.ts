import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgInstance, INITDB_TEMPLATE_ENV, makeInitdbTemplate } from '@trustee/replicator';
import { KEY_POOL_ENV } from './test-keys';
import { makeTempDir } from './temp-dir';

/**
 * Once per jest run, before any test file:
 * - the key pool directory (0700), filled lazily by packages/server/test/support/test-keys.ts;
 * - one initdb template that every database of the run copies instead of running initdb
 *   (`TRUSTEE_INITDB_TEMPLATE`, inherited by the CLIs the tests spawn).
 */
export default async function globalSetup(): Promise<void> {
  process.env[KEY_POOL_ENV] = mkdtempSync(join(tmpdir(), 'trustee-test-keys-'));
  const dir = makeTempDir('trustee-initdb-template-');
  const started = Date.now();
  await makeInitdbTemplate(createPgInstance({ dataDir: join(dir, 'data') }));
  process.env[INITDB_TEMPLATE_ENV] = join(dir, 'data');
  process.stderr.write(`initdb template ready in ${Date.now() - started} ms: ${dir}\n`);
}
