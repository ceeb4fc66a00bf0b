import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pgoutput } from 'pg-logical-replication';
import { journalNeedsFreshBackup, recordJournalBackup, writeGapState } from './journal-gap';
import { gapRecord, planJournalSlot, type SlotRow } from './journal-slot';
import { TransactionAssembler } from './pgoutput-transactions';

const deposits = {
  tag: 'relation',
  relationOid: 16400,
  schema: 'public',
  name: 'deposits',
  replicaIdentity: 'default',
  columns: [],
  keyColumns: ['id'],
} as Pgoutput.MessageRelation;

const begin = {
  tag: 'begin',
  commitLsn: '00000000/0167A2B8',
  commitTime: 0n,
  xid: 742,
} as unknown as Pgoutput.Message;
const commit = {
  tag: 'commit',
  flags: 0,
  commitLsn: '00000000/0167A2B8',
  commitEndLsn: '00000000/0167A2E8',
  // 2026-12-04T10:00:00.123Z in microseconds since the Unix epoch, as the library gives it.
  commitTime: 1796378400123456n,
} as unknown as Pgoutput.Message;

describe('TransactionAssembler', () => {
  it('turns begin, changes and commit into one transaction with text values', () => {
    const a = new TransactionAssembler(2);
    expect(a.push(begin)).toBeUndefined();
    expect(a.inTransaction).toBe(true);
    a.push({ tag: 'insert', relation: deposits, new: { id: '1', name: 'n', metadata: null } });
    a.push({
      tag: 'update',
      relation: deposits,
      key: null,
      old: null,
      new: { id: '1', name: 'n', sealed_value: undefined, deleted: 't' },
    });
    a.push({ tag: 'update', relation: deposits, key: { id: '1' }, old: null, new: { id: '2', name: 'n' } });
    a.push({ tag: 'delete', relation: deposits, key: { id: '2' }, old: null });
    const tx = a.push(commit);
    expect(a.inTransaction).toBe(false);
    expect(tx).toEqual({
      type: 'tx',
      lsn: '0/167A2B8',
      endLsn: '0/167A2E8',
      timeline: 2,
      commitTime: '2026-12-04T10:00:00.123Z',
      xid: 742,
      changes: [
        { table: 'deposits', op: 'insert', row: { id: '1', name: 'n', metadata: null }, keyColumns: ['id'] },
        {
          table: 'deposits',
          op: 'update',
          row: { id: '1', name: 'n', deleted: 't' },
          keyColumns: ['id'],
          unchanged: ['sealed_value'],
        },
        {
          table: 'deposits',
          op: 'update',
          row: { id: '2', name: 'n' },
          keyColumns: ['id'],
          oldKey: { id: '1' },
        },
        { table: 'deposits', op: 'delete', row: { id: '2' }, keyColumns: ['id'] },
      ],
    });
  });

  it('ignores changes outside a transaction and a commit without begin', () => {
    const a = new TransactionAssembler(1);
    a.push({ tag: 'insert', relation: deposits, new: { id: '1' } });
    expect(a.push(commit)).toBeUndefined();
  });

  it('keeps schema-qualified names for tables outside public', () => {
    const a = new TransactionAssembler(1);
    a.push(begin);
    a.push({ tag: 'insert', relation: { ...deposits, schema: 'audit' }, new: { id: '1' } });
    expect(a.push(commit)?.changes[0].table).toBe('audit.deposits');
  });
});

describe('planJournalSlot', () => {
  const good: SlotRow = {
    plugin: 'pgoutput',
    slot_type: 'logical',
    database: 'keytrustee',
    wal_status: 'reserved',
    confirmed_flush_lsn: '0/100',
    active_pid: null,
  };
  const last = gapRecord(undefined, { lsn: '0/50', timeline: 1 }, 'journal-start', new Date(0));

  it.each([
    ['no slot, empty journal', undefined, undefined, { action: 'create', gapReason: 'journal-start' }],
    [
      'no slot, journal has records (promotion)',
      undefined,
      last,
      { action: 'create', gapReason: 'slot-missing' },
    ],
    [
      'slot lost',
      { ...good, wal_status: 'lost' },
      last,
      { action: 'recreate', gapReason: 'slot-invalidated' },
    ],
    [
      'slot of another plugin',
      { ...good, plugin: 'wal2json' },
      last,
      { action: 'recreate', gapReason: 'slot-unusable' },
    ],
    ['slot fine, empty journal', good, undefined, { action: 'use', gapReason: 'journal-start' }],
    ['slot fine, journal has records', good, last, { action: 'use' }],
  ] as const)('%s', (_what, slot, lastRecord, plan) => {
    expect(planJournalSlot(slot as SlotRow | undefined, lastRecord)).toEqual(plan);
  });
});

describe('journalNeedsFreshBackup', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'journal-gap-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is true from a gap until a backup at or after the gap is recorded', () => {
    expect(journalNeedsFreshBackup(dir)).toBe(false);
    const prior = gapRecord(undefined, { lsn: '0/50', timeline: 1 }, 'journal-start', new Date(0));
    writeGapState(dir, gapRecord(prior, { lsn: '0/3000', timeline: 2 }, 'slot-missing', new Date(0)));
    expect(journalNeedsFreshBackup(dir)).toBe(true);
    recordJournalBackup(dir, { lsn: '0/9000', timeline: 1 });
    expect(journalNeedsFreshBackup(dir)).toBe(true);
    recordJournalBackup(dir, { lsn: '0/3000', timeline: 2 });
    expect(journalNeedsFreshBackup(dir)).toBe(false);
    // An older backup reported later does not move the mark back.
    recordJournalBackup(dir, { lsn: '0/10', timeline: 1 });
    expect(journalNeedsFreshBackup(dir)).toBe(false);
  });
});
