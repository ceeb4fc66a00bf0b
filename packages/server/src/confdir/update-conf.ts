import { readFileSync } from 'node:fs';
import { confPaths } from './paths';
import { writePublicFile } from './secret-files';

/** Merges keys into keytrustee.conf, keeping everything else. */
export function updateKeytrusteeConf(confdir: string, patch: Record<string, unknown>): void {
  const file = confPaths(confdir).conf;
  const current = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writePublicFile(file, JSON.stringify({ ...current, ...patch }, null, 2) + '\n');
}
