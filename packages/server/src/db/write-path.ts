import type { PoolClient } from 'pg';
import { AppError, SQLSTATE, toAppError } from '../errors';
import type { Logger } from '../logger';
import { checkoutClient, requestAbandoned, type Db } from './pool';
import { waitForStandbyReplay } from './wait-for-standby-replay';

/**
 * Decides, before touching the database, whether this node may write now (throws an AppError if
 * not). Returning `'single-node'` means the operator allowed writes without the passive
 * (`ktadmin allow-single-node-writes`): the write commits locally and is counted as degraded.
 */
export type WriteGate = () => string | null | void;

/**
 * Why a write ended WRITE_IN_DOUBT: the COMMIT's outcome is unknown (connection lost, backend
 * terminated, given up); the wait for the passive was interrupted; the passive did not confirm
 * within commitWaitMs; or an idempotent replay's wait for the passive's replay ran out.
 */
export type InDoubtReason =
  'commit_outcome_unknown' | 'standby_wait_interrupted' | 'standby_not_confirmed' | 'replay_not_confirmed';

export const IN_DOUBT_REASONS: readonly InDoubtReason[] = [
  'commit_outcome_unknown',
  'standby_wait_interrupted',
  'standby_not_confirmed',
  'replay_not_confirmed',
];

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
  /** Called when a write ends WRITE_IN_DOUBT, with why (metrics: trustee_writes_in_doubt_total). */
  onInDoubt?: (reason: InDoubtReason) => void;
  log?: Logger;
  /** Key of the audit rows' MACs (audit/audit-mac.ts); appendAudit refuses to write without it. */
  auditKey?: Buffer;
}

/** Longest a write waits for a lock (advisory name lock, row lock) before giving up, ms. */
export const LOCK_TIMEOUT_MS = 3000;

/**
 * Longest any one statement of a write may run, ms: above LOCK_TIMEOUT_MS, so a lock wait ends as
 * a lock timeout. The COMMIT's wait for the passive is bounded by commitWaitMs instead:
 * statement_timeout does not end it (NOTES.md; re-measured on PG 15: a COMMIT under
 * `statement_timeout = 1s` waited 20 s for an absent synchronous standby).
 */
export const STATEMENT_TIMEOUT_MS = 5000;

/**
 * After cancelling a COMMIT's wait for the passive, how long the COMMIT may take to return before
 * its backend is terminated (pg_terminate_backend), and again before the connection is dropped
 * from this side, ms. The outcome stays WRITE_IN_DOUBT either way.
 */
export const CANCEL_GRACE_MS = 1000;

/** Per-call controls of a write. */
export interface WriteControl {
  /**
   * Aborts when the request's client has gone: work not yet started is skipped and a transaction
   * not yet committed is rolled back. Once COMMIT is sent the write runs to its true outcome.
   */
  signal?: AbortSignal;
}

/**
 * SQL expression: a synchronous standby is connected and streaming right now (walsenders leave
 * the list as they exit). The function under the pg_stat_replication view: the view (a join with
 * pg_stat_activity and pg_authid) cost ~0.66 ms of planning per write, this ~0.07 ms (NOTES.md);
 * the same walsender states, visible to the app role through pg_monitor.
 */
export const SYNC_STANDBY_STREAMING_SQL = `exists (select 1 from pg_stat_get_wal_senders() w where w.state = 'streaming' and w.sync_state = 'sync')`;

/** What the transaction's own statements tell runWrite. */
export interface WriteTx {
  /**
   * Set by the transaction's last statement when it also evaluated SYNC_STANDBY_STREAMING_SQL
   * (e.g. in an INSERT's RETURNING): runWrite then uses that answer instead of its own check
   * just before COMMIT, which would cost a round trip more. Nothing may run between that
   * statement and the COMMIT.
   */
  standbyStreaming?: boolean;
  /** How this write commits (for its audit row): both nodes, this node alone, or no pair. */
  readonly writeMode: 'sync' | 'single-node' | 'standalone';
  /** WritePathOptions.auditKey, for appendAudit (audit/append-audit.ts). */
  readonly auditKey?: Buffer;
}

const PASSIVE_UNAVAILABLE_MESSAGE =
  'the passive node is not streaming; writes need both nodes and were not attempted (reads still work)';

/**
 * Runs `fn` in a transaction committed under `synchronous_commit = remote_apply`, so the write
 * is visible on the passive when we answer. The wait for the standby is bounded: statement_timeout
 * does not interrupt it (NOTES.md), so after `commitWaitMs` we cancel the backend from the control
 * pool, and terminate it if the cancel did not end the COMMIT. PostgreSQL then reports the COMMIT as
 * *successful* with a warning: the row is committed locally but unconfirmed on the passive — we
 * answer WRITE_IN_DOUBT and a retry with the same Idempotency-Key resolves it.
 */
