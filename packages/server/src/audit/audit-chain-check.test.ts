import { createHmac, hkdfSync } from 'node:crypto';
import { AuditChainCheck, type StoredAuditRow } from './audit-chain-check';
import { auditChainMac, auditRowMac, canonicalAuditRow, deriveAuditKey, type AuditFields } from './audit-mac';
import { parseSince } from './read-audit';

const key = deriveAuditKey(Buffer.alloc(32, 7));
const T0 = new Date('2026-12-03T10:00:00.123Z');

function fields(i: number, over: Partial<AuditFields> = {}): AuditFields {
  return {
    uid: Buffer.alloc(16, i),
    at: new Date(T0.getTime() + i * 1000),
    actorKind: 'client',
    actor: '2048R/ABCDEF',
    osUser: null,
    action: 'deposit.put',
    org: 'acme',
    subject: `name-${i}`,
    subjectVersion: i,
    source: '10.0.0.1',
    result: 'ok',
    count: 1,
    writeMode: 'sync',
    detail: null,
    ...over,
  };
}

/** A correctly chained trail of n rows (ids 1..n, seq 1..n). */
function chain(n: number): StoredAuditRow[] {
  const rows: StoredAuditRow[] = [];
  let prev: Buffer | null = null;
  for (let i = 1; i <= n; i++) {
    const f = fields(i);
    const rowMac = auditRowMac(key, f);
    prev = auditChainMac(key, prev, i, rowMac);
    rows.push({ ...f, id: String(i), rowMac, seq: i, chainMac: prev });
  }
  return rows;
}

function check(
  rows: StoredAuditRow[],
  unchained: StoredAuditRow[] = [],
  now = new Date(T0.getTime() + 60_000),
) {
  const c = new AuditChainCheck(key, 5 * 60_000);
  for (const r of rows) c.checkChained(r);
  for (const r of unchained) c.checkUnchained(r, now);
  return c;
}

describe('audit MACs', () => {
  it('derives the audit key by HKDF-SHA256 of the master key with its own info, distinct from the journal key', () => {
    const master = Buffer.alloc(32, 7);
    expect(
      key.equals(Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'trustee audit trail v1', 32))),
    ).toBe(true);
    expect(
      key.equals(Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), 'trustee change journal v1', 32))),
    ).toBe(false);
    expect(() => deriveAuditKey(Buffer.alloc(16))).toThrow('does not hold 32 bytes');
  });

  it('covers every field: changing any one changes the row MAC', () => {
    const base = fields(1);
    const mac = auditRowMac(key, base);
    const changes: Partial<AuditFields>[] = [
      { uid: Buffer.alloc(16, 9) },
      { at: new Date(base.at.getTime() + 1) },
      { actorKind: 'admin' },
      { actor: 'x' },
      { osUser: 'root' },
      { action: 'deposit.delete' },
      { org: null },
      { subject: 'other' },
      { subjectVersion: 2 },
      { source: '10.0.0.2' },
      { result: 'NOT_FOUND' },
      { count: 2 },
      { writeMode: 'single-node' },
      { detail: 'x' },
    ];
    for (const change of changes) expect(auditRowMac(key, { ...base, ...change }).equals(mac)).toBe(false);
    expect(auditRowMac(Buffer.alloc(32, 1), base).equals(mac)).toBe(false);
  });

  it('frames fields unambiguously (moving text between neighbouring fields changes the canonical form)', () => {
    const a = canonicalAuditRow(fields(1, { org: 'ab', subject: 'c' }));
    const b = canonicalAuditRow(fields(1, { org: 'a', subject: 'bc' }));
    expect(a.equals(b)).toBe(false);
    expect(
      canonicalAuditRow(fields(1, { org: null })).equals(canonicalAuditRow(fields(1, { org: 'null' }))),
    ).toBe(false);
  });

  it('links each position to the previous link, the position and the row MAC', () => {
    const rowMac = Buffer.alloc(32, 1);
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(5n);
    const expected = createHmac('sha256', key)
      .update('trustee-audit-chain-v1\u0000')
      .update(Buffer.alloc(32, 2))
      .update(seq)
      .update(rowMac)
      .digest();
    expect(auditChainMac(key, Buffer.alloc(32, 2), 5, rowMac).equals(expected)).toBe(true);
    expect(auditChainMac(key, null, 1, rowMac).equals(auditChainMac(key, Buffer.alloc(32), 1, rowMac))).toBe(
      true,
    );
    expect(auditChainMac(key, null, 2, rowMac).equals(auditChainMac(key, null, 1, rowMac))).toBe(false);
  });
});

