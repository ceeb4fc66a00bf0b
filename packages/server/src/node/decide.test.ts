import {
  decideNode,
  type DecidedRole,
  type DecisionInput,
  type NodeDecision,
  type PeerObservation,
} from './decide';
import { healthyPrimaryInput, type DecisionOverrides } from '../../test/support/decision-input';

/**
 * Table-driven tests of the one decision (DESIGN.md "Losing a node"; issue 8 item 1). The tables
 * are generated cross products of the inputs that matter; every row's title says what the node
 * decides. The invariants at the end run over whole generated products.
 */

const NOW = Date.parse('2030-06-01T12:00:00.000Z');
const HOUR = 3_600_000;
/** This node's PostgreSQL timeline in the tables. */
const TL = 5;

type Db = DecisionInput['db'];
type Over = DecisionOverrides;

/** A healthy primary of a two-node pair with a synchronous passive; `over` changes what a row varies. */
const mk = (over: Over = {}): DecisionInput => healthyPrimaryInput({ now: NOW, timeline: TL }, over);

interface PeerCase {
  label: string;
  peer: PeerObservation | undefined;
}

const SEEN_ROLES = ['active', 'passive', 'fenced', 'unavailable', 'unknown'] as const;
const TIMELINE_RELATIONS: [string, number | undefined][] = [
  ['on a lower timeline', TL - 1],
  ['on the same timeline', TL],
  ['on a higher timeline', TL + 1],
  ['with no timeline', undefined],
];

/** Every peer observation: none, unreachable, and reachable with each role and timeline relation. */
const ALL_PEERS: PeerCase[] = [
  { label: 'no peer observation', peer: undefined },
  { label: 'an unreachable peer', peer: { reachable: false } },
  {
    label: 'an unreachable peer (stale: active on a higher timeline)',
    peer: { reachable: false, role: 'active', timeline: TL + 1 },
  },
  { label: 'a reachable peer with no role', peer: { reachable: true } },
  ...SEEN_ROLES.flatMap((role) =>
    TIMELINE_RELATIONS.map(([rel, timeline]) => ({
      label: `a reachable ${role} peer ${rel}`,
      peer: { reachable: true, role, timeline },
    })),
  ),
];

/** A smaller set for the big sweeps: none, unreachable, and four roles on lower/equal/higher timelines. */
const SWEEP_PEERS: PeerCase[] = [
  ALL_PEERS[0],
  ALL_PEERS[1],
  ...(['active', 'passive', 'fenced', 'unknown'] as const).flatMap((role) =>
    TIMELINE_RELATIONS.slice(0, 3).map(([rel, timeline]) => ({
      label: `a reachable ${role} peer ${rel}`,
      peer: { reachable: true, role, timeline },
    })),
  ),
];

/** Peers that decide something for a db-down or identity-mismatched node if anything could. */
const CRITICAL_PEERS: PeerCase[] = [
  ALL_PEERS[0],
  ALL_PEERS[1],
  {
    label: 'a reachable active peer on the same timeline',
    peer: { reachable: true, role: 'active', timeline: TL },
  },
  {
    label: 'a reachable active peer on a higher timeline',
    peer: { reachable: true, role: 'active', timeline: TL + 1 },
  },
];

const FENCES: [string, number | null][] = [
  ['no persisted fence', null],
  ["a persisted fence at the peer's higher timeline", TL + 1],
  ['a persisted fence at another timeline', TL + 3],
];

const SINGLE_NODE: [string, number | null][] = [
  ['single-node writes allowed for another hour', NOW + HOUR],
  ['single-node writes expired', NOW - 1],
  ['single-node writes expiring exactly now', NOW],
  ['no single-node writes', null],
];

const IDENTITIES: [string, boolean | null][] = [
  ['identity ok', true],
  ['identity unrecorded', null],
  ['identity mismatch', false],
];

function cross<A, B>(as: readonly A[], bs: readonly B[]): [A, B][] {
  return as.flatMap((a) => bs.map((b): [A, B] => [a, b]));
}

const peerActiveAt = (p: PeerObservation | undefined, timeline: number) =>
  !!p?.reachable && p.role === 'active' && p.timeline === timeline;
