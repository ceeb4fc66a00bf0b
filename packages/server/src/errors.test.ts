import { SERVER_ERROR_STATUS } from '@trustee/sdk';
import { AppError, errorBody, HTTP_STATUS, SQLSTATE, toAppError, type ErrorCode } from './errors';

/**
 * DESIGN.md "Stable error codes (HTTP status)", copied verbatim: the contract this table is
 * checked against (the design document lives outside the repository).
 */
const DESIGN_STABLE_CODES = `INVALID_REQUEST 400, INVALID_NAME 400, TOO_LARGE 413,
UNAUTHENTICATED 401, CLIENT_PENDING 403, CLIENT_DISABLED 403, INVALID_AUTH_CODE 403,
NOT_FOUND 404, METHOD_NOT_ALLOWED 405, UNSUPPORTED_MEDIA_TYPE 415, VERSION_CONFLICT 409,
RATE_LIMITED 429, QUOTA_EXCEEDED 429, NOT_ACTIVE 503, PASSIVE_UNAVAILABLE 503,
WRITE_IN_DOUBT 503, UNAVAILABLE 503`;

const DESIGN_STATUS: [ErrorCode, number][] = DESIGN_STABLE_CODES.split(',').map((entry) => {
  const [code, status] = entry.trim().split(/\s+/);
  return [code as ErrorCode, Number(status)];
});

/** Text a database or network error may carry that no answer may repeat. */
const SECRET = 'Key (name)=(prod-db-password-7f3a)';

/** What node-postgres raises for a server error: an Error with the SQLSTATE in `code`. */
function pgError(code: string, message = 'some server error'): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR', detail: SECRET });
}

/** What Node raises for a socket failure: an Error with the errno name in `code`. */
function netError(code: string): Error {
  return Object.assign(new Error(`connect ${code} /var/run/postgresql/.s.PGSQL.11381 ${SECRET}`), {
    code,
    errno: -1,
    syscall: 'connect',
  });
}

describe('HTTP_STATUS: one status per stable code', () => {
  it('lists exactly the 17 codes of DESIGN.md', () => {
    expect(DESIGN_STATUS).toHaveLength(17);
    expect(Object.keys(HTTP_STATUS).sort()).toEqual(DESIGN_STATUS.map(([c]) => c).sort());
  });

  it.each(DESIGN_STATUS)('%s answers HTTP %i, as DESIGN.md says', (code, status) => {
    expect(HTTP_STATUS[code]).toBe(status);
    expect(new AppError(code, 'x').status).toBe(status);
  });

  it('agrees with the SDK’s table of the same codes, code for code', () => {
    expect(HTTP_STATUS).toEqual({ ...SERVER_ERROR_STATUS });
  });

  it('uses only client-error statuses for refusals of the request itself and 503 for node state', () => {
    for (const [code, status] of Object.entries(HTTP_STATUS)) {
      expect([400, 401, 403, 404, 405, 409, 413, 415, 429, 503]).toContain(status);
      if (status === 503) expect(code).toMatch(/ACTIVE|UNAVAILABLE|IN_DOUBT/);
    }
  });
});

describe('AppError', () => {
  it('carries code, message, cause, details and Retry-After seconds', () => {
    const cause = new Error('underlying');
    const err = new AppError('VERSION_CONFLICT', 'deposit k is at version 3, not 2', {
      cause,
      details: { currentVersion: 3 },
      retryAfterSec: 2,
    });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('AppError');
    expect(err.code).toBe('VERSION_CONFLICT');
    expect(err.status).toBe(409);
    expect(err.message).toBe('deposit k is at version 3, not 2');
    expect(err.cause).toBe(cause);
    expect(err.details).toEqual({ currentVersion: 3 });
    expect(err.retryAfterSec).toBe(2);
  });

  it('has no details, cause or Retry-After unless given', () => {
    const err = new AppError('NOT_FOUND', 'no such deposit');
    expect(err.details).toBeUndefined();
    expect(err.cause).toBeUndefined();
    expect(err.retryAfterSec).toBeUndefined();
  });
});

describe('errorBody', () => {
  it('is {error: {code, message}} with the details merged in', () => {
    expect(errorBody(new AppError('NOT_FOUND', 'no such deposit'))).toEqual({
      error: { code: 'NOT_FOUND', message: 'no such deposit' },
    });
    expect(
      errorBody(
        new AppError('NOT_ACTIVE', 'this node is passive', { details: { active: 'https://kt01:11371' } }),
      ),
    ).toEqual({
      error: { code: 'NOT_ACTIVE', message: 'this node is passive', active: 'https://kt01:11371' },
    });
  });

  it('never carries the cause or a stack', () => {
    const cause = pgError(SQLSTATE.UNIQUE_VIOLATION, `duplicate key ${SECRET}`);
    const body = JSON.stringify(errorBody(toAppError(cause)));
    expect(body).not.toContain(SECRET);
    expect(body).not.toMatch(/stack|cause|\s{4}at /);
  });
});

