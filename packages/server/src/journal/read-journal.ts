import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { JournalError } from './journal-error';
import {
  FRAME_PREFIX_BYTES,
  MAX_FRAME_BYTES,
  SEGMENT_HEADER_BYTES,
  TAG_BYTES,
  decodeSegmentHeader,
  openFrame,
  segmentKeyFor,
  sortSegmentNames,
  type JournalRecord,
  type SegmentHeader,
} from './journal-record';

/** An incomplete last frame (a crash during its write: it was never acknowledged, so the slot re-sent it). */
export interface TruncatedTail {
  file: string;
  /** Where the incomplete frame starts; everything before it is intact. */
  offset: number;
  bytes: number;
}

export interface DecodedSegment {
  /** null when even the header is incomplete (a crash while creating the segment). */
  header: SegmentHeader | null;
  records: JournalRecord[];
  /** Length of the intact prefix (header and whole frames). */
  validBytes: number;
  truncated?: TruncatedTail;
}

function isAllZero(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/**
 * Decodes one segment file's bytes, verifying every frame's GCM tag. An incomplete frame at the
 * end is reported as `truncated`; a complete frame that fails authentication is JOURNAL_CORRUPT.
 */
export function decodeSegment(buf: Buffer, journalKey: Buffer, file: string): DecodedSegment {
  if (buf.length < SEGMENT_HEADER_BYTES)
    return { header: null, records: [], validBytes: 0, truncated: { file, offset: 0, bytes: buf.length } };
  const headerBytes = buf.subarray(0, SEGMENT_HEADER_BYTES);
  const header = decodeSegmentHeader(headerBytes, file);
  const key = segmentKeyFor(journalKey, header, file);
  const records: JournalRecord[] = [];
  let offset = SEGMENT_HEADER_BYTES;
  const truncatedAt = (at: number): DecodedSegment => ({
    header,
    records,
    validBytes: at,
    truncated: { file, offset: at, bytes: buf.length - at },
  });
  for (let index = 0; offset < buf.length; index++) {
    if (buf.length - offset < FRAME_PREFIX_BYTES) return truncatedAt(offset);
    const length = buf.readUInt32BE(offset);
    // A file extended by the crash but never written (zeros to the end) is a torn tail too.
    if (length === 0 && isAllZero(buf.subarray(offset))) return truncatedAt(offset);
    if (length < TAG_BYTES || length > MAX_FRAME_BYTES)
      throw new JournalError(
        'JOURNAL_CORRUPT',
        `${file}: record ${index} at byte ${offset} has an impossible length ${length}`,
      );
    const end = offset + FRAME_PREFIX_BYTES + length;
    if (end > buf.length) return truncatedAt(offset);
    const record = openFrame(key, headerBytes, index, buf.subarray(offset + FRAME_PREFIX_BYTES, end));
    if (!record)
      throw new JournalError(
        'JOURNAL_CORRUPT',
        `${file}: record ${index} at byte ${offset} fails authentication (altered, reordered or damaged)`,
      );
    records.push(record);
    offset = end;
  }
  return { header, records, validBytes: offset };
}

/** Segment file names of `dir` in journal order. */
export async function listSegments(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new JournalError('JOURNAL_INVALID', `journal directory ${dir} does not exist`);
    throw e;
  }
  return sortSegmentNames(names).map((s) => s.name);
}

export interface ReadJournalOptions {
  /** Called for each segment that ends in an incomplete frame (ignored: never acknowledged). */
  onTruncatedTail?: (t: TruncatedTail) => void;
}

/**
 * Every record of the journal in `dir`, in journal order (segments by timeline and start LSN,
 * frames in file order), each verified. Duplicates are possible (a record re-sent after a crash
 * before its acknowledgement); consumers skip records at or before the last one they applied.
 */
export async function* readJournal(
  dir: string,
  journalKey: Buffer,
  opts: ReadJournalOptions = {},
): AsyncGenerator<JournalRecord> {
  for (const name of await listSegments(dir)) {
    const seg = decodeSegment(await readFile(join(dir, name)), journalKey, name);
    if (seg.truncated) opts.onTruncatedTail?.(seg.truncated);
    yield* seg.records;
  }
}

/** The newest record in `dir` (undefined for an empty journal). */
export async function readLastRecord(dir: string, journalKey: Buffer): Promise<JournalRecord | undefined> {
  const names = await listSegments(dir);
  for (let i = names.length - 1; i >= 0; i--) {
    const seg = decodeSegment(await readFile(join(dir, names[i])), journalKey, names[i]);
    if (seg.records.length) return seg.records[seg.records.length - 1];
  }
  return undefined;
}
