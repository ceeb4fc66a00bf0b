import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Client } from 'pg';
import { DB_SUPERUSER, findPgBinDir, socketDirFor } from '@trustee/replicator';

/**
 * Runs the real `psql` as the superuser against a node's PostgreSQL (its private socket beside
 * the data directory), stopping at the first error; returns stdout. `args` names the database
 * and what to run (`-d`, `-c`, `-f`, …).
 */
export function psqlAt(node: { dbDir: string; dbPort: number }, args: string[]): string {
  return execFileSync(
    join(findPgBinDir(), 'psql'),
    [
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      socketDirFor(node.dbDir),
      '-p',
      String(node.dbPort),
      '-U',
      DB_SUPERUSER,
      ...args,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 },
  );
}

/** Runs `fn` with a superuser connection to a node's database (over its socket), always closed. */
export async function withSuperuser<T>(
  node: { dbDir: string; dbPort: number },
  fn: (c: Client) => Promise<T>,
  database = 'keytrustee',
): Promise<T> {
  const c = new Client({ host: socketDirFor(node.dbDir), port: node.dbPort, user: DB_SUPERUSER, database });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
