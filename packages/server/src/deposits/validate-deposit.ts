import { AppError } from '../errors';

/** ASCII only: start [A-Za-z0-9], then [A-Za-z0-9._-]; at most 255 characters (DESIGN.md). */
export const DEPOSIT_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,200}$/;
export const MAX_METADATA_BYTES = 8 * 1024;
/**
 * Metadata nests at most this deep: JSON.stringify and JSON.parse recurse, and a few thousand
 * levels overflow the stack (found by the request fuzzer: a PUT answered 503 "internal error";
 * a stored value near the limit could also fail every later GET). Far beyond any real use;
 * deeper is TOO_LARGE, like metadata over MAX_METADATA_BYTES.
 */
export const MAX_METADATA_DEPTH = 256;

/** True when a parsed JSON value nests deeper than `max` levels; iterative, never recurses. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const pending: [unknown, number][] = [[value, 1]];
  for (let item = pending.pop(); item; item = pending.pop()) {
    const [v, depth] = item;
    if (depth > max) return true;
    for (const child of Object.values(v as object)) {
      if (typeof child === 'object' && child !== null) pending.push([child, depth + 1]);
    }
  }
  return false;
}

export function validateDepositName(name: unknown): string {
  if (typeof name !== 'string' || !DEPOSIT_NAME_RE.test(name)) {
    throw new AppError(
      'INVALID_NAME',
      'deposit names are 1-255 ASCII characters: a letter or digit, then letters, digits, ".", "_" or "-"',
    );
  }
  return name;
}

export interface PutBody {
  value: Buffer;
  metadata: Record<string, unknown> | null;
}

/** Validates a PUT body: `{value: base64, metadata?: object}` with the size limit on the decoded value. */
/** At most 5 names of at most 40 characters each, JSON-quoted: an error never echoes a body. */
function describeFields(names: string[]): string {
  const shown = names.slice(0, 5).map((n) => JSON.stringify(n.length > 40 ? `${n.slice(0, 40)}…` : n));
  return names.length > 5 ? `${shown.join(', ')} and ${names.length - 5} more` : shown.join(', ');
}

export function validatePutBody(body: unknown, maxValueBytes: number): PutBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError(
      'INVALID_REQUEST',
      'body must be a JSON object {"value": "<base64>", "metadata": {...}}',
    );
  }
  const { value, metadata, ...rest } = body as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length)
    throw new AppError('INVALID_REQUEST', `unknown field(s) in body: ${describeFields(extra)}`);
  if (typeof value !== 'string' || !BASE64_RE.test(value)) {
    throw new AppError('INVALID_REQUEST', '"value" must be a base64 string');
  }
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length > maxValueBytes) {
    throw new AppError('TOO_LARGE', `value is ${bytes.length} bytes; the limit is ${maxValueBytes} bytes`);
  }
  if (
    metadata !== undefined &&
    metadata !== null &&
    (typeof metadata !== 'object' || Array.isArray(metadata))
  ) {
    throw new AppError('INVALID_REQUEST', '"metadata" must be a JSON object');
  }
  const meta = (metadata ?? null) as Record<string, unknown> | null;
  if (
    meta &&
    (nestsDeeperThan(meta, MAX_METADATA_DEPTH) ||
      Buffer.byteLength(JSON.stringify(meta)) > MAX_METADATA_BYTES)
  ) {
    throw new AppError('TOO_LARGE', `metadata exceeds ${MAX_METADATA_BYTES} bytes`);
  }
  return { value: bytes, metadata: meta };
}

export function validateIdempotencyKey(header: unknown): string | null {
  if (header === undefined) return null;
  if (typeof header !== 'string' || !IDEMPOTENCY_KEY_RE.test(header)) {
    throw new AppError('INVALID_REQUEST', 'Idempotency-Key must be 1-200 printable ASCII characters');
  }
  return header;
}

/** `If-Match: <version>` (quotes tolerated, as for an ETag). 0 means "must not exist yet". */
export function validateIfMatch(header: unknown): number | null {
  if (header === undefined) return null;
  const m = typeof header === 'string' ? /^\s*(?:(\d{1,9})|"(\d{1,9})")\s*$/.exec(header) : null;
  if (!m) throw new AppError('INVALID_REQUEST', 'If-Match must be a deposit version number');
  return Number(m[1] ?? m[2]);
}

export function validateVersionParam(v: unknown): number | null {
  if (v === undefined) return null;
  if (typeof v !== 'string' || !/^[1-9]\d{0,8}$/.test(v)) {
    throw new AppError('INVALID_REQUEST', 'version must be a positive integer');
  }
  return Number(v);
}

/** DELETE's query: only `destroy=true|false` (anything else is refused, so a typo never passes for a tombstone). */
export function validateDeleteQuery(q: Record<string, unknown>): { destroy: boolean } {
  const extra = Object.keys(q).filter((k) => k !== 'destroy');
  if (extra.length) {
    throw new AppError('INVALID_REQUEST', `unknown query parameter(s): ${extra.slice(0, 5).join(', ')}`);
  }
  if (q.destroy === undefined || q.destroy === 'false') return { destroy: false };
  if (q.destroy === 'true') return { destroy: true };
  throw new AppError('INVALID_REQUEST', 'destroy must be true or false');
}

export interface ListParams {
  prefix: string;
  limit: number;
  after: string;
}

export function validateListParams(q: Record<string, unknown>): ListParams {
  const prefix = q.prefix ?? '';
  if (typeof prefix !== 'string' || (prefix !== '' && !/^[A-Za-z0-9._-]{1,255}$/.test(prefix))) {
    throw new AppError('INVALID_REQUEST', 'prefix may only hold letters, digits, ".", "_" and "-"');
  }
  const limitRaw = q.limit ?? '100';
  if (
    typeof limitRaw !== 'string' ||
    !/^\d{1,4}$/.test(limitRaw) ||
    Number(limitRaw) < 1 ||
    Number(limitRaw) > 1000
  ) {
    throw new AppError('INVALID_REQUEST', 'limit must be an integer between 1 and 1000');
  }
  let after = '';
  if (q.cursor !== undefined && q.cursor !== '') {
    if (typeof q.cursor !== 'string') throw new AppError('INVALID_REQUEST', 'invalid cursor');
    after = Buffer.from(q.cursor, 'base64url').toString('utf8');
    if (!DEPOSIT_NAME_RE.test(after)) throw new AppError('INVALID_REQUEST', 'invalid cursor');
  }
  return { prefix, limit: Number(limitRaw), after };
}

export function encodeCursor(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64url');
}
