/**
 * Applies the change journal on top of a restored backup. Idempotent and ordered: every record
 * at or after the backup's position is applied in journal order (duplicates skipped), rows by
 * upsert on their primary key or delete by key, so replaying from an earlier point than needed
 * converges to the same state. A recorded gap after the start refuses the replay unless allowed.
 */
import { createHash } from 'node:crypto';
import type { ClientBase } from 'pg';
import { escapeIdentifier } from 'pg';
import { parseLsn } from '@trustee/replicator';
import { JournalError } from './journal-error';
import { comparePosition, type JournalChange, type JournalGap, type JournalPosition } from './journal-record';
import { readJournal, type TruncatedTail } from './read-journal';

export interface ReplayOptions {
  /**
   * WAL position the backup is known to contain everything before (ktbackup's manifest walLsn,
   * read before its dump began). Records whose commit LSN is >= fromLsn are applied.
   */
  fromLsn: string;
  /** Timeline of fromLsn; when absent positions compare by LSN alone. */
  fromTimeline?: number;
  /** Apply across recorded gaps (writes inside a gap are lost); default false: JOURNAL_GAP. */
  allowGap?: boolean;
}

export interface ReplayResult {
  /** Transactions applied. */
  applied: number;
  /** Row changes applied. */
  changes: number;
  /** Transactions before fromLsn (already in the backup). */
  skipped: number;
  /** Transactions seen twice (re-sent after a consumer crash), applied once. */
  duplicates: number;
  /** Gaps after fromLsn that were crossed (allowGap) — their writes are missing. */
  gapsCrossed: JournalGap[];
  /** Updates whose row was absent and could not be rebuilt (an unchanged TOASTed column). */
  missingRows: number;
  truncatedTails: TruncatedTail[];
  /** Position of the last transaction applied. */
  lastPosition?: JournalPosition;
}

function quoteTable(table: string): string {
  return table.split('.').map(escapeIdentifier).join('.');
}

/** A named (prepared) statement per distinct SQL text: each shape is planned once per replay. */
function statement(text: string, values: (string | null)[]) {
  return { name: `tj_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`, text, values };
}

function whereKey(cols: string[], offset = 0): string {
  return cols.map((c, i) => `${escapeIdentifier(c)} = $${i + 1 + offset}`).join(' and ');
}

function keyValues(ch: JournalChange, row: Record<string, string | null>): (string | null)[] {
  return ch.keyColumns.map((c) => {
    if (!(c in row))
      throw new JournalError('JOURNAL_CORRUPT', `a ${ch.op} on ${ch.table} lacks its key column ${c}`);
    return row[c];
  });
}

/** Applies one change; returns false when an update found no row to change. */
async function applyChange(c: ClientBase, ch: JournalChange): Promise<boolean> {
  const t = quoteTable(ch.table);
  if (ch.op === 'delete') {
    await c.query(statement(`delete from ${t} where ${whereKey(ch.keyColumns)}`, keyValues(ch, ch.row)));
    return true;
  }
  const cols = Object.keys(ch.row);
  // Values are PostgreSQL's own text output, sent untyped: the server parses each with its column's type.
  if (ch.op === 'update' && ch.unchanged?.length) {
    // Columns left out kept their (TOASTed) value: change the row in place, under its old key if moved.
    const sql = `update ${t} set ${cols.map((col, i) => `${escapeIdentifier(col)} = $${i + 1}`).join(', ')} where ${whereKey(ch.keyColumns, cols.length)}`;
    const r = await c.query(
      statement(sql, [...cols.map((col) => ch.row[col]), ...keyValues(ch, ch.oldKey ?? ch.row)]),
    );
    return (r.rowCount ?? 0) > 0;
  }
  if (ch.op === 'update' && ch.oldKey)
    await c.query(statement(`delete from ${t} where ${whereKey(ch.keyColumns)}`, keyValues(ch, ch.oldKey)));
  keyValues(ch, ch.row);
  const others = cols.filter((col) => !ch.keyColumns.includes(col));
  const onConflict = others.length
    ? `do update set ${others.map((o) => `${escapeIdentifier(o)} = excluded.${escapeIdentifier(o)}`).join(', ')}`
    : 'do nothing';
  const sql =
    `insert into ${t} (${cols.map(escapeIdentifier).join(', ')}) values (${cols.map((_, i) => `$${i + 1}`).join(', ')}) ` +
    `on conflict (${ch.keyColumns.map(escapeIdentifier).join(', ')}) ${onConflict}`;
  await c.query(
    statement(
      sql,
      cols.map((col) => ch.row[col]),
    ),
  );
  return true;
}

