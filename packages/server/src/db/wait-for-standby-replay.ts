import type { Pool } from 'pg';
import { AppError, toAppError } from '../errors';
import type { Db } from './pool';
import { requestAbandoned } from './pool';

/** First and longest pause between two reads of the standby's replay position, ms (doubling). */
export const REPLAY_POLL_MIN_MS = 5;
export const REPLAY_POLL_MAX_MS = 50;

/**
 * One read of both positions: this node's WAL flush position and how far the synchronous
 * standby has applied. Prepared once per control connection (the view's planning is most of
 * its cost, NOTES.md). LSNs as byte offsets in text (numeric), compared as bigint.
 */
const READ_POSITIONS = {
  name: 'trustee-replay-positions',
  text: `select (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::text as flush,
                (max(r.replay_lsn) - '0/0'::pg_lsn)::text as replay,
                count(*)::int as standbys
           from pg_stat_replication r
          where r.state = 'streaming' and r.sync_state = 'sync'`,
};

interface Positions {
  flush: bigint;
  /** Highest replay position among streaming synchronous standbys; null when none reports one. */
  replay: bigint | null;
  standbys: number;
}

export interface ReplayWaitOptions {
  /** Bound on the wait; on expiry WRITE_IN_DOUBT (the commit may not be on the passive yet). */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Called when no synchronous standby is streaming (e.g. to refresh the write gate). */
  onStandbyMissing?: () => void;
}

interface Waiter {
  /** Reads started before this number began before the waiter came: they do not count for it. */
  fromRead: number;
  /** The flush position this waiter needs applied (from the first read that began after it came). */
  target?: bigint;
  opts: ReplayWaitOptions;
  settle(e?: AppError): void;
}

/**
 * Waits, writing nothing and holding no pooled connection, until the synchronous standby has
 * applied everything this node had flushed when the wait began. Any commit whose row the
 * caller has already seen is covered: PostgreSQL flushes a commit record locally before its
 * synchronous-replication wait and before the row becomes visible, so the flush position read
 * afterwards is at or past it, and the standby's `replay_lsn` passing that position proves the
 * commit is applied there.
 *
 * The standby reports its apply position at once after applying a synchronous (remote_apply)
 * commit, otherwise at least every wal_receiver_status_interval (1 s): a wait whose target lies
 * past the last such commit can take up to that long.
 *
 * All waiters of one database share a single poll loop on the control pool (one query per
 * round, at most one control connection), so many concurrent waits cost no more than one and
 * never serialize on a row or a lock.
 */
export function waitForStandbyReplay(db: Db, opts: ReplayWaitOptions): Promise<void> {
  let watcher = watchers.get(db);
  if (!watcher) {
    watcher = new ReplayWatcher(db.control);
    watchers.set(db, watcher);
  }
  return watcher.wait(opts);
}

const watchers = new WeakMap<Db, ReplayWatcher>();

class ReplayWatcher {
  private readonly waiters = new Set<Waiter>();
  private reads = 0;
  private running = false;
  private pauseMs = REPLAY_POLL_MIN_MS;

  constructor(private readonly control: Pool) {}

  wait(opts: ReplayWaitOptions): Promise<void> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(requestAbandoned(signal));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        fromRead: this.reads + 1,
        opts,
        settle: (e) => {
          if (!this.waiters.delete(waiter)) return;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (e) reject(e);
          else resolve();
        },
      };
      const timer = setTimeout(
        () =>
          waiter.settle(
            new AppError(
              'WRITE_IN_DOUBT',
              `committed on the active but not confirmed by the passive within ${opts.timeoutMs} ms; retry with the same Idempotency-Key`,
              { retryAfterSec: 1 },
            ),
          ),
        opts.timeoutMs,
      );
      const onAbort = () => waiter.settle(requestAbandoned(signal as AbortSignal));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
      this.pauseMs = REPLAY_POLL_MIN_MS;
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.waiters.size > 0) {
        const read = ++this.reads;
        let positions: Positions;
        try {
          positions = await this.readPositions();
        } catch (e) {
          // The database does not answer its control connection: nobody can be confirmed.
          const err = toAppError(e);
          for (const w of [...this.waiters]) w.settle(err);
          break;
        }
        this.settleAfter(read, positions);
        if (this.waiters.size === 0) break;
        await new Promise((r) => setTimeout(r, this.pauseMs));
        this.pauseMs = Math.min(this.pauseMs * 2, REPLAY_POLL_MAX_MS);
      }
    } finally {
      this.running = false;
    }
  }

  private settleAfter(read: number, p: Positions): void {
    const missing = new Set<() => void>();
    for (const w of [...this.waiters]) {
      if (w.fromRead > read) continue; // came while this read ran: its flush position may be older
      if (p.standbys === 0) {
        if (w.opts.onStandbyMissing) missing.add(w.opts.onStandbyMissing);
        w.settle(
          new AppError(
            'PASSIVE_UNAVAILABLE',
            'the passive node is not streaming; the earlier write cannot be confirmed now (reads still work)',
            { retryAfterSec: 1 },
          ),
        );
        continue;
      }
      w.target ??= p.flush;
      if (p.replay !== null && p.replay >= w.target) w.settle();
    }
    // Once per round, however many waiters share the callback (e.g. a refresh of the write gate).
    for (const f of missing) f();
  }

  private async readPositions(): Promise<Positions> {
    const { rows } = await this.control.query<{ flush: string; replay: string | null; standbys: number }>(
      READ_POSITIONS,
    );
    const row = rows[0];
    return {
      flush: BigInt(row.flush),
      replay: row.replay === null ? null : BigInt(row.replay),
      standbys: row.standbys,
    };
  }
}
