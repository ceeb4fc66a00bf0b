/**
 * The one decision (DESIGN.md "Losing a node"; Patroni's ha.py): a pure function of a polled
 * snapshot gives the node's role, whether it may serve reads and writes, and one sentence saying
 * why. The write gate, /v1/health*, /metrics, `ktadmin status` and NOT_ACTIVE hints all print
 * this decision; nothing else works out "writable".
 */
import type { ErrorCode } from '../errors';

export type DecidedRole = 'active' | 'passive' | 'fenced' | 'unavailable';

/** How a permitted write commits: confirmed by the passive, alone by operator decision, or alone by design. */
export type WriteMode = 'sync' | 'single-node' | 'standalone';

/** What the last probe of the peer's API saw. */
export interface PeerObservation {
  /** The peer answered /v1/health (any status). */
  reachable: boolean;
  /** Role the peer decided for itself. */
  role?: DecidedRole | 'unknown';
  /** The peer's PostgreSQL timeline, when its database answered. */
  timeline?: number;
  /** What answered at the peer's address belongs to another cluster: no role, no timeline. */
  foreign?: boolean;
}

export interface DecisionInput {
  now: number;
  /** PEERS configured: writes need a streaming synchronous standby (strict mode). */
  twoNode: boolean;
  db: {
    up: boolean;
    inRecovery: boolean;
    timeline: number | null;
    /** A synchronous standby is streaming (active side). */
    syncStreaming: boolean;
    /** Some standby streams, but not as `sync` (synchronous replication not enabled for it). */
    streamingNotSync: boolean;
    /** Slots invalidated by max_slot_wal_keep_size. */
    lostSlots: string[];
  };
  /** The replicated cluster identity matches this node's confdir (null: not recorded yet). */
  identityMatches: boolean | null;
  /** Undefined when there is no peer or it was not probed yet. */
  peer?: PeerObservation;
  /** Persisted fence (this node saw its peer active on a higher timeline); cleared only by rejoin. */
  fencedByTimeline: number | null;
  /** Operator's expiring single-node-write permission (ms since epoch), or null. */
  singleNodeWritesUntil: number | null;
}

export interface NodeDecision {
  role: DecidedRole;
  readable: boolean;
  writable: boolean;
  writeMode: WriteMode | null;
  /** One sentence: why the node is what it is (shown by health, status and logs). */
  reason: string;
  /** The refusal a read gets (and a write, unless `writeRefusal` says otherwise). */
  readRefusal?: Refusal;
  writeRefusal?: Refusal;
  /** The caller must persist a fence at this peer timeline (the decision itself stays pure). */
  fenceAt?: number;
  /** Single-node writes are switched on and unexpired (whether or not they are used now). */
  singleNodeWrites: boolean;
}

