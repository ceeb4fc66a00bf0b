import type { Pool } from 'pg';
import { readReplicationState, summarizeReplication } from '@trustee/replicator';
import { AppError } from '../errors';
import type { Logger } from '../logger';

export type Role = 'active' | 'passive' | 'unknown';

export interface ReplicationView {
  /** pg_stat_replication.state of the sync standby (active) or the WAL receiver status (passive); 'none' if absent. */
  state: string;
  /** 'sync' | 'async' | 'potential' | 'quorum' | 'none'. */
  syncState: string;
  lagBytes: number | null;
  replayLagSeconds: number | null;
}

export interface NodeSnapshot {
  /** When this snapshot was read (ms since epoch); 0 before the first poll. */
  at: number;
  dbUp: boolean;
  role: Role;
  replication: ReplicationView;
  /** Active only: a synchronous standby is streaming, so commits can be confirmed. */
  syncStreaming: boolean;
  /** The replicated cluster identity matches this node's confdir (null: not recorded yet). */
  identityMatches: boolean | null;
  error?: string;
}

const EMPTY_REPLICATION: ReplicationView = {
  state: 'none',
  syncState: 'none',
  lagBytes: null,
  replayLagSeconds: null,
};

/**
 * Reads role and replication through the replicator's view of PostgreSQL, plus the replicated
 * cluster identity, from the control pool.
 */
export async function readNodeSnapshot(pool: Pool, identityFingerprint: string): Promise<NodeSnapshot> {
  const c = await pool.connect();
  let failure: Error | undefined;
  try {
    const summary = summarizeReplication(await readReplicationState(c));
    const { rows } = await c.query<{ identity: string | null }>(
      'select (select fingerprint from cluster_identity where id = 1) as identity',
    );
    const identity = rows[0].identity;
    return {
      at: Date.now(),
      dbUp: true,
      role: summary.role,
      replication: {
        state: summary.state,
        syncState: summary.syncState,
        lagBytes: summary.lagBytes,
        replayLagSeconds: summary.replayLagSeconds,
      },
      syncStreaming: summary.writable,
      identityMatches: identity === null ? null : identity === identityFingerprint,
    };
  } catch (e) {
    failure = e as Error;
    throw e;
  } finally {
    // A timed-out or broken connection must not go back to the pool.
    c.release(failure);
  }
}

/** A snapshot older than this is not trusted for write decisions. */
export const SNAPSHOT_MAX_AGE_MS = 1000;

export interface NodeStateOptions {
  pool: Pool;
  identityFingerprint: string;
  /** Poll period; DESIGN.md requires ≤ 200 ms. */
  intervalMs?: number;
  /** Two-node mode: writes need a streaming synchronous standby. False for a single node. */
  requireSyncStandby: boolean;
  /** URL of the other node, named in NOT_ACTIVE answers. */
  peerUrl?: string;
  log?: Logger;
  onSnapshot?: (s: NodeSnapshot) => void;
  now?: () => number;
}

/** Keeps a fresh NodeSnapshot and turns it into write and read decisions. */
export class NodeState {
  private snapshot: NodeSnapshot = {
    at: 0,
    dbUp: false,
    role: 'unknown',
    replication: EMPTY_REPLICATION,
    syncStreaming: false,
    identityMatches: null,
  };
  private timer?: NodeJS.Timeout;
  private polling = false;
  private inflight?: Promise<NodeSnapshot>;
  private readonly now: () => number;

  constructor(private readonly opts: NodeStateOptions) {
    this.now = opts.now ?? Date.now;
  }

  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.opts.intervalMs ?? 200);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /**
   * The outcome of the last completed poll. A busy event loop can make it older than the poll
   * period; it is not discarded for that: a database that hangs fails the poll itself (the
   * control pool's query timeout), and a write re-checks the standby inside its transaction.
   */
  current(): NodeSnapshot {
    return this.snapshot;
  }

  /** Age of the last completed poll in ms (shown by /v1/health). */
  ageMs(): number {
    return this.now() - this.snapshot.at;
  }

  /**
   * Before serving a request: when the snapshot is stale because the event loop was busy (the
   * poll timer could not fire), read again — waiting at most `maxWaitMs` — instead of calling a
   * healthy database unavailable. A database that does not answer still ends stale (→ 503).
   */
  async ensureFresh(maxWaitMs = 500): Promise<void> {
    if (this.now() - this.snapshot.at <= SNAPSHOT_MAX_AGE_MS) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.poll(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, maxWaitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Forces a fresh read (used right after a write was refused, and by tests). */
  async poll(): Promise<NodeSnapshot> {
    if (this.inflight) return this.inflight;
    this.inflight = this.readOnce().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async readOnce(): Promise<NodeSnapshot> {
    if (this.polling) return this.snapshot;
    this.polling = true;
    const prev = this.snapshot;
    try {
      this.snapshot = await readNodeSnapshot(this.opts.pool, this.opts.identityFingerprint);
    } catch (e) {
      this.snapshot = {
        ...this.snapshot,
        at: this.now(),
        dbUp: false,
        syncStreaming: false,
        error: (e as Error).message,
      };
    } finally {
      this.polling = false;
    }
    this.logTransitions(prev, this.snapshot);
    this.opts.onSnapshot?.(this.snapshot);
    return this.snapshot;
  }

  private logTransitions(prev: NodeSnapshot, next: NodeSnapshot): void {
    const log = this.opts.log;
    if (!log) return;
    if (prev.role !== next.role) log.info({ from: prev.role, to: next.role }, 'node role changed');
    if (prev.dbUp !== next.dbUp) {
      if (next.dbUp) log.info('database reachable');
      else log.error({ error: next.error }, 'database unreachable');
    }
    if (next.role === 'active' && prev.syncStreaming !== next.syncStreaming && this.opts.requireSyncStandby) {
      if (next.syncStreaming) log.info('synchronous standby streaming; writes enabled');
      else log.warn({ state: next.replication.state }, 'no synchronous standby streaming; writes refused');
    }
    if (prev.identityMatches !== false && next.identityMatches === false) {
      log.error("this node's cluster identity differs from the active's; refusing client traffic");
    }
  }

  /** Why reads must be refused, if they must. */
  readRefusal(): AppError | undefined {
    const s = this.current();
    if (!s.dbUp)
      return new AppError('UNAVAILABLE', 'the database of this node is unavailable', { retryAfterSec: 1 });
    if (s.identityMatches === false) {
      return new AppError(
        'UNAVAILABLE',
        "this node's cluster identity key differs from the active's (incomplete confdir copy); it serves no client traffic",
      );
    }
    return undefined;
  }

  /** Why a write must be refused now, if it must: the decision of DESIGN.md's write path. */
  writeRefusal(): AppError | undefined {
    const read = this.readRefusal();
    if (read) return read;
    const s = this.current();
    if (s.role !== 'active') {
      return new AppError('NOT_ACTIVE', 'this node is passive; send writes to the active node', {
        details: { active: this.opts.peerUrl ?? null },
      });
    }
    if (this.opts.requireSyncStandby && !s.syncStreaming) {
      return new AppError(
        'PASSIVE_UNAVAILABLE',
        s.replication.state === 'streaming' && s.replication.syncState !== 'sync'
          ? 'the passive streams but is not synchronous (run `ktadmin enable-synchronous-replication` on the active); writes need both nodes and were not attempted'
          : 'the passive node is not streaming; writes need both nodes and were not attempted (reads still work)',
        { retryAfterSec: 1 },
      );
    }
    return undefined;
  }

  get requireSyncStandby(): boolean {
    return this.opts.requireSyncStandby;
  }
}
