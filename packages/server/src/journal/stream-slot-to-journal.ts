/**
 * One replication connection of the journal consumer: START_REPLICATION on the slot, pgoutput
 * messages assembled into transactions, written and fdatasync'ed (grouped while more messages
 * are queued), and only then acknowledged to the slot. Ends on stop or on the first failure;
 * nothing unacknowledged is lost, since the slot sends it again on the next connection.
 */
import { LogicalReplicationService, type Pgoutput } from 'pg-logical-replication';
import { formatLsn, parseLsn } from '@trustee/replicator';
import type { Logger } from '../logger';
import type { JournalMetrics } from './journal-metrics';
import type { JournalTransaction } from './journal-record';
import { JOURNAL_PUBLICATION, JOURNAL_SLOT } from './journal-slot';
import type { JournalWriter } from './journal-writer';
import { TextPgoutputPlugin, TransactionAssembler } from './pgoutput-transactions';

/** The node's PostgreSQL over its unix socket (socketDirFor(DB_ROOTDIR), user and database keytrustee). */
export interface JournalConnection {
  host: string;
  port: number;
  user: string;
  database: string;
}

export interface StreamOptions {
  connection: JournalConnection;
  writer: JournalWriter;
  /** Timeline the records are stamped with (the primary's insert timeline). */
  timeline: number;
  /** The slot's confirmed_flush_lsn: where streaming resumes. */
  start: bigint;
  metrics: JournalMetrics;
  log: Logger;
  /** Checked when streaming starts: false ends it at once (a stop raced the connect). */
  isWanted: () => boolean;
  /** Receives the service while it exists, so the caller can stop it. */
  onService: (svc: LogicalReplicationService | undefined) => void;
  onStreaming: (on: boolean) => void;
}

/** Transactions written with one fdatasync at most (group commit while more messages are queued). */
const MAX_BATCH = 256;

/** Streams until stopped (resolves) or ended otherwise (rejects with the cause). */
export async function streamSlotToJournal(o: StreamOptions): Promise<void> {
  const { writer, timeline, start, metrics, log } = o;
  const plugin = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: [JOURNAL_PUBLICATION] });
  const assembler = new TransactionAssembler(timeline);
  const svc = new LogicalReplicationService(
    { ...o.connection, application_name: 'keytrusteed-journal' },
    { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } },
  );
  o.onService(svc);
  let acked = start;
  let handled = 0;
  let failure: Error | undefined;
  let pending: JournalTransaction[] = [];
  let pendingEnd = 0n;
  let flushing = false;
  const fail = (e: unknown) => {
    failure ??= e instanceof Error ? e : new Error(String(e));
    void svc.stop();
  };
  // The library reports `lsn + 1` as written/flushed/applied; the slot's confirmed_flush_lsn must
  // be exactly the end of what is durable (a commit record may start right there).
  const ackTo = (pos: bigint) => void svc.acknowledge(formatLsn(pos - 1n)).catch(fail);

  async function flush(): Promise<void> {
    flushing = true;
    try {
      if (pending.length) {
        const batch = pending;
        pending = [];
        await writer.append(batch);
        metrics.records.inc({ type: 'tx' }, batch.length);
        metrics.lastRecord.set(Date.parse(batch[batch.length - 1].commitTime) / 1000);
        log.debug({ records: batch.length, lsn: batch[batch.length - 1].lsn }, 'journal records written');
      }
      if (pendingEnd > acked) ackTo((acked = pendingEnd));
    } finally {
      flushing = false;
    }
  }

  svc.on('data', async (_lsn: string, msg: Pgoutput.Message) => {
    try {
      if (failure) return;
      const tx = assembler.push(msg);
      if (tx) {
        if (tx.changes.length) pending.push(tx);
        pendingEnd = parseLsn(tx.endLsn);
      }
      const queuedAfterThis = plugin.parsed - handled - 1;
      if (pendingEnd > acked && (queuedAfterThis <= 0 || pending.length >= MAX_BATCH)) await flush();
    } catch (e) {
      fail(e);
    } finally {
      handled++;
    }
  });
  // A keepalive's LSN is the end of WAL already decoded and sent: when every message before it
  // is handled and durable, the slot may move there (it would otherwise pin WAL while only
  // other tables change). Otherwise just answer with what is durable.
  svc.on('heartbeat', (walEnd: string, _ts: number, shouldRespond: boolean) => {
    const idle =
      !failure && !flushing && !assembler.inTransaction && !pending.length && plugin.parsed === handled;
    const end = parseLsn(walEnd);
    if (idle && end > acked) ackTo((acked = end));
    else if (shouldRespond) ackTo(acked);
  });
  svc.on('error', fail);
  svc.on('start', () => {
    if (!o.isWanted()) return void svc.stop();
    o.onStreaming(true);
    metrics.running.set(1);
    log.info({ timeline, fromLsn: formatLsn(start), slot: JOURNAL_SLOT }, 'journal streaming');
  });
  try {
    // Resolves only when the stream ends. '0/0': start at the slot's confirmed_flush_lsn.
    await svc.subscribe(plugin, JOURNAL_SLOT, '0/00000000');
  } catch (e) {
    failure ??= e as Error;
  } finally {
    o.onStreaming(false);
    metrics.running.set(0);
    o.onService(undefined);
    await svc.destroy().catch(() => undefined);
  }
  // Still wanted: the stream ended by itself (server restart, slot dropped): retry with backoff.
  if (o.isWanted()) throw failure ?? new Error('the replication stream ended');
}
