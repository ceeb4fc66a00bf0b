import type { PoolClient } from 'pg';
import { AppError, SQLSTATE, toAppError } from '../errors';
import type { Logger } from '../logger';
import type { Db } from './pool';

/**
 * Decides, before touching the database, whether this node may write now (throws an AppError if
 * not). Returning `'single-node'` means the operator allowed writes without the passive
 * (`ktadmin allow-single-node-writes`): the write commits locally and is counted as degraded.
 */
export type WriteGate = () => string | null | void;

export interface WritePathOptions {
  db: Db;
  gate: WriteGate;
  /** Bound on the wait for the passive to apply the commit; default 2000 ms. */
  commitWaitMs: number;
  /**
   * Two-node mode: re-check, inside the transaction and just before COMMIT, that a synchronous
   * standby is streaming. The gate's snapshot may be up to one poll (≤ 200 ms) old; without this
   * a write arriving right after the passive died would wait out commitWaitMs and end
   * WRITE_IN_DOUBT instead of PASSIVE_UNAVAILABLE with nothing written.
   */
  requireSyncStandby?: boolean;
  /** Called when the in-transaction check finds no streaming standby (e.g. to refresh the gate). */
  onStandbyMissing?: () => void;
  /** Called after a write committed in single-node mode (metrics; the write exists on this node only). */
  onSingleNodeWrite?: () => void;
  log?: Logger;
}

/** Longest a write waits for a lock (advisory name lock, row lock) before giving up, ms. */
export const LOCK_TIMEOUT_MS = 3000;

const PASSIVE_UNAVAILABLE_MESSAGE =
  'the passive node is not streaming; writes need both nodes and were not attempted (reads still work)';

/**
 * Runs `fn` in a transaction committed under `synchronous_commit = remote_apply`, so the write
 * is visible on the passive when we answer. The wait for the standby is bounded: statement_timeout
 * does not interrupt it (NOTES.md), so after `commitWaitMs` we cancel the backend from the control
 * pool. PostgreSQL then reports the COMMIT as *successful* with a warning: the row is committed
 * locally but unconfirmed on the passive — we answer WRITE_IN_DOUBT and a retry with the same
 * Idempotency-Key resolves it.
 */
export async function runWrite<T>(opts: WritePathOptions, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  // The gate says how this write commits: 'sync' (the passive must confirm), 'single-node'
  // (operator's degraded mode), 'standalone' (no pair); older callers return nothing.
  const mode = opts.gate();
  const singleNode = mode === 'single-node';
  const checkStandby = mode === 'sync' || (!mode && !!opts.requireSyncStandby);
  let client: PoolClient;
  try {
    client = await opts.db.pool.connect();
  } catch (e) {
    throw toAppError(e);
  }
  let broken: Error | undefined;
  try {
    await client.query('begin');
    // Single-node mode (an explicit, expiring operator decision): commit without the passive.
    // One round trip: the commit mode, and a bound on every lock wait in the transaction (the
    // per-name advisory lock, row locks): a write stuck behind another gives up with nothing written.
    await client.query(
      `set local synchronous_commit = ${singleNode ? 'local' : 'remote_apply'}; set local lock_timeout = ${LOCK_TIMEOUT_MS}`,
    );
    let result: T;
    try {
      result = await fn(client);
    } catch (e) {
      await client.query('rollback').catch((err: Error) => (broken = err));
      throw e;
    }
    if (checkStandby && !(await syncStandbyStreaming(client))) {
      await client.query('rollback').catch((err: Error) => (broken = err));
      opts.onStandbyMissing?.();
      throw new AppError('PASSIVE_UNAVAILABLE', PASSIVE_UNAVAILABLE_MESSAGE, { retryAfterSec: 1 });
    }
    await commitBounded(opts, client);
    if (singleNode) {
      opts.onSingleNodeWrite?.();
      opts.log?.warn('write committed on this node only (single-node writes allowed by the operator)');
    }
    return result;
  } catch (e) {
    if (!(e instanceof AppError) && !(e as { code?: string }).code) broken = e as Error;
    throw e instanceof AppError ? e : toAppError(e);
  } finally {
    client.release(broken);
  }
}

