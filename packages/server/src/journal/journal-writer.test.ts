import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JournalRecord } from './journal-record';
import { readJournal, readLastRecord, type TruncatedTail } from './read-journal';
import { createJournalWriter, prepareJournalDir, repairJournalTail } from './journal-writer';

const key = randomBytes(32);

function tx(n: number): JournalRecord {
  const lsn = `0/${(0x1000 + n * 0x100).toString(16).toUpperCase()}`;
  return {
    type: 'tx',
    lsn,
    endLsn: lsn,
    timeline: 1,
    commitTime: new Date(Date.UTC(2026, 11, 4, 0, 0, n)).toISOString(),
    xid: n,
    changes: [{ table: 'deposits', op: 'insert', row: { id: String(n), name: `d${n}` }, keyColumns: ['id'] }],
  };
}

async function readAll(dir: string, tails: TruncatedTail[] = []): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  for await (const r of readJournal(dir, key, { onTruncatedTail: (t) => tails.push(t) })) out.push(r);
  return out;
}

describe('journal writer and reader on disk', () => {
  let dir: string;
  beforeEach(async () => {
    dir = join(mkdtempSync(join(tmpdir(), 'journal-writer-')), 'journal');
    await prepareJournalDir(dir);
  });
  afterEach(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

  it('writes 0600 segments named after their first record and reads them back in order', async () => {
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const w = createJournalWriter({ dir, journalKey: key });
    await w.append([tx(1), tx(2)]);
    await w.append([tx(3)]);
    expect(w.currentSegment()).toBe('journal-00000001-0000000000001100.tjl');
    await w.close();
    expect(statSync(join(dir, 'journal-00000001-0000000000001100.tjl')).mode & 0o777).toBe(0o600);
    expect(await readAll(dir)).toEqual([tx(1), tx(2), tx(3)]);
    expect(await readLastRecord(dir, key)).toEqual(tx(3));
  });

  it('rotates segments at the size limit, and a second writer never appends to an old segment', async () => {
    const w = createJournalWriter({ dir, journalKey: key, segmentBytes: 600 });
    for (let i = 1; i <= 10; i++) await w.append([tx(i)]);
    await w.close();
    const before = readdirSync(dir).length;
    expect(before).toBeGreaterThan(2);
    // The slot re-sends record 10 after a crash: a new segment with the same start gets a suffix.
    const again = createJournalWriter({ dir, journalKey: key });
    await again.append([tx(10), tx(11)]);
    await again.close();
    expect(readdirSync(dir).length).toBe(before + 1);
    const all = await readAll(dir);
    expect(all.map((r) => r.lsn)).toEqual([
      ...Array.from({ length: 10 }, (_, i) => tx(i + 1).lsn),
      tx(10).lsn,
      tx(11).lsn,
    ]);
  });

  it('cuts a torn last frame, and removes a segment whose header is torn', async () => {
    const w = createJournalWriter({ dir, journalKey: key });
    await w.append([tx(1), tx(2)]);
    const name = w.currentSegment()!;
    await w.close();
    appendFileSync(join(dir, name), Buffer.from([0, 0, 1, 0, 42, 42, 42]));
    const tails: TruncatedTail[] = [];
    expect(await readAll(dir, tails)).toEqual([tx(1), tx(2)]);
    expect(tails).toEqual([{ file: name, offset: statSync(join(dir, name)).size - 7, bytes: 7 }]);

    expect(await repairJournalTail(dir, key)).toMatchObject({ file: name, bytes: 7 });
    const repaired: TruncatedTail[] = [];
    expect(await readAll(dir, repaired)).toEqual([tx(1), tx(2)]);
    expect(repaired).toEqual([]);

    writeFileSync(join(dir, 'journal-00000001-0000000000009000.tjl'), Buffer.from('TJL1'));
    expect(await repairJournalTail(dir, key)).toMatchObject({ offset: 0, bytes: 4 });
    expect(readdirSync(dir)).toEqual([name]);
    expect(await repairJournalTail(dir, key)).toBeUndefined();
  });
});
