import { TrusteeError } from './errors';
import { DEFAULT_RETRY, canFailOver, nextRetryStep, retryDelayMs, shouldRetry } from './retry';

const policy = { ...DEFAULT_RETRY, limit: 2, baseDelayMs: 100, backoffLimitMs: 1000, maxRetryAfterMs: 5000 };

describe('retryDelayMs', () => {
  it('grows exponentially and is capped at backoffLimitMs without jitter', () => {
    const noJitter = { ...policy, jitter: 'none' as const };
    expect([0, 1, 2, 3, 4, 10].map((a) => retryDelayMs(a, undefined, noJitter))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
  });

  it('draws full jitter uniformly below the step', () => {
    expect(retryDelayMs(2, undefined, policy, () => 0)).toBe(0);
    expect(retryDelayMs(2, undefined, policy, () => 0.5)).toBe(200);
    expect(retryDelayMs(2, undefined, policy, () => 0.999)).toBeLessThan(400);
  });

  it('waits at least Retry-After, capped at maxRetryAfterMs', () => {
    expect(retryDelayMs(0, 3000, policy, () => 0.5)).toBe(3000);
    expect(retryDelayMs(0, 60_000, policy, () => 0.5)).toBe(5000);
    expect(retryDelayMs(5, 10, policy, () => 0.9)).toBe(900);
  });
});

const err = (code: ConstructorParameters<typeof TrusteeError>[0], status?: number): TrusteeError =>
  new TrusteeError(code, 'x', { status });

describe('shouldRetry', () => {
  it('retries network errors and 5xx until the limit', () => {
    expect(shouldRetry(err('NETWORK_ERROR'), 0, policy)).toBe(true);
    expect(shouldRetry(err('UNAVAILABLE', 503), 1, policy)).toBe(true);
    expect(shouldRetry(err('NETWORK_ERROR'), 2, policy)).toBe(false);
  });

  it('retries PASSIVE_UNAVAILABLE, WRITE_IN_DOUBT and NOT_ACTIVE regardless of the limit', () => {
    for (const code of ['PASSIVE_UNAVAILABLE', 'WRITE_IN_DOUBT', 'NOT_ACTIVE'] as const) {
      expect(shouldRetry(err(code, 503), 50, policy)).toBe(true);
    }
  });

  it('retries 408 and 429 but no other 4xx', () => {
    expect(shouldRetry(err('RATE_LIMITED', 429), 0, policy)).toBe(true);
    // 429 too, but a full quota does not empty itself by waiting.
    expect(shouldRetry(err('QUOTA_EXCEEDED', 429), 0, policy)).toBe(false);
    expect(shouldRetry(err('SERVER_ERROR', 408), 0, policy)).toBe(true);
    for (const [code, status] of [
      ['NOT_FOUND', 404],
      ['INVALID_NAME', 400],
      ['VERSION_CONFLICT', 409],
      ['UNAUTHENTICATED', 401],
    ] as const) {
      expect(shouldRetry(err(code, status), 0, policy)).toBe(false);
    }
  });

  it('never retries aborts, deadlines, TLS trust failures, decrypt failures or foreign errors', () => {
    for (const code of [
      'ABORTED',
      'DEADLINE_EXCEEDED',
      'TLS_ERROR',
      'DECRYPT_FAILED',
      'CONFIG_INSECURE',
    ] as const) {
      expect(shouldRetry(err(code), 0, policy)).toBe(false);
    }
    expect(shouldRetry(new Error('boom'), 0, policy)).toBe(false);
  });
});

describe('nextRetryStep (the one retry decision)', () => {
  const base = {
    retry: 0,
    policy: { ...policy, jitter: 'none' as const },
    kind: 'read' as const,
    remainingMs: 10_000,
    attemptTimeoutMs: 5000,
    hintToFollow: false,
  };

  it('retries after the backoff, or at once when following a fresh NOT_ACTIVE hint', () => {
    expect(nextRetryStep({ ...base, error: err('UNAVAILABLE', 503) })).toEqual({
      action: 'retry',
      delayMs: 100,
      followsHint: false,
    });
    expect(nextRetryStep({ ...base, error: err('NOT_ACTIVE', 503), hintToFollow: true })).toEqual({
      action: 'retry',
      delayMs: 0,
      followsHint: true,
    });
  });

  it('stops on what retrying cannot fix, on a veto, and after the limit', () => {
    expect(nextRetryStep({ ...base, error: err('NOT_FOUND', 404) })).toEqual({ action: 'stop' });
    expect(nextRetryStep({ ...base, error: err('UNAVAILABLE', 503), vetoed: true })).toEqual({
      action: 'stop',
    });
    expect(nextRetryStep({ ...base, retry: 2, error: err('UNAVAILABLE', 503) })).toEqual({ action: 'stop' });
  });

  it('gives up at the deadline, and does not start a write it could not finish', () => {
    expect(nextRetryStep({ ...base, remainingMs: 100, error: err('UNAVAILABLE', 503) })).toEqual({
      action: 'deadline',
    });
    const write = { ...base, kind: 'write' as const, error: err('PASSIVE_UNAVAILABLE', 503) };
    expect(nextRetryStep({ ...write, remainingMs: 150 })).toEqual({ action: 'deadline' });
    expect(nextRetryStep({ ...write, remainingMs: 250 })).toMatchObject({ action: 'retry', delayMs: 100 });
  });

  it('fails reads over on node failures and integrity errors, not on answers about the request', () => {
    expect(canFailOver(err('UNAVAILABLE', 503))).toBe(true);
    expect(canFailOver(err('NOT_FOUND', 404))).toBe(false);
    const integrity = new TrusteeError('UNAVAILABLE', 'bad row', {
      status: 503,
      details: { reason: 'INTEGRITY' },
    });
    expect(canFailOver(integrity)).toBe(true);
    expect(integrity.isNodeFailure).toBe(false);
  });
});
