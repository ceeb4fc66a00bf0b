import type { Pool } from 'pg';
import { newestBackupTime } from './jobs/backup-task';
import type { Logger } from './logger';
import type { Metrics } from './metrics';

/** How often the deposit and client gauges are refreshed, ms. */
export const COUNT_REFRESH_INTERVAL_MS = 30_000;

export const CLIENT_STATES = ['active', 'pending', 'disabled'] as const;

/** `select state, count(*) … group by state` rows → one value per known state (absent states are 0). */
export function clientCountsByState(rows: { state: string; n: string | number }[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(CLIENT_STATES.map((s) => [s, 0]));
  for (const r of rows) if (r.state in out) out[r.state] = Number(r.n);
  return out;
}

/** pg_class.reltuples is -1 until the table was first vacuumed or analyzed: report 0 then. */
export function depositEstimate(reltuples: number | string | null | undefined): number {
  const n = Number(reltuples ?? -1);
  return Number.isFinite(n) && n > 0 ? Math.round(n) : 0;
}

/**
 * One cheap refresh: the deposits estimate from the catalogue (no table scan, whatever its size)
 * and a count of clients by state (an index-free scan of a table of registrations). Runs on the
 * control pool (2 s query timeout), on the active and on the passive (a hot standby answers reads).
 */
export async function refreshCountGauges(
  pool: Pool,
  metrics: Pick<Metrics, 'deposits' | 'clients'>,
): Promise<void> {
  const est = await pool.query<{ reltuples: number }>(
    `select reltuples from pg_class where oid = to_regclass('public.deposits')`,
  );
  metrics.deposits.set(depositEstimate(est.rows[0]?.reltuples));
  const counts = await pool.query<{ state: string; n: string }>(
    'select state, count(*) as n from clients group by state',
  );
  for (const [state, n] of Object.entries(clientCountsByState(counts.rows)))
    metrics.clients.set({ state }, n);
}

/** Where this host's backups land (BACKUP_DIR): also written by `ktbackup` runs outside the server (timer, cron). */
export interface BackupWatch {
  dir: string;
  host: string;
}

/**
 * Moves trustee_backup_last_success_timestamp_seconds forward to the newest backup file of this
 * host in `dir`, so backups taken by ktbackup (the systemd timer) count as well as scheduled ones.
 */
export async function refreshBackupGauge(
  watch: BackupWatch,
  metrics: Pick<Metrics, 'backupLastSuccess'>,
): Promise<void> {
  const newest = newestBackupTime(watch.dir, watch.host);
  if (newest === undefined) return;
  const current = (await metrics.backupLastSuccess.get()).values[0]?.value ?? 0;
  if (newest > current) metrics.backupLastSuccess.set(newest);
}

/** Refreshes at once, then every COUNT_REFRESH_INTERVAL_MS; a failure keeps the last values (debug log). */
export function startCountRefresh(
  pool: Pool,
  metrics: Pick<Metrics, 'deposits' | 'clients' | 'backupLastSuccess'>,
  log: Logger,
  opts: { backups?: BackupWatch; intervalMs?: number } = {},
): { stop(): void } {
  let running = false;
  const tick = () => {
    if (running) return;
    running = true;
    Promise.all([
      refreshCountGauges(pool, metrics),
      opts.backups ? refreshBackupGauge(opts.backups, metrics) : undefined,
    ])
      .catch((e: Error) => log.debug({ err: e.message }, 'deposit/client/backup gauges not refreshed'))
      .finally(() => (running = false));
  };
  tick();
  const timer = setInterval(tick, opts.intervalMs ?? COUNT_REFRESH_INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
