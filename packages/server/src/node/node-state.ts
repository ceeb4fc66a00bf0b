import type { Pool } from 'pg';
import { readReplicationState, summarizeReplication } from '@trustee/replicator';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { decideNode, type NodeDecision, type PeerObservation, type Refusal, type WriteMode } from './decide';
import { readHaState, singleNodeWritesUntil, updateHaState, type HaState } from './ha-state-file';
import { probePeer } from './peer-probe';

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
  /** PostgreSQL is in recovery (a standby). */
  inRecovery: boolean;
  /** PostgreSQL timeline (null before the first successful poll). */
  timeline: number | null;
  /** Replication slots invalidated by max_slot_wal_keep_size. */
  lostSlots: string[];
  /** synchronous_standby_names ('' = commits never wait for a standby). */
  syncStandbyNames: string;
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
    const state = await readReplicationState(c);
    const summary = summarizeReplication(state);
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
      inRecovery: summary.role === 'passive',
      timeline: summary.timeline,
      lostSlots: summary.lostSlots,
      syncStandbyNames: state.syncStandbyNames,
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

/** pg's and pg-pool's timeouts (query_timeout, connectionTimeoutMillis): slow, not refused. */
function isPollTimeout(e: unknown): boolean {
  const m = e instanceof Error ? e.message : '';
  return (
    m === 'Query read timeout' ||
    m === 'timeout exceeded when trying to connect' ||
    m === 'Connection terminated due to connection timeout'
  );
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
  /** URL of the other node, named in NOT_ACTIVE answers and probed for fencing. */
  peerUrl?: string;
  /** Confdir holding ha-state.json (fence, single-node writes); none: no persisted state. */
  confdir?: string;
  /** Peer probe period (default 1000 ms); 0 disables the periodic probe. */
  peerProbeIntervalMs?: number;
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
    inRecovery: false,
    timeline: null,
    lostSlots: [],
    syncStandbyNames: '',
    identityMatches: null,
  };
  private timer?: NodeJS.Timeout;
  private peerTimer?: NodeJS.Timeout;
  private peer?: PeerObservation;
  private haState: HaState = {};
  private haStateError?: string;
  private lastDecision?: NodeDecision;
  private polling = false;
  /** Set by a timed-out poll forgiven once (readOnce); cleared by the next successful poll. */
  private timeoutGraceUsed = false;
  private inflight?: Promise<NodeSnapshot>;
  private readonly now: () => number;

  constructor(private readonly opts: NodeStateOptions) {
    this.now = opts.now ?? Date.now;
  }

  async start(): Promise<void> {
    await this.probePeerOnce();
    await this.poll();
    this.timer = setInterval(() => void this.poll(), this.opts.intervalMs ?? 200);
    this.timer.unref();
    const probeMs = this.opts.peerProbeIntervalMs ?? 1000;
    if (this.opts.peerUrl && probeMs > 0) {
      this.peerTimer = setInterval(() => void this.probePeerOnce(), probeMs);
      this.peerTimer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.peerTimer) clearInterval(this.peerTimer);
  }

  private probing = false;

  /** Reads the peer's own decision (role, timeline); bounded by its timeout. */
  async probePeerOnce(): Promise<PeerObservation | undefined> {
    if (!this.opts.peerUrl || this.probing) return this.peer;
    this.probing = true;
    try {
      const before = this.peer;
      this.peer = await probePeer(this.opts.peerUrl, 900, this.opts.identityFingerprint);
      if (this.peer.foreign && !before?.foreign) {
        this.opts.log?.error(
          { peer: this.opts.peerUrl },
          "the peer's address answers for another cluster (different identity): PEERS is wrong or another cluster took that address; its answers are ignored",
        );
      }
      if (before?.reachable !== this.peer.reachable) {
        this.opts.log?.info(
          { peer: this.opts.peerUrl, reachable: this.peer.reachable, role: this.peer.role },
          'peer reachability changed',
        );
      }
      this.decide();
      return this.peer;
    } finally {
      this.probing = false;
    }
  }

  /** What the last peer probe saw (undefined: no peer, or not probed yet). */
  peerObservation(): PeerObservation | undefined {
    return this.peer;
  }

  /** The HA facts persisted in the confdir, as last read. */
  persistedHaState(): HaState {
    return this.haState;
  }

  private reloadHaState(): void {
    if (!this.opts.confdir) return;
    try {
      this.haState = readHaState(this.opts.confdir);
      this.haStateError = undefined;
    } catch (e) {
      // Unreadable state is not guessed: keep the last good one (a fence never disappears by error).
      if (this.haStateError === undefined)
        this.opts.log?.error({ err: (e as Error).message }, 'ha-state.json unreadable');
      this.haStateError = (e as Error).message;
    }
  }

  /**
   * The one decision (decide.ts) for the current snapshot, peer observation and persisted state.
   * When it says to fence, the fence is written to ha-state.json here (the only side effect).
   */
  decide(): NodeDecision {
    const s = this.snapshot;
    const d = decideNode({
      now: this.now(),
      // Strict whenever anything says this is a pair: PEERS configured, or PostgreSQL itself
      // waiting for a synchronous standby (a commit would otherwise block until WRITE_IN_DOUBT).
      twoNode: this.opts.requireSyncStandby || s.syncStandbyNames.trim() !== '',
      db: {
        up: s.dbUp,
        inRecovery: s.inRecovery,
        timeline: s.timeline,
        syncStreaming: s.syncStreaming,
        streamingNotSync: s.replication.state === 'streaming' && s.replication.syncState !== 'sync',
        lostSlots: s.lostSlots,
      },
      identityMatches: s.identityMatches,
      peer: this.peer,
      fencedByTimeline: this.haState.fenced?.peerTimeline ?? null,
      singleNodeWritesUntil: singleNodeWritesUntil(this.haState),
    });
    if (d.fenceAt !== undefined && this.opts.confdir) {
      const peerTimeline = d.fenceAt;
      try {
        this.haState = updateHaState(this.opts.confdir, (h) => ({
          ...h,
          fenced: {
            peerTimeline,
            since: new Date(this.now()).toISOString(),
            peer: this.opts.peerUrl ?? null,
          },
        }));
        this.opts.log?.error(
          { peerTimeline, timeline: s.timeline },
          'peer is active on a higher timeline: this node is fenced until `ktadmin rejoin`',
        );
      } catch (e) {
        this.opts.log?.error(
          { err: (e as Error).message },
          'could not persist the fence (still fenced while the peer answers)',
        );
      }
    }
    const prev = this.lastDecision;
    if (prev && (prev.role !== d.role || prev.writable !== d.writable || prev.writeMode !== d.writeMode)) {
      const level =
        d.role === 'fenced' || d.role === 'unavailable'
          ? 'error'
          : d.writeMode === 'single-node'
            ? 'warn'
            : 'info';
      this.opts.log?.[level](
        { role: d.role, writable: d.writable, writeMode: d.writeMode, reason: d.reason },
        'node decision changed',
      );
    }
    this.lastDecision = d;
    return d;
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
      this.timeoutGraceUsed = false;
    } catch (e) {
      if (prev.dbUp && !this.timeoutGraceUsed && isPollTimeout(e)) {
        // One slow answer from a database that answered the poll before is not an outage: on a
        // starved machine a poll can miss its 2 s bound. Keep the last snapshot (it ages, so
        // ensureFresh polls again at once); a second timeout in a row marks the database down.
        // Safe for writes: a write still checks the standby inside its own transaction, and a
        // database that really hangs fails the request's own statement and checkout bounds.
        this.timeoutGraceUsed = true;
        this.opts.log?.warn(
          { error: (e as Error).message },
          'database state poll timed out; polling again before calling the database unavailable',
        );
        return this.snapshot;
      }
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
    this.reloadHaState();
    this.logTransitions(prev, this.snapshot);
    this.decide();
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

  /** Why reads must be refused, if they must (from the one decision). */
  readRefusal(): AppError | undefined {
    const d = this.decide();
    return d.readRefusal && this.toAppError(d.readRefusal);
  }

  /** Why a write must be refused now, if it must: the decision of DESIGN.md's write path. */
  writeRefusal(): AppError | undefined {
    const d = this.decide();
    return d.writeRefusal && this.toAppError(d.writeRefusal);
  }

  /**
   * The write path's gate (WriteGate): throws the refusal, or returns how the write commits —
   * from one decision, so the refusal and the mode can never disagree.
   */
  admitWrite(): WriteMode | null {
    const d = this.decide();
    if (d.writeRefusal) throw this.toAppError(d.writeRefusal);
    return d.writeMode;
  }

  private toAppError(r: Refusal): AppError {
    return new AppError(r.code, r.message, {
      retryAfterSec: r.retryAfterSec,
      details: r.namePeer ? { active: this.opts.peerUrl ?? null } : undefined,
    });
  }

  /** The other node's URL (PEERS), if this node has one. */
  get peerUrl(): string | undefined {
    return this.opts.peerUrl;
  }

  get requireSyncStandby(): boolean {
    return this.opts.requireSyncStandby;
  }
}
