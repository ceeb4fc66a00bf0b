import { Router } from 'express';
import type { ServerContext } from '../context';
import { methodNotAllowed } from './error-handler';

/** Health answers only 200 or 503, for load balancers; the body explains. */
export function healthRouter(ctx: ServerContext): Router {
  const r = Router();
  const body = () => {
    const s = ctx.nodeState.current();
    const writable = ctx.nodeState.writeRefusal() === undefined;
    return {
      s,
      writable,
      json: {
        role: s.role,
        writable,
        db: s.dbUp ? 'up' : 'down',
        identity: s.identityMatches === false ? 'mismatch' : s.identityMatches === null ? 'unrecorded' : 'ok',
        replication: s.replication,
        version: ctx.version,
        stateAgeMs: ctx.nodeState.ageMs(),
        ...(s.dbUp ? {} : { error: 'the local database is not answering (details in the server log)' }),
        ...(s.identityMatches === false
          ? {
              reason:
                "this node's cluster identity key differs from the active's; copy the active's confdir (without .ssl/) again",
            }
          : {}),
      },
    };
  };
  r.route('/v1/health')
    .get((_req, res) => {
      const b = body();
      res.status(ctx.nodeState.readRefusal() ? 503 : 200).json(b.json);
    })
    .all(methodNotAllowed(['GET']));
  r.route('/v1/health/active')
    .get((_req, res) => {
      const b = body();
      res.status(b.s.dbUp && b.s.role === 'active' && b.s.identityMatches !== false ? 200 : 503).json(b.json);
    })
    .all(methodNotAllowed(['GET']));
  r.route('/v1/health/writable')
    .get((_req, res) => {
      const b = body();
      res.status(b.writable ? 200 : 503).json(b.json);
    })
    .all(methodNotAllowed(['GET']));
  r.route('/v1/health/passive')
    .get((_req, res) => {
      const b = body();
      res
        .status(b.s.dbUp && b.s.role === 'passive' && b.s.identityMatches !== false ? 200 : 503)
        .json(b.json);
    })
    .all(methodNotAllowed(['GET']));
  return r;
}
