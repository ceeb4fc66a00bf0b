/**
 * Synchronous replication on the active: `synchronous_standby_names` via ALTER SYSTEM (so it
 * survives restarts and lands in postgresql.auto.conf), reload, and wait for the standby to be `sync`.
 * @see https://www.postgresql.org/docs/current/runtime-config-replication.html#GUC-SYNCHRONOUS-STANDBY-NAMES
 */
import { escapeLiteral, type Client } from 'pg';
import { ReplicatorError } from '../errors';
import { connectLocal } from './database';
import type { PgInstance } from './instance';

const SECOND_MS = 1000;

/** How many standbys must confirm (FIRST n = priority order, ANY n = quorum). */
export interface SyncStandbyPolicy {
  method?: 'FIRST' | 'ANY';
  /** Default 1. */
  count?: number;
}

/** Quotes a standby name as an identifier, so case, dashes and dots survive. */
function quoteStandbyName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `FIRST 1 ("node_b")`; empty string (asynchronous replication) for no names. */
export function renderSyncStandbyNames(names: string[], policy: SyncStandbyPolicy = {}): string {
  if (names.length === 0) return '';
  const count = policy.count ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > names.length) {
    throw new ReplicatorError(
      'INVALID_ARGUMENT',
      `sync standby count must be 1..${names.length}, got ${count}`,
    );
  }
  return `${policy.method ?? 'FIRST'} ${count} (${names.map(quoteStandbyName).join(', ')})`;
}

export interface SyncWaitOptions {
  /** How long to wait for `sync_state = 'sync'`; default 30 s. */
  timeoutMs?: number;
  /** Poll interval; default 200 ms. */
  pollMs?: number;
}

interface StandbyRow {
  application_name: string;
  state: string;
  sync_state: string;
}

/** What the wait saw last, as words for the timeout message. */
export function describeSyncWait(standbyName: string, rows: StandbyRow[], timeoutMs: number): string {
  const after = `after ${formatSeconds(timeoutMs)}`;
  const mine = rows.find((r) => r.application_name === standbyName);
  if (mine) return `standby ${standbyName} is '${mine.state}'/'${mine.sync_state}' ${after}`;
  if (rows.length === 0) return `no standby connected ${after}; start the passive and check its log`;
  const others = rows.map((r) => r.application_name).join(', ');
  return (
    `no standby named ${standbyName} connected ${after} (connected: ${others}); ` +
    `the passive's primary_conninfo must set application_name=${standbyName}`
  );
}

function formatSeconds(ms: number): string {
  return `${Number((ms / SECOND_MS).toFixed(1))}s`;
}

async function setSyncStandbyNames(client: Client, value: string | undefined): Promise<void> {
  await client.query(
    value === undefined
      ? 'ALTER SYSTEM RESET synchronous_standby_names'
      : `ALTER SYSTEM SET synchronous_standby_names = ${escapeLiteral(value)}`,
  );
  await client.query('select pg_reload_conf()');
}

/**
 * Makes `standbyName` the synchronous standby of the active `inst` and waits until
 * pg_stat_replication shows it `sync`. From then on every commit waits for it: if it is down,
 * writes block (the server's write gate refuses them first). Throws REPLICATION_TIMEOUT saying
 * what was seen.
 */
export async function enableSyncReplication(
  inst: PgInstance,
  standbyName: string,
  opts: SyncWaitOptions = {},
): Promise<void> {
  const client = await connectLocal(inst, 'postgres');
  try {
    await setSyncStandbyNames(client, renderSyncStandbyNames([standbyName]));
    await waitForSyncStandby(client, standbyName, opts);
  } finally {
    await client.end();
  }
}

/**
 * Names `standbyName` as the synchronous standby without waiting for it (e.g. right after a
 * promotion, before the old active rejoins: commits then need it, and the write gate refuses
 * writes until it streams).
 */
export async function setSyncStandby(inst: PgInstance, standbyName: string): Promise<void> {
  const client = await connectLocal(inst, 'postgres');
  try {
    await setSyncStandbyNames(client, renderSyncStandbyNames([standbyName]));
  } finally {
    await client.end();
  }
}

/** Polls pg_stat_replication until `standbyName` is streaming with sync_state `sync`. */
export async function waitForSyncStandby(
  client: Client,
  standbyName: string,
  opts: SyncWaitOptions = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 30 * SECOND_MS;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<StandbyRow>(
      'select application_name, state, sync_state from pg_stat_replication order by application_name',
    );
    if (
      rows.some(
        (r) => r.application_name === standbyName && r.sync_state === 'sync' && r.state === 'streaming',
      )
    )
      return;
    if (Date.now() >= deadline) {
      throw new ReplicatorError('REPLICATION_TIMEOUT', describeSyncWait(standbyName, rows, timeoutMs), {
        details: { standbyName, seen: rows },
      });
    }
    await new Promise((r) => setTimeout(r, Math.min(opts.pollMs ?? 200, Math.max(deadline - Date.now(), 1))));
  }
}

/**
 * Back to asynchronous replication (ALTER SYSTEM RESET + reload). Commits waiting for a standby
 * are released and commit locally.
 */
export async function disableSyncReplication(inst: PgInstance): Promise<void> {
  const client = await connectLocal(inst, 'postgres');
  try {
    await setSyncStandbyNames(client, undefined);
  } finally {
    await client.end();
  }
}
