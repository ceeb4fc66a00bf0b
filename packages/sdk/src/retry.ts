import { isTrusteeError } from './errors';

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;

/** Retry policy (shape after got's RetryOptions). */
export interface RetryOptions {
  /** Retries after the first try, so total tries = limit + 1. Failing over to the other node within
   *  one pass does not count. NOT_ACTIVE, PASSIVE_UNAVAILABLE and WRITE_IN_DOUBT ignore the limit and
   *  are retried until the call's deadline. Default 4. */
  limit: number;
  /** First backoff step in ms; step n is baseDelayMs * 2^n before jitter. Default 100. */
  baseDelayMs: number;
  /** Cap of one backoff step in ms. Default 2000. */
  backoffLimitMs: number;
  /** 'full': wait a uniform random time in [0, step] (AWS "full jitter"); 'none': wait the step. Default 'full'. */
  jitter: 'full' | 'none';
  /** Cap on an honoured `Retry-After`, in ms. Default 10000. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryOptions = {
  limit: 4,
  baseDelayMs: 100,
  backoffLimitMs: 2 * SECOND,
  jitter: 'full',
  maxRetryAfterMs: 10 * SECOND,
};

/** Codes retried until the deadline whatever `limit` says: the write path says so (DESIGN.md). */
const UNTIL_DEADLINE: ReadonlySet<string> = new Set(['NOT_ACTIVE', 'PASSIVE_UNAVAILABLE', 'WRITE_IN_DOUBT']);

/**
 * Whether to try again after `err` on retry number `attempt` (0 = the first retry).
 * Pure. Never retries aborts, deadlines, TLS trust failures, decrypt/config errors or 4xx other
 * than 408/429: those come out of `err.retryable === false`.
 */
export function shouldRetry(err: unknown, attempt: number, policy: RetryOptions = DEFAULT_RETRY): boolean {
  if (!isTrusteeError(err)) return false;
  // 429 is also QUOTA_EXCEEDED, which waiting does not cure: only RATE_LIMITED is retried.
  if (err.status === 408 || err.code === 'RATE_LIMITED') return attempt < policy.limit;
  if (!err.retryable) return false;
  if (UNTIL_DEADLINE.has(err.code)) return true;
  return attempt < policy.limit;
}

/**
 * How long to wait before retry number `attempt` (0-based): exponential, capped at
 * `backoffLimitMs`, with full jitter; at least the server's `Retry-After` (capped at
 * `maxRetryAfterMs`). Pure apart from `random`, which tests inject.
 */
export function retryDelayMs(
  attempt: number,
  retryAfterMs?: number,
  policy: RetryOptions = DEFAULT_RETRY,
  random: () => number = Math.random,
): number {
  const step = Math.min(policy.backoffLimitMs, policy.baseDelayMs * 2 ** Math.max(0, attempt));
  const backoff = policy.jitter === 'full' ? Math.floor(random() * step) : step;
  if (retryAfterMs === undefined) return backoff;
  return Math.max(backoff, Math.min(Math.max(0, retryAfterMs), policy.maxRetryAfterMs));
}
