import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Request, RequestHandler } from 'express';
import { withClient } from '../db/pool';
import { selectClient } from '../db/sql/clients';
import { AppError, toAppError } from '../errors';
import { keyFingerprint } from '../crypto/fingerprint';
import { consumeOrThrow, everyMs } from '../rate-limit';

/** One log line per 10 s about a failing rate-limit store, not one per request. */
const storeWarning = everyMs(10_000);
import type { ServerContext } from '../context';
import { countAuthFailure } from '../audit/request-actor';

export interface AuthenticatedClient {
  fingerprint: string;
  org: string;
}

const socketFingerprints = new WeakMap<TLSSocket, string>();

/** Fingerprint of the verified client certificate on this TLS connection (cached per connection). */
function peerFingerprint(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cached = socketFingerprints.get(socket);
  if (cached) return cached;
  const peer = socket.getPeerCertificate();
  if (!peer?.raw) return undefined;
  const fp = keyFingerprint(new X509Certificate(peer.raw).publicKey);
  socketFingerprints.set(socket, fp);
  return fp;
}

export function authenticatedClient(req: Request): AuthenticatedClient {
  const c = (req as Request & { trusteeClient?: AuthenticatedClient }).trusteeClient;
  if (!c) throw new AppError('UNAUTHENTICATED', 'not authenticated');
  return c;
}

/**
 * mTLS authentication: the certificate must chain to the cluster CA (TLS verified it), its
 * key's fingerprint must not be in this node's deny list, and it must be an active client in the
 * local database — checked on every request, so enable/disable-client takes effect on the next
 * request on both nodes.
 */
export function requireClient(ctx: ServerContext): RequestHandler {
  return async (req, _res, next) => {
    // Kept for the audit count of a refusal (its fingerprint, when a certificate was shown).
    let shown: string | undefined;
    try {
      const refusal = ctx.nodeState.readRefusal();
      if (refusal) throw refusal;
      const fp = peerFingerprint(req.socket as TLSSocket);
      shown = fp;
      if (!fp) {
        throw new AppError(
          'UNAUTHENTICATED',
          'a client certificate issued by this cluster is required (register first)',
        );
      }
      // Revoked on this node while the replicated state could not be written (deny-list.ts).
      if (ctx.denyList?.isDenied(fp)) {
        throw new AppError('CLIENT_DISABLED', 'this client has been disabled');
      }
      const row = await withClient(ctx.db.pool, (c) => selectClient(c, fp)).catch((e: unknown) => {
        throw toAppError(e);
      });
      // A decoy handed out for an unknown organization answers like a pending client, so the
      // certificate cannot reveal afterwards that the org did not exist (decoy-registration.ts).
      if (!row) {
        const serial = (req.socket as TLSSocket).getPeerCertificate().serialNumber ?? '';
        if (ctx.decoys.isDecoy(serial, fp)) {
          throw new AppError(
            'CLIENT_PENDING',
            'this client awaits approval by its organization administrator',
          );
        }
        throw new AppError('UNAUTHENTICATED', 'this client certificate is not registered with the cluster');
      }
      if (row.state === 'pending') {
        throw new AppError('CLIENT_PENDING', 'this client awaits approval by its organization administrator');
      }
      if (row.state === 'disabled') throw new AppError('CLIENT_DISABLED', 'this client has been disabled');
      // Fail open: a Redis outage must not lock every client out of its keys (counted and logged).
      await consumeOrThrow(ctx.limits.requests, fp, 'requests from this client', {
        onStoreError: (e) => {
          ctx.metrics.rateLimitStoreErrors.inc({ limiter: 'requests' });
          if (storeWarning.due()) {
            ctx.log.warn(
              { err: e.message },
              'rate-limit store unreachable: requests let through (fail open)',
            );
          }
        },
      });
      (req as Request & { trusteeClient?: AuthenticatedClient }).trusteeClient = {
        fingerprint: fp,
        org: row.org_name,
      };
      next();
    } catch (e) {
      countAuthFailure(ctx, req, e, shown);
      next(e);
    }
  };
}