const peerActiveHigher = (p: PeerObservation | undefined, local: number | null) =>
  !!p?.reachable && p.role === 'active' && p.timeline !== undefined && local !== null && p.timeline > local;

/** One sentence: non-empty, one line, no surrounding blanks, no second sentence starting after a full stop. */
function expectOneSentence(text: string): void {
  expect(text.length).toBeGreaterThan(0);
  expect(text).not.toMatch(/[\r\n]/);
  expect(text).toBe(text.trim());
  expect(text).not.toMatch(/[.!?]\s+[A-Z]/);
}

describe('decideNode: a node whose local database is down', () => {
  const rows = [false, true].flatMap((inRecovery) =>
    IDENTITIES.flatMap(([idLabel, identityMatches]) =>
      CRITICAL_PEERS.flatMap(({ label, peer }) =>
        FENCES.slice(0, 2).flatMap(([fenceLabel, fencedByTimeline]) =>
          [SINGLE_NODE[0], SINGLE_NODE[1], SINGLE_NODE[3]].map(([snLabel, singleNodeWritesUntil]) => ({
            title: `is unavailable and refuses reads and writes with UNAVAILABLE (was ${inRecovery ? 'passive' : 'primary'}, ${idLabel}, ${label}, ${fenceLabel}, ${snLabel})`,
            input: mk({
              db: { up: false, inRecovery, timeline: null, syncStreaming: false },
              identityMatches,
              peer,
              fencedByTimeline,
              singleNodeWritesUntil,
            }),
          })),
        ),
      ),
    ),
  );

  it.each(rows)('$title', ({ input }) => {
    const d = decideNode(input);
    expect(d).toMatchObject({ role: 'unavailable', readable: false, writable: false, writeMode: null });
    expect(d.readRefusal).toMatchObject({ code: 'UNAVAILABLE', retryAfterSec: 1 });
    expect(d.writeRefusal).toEqual(d.readRefusal);
    expect(d.readRefusal?.namePeer).toBeUndefined();
    expect(d.fenceAt).toBeUndefined();
    expect(d.reason).toMatch(/database does not answer/);
  });
});

describe("decideNode: a node whose cluster identity differs from the active's", () => {
  const rows = [false, true].flatMap((inRecovery) =>
    CRITICAL_PEERS.flatMap(({ label, peer }) =>
      FENCES.slice(0, 2).flatMap(([fenceLabel, fencedByTimeline]) =>
        [SINGLE_NODE[0], SINGLE_NODE[3]].flatMap(([snLabel, singleNodeWritesUntil]) =>
          [true, false].map((twoNode) => ({
            title: `is unavailable, serves no client traffic and persists no fence (${inRecovery ? 'in recovery' : 'primary'}, ${label}, ${fenceLabel}, ${snLabel}, ${twoNode ? 'two nodes' : 'single node'})`,
            input: mk({
              db: { inRecovery },
              identityMatches: false,
              peer,
              fencedByTimeline,
              singleNodeWritesUntil,
              twoNode,
            }),
          })),
        ),
      ),
    ),
  );

  it.each(rows)('$title', ({ input }) => {
    const d = decideNode(input);
    expect(d).toMatchObject({ role: 'unavailable', readable: false, writable: false, writeMode: null });
    expect(d.readRefusal).toMatchObject({ code: 'UNAVAILABLE' });
    expect(d.readRefusal?.message).toMatch(/serves no client traffic/);
    expect(d.writeRefusal).toEqual(d.readRefusal);
    expect(d.fenceAt).toBeUndefined();
    expect(d.reason).toMatch(/identity/);
  });
});

