import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KEY_POOL_ENV } from './test-keys';

/** Once per jest run: the key pool directory (0700), filled lazily by packages/server/test/support/test-keys.ts. */
export default function globalSetup(): void {
  process.env[KEY_POOL_ENV] = mkdtempSync(join(tmpdir(), 'trustee-test-keys-'));
}
