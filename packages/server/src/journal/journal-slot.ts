/**
 * The journal's logical replication slot: inspect, decide, create. PG 15 keeps logical slots
 * only on the primary and loses them at promotion, and max_slot_wal_keep_size may invalidate
 * one whose consumer was away too long; every such case restarts the journal with a GAP record.
 * @see https://www.postgresql.org/docs/15/view-pg-replication-slots.html
 */
import type { ClientBase } from 'pg';
import { DB_NAME } from '@trustee/replicator';
import type { GapReason, JournalGap, JournalRecord } from './journal-record';
import { canonicalLsn } from './pgoutput-transactions';

export const JOURNAL_SLOT = 'trustee_journal';
export const JOURNAL_PUBLICATION = 'trustee_journal';

export interface SlotRow {
  plugin: string | null;
  slot_type: string;
  database: string | null;
  /** reserved | extended | unreserved | lost (PG ≥ 13). */
  wal_status: string | null;
  confirmed_flush_lsn: string | null;
  active_pid: number | null;
}

export async function inspectJournalSlot(c: ClientBase): Promise<SlotRow | undefined> {
  const { rows } = await c.query<SlotRow>(
    `select plugin, slot_type, database, wal_status, confirmed_flush_lsn::text, active_pid
       from pg_replication_slots where slot_name = $1`,
    [JOURNAL_SLOT],
  );
  return rows[0];
}

/** The WAL insert timeline of a primary (exact at once after a promotion, unlike pg_control_checkpoint()). */
export async function readInsertTimeline(c: ClientBase): Promise<number> {
  const { rows } = await c.query<{ tl: number }>(
    `select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int as tl`,
  );
  return rows[0].tl;
}

/** pg_control_system().system_identifier: the same on both nodes of a pair, new after initdb. */
export async function readSystemIdentifier(c: ClientBase): Promise<string> {
  const { rows } = await c.query<{ id: string }>(
    'select system_identifier::text as id from pg_control_system()',
  );
  return rows[0].id;
}

/** Bytes of WAL the slot holds back (pg_current_wal_lsn() - confirmed_flush_lsn); undefined without a slot. */
export async function readJournalLagBytes(c: ClientBase): Promise<number | undefined> {
  const { rows } = await c.query<{ lag: number | null }>(
    `select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 as lag
       from pg_replication_slots where slot_name = $1`,
    [JOURNAL_SLOT],
  );
  return rows[0]?.lag ?? undefined;
}

export type SlotPlan =
  | { action: 'use'; gapReason?: GapReason }
  | { action: 'create'; gapReason: GapReason }
  | { action: 'recreate'; gapReason: GapReason };

/**
 * What to do with the slot, given the journal's newest record. A journal with no record yet
 * starts with a 'journal-start' gap: nothing before it is journaled, so replay from an older
 * backup must not pretend otherwise.
 */
export function planJournalSlot(slot: SlotRow | undefined, last: JournalRecord | undefined): SlotPlan {
  if (!slot) return { action: 'create', gapReason: last ? 'slot-missing' : 'journal-start' };
  if (slot.wal_status === 'lost') return { action: 'recreate', gapReason: 'slot-invalidated' };
  if (slot.slot_type !== 'logical' || slot.plugin !== 'pgoutput' || slot.database !== DB_NAME)
    return { action: 'recreate', gapReason: 'slot-unusable' };
  return last ? { action: 'use' } : { action: 'use', gapReason: 'journal-start' };
}

/** The GAP record between the journal's newest record and where streaming resumes. */
export function gapRecord(
  last: JournalRecord | undefined,
  to: { lsn: string; timeline: number },
  reason: GapReason,
  now: Date,
): JournalGap {
  const toLsn = canonicalLsn(to.lsn);
  return {
    type: 'gap',
    lsn: toLsn,
    timeline: to.timeline,
    fromLsn: last ? last.lsn : null,
    fromTimeline: last ? last.timeline : null,
    toLsn,
    toTimeline: to.timeline,
    reason,
    at: now.toISOString(),
  };
}

/** Creates the slot (it waits for running transactions to build its snapshot); returns its start LSN. */
export async function createJournalSlot(c: ClientBase): Promise<string> {
  const { rows } = await c.query<{ lsn: string }>(
    `select lsn::text from pg_create_logical_replication_slot($1, 'pgoutput')`,
    [JOURNAL_SLOT],
  );
  return rows[0].lsn;
}

export async function dropJournalSlot(c: ClientBase): Promise<void> {
  await c.query('select pg_drop_replication_slot($1)', [JOURNAL_SLOT]);
}
