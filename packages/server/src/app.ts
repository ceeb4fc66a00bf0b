import express, { type Express } from 'express';
import { randomUUID } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { ServerContext } from './context';
import { AppError } from './errors';
import { serverMailKey } from './mail/server-mail-key';
import { depositsRouter } from './routes/deposits';
import { errorHandler, methodNotAllowed, notFound, requireJson } from './routes/error-handler';
import { healthRouter } from './routes/health';
import { keyPageRouter } from './routes/key-page';
import { registerRouter } from './routes/register';
import { testHsmRouter } from './routes/test-hsm';
import { countAuthFailure } from './audit/request-actor';

/**
 * Route template for requests answered before a route matched (401 from the auth middleware,
 * 415/413 from body parsing): operators still see which API was hit, and no name leaks.
 */
export function routeTemplateOf(path: string): string {
  if (path === '/v1/deposits' || path === '/v1/deposits/') return '/v1/deposits';
  if (path.startsWith('/v1/deposits/')) return '/v1/deposits/:name';
  if (path.startsWith('/v1/health')) return '/v1/health';
  if (path === '/v1/clients/register') return '/v1/clients/register';
  if (path === '/test_hsm') return '/test_hsm';
  return 'unmatched';
}

export const REQUEST_ID_HEADER = 'x-request-id';
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The caller's X-Request-Id when it is safe to log and echo (1–128 of A–Z a–z 0–9 . _ : -),
 * else a fresh UUID: a bad id is replaced, never refused, so tracing cannot break a request.
 */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID_PATTERN.test(header) ? header : randomUUID();
}

/** Room for a base64 value of maxValueBytes plus metadata and JSON framing. */
function bodyLimitBytes(maxValueBytes: number): number {
  return Math.ceil(maxValueBytes / 3) * 4 + 16 * 1024;
}

export function createApp(ctx: ServerContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    const reqId = requestIdOf(req.headers[REQUEST_ID_HEADER]);
    res.locals.requestId = reqId;
    res.setHeader(REQUEST_ID_HEADER, reqId);
    res.on('finish', () => {
      // Label by route template, never the raw path: deposit names stay out of metrics and logs.
      const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : routeTemplateOf(req.path);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      ctx.metrics.requests.inc({ route, method: req.method, code: String(res.statusCode) });
      ctx.metrics.latency.observe({ route, method: req.method }, seconds);
      // Health probes (the peer's, every second) and scrapes at debug; the API at info.
      const level = route === '/v1/health' || route === '/metrics' ? 'debug' : 'info';
      ctx.log[level](
        { reqId, method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 1e4) / 10 },
        'request',
      );
    });
    next();
  });
  // Every decision below reads the node state; refresh it first if the event loop starved the poll.
  app.use((_req, _res, next) => {
    ctx.nodeState.ensureFresh().then(() => next(), next);
  });
  // Deposit routes need a certificate of this cluster: without one, answer 401 before reading or
  // parsing any body (an anonymous peer must not make the server buffer and parse megabytes).
  app.use('/v1/deposits', (req, _res, next) => {
    if ((req.socket as TLSSocket).authorized) return next();
    const e = new AppError(
      'UNAUTHENTICATED',
      'a client certificate issued by this cluster is required (register first)',
    );
    countAuthFailure(ctx, req, e);
    next(e);
  });
  // The contact key page (`/?q=TOKEN`) takes an HTML form, not JSON: before the JSON-only guard.
  app.use(keyPageRouter(ctx));
  app.use(requireJson);
  app.use(express.json({ limit: bodyLimitBytes(ctx.maxValueBytes), strict: true, type: 'application/json' }));

  app
    .route('/')
    .get(async (req, res) => {
      if (req.query.a === 'fingerprint') {
        res.type('text/plain').send(ctx.identity.fingerprint);
        return;
      }
      if (req.query.a === 'gpgkey') {
        // The public key that signs this cluster's mail (same on both nodes: mail/server-mail-key.ts).
        res.type('text/plain').send((await serverMailKey(ctx.identity.keyPem)).armoredPublicKey);
        return;
      }
      throw new AppError('NOT_FOUND', 'use /?a=fingerprint, /?a=gpgkey or the /v1 API');
    })
    .all(methodNotAllowed(['GET']));

  app.use(healthRouter(ctx));
  app
    .route('/metrics')
    .get(async (_req, res) => {
      // Gauges from the current node state, so a scrape agrees with /v1/health (the 1 s timer alone lags).
      ctx.metrics.observeNode(ctx.nodeState);
      res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
    })
    .all(methodNotAllowed(['GET']));
  app.use(testHsmRouter(ctx));
  app.use(registerRouter(ctx));
  app.use(depositsRouter(ctx));
  app.use(notFound);
  app.use(errorHandler(ctx));
  return app;
}
