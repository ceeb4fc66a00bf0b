import type { Request } from 'express';
import type { ServerContext } from '../context';
import { clientAddress } from '../http/client-address';
import type { AuditActor } from './append-audit';

/** The request's client address as the server sees it (TRUSTED_PROXIES applied). */
export function requestSource(ctx: Pick<ServerContext, 'clientAddress'>, req: Request): string {
  return clientAddress(ctx.clientAddress, req.socket.remoteAddress, req.headers[ctx.clientAddress.header]);
}

/** An API caller as audit actor: its fingerprint and address. */
export function clientActor(
  ctx: Pick<ServerContext, 'clientAddress'>,
  req: Request,
  fingerprint: string,
): AuditActor {
  return { kind: 'client', name: fingerprint, source: requestSource(ctx, req) };
}

/** Codes of a refused client authentication. */
const AUTH_FAILURES = new Set(['UNAUTHENTICATED', 'CLIENT_PENDING', 'CLIENT_DISABLED']);

/**
 * Counts a refused authentication for the audit trail (bounded aggregates, audit-refusals.ts):
 * by code, fingerprint (when a certificate was shown) and address. Other errors are ignored.
 */
export function countAuthFailure(
  ctx: Pick<ServerContext, 'clientAddress' | 'auditRefusals'>,
  req: Request,
  e: unknown,
  fingerprint?: string,
): void {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !AUTH_FAILURES.has(code)) return;
  ctx.auditRefusals.count({
    action: 'client.auth',
    result: code,
    actor: fingerprint ?? '',
    source: requestSource(ctx, req),
  });
}
