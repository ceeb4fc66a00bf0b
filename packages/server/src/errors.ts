import { HsmUnavailableError } from './keys/key-hierarchy';
import type { ServerErrorCode } from '@trustee/sdk';

/** The stable error codes of DESIGN.md — the only codes a client ever sees (the wire type lives in the SDK). */
export type ErrorCode = ServerErrorCode;

/** One mapping table from code to HTTP status. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_REQUEST: 400,
  INVALID_NAME: 400,
  TOO_LARGE: 413,
  UNAUTHENTICATED: 401,
  CLIENT_PENDING: 403,
  CLIENT_DISABLED: 403,
  INVALID_AUTH_CODE: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNSUPPORTED_MEDIA_TYPE: 415,
  VERSION_CONFLICT: 409,
  RATE_LIMITED: 429,
  QUOTA_EXCEEDED: 429,
  NOT_ACTIVE: 503,
  PASSIVE_UNAVAILABLE: 503,
  WRITE_IN_DOUBT: 503,
  UNAVAILABLE: 503,
};

export class AppError extends Error {
  readonly code: ErrorCode;
  /** Extra fields merged into the error body (e.g. `active` for NOT_ACTIVE). Never secrets. */
  readonly details?: Record<string, unknown>;
  /** Seconds for a Retry-After header. */
  readonly retryAfterSec?: number;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown>; retryAfterSec?: number } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = opts.details;
    this.retryAfterSec = opts.retryAfterSec;
  }

  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

/**
 * PostgreSQL SQLSTATEs we classify (https://www.postgresql.org/docs/current/errcodes-appendix.html).
 */
export const SQLSTATE = {
  /** unique_violation: a concurrent insert won the race. */
  UNIQUE_VIOLATION: '23505',
  /** serialization_failure / deadlock_detected: retry the transaction. */
  SERIALIZATION_FAILURE: '40001',
  DEADLOCK_DETECTED: '40P01',
  /** read_only_sql_transaction: we are talking to a standby. */
  READ_ONLY_SQL_TRANSACTION: '25006',
  /** cannot_connect_now: the server is starting up or shutting down. */
  CANNOT_CONNECT_NOW: '57P03',
  /** admin_shutdown: backend terminated (pg_terminate_backend or shutdown). */
  ADMIN_SHUTDOWN: '57P01',
  /** query_canceled. */
  QUERY_CANCELED: '57014',
  /**
   * warning: what a COMMIT reports when its wait for the synchronous standby was cancelled
   * ("canceling wait for synchronous replication …; already committed locally"). Matched by
   * code, never by the severity word, which the server translates (lc_messages).
   */
  WARNING: '01000',
  /** lock_not_available: lock_timeout expired (nothing written; retry). */
  LOCK_NOT_AVAILABLE: '55P03',
} as const;

const UNAVAILABLE_NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'ETIMEDOUT', 'EPIPE']);

/**
 * The HSM could not unwrap a data key (token removed, device error, KEK missing): UNAVAILABLE with
 * the reason code (safe: a CKR_* name or ours), so operators and the SDK see it is the HSM.
 */
export function hsmUnavailable(e: HsmUnavailableError): AppError {
  return new AppError(
    'UNAVAILABLE',
    `the HSM holding this node's key-encryption key is unavailable (${e.reason}); values whose data key is cached still work`,
    { cause: e, details: { reason: 'HSM', hsmReason: e.reason }, retryAfterSec: 1 },
  );
}

/** Normalises anything thrown into an AppError, keeping the original as `cause`. */
export function toAppError(e: unknown): AppError {
  if (e instanceof AppError) return e;
  if (e instanceof HsmUnavailableError) return hsmUnavailable(e);
  const code = (e as { code?: unknown } | null)?.code;
  if (code === SQLSTATE.READ_ONLY_SQL_TRANSACTION) {
    return new AppError('NOT_ACTIVE', 'this node is passive (its database is a read-only standby)', {
      cause: e,
    });
  }
  if (
    typeof code === 'string' &&
    (UNAVAILABLE_NET_CODES.has(code) ||
      code === SQLSTATE.CANNOT_CONNECT_NOW ||
      code === SQLSTATE.ADMIN_SHUTDOWN)
  ) {
    return new AppError('UNAVAILABLE', 'the database of this node is unavailable; retry on the other node', {
      cause: e,
      retryAfterSec: 1,
    });
  }
  if (code === SQLSTATE.SERIALIZATION_FAILURE || code === SQLSTATE.DEADLOCK_DETECTED) {
    // The transaction was rolled back whole: nothing was stored, and the same request retried
    // (same Idempotency-Key) normally succeeds. Say so rather than "internal error".
    return new AppError(
      'UNAVAILABLE',
      'the write conflicted with a concurrent write and was rolled back; nothing was stored, retry',
      { cause: e, retryAfterSec: 1 },
    );
  }
  if (code === SQLSTATE.LOCK_NOT_AVAILABLE) {
    return new AppError(
      'UNAVAILABLE',
      'the write waited too long for a lock held by another write; nothing was stored, retry',
      {
        cause: e,
        retryAfterSec: 1,
      },
    );
  }
  if (
    e instanceof Error &&
    /Connection terminated|timeout exceeded when trying to connect/i.test(e.message)
  ) {
    // node-postgres raises plain Errors (no code) for these client-side conditions.
    return new AppError('UNAVAILABLE', 'the database of this node is unavailable; retry on the other node', {
      cause: e,
      retryAfterSec: 1,
    });
  }
  return new AppError('UNAVAILABLE', 'internal error; the request was not completed', { cause: e });
}

/** Wire body of an error. */
export function errorBody(err: AppError): { error: Record<string, unknown> } {
  return { error: { code: err.code, message: err.message, ...(err.details ?? {}) } };
}
