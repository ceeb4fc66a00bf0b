import { X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Pool } from 'pg';
import type { Registry } from 'prom-client';
import { keyFingerprint } from '../crypto/fingerprint';
import { withClient } from '../db/pool';
import { selectClient } from '../db/sql/clients';
import type { Logger } from '../logger';
import { isLoopbackHost, type ListenAddress } from './listen-address';

/**
 * Who may read `/metrics` on the HTTPS API port:
 * - `open`: anyone (the default, unchanged);
 * - `client-cert`: only a client presenting a certificate issued by the cluster CA that is still
 *   an active client: not pending, disabled, or on this node's deny list (METRICS_REQUIRE_CLIENT_CERT);
 * - `elsewhere`: nobody; METRICS_LISTEN serves it instead.
 */
export type ApiMetricsAccess = 'open' | 'client-cert' | 'elsewhere';

export function apiMetricsAccess(conf: {
  METRICS_REQUIRE_CLIENT_CERT: boolean;
  METRICS_LISTEN?: string;
}): ApiMetricsAccess {
  if (conf.METRICS_REQUIRE_CLIENT_CERT) return 'client-cert';
  return conf.METRICS_LISTEN ? 'elsewhere' : 'open';
}

/**
 * True for every URL express would route to `/metrics` (case-insensitive, trailing slash,
 * percent-encoding, query): the guard must cover at least what the route answers.
 */
export function isMetricsPath(url: string): boolean {
  let path = url.split('?')[0].split('#')[0];
  try {
    path = decodeURIComponent(path);
  } catch {
    // not valid percent-encoding: express would not match it either; compare it raw
  }
  return path.replace(/\/+$/, '').replace(/^\/+/, '/').toLowerCase() === '/metrics';
}

function refuse(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** Why a scraper's verified certificate is refused, or undefined when it is an active client. */
export interface MetricsRefusal {
  status: number;
  code: 'UNAUTHENTICATED' | 'CLIENT_PENDING' | 'CLIENT_DISABLED' | 'UNAVAILABLE';
  message: string;
}

/** Decides whether the client behind a CA-verified certificate may scrape. */
export type MetricsClientCheck = (socket: TLSSocket) => Promise<MetricsRefusal | undefined>;

/**
 * The client-state check of requireClient, for `/metrics`: the certificate's key must belong to
 * a client that is active in this node's database and not on its deny list (a revoked scraper
 * loses access on its next request, as any client does).
 */
export function activeClientCheck(deps: {
  /** Read at each request (startup may replace the request pool). */
  db: { pool: Pool };
  denyList?: { isDenied(fingerprint: string): boolean };
  /** Decoy certificates (unknown orgs) answer like pending clients, as on the API. */
  decoys?: { isDecoy(serialHex: string, fingerprint: string): boolean };
}): MetricsClientCheck {
  return async (socket) => {
    const peer = socket.getPeerCertificate();
    const raw = peer?.raw;
    if (!raw) return { status: 401, code: 'UNAUTHENTICATED', message: 'no client certificate' };
    const fp = keyFingerprint(new X509Certificate(raw).publicKey);
    const disabled: MetricsRefusal = {
      status: 403,
      code: 'CLIENT_DISABLED',
      message: 'this client has been disabled',
    };
    if (deps.denyList?.isDenied(fp)) return disabled;
    let row: Awaited<ReturnType<typeof selectClient>>;
    try {
      row = await withClient(deps.db.pool, (c) => selectClient(c, fp));
    } catch {
      return { status: 503, code: 'UNAVAILABLE', message: 'the client could not be checked; retry shortly' };
    }
    const pending: MetricsRefusal = {
      status: 403,
      code: 'CLIENT_PENDING',
      message: 'this client awaits approval by its organization administrator',
    };
    if (!row && deps.decoys?.isDecoy(peer.serialNumber ?? '', fp)) return pending;
    if (!row)
      return {
        status: 401,
        code: 'UNAUTHENTICATED',
        message: 'this client certificate is not registered with the cluster',
      };
    if (row.state === 'pending') return pending;
    if (row.state === 'disabled') return disabled;
    return undefined;
  };
}

/**
 * Wraps the API's request listener: `/metrics` requests the configuration does not allow are
 * answered here, before the app; everything else passes through untouched. With `client-cert`,
 * `checkClient` (activeClientCheck) decides about a certificate that verified.
 */
export function guardApiMetrics(
  app: RequestListener,
  access: ApiMetricsAccess,
  checkClient?: MetricsClientCheck,
): RequestListener {
  if (access === 'open') return app;
  return (req: IncomingMessage, res: ServerResponse) => {
    if (!isMetricsPath(req.url ?? '/')) return app(req, res);
    if (access === 'elsewhere')
      return refuse(res, 404, 'NOT_FOUND', '/metrics is not served on this port (METRICS_LISTEN)');
    // `authorized`: the client presented a certificate that verifies against the cluster CA
    // (the server requests one from every client but lets anonymous routes through).
    const socket = req.socket as TLSSocket;
    if (socket.authorized !== true) {
      return refuse(
        res,
        401,
        'UNAUTHENTICATED',
        '/metrics requires a client certificate issued by this cluster (METRICS_REQUIRE_CLIENT_CERT)',
      );
    }
    if (!checkClient) return app(req, res);
    checkClient(socket).then(
      (refusal) => {
        if (!refusal) return app(req, res);
        refuse(res, refusal.status, refusal.code, `/metrics: ${refusal.message}`);
      },
      () => refuse(res, 503, 'UNAVAILABLE', '/metrics: the client could not be checked; retry shortly'),
    );
  };
}

export interface MetricsListener {
  address: AddressInfo;
  close(): Promise<void>;
}

/**
 * METRICS_LISTEN: `/metrics` over plain HTTP on its own address (loopback for a local agent, or
 * a monitoring network), GET only; nothing else of the API is reachable there.
 */
export async function startMetricsListener(args: {
  listen: ListenAddress;
  registry: Registry;
  /** Refreshes gauges before a scrape (the node decision). */
  beforeScrape: () => void;
  log: Logger;
}): Promise<MetricsListener> {
  const server = createServer((req, res) => {
    if (!isMetricsPath(req.url ?? '/'))
      return refuse(res, 404, 'NOT_FOUND', 'only /metrics is served on this port');
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return refuse(res, 405, 'METHOD_NOT_ALLOWED', 'use GET');
    args.beforeScrape();
    args.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': args.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      () => refuse(res, 503, 'UNAVAILABLE', 'metrics could not be collected'),
    );
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(args.listen.port, args.listen.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const fields = { host: address.address, port: address.port };
  if (isLoopbackHost(args.listen.host)) args.log.info(fields, 'metrics served over plain HTTP on loopback');
  else
    args.log.warn(
      fields,
      'metrics served over plain HTTP on a non-loopback address (no TLS, no authentication)',
    );
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
