import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import { ReplicatorError } from '../errors';

/** Lowest server_version_num we support (standby.signal era). */
export const MIN_SERVER_VERSION_NUM = 120000;

/** Arbitrary constant for pg_advisory_xact_lock so two processes never migrate at once. */
const MIGRATION_LOCK_ID = 7_351_001;

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

/** Reads `NNNN-name.sql` files, sorted by number; rejects gaps and duplicates. */
export function readMigrations(dir: string): Migration[] {
  const files = readdirSync(dir)
    .filter((f) => /^\d{4}-[a-z0-9-]+\.sql$/.test(f))
    .sort();
  return files.map((f, i) => {
    const id = Number(f.slice(0, 4));
    if (id !== i + 1)
      throw new ReplicatorError('MIGRATION_FAILED', `migration ${f} out of sequence: expected ${i + 1}`);
    return { id, name: f.replace(/\.sql$/, ''), sql: readFileSync(join(dir, f), 'utf8') };
  });
}

/**
 * Applies pending migrations, each in its own transaction together with its bookkeeping row.
 * Returns the names applied. Must run on the primary.
 */
export async function runMigrations(client: Client, dir: string): Promise<string[]> {
  const { rows } = await client.query<{ v: string }>("select current_setting('server_version_num') as v");
  const version = Number(rows[0].v);
  if (version < MIN_SERVER_VERSION_NUM) {
    throw new ReplicatorError(
      'PG_VERSION_UNSUPPORTED',
      `Trustee requires PostgreSQL >= 12, found server_version_num ${version}`,
    );
  }
  await client.query(
    'create table if not exists trustee_migrations (id int primary key, name text not null, applied_at timestamptz not null default now())',
  );
  const applied: string[] = [];
  for (const m of readMigrations(dir)) {
    await client.query('begin');
    try {
      await client.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]);
      const done = await client.query('select 1 from trustee_migrations where id = $1', [m.id]);
      if (!done.rowCount) {
        await client.query(m.sql);
        await client.query('insert into trustee_migrations (id, name) values ($1, $2)', [m.id, m.name]);
        applied.push(m.name);
      }
      await client.query('commit');
    } catch (e) {
      await client.query('rollback').catch(() => undefined);
      throw new ReplicatorError('MIGRATION_FAILED', `migration ${m.name} failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  return applied;
}
