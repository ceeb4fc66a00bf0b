/**
 * The change journal's consumer: streams committed changes of orgs, clients and deposits from
 * the logical slot `trustee_journal` (pgoutput, publication `trustee_journal`) into encrypted
 * segment files, one record per transaction, and acknowledges a commit to the slot only after
 * its record is fsync'ed — so every acknowledged write is in the journal or still in the slot.
 * Runs on the active only (see runJournalWhileActive); reconnects with backoff until stopped.
 */
import { Client } from 'pg';
import type { Registry } from 'prom-client';
import type { LogicalReplicationService } from 'pg-logical-replication';
import { parseLsn } from '@trustee/replicator';
import type { Logger } from '../logger';
import { JournalError } from './journal-error';
import {
  claimJournalDir,
  clearGapPending,
  markGapPending,
  readGapPending,
  writeGapState,
} from './journal-gap';
import { createJournalMetrics, type JournalMetrics } from './journal-metrics';
import type { JournalGap } from './journal-record';
import {
  JOURNAL_SLOT,
  createJournalSlot,
  dropJournalSlot,
  gapRecord,
  inspectJournalSlot,
  planJournalSlot,
  readInsertTimeline,
  readJournalLagBytes,
  readSystemIdentifier,
} from './journal-slot';
import {
  createJournalWriter,
  prepareJournalDir,
  repairJournalTail,
  type JournalWriter,
} from './journal-writer';
import { readLastRecord } from './read-journal';
import { streamSlotToJournal, type JournalConnection } from './stream-slot-to-journal';

export type { JournalConnection };

export interface JournalConsumerOptions {
  connection: JournalConnection;
  /** JOURNAL_DIR: created 0700 if missing. */
  dir: string;
  /** deriveJournalKey(master key). */
  journalKey: Buffer;
  log: Logger;
  /** Registry for the journal's metrics (the server's); a private one when absent. */
  registry?: Registry;
  /** Segment rotation size; default 16 MiB. */
  segmentBytes?: number;
  /** How often the slot's lag is read for the metric, ms; default 5000. */
  lagIntervalMs?: number;
  /** First retry delay after a failed session, ms (doubles up to 30 s); default 1000. */
  retryDelayMs?: number;
  /** Called once a GAP record is durable (e.g. to start a fresh backup at once). */
  onGap?: (gap: JournalGap) => void;
}

export interface JournalConsumer {
  readonly metrics: JournalMetrics;
  /** Starts streaming (in the background; failures are logged and retried). */
  start(): void;
  /** Stops streaming; resolves when the replication connection is closed. */
  stop(): Promise<void>;
  isRunning(): boolean;
  isStreaming(): boolean;
}

const MAX_RETRY_DELAY_MS = 30_000;

