import { chainAuditRows, selectChainHead, selectUnchained } from '../db/sql/audit';
import type { PoolClient } from 'pg';
import { runWrite, type WritePathOptions, type WriteTx } from '../db/write-path';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { everyMs } from '../rate-limit';
import { appendAudit } from './append-audit';
import { auditChainMac, auditRowMac, macsEqual } from './audit-mac';
import type { AuditMetrics } from './audit-metrics';
import type { RefusalCounter } from './audit-refusals';

/**
 * The audit loop's transactions (and its housekeeping's) name their backend `keytrusteed-audit` (until they end, their
 * commit's wait for the passive included): in pg_stat_activity an operator tells this
 * housekeeping (one connection, one pass at a time) from requests waiting for the passive.
 */
export const AUDIT_APPLICATION_NAME = 'keytrusteed-audit';

/** runWrite for the audit loop: the same write, its backend named AUDIT_APPLICATION_NAME. */
function runAuditWrite<T>(
  write: WritePathOptions,
  fn: (c: PoolClient, tx: WriteTx) => Promise<T>,
): Promise<T> {
  return runWrite(write, async (c, tx) => {
    await c.query(`set local application_name = '${AUDIT_APPLICATION_NAME}'`);
    return fn(c, tx);
  });
}

/** Rows linked per chainer transaction. */
const CHAIN_BATCH = 1000;
/** Invalid rows remembered (and left out) at most; more than this and the chain may stall, loudly. */
const MAX_SKIPPED = 10_000;

export interface ChainOutcome {
  chained: number;
  /** Rows still unchained after this pass (beyond the batch, or invalid). */
  unchained: number;
  lastSeq: number;
  /** Unchained rows found with a wrong MAC in this pass (ids). */
  invalid: string[];
  /** The action of each row chained (for the per-action metric). */
  actions: string[];
}

/**
 * One chainer pass, as a write (both nodes): under audit_chain's advisory lock, reads the chain
 * head and the committed unchained rows in id order, checks each row's MAC, and links the valid
 * ones at the next positions. Rows of transactions that commit later (whatever their id) are
 * simply linked by a later pass. Only the chainer takes the lock; writers never wait for it.
 */
export async function chainPendingRows(
  write: WritePathOptions,
  key: Buffer,
  skip: Set<string> = new Set(),
): Promise<ChainOutcome> {
  return runAuditWrite(write, async (c) => {
    await c.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', ['trustee/audit-chain']);
    const head = await selectChainHead(c);
    const rows = await selectUnchained(c, { afterId: '0', limit: CHAIN_BATCH, skip: [...skip] });
    const ids: string[] = [];
    const chainMacs: Buffer[] = [];
    const invalid: string[] = [];
    let prev = head.chainMac;
    const actions: string[] = [];
    for (const row of rows) {
      if (!macsEqual(auditRowMac(key, row), row.rowMac)) {
        invalid.push(row.id);
        continue;
      }
      prev = auditChainMac(key, prev, head.seq + ids.length + 1, row.rowMac);
      ids.push(row.id);
      chainMacs.push(prev);
      actions.push(row.action);
    }
    if (ids.length)
      await chainAuditRows(c, { ids, firstSeq: head.seq + 1, prevMac: head.chainMac, chainMacs });
    return {
      chained: ids.length,
      unchained: head.unchained - ids.length,
      lastSeq: head.seq + ids.length,
      invalid,
      actions,
    };
  });
}

export interface AuditLoopOptions {
  write: WritePathOptions;
  key: Buffer;
  refusals: RefusalCounter;
  metrics: AuditMetrics;
  log: Logger;
  /** This node decides it is the active (only the active writes). */
  isActive: () => boolean;
  /** Default 1000 ms. */
  intervalMs?: number;
  /**
   * Other once-a-second writes of the active, run in each pass after the audit's own (e.g. the
   * quota counters' fold, deposits/usage-compaction.ts); each takes the write's client.
   */
  housekeeping?: ((c: PoolClient) => Promise<unknown>)[];
}

/** Codes that only mean "not now": the next pass on a writable active catches up. */
const NOT_NOW = new Set(['NOT_ACTIVE', 'PASSIVE_UNAVAILABLE', 'WRITE_IN_DOUBT', 'UNAVAILABLE']);

/**
 * keytrusteed's audit loop, on the active only, about once a second: writes the closed windows
 * of counted refusals as aggregate rows, then chains what committed since the last pass. On a
 * passive it does nothing (refusals stay counted in memory until this node writes).
 */
export function startAuditLoop(opts: AuditLoopOptions): {
  stop(): Promise<void>;
  /** One pass now; `flushOpen` also writes the refusal window still open. */
  tick(flushOpen?: boolean): Promise<void>;
} {
  const skip = new Set<string>();
  const warning = everyMs(10_000);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const m = opts.metrics;

  const flushRefusals = async (flushOpen: boolean) => {
    const entries = opts.refusals.takeClosed(flushOpen);
    if (!entries.length) return;
    try {
      await runAuditWrite(opts.write, async (c, tx) => {
        for (const e of entries) await appendAudit(c, tx, e);
      });
    } catch (e) {
      // In doubt: the rows may be in; counting them twice is worse than a gap in refusals.
      if ((e as AppError).code !== 'WRITE_IN_DOUBT') opts.refusals.putBack(entries);
      throw e;
    } finally {
      m.refusalsDropped.inc(opts.refusals.dropped);
      opts.refusals.dropped = 0;
    }
  };

  const pass = async (flushOpen = false) => {
    if (!opts.isActive()) return;
    try {
      await flushRefusals(flushOpen);
      for (const job of opts.housekeeping ?? []) await runAuditWrite(opts.write, job);
      const r = await chainPendingRows(opts.write, opts.key, skip);
      for (const a of r.actions) m.rowsChained.inc({ action: a });
      m.unchained.set(Math.max(0, r.unchained));
      m.chainSeq.set(r.lastSeq);
      for (const id of r.invalid) if (skip.size < MAX_SKIPPED) skip.add(id);
      m.invalidRows.set(skip.size);
      if (r.invalid.length) {
        opts.log.error(
          { ids: r.invalid.slice(0, 10), count: r.invalid.length },
          'audit rows with a wrong MAC were left unchained (inserted or changed in the database); run ktadmin audit verify',
        );
      }
    } catch (e) {
      const code = (e as AppError).code;
      if (e instanceof AppError && NOT_NOW.has(code)) opts.log.debug({ code }, 'audit chainer: not now');
      else if (warning.due()) opts.log.warn({ err: (e as Error).message }, 'audit chainer pass failed');
    }
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass().finally(() => {
        running = undefined;
        schedule();
      });
    }, opts.intervalMs ?? 1000);
    timer.unref();
  };
  schedule();
  return {
    async tick(flushOpen = false) {
      await running;
      await pass(flushOpen);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      // Counted refusals would be lost with the process: write them while this node still can.
      await pass(true);
    },
  };
}
