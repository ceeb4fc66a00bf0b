/**
 * Typed errors of the SDK. One closed union of codes: the server's wire codes (DESIGN.md) plus the
 * few the SDK raises itself. Every failure a caller sees is a `TrusteeError`.
 */

/**
 * The server's wire codes (DESIGN.md "Stable error codes") with their HTTP status: the one table.
 * The server answers with these statuses and the SDK recognises these codes; both read it here.
 */
export const SERVER_ERROR_STATUS = {
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
} as const;

/** Codes the server sends in `{ error: { code } }`. */
export type ServerErrorCode = keyof typeof SERVER_ERROR_STATUS;

/** Codes only the SDK raises. */
export type SdkErrorCode =
  /** Connection refused/reset, DNS failure, socket hang-up: the node did not answer. */
  | 'NETWORK_ERROR'
  /** One attempt exceeded `timeoutMs`. */
  | 'TIMEOUT'
  /** The whole call exceeded `deadlineMs`. */
  | 'DEADLINE_EXCEEDED'
  /** The caller's AbortSignal fired. */
  | 'ABORTED'
  /** The server's TLS certificate is not trusted (wrong `ca`, expired, name mismatch). */
  | 'TLS_ERROR'
  /** The node's circuit breaker is open after repeated failures. */
  | 'CIRCUIT_OPEN'
  /** A 5xx answer without a known error code (proxy error, crash page). */
  | 'SERVER_ERROR'
  /** The server answered something this SDK cannot understand. */
  | 'PROTOCOL_ERROR'
  /** An envelope failed authentication or the value is not in a readable format. */
  | 'DECRYPT_FAILED'
  /** The config file is readable or writable by group/others. */
  | 'CONFIG_INSECURE'
  /** The config file or the options are missing something or malformed. */
  | 'CONFIG_INVALID'
  /** A caller-supplied argument is unusable (not a name problem). */
  | 'INVALID_ARGUMENT';

export type ErrorCode = ServerErrorCode | SdkErrorCode;

const SERVER_CODES: ReadonlySet<string> = new Set(Object.keys(SERVER_ERROR_STATUS));

/**
 * Codes where trying again can succeed. NOT_ACTIVE / PASSIVE_UNAVAILABLE / WRITE_IN_DOUBT are
 * safe to retry because every write carries an Idempotency-Key (DESIGN.md "Write path").
 */
const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'NETWORK_ERROR',
  'TIMEOUT',
  'CIRCUIT_OPEN',
  'SERVER_ERROR',
  'UNAVAILABLE',
  'RATE_LIMITED',
  'NOT_ACTIVE',
  'PASSIVE_UNAVAILABLE',
  'WRITE_IN_DOUBT',
]);

/** Codes meaning "this node is unhealthy": they trip its circuit breaker and make reads fail over. */
const NODE_FAILURE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'NETWORK_ERROR',
  'TIMEOUT',
  'SERVER_ERROR',
  'UNAVAILABLE',
]);

/**
 * Node.js / OpenSSL error codes meaning the peer's certificate was not trusted. Retrying them
 * would only repeat the same verdict, so they are never retried.
 * @see https://nodejs.org/api/tls.html#x509-certificate-error-codes
 */
const TLS_TRUST_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_CERT_ALTNAME_FORMAT',
  'ERR_TRUSTEE_PINNED_CERT',
]);

/** `details.reason` of the server's UNAVAILABLE for a stored value that failed its integrity check. */
export const INTEGRITY_REASON = 'INTEGRITY';