describe('decideNode: a primary (db up, not in recovery) against each peer observation and persisted fence', () => {
  const rows = cross(ALL_PEERS, FENCES).flatMap(([{ label, peer }, [fenceLabel, fencedByTimeline]]) =>
    IDENTITIES.slice(0, 2).map(([idLabel, identityMatches]) => {
      const higher = peerActiveHigher(peer, TL);
      const role: DecidedRole =
        higher || fencedByTimeline !== null ? 'fenced' : peerActiveAt(peer, TL) ? 'unavailable' : 'active';
      const fenceAt = higher && fencedByTimeline !== peer!.timeline ? peer!.timeline : undefined;
      const does =
        role === 'fenced'
          ? `is fenced (NOT_ACTIVE naming the peer)${fenceAt !== undefined ? ` and persists a fence at timeline ${fenceAt}` : ', persisting nothing new'}`
          : role === 'unavailable'
            ? 'is unavailable (two primaries on one timeline)'
            : 'is active and writes synchronously';
      return {
        title: `seeing ${label} with ${fenceLabel} (${idLabel}) ${does}`,
        input: mk({ peer, fencedByTimeline, identityMatches }),
        role,
        fenceAt,
      };
    }),
  );

  it.each(rows)('$title', ({ input, role, fenceAt }) => {
    const d = decideNode(input);
    expect(d.role).toBe(role);
    expect(d.fenceAt).toBe(fenceAt);
    if (role === 'fenced') {
      expect(d).toMatchObject({ readable: false, writable: false, writeMode: null });
      expect(d.readRefusal).toMatchObject({ code: 'NOT_ACTIVE', namePeer: true });
      expect(d.writeRefusal).toEqual(d.readRefusal);
      expect(d.reason).toMatch(/^fenced: .*ktadmin rejoin/);
    } else if (role === 'unavailable') {
      expect(d).toMatchObject({ readable: false, writable: false, writeMode: null });
      expect(d.readRefusal).toMatchObject({ code: 'UNAVAILABLE' });
      expect(d.readRefusal?.namePeer).toBeUndefined();
      expect(d.writeRefusal).toEqual(d.readRefusal);
      expect(d.reason).toMatch(/same timeline 5/);
    } else {
      expect(d).toMatchObject({ readable: true, writable: true, writeMode: 'sync' });
      expect(d.readRefusal).toBeUndefined();
      expect(d.writeRefusal).toBeUndefined();
    }
  });
});

describe('decideNode: an active primary decides its writes from the replication state', () => {
  const ACTIVE_PEERS = [
    ALL_PEERS[0],
    ALL_PEERS[1],
    {
      label: 'a reachable fenced peer on a higher timeline',
      peer: { reachable: true, role: 'fenced', timeline: TL + 1 },
    },
    {
      label: 'a reachable active peer on a lower timeline',
      peer: { reachable: true, role: 'active', timeline: TL - 1 },
    },
  ] satisfies PeerCase[];
  const REPLICATION = [
    { label: 'a synchronous standby streams', syncStreaming: true, streamingNotSync: false },
    { label: 'a standby streams but not synchronously', syncStreaming: false, streamingNotSync: true },
    { label: 'no standby streams', syncStreaming: false, streamingNotSync: false },
  ];
  const rows = [true, false].flatMap((twoNode) =>
    REPLICATION.flatMap((repl) =>
      [[], ['kt02_example_com']].flatMap((lostSlots) =>
        SINGLE_NODE.flatMap(([snLabel, singleNodeWritesUntil]) =>
          ACTIVE_PEERS.map(({ label, peer }) => {
            const snw = singleNodeWritesUntil !== null && singleNodeWritesUntil > NOW;
            const writeMode = !twoNode
              ? 'standalone'
              : repl.syncStreaming
                ? 'sync'
                : snw
                  ? 'single-node'
                  : null;
            const why =
              writeMode !== null
                ? undefined
                : lostSlots.length > 0
                  ? /replication slot kt02_example_com was invalidated/
                  : repl.streamingNotSync
                    ? /streams but is not synchronous/
                    : /not streaming/;
            const slots = lostSlots.length > 0 ? 'a lost slot' : 'no lost slot';
            const outcome =
              writeMode === null ? 'refuses writes with PASSIVE_UNAVAILABLE' : `writes (${writeMode})`;
            return {
              title: `${twoNode ? 'of a pair' : 'without a peer configured'} where ${repl.label}, with ${slots}, ${snLabel}, seeing ${label}, reads and ${outcome}`,
              input: mk({
                twoNode,
                db: { syncStreaming: repl.syncStreaming, streamingNotSync: repl.streamingNotSync, lostSlots },
                singleNodeWritesUntil,
                peer,
              }),
              writeMode,
              why,
              snw,
            };
          }),
        ),
      ),
    ),
  );

  it.each(rows)('$title', ({ input, writeMode, why, snw }) => {
    const d = decideNode(input);
    expect(d).toMatchObject({ role: 'active', readable: true, writable: writeMode !== null, writeMode });
    expect(d.readRefusal).toBeUndefined();
    expect(d.fenceAt).toBeUndefined();
    expect(d.singleNodeWrites).toBe(snw);
    if (why) {
      expect(d.writeRefusal).toMatchObject({ code: 'PASSIVE_UNAVAILABLE', retryAfterSec: 1 });
      expect(d.writeRefusal?.message).toMatch(why);
      expect(d.reason).toMatch(/^active, writes refused: /);
      expect(d.reason).toMatch(why);
    } else {
      expect(d.writeRefusal).toBeUndefined();
    }
    if (writeMode === 'single-node') expect(d.reason).toContain(new Date(NOW + HOUR).toISOString());
  });
});

