/**
 * The change journal's on-disk format, pure (no I/O) so it is unit-tested byte for byte.
 *
 * A segment file `journal-<timeline>-<startLsn>[-<n>].tjl` is a 44-byte header followed by
 * frames. Header: magic `TJL1`, version (1), 3 reserved bytes, timeline (u32), start LSN (u64),
 * a random 16-byte salt and an 8-byte key check. Each segment has its own AES-256-GCM key,
 * HKDF-SHA256(journal key, salt), so the nonce can be the record's index in the segment (never
 * reused: a segment is only ever appended by the process that created it). Frame: u32 length,
 * then ciphertext ‖ 16-byte tag; the header is the additional data of every frame, so a frame
 * moved to another segment, reordered or dropped from the middle fails authentication.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { formatLsn, parseLsn } from '@trustee/replicator';
import { JournalError } from './journal-error';

export const SEGMENT_MAGIC = Buffer.from('TJL1', 'ascii');
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 44;
export const FRAME_PREFIX_BYTES = 4;
export const TAG_BYTES = 16;
/** A frame larger than this is taken for garbage (a transaction this big is refused when written). */
export const MAX_FRAME_BYTES = 1024 * 1024 * 1024;

/** One row change, values in PostgreSQL's text form as pgoutput sent them (never parsed, never lossy). */
export interface JournalChange {
  table: string;
  op: 'insert' | 'update' | 'delete';
  /**
   * insert/update: the new row; delete: the key columns only. `null` is SQL NULL; a column left
   * out was an unchanged TOASTed value (the row keeps what it had).
   */
  row: Record<string, string | null>;
  /** The table's replica identity columns (its primary key). */
  keyColumns: string[];
  /** update only: the old key, when the update changed the key. */
  oldKey?: Record<string, string | null>;
  /** update only: columns whose TOASTed value did not change (not sent, so not in `row`). */
  unchanged?: string[];
}

/** One committed transaction. */
export interface JournalTransaction {
  type: 'tx';
  /** LSN of the commit record (the record's position in the journal). */
  lsn: string;
  /** End of the commit record: what the slot is acknowledged up to. */
  endLsn: string;
  timeline: number;
  /** Commit time, ISO 8601. */
  commitTime: string;
  xid: number;
  changes: JournalChange[];
}

export type GapReason = 'journal-start' | 'slot-missing' | 'slot-invalidated' | 'slot-unusable';

/** Changes between `from` (the last record before it, if any) and `to` are not in the journal. */
export interface JournalGap {
  type: 'gap';
  /** = toLsn/toTimeline: the gap's position in the journal. */
  lsn: string;
  timeline: number;
  fromLsn: string | null;
  fromTimeline: number | null;
  toLsn: string;
  toTimeline: number;
  reason: GapReason;
  /** When the gap was recorded, ISO 8601. */
  at: string;
}

export type JournalRecord = JournalTransaction | JournalGap;

export interface JournalPosition {
  timeline: number;
  lsn: string;
}

/** Journal order: timeline first (a promotion starts a higher one), then LSN. */
export function comparePosition(a: JournalPosition, b: JournalPosition): -1 | 0 | 1 {
  if (a.timeline !== b.timeline) return a.timeline < b.timeline ? -1 : 1;
  const x = parseLsn(a.lsn);
  const y = parseLsn(b.lsn);
  return x < y ? -1 : x > y ? 1 : 0;
}

export interface SegmentHeader {
  timeline: number;
  startLsn: string;
  salt: Buffer;
  keyCheck: Buffer;
}

/** Per-segment AES key and the check value stored in the header. */
export function deriveSegmentKey(journalKey: Buffer, salt: Buffer): { key: Buffer; check: Buffer } {
  const okm = Buffer.from(hkdfSync('sha256', journalKey, salt, 'trustee journal segment v1', 40));
  return { key: okm.subarray(0, 32), check: okm.subarray(32) };
}

export function newSegmentHeader(journalKey: Buffer, timeline: number, startLsn: string): SegmentHeader {
  const salt = randomBytes(16);
  return {
    timeline,
    startLsn: formatLsn(parseLsn(startLsn)),
    salt,
    keyCheck: deriveSegmentKey(journalKey, salt).check,
  };
}

export function encodeSegmentHeader(h: SegmentHeader): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b[4] = SEGMENT_VERSION;
  b.writeUInt32BE(h.timeline, 8);
  b.writeBigUInt64BE(parseLsn(h.startLsn), 12);
  h.salt.copy(b, 20);
  h.keyCheck.copy(b, 36);
  return b;
}

