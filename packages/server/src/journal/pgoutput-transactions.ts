/**
 * From pgoutput messages to journal transactions: a PgoutputPlugin that leaves column values in
 * PostgreSQL's text form, and a pure assembler (begin … changes … commit → one transaction).
 * @see https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
 */
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { formatLsn, parseLsn } from '@trustee/replicator';
import type { JournalChange, JournalTransaction } from './journal-record';

const keepText = (raw: unknown): unknown => raw;

/**
 * pgoutput (protocol 1) with values kept as the text PostgreSQL sent: the library's default
 * parsers turn timestamptz into a millisecond Date and int8 into strings or numbers, which would
 * not replay byte-exact. The parser caches each Relation message and reads later tuples with its
 * columns' `parser`, so replacing those parsers when the Relation arrives covers every tuple.
 * Also counts parsed messages: with flow control the library parses on arrival and calls the
 * data handler later, so `parsed` minus handled is the queue length.
 */
export class TextPgoutputPlugin extends PgoutputPlugin {
  parsed = 0;

  override parse(buffer: Buffer): Pgoutput.Message {
    const msg = super.parse(buffer);
    this.parsed++;
    if (msg.tag === 'relation') for (const c of msg.columns) c.parser = keepText;
    return msg;
  }
}

/** Canonical LSN text (`0/167A2B8`, as PostgreSQL prints it), whatever padding the library used. */
export function canonicalLsn(lsn: string): string {
  return formatLsn(parseLsn(lsn));
}

function tableName(r: Pgoutput.MessageRelation): string {
  return r.schema === 'public' ? r.name : `${r.schema}.${r.name}`;
}

/** Tuple values as text or null; an unchanged TOASTed value (undefined) is left out. */
function textRow(tuple: Record<string, unknown> | null): Record<string, string | null> {
  const row: Record<string, string | null> = {};
  if (!tuple) return row;
  for (const [k, v] of Object.entries(tuple)) {
    if (v === undefined) continue;
    row[k] = v === null ? null : Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : String(v);
  }
  return row;
}

function pick(row: Record<string, string | null>, cols: string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const c of cols) if (c in row) out[c] = row[c];
  return out;
}

function sameKey(
  a: Record<string, string | null>,
  b: Record<string, string | null>,
  cols: string[],
): boolean {
  return cols.every((c) => a[c] === b[c]);
}

/** Builds one transaction from begin to commit; messages outside a transaction are ignored. */
export class TransactionAssembler {
  private open?: { xid: number; changes: JournalChange[] };
  /** Tables whose TRUNCATE was seen (the publication does not publish it; reported, not journaled). */
  readonly truncated = new Set<string>();

  constructor(private readonly timeline: number) {}

  get inTransaction(): boolean {
    return this.open !== undefined;
  }

  /** Feeds one message; returns the transaction when its commit arrives. */
  push(msg: Pgoutput.Message): JournalTransaction | undefined {
    switch (msg.tag) {
      case 'begin':
        this.open = { xid: msg.xid, changes: [] };
        return undefined;
      case 'insert':
        this.open?.changes.push({
          table: tableName(msg.relation),
          op: 'insert',
          row: textRow(msg.new),
          keyColumns: msg.relation.keyColumns,
        });
        return undefined;
      case 'update': {
        const keyColumns = msg.relation.keyColumns;
        const row = textRow(msg.new);
        const old = msg.key ? textRow(msg.key) : msg.old ? pick(textRow(msg.old), keyColumns) : undefined;
        const change: JournalChange = { table: tableName(msg.relation), op: 'update', row, keyColumns };
        if (old && !sameKey(old, row, keyColumns)) change.oldKey = old;
        const unchanged = Object.keys(msg.new).filter((k) => msg.new[k] === undefined);
        if (unchanged.length) change.unchanged = unchanged;
        this.open?.changes.push(change);
        return undefined;
      }
      case 'delete': {
        const keyColumns = msg.relation.keyColumns;
        const row = msg.key ? textRow(msg.key) : pick(textRow(msg.old), keyColumns);
        this.open?.changes.push({
          table: tableName(msg.relation),
          op: 'delete',
          row: pick(row, keyColumns),
          keyColumns,
        });
        return undefined;
      }
      case 'truncate':
        for (const r of msg.relations) this.truncated.add(tableName(r));
        return undefined;
      case 'commit': {
        const open = this.open;
        this.open = undefined;
        if (!open || !msg.commitLsn || !msg.commitEndLsn) return undefined;
        const micros = msg.commitTime as unknown as bigint;
        return {
          type: 'tx',
          lsn: canonicalLsn(msg.commitLsn),
          endLsn: canonicalLsn(msg.commitEndLsn),
          timeline: this.timeline,
          commitTime: new Date(Number(micros / 1000n)).toISOString(),
          xid: open.xid,
          changes: open.changes,
        };
      }
      default:
        return undefined;
    }
  }
}
