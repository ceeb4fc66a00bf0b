import { decideNode, type DecisionInput, type PeerObservation } from '../node/decide';
import { decideRevocationPath, type RevocationPath } from './revocation-path';
import { healthyPrimaryInput, type DecisionOverrides } from '../../test/support/decision-input';

/**
 * Which path disable-client takes, from the node's one decision (issue 10, finding 2): every row
 * builds the decision with decideNode, as the CLI does from a polled snapshot.
 */

const NOW = Date.parse('2030-06-01T12:00:00.000Z');
const TL = 3;

type Over = DecisionOverrides;

/** A healthy primary of a two-node pair with a synchronous passive; `over` changes what a row varies. */
const input = (over: Over = {}): DecisionInput => healthyPrimaryInput({ now: NOW, timeline: TL }, over);

const path = (over: Over): RevocationPath => decideRevocationPath(decideNode(input(over)), over.peer);
const passive = { db: { inRecovery: true, syncStreaming: false } };
const noPassive = { db: { syncStreaming: false } };

describe('decideRevocationPath', () => {
  it.each<[string, Over, RevocationPath['kind'], string | null]>([
    ['an active with a synchronous passive: the normal two-node write', {}, 'write', 'sync'],
    ['a single node: the normal write', { twoNode: false, ...noPassive }, 'write', 'standalone'],
    [
      'an active with single-node writes allowed: the normal (single-node) write',
      { ...noPassive, singleNodeWritesUntil: NOW + 60_000 },
      'write',
      'single-node',
    ],
    ['an active whose passive is not streaming: a local commit', noPassive, 'local-commit', null],
    [
      'an active whose passive is not streaming, the peer unreachable: a local commit',
      { ...noPassive, peer: { reachable: false } },
      'local-commit',
      null,
    ],
    [
      'an active whose passive streams but not synchronously: a local commit',
      { db: { syncStreaming: false, streamingNotSync: true } },
      'local-commit',
      null,
    ],
    [
      "an active whose passive's slot was invalidated: a local commit",
      { db: { syncStreaming: false, lostSlots: ['kt02'] } },
      'local-commit',
      null,
    ],
    ['a passive that has not probed its active: the deny list', passive, 'deny-list', null],
    [
      'a passive whose active is unreachable: the deny list',
      { ...passive, peer: { reachable: false } },
      'deny-list',
      null,
    ],
    [
      'a passive whose active answers but has no database: the deny list',
      { ...passive, peer: { reachable: true, role: 'unavailable' } },
      'deny-list',
      null,
    ],
  ])('%s', (_what, over, kind, writeMode) => {
    const p = path(over);
    expect(p.kind).toBe(kind);
    if (writeMode) expect(p).toEqual({ kind, writeMode });
  });

  it.each<[string, Over, string, RegExp]>([
    [
      'a passive whose active answers: run it on the active',
      { ...passive, peer: { reachable: true, role: 'active', timeline: TL } },
      'NOT_ACTIVE',
      /run disable-client on the active/,
    ],
    [
      'a fenced node',
      { ...noPassive, fencedByTimeline: TL + 1 },
      'NOT_ACTIVE',
      /fenced.*run disable-client on the other node/,
    ],
    ['a node whose database is down', { db: { up: false } }, 'UNAVAILABLE', /does not answer/],
    ['a node with a diverged identity', { identityMatches: false }, 'UNAVAILABLE', /identity/],
  ])('refuses on %s', (_what, over, code, message) => {
    const p = path(over);
    expect(p.kind).toBe('refused');
    expect(p).toMatchObject({ code, message: expect.stringMatching(message) });
  });

  it('commits without the passive only on an active that cannot write, and never writes where the decision refuses', () => {
    const peers: (PeerObservation | undefined)[] = [
      undefined,
      { reachable: false },
      { reachable: true, role: 'active', timeline: TL + 1 },
      { reachable: true, role: 'passive', timeline: TL },
    ];
    for (const up of [true, false])
      for (const inRecovery of [true, false])
        for (const syncStreaming of [true, false])
          for (const singleNodeWritesUntil of [null, NOW + 1000])
            for (const peer of peers) {
              const d = decideNode(
                input({ db: { up, inRecovery, syncStreaming }, peer, singleNodeWritesUntil }),
              );
              const p = decideRevocationPath(d, peer);
              if (p.kind === 'write') expect(d.writable).toBe(true);
              if (p.kind === 'local-commit') expect([d.role, d.writable]).toEqual(['active', false]);
              if (p.kind === 'deny-list') expect(d.role).toBe('passive');
              if (d.role === 'fenced' || d.role === 'unavailable') expect(p.kind).toBe('refused');
            }
  });
});