/** A synchronous standby is connected and streaming right now (walsenders leave the view as they exit). */
async function syncStandbyStreaming(client: PoolClient): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    `select exists (select 1 from pg_stat_replication where state = 'streaming' and sync_state = 'sync') as ok`,
  );
  return rows[0]?.ok === true;
}

async function commitBounded(opts: WritePathOptions, client: PoolClient): Promise<void> {
  const pid = (client as unknown as { processID: number }).processID;
  let cancel: Promise<unknown> | undefined;
  // PostgreSQL reports a commit whose wait for the standby was cut short (by us or anyone) as a
  // success plus a WARNING notice: that notice, never the COMMIT status, is the truth (DESIGN.md).
  let warned = false;
  let rolledBack = false;
  const onNotice = (n: { code?: string }) => {
    if (n.code === SQLSTATE.WARNING || n.code === SQLSTATE.ADMIN_SHUTDOWN) warned = true;
  };
  client.on('notice', onNotice);
  const timer = setTimeout(() => {
    cancel = opts.db.control.query('select pg_cancel_backend($1)', [pid]).catch(() => undefined);
  }, opts.commitWaitMs);
  try {
    const done = await client.query('commit');
    // COMMIT of a transaction an earlier (caught) error aborted answers ROLLBACK without an
    // error: nothing was stored, and success must not be reported.
    if (done.command !== 'COMMIT') {
      opts.log?.error(
        { command: done.command },
        'write transaction was aborted before COMMIT; nothing stored',
      );
      rolledBack = true;
    }
  } catch (e) {
    const code = (e as { code?: string }).code;
    // Integrity or serialization failures are raised before the commit record: nothing committed.
    if (typeof code === 'string' && /^(23|40)/.test(code)) throw toAppError(e);
    // Anything else (connection lost, backend terminated, cancel) leaves the outcome unknown.
    throw new AppError(
      'WRITE_IN_DOUBT',
      'the commit outcome is unknown; retry with the same Idempotency-Key',
      {
        cause: e,
        retryAfterSec: 1,
      },
    );
  } finally {
    clearTimeout(timer);
    client.off('notice', onNotice);
    // Never release the client while our cancel may still land on its next statement.
    if (cancel) await cancel;
  }
  if (rolledBack) {
    throw new AppError(
      'UNAVAILABLE',
      'the database rolled this write back (an earlier statement in it failed); nothing was stored',
      { retryAfterSec: 1 },
    );
  }
  if (warned && !cancel) {
    throw new AppError(
      'WRITE_IN_DOUBT',
      'committed on the active but the wait for the passive was interrupted; retry with the same Idempotency-Key',
      { retryAfterSec: 1 },
    );
  }
  if (cancel) {
    opts.log?.warn(
      { commitWaitMs: opts.commitWaitMs },
      'commit not confirmed by the passive in time; write in doubt',
    );
    throw new AppError(
      'WRITE_IN_DOUBT',
      `committed on the active but not confirmed by the passive within ${opts.commitWaitMs} ms; retry with the same Idempotency-Key`,
      { retryAfterSec: 1 },
    );
  }
}

/**
 * A tiny write whose confirmed commit proves every earlier commit reached the passive
 * (synchronous replication confirms in LSN order). Used before answering an idempotent replay.
 */
export async function runWriteBarrier(opts: WritePathOptions): Promise<void> {
  await runWrite(opts, touchWriteBarrier);
}

/** Inside a write transaction: gives it something to commit, so its COMMIT waits for the passive. */
export async function touchWriteBarrier(c: PoolClient): Promise<void> {
  await c.query('update write_barrier set at = now() where id = 1');
}
