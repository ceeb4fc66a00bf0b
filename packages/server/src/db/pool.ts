import { Pool, type PoolClient } from 'pg';

export interface DbTarget {
  /** Unix socket directory (the PostgreSQL data dir) or a host name. */
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
}

/** Main pool for requests, plus a tiny control pool for cancels and state polling that a busy main pool never starves. */
export interface Db {
  pool: Pool;
  control: Pool;
  close(): Promise<void>;
}

/**
 * `requestUser`: the role the request pool logs in as (keytrusteed: the least-privilege app role);
 * the control pool keeps `target.user` (it cancels request backends and reads replication state).
 */
export function createDb(target: DbTarget, opts: { max?: number; requestUser?: string } = {}): Db {
  const common = { ...target, connectionTimeoutMillis: 3000, idleTimeoutMillis: 30_000 };
  const pool = createRequestPool(target, opts);
  // Control queries are tiny: a database that does not answer them within 2 s counts as down
  // (the state poll fails instead of hanging), and the broken connection is discarded.
  const control = new Pool({
    ...common,
    max: 3,
    application_name: 'keytrusteed-control',
    query_timeout: 2000,
  });
  // A pooled idle client whose backend dies emits 'error' on the pool; without a listener that crashes the process.
  control.on('error', () => undefined);
  // pg-pool removes its idle listener while a client is checked out, and a pg Client emits 'error'
  // when its connection drops (even with a query in flight, which also gets the error): without a
  // listener of our own, a PostgreSQL crash during any request or state poll killed keytrusteed.
  // The query/commit still fails and the caller releases the client as broken.
  control.on('connect', (client) => void client.on('error', () => undefined));
  const db: Db = {
    pool,
    control,
    async close() {
      // db.pool, not the first pool: startup may swap the request pool's login role.
      await Promise.allSettled([db.pool.end(), control.end()]);
    },
  };
  return db;
}

/** The pool requests run on (login role `requestUser`, default the target's), with the same crash guards. */
export function createRequestPool(target: DbTarget, opts: { max?: number; requestUser?: string } = {}): Pool {
  const pool = new Pool({
    ...target,
    connectionTimeoutMillis: 3000,
    idleTimeoutMillis: 30_000,
    user: opts.requestUser ?? target.user,
    max: opts.max ?? 20,
    application_name: 'keytrusteed',
  });
  pool.on('error', () => undefined);
  pool.on('connect', (client) => void client.on('error', () => undefined));
  return pool;
}

/** Runs fn with a pooled client, always released; a client that saw a connection error is destroyed. */
export async function withClient<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await fn(client);
  } catch (e) {
    if (!(e as { code?: string }).code) broken = e as Error;
    throw e;
  } finally {
    client.release(broken);
  }
}