describe('decideNode: a passive (db up, in recovery)', () => {
  const rows = cross(ALL_PEERS, FENCES).flatMap(([{ label, peer }, [fenceLabel, fencedByTimeline]]) =>
    [SINGLE_NODE[0], SINGLE_NODE[1], SINGLE_NODE[3]].flatMap(([snLabel, singleNodeWritesUntil]) =>
      [true, false].map((twoNode) => ({
        title: `seeing ${label} with ${fenceLabel}, ${snLabel}, ${twoNode ? 'in a pair' : 'without a peer configured'}, reads and sends writes to the active (NOT_ACTIVE naming the peer)`,
        input: mk({
          twoNode,
          db: { inRecovery: true, syncStreaming: false },
          peer,
          fencedByTimeline,
          singleNodeWritesUntil,
        }),
        snw: singleNodeWritesUntil !== null && singleNodeWritesUntil > NOW,
      })),
    ),
  );

  it.each(rows)('$title', ({ input, snw }) => {
    const d = decideNode(input);
    expect(d).toMatchObject({ role: 'passive', readable: true, writable: false, writeMode: null });
    expect(d.readRefusal).toBeUndefined();
    expect(d.writeRefusal).toMatchObject({ code: 'NOT_ACTIVE', namePeer: true });
    expect(d.fenceAt).toBeUndefined();
    expect(d.singleNodeWrites).toBe(snw);
    expect(d.reason).toMatch(/^passive .*timeline 5/);
  });

  it('says the timeline is unknown when PostgreSQL did not report one', () => {
    expect(decideNode(mk({ db: { inRecovery: true, timeline: null } })).reason).toMatch(/timeline \?/);
  });
});

