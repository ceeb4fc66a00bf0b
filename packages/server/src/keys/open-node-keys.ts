import type { KeytrusteeConf } from '../config';
import type { Db } from '../db/pool';
import { StartupError } from '../db/node-db';
import type { WritePathOptions } from '../db/write-path';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { everyMs } from '../rate-limit';
import type { HsmKeyHierarchy } from './hsm-key-hierarchy';
import { HsmUnavailableError } from './key-hierarchy';
import { openKeyHierarchy, type OpenedKeys } from './open-key-hierarchy';

/**
 * keytrusteed's key hierarchy: what openKeyHierarchy opens, with the HSM's operations counted in
 * the metrics. A missing token, a wrong PIN, a PIN file readable by others or a KEK the token
 * lacks stop the start (StartupError, the reason in the message); a database not answering yet
 * does not (the data keys are loaded by the maintenance loop once it answers).
 */
/** The outcome of the last HSM operation, for /v1/health (no secrets: a reason code only). */
export interface HsmStatus {
  up: boolean;
  reason: string | null;
  at: string | null;
}

export async function openNodeKeys(
  confdir: string,
  conf: KeytrusteeConf,
  db: Db,
  metrics: Metrics,
  log: Logger,
): Promise<OpenedKeys & { hsmStatus: HsmStatus }> {
  let opened: OpenedKeys;
  const hsmStatus: HsmStatus = { up: true, reason: null, at: null };
  try {
    opened = await openKeyHierarchy(confdir, conf, {
      pool: db.pool,
      observer: (op, seconds, reason) => {
        metrics.observeHsm(op, seconds, reason);
        hsmStatus.up = !reason;
        hsmStatus.reason = reason ?? null;
        hsmStatus.at = new Date().toISOString();
      },
      onRewrap: (n) => metrics.hsmDataKeysRewrapped.inc(n),
      tolerateDatabaseDown: true,
    });
  } catch (e) {
    throw new StartupError(`key HSM: ${(e as Error).message}`);
  }
  if (opened.hsm) {
    metrics.initHsmSeries();
    log.info(
      { hsm: opened.hsm.kek.description, dataKey: opened.hsm.currentKeyId },
      'at-rest keys: data keys wrapped by a KEK on the HSM',
    );
  }
  return { ...opened, hsmStatus };
}

/**
 * Every `intervalMs`: re-reads the current data key and, on the active, makes a new one when it
 * is older than HSM_DATA_KEY_MAX_AGE_SECONDS. A failure is logged (at most every 10 s) and
 * retried on the next tick; rows whose data key is cached keep working meanwhile.
 */
export function startHsmMaintenance(opts: {
  hsm: HsmKeyHierarchy;
  intervalMs: number;
  write: () => WritePathOptions | undefined;
  metrics: Metrics;
  log: Logger;
}): { stop(): void } {
  const warn = everyMs(10_000);
  const tick = async () => {
    try {
      await opts.hsm.maintain(opts.write());
    } catch (e) {
      if (warn.due())
        opts.log.warn(
          {
            reason: e instanceof HsmUnavailableError ? e.reason : (e as Error).name,
            err: (e as Error).message,
          },
          'HSM upkeep failed; cached data keys keep working, others are UNAVAILABLE until it recovers',
        );
    } finally {
      opts.metrics.hsmDataKeyCacheEntries.set(opts.hsm.cache.size);
    }
  };
  // Every intervalMs; every second while the keys are not loaded yet (database down at start).
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(
      () => void tick().finally(schedule),
      opts.hsm.initialised ? opts.intervalMs : Math.min(opts.intervalMs, 1000),
    );
    timer.unref();
  };
  schedule();
  opts.metrics.hsmDataKeyCacheEntries.set(opts.hsm.cache.size);
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
