import type { Pool } from 'pg';
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

/** Refreshes at once, then every COUNT_REFRESH_INTERVAL_MS; a failure keeps the last values (debug log). */
export function startCountRefresh(
  pool: Pool,
  metrics: Pick<Metrics, 'deposits' | 'clients'>,
  log: Logger,
  intervalMs = COUNT_REFRESH_INTERVAL_MS,
): { stop(): void } {
  let running = false;
  const tick = () => {
    if (running) return;
    running = true;
    refreshCountGauges(pool, metrics)
      .catch((e: Error) => log.debug({ err: e.message }, 'deposit/client gauges not refreshed'))
      .finally(() => (running = false));
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