describe('decideNode: the failover story, step by step', () => {
  const story: { title: string; input: DecisionInput; expected: Partial<NodeDecision> }[] = [
    {
      title: 'the active of a healthy pair reads and writes synchronously',
      input: mk({ peer: { reachable: true, role: 'passive', timeline: TL } }),
      expected: { role: 'active', readable: true, writable: true, writeMode: 'sync' },
    },
    {
      title: 'the passive of a healthy pair reads and refuses writes with NOT_ACTIVE naming the active',
      input: mk({
        db: { inRecovery: true, syncStreaming: false },
        peer: { reachable: true, role: 'active', timeline: TL },
      }),
      expected: { role: 'passive', readable: true, writable: false, writeMode: null },
    },
    {
      title: 'a just promoted node without a passive is active and refuses writes (strict)',
      input: mk({ db: { timeline: TL + 1, syncStreaming: false }, peer: { reachable: false } }),
      expected: { role: 'active', readable: true, writable: false, writeMode: null },
    },
    {
      title: 'a promoted node with single-node writes allowed writes alone and says so',
      input: mk({
        db: { timeline: TL + 1, syncStreaming: false },
        peer: { reachable: false },
        singleNodeWritesUntil: NOW + HOUR,
      }),
      expected: { role: 'active', writable: true, writeMode: 'single-node', singleNodeWrites: true },
    },
    {
      title: 'the old active restarted after a promotion is fenced and asks to persist the fence',
      input: mk({
        db: { syncStreaming: false },
        peer: { reachable: true, role: 'active', timeline: TL + 1 },
      }),
      expected: { role: 'fenced', readable: false, writable: false, fenceAt: TL + 1 },
    },
    {
      title: 'the old active stays fenced after a restart while the promoted peer is unreachable',
      input: mk({ db: { syncStreaming: false }, peer: { reachable: false }, fencedByTimeline: TL + 1 }),
      expected: { role: 'fenced', readable: false, writable: false, fenceAt: undefined },
    },
    {
      title: 'a fenced node stays fenced even if a standby streams synchronously from it',
      input: mk({ db: { syncStreaming: true }, fencedByTimeline: TL + 1, singleNodeWritesUntil: NOW + HOUR }),
      expected: { role: 'fenced', writable: false, writeMode: null },
    },
    {
      title: 'a rejoined node (now in recovery) with a stale persisted fence is simply passive',
      input: mk({
        db: { inRecovery: true, timeline: TL + 1, syncStreaming: false },
        peer: { reachable: true, role: 'active', timeline: TL + 1 },
        fencedByTimeline: TL + 1,
      }),
      expected: { role: 'passive', readable: true, writable: false, fenceAt: undefined },
    },
    {
      title: 'two primaries on one timeline are both unavailable',
      input: mk({ peer: { reachable: true, role: 'active', timeline: TL } }),
      expected: { role: 'unavailable', readable: false, writable: false },
    },
    {
      title: 'the promoted active keeps writing while its fenced old active answers',
      input: mk({ db: { timeline: TL + 1 }, peer: { reachable: true, role: 'fenced', timeline: TL } }),
      expected: { role: 'active', writable: true, writeMode: 'sync' },
    },
  ];

  it.each(story)('$title', ({ input, expected }) => {
    const { fenceAt, ...rest } = expected;
    const d = decideNode(input);
    expect(d).toMatchObject(rest);
    if ('fenceAt' in expected) expect(d.fenceAt).toBe(fenceAt);
  });
});

/** The sweep: node kinds × identity × peers × fences × single-node × twoNode × replication (4536 inputs). */
function sweep(): DecisionInput[] {
  const kinds: Partial<Db>[] = [
    { up: false, inRecovery: false, timeline: null },
    { up: true, inRecovery: false, timeline: TL },
    { up: true, inRecovery: true, timeline: TL },
  ];
  const replication: Partial<Db>[] = [
    { syncStreaming: true, streamingNotSync: false, lostSlots: [] },
    { syncStreaming: false, streamingNotSync: true, lostSlots: [] },
    { syncStreaming: false, streamingNotSync: false, lostSlots: ['kt02'] },
  ];
  const out: DecisionInput[] = [];
  for (const kind of kinds)
    for (const identityMatches of [true, false])
      for (const { peer } of SWEEP_PEERS)
        for (const [, fencedByTimeline] of FENCES)
          for (const [, singleNodeWritesUntil] of [SINGLE_NODE[0], SINGLE_NODE[1], SINGLE_NODE[3]])
            for (const twoNode of [true, false])
              for (const repl of replication)
                out.push(
                  mk({
                    db: { ...kind, ...repl },
                    identityMatches,
                    peer,
                    fencedByTimeline,
                    singleNodeWritesUntil,
                    twoNode,
                  }),
                );
  return out;
}

