import type { Registry } from 'prom-client';
import { DB_NAME, DB_SUPERUSER, socketDirFor } from '@trustee/replicator';
import type { KeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import type { Logger } from '../logger';
import { deriveJournalKey } from './derive-journal-key';
import { createJournalConsumer, type JournalConsumer } from './journal-consumer';
import type { JournalGap } from './journal-record';

export interface JournalRunner {
  /** Stops following the role and stops the consumer. */
  close(): Promise<void>;
}

/**
 * Keeps the consumer running exactly while `isActive()` (the node's one decision says `active`):
 * the slot exists only on the primary, and a passive, fenced or unavailable node must not journal.
 * Checked every `intervalMs` (default 500); transitions never overlap.
 */
export function runJournalWhileActive(opts: {
  consumer: JournalConsumer;
  isActive: () => boolean;
  log: Logger;
  intervalMs?: number;
}): JournalRunner {
  const { consumer, log } = opts;
  let chain: Promise<void> = Promise.resolve();
  let closed = false;
  const tick = () => {
    chain = chain
      .then(async () => {
        if (closed) return;
        const active = opts.isActive();
        if (active && !consumer.isRunning()) {
          log.info('node is active: starting the change journal');
          consumer.start();
        } else if (!active && consumer.isRunning()) {
          log.info('node is not active: stopping the change journal');
          await consumer.stop();
        }
      })
      .catch((e: Error) => log.warn({ err: e.message }, 'journal start/stop failed'));
  };
  tick();
  const timer = setInterval(tick, opts.intervalMs ?? 500);
  timer.unref();
  return {
    async close() {
      closed = true;
      clearInterval(timer);
      await chain;
      await consumer.stop();
    },
  };
}

/**
 * keytrusteed's journal: when keytrustee.conf sets JOURNAL_DIR, a consumer on this node's
 * PostgreSQL (unix socket, user and database keytrustee) that runs while the node is active.
 * Undefined when the journal is off.
 */
export function startNodeJournal(opts: {
  conf: KeytrusteeConf;
  confdir: string;
  log: Logger;
  registry: Registry;
  isActive: () => boolean;
  onGap?: (gap: JournalGap) => void;
}): JournalRunner | undefined {
  const { conf } = opts;
  if (!conf.JOURNAL_DIR || !conf.DB_ROOTDIR) return undefined;
  const log = opts.log.child({ component: 'journal' });
  const consumer = createJournalConsumer({
    connection: {
      host: socketDirFor(conf.DB_ROOTDIR),
      port: conf.DB_PORT,
      user: DB_SUPERUSER,
      database: DB_NAME,
    },
    dir: conf.JOURNAL_DIR,
    journalKey: deriveJournalKey(confPaths(opts.confdir).masterKey),
    log,
    registry: opts.registry,
    onGap: opts.onGap,
  });
  return runJournalWhileActive({ consumer, isActive: opts.isActive, log });
}
