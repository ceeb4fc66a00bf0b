import { Counter, Gauge, Registry } from 'prom-client';
import { journalNeedsFreshBackup } from './journal-gap';

/**
 * The journal's gauges, registered on the server's registry (or a private one). Values are
 * positions, counts and times only — never row data.
 */
export function createJournalMetrics(dir: string, registry: Registry = new Registry()) {
  const gap = new Gauge({
    name: 'trustee_journal_gap',
    help: 'Change journal: 1 while it has a gap (slot lost at promotion or invalidated) that no backup covers; take a fresh backup',
    registers: [registry],
    collect() {
      try {
        this.set(journalNeedsFreshBackup(dir) ? 1 : 0);
      } catch {
        // An unreadable journal dir is reported by the consumer's own errors.
      }
    },
  });
  const lagBytes = new Gauge({
    name: 'trustee_journal_lag_bytes',
    help: "Change journal: WAL bytes its slot holds back (pg_current_wal_lsn() - the slot's confirmed_flush_lsn); absent when not active",
    registers: [registry],
  });
  const lastRecord = new Gauge({
    name: 'trustee_journal_last_record_timestamp_seconds',
    help: 'Change journal: commit time of the newest transaction written, Unix seconds',
    registers: [registry],
  });
  const running = new Gauge({
    name: 'trustee_journal_streaming',
    help: 'Change journal: 1 while the consumer streams from its slot (active node only)',
    registers: [registry],
  });
  const records = new Counter({
    name: 'trustee_journal_records_total',
    help: 'Change journal: records written, by type (tx, gap)',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'trustee_journal_errors_total',
    help: 'Change journal: consumer sessions that failed (connection, slot or write errors); it retries',
    registers: [registry],
  });
  return { registry, gap, lagBytes, lastRecord, running, records, errors };
}

export type JournalMetrics = ReturnType<typeof createJournalMetrics>;
