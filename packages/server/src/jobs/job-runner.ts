/**
 * Background jobs (DESIGN.md "Roles"): a graphile-worker runner that runs only while this node's
 * one decision says `active`. A check every second starts it on the active and stops it when
 * the node stops being active (demoted, fenced, database gone). graphile-worker's jobs and cron
 * state live in the replicated database, so after a promotion the new active's runner picks up
 * the schedule, and any job the lost active had locked, where they were.
 */
import {
  Logger as WorkerLogger,
  makeWorkerUtils,
  parseCrontab,
  run,
  type Runner,
  type TaskList,
} from 'graphile-worker';
import type { Pool } from 'pg';
import { ConfigError, type KeytrusteeConf } from '../config';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { BACKUP_TASK, backupSettings, buildBackupCrontab, type BackupSettings } from './backup-schedule';
import { createBackupTask, newestBackupTime } from './backup-task';
import { createJobsPool } from './jobs-pool';
import { outboxStats, SEND_MAIL_TASK, sweepOutbox } from '../mail/mail-outbox';
import { createSendMailTask, type MailTaskOptions } from './send-mail-task';

export interface JobRunnerOptions {
  confdir: string;
  conf: KeytrusteeConf;
  log: Logger;
  metrics: Metrics;
  /** Whether the node's one decision is `active` now (node-state.ts `decide().role`). */
  isActive: () => boolean;
  /** How often the role is checked, ms; default 1000. */
  checkIntervalMs?: number;
  /** How long a stop waits for a running job before failing it, ms; default 10000. */
  stopTimeoutMs?: number;
  /** Wait after a failed start before the next attempt, ms; default 5000. */
  retryStartMs?: number;
  /** Contact mail and pending-client notices (SMTP_URL set); unset: mail stays in the outbox. */
  mail?: Omit<MailTaskOptions, 'log' | 'metrics'>;
  /** How often the active re-queues unsent outbox rows, ms; default 5000. */
  mailSweepMs?: number;
}

export interface JobRunner {
  readonly backups: BackupSettings;
  /** Starts the periodic role check (the first check runs at once). */
  start(): void;
  /** Ends the role check and stops the runner if it runs (bounded by stopTimeoutMs + 10 s). */
  stop(): Promise<void>;
  /** True while graphile-worker runs on this node. */
  isRunning(): boolean;
  /** One role check: start or stop the runner as the decision says. */
  check(): Promise<void>;
}

/** graphile-worker's log lines into pino, with its scope (worker, task, job) as fields. */
function workerLogger(log: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const error = (meta as { error?: unknown } | undefined)?.error;
    const fields = {
      workerId: scope.workerId,
      task: scope.taskIdentifier,
      jobId: scope.jobId,
      ...(error ? { err: error instanceof Error ? error.message : String(error) } : {}),
    };
    const lvl =
      level === 'error' ? 'error' : level === 'warning' ? 'warn' : level === 'info' ? 'info' : 'debug';
    log[lvl](fields, message);
  });
}

