import { Router, type Request } from 'express';
import { authenticatedClient, requireClient } from '../auth/client-auth';
import type { ServerContext } from '../context';
import { deleteDeposit, destroyDeposit, getDeposit, listDeposits, putDeposit } from '../deposits/deposits';
import { quotaKindOf } from '../deposits/quotas';
import {
  validateDeleteQuery,
  validateDepositName,
  validateIdempotencyKey,
  validateIfMatch,
  validateListParams,
  validatePutBody,
  validateVersionParam,
} from '../deposits/validate-deposit';
import { isRequestAbandoned } from '../db/pool';
import { AppError } from '../errors';
import { clientGoneSignal } from './client-gone-signal';
import { clientActor } from '../audit/request-actor';
import type { AuditActor } from '../audit/append-audit';
import { methodNotAllowed } from './error-handler';

/**
 * Counts a refused write: quota refusals and unavailability in the metrics below, and (every
 * code) in the audit trail's aggregates.
 */
function countRefusal(
  ctx: ServerContext,
  e: unknown,
  action: 'deposit.put' | 'deposit.delete' | 'deposit.destroy',
  who: AuditActor,
): void {
  const quota = quotaKindOf(e);
  if (quota) ctx.metrics.quotaRefusals.inc({ kind: quota });
  if (e instanceof AppError) {
    ctx.auditRefusals.count({ action, result: e.code, actor: who.name, source: who.source ?? '' });
  }
  if (
    e instanceof AppError &&
    ['NOT_ACTIVE', 'PASSIVE_UNAVAILABLE', 'WRITE_IN_DOUBT', 'UNAVAILABLE'].includes(e.code)
  ) {
    ctx.metrics.writeRefusals.inc({ reason: e.code });
  }
}

/** The client went away and the write stopped before storing anything: nobody to answer. */
function abandoned(ctx: ServerContext, e: unknown, signal: AbortSignal): boolean {
  if (!isRequestAbandoned(e, signal)) return false;
  ctx.log.debug('client went away; write abandoned before anything was stored');
  return true;
}

function nameParam(req: Request): string {
  return validateDepositName(req.params.name);
}

export function depositsRouter(ctx: ServerContext): Router {
  const r = Router();
  const svc = {
    write: ctx.write,
    keys: ctx.keys,
    quotas: ctx.depositQuotas,
    onValuesErased: () => ctx.depositVacuum.request(),
  };
  r.use('/v1/deposits', requireClient(ctx));

  r.route('/v1/deposits')
    .get(async (req, res) => {
      const owner = authenticatedClient(req).fingerprint;
      res.json(await listDeposits(svc, owner, validateListParams(req.query as Record<string, unknown>)));
    })
    .all(methodNotAllowed(['GET']));

  r.route('/v1/deposits/:name')
    .get(async (req, res) => {
      const owner = authenticatedClient(req).fingerprint;
      const name = nameParam(req);
      const extra = Object.keys(req.query).filter((k) => k !== 'version');
      if (extra.length)
        throw new AppError('INVALID_REQUEST', `unknown query parameter(s): ${extra.slice(0, 5).join(', ')}`);
      res.json(await getDeposit(svc, { owner, name, version: validateVersionParam(req.query.version) }));
    })
    .put(async (req, res) => {
      const owner = authenticatedClient(req).fingerprint;
      const name = nameParam(req);
      const body = validatePutBody(req.body, ctx.maxValueBytes);
      const idempotencyKey = validateIdempotencyKey(req.headers['idempotency-key']);
      const ifMatch = validateIfMatch(req.headers['if-match']);
      const signal = clientGoneSignal(res);
      const who = clientActor(ctx, req, owner);
      try {
        const result = await putDeposit(
          svc,
          { owner, name, ...body, ifMatch, idempotencyKey, who },
          { signal },
        );
        ctx.log.info(
          { name, version: result.version, client: owner, replayed: result.replayed },
          'deposit stored',
        );
        if (result.replayed) res.setHeader('Idempotent-Replayed', 'true');
        res.status(201).json({ name: result.name, version: result.version });
      } catch (e) {
        if (abandoned(ctx, e, signal)) return;
        countRefusal(ctx, e, 'deposit.put', who);
        throw e;
      }
    })
    .delete(async (req, res) => {
      const owner = authenticatedClient(req).fingerprint;
      const name = nameParam(req);
      const { destroy } = validateDeleteQuery(req.query as Record<string, unknown>);
      const idempotencyKey = validateIdempotencyKey(req.headers['idempotency-key']);
      const ifMatch = validateIfMatch(req.headers['if-match']);
      if (destroy && ifMatch !== null) {
        throw new AppError('INVALID_REQUEST', 'destroy erases every version: it takes no If-Match header');
      }
      const signal = clientGoneSignal(res);
      const who = clientActor(ctx, req, owner);
      try {
        const result = destroy
          ? await destroyDeposit(svc, { owner, name, idempotencyKey, who }, { signal })
          : await deleteDeposit(svc, { owner, name, ifMatch, idempotencyKey, who }, { signal });
        ctx.log.info(
          { name, version: result.version, client: owner, replayed: result.replayed },
          destroy ? 'deposit destroyed' : 'deposit deleted',
        );
        res.status(204).end();
      } catch (e) {
        if (abandoned(ctx, e, signal)) return;
        countRefusal(ctx, e, destroy ? 'deposit.destroy' : 'deposit.delete', who);
        throw e;
      }
    })
    .all(methodNotAllowed(['GET', 'PUT', 'DELETE']));

  // A name with a slash (or anything deeper) is never a valid deposit name.
  r.all('/v1/deposits/*rest', () => {
    throw new AppError('INVALID_NAME', 'deposit names cannot contain "/"');
  });
  return r;
}