export async function runWrite<T>(
  opts: WritePathOptions,
  fn: (c: PoolClient, tx: WriteTx) => Promise<T>,
  ctl: WriteControl = {},
): Promise<T> {
  const { signal } = ctl;
  // The gate says how this write commits: 'sync' (the passive must confirm), 'single-node'
  // (operator's degraded mode), 'standalone' (no pair); older callers return nothing.
  const mode = opts.gate();
  const singleNode = mode === 'single-node';
  const checkStandby = mode === 'sync' || (!mode && !!opts.requireSyncStandby);
  const client = await checkoutClient(opts.db.pool, signal);
  const conn: { broken?: Error } = {};
  try {
    if (signal?.aborted) throw requestAbandoned(signal);
    // Single-node mode (an explicit, expiring operator decision): commit without the passive.
    // One round trip (one simple-protocol query, no parameters): BEGIN, the commit mode, a bound
    // on every lock wait in the transaction (the per-name advisory lock, row locks) and on every
    // statement: a write stuck behind another, or slow for any reason, gives up with nothing written.
    await client.query(
      `begin; set local synchronous_commit = ${singleNode ? 'local' : 'remote_apply'}; set local lock_timeout = ${LOCK_TIMEOUT_MS}; set local statement_timeout = ${STATEMENT_TIMEOUT_MS}`,
    );
    let result: T;
    const writeMode = singleNode ? 'single-node' : checkStandby ? 'sync' : 'standalone';
    const tx: WriteTx = { writeMode, auditKey: opts.auditKey };
    try {
      result = await fn(client, tx);
      // The client has gone and nothing is committed yet: store nothing.
      if (signal?.aborted) throw requestAbandoned(signal);
    } catch (e) {
      await client.query('rollback').catch((err: Error) => (conn.broken = err));
      throw statementError(e);
    }
    if (checkStandby && !(tx.standbyStreaming ?? (await syncStandbyStreaming(client)))) {
      await client.query('rollback').catch((err: Error) => (conn.broken = err));
      opts.onStandbyMissing?.();
      throw new AppError('PASSIVE_UNAVAILABLE', PASSIVE_UNAVAILABLE_MESSAGE, { retryAfterSec: 1 });
    }
    // From here on the signal is ignored: the answer must say what really happened.
    await commitBounded(opts, client, conn);
    if (singleNode) {
      opts.onSingleNodeWrite?.();
      opts.log?.warn('write committed on this node only (single-node writes allowed by the operator)');
    }
    return result;
  } catch (e) {
    if (!(e instanceof AppError) && !(e as { code?: string }).code) conn.broken = e as Error;
    throw e instanceof AppError ? e : toAppError(e);
  } finally {
    client.release(conn.broken);
  }
}

/** A statement of the write ran out of statement_timeout: say so (nothing was stored). */
function statementError(e: unknown): unknown {
  if ((e as { code?: string }).code !== SQLSTATE.QUERY_CANCELED) return e;
  return new AppError(
    'UNAVAILABLE',
    `a statement of this write ran longer than ${STATEMENT_TIMEOUT_MS} ms; nothing was stored, retry`,
    { cause: e, retryAfterSec: 1 },
  );
}

/** SYNC_STANDBY_STREAMING_SQL in a round trip of its own (a prepared statement). */
async function syncStandbyStreaming(client: PoolClient): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>({
    name: 'kt-sync-standby-streaming',
    text: `select ${SYNC_STANDBY_STREAMING_SQL} as ok`,
  });
  return rows[0]?.ok === true;
}

function inDoubt(opts: WritePathOptions, reason: InDoubtReason, message: string, cause?: unknown): AppError {
  opts.onInDoubt?.(reason);
  return new AppError('WRITE_IN_DOUBT', message, { cause, retryAfterSec: 1 });
}

/**
 * COMMIT with its wait for the passive bounded in three steps: pg_cancel_backend at commitWaitMs;
 * pg_terminate_backend when the COMMIT still has not returned CANCEL_GRACE_MS later (a cancel that
 * did not land); and after another CANCEL_GRACE_MS the connection is given up from this side.
 * Whatever happened after the cancel, the outcome is WRITE_IN_DOUBT, and a connection we
 * terminated or gave up is marked broken (`conn.broken`) so the pool discards it.
 */
