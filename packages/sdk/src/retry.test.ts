import { TrusteeError } from './errors';
import { DEFAULT_RETRY, retryDelayMs, shouldRetry } from './retry';

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

describe('shouldRetry', () => {
  const err = (code: ConstructorParameters<typeof TrusteeError>[0], status?: number): TrusteeError =>
    new TrusteeError(code, 'x', { status });

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
