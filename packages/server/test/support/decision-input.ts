import type { DecisionInput } from '../../src/node/decide';

/** What a test row changes of the decision's input (`db` merged field by field). */
export type DecisionOverrides = Omit<Partial<DecisionInput>, 'db'> & { db?: Partial<DecisionInput['db']> };

/**
 * The input of a healthy primary of a two-node pair with a synchronous passive, at `now` on
 * `timeline`; `over` changes what a test row varies.
 */
export function healthyPrimaryInput(
  base: { now: number; timeline: number },
  over: DecisionOverrides = {},
): DecisionInput {
  const { db, ...rest } = over;
  return {
    now: base.now,
    twoNode: true,
    db: {
      up: true,
      inRecovery: false,
      timeline: base.timeline,
      syncStreaming: true,
      streamingNotSync: false,
      lostSlots: [],
      ...db,
    },
    identityMatches: true,
    peer: undefined,
    fencedByTimeline: null,
    singleNodeWritesUntil: null,
    ...rest,
  };
}