async function commitBounded(
  opts: WritePathOptions,
  client: PoolClient,
  conn: { broken?: Error },
): Promise<void> {
  const pid = (client as unknown as { processID: number }).processID;
  const control = opts.db.control;
  let cancel: Promise<unknown> | undefined;
  let terminate: Promise<unknown> | undefined;
  // PostgreSQL reports a commit whose wait for the standby was cut short (by us or anyone) as a
  // success plus a WARNING notice: that notice, never the COMMIT status, is the truth (DESIGN.md).
  let warned = false;
  let rolledBack = false;
  const onNotice = (n: { code?: string }) => {
    if (n.code === SQLSTATE.WARNING || n.code === SQLSTATE.ADMIN_SHUTDOWN) warned = true;
  };
  client.on('notice', onNotice);
  const timers: NodeJS.Timeout[] = [];
  let giveUp: (e: Error) => void = () => undefined;
  const givenUp = new Promise<never>((_resolve, reject) => (giveUp = reject));
  givenUp.catch(() => undefined);
  timers.push(
    setTimeout(() => {
      cancel = control.query('select pg_cancel_backend($1)', [pid]).catch(() => undefined);
    }, opts.commitWaitMs),
    setTimeout(() => {
      opts.log?.warn(
        { graceMs: CANCEL_GRACE_MS },
        'cancelled commit wait did not end; terminating its database backend',
      );
      terminate = control.query('select pg_terminate_backend($1)', [pid]).catch(() => undefined);
    }, opts.commitWaitMs + CANCEL_GRACE_MS),
    setTimeout(
      () => giveUp(new Error('COMMIT did not return after cancel and terminate')),
      opts.commitWaitMs + 2 * CANCEL_GRACE_MS,
    ),
  );
  const commit = client.query('commit');
  commit.catch(() => undefined);
  try {
    const done = await Promise.race([commit, givenUp]);
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
    // Anything else (connection lost, backend terminated, given up) leaves the outcome unknown.
    conn.broken ??= e as Error;
    throw inDoubt(
      opts,
      'commit_outcome_unknown',
      'the commit outcome is unknown; retry with the same Idempotency-Key',
      e,
    );
  } finally {
    for (const t of timers) clearTimeout(t);
    client.off('notice', onNotice);
    // Never release the client while our cancel may still land on its next statement; a
    // backend we terminated is never reused.
    if (cancel) await cancel;
    if (terminate) {
      await terminate;
      conn.broken ??= new Error('backend terminated after its commit wait was cancelled');
    }
  }
  if (rolledBack) {
    throw new AppError(
      'UNAVAILABLE',
      'the database rolled this write back (an earlier statement in it failed); nothing was stored',
      { retryAfterSec: 1 },
    );
  }
  if (warned && !cancel) {
    throw inDoubt(
      opts,
      'standby_wait_interrupted',
      'committed on the active but the wait for the passive was interrupted; retry with the same Idempotency-Key',
    );
  }
  if (cancel) {
    opts.log?.warn(
      { commitWaitMs: opts.commitWaitMs },
      'commit not confirmed by the passive in time; write in doubt',
    );
    throw inDoubt(
      opts,
      'standby_not_confirmed',
      `committed on the active but not confirmed by the passive within ${opts.commitWaitMs} ms; retry with the same Idempotency-Key`,
    );
  }
}

/**
 * Before answering an idempotent replay: waits until the passive has applied every commit this
 * node had flushed — so the earlier attempt (which may have ended WRITE_IN_DOUBT) is confirmed —
 * without writing anything or holding a pooled connection (waitForStandbyReplay). Same refusals
 * as a write (the gate); nothing to wait for in single-node or standalone mode; WRITE_IN_DOUBT
 * after commitWaitMs, PASSIVE_UNAVAILABLE when no synchronous standby streams.
 */
export async function runWriteBarrier(opts: WritePathOptions, ctl: WriteControl = {}): Promise<void> {
  const { signal } = ctl;
  if (signal?.aborted) throw requestAbandoned(signal);
  const mode = opts.gate();
  if (mode === 'single-node' || mode === 'standalone') return;
  if (!mode && !opts.requireSyncStandby) return;
  await waitForStandbyReplay(opts.db, {
    timeoutMs: opts.commitWaitMs,
    signal,
    onStandbyMissing: opts.onStandbyMissing,
  }).catch((e: unknown) => {
    if (e instanceof AppError && e.code === 'WRITE_IN_DOUBT') opts.onInDoubt?.('replay_not_confirmed');
    throw e;
  });
}

/**
 * Inside a write transaction: gives it something to commit, so its COMMIT waits for the passive
 * (and so confirms every earlier commit: synchronous replication confirms in LSN order). A
 * transactional logical message writes WAL and takes a transaction id without touching any row,
 * so concurrent barriers never wait for each other. Prefer ending the transaction and calling
 * runWriteBarrier, which holds no connection while it waits.
 */
export async function touchWriteBarrier(c: PoolClient): Promise<void> {
  await c.query("select pg_logical_emit_message(true, 'trustee/write-barrier', '')");
}
