import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { AppError, errorBody, toAppError } from '../errors';
import type { ServerContext } from '../context';

/** Maps body-parser and express failures (which carry `type`/`status`) to our codes. */
export function fromHttpError(err: {
  type?: string;
  status?: number;
  message?: string;
}): AppError | undefined {
  switch (err.type) {
    case 'entity.too.large':
      return new AppError('TOO_LARGE', 'request body is too large');
    case 'entity.parse.failed':
      return new AppError('INVALID_REQUEST', 'request body is not a valid JSON object');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError('UNSUPPORTED_MEDIA_TYPE', 'request body must be UTF-8 JSON');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new AppError('INVALID_REQUEST', 'request body could not be read');
  }
  if (err instanceof URIError || (err.status === 400 && /decode/i.test(err.message ?? ''))) {
    return new AppError('INVALID_REQUEST', 'request path is not valid percent-encoding');
  }
  if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
    return new AppError('INVALID_REQUEST', 'malformed request');
  }
  return undefined;
}

/** Refusals that are the designed answer to a peer or database outage, not a server fault. */
const EXPECTED_UNAVAILABILITY = new Set(['NOT_ACTIVE', 'PASSIVE_UNAVAILABLE', 'WRITE_IN_DOUBT']);

export function sendError(res: Response, err: AppError): void {
  if (err.retryAfterSec) res.setHeader('Retry-After', String(err.retryAfterSec));
  const body = errorBody(err);
  // The request id (app.ts) lets an operator find this answer's log line.
  if (typeof res.locals.requestId === 'string') body.error.requestId = res.locals.requestId;
  res.status(err.status).json(body);
}

/** The last middleware: every failure becomes `{error: {code, message}}`, never a stack trace. */
export function errorHandler(ctx: ServerContext): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const appErr = err instanceof AppError ? err : (fromHttpError(err as never) ?? toAppError(err));
    if (EXPECTED_UNAVAILABILITY.has(appErr.code)) {
      // Outages are reported by the node-state transitions once; one line per refusal, no stack.
      ctx.log.warn(
        { code: appErr.code, path: req.route?.path ?? 'unmatched', reqId: res.locals.requestId },
        'request refused',
      );
    } else if (appErr.status >= 500) {
      ctx.log.error(
        {
          err: err instanceof AppError ? (err.cause ?? err) : err,
          code: appErr.code,
          path: req.path,
          reqId: res.locals.requestId,
        },
        'request failed',
      );
    }
    if (res.headersSent) return;
    ctx.metrics.errors.inc({ code: appErr.code });
    if (appErr.code === 'RATE_LIMITED')
      ctx.metrics.rateLimitRejections.inc({
        limiter: req.path === '/v1/clients/register' ? 'registration' : 'requests',
      });
    sendError(res, appErr);
  };
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new AppError('NOT_FOUND', `no such endpoint: ${req.method} ${req.path.slice(0, 100)}`));
};

/** For `.all()` after the supported verbs of a route. */
export function methodNotAllowed(allowed: string[]): RequestHandler {
  return (req, res, next) => {
    res.setHeader('Allow', allowed.join(', '));
    next(
      new AppError('METHOD_NOT_ALLOWED', `${req.method} is not allowed here; use ${allowed.join(' or ')}`),
    );
  };
}

/** Bodies must be JSON: anything else is 415 before parsing. */
export const requireJson: RequestHandler = (req, _res, next) => {
  const hasBody =
    Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (hasBody && !req.is('application/json')) {
    next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json'));
    return;
  }
  next();
};
