import { randomBytes } from 'node:crypto';
import { JournalError } from './journal-error';
import {
  SEGMENT_HEADER_BYTES,
  comparePosition,
  decodeSegmentHeader,
  encodeSegmentHeader,
  newSegmentHeader,
  openFrame,
  parseSegmentFileName,
  sealFrame,
  segmentFileName,
  segmentKeyFor,
  sortSegmentNames,
  type JournalRecord,
} from './journal-record';
import { decodeSegment } from './read-journal';

const key = randomBytes(32);

function tx(lsn: string, name = 'k1'): JournalRecord {
  return {
    type: 'tx',
    lsn,
    endLsn: lsn,
    timeline: 1,
    commitTime: '2026-12-04T10:00:00.000Z',
    xid: 1000,
    changes: [
      {
        table: 'deposits',
        op: 'insert',
        row: { id: '7', name, sealed_value: '\\x0102', metadata: null },
        keyColumns: ['id'],
      },
    ],
  };
}

/** A whole segment: header then one frame per record. */
function segment(records: JournalRecord[], journalKey = key): Buffer {
  const h = newSegmentHeader(journalKey, 1, records[0].lsn);
  const header = encodeSegmentHeader(h);
  const k = segmentKeyFor(journalKey, h, 'test');
  return Buffer.concat([header, ...records.map((r, i) => sealFrame(k, header, i, r))]);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as JournalError).code;
  }
  return undefined;
}

describe('journal record format', () => {
  it('round-trips a header and derives the same segment key from it', () => {
    const h = newSegmentHeader(key, 3, '16/B374D848');
    const bytes = encodeSegmentHeader(h);
    expect(bytes.length).toBe(SEGMENT_HEADER_BYTES);
    expect(bytes.subarray(0, 4).toString('ascii')).toBe('TJL1');
    const back = decodeSegmentHeader(bytes, 'f');
    expect(back).toEqual({ timeline: 3, startLsn: '16/B374D848', salt: h.salt, keyCheck: h.keyCheck });
    expect(segmentKeyFor(key, back, 'f')).toEqual(segmentKeyFor(key, h, 'f'));
  });

  it('refuses a segment written with another key before reading any record', () => {
    const h = newSegmentHeader(key, 1, '0/10');
    expect(codeOf(() => segmentKeyFor(randomBytes(32), h, 'f'))).toBe('JOURNAL_KEY_MISMATCH');
  });

  it('refuses a file that is not a segment', () => {
    expect(codeOf(() => decodeSegmentHeader(Buffer.alloc(SEGMENT_HEADER_BYTES), 'f'))).toBe(
      'JOURNAL_CORRUPT',
    );
  });

  it('opens a sealed frame, and only with the same index and header', () => {
    const h = newSegmentHeader(key, 1, '0/10');
    const header = encodeSegmentHeader(h);
    const k = segmentKeyFor(key, h, 'f');
    const frame = sealFrame(k, header, 5, tx('0/10'));
    expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
    const body = frame.subarray(4);
    expect(openFrame(k, header, 5, body)).toEqual(tx('0/10'));
    expect(openFrame(k, header, 4, body)).toBeNull();
    const other = encodeSegmentHeader(newSegmentHeader(key, 1, '0/10'));
    expect(openFrame(k, other, 5, body)).toBeNull();
    const flipped = Buffer.from(body);
    flipped[3] ^= 1;
    expect(openFrame(k, header, 5, flipped)).toBeNull();
  });

  it('holds no plaintext of names or values', () => {
    const bytes = segment([tx('0/10', 'very-secret-deposit-name')]);
    expect(bytes.includes('very-secret-deposit-name')).toBe(false);
    expect(bytes.includes('deposits')).toBe(false);
    expect(bytes.includes('\\x0102')).toBe(false);
  });

  it('names segments with fixed-width hex and sorts them by timeline, LSN, then suffix', () => {
    expect(segmentFileName(1, '0/167A2B8')).toBe('journal-00000001-000000000167A2B8.tjl');
    expect(segmentFileName(2, '16/B374D848', 1)).toBe('journal-00000002-00000016B374D848-1.tjl');
    expect(parseSegmentFileName('journal-00000002-00000016B374D848-1.tjl')).toEqual({
      name: 'journal-00000002-00000016B374D848-1.tjl',
      timeline: 2,
      startLsn: '16/B374D848',
      n: 1,
    });
    expect(parseSegmentFileName('gap.json')).toBeUndefined();
    const names = [
      segmentFileName(2, '0/100'),
      segmentFileName(1, '0/200', 1),
      'last-backup.json',
      segmentFileName(1, '0/200'),
      segmentFileName(1, '0/FF'),
    ];
    expect(sortSegmentNames(names).map((s) => s.name)).toEqual([
      segmentFileName(1, '0/FF'),
      segmentFileName(1, '0/200'),
      segmentFileName(1, '0/200', 1),
      segmentFileName(2, '0/100'),
    ]);
  });

  it('orders positions by timeline first, then LSN', () => {
    expect(comparePosition({ timeline: 1, lsn: '1/0' }, { timeline: 2, lsn: '0/10' })).toBe(-1);
    expect(comparePosition({ timeline: 2, lsn: '0/20' }, { timeline: 2, lsn: '0/10' })).toBe(1);
    expect(comparePosition({ timeline: 2, lsn: '0/0010' }, { timeline: 2, lsn: '0/10' })).toBe(0);
  });
});

