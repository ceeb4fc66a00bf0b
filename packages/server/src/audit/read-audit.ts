import type { Pool, PoolClient } from 'pg';
import { selectAuditPage, selectChained, selectDuplicateUids, selectUnchained } from '../db/sql/audit';
import { AuditChainCheck, type AuditProblem, type StoredAuditRow } from './audit-chain-check';

const PAGE = 2000;

/** Progress of a long read: rows so far (called about every `PAGE` rows). */
export type OnProgress = (rows: number) => void;

/**
 * Reads in one read-only REPEATABLE READ transaction: one consistent snapshot however long the
 * walk, on either node (a passive serves it from its replica), writing nothing.
 */
async function inSnapshot<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('begin isolation level repeatable read read only');
    const out = await fn(c);
    await c.query('commit');
    return out;
  } catch (e) {
    await c.query('rollback').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

export interface AuditVerification {
  /** Chained rows whose MAC and link are right. */
  intact: number;
  /** Unchained rows younger than the bound (the chainer reaches them within a second or so). */
  pending: number;
  problems: AuditProblem[];
  lastSeq: number;
  lastAt?: Date;
  rows: number;
}

/**
 * `ktadmin audit verify`: recomputes every row MAC and chain link, walking the chain in seq
 * order, then checks the unchained rows and copies of a row (same uid).
 */
export async function verifyAudit(opts: {
  pool: Pool;
  key: Buffer;
  maxUnchainedAgeMs: number;
  now?: Date;
  onProgress?: OnProgress;
}): Promise<AuditVerification> {
  const check = new AuditChainCheck(opts.key, opts.maxUnchainedAgeMs);
  let rows = 0;
  await inSnapshot(opts.pool, async (c) => {
    const { rows: nowRows } = await c.query<{ now: Date }>('select now() as now');
    const now = opts.now ?? nowRows[0].now;
    for (let afterSeq = 0; ;) {
      const page = await selectChained(c, { afterSeq, limit: PAGE });
      for (const r of page) check.checkChained(r);
      rows += page.length;
      if (page.length < PAGE) break;
      afterSeq = page[page.length - 1].seq as number;
      opts.onProgress?.(rows);
    }
    for (let afterId = '0'; ;) {
      const page = await selectUnchained(c, { afterId, limit: PAGE });
      for (const r of page) check.checkUnchained(r, now);
      rows += page.length;
      if (page.length < PAGE) break;
      afterId = page[page.length - 1].id;
      opts.onProgress?.(rows);
    }
    for (const r of await selectDuplicateUids(c)) {
      check.problems.push({
        kind: 'inserted',
        id: r.id,
        seq: r.seq,
        at: r.at,
        message: 'a copy of an earlier row (same uid)',
      });
    }
  });
  return {
    intact: check.intact,
    pending: check.pending,
    problems: check.problems,
    lastSeq: check.lastSeq,
    lastAt: check.lastAt,
    rows,
  };
}

/** One exported row (JSON lines): every column, MACs in hex. */
export function exportLine(r: StoredAuditRow): string {
  return JSON.stringify({
    id: r.id,
    seq: r.seq,
    at: r.at.toISOString(),
    actorKind: r.actorKind,
    actor: r.actor,
    osUser: r.osUser,
    action: r.action,
    org: r.org,
    subject: r.subject,
    subjectVersion: r.subjectVersion,
    source: r.source,
    result: r.result,
    count: r.count,
    writeMode: r.writeMode,
    detail: r.detail,
    uid: r.uid.toString('hex'),
    rowMac: r.rowMac.toString('hex'),
    chainMac: r.chainMac?.toString('hex') ?? null,
  });
}

/** `ktadmin audit export`: rows at or after `since`, in insertion (id) order, one `write` per page. */
export async function exportAudit(opts: {
  pool: Pool;
  since: Date;
  write: (text: string) => Promise<void>;
  onProgress?: OnProgress;
}): Promise<number> {
  let n = 0;
  await inSnapshot(opts.pool, async (c) => {
    for (let afterId = '0'; ;) {
      const page = await selectAuditPage(c, { since: opts.since, afterId, limit: PAGE });
      if (page.length) await opts.write(page.map((r) => exportLine(r) + '\n').join(''));
      n += page.length;
      if (page.length < PAGE) break;
      afterId = page[page.length - 1].id;
      opts.onProgress?.(n);
    }
  });
  return n;
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/**
 * `--since`: a duration back from `now` (`90s`, `30m`, `24h`, `7d`, `4w`) or an ISO-8601 time
 * (`2026-12-01`, `2026-12-01T10:00:00Z`). Throws a sentence saying what is accepted.
 */
export function parseSince(text: string, now: Date): Date {
  const t = text.trim();
  const d = /^(\d{1,6})([smhdw])$/.exec(t);
  if (d) return new Date(now.getTime() - Number(d[1]) * UNIT_MS[d[2] as keyof typeof UNIT_MS]);
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(t)) {
    const at = new Date(t);
    if (!Number.isNaN(at.getTime())) return at;
  }
  throw new Error(
    `"${text}" is neither a duration (e.g. 90s, 30m, 24h, 7d, 4w) nor an ISO time (e.g. 2026-12-01 or 2026-12-01T10:00:00Z)`,
  );
}
