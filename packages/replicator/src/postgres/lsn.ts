/**
 * PostgreSQL WAL positions (`pg_lsn`, text form `XXXXXXXX/XXXXXXXX`): two 32-bit hex halves of
 * one 64-bit byte offset. Parsed to bigint so no precision is lost past 2^53.
 * @see https://www.postgresql.org/docs/current/datatype-pg-lsn.html
 */
import { ReplicatorError } from '../errors';

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses `16/B374D848` into its byte position. Throws INVALID_ARGUMENT on anything else. */
export function parseLsn(text: string): bigint {
  const m = LSN_PATTERN.exec(text.trim());
  if (!m)
    throw new ReplicatorError(
      'INVALID_ARGUMENT',
      `not a PostgreSQL LSN: "${text}" (expected e.g. 16/B374D848)`,
    );
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** Formats a byte position the way PostgreSQL prints it (upper-case hex, no padding). */
export function formatLsn(pos: bigint): string {
  if (pos < 0n || pos > 0xffff_ffff_ffff_ffffn)
    throw new ReplicatorError('INVALID_ARGUMENT', `LSN out of range: ${pos}`);
  return `${(pos >> 32n).toString(16).toUpperCase()}/${(pos & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** -1, 0 or 1 as `a` is before, equal to or after `b`. */
export function compareLsn(a: string, b: string): -1 | 0 | 1 {
  const x = parseLsn(a);
  const y = parseLsn(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Bytes from `b` to `a` (`pg_wal_lsn_diff(a, b)`); negative when `a` is behind `b`. */
export function lsnDiffBytes(a: string, b: string): number {
  return Number(parseLsn(a) - parseLsn(b));
}