describe('decodeSegment', () => {
  const records = [tx('0/10', 'a'), tx('0/20', 'b'), tx('0/30', 'c')];

  it('reads every record of an intact segment', () => {
    const seg = decodeSegment(segment(records), key, 'f');
    expect(seg.records).toEqual(records);
    expect(seg.truncated).toBeUndefined();
  });

  it('reports, and ignores, a last frame cut at any byte (a crash while writing it)', () => {
    const whole = segment(records);
    const lastStart = segment(records.slice(0, 2)).length;
    for (let cut = lastStart + 1; cut < whole.length; cut++) {
      const seg = decodeSegment(whole.subarray(0, cut), key, 'f');
      expect(seg.records).toEqual(records.slice(0, 2));
      expect(seg.truncated).toEqual({ file: 'f', offset: lastStart, bytes: cut - lastStart });
      expect(seg.validBytes).toBe(lastStart);
    }
  });

  it('treats a zero-filled tail and an incomplete header as torn, not corrupt', () => {
    const whole = Buffer.concat([segment(records), Buffer.alloc(100)]);
    expect(decodeSegment(whole, key, 'f').records).toHaveLength(3);
    expect(decodeSegment(whole, key, 'f').truncated?.bytes).toBe(100);
    const torn = decodeSegment(segment(records).subarray(0, 20), key, 'f');
    expect(torn).toMatchObject({ header: null, records: [], truncated: { offset: 0, bytes: 20 } });
  });

  it('fails on a damaged record in the middle', () => {
    const bytes = segment(records);
    bytes[SEGMENT_HEADER_BYTES + 10] ^= 0xff;
    expect(codeOf(() => decodeSegment(bytes, key, 'f'))).toBe('JOURNAL_CORRUPT');
  });

  it('fails when a record is removed from the middle (indexes no longer match)', () => {
    const full = segment(records);
    const firstEnd = SEGMENT_HEADER_BYTES + 4 + full.readUInt32BE(SEGMENT_HEADER_BYTES);
    const secondEnd = firstEnd + 4 + full.readUInt32BE(firstEnd);
    const without = Buffer.concat([full.subarray(0, firstEnd), full.subarray(secondEnd)]);
    expect(codeOf(() => decodeSegment(without, key, 'f'))).toBe('JOURNAL_CORRUPT');
  });
});
