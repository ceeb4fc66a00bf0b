import { Router } from 'express';
import { z } from 'zod';
import type { ServerContext } from '../context';
import { AppError } from '../errors';
import { AuthCodeRejected, registerClient } from '../orgs/register-client';
import { assertNotLimited, consumeOrThrow } from '../rate-limit';
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

export function registerRouter(ctx: ServerContext): Router {
  const r = Router();
  r.route('/v1/clients/register')
    .post(async (req, res) => {
      const parsed = registerSchema.safeParse(req.body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new AppError(
          'INVALID_REQUEST',
          `invalid registration: ${issue.path.join('.') || 'body'}: ${issue.message}`,
        );
      }
      const refusal = ctx.nodeState.writeRefusal();
      if (refusal) {
        ctx.metrics.writeRefusals.inc({ reason: refusal.code });
        throw refusal;
      }
      const lockKey = `${req.socket.remoteAddress ?? '?'}|${parsed.data.org}`;
      await assertNotLimited(
        ctx.limits.registrationFailures,
        lockKey,
        'failed registrations for this organization',
      );
      try {
        const result = await registerClient({ write: ctx.write, keys: ctx.keys }, ctx.identity, parsed.data);
        ctx.log.info(
          { client: result.fingerprint, org: parsed.data.org, state: result.state },
          'client registered',
        );
        res.status(200).json(result);
      } catch (e) {
        if (e instanceof AuthCodeRejected) {
          ctx.log.warn(
            { org: parsed.data.org, remote: req.socket.remoteAddress },
            'registration refused: bad org or code',
          );
          await consumeOrThrow(
            ctx.limits.registrationFailures,
            lockKey,
            'failed registrations for this organization',
          );
        }
        throw e;
      }
    })
    .all(methodNotAllowed(['POST']));
  return r;
}
