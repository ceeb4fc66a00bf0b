import type { Request, Response } from 'express';
import { AppError, type ErrorCode } from '../errors';
import { createLogger } from '../logger';
import { createMetrics } from '../metrics';
import { errorHandler, methodNotAllowed, notFound } from './error-handler';

/** What no answer and no log line may repeat. */
const SECRET = 'c2VjcmV0LWtleS1tYXRlcmlhbA==';

/** Just enough of express' Response: status, headers, JSON body. */
function fakeResponse(opts: { headersSent?: boolean } = {}) {
  const sent: {
    status?: number;
    body?: { error: Record<string, unknown> };
    headers: Record<string, string>;
  } = {
    headers: {},
  };
  const res = {
    headersSent: opts.headersSent ?? false,
    locals: {},
    setHeader: (k: string, v: string) => void (sent.headers[k] = v),
    status(code: number) {
      sent.status = code;
      return res;
    },
    json(body: { error: Record<string, unknown> }) {
      sent.body = body;
      return res;
    },
  };
  return { res: res as unknown as Response, sent };
}

/** One registry for the file: collectDefaultMetrics makes each new one cost tens of ms. */
const metrics = createMetrics();

async function errorCount(code: ErrorCode): Promise<number> {
  const counted = await metrics.registry.getSingleMetric('trustee_errors_total')!.get();
  return counted.values.find((v) => v.labels.code === code)?.value ?? 0;
}

/** An error handler whose log lines are kept (pino writes one JSON line per call). */
function handlerWithLog() {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(s) } });
  const handle = errorHandler({ metrics, log } as never);
  const run = (err: unknown, path = '/v1/deposits/k', opts: { headersSent?: boolean } = {}) => {
    const { res, sent } = fakeResponse(opts);
    handle(err, { path, method: 'PUT' } as Request, res, () => undefined);
    return sent;
  };
  return { run, lines };
}

/** What body-parser / raw-body raise: an Error with `type` and `status` (http-errors). */
function httpError(type: string | undefined, status: number, message: string): Error {
  return Object.assign(new Error(message), { type, status, statusCode: status, expose: status < 500 });
}

describe('error handler: body-parser and express failures become stable codes', () => {
  const cases: [string, unknown, ErrorCode, number, string][] = [
    [
      'a body over the size limit',
      httpError('entity.too.large', 413, 'request entity too large'),
      'TOO_LARGE',
      413,
      'request body is too large',
    ],
    [
      'a body that is not JSON',
      httpError('entity.parse.failed', 400, `Unexpected token in JSON at position 0: ${SECRET}`),
      'INVALID_REQUEST',
      400,
      'request body is not a valid JSON object',
    ],
    [
      'an unsupported content encoding',
      httpError('encoding.unsupported', 415, 'unsupported content encoding "br"'),
      'UNSUPPORTED_MEDIA_TYPE',
      415,
      'request body must be UTF-8 JSON',
    ],
    [
      'an unsupported charset',
      httpError('charset.unsupported', 415, 'unsupported charset "LATIN1"'),
      'UNSUPPORTED_MEDIA_TYPE',
      415,
      'request body must be UTF-8 JSON',
    ],
    [
      'a body aborted mid-way',
      httpError('request.aborted', 400, 'request aborted'),
      'INVALID_REQUEST',
      400,
      'request body could not be read',
    ],
    [
      'a body shorter than its Content-Length',
      httpError('request.size.invalid', 400, 'request size did not match content length'),
      'INVALID_REQUEST',
      400,
      'request body could not be read',
    ],
    [
      'a stream whose encoding was already set',
      httpError('stream.encoding.set', 500, 'stream encoding should not be set'),
      'INVALID_REQUEST',
      400,
      'request body could not be read',
    ],
    [
      'a path that is not valid percent-encoding (URIError)',
      new URIError('URI malformed'),
      'INVALID_REQUEST',
      400,
      'request path is not valid percent-encoding',
    ],
    [
      "express' 400 for a parameter it could not decode",
      httpError(undefined, 400, "Failed to decode param '%E0%A4%A'"),
      'INVALID_REQUEST',
      400,
      'request path is not valid percent-encoding',
    ],
    [
      'any other 4xx from a middleware',
      httpError(undefined, 431, `header too large ${SECRET}`),
      'INVALID_REQUEST',
      400,
      'malformed request',
    ],
  ];
  it.each(cases.map(([label, err, code, status, message]) => [label, code, status, message, err] as const))(
    '%s → %s %i',
    (_label, code, status, message, err) => {
      const { run, lines } = handlerWithLog();
      const sent = run(err);
      expect(sent.status).toBe(status);
      expect(sent.body).toEqual({ error: { code, message } });
      expect(sent.headers['Retry-After']).toBeUndefined();
      // A client's bad request is not a server fault: nothing is logged.
      expect(lines).toEqual([]);
    },
  );

  it('answers a 5xx from a middleware without a known type as UNAVAILABLE "internal error", logged once', () => {
    const { run, lines } = handlerWithLog();
    const sent = run(httpError(undefined, 500, `internal ${SECRET}`));
    expect(sent.status).toBe(503);
    expect(sent.body).toEqual({
      error: { code: 'UNAVAILABLE', message: 'internal error; the request was not completed' },
    });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ level: 50, msg: 'request failed', code: 'UNAVAILABLE' });
  });

  it.each([
    ['a TypeError', new TypeError(`cannot read properties of undefined ${SECRET}`)],
    ['a thrown string', SECRET],
    ['a thrown plain object', { message: SECRET }],
  ])('answers %s with no stack and nothing of its text', (_label, err) => {
    const { run } = handlerWithLog();
    const sent = run(err);
    expect(sent.status).toBe(503);
    const body = JSON.stringify(sent.body);
    expect(body).not.toContain(SECRET);
    expect(body).not.toMatch(/stack|\s{4}at /);
    expect(sent.body?.error.code).toBe('UNAVAILABLE');
  });
});