/** Moves each serial key's sequence past the highest replayed key (sequences are not in the journal). */
async function advanceSequences(c: ClientBase, keys: Map<string, string[]>): Promise<void> {
  for (const [table, cols] of keys) {
    for (const col of cols) {
      const { rows } = await c.query<{ seq: string | null }>('select pg_get_serial_sequence($1, $2) as seq', [
        quoteTable(table),
        col,
      ]);
      const seq = rows[0]?.seq;
      if (!seq) continue;
      await c.query(
        `select setval($1::regclass, m) from (select max(${escapeIdentifier(col)}) as m from ${quoteTable(table)}) s
          where m is not null and m > coalesce(pg_sequence_last_value($1::regclass), 0)`,
        [seq],
      );
    }
  }
}

/**
 * Replays the journal in `dir` into the database of `client`, in one transaction (with
 * `synchronous_commit = local` and `session_replication_role = replica`, as PostgreSQL's own
 * logical replication applies changes: foreign keys are not re-checked mid-history). Needs a
 * superuser (keytrustee is). Throws JOURNAL_GAP on a gap after fromLsn unless allowGap.
 */
export async function replayJournal(
  client: ClientBase,
  dir: string,
  journalKey: Buffer,
  opts: ReplayOptions,
): Promise<ReplayResult> {
  const fromLsn = parseLsn(opts.fromLsn);
  // -1, 0, 1 as a record is before, at or after the backup's position.
  const versusFrom = (p: JournalPosition): number =>
    opts.fromTimeline === undefined
      ? Math.sign(Number(parseLsn(p.lsn) - fromLsn))
      : comparePosition(p, { lsn: opts.fromLsn, timeline: opts.fromTimeline });
  const result: ReplayResult = {
    applied: 0,
    changes: 0,
    skipped: 0,
    duplicates: 0,
    gapsCrossed: [],
    missingRows: 0,
    truncatedTails: [],
  };
  const keys = new Map<string, string[]>();
  await client.query('begin');
  try {
    await client.query('set local synchronous_commit = local');
    await client.query('set local session_replication_role = replica');
    for await (const r of readJournal(dir, journalKey, {
      onTruncatedTail: (t) => result.truncatedTails.push(t),
    })) {
      if (r.type === 'gap') {
        if (versusFrom(r) <= 0) continue;
        if (!opts.allowGap)
          throw new JournalError(
            'JOURNAL_GAP',
            `the journal has a gap (${r.reason}) from ${r.fromLsn ?? 'its start'} (timeline ${r.fromTimeline ?? '-'}) ` +
              `to ${r.toLsn} (timeline ${r.toTimeline}) after the backup's position ${opts.fromLsn}: writes in it are not in ` +
              `the journal; restore a backup taken after the gap, or pass allowGap to accept losing them`,
            { details: { gap: r } },
          );
        result.gapsCrossed.push(r);
        continue;
      }
      if (versusFrom(r) < 0) {
        result.skipped++;
        continue;
      }
      if (result.lastPosition && comparePosition(r, result.lastPosition) <= 0) {
        result.duplicates++;
        continue;
      }
      for (const ch of r.changes) {
        try {
          if (!(await applyChange(client, ch))) result.missingRows++;
        } catch (e) {
          if (e instanceof JournalError) throw e;
          throw new JournalError(
            'JOURNAL_REPLAY_FAILED',
            `journal record at ${r.lsn} (timeline ${r.timeline}): ${ch.op} on ${ch.table} failed: ${(e as Error).message}`,
            { cause: e },
          );
        }
        keys.set(ch.table, ch.keyColumns);
        result.changes++;
      }
      result.applied++;
      result.lastPosition = { timeline: r.timeline, lsn: r.lsn };
    }
    await advanceSequences(client, keys);
    await client.query('commit');
    return result;
  } catch (e) {
    await client.query('rollback').catch(() => undefined);
    throw e;
  }
}