describe('decideNode: properties over the whole generated input product', () => {
  const inputs = sweep();
  const decided = inputs.map((input) => ({ input, d: decideNode(input) }));

  it('covers a bounded product of a few thousand inputs', () => {
    expect(inputs.length).toBe(4536);
  });

  it('gives every decision a reason that is one non-empty sentence on one line', () => {
    for (const { d } of decided) {
      expectOneSentence(d.reason);
      for (const r of [d.readRefusal, d.writeRefusal]) if (r) expect(r.message).not.toMatch(/[\r\n]/);
    }
  });

  it('makes a node writable only as a readable active with a write mode and no refusal', () => {
    for (const { d } of decided) {
      expect(d.writable).toBe(d.writeMode !== null);
      if (d.writable) {
        expect(d).toMatchObject({ role: 'active', readable: true });
        expect(d.writeRefusal).toBeUndefined();
      } else {
        expect(d.writeRefusal).toBeDefined();
      }
      expect(d.readable).toBe(d.readRefusal === undefined);
      expect(d.readable).toBe(d.role === 'active' || d.role === 'passive');
    }
  });

  it('uses UNAVAILABLE for unavailable nodes, NOT_ACTIVE naming the peer for passive and fenced nodes, PASSIVE_UNAVAILABLE for a refusing active', () => {
    const codes: Record<DecidedRole, string[]> = { active: [], passive: [], fenced: [], unavailable: [] };
    for (const { d } of decided) {
      if (d.writeRefusal) codes[d.role].push(d.writeRefusal.code);
      if (d.writeRefusal?.code === 'NOT_ACTIVE') expect(d.writeRefusal.namePeer).toBe(true);
      else if (d.writeRefusal) expect(d.writeRefusal.namePeer).toBeUndefined();
    }
    expect(new Set(codes.unavailable)).toEqual(new Set(['UNAVAILABLE']));
    expect(new Set(codes.passive)).toEqual(new Set(['NOT_ACTIVE']));
    expect(new Set(codes.fenced)).toEqual(new Set(['NOT_ACTIVE']));
    expect(new Set(codes.active)).toEqual(new Set(['PASSIVE_UNAVAILABLE']));
  });

  it('sets fenceAt exactly when an up, identity-consistent primary sees its peer active on a higher timeline and the persisted fence differs', () => {
    let fences = 0;
    for (const { input, d } of decided) {
      const expectFence =
        input.db.up &&
        input.identityMatches !== false &&
        !input.db.inRecovery &&
        peerActiveHigher(input.peer, input.db.timeline) &&
        input.fencedByTimeline !== input.peer!.timeline;
      expect(d.fenceAt).toBe(expectFence ? input.peer!.timeline : undefined);
      if (expectFence) {
        fences++;
        expect(d.role).toBe('fenced');
      }
    }
    expect(fences).toBeGreaterThan(0);
  });

  it('decides the same for an unrecorded identity as for a matching one', () => {
    for (const { input, d } of decided) {
      if (input.identityMatches === true) expect(decideNode({ ...input, identityMatches: null })).toEqual(d);
    }
  });

  it('never lets single-node writes make a passive, fenced or unavailable node writable', () => {
    for (const { input, d } of decided) {
      const withSingleNode = decideNode({ ...input, singleNodeWritesUntil: NOW + HOUR });
      if (withSingleNode.role !== 'active') expect(withSingleNode.writable).toBe(false);
      // Single-node writes never change the role, only an active's write mode.
      expect(withSingleNode.role).toBe(d.role);
    }
  });

  it('reports single-node writes as off once expired or unset, whatever the role', () => {
    for (const { input, d } of decided) {
      if (input.singleNodeWritesUntil === null || input.singleNodeWritesUntil <= NOW) {
        expect(d.singleNodeWrites).toBe(false);
      }
    }
  });

  /*
   * NodeDecision.singleNodeWrites is documented as "switched on and unexpired (whether or not they
   * are used now)": health and /metrics print it, so an operator sees the permission on any node.
   */
  it.each(['active', 'passive', 'fenced', 'unavailable'] as const)(
    'reports unexpired single-node writes as on for a node decided %s',
    (role) => {
      const withRole = decided.filter(
        ({ input, d }) =>
          d.role === role && input.singleNodeWritesUntil !== null && input.singleNodeWritesUntil > NOW,
      );
      expect(withRole.length).toBeGreaterThan(0);
      for (const { d } of withRole) expect(d.singleNodeWrites).toBe(true);
    },
  );
});

/** One node's own state in a two-node scenario (its peer is the other node). */
interface LocalState {
  label: string;
  up: boolean;
  inRecovery: boolean;
  timeline: number | null;
  fencedByTimeline: number | null;
  singleNodeWrites: boolean;
}