describe('toAppError: everything thrown becomes a stable code', () => {
  it('returns an AppError unchanged', () => {
    const err = new AppError('VERSION_CONFLICT', 'x');
    expect(toAppError(err)).toBe(err);
  });

  it('maps read_only_sql_transaction (25006: a standby answered) to NOT_ACTIVE, 503', () => {
    const e = pgError(SQLSTATE.READ_ONLY_SQL_TRANSACTION, 'cannot execute INSERT in a read-only transaction');
    const err = toAppError(e);
    expect(err.code).toBe('NOT_ACTIVE');
    expect(err.status).toBe(503);
    expect(err.message).toBe('this node is passive (its database is a read-only standby)');
    expect(err.cause).toBe(e);
  });

  it.each([
    [
      'cannot_connect_now (57P03)',
      pgError(SQLSTATE.CANNOT_CONNECT_NOW, 'the database system is starting up'),
    ],
    [
      'admin_shutdown (57P01)',
      pgError(SQLSTATE.ADMIN_SHUTDOWN, 'terminating connection due to administrator command'),
    ],
    ['ECONNREFUSED', netError('ECONNREFUSED')],
    ['ECONNRESET', netError('ECONNRESET')],
    ['ENOENT (no socket file)', netError('ENOENT')],
    ['ETIMEDOUT', netError('ETIMEDOUT')],
    ['EPIPE', netError('EPIPE')],
    ['node-postgres "Connection terminated unexpectedly"', new Error('Connection terminated unexpectedly')],
    [
      'node-postgres "Connection terminated due to connection timeout"',
      new Error('Connection terminated due to connection timeout'),
    ],
    [
      'node-postgres pool "timeout exceeded when trying to connect"',
      new Error('timeout exceeded when trying to connect'),
    ],
  ])('maps %s to UNAVAILABLE, 503, retry after 1 s, naming the other node', (_label, e) => {
    const err = toAppError(e);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.status).toBe(503);
    expect(err.retryAfterSec).toBe(1);
    expect(err.message).toBe('the database of this node is unavailable; retry on the other node');
    expect(err.cause).toBe(e);
  });

  it('maps lock_not_available (55P03: lock_timeout) to UNAVAILABLE saying nothing was stored', () => {
    const e = pgError(SQLSTATE.LOCK_NOT_AVAILABLE, 'canceling statement due to lock timeout');
    const err = toAppError(e);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.retryAfterSec).toBe(1);
    expect(err.message).toMatch(/nothing was stored, retry/);
    expect(err.cause).toBe(e);
  });

  it.each([
    ['serialization_failure (40001)', SQLSTATE.SERIALIZATION_FAILURE],
    ['deadlock_detected (40P01)', SQLSTATE.DEADLOCK_DETECTED],
  ])('maps %s to a retryable UNAVAILABLE that says nothing was stored', (_label, code) => {
    const e = pgError(code, `could not serialize access ${SECRET}`);
    const err = toAppError(e);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.retryAfterSec).toBe(1);
    expect(err.message).toMatch(/rolled back; nothing was stored, retry/);
    expect(JSON.stringify(errorBody(err))).not.toContain(SECRET);
  });

  it.each([
    ['a plain Error', new Error(`boom ${SECRET}`)],
    ['a TypeError', new TypeError(`x is undefined ${SECRET}`)],
    ['unique_violation (23505)', pgError(SQLSTATE.UNIQUE_VIOLATION, `duplicate key value ${SECRET}`)],
    ['an unknown SQLSTATE', pgError('XX000', `internal_error ${SECRET}`)],
    ['a numeric code', Object.assign(new Error('x'), { code: 57 })],
    ['a string', SECRET],
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['a bare object', { message: SECRET }],
  ])('maps %s to UNAVAILABLE "internal error", keeping it only as the cause', (_label, e) => {
    const err = toAppError(e);
    expect(err).toBeInstanceOf(AppError);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.status).toBe(503);
    expect(err.message).toBe('internal error; the request was not completed');
    expect(err.cause).toBe(e);
    expect(JSON.stringify(errorBody(err))).not.toContain(SECRET);
  });

  it('classifies by code, never by message text (a server error merely mentioning a standby)', () => {
    const e = pgError('42P01', 'relation "read_only_sql_transaction" does not exist; ECONNREFUSED');
    expect(toAppError(e).message).toBe('internal error; the request was not completed');
  });

  it('never repeats the database’s own message or detail in any mapped answer', () => {
    const codes = [...Object.values(SQLSTATE), 'ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'ETIMEDOUT', 'EPIPE'];
    for (const code of codes) {
      const err = toAppError(pgError(code, `failed: ${SECRET}`));
      expect(HTTP_STATUS[err.code]).toBe(err.status);
      expect(err.message).not.toContain(SECRET);
      expect(JSON.stringify(errorBody(err))).not.toContain(SECRET);
    }
  });
});
