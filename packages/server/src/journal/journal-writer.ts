import { chmod, mkdir, open, readFile, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { JournalError } from './journal-error';
import {
  encodeSegmentHeader,
  newSegmentHeader,
  positionOf,
  sealFrame,
  segmentFileName,
  segmentKeyFor,
  type JournalRecord,
} from './journal-record';
import { decodeSegment, listSegments, type TruncatedTail } from './read-journal';

/** Segments rotate once they reach this size (the WAL segment size, a familiar unit). */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

/** Creates the journal directory (0700) if needed and tightens its mode. */
export async function prepareJournalDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** fsync of the directory: a new segment's name must be durable before its records are acknowledged. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Cuts an incomplete last frame off the newest segment (a crash mid-write; that record was never
 * acknowledged and comes again from the slot), or removes a segment whose header is incomplete.
 * Segments are never appended to after a restart, so this keeps torn frames out of the middle.
 */
export async function repairJournalTail(dir: string, journalKey: Buffer): Promise<TruncatedTail | undefined> {
  const names = await listSegments(dir);
  const last = names[names.length - 1];
  if (!last) return undefined;
  const file = join(dir, last);
  const seg = decodeSegment(await readFile(file), journalKey, last);
  if (!seg.truncated) return undefined;
  if (seg.header === null) await unlink(file);
  else await truncate(file, seg.validBytes);
  await syncDir(dir);
  return seg.truncated;
}

export interface JournalWriter {
  /** Appends the records in order and makes them durable (fdatasync) before resolving. */
  append(records: JournalRecord[]): Promise<void>;
  /** The open segment's file name (undefined before the first record). */
  currentSegment(): string | undefined;
  close(): Promise<void>;
}

interface OpenSegment {
  name: string;
  fh: FileHandle;
  header: Buffer;
  key: Buffer;
  index: number;
  bytes: number;
}

/**
 * Appends records to segments of `dir`: a new segment for each writer (named after its first
 * record's position) and whenever one reaches `segmentBytes`. Files are created 0600 with
 * O_EXCL. A failed write closes the segment: its torn frame stays at that segment's end.
 */
export function createJournalWriter(opts: {
  dir: string;
  journalKey: Buffer;
  segmentBytes?: number;
}): JournalWriter {
  const limit = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  let seg: OpenSegment | undefined;

  async function openSegment(first: JournalRecord): Promise<OpenSegment> {
    const pos = positionOf(first);
    const h = newSegmentHeader(opts.journalKey, pos.timeline, pos.lsn);
    const header = encodeSegmentHeader(h);
    for (let n = 0; n < 1000; n++) {
      const name = segmentFileName(pos.timeline, pos.lsn, n);
      try {
        const fh = await open(join(opts.dir, name), 'wx', 0o600);
        return { name, fh, header, key: segmentKeyFor(opts.journalKey, h, name), index: 0, bytes: 0 };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    throw new JournalError(
      'JOURNAL_WRITE_FAILED',
      `too many journal segments named for ${pos.lsn} in ${opts.dir}`,
    );
  }

  async function closeSegment(): Promise<void> {
    const s = seg;
    seg = undefined;
    await s?.fh.close().catch(() => undefined);
  }

  async function append(records: JournalRecord[]): Promise<void> {
    let created = false;
    const chunks: Buffer[] = [];
    const flush = async () => {
      if (!seg || !chunks.length) return;
      const data = Buffer.concat(chunks.splice(0));
      try {
        await seg.fh.write(data);
        await seg.fh.datasync();
        if (created) await syncDir(opts.dir);
        seg.bytes += data.length;
      } catch (e) {
        await closeSegment();
        throw new JournalError(
          'JOURNAL_WRITE_FAILED',
          `could not write the journal in ${opts.dir}: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
    };
    for (const r of records) {
      if (seg && seg.bytes + chunks.reduce((n, c) => n + c.length, 0) >= limit) {
        await flush();
        await closeSegment();
      }
      if (!seg) {
        seg = await openSegment(r);
        created = true;
        chunks.push(seg.header);
      }
      chunks.push(sealFrame(seg.key, seg.header, seg.index++, r));
    }
    await flush();
  }

  return {
    append,
    currentSegment: () => seg?.name,
    close: closeSegment,
  };
}
