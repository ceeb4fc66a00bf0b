import { Router } from 'express';
import { z } from 'zod/v3';
import { quotaKindOf } from '../deposits/quotas';
import type { ServerContext } from '../context';
import { AppError } from '../errors';
import { AuthCodeRejected, registerClient } from '../orgs/register-client';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Request, Response } from 'express';
import { requestSource } from '../audit/request-actor';
import { ORG_NAME_RE } from '../orgs/orgs';
import { consumeOrThrow, everyMs, refuseWhenExhausted } from '../rate-limit';

/** One log line per 10 s about a failing rate-limit store, not one per attempt. */
const storeError = everyMs(10_000);
import { methodNotAllowed } from './error-handler';

const registerSchema = z
  .object({
    org: z.string().min(1).max(63),
    authCode: z.string().max(256).optional(),
    csr: z
      .string()
      .min(1)
      .max(16 * 1024),
    name: z.string().max(255).optional(),
  })
  .strict();

/**
 * Counts a refused registration for the audit trail (bounded aggregates, audit-refusals.ts): by
 * address and organization (kept only when it could be an org name; the rest is whatever the
 * caller sent).
 */
function countRefusal(ctx: ServerContext, req: Request, result: string): void {
  const org = (req.body as { org?: unknown } | undefined)?.org;
  ctx.auditRefusals.count({
    action: 'client.register',
    result,
    source: requestSource(ctx, req),
    org: typeof org === 'string' && ORG_NAME_RE.test(org) ? org : '?',
  });
}

export function registerRouter(ctx: ServerContext): Router {
  const r = Router();
  const handle = registerHandler(ctx);
  r.route('/v1/clients/register')
    .post(async (req, res) => {
      try {
        await handle(req, res);
      } catch (e) {
        if (e instanceof AppError) countRefusal(ctx, req, e.code);
        throw e;
      }
    })
    .all(methodNotAllowed(['POST']));
  return r;
}

function registerHandler(ctx: ServerContext): (req: Request, res: Response) => Promise<void> {
  return async (req, res) => {
    const parsed = registerSchema.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new AppError(
        'INVALID_REQUEST',
        `invalid registration: ${issue.path.join('.') || 'body'}: ${issue.message}`,
      );
    }
    const address = requestSource(ctx, req);
    // The wrong-code lockout answers the same on both nodes (shared counters in Redis): a
    // locked-out address gets RATE_LIMITED from the passive too, not NOT_ACTIVE, which would
    // send it on to try the active.
    const lockoutKey = `${address}|${parsed.data.org}`;
    await refuseWhenExhausted(
      ctx.limits.registrationFailures,
      lockoutKey,
      'failed registrations from this address',
    );
    const refusal = ctx.nodeState.writeRefusal();
    if (refusal) {
      ctx.metrics.writeRefusals.inc({ reason: refusal.code });
      throw refusal;
    }
    // Fail closed: without their counters these limits would let unlimited attempts and
    // auth-code guesses through.
    const consume = (limiter: RateLimiterAbstract, key: string, what: string) =>
      consumeOrThrow(limiter, key, what, {
        failClosed: true,
        onStoreError: (e) => {
          ctx.metrics.rateLimitStoreErrors.inc({ limiter: 'registration' });
          if (storeError.due())
            ctx.log.error(
              { err: e.message },
              'rate-limit store unreachable: registrations refused (fail closed)',
            );
        },
      });
    // Every attempt is charged and never handed back (a success costs as much as a refusal,
    // so re-sends cannot queue unlimited work: issue 10, finding 1).
    await consume(ctx.limits.registrations, address, 'registration attempts from this address');
    // The wrong-code lockout: reserve a failure before checking the code (atomic in memory and
    // in Redis, so parallel guesses cannot all pass a read-only check), hand it back when the
    // attempt was not a wrong code. Keyed per address+org and per address.
    const counters: [RateLimiterAbstract, string][] = [
      [ctx.limits.registrationFailures, lockoutKey],
      [ctx.limits.registrationFailuresByAddress, address],
    ];
    for (const [limiter, key] of counters) {
      await consume(limiter, key, 'failed registrations from this address');
    }
    const giveBack = () =>
      Promise.all(counters.map(([limiter, key]) => limiter.reward(key, 1).catch(() => undefined)));
    try {
      const { decoy, ...result } = await registerClient(
        {
          write: ctx.write,
          keys: ctx.keys,
          maxPendingPerOrg: ctx.maxPendingClientsPerOrg,
          maxClientsAutoApproved: ctx.maxClientsAutoApprovedOrg,
          signTbs: (der) => ctx.signPool.sign(der),
          decoys: ctx.decoys,
        },
        ctx.identity,
        parsed.data,
        address,
      );
      await giveBack();
      if (decoy) {
        // Nothing is stored for an unknown org, so the audit trail counts it with the refusals.
        countRefusal(ctx, req, 'NOT_FOUND');
        ctx.log.warn(
          { org: parsed.data.org, remote: address },
          'registration for an unknown organization answered like a pending one; nothing stored',
        );
      } else {
        ctx.log.info(
          { client: result.fingerprint, org: parsed.data.org, state: result.state },
          'client registered',
        );
      }
      res.status(200).json(result);
    } catch (e) {
      const quota = quotaKindOf(e);
      if (quota) ctx.metrics.quotaRefusals.inc({ kind: quota });
      if (e instanceof AuthCodeRejected) {
        ctx.log.warn({ org: parsed.data.org, remote: address }, 'registration refused: bad org or code');
      } else {
        await giveBack();
      }
      throw e;
    }
  };
}