describe('error handler: AppErrors', () => {
  it.each<[ErrorCode, number]>([
    ['INVALID_NAME', 400],
    ['UNAUTHENTICATED', 401],
    ['CLIENT_PENDING', 403],
    ['CLIENT_DISABLED', 403],
    ['INVALID_AUTH_CODE', 403],
    ['VERSION_CONFLICT', 409],
    ['QUOTA_EXCEEDED', 429],
    ['PASSIVE_UNAVAILABLE', 503],
    ['WRITE_IN_DOUBT', 503],
  ])('answers %s with HTTP %i and its own message', (code, status) => {
    const { run } = handlerWithLog();
    const sent = run(new AppError(code, `refused: ${code}`));
    expect(sent.status).toBe(status);
    expect(sent.body).toEqual({ error: { code, message: `refused: ${code}` } });
  });

  it('sends Retry-After only when the error carries it', () => {
    const { run } = handlerWithLog();
    expect(run(new AppError('PASSIVE_UNAVAILABLE', 'x', { retryAfterSec: 1 })).headers['Retry-After']).toBe(
      '1',
    );
    expect(run(new AppError('UNAVAILABLE', 'x', { retryAfterSec: 30 })).headers['Retry-After']).toBe('30');
    expect(run(new AppError('VERSION_CONFLICT', 'x')).headers['Retry-After']).toBeUndefined();
  });

  it('merges details into the body (NOT_ACTIVE names the active)', () => {
    const { run } = handlerWithLog();
    const sent = run(
      new AppError('NOT_ACTIVE', 'this node is passive', { details: { active: 'https://kt01:11371' } }),
    );
    expect(sent.status).toBe(503);
    expect(sent.body).toEqual({
      error: { code: 'NOT_ACTIVE', message: 'this node is passive', active: 'https://kt01:11371' },
    });
  });

  it('logs the expected outage refusals as one warning without the error, other 5xx as an error', () => {
    const { run, lines } = handlerWithLog();
    run(new AppError('NOT_ACTIVE', 'x'));
    run(new AppError('PASSIVE_UNAVAILABLE', 'x'));
    run(new AppError('WRITE_IN_DOUBT', 'x', { cause: new Error(SECRET) }));
    const warnings = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warnings.map((l) => [l.level, l.msg, l.code])).toEqual([
      [40, 'request refused', 'NOT_ACTIVE'],
      [40, 'request refused', 'PASSIVE_UNAVAILABLE'],
      [40, 'request refused', 'WRITE_IN_DOUBT'],
    ]);
    expect(lines.join('')).not.toContain(SECRET);
    run(new AppError('UNAVAILABLE', 'x'));
    expect(JSON.parse(lines[3])).toMatchObject({ level: 50, msg: 'request failed', code: 'UNAVAILABLE' });
    // 4xx refusals are the client's business: not logged.
    run(new AppError('NOT_FOUND', 'x'));
    run(new AppError('RATE_LIMITED', 'x'));
    expect(lines).toHaveLength(4);
  });

  it('sends nothing and counts nothing once the headers are out', async () => {
    const { run } = handlerWithLog();
    const before = await errorCount('UNAVAILABLE');
    const sent = run(new AppError('UNAVAILABLE', 'x'), '/v1/deposits/k', { headersSent: true });
    expect(sent.status).toBeUndefined();
    expect(sent.body).toBeUndefined();
    expect(await errorCount('UNAVAILABLE')).toBe(before);
    run(new AppError('UNAVAILABLE', 'x'));
    expect(await errorCount('UNAVAILABLE')).toBe(before + 1);
  });
});

describe('notFound and methodNotAllowed', () => {
  it('notFound passes NOT_FOUND naming the method and at most 100 characters of the path', () => {
    let passed: unknown;
    const path = `/v1/${'x'.repeat(300)}`;
    notFound({ method: 'GET', path } as Request, {} as Response, (e?: unknown) => void (passed = e));
    expect(passed).toBeInstanceOf(AppError);
    const err = passed as AppError;
    expect(err.code).toBe('NOT_FOUND');
    expect(err.status).toBe(404);
    expect(err.message).toBe(`no such endpoint: GET ${path.slice(0, 100)}`);
  });

  it('methodNotAllowed passes METHOD_NOT_ALLOWED and sets Allow', () => {
    let passed: unknown;
    const { res, sent } = fakeResponse();
    methodNotAllowed(['GET', 'PUT', 'DELETE'])(
      { method: 'PATCH', path: '/v1/deposits/k' } as Request,
      res,
      (e?: unknown) => void (passed = e),
    );
    expect(sent.headers.Allow).toBe('GET, PUT, DELETE');
    const err = passed as AppError;
    expect(err.code).toBe('METHOD_NOT_ALLOWED');
    expect(err.status).toBe(405);
    expect(err.message).toBe('PATCH is not allowed here; use GET or PUT or DELETE');
  });
});
