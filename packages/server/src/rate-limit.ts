import type Redis from 'ioredis';
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import { AppError } from './errors';

export interface RateLimits {
  /** Per client fingerprint, per second. */
  requests: RateLimiterAbstract;
  /** Every registration attempt per address, per 15 minutes (charged, never given back). */
  registrations: RateLimiterAbstract;
  /** Wrong auth codes per (address, org), per 15 minutes (reserved first, handed back unless wrong). */
  registrationFailures: RateLimiterAbstract;
  /** Wrong auth codes per address over all orgs (5× the per-org allowance), per 15 minutes. */
  registrationFailuresByAddress: RateLimiterAbstract;
  /** Unknown or malformed key-page tokens (`/?q=TOKEN`) per address, per 15 minutes. */
  contactTokenFailures: RateLimiterAbstract;
}

/**
 * Wrong key-page tokens allowed per address per 15 minutes. A token is 256 random bits, so this
 * does not protect the tokens (nobody guesses one); it stops a prober from making the server run
 * one lookup per guess forever, and makes such probing visible in the metrics.
 */
export const CONTACT_TOKEN_FAILURES_PER_15_MIN = 20;

/** Shared through Redis when configured (both nodes see the same counters), in memory otherwise. */
export function createRateLimits(opts: {
  perSecond: number;
  registrationFailures: number;
  /** Registration attempts per address per 15 minutes (REGISTRATIONS_PER_15_MIN). */
  registrations: number;
  redis?: Redis;
  /** Wrong-code lockout window, seconds (REGISTRATION_FAILURE_WINDOW_SECONDS); default 900. */
  registrationFailureWindowS?: number;
  /** Prefix of the Redis keys (REDIS_KEY_PREFIX); default `trustee:`. */
  redisKeyPrefix?: string;
}): RateLimits {
  const make = (keyPrefix: string, points: number, duration: number): RateLimiterAbstract =>
    opts.redis
      ? new RateLimiterRedis({
          storeClient: opts.redis,
          keyPrefix: `${opts.redisKeyPrefix ?? 'trustee:'}${keyPrefix}`,
          points,
          duration,
          useRedisPackage: false,
        })
      : new RateLimiterMemory({ keyPrefix, points, duration });
  const failWindowS = opts.registrationFailureWindowS ?? 15 * 60;
  return {
    requests: make('req', opts.perSecond, 1),
    registrations: make('reg-addr', opts.registrations, 15 * 60),
    registrationFailures: make('regfail', opts.registrationFailures, failWindowS),
    registrationFailuresByAddress: make('regfail-addr', opts.registrationFailures * 5, failWindowS),
    contactTokenFailures: make('contact-token-fail', CONTACT_TOKEN_FAILURES_PER_15_MIN, 15 * 60),
  };
}

/** A gate that opens at most once per `ms` (to keep a log line from repeating per request). */
export function everyMs(ms: number, now: () => number = Date.now): { due(): boolean } {
  let last = -Infinity;
  return {
    due() {
      const t = now();
      if (t - last < ms) return false;
      last = t;
      return true;
    },
  };
}

function retryAfter(res: RateLimiterRes): number {
  return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
}

export interface ConsumeOptions {
  /**
   * When the counter store (Redis) fails: false (default) lets the request through rather than
   * lock every client out; true refuses it (UNAVAILABLE) — for registration, whose lockout is a
   * brute-force guard that must not vanish when Redis does.
   */
  failClosed?: boolean;
  /** Called with the store's error (log it, count it); never with a limit hit. */
  onStoreError?: (e: Error) => void;
}

/**
 * Consumes one point. A limit hit rejects with a RateLimiterRes (→ RATE_LIMITED); a Redis
 * failure rejects with an Error (→ let through, or UNAVAILABLE when `failClosed`).
 */
export async function consumeOrThrow(
  limiter: RateLimiterAbstract,
  key: string,
  what: string,
  opts: ConsumeOptions = {},
): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (e) {
    if (e instanceof RateLimiterRes) {
      throw new AppError('RATE_LIMITED', `too many ${what}; retry in ${retryAfter(e)} s`, {
        retryAfterSec: retryAfter(e),
      });
    }
    opts.onStoreError?.(e as Error);
    if (opts.failClosed) {
      throw new AppError(
        'UNAVAILABLE',
        `${what} cannot be counted now (the shared rate-limit store does not answer); retry shortly`,
        { retryAfterSec: 5 },
      );
    }
  }
}

/**
 * Read-only: refuses with RATE_LIMITED when `key` has used its whole allowance (a locked-out
 * address), without charging anything. Lets a node that does not count (the passive, which
 * refuses registrations anyway) give the same lockout answer as the active: the counters are
 * shared through Redis. A store failure passes (the active's counting fails closed).
 */
export async function refuseWhenExhausted(
  limiter: RateLimiterAbstract,
  key: string,
  what: string,
): Promise<void> {
  let res: RateLimiterRes | null;
  try {
    res = await limiter.get(key);
  } catch {
    return;
  }
  if (res && res.consumedPoints >= limiter.points) {
    throw new AppError('RATE_LIMITED', `too many ${what}; retry in ${retryAfter(res)} s`, {
      retryAfterSec: retryAfter(res),
    });
  }
}
