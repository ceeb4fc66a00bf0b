import type { Request, Response } from 'express';
import { AppError } from '../errors';
import { createLogger } from '../logger';
import { createMetrics } from '../metrics';
import { errorHandler } from './error-handler';

/** Just enough of express' Response for the error handler: status, headers, JSON body. */
function fakeResponse(requestId?: string) {
  const sent: {
    status?: number;
    body?: { error: Record<string, unknown> };
    headers: Record<string, string>;
  } = {
    headers: {},
  };
  const res = {
    headersSent: false,
    locals: requestId ? { requestId } : {},
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

async function count(m: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string>) {
  const metric = await m.registry.getSingleMetric(name)!.get();
  return metric.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

describe('error handler', () => {
  test('counts each error answer by code, RATE_LIMITED also by limiter, and echoes the request id', async () => {
    const metrics = createMetrics();
    const handle = errorHandler({ metrics, log: createLogger({ level: 'silent' }) } as never);
    const reg = fakeResponse('abc-1');
    handle(
      new AppError('RATE_LIMITED', 'too many registrations; retry in 3 s', { retryAfterSec: 3 }),
      { path: '/v1/clients/register' } as Request,
      reg.res,
      () => undefined,
    );
    expect(reg.sent.status).toBe(429);
    expect(reg.sent.headers['Retry-After']).toBe('3');
    expect(reg.sent.body?.error).toEqual({
      code: 'RATE_LIMITED',
      message: 'too many registrations; retry in 3 s',
      requestId: 'abc-1',
    });
    const dep = fakeResponse();
    handle(
      new AppError('RATE_LIMITED', 'x'),
      { path: '/v1/deposits/k' } as Request,
      dep.res,
      () => undefined,
    );
    expect(dep.sent.body?.error.requestId).toBeUndefined();
    handle(new AppError('NOT_FOUND', 'x'), { path: '/x' } as Request, fakeResponse().res, () => undefined);

    expect(await count(metrics, 'trustee_errors_total', { code: 'RATE_LIMITED' })).toBe(2);
    expect(await count(metrics, 'trustee_errors_total', { code: 'NOT_FOUND' })).toBe(1);
    expect(await count(metrics, 'trustee_errors_total', { code: 'UNAVAILABLE' })).toBe(0);
    expect(await count(metrics, 'trustee_rate_limit_rejections_total', { limiter: 'registration' })).toBe(1);
    expect(await count(metrics, 'trustee_rate_limit_rejections_total', { limiter: 'requests' })).toBe(1);
  });
});
