import { randomBytes } from 'node:crypto';
import { Router } from 'express';
import type { ServerContext } from '../context';
import { runWrite } from '../db/write-path';
import { AppError } from '../errors';
import { methodNotAllowed } from './error-handler';

/** The seed's sample name: TEST_HELLO_DEPOSIT2016-06-03-072718 (UTC). */
export function testDepositName(now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `TEST_HELLO_DEPOSIT${now.getUTCFullYear()}-${p(now.getUTCMonth() + 1)}-${p(now.getUTCDate())}-` +
    `${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`
  );
}

/** Loopback peers only: the seed runs `curl -k https://<this host>:11371/test_hsm` on each host. */
export function isLoopbackAddress(addr: string | undefined): boolean {
  if (!addr) return false;
  const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return v4 === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

function sampleAad(name: string): Buffer {
  return Buffer.from(`trustee-test-hsm-v1\u0000${name}`, 'utf8');
}

/**
 * GET /test_hsm (localhost only): checks the HSM answers (a data key unwrapped on the token, not
 * from the cache), seals a random sample value with the current data key, stores it through the
 * write path (both nodes), opens it again and answers the seed's sentence as a JSON string.
 */
export function testHsmRouter(ctx: ServerContext): Router {
  const r = Router();
  r.route('/test_hsm')
    .get(async (req, res) => {
      // The TCP peer, never a forwarded header: a proxy must not make a remote caller "local".
      // A request forwarded by a trusted proxy on this host comes from loopback too: refused.
      const peer = req.socket.remoteAddress;
      const forwarded =
        peer !== undefined &&
        ctx.clientAddress.isTrusted(peer) &&
        req.headers[ctx.clientAddress.header] !== undefined;
      if (!isLoopbackAddress(peer) || forwarded)
        throw new AppError('NOT_FOUND', '/test_hsm answers only on localhost');
      const hsm = ctx.hsm;
      if (!hsm)
        throw new AppError('UNAVAILABLE', 'no HSM is configured on this node (see ktadmin keyhsm)', {
          details: { reason: 'HSM', hsmReason: 'NOT_CONFIGURED' },
        });
      await hsm.probe();
      const name = testDepositName(new Date());
      const value = randomBytes(32);
      const sealed = await hsm.seal(value, sampleAad(name));
      // The seed checks every host. The active stores the sample through the write path (both
      // nodes); a passive, which takes no writes, proves the same HSM path in memory only.
      const active = ctx.nodeState.decide().role === 'active';
      if (active)
        await runWrite(ctx.write, (c) =>
          c.query(
            'insert into hsm_test_deposits (name, sealed_value, key_id) values ($1, $2, $3) on conflict (name) do nothing',
            [name, sealed.blob, sealed.keyId],
          ),
        );
      const back = await hsm.open(sealed.keyId, sealed.blob, sampleAad(name));
      if (!back.equals(value)) throw new AppError('UNAVAILABLE', 'the sample value did not read back');
      ctx.log.info(
        { name, dataKey: sealed.keyId, stored: active },
        active
          ? 'test_hsm: sample deposit created'
          : 'test_hsm: sample sealed and opened through the HSM (passive: not stored)',
      );
      res.json(`Sample Key ${name} has been created`);
    })
    .all(methodNotAllowed(['GET']));
  return r;
}