/** Resolves true when `p` settled within `ms`, false on timeout. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function createJobRunner(opts: JobRunnerOptions): JobRunner {
  const log = opts.log;
  const backups = backupSettings(opts.confdir, opts.conf);
  let parsedCronItems: ReturnType<typeof parseCrontab>;
  try {
    parsedCronItems = parseCrontab(buildBackupCrontab(backups));
  } catch (e) {
    throw new ConfigError(`invalid BACKUP_SCHEDULE "${opts.conf.BACKUP_SCHEDULE}": ${(e as Error).message}`);
  }
  const taskList: TaskList = {
    [BACKUP_TASK]: createBackupTask({
      confdir: opts.confdir,
      host: opts.conf.HOST,
      settings: backups,
      metrics: opts.metrics,
      log,
    }),
  };
  if (opts.mail)
    taskList[SEND_MAIL_TASK] = createSendMailTask({ ...opts.mail, log, metrics: opts.metrics.mail });
  const workerLog = workerLogger(log);
  const mailSweepMs = opts.mailSweepMs ?? 5000;
  const checkIntervalMs = opts.checkIntervalMs ?? 1000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  const retryStartMs = opts.retryStartMs ?? 5000;

  if (backups.enabled) {
    log.info(
      { schedule: backups.schedule, keep: backups.keep, dir: backups.dir, recipient: backups.recipient },
      'scheduled backups on: run by the active node only (schedule in UTC)',
    );
  } else {
    log.info(
      'scheduled backups off: BACKUP_GPG_RECIPIENT is not set in keytrustee.conf (never scheduled in cleartext)',
    );
  }
  opts.metrics.mail.enabled.set(opts.mail ? 1 : 0);
  /** The outbox gauges are the active's view: a node that stops being active shows none. */
  const clearMailGauges = () => {
    opts.metrics.mail.unsent.set(0);
    opts.metrics.mail.oldestUnsentSeconds.set(0);
    opts.metrics.mail.givenUp.set(0);
  };
  if (opts.mail) {
    log.info(
      { from: opts.mail.smtp.from },
      'mail on: contact mail and pending-client notices sent by the active',
    );
  } else {
    log.info(
      'mail off: SMTP_URL is not set in keytrustee.conf; contact mail and pending-client notices stay unsent in mail_outbox',
    );
  }
  const newest = newestBackupTime(backups.dir, opts.conf.HOST);
  if (newest !== undefined) opts.metrics.backupLastSuccess.set(newest);

  let runner: Runner | undefined;
  let pool: Pool | undefined;
  let timer: NodeJS.Timeout | undefined;
  let checking: Promise<void> | undefined;
  let closed = false;
  let nextStartAt = 0;
  let lastStartError: string | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;

  /**
   * Queues a job for every unsent outbox row without one: at activation (what a lost active left,
   * or what was queued while mail was off) and then every mailSweepMs (pending-client notices,
   * which the request role queues without a job, and coalesced ones whose minute has passed).
   */
  async function sweepMail(p: Pool): Promise<void> {
    try {
      const client = await p.connect();
      try {
        await sweepOutbox(client, opts.mail?.pendingNoticeIntervalS);
        const stats = await outboxStats(client);
        opts.metrics.mail.unsent.set(stats.unsent);
        opts.metrics.mail.oldestUnsentSeconds.set(stats.oldestSeconds);
        opts.metrics.mail.givenUp.set(stats.givenUp);
      } finally {
        client.release();
      }
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'mail outbox sweep failed; next sweep retries');
    }
  }

  /** Locks held by workers that no longer exist (a killed server, a lost active) are released. */
  async function releaseStaleLocks(p: Pool): Promise<void> {
    const utils = await makeWorkerUtils({ pgPool: p, logger: workerLog }); // creates/migrates graphile_worker
    try {
      // Only this node's runner works on this database, and it has not started yet: every
      // lock in it belongs to a dead worker. (Backups stay exclusive by their advisory lock.)
      const { rows } = await utils.withPgClient((c) =>
        c.query<{ locked_by: string; jobs: string }>(
          'select locked_by, count(*)::text as jobs from graphile_worker.jobs where locked_by is not null group by locked_by',
        ),
      );
      if (rows.length) {
        await utils.forceUnlockWorkers(rows.map((r) => r.locked_by));
        log.warn(
          { workerIds: rows.map((r) => r.locked_by), jobs: rows.reduce((n, r) => n + Number(r.jobs), 0) },
          'released jobs locked by workers that are gone (killed server or lost active); they run again here',
        );
      }
    } finally {
      await utils.release();
    }
  }

  async function startRunner(): Promise<void> {
    const p = createJobsPool(opts.conf, opts.confdir);
    let r: Runner;
    try {
      await releaseStaleLocks(p);
      r = await run({
        pgPool: p,
        logger: workerLog,
        concurrency: 1,
        // keytrusteed handles SIGTERM/SIGINT itself and stops the runner in close().
        noHandleSignals: true,
        pollInterval: 2000,
        taskList,
        // The runner also runs for mail alone: the backup schedule only when backups are on
        // (a schedule without a recipient must never run; the spec is still validated above).
        parsedCronItems: backups.enabled ? parsedCronItems : [],
        // graphile-worker 0.17.3 does not await a job's completion/failure update unless it is
        // batched: with the database gone mid-job that rejection went unhandled and killed
        // keytrusteed. Batched (delay 0), an error there shuts the runner down instead.
        preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
      });
    } catch (e) {
      await p.end().catch(() => undefined);
      throw e;
    }
    runner = r;
    pool = p;
    lastStartError = undefined;
    opts.metrics.jobRunnerActive.set(1);
    log.info({ tasks: Object.keys(taskList) }, 'job runner started (this node is the active)');
    if (opts.mail) {
      void sweepMail(p);
      sweepTimer = setInterval(() => void sweepMail(p), mailSweepMs);
      sweepTimer.unref();
    }
    // A runner that ends on its own (database gone, a job it could not release) is cleaned up
    // here and restarted by a later check. Since 0.17 its promise may resolve rather than reject
    // then (graphile/worker#635), so any settling we did not ask for counts.
    const ended = (e?: unknown) => {
      if (runner !== r) return;
      log.error(
        { err: e instanceof Error ? e.message : undefined },
        'job runner ended on its own; restarting it while this node is active',
      );
      runner = undefined;
      pool = undefined;
      if (sweepTimer) clearInterval(sweepTimer);
      sweepTimer = undefined;
      clearMailGauges();
      opts.metrics.jobRunnerActive.set(0);
      nextStartAt = Date.now() + retryStartMs;
      void p.end().catch(() => undefined);
    };
    r.promise.then(() => ended(), ended);
  }

  async function stopRunner(reason: string): Promise<void> {
    const r = runner;
    const p = pool;
    if (sweepTimer) clearInterval(sweepTimer);
    sweepTimer = undefined;
    runner = undefined;
    pool = undefined;
    clearMailGauges();
    opts.metrics.jobRunnerActive.set(0);
    if (!r) return;
    log.info({ reason }, 'job runner stopping');
    const graceful = Promise.resolve(r.stop()).catch(() => undefined);
    if (!(await settlesWithin(graceful, stopTimeoutMs))) {
      log.warn({ stopTimeoutMs }, 'a job is still running; failing it so it is retried by the active');
      await settlesWithin(
        Promise.resolve(r.kill()).catch(() => undefined),
        5000,
      );
    }
    if (p)
      await settlesWithin(
        p.end().catch(() => undefined),
        5000,
      );
    log.info({ reason }, 'job runner stopped');
  }

  async function checkOnce(): Promise<void> {
    const wanted = (backups.enabled || !!opts.mail) && !closed && opts.isActive();
    if (wanted && !runner) {
      if (Date.now() < nextStartAt) return;
      try {
        await startRunner();
      } catch (e) {
        nextStartAt = Date.now() + retryStartMs;
        const message = (e as Error).message;
        // Once per distinct reason at error level, so a long outage does not flood the log.
        log[message === lastStartError ? 'debug' : 'error'](
          { err: message, retryInMs: retryStartMs },
          'job runner could not start',
        );
        lastStartError = message;
      }
    } else if (!wanted && runner) {
      await stopRunner(closed ? 'server stopping' : 'this node is no longer the active');
    }
  }

  function check(): Promise<void> {
    // One check at a time: a start or stop in progress is never overlapped by another.
    checking ??= checkOnce().finally(() => {
      checking = undefined;
    });
    return checking;
  }

  return {
    backups,
    start() {
      if (timer || closed) return;
      timer = setInterval(() => void check(), checkIntervalMs);
      timer.unref();
      void check();
    },
    async stop() {
      closed = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      if (checking) await checking;
      await stopRunner('server stopping');
    },
    isRunning: () => runner !== undefined,
    check,
  };
}