/** Parses a header; `file` names the segment in errors. */
export function decodeSegmentHeader(b: Buffer, file: string): SegmentHeader {
  if (b.length < SEGMENT_HEADER_BYTES || !b.subarray(0, 4).equals(SEGMENT_MAGIC))
    throw new JournalError('JOURNAL_CORRUPT', `${file} is not a journal segment (bad magic)`);
  if (b[4] !== SEGMENT_VERSION)
    throw new JournalError('JOURNAL_CORRUPT', `${file} has unknown journal format version ${b[4]}`);
  return {
    timeline: b.readUInt32BE(8),
    startLsn: formatLsn(b.readBigUInt64BE(12)),
    salt: Buffer.from(b.subarray(20, 36)),
    keyCheck: Buffer.from(b.subarray(36, 44)),
  };
}

/** The segment's AES key; throws JOURNAL_KEY_MISMATCH when `journalKey` did not write it. */
export function segmentKeyFor(journalKey: Buffer, h: SegmentHeader, file: string): Buffer {
  const { key, check } = deriveSegmentKey(journalKey, h.salt);
  if (!timingSafeEqual(check, h.keyCheck))
    throw new JournalError(
      'JOURNAL_KEY_MISMATCH',
      `${file} was written with another key: use the master key of the cluster that wrote the journal`,
    );
  return key;
}

function nonceFor(index: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(index), 4);
  return n;
}

/** Encrypts record number `index` of a segment into a length-prefixed frame. */
export function sealFrame(segmentKey: Buffer, header: Buffer, index: number, record: JournalRecord): Buffer {
  const cipher = createCipheriv('aes-256-gcm', segmentKey, nonceFor(index));
  cipher.setAAD(header);
  const ct = Buffer.concat([
    cipher.update(JSON.stringify(record), 'utf8'),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  if (ct.length > MAX_FRAME_BYTES)
    throw new JournalError(
      'JOURNAL_WRITE_FAILED',
      `a transaction of ${ct.length} bytes exceeds the journal's frame limit`,
    );
  const prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
  prefix.writeUInt32BE(ct.length, 0);
  return Buffer.concat([prefix, ct]);
}

/** Decrypts a frame body (without its length prefix); null when authentication fails. */
export function openFrame(
  segmentKey: Buffer,
  header: Buffer,
  index: number,
  body: Buffer,
): JournalRecord | null {
  if (body.length < TAG_BYTES) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', segmentKey, nonceFor(index));
    d.setAAD(header);
    d.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const pt = Buffer.concat([d.update(body.subarray(0, body.length - TAG_BYTES)), d.final()]);
    return JSON.parse(pt.toString('utf8')) as JournalRecord;
  } catch {
    return null;
  }
}

const SEGMENT_NAME = /^journal-([0-9A-F]{8})-([0-9A-F]{16})(?:-(\d{1,6}))?\.tjl$/;

/** `journal-00000001-000000000167A2B8.tjl` (fixed width; `-n` when that name already exists). */
export function segmentFileName(timeline: number, startLsn: string, n = 0): string {
  const tl = timeline.toString(16).toUpperCase().padStart(8, '0');
  const lsn = parseLsn(startLsn).toString(16).toUpperCase().padStart(16, '0');
  return `journal-${tl}-${lsn}${n ? `-${n}` : ''}.tjl`;
}

export interface SegmentName {
  name: string;
  timeline: number;
  startLsn: string;
  n: number;
}

export function parseSegmentFileName(name: string): SegmentName | undefined {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return undefined;
  return {
    name,
    timeline: parseInt(m[1], 16),
    startLsn: formatLsn(BigInt(`0x${m[2]}`)),
    n: m[3] ? Number(m[3]) : 0,
  };
}

/** Segment names of a directory listing in journal order (other files ignored). */
export function sortSegmentNames(names: string[]): SegmentName[] {
  return names
    .map(parseSegmentFileName)
    .filter((s): s is SegmentName => s !== undefined)
    .sort(
      (a, b) =>
        comparePosition(
          { timeline: a.timeline, lsn: a.startLsn },
          { timeline: b.timeline, lsn: b.startLsn },
        ) || a.n - b.n,
    );
}

/** The journal position of a record (a gap sits where the journal resumed). */
export function positionOf(r: JournalRecord): JournalPosition {
  return { timeline: r.timeline, lsn: r.lsn };
}