export interface TrusteeErrorOptions {
  /** URL of the node that produced the error, when one did. */
  node?: string;
  /** HTTP status, when the error came from an HTTP answer. */
  status?: number;
  /** Parsed `Retry-After`, in milliseconds. */
  retryAfterMs?: number;
  /** Extra fields from the wire body (e.g. `active` of NOT_ACTIVE) or SDK context. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class TrusteeError extends Error {
  override readonly name = 'TrusteeError';
  readonly code: ErrorCode;
  /** True when the same call may succeed if tried again. */
  readonly retryable: boolean;
  readonly node?: string;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: TrusteeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.node = options.node;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.details = options.details ?? {};
    // The same row answers the same way on another try; only the other node may hold a good copy.
    this.retryable = RETRYABLE_CODES.has(code) && !this.isIntegrityFailure;
  }

  /** True when the error says the node itself is unhealthy (not the request). */
  get isNodeFailure(): boolean {
    return NODE_FAILURE_CODES.has(this.code) && !this.isIntegrityFailure;
  }

  /**
   * True when the node answered that one stored value failed its integrity check (a tampered
   * row, `details.reason` INTEGRITY): the node is healthy, so its breaker does not count it,
   * and a read moves on to the other node.
   */
  get isIntegrityFailure(): boolean {
    return this.code === 'UNAVAILABLE' && this.details.reason === INTEGRITY_REASON;
  }
}

export function isTrusteeError(e: unknown): e is TrusteeError {
  return e instanceof TrusteeError;
}

/** Fallback code for an HTTP error answer whose body carries no code we know. */
function codeForStatus(status: number): ErrorCode {
  if (status === 400) return 'INVALID_REQUEST';
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 405) return 'METHOD_NOT_ALLOWED';
  if (status === 409) return 'VERSION_CONFLICT';
  if (status === 413) return 'TOO_LARGE';
  if (status === 415) return 'UNSUPPORTED_MEDIA_TYPE';
  if (status === 429) return 'RATE_LIMITED';
  if (status === 503) return 'UNAVAILABLE';
  if (status === 408 || status >= 500) return 'SERVER_ERROR';
  return 'PROTOCOL_ERROR';
}

/**
 * `Retry-After` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3).
 * @returns milliseconds to wait, or undefined when absent/unparseable.
 */
export function parseRetryAfter(value: string | undefined, nowMs = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const dateMs = Date.parse(value);
  return Number.isNaN(dateMs) ? undefined : Math.max(0, dateMs - nowMs);
}

interface WireErrorBody {
  code: string;
  message?: unknown;
  [extra: string]: unknown;
}

function extractWireError(body: string): WireErrorBody | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const error = (parsed as { error?: unknown }).error;
    if (typeof error !== 'object' || error === null) return undefined;
    return typeof (error as { code?: unknown }).code === 'string' ? (error as WireErrorBody) : undefined;
  } catch {
    return undefined;
  }
}

/** Turns a non-2xx HTTP answer into a TrusteeError, keeping the wire body's extra fields. */
export function errorFromResponse(
  status: number,
  body: string,
  node: string,
  retryAfterHeader?: string,
): TrusteeError {
  const wire = extractWireError(body);
  const retryAfterMs = parseRetryAfter(retryAfterHeader);
  if (wire === undefined) {
    return new TrusteeError(codeForStatus(status), `HTTP ${status} from ${node} without an error body`, {
      node,
      status,
      retryAfterMs,
    });
  }
  const { code, message, ...extra } = wire;
  const known = SERVER_CODES.has(code);
  const details = known ? extra : { ...extra, serverCode: code };
  const text = typeof message === 'string' ? message : `HTTP ${status}`;
  return new TrusteeError(known ? (code as ServerErrorCode) : codeForStatus(status), text, {
    node,
    status,
    retryAfterMs,
    details,
  });
}

/** Normalises anything thrown by the transport into a TrusteeError, keeping `cause`. */
export function toTrusteeError(e: unknown, node?: string): TrusteeError {
  if (e instanceof TrusteeError) return e;
  const sysCode = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  const message = e instanceof Error ? e.message : String(e);
  if (typeof sysCode === 'string' && TLS_TRUST_CODES.has(sysCode)) {
    return new TrusteeError('TLS_ERROR', `TLS certificate of ${node ?? 'server'} not trusted: ${message}`, {
      node,
      cause: e,
      details: { sysCode },
    });
  }
  const where = node === undefined ? '' : ` to ${node}`;
  return new TrusteeError('NETWORK_ERROR', `request${where} failed: ${message}`, {
    node,
    cause: e,
    details: typeof sysCode === 'string' ? { sysCode } : {},
  });
}