export interface Refusal {
  code: ErrorCode;
  message: string;
  /** NOT_ACTIVE: name the peer as the node to use. */
  namePeer?: boolean;
  retryAfterSec?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

function refused(
  role: DecidedRole,
  reason: string,
  refusal: Refusal,
  extra: Partial<NodeDecision> = {},
): NodeDecision {
  return {
    role,
    readable: false,
    writable: false,
    writeMode: null,
    reason,
    readRefusal: refusal,
    writeRefusal: refusal,
    singleNodeWrites: false,
    ...extra,
  };
}

/** Decides role, readability and writability. Table-tested in decide.test.ts. */
export function decideNode(input: DecisionInput): NodeDecision {
  const singleNodeWrites = input.singleNodeWritesUntil !== null && input.singleNodeWritesUntil > input.now;
  // Reported whatever the role (health and metrics show the permission until it expires).
  return { ...decideRole(input, singleNodeWrites), singleNodeWrites };
}

function decideRole(input: DecisionInput, singleNodeWrites: boolean): NodeDecision {
  const { db, peer } = input;
  if (!db.up) {
    const reason = 'the local database does not answer';
    return refused('unavailable', reason, {
      code: 'UNAVAILABLE',
      message: 'the database of this node is unavailable',
      retryAfterSec: 1,
    });
  }
  if (input.identityMatches === false) {
    const reason = "this node's cluster identity key differs from the active's (incomplete confdir copy)";
    return refused('unavailable', reason, {
      code: 'UNAVAILABLE',
      message: `${reason}; it serves no client traffic`,
    });
  }
  if (!db.inRecovery) {
    const fence = fenceOf(input);
    if (fence) return fence;
    const peerTimeline = peer?.reachable && peer.role === 'active' ? peer.timeline : undefined;
    if (peerTimeline !== undefined && peerTimeline === db.timeline) {
      const reason = `the peer is also active on the same timeline ${peerTimeline}: two primaries with one history; an operator must rejoin one of them`;
      return refused('unavailable', reason, { code: 'UNAVAILABLE', message: reason });
    }
    return decideActive(input, singleNodeWrites);
  }
  const reason = `passive (PostgreSQL in recovery, timeline ${db.timeline ?? '?'}); writes go to the active`;
  const notActive: Refusal = {
    code: 'NOT_ACTIVE',
    message: 'this node is passive; send writes to the active node',
    namePeer: true,
  };
  return {
    role: 'passive',
    readable: true,
    writable: false,
    writeMode: null,
    reason,
    writeRefusal: notActive,
    singleNodeWrites,
  };
}

/** A primary that is not (or no longer) the cluster's active: fenced, never writable until rejoin. */
function fenceOf(input: DecisionInput): NodeDecision | undefined {
  const { db, peer } = input;
  const peerAhead =
    peer?.reachable &&
    peer.role === 'active' &&
    peer.timeline !== undefined &&
    db.timeline !== null &&
    peer.timeline > db.timeline;
  if (!peerAhead && input.fencedByTimeline === null) return undefined;
  const peerTimeline = peerAhead ? peer.timeline! : input.fencedByTimeline!;
  const reason =
    `fenced: the peer was promoted (active on timeline ${peerTimeline}, this node is on ${db.timeline ?? '?'}); ` +
    'this node serves nothing until `ktadmin rejoin --master PEER` makes it a passive';
  return refused(
    'fenced',
    reason,
    {
      code: 'NOT_ACTIVE',
      message: 'this node was superseded by a promotion (fenced); use the other node',
      namePeer: true,
    },
    {
      fenceAt: peerAhead && input.fencedByTimeline !== peerTimeline ? peerTimeline : undefined,
    },
  );
}

function decideActive(input: DecisionInput, singleNodeWrites: boolean): NodeDecision {
  const { db } = input;
  const ok = (writeMode: WriteMode, reason: string): NodeDecision => ({
    role: 'active',
    readable: true,
    writable: true,
    writeMode,
    reason,
    singleNodeWrites,
  });
  if (!input.twoNode) return ok('standalone', 'active, single node (no peer configured)');
  if (db.syncStreaming)
    return ok('sync', 'active; the passive streams synchronously, writes commit on both nodes');
  if (singleNodeWrites) {
    return ok(
      'single-node',
      `active WITHOUT a passive: single-node writes allowed by the operator until ${iso(input.singleNodeWritesUntil!)} (degraded; each such write exists on this node only)`,
    );
  }
  let why: string;
  if (db.lostSlots.length > 0) {
    why = `the passive's replication slot ${db.lostSlots.join(', ')} was invalidated (WAL beyond max_slot_wal_keep_size); rebuild the passive with \`ktadmin db --bootstrap --master THIS_HOST --replace\``;
  } else if (db.streamingNotSync) {
    why =
      'the passive streams but is not synchronous (run `ktadmin enable-synchronous-replication` on the active)';
  } else {
    why = 'the passive node is not streaming';
  }
  return {
    role: 'active',
    readable: true,
    writable: false,
    writeMode: null,
    reason: `active, writes refused: ${why}`,
    writeRefusal: {
      code: 'PASSIVE_UNAVAILABLE',
      message: `${why}; writes need both nodes and were not attempted (reads still work)`,
      retryAfterSec: 1,
    },
    singleNodeWrites,
  };
}