export function createJournalConsumer(opts: JournalConsumerOptions): JournalConsumer {
  const { dir, journalKey, log } = opts;
  const metrics = createJournalMetrics(dir, opts.registry);
  let generation = 0;
  let loop: Promise<void> | undefined;
  let service: LogicalReplicationService | undefined;
  let streaming = false;
  let wake: (() => void) | undefined;
  let lagTimer: NodeJS.Timeout | undefined;
  let readingLag = false;
  const wanted = (gen: number) => gen === generation && lagTimer !== undefined;

  async function withControl<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({
      ...opts.connection,
      application_name: 'keytrusteed-journal',
      connectionTimeoutMillis: 5000,
    });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** Slot and gap bookkeeping before streaming; returns the timeline and the slot's start. */
  async function prepare(writer: JournalWriter): Promise<{ timeline: number; startLsn: string }> {
    await prepareJournalDir(dir);
    claimJournalDir(dir, await withControl(readSystemIdentifier));
    const torn = await repairJournalTail(dir, journalKey);
    if (torn)
      log.warn(
        { file: torn.file, offset: torn.offset },
        'journal: cut an unacknowledged, incomplete last record',
      );
    const last = await readLastRecord(dir, journalKey);
    if (last?.type === 'tx') metrics.lastRecord.set(Date.parse(last.commitTime) / 1000);
    const { timeline, startLsn, gapReason } = await withControl(async (c) => {
      const tl = await readInsertTimeline(c);
      const slot = await inspectJournalSlot(c);
      if (slot?.active_pid)
        throw new Error(`slot ${JOURNAL_SLOT} is still in use by backend ${slot.active_pid}`);
      if (slot?.wal_status === 'unreserved')
        log.warn(
          'journal slot is about to be invalidated by max_slot_wal_keep_size (consumer too far behind)',
        );
      const plan = planJournalSlot(slot, last);
      if (plan.action === 'use')
        return {
          timeline: tl,
          startLsn: slot!.confirmed_flush_lsn!,
          gapReason: plan.gapReason ?? readGapPending(dir),
        };
      markGapPending(dir, plan.gapReason);
      if (plan.action === 'recreate') await dropJournalSlot(c);
      return { timeline: tl, startLsn: await createJournalSlot(c), gapReason: plan.gapReason };
    });
    if (gapReason) {
      const gap = gapRecord(last, { lsn: startLsn, timeline }, gapReason, new Date());
      await writer.append([gap]);
      writeGapState(dir, gap);
      clearGapPending(dir);
      metrics.records.inc({ type: 'gap' });
      log.error(
        {
          reason: gap.reason,
          fromLsn: gap.fromLsn,
          fromTimeline: gap.fromTimeline,
          toLsn: gap.toLsn,
          toTimeline: gap.toTimeline,
        },
        'journal gap recorded: changes before toLsn are not in the journal; a fresh backup must be taken now',
      );
      opts.onGap?.(gap);
    }
    return { timeline, startLsn };
  }

  /** One replication connection, from prepare to its end (stop or error). */
  async function session(gen: number): Promise<void> {
    const writer = createJournalWriter({ dir, journalKey, segmentBytes: opts.segmentBytes });
    try {
      const { timeline, startLsn } = await prepare(writer);
      if (!wanted(gen)) return;
      await streamSlotToJournal({
        connection: opts.connection,
        writer,
        timeline,
        start: parseLsn(startLsn),
        metrics,
        log,
        isWanted: () => wanted(gen),
        onService: (svc) => (service = svc),
        onStreaming: (on) => (streaming = on),
      });
    } finally {
      await writer.close();
    }
  }

  async function runLoop(gen: number): Promise<void> {
    let delayMs = opts.retryDelayMs ?? 1000;
    while (wanted(gen)) {
      try {
        await session(gen);
      } catch (e) {
        if (!wanted(gen)) break;
        metrics.errors.inc();
        // A connection drop is routine (restart, failover); a journal that cannot be written needs someone.
        const mustAct = e instanceof JournalError;
        log[mustAct ? 'error' : 'warn'](
          { err: (e as Error).message, retryInMs: delayMs },
          'journal consumer failed; retrying',
        );
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delayMs);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = undefined;
        delayMs = Math.min(delayMs * 2, MAX_RETRY_DELAY_MS);
        continue;
      }
      delayMs = opts.retryDelayMs ?? 1000;
    }
  }

  async function refreshLag(): Promise<void> {
    if (readingLag) return;
    readingLag = true;
    try {
      const lag = await withControl(readJournalLagBytes);
      if (lag === undefined) metrics.lagBytes.reset();
      else metrics.lagBytes.set(lag);
    } catch (e) {
      log.debug({ err: (e as Error).message }, 'journal lag not readable');
    } finally {
      readingLag = false;
    }
  }

  return {
    metrics,
    start() {
      if (lagTimer) return;
      lagTimer = setInterval(() => void refreshLag(), opts.lagIntervalMs ?? 5000);
      lagTimer.unref();
      const gen = ++generation;
      const previous = loop ?? Promise.resolve();
      loop = previous.then(() => runLoop(gen));
      void refreshLag();
    },
    async stop() {
      if (!lagTimer) return loop;
      clearInterval(lagTimer);
      lagTimer = undefined;
      generation++;
      wake?.();
      await service?.stop().catch(() => undefined);
      await loop;
      metrics.lagBytes.reset();
      metrics.running.set(0);
    },
    isRunning: () => lagTimer !== undefined,
    isStreaming: () => streaming,
  };
}
