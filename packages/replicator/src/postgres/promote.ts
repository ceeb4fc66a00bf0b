/**
 * Promotion of a passive (standby) to active: `pg_promote()` ends recovery and starts a new,
 * higher timeline; the CHECKPOINT right after makes the new timeline durable in pg_control, which
 * `pg_rewind` reads on the other side (NOTES.md: rewind against a fresh promotion needs it).
 * @see https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-CONTROL
 */
import { ReplicatorError } from '../errors';
import { connectLocal } from './database';
import type { PgInstance } from './instance';
import { TIMELINE_SQL_EXPRESSION } from './timeline';

export interface PromoteResult {
  /** Timeline before the promotion (the passive's). */
  fromTimeline: number;
  /** The new timeline this node now writes on. */
  toTimeline: number;
  /** Time spent in pg_promote + checkpoint, ms. */
  elapsedMs: number;
}

const TIMELINE_SQL = `select pg_is_in_recovery() as in_recovery, ${TIMELINE_SQL_EXPRESSION} as timeline`;

/** Reads whether the instance is in recovery and its timeline. */
export async function readTimeline(inst: PgInstance): Promise<{ inRecovery: boolean; timeline: number }> {
  const client = await connectLocal(inst, 'postgres');
  try {
    const { rows } = await client.query<{ in_recovery: boolean; timeline: number }>(TIMELINE_SQL);
    return { inRecovery: rows[0].in_recovery, timeline: rows[0].timeline };
  } finally {
    await client.end();
  }
}

/**
 * Promotes the running standby `inst` and waits (bounded) until it accepts writes. Refuses an
 * instance that is not in recovery (NOT_IN_RECOVERY): promoting twice is an operator error.
 */
export async function promoteStandby(
  inst: PgInstance,
  opts: { timeoutMs?: number } = {},
): Promise<PromoteResult> {
  const t0 = Date.now();
  const timeoutSec = Math.max(1, Math.ceil((opts.timeoutMs ?? 60_000) / 1000));
  const client = await connectLocal(inst, 'postgres');
  try {
    const before = (await client.query<{ in_recovery: boolean; timeline: number }>(TIMELINE_SQL)).rows[0];
    if (!before.in_recovery) {
      throw new ReplicatorError(
        'NOT_IN_RECOVERY',
        `PostgreSQL on port ${inst.port} is already a primary (timeline ${before.timeline}); nothing to promote`,
      );
    }
    const { rows } = await client.query<{ promoted: boolean }>(
      'select pg_promote(true, $1::int) as promoted',
      [timeoutSec],
    );
    if (!rows[0].promoted) {
      throw new ReplicatorError(
        'PROMOTE_FAILED',
        `PostgreSQL on port ${inst.port} did not finish promotion within ${timeoutSec} s; see its log in ${inst.dataDir}/log`,
      );
    }
    await client.query('checkpoint');
    const after = (await client.query<{ in_recovery: boolean; timeline: number }>(TIMELINE_SQL)).rows[0];
    return { fromTimeline: before.timeline, toTimeline: after.timeline, elapsedMs: Date.now() - t0 };
  } finally {
    await client.end();
  }
}
