import { AppError } from './errors';
import { consumeOrThrow, createRateLimits, everyMs, refuseWhenExhausted } from './rate-limit';

describe('everyMs', () => {
  it('opens at once, then at most once per period', () => {
    let t = 1_000;
    const gate = everyMs(500, () => t);
    expect(gate.due()).toBe(true);
    expect(gate.due()).toBe(false);
    t += 499;
    expect(gate.due()).toBe(false);
    t += 1;
    expect(gate.due()).toBe(true);
    expect(gate.due()).toBe(false);
  });

  it('measures the period from the last opening, not the last call', () => {
    let t = 0;
    const gate = everyMs(100, () => t);
    expect(gate.due()).toBe(true);
    for (t = 10; t < 100; t += 10) expect(gate.due()).toBe(false);
    expect(gate.due()).toBe(true); // t = 100
  });

  it('keeps separate gates apart', () => {
    const t = 0;
    const a = everyMs(1000, () => t);
    const b = everyMs(1000, () => t);
    expect(a.due()).toBe(true);
    expect(b.due()).toBe(true);
  });
});

describe('consumeOrThrow with the in-memory limits', () => {
  const limits = () => createRateLimits({ perSecond: 3, registrationFailures: 2, registrations: 4 });

  it('lets the allowance through, then answers RATE_LIMITED (429) with a Retry-After of at least 1 s', async () => {
    const { requests } = limits();
    for (let i = 0; i < 3; i++) await consumeOrThrow(requests, 'client-a', 'requests');
    const err = await consumeOrThrow(requests, 'client-a', 'requests').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    const appErr = err as AppError;
    expect(appErr.code).toBe('RATE_LIMITED');
    expect(appErr.status).toBe(429);
    expect(appErr.retryAfterSec).toBe(1);
    expect(appErr.message).toBe('too many requests; retry in 1 s');
  });

  it('counts each key on its own', async () => {
    const { requests } = limits();
    for (let i = 0; i < 3; i++) await consumeOrThrow(requests, 'client-a', 'requests');
    await expect(consumeOrThrow(requests, 'client-b', 'requests')).resolves.toBeUndefined();
    await expect(consumeOrThrow(requests, 'client-a', 'requests')).rejects.toMatchObject({
      code: 'RATE_LIMITED',
    });
  });

  it('gives the registration limits their configured allowances over 15 minutes', async () => {
    const l = limits();
    const allowance = async (limiter: typeof l.requests) => {
      let n = 0;
      for (; n < 100; n++) {
        const ok = await consumeOrThrow(limiter, '192.0.2.7', 'registrations').then(
          () => true,
          () => false,
        );
        if (!ok) break;
      }
      return n;
    };
    expect(await allowance(l.registrations)).toBe(4);
    expect(await allowance(l.registrationFailures)).toBe(2);
    expect(await allowance(l.registrationFailuresByAddress)).toBe(10);
    const err = await consumeOrThrow(l.registrations, '192.0.2.7', 'registrations').catch((e: AppError) => e);
    // The window is 15 minutes: the wait is counted in seconds, well above 1.
    expect((err as AppError).retryAfterSec).toBeGreaterThan(15 * 60 - 5);
    expect((err as AppError).retryAfterSec).toBeLessThanOrEqual(15 * 60);
    expect((err as AppError).message).toMatch(/^too many registrations; retry in \d+ s$/);
  });
});

describe('refuseWhenExhausted (the lockout as any node reads it)', () => {
  it('refuses a key whose allowance is used up, charges nothing, and passes a fresh key', async () => {
    const { registrationFailures } = createRateLimits({
      perSecond: 3,
      registrationFailures: 2,
      registrations: 4,
    });
    await refuseWhenExhausted(registrationFailures, 'addr|org', 'failures');
    await consumeOrThrow(registrationFailures, 'addr|org', 'failures');
    await refuseWhenExhausted(registrationFailures, 'addr|org', 'failures');
    expect((await registrationFailures.get('addr|org'))?.consumedPoints).toBe(1);
    await consumeOrThrow(registrationFailures, 'addr|org', 'failures');
    const err = await refuseWhenExhausted(registrationFailures, 'addr|org', 'failures').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('RATE_LIMITED');
    await refuseWhenExhausted(registrationFailures, 'other|org', 'failures');
  });
});