describe('AuditChainCheck', () => {
  it('passes an intact chain and counts pending rows', () => {
    const rows = chain(5);
    const pending = { ...fields(6), id: '6', rowMac: auditRowMac(key, fields(6)), seq: null, chainMac: null };
    const c = check(rows, [pending]);
    expect(c.problems).toEqual([]);
    expect(c).toMatchObject({ intact: 5, pending: 1, lastSeq: 5 });
  });

  it('names a changed row as changed, once', () => {
    const rows = chain(5);
    rows[2] = { ...rows[2], action: 'deposit.delete' };
    const c = check(rows);
    expect(c.problems).toEqual([expect.objectContaining({ kind: 'changed', id: '3', seq: 3 })]);
    expect(c.intact).toBe(4);
  });

  it('names a removed row by the gap after it, once (later rows still pass)', () => {
    const rows = chain(6);
    rows.splice(2, 1);
    const c = check(rows);
    expect(c.problems).toEqual([
      expect.objectContaining({
        kind: 'removed',
        seq: 4,
        message: expect.stringContaining('position 3 is missing'),
      }),
    ]);
    expect(c.intact).toBe(4);
  });

  it('names rows renumbered to hide a removal, and a reordering, as broken links', () => {
    const rows = chain(5);
    rows.splice(1, 1);
    const renumbered = rows.map((r, i) => ({ ...r, seq: i + 1 }));
    expect(check(renumbered).problems[0]).toMatchObject({ kind: 'removed', seq: 2, id: '3' });
    const swapped = chain(4);
    [swapped[1], swapped[2]] = [
      { ...swapped[2], seq: 2 },
      { ...swapped[1], seq: 3 },
    ];
    expect(check(swapped).problems[0]).toMatchObject({ kind: 'removed', seq: 2, id: '3' });
  });

  it('names a duplicate position and a forged unchained row as inserted', () => {
    const rows = chain(3);
    const dup = { ...rows[1], id: '9' };
    expect(check([...rows.slice(0, 2), dup, rows[2]]).problems[0]).toMatchObject({
      kind: 'inserted',
      id: '9',
    });
    const forged = { ...fields(7), id: '7', rowMac: Buffer.alloc(32, 3), seq: null, chainMac: null };
    expect(check(chain(3), [forged]).problems).toEqual([
      expect.objectContaining({ kind: 'inserted', id: '7', seq: null }),
    ]);
  });

  it('reports an unchained row older than the bound as inserted, a recent one as pending', () => {
    const f = fields(1);
    const row = { ...f, id: '1', rowMac: auditRowMac(key, f), seq: null, chainMac: null };
    expect(check([], [row], new Date(f.at.getTime() + 4 * 60_000)).pending).toBe(1);
    const old = check([], [row], new Date(f.at.getTime() + 6 * 60_000));
    expect(old.problems).toEqual([
      expect.objectContaining({ kind: 'inserted', message: expect.stringContaining('unchained for longer') }),
    ]);
  });
});

describe('parseSince', () => {
  const now = new Date('2026-12-03T12:00:00Z');
  it('takes a duration back from now or an ISO time', () => {
    expect(parseSince('24h', now).toISOString()).toBe('2026-12-02T12:00:00.000Z');
    expect(parseSince('7d', now).toISOString()).toBe('2026-11-26T12:00:00.000Z');
    expect(parseSince('90s', now).toISOString()).toBe('2026-12-03T11:58:30.000Z');
    expect(parseSince('2026-12-01T10:00:00Z', now).toISOString()).toBe('2026-12-01T10:00:00.000Z');
    expect(parseSince('2026-12-01', now).toISOString()).toBe('2026-12-01T00:00:00.000Z');
  });
  it.each(['', 'yesterday', '24', '-1h', '1y', '2026-13-45', '2026-12-01; drop table'])('refuses %j', (t) => {
    expect(() => parseSince(t, now)).toThrow('is neither a duration');
  });
});
