import { Router } from 'express';
import type { ServerContext } from '../context';
import { methodNotAllowed } from './error-handler';

/**
 * Health answers only 200 or 503, for load balancers; the body prints the node's one decision
 * (decide.ts) and the facts it was made from.
 */
export function healthRouter(ctx: ServerContext): Router {
  const r = Router();
  const body = () => {
    const ns = ctx.nodeState;
    const s = ns.current();
    const d = ns.decide();
    const peer = ns.peerObservation();
    const ha = ns.persistedHaState();
    return {
      d,
      json: {
        role: d.role,
        readable: d.readable,
        writable: d.writable,
        writeMode: d.writeMode,
        reason: d.reason,
        timeline: s.timeline,
        db: s.dbUp ? 'up' : 'down',
        identity: s.identityMatches === false ? 'mismatch' : s.identityMatches === null ? 'unrecorded' : 'ok',
        replication: { ...s.replication, lostSlots: s.lostSlots },
        peer: peer
          ? {
              reachable: peer.reachable,
              role: peer.role ?? null,
              timeline: peer.timeline ?? null,
              ...(peer.foreign ? { foreign: true } : {}),
            }
          : null,
        singleNodeWrites: d.singleNodeWrites ? { until: ha.singleNodeWrites?.until ?? null } : null,
        fenced: ha.fenced ?? null,
        version: ctx.version,
        // Which key hierarchy seals rows here (ktadmin keyhsm --migrate waits for 'hsm' on both nodes).
        atRestKeys: ctx.hsm ? 'hsm' : 'file',
        // The HSM's last answer: reads of cached data keys go on while it is down (not a 503 here).
        hsm: ctx.hsm ? { ...(ctx.hsmStatus ?? { up: true, reason: null, at: null }) } : null,
        // The cluster identity's public fingerprint: a peer probe ignores a node of another cluster.
        cluster: ctx.identity.fingerprint,
        stateAgeMs: ns.ageMs(),
        ...(s.dbUp ? {} : { error: 'the local database is not answering (details in the server log)' }),
      },
    };
  };
  const route = (path: string, ok: (b: ReturnType<typeof body>) => boolean) =>
    r
      .route(path)
      .get((_req, res) => {
        const b = body();
        res.status(ok(b) ? 200 : 503).json(b.json);
      })
      .all(methodNotAllowed(['GET']));
  route('/v1/health', (b) => b.d.readable);
  route('/v1/health/active', (b) => b.d.role === 'active');
  route('/v1/health/writable', (b) => b.d.writable);
  route('/v1/health/passive', (b) => b.d.role === 'passive');
  return r;
}
