import { isTrusteeError, type TrusteeError } from './errors';

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

/** Least budget a retried write attempt is started with. */
export const MIN_WRITE_ATTEMPT_MS = 100;

/** Failures after which a read moves on to the next node within the same pass (no backoff). */
export function canFailOver(e: TrusteeError): boolean {
  return e.isNodeFailure || e.isIntegrityFailure || e.code === 'CIRCUIT_OPEN' || e.code === 'RATE_LIMITED';
}

/** What to do after a failed pass. */
export type RetryStep =
  { action: 'stop' } | { action: 'deadline' } | { action: 'retry'; delayMs: number; followsHint: boolean };

export interface RetryDecisionInput {
  error: TrusteeError;
  /** 0 = deciding the first retry. */
  retry: number;
  policy: RetryOptions;
  kind: 'read' | 'write';
  /** What is left of the call's Deadline, ms. */
  remainingMs: number;
  /** The per-attempt timeout, ms. */
  attemptTimeoutMs: number;
  /** A NOT_ACTIVE named another configured node and the previous retry did not follow a hint. */
  hintToFollow: boolean;
  /** The call forbids retrying this error (registration without an Idempotency-Key). */
  vetoed?: boolean;
  random?: () => number;
}

/**
 * The SDK's one retry decision (after go-retryablehttp's CheckRetry + Backoff): stop, give up at
 * the deadline, follow a NOT_ACTIVE hint at once, or retry after a backoff. Pure.
 *
 * A hint is followed at once only once in a row: two passive nodes naming each other (a promotion
 * in progress) must not become a busy loop. A retried write is not started with less than
 * MIN_WRITE_ATTEMPT_MS left: sent and then cut off by the deadline it would only end in doubt.
 */
export function nextRetryStep(input: RetryDecisionInput): RetryStep {
  const { error, retry, policy } = input;
  if (input.vetoed === true || !shouldRetry(error, retry, policy)) return { action: 'stop' };
  const delayMs = input.hintToFollow ? 0 : retryDelayMs(retry, error.retryAfterMs, policy, input.random);
  const floorMs = input.kind === 'write' ? Math.min(input.attemptTimeoutMs, MIN_WRITE_ATTEMPT_MS) : 0;
  if (delayMs + floorMs >= input.remainingMs) return { action: 'deadline' };
  return { action: 'retry', delayMs, followsHint: input.hintToFollow };
}