function localStates(): LocalState[] {
  const kinds = [
    { k: 'down', up: false, inRecovery: false, timeline: null },
    ...[1, 2, 3].map((t) => ({ k: `primary on timeline ${t}`, up: true, inRecovery: false, timeline: t })),
    ...[1, 2, 3].map((t) => ({ k: `standby on timeline ${t}`, up: true, inRecovery: true, timeline: t })),
  ];
  return kinds.flatMap(({ k, ...db }) =>
    [null, 2].flatMap((fencedByTimeline) =>
      [false, true].map((singleNodeWrites) => ({
        label: `${k}${fencedByTimeline ? ', fence at 2' : ''}${singleNodeWrites ? ', single-node writes' : ''}`,
        ...db,
        fencedByTimeline,
        singleNodeWrites,
      })),
    ),
  );
}

/** The input a node decides from: consistent with the other node's state (a sync standby is the peer streaming). */
function pairInput(
  self: LocalState,
  other: LocalState,
  syncStreaming: boolean,
  peer: PeerObservation | undefined,
) {
  return mk({
    twoNode: true,
    db: {
      up: self.up,
      inRecovery: self.inRecovery,
      timeline: self.timeline,
      syncStreaming,
      streamingNotSync: false,
      lostSlots: [],
    },
    peer,
    fencedByTimeline: self.fencedByTimeline,
    singleNodeWritesUntil: self.singleNodeWrites ? NOW + HOUR : null,
  });
}

/** A primary can have a streaming synchronous standby only when the other node is an up standby. */
const syncChoices = (self: LocalState, other: LocalState) =>
  self.up && !self.inRecovery && other.up && other.inRecovery ? [false, true] : [false];

const observed = (other: LocalState, role: PeerObservation['role']): PeerObservation => ({
  reachable: true,
  role,
  timeline: other.up && other.timeline !== null ? other.timeline : undefined,
});

describe('decideNode: two nodes are never both writable', () => {
  const states = localStates();

  it('when each sees the other as active (every pair of node states, observed timelines true)', () => {
    let cases = 0;
    const bad: string[] = [];
    for (const [a, b] of cross(states, states))
      for (const syncA of syncChoices(a, b))
        for (const syncB of syncChoices(b, a)) {
          cases++;
          const da = decideNode(pairInput(a, b, syncA, observed(b, 'active')));
          const db = decideNode(pairInput(b, a, syncB, observed(a, 'active')));
          if (da.writable && db.writable) bad.push(`A ${a.label} / B ${b.label}`);
        }
    expect(cases).toBeGreaterThan(1000);
    expect(cases).toBeLessThan(5000);
    expect(bad).toEqual([]);
  });

  it('while both probe each other round after round, persisting fences (unless single-node writes are on for both)', () => {
    const reachability = cross([true, false], [true, false]);
    let scenarios = 0;
    const bad: string[] = [];
    for (const [a0, b0] of cross(states, states))
      for (const syncA of syncChoices(a0, b0))
        for (const syncB of syncChoices(b0, a0))
          for (const [aSeesB, bSeesA] of reachability) {
            scenarios++;
            const a = { ...a0 };
            const b = { ...b0 };
            let prevA: NodeDecision | undefined;
            let prevB: NodeDecision | undefined;
            for (let round = 0; round < 3; round++) {
              const peerOfA =
                prevB === undefined ? undefined : aSeesB ? observed(b, prevB.role) : { reachable: false };
              const peerOfB =
                prevA === undefined ? undefined : bSeesA ? observed(a, prevA.role) : { reachable: false };
              const da = decideNode(pairInput(a, b, syncA, peerOfA));
              const db = decideNode(pairInput(b, a, syncB, peerOfB));
              const where = `round ${round}: A ${a.label} (sees B: ${aSeesB}) / B ${b.label} (sees A: ${bSeesA})`;
              const eachSeesActive = peerOfA?.role === 'active' && peerOfB?.role === 'active';
              if (
                da.writable &&
                db.writable &&
                (eachSeesActive || !(a.singleNodeWrites && b.singleNodeWrites))
              ) {
                bad.push(where);
              }
              if (da.fenceAt !== undefined) a.fencedByTimeline = da.fenceAt;
              if (db.fenceAt !== undefined) b.fencedByTimeline = db.fenceAt;
              prevA = da;
              prevB = db;
            }
          }
    expect(scenarios).toBeLessThan(5000);
    expect(bad).toEqual([]);
  });
});
