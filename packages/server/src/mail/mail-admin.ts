/**
 * `ktadmin mail status | retry`: what the outbox holds, and a fresh start for mail whose job
 * used all its attempts (MAIL_MAX_ATTEMPTS, about 4 days of SMTP outage) — such a row is never
 * retried by itself. Nothing here reads a payload: recipients, counts, times and the SMTP
 * server's own replies only.
 */
import type { ClientBase } from 'pg';
import { runWrite, type WritePathOptions } from '../db/write-path';
import { AppError } from '../errors';
import { appendAudit, processActor } from '../audit/append-audit';
import { JOB_GIVEN_UP, MAIL_JOB_OF_ROW, NO_JOBS, outboxStats, type MailKind } from './mail-outbox';

export type OutboxJobState = 'no job yet' | 'waiting' | 'sending' | 'given up';

export interface OutboxEntry {
  id: string;
  kind: MailKind;
  org: string;
  recipient: string;
  createdAt: Date;
  attempts: number;
  state: OutboxJobState;
  /** When the job runs next (waiting). */
  nextAttemptAt: Date | null;
  /** The SMTP server's reply to the last failed attempt (never a body or token). */
  lastError: string | null;
}

/**
 * graphile-worker makes its schema when a job runner first starts (or `ktadmin backup-now`): on a
 * node whose keytrusteed never ran as the active there is none, and no row has a job yet.
 */
async function hasJobQueue(c: ClientBase): Promise<boolean> {
  const { rows } = await c.query<{ ok: boolean }>(
    `select to_regclass('graphile_worker.jobs') is not null as ok`,
  );
  return rows[0].ok;
}

/** Unsent rows, oldest first (at most `limit`), with their job's state; and how many there are. */
export async function listUnsentMail(
  c: ClientBase,
  limit = 50,
): Promise<{ total: number; givenUp: number; entries: OutboxEntry[] }> {
  const jobs = (await hasJobQueue(c)) ? 'graphile_worker.jobs' : NO_JOBS;
  const { rows } = await c.query<OutboxEntry>(
    `select o.id::text as "id", o.kind as "kind", g.name as "org", o.recipient as "recipient",
            o.created_at as "createdAt", o.attempts as "attempts", o.last_error as "lastError",
            s.state as "state", case when s.state = 'waiting' then j.run_at end as "nextAttemptAt"
       from mail_outbox o
       join orgs g on g.id = o.org_id
       left join ${jobs} j on ${MAIL_JOB_OF_ROW}
       cross join lateral (select case when j.id is null then 'no job yet'
                                       when j.locked_at is not null then 'sending'
                                       when ${JOB_GIVEN_UP} then 'given up'
                                       else 'waiting' end as state) s
      where o.sent_at is null
      order by o.id limit $1`,
    [limit],
  );
  const stats = await outboxStats(c, jobs);
  return { total: stats.unsent, givenUp: stats.givenUp, entries: rows };
}

/**
 * Gives given-up mail jobs their attempts back and runs them now (graphile-worker's
 * reschedule_jobs with attempts 0): all given-up rows, or only `ids` (which must be unsent rows
 * whose job gave up). A write on the active through the write path (the passive must confirm).
 * Returns the outbox ids rescheduled.
 */
export async function retryGivenUpMail(write: WritePathOptions, ids?: string[]): Promise<string[]> {
  if (ids) {
    const bad = ids.filter((x) => !/^[1-9][0-9]{0,18}$/.test(x));
    if (bad.length) throw new AppError('INVALID_REQUEST', `not an outbox id: ${bad.slice(0, 5).join(', ')}`);
  }
  return runWrite(write, async (c, tx) => {
    if (!(await hasJobQueue(c))) {
      if (ids?.length)
        throw new AppError(
          'NOT_FOUND',
          `no given-up mail with outbox id ${ids.slice(0, 5).join(', ')} (no mail job has run on this cluster yet)`,
        );
      return [];
    }
    const { rows } = await c.query<{ outbox_id: string; job_id: string }>(
      `select o.id::text as outbox_id, j.id::text as job_id
         from mail_outbox o join graphile_worker.jobs j on ${MAIL_JOB_OF_ROW}
        where o.sent_at is null and ${JOB_GIVEN_UP} and ($1::bigint[] is null or o.id = any($1::bigint[]))
        order by o.id`,
      [ids ?? null],
    );
    if (ids) {
      const found = new Set(rows.map((r) => r.outbox_id));
      const missing = ids.filter((x) => !found.has(x));
      if (missing.length)
        throw new AppError(
          'NOT_FOUND',
          `no given-up mail with outbox id ${missing.slice(0, 5).join(', ')} (sent, still retrying, or no such row: see ktadmin mail status)`,
        );
    }
    if (!rows.length) return [];
    const outboxIds = rows.map((r) => r.outbox_id);
    await c.query(
      `select id from graphile_worker.reschedule_jobs($1::bigint[], run_at := now(), attempts := 0)`,
      [rows.map((r) => r.job_id)],
    );
    await appendAudit(c, tx, {
      who: processActor(),
      action: 'mail.retry',
      subject: outboxIds.length > 10 ? `${outboxIds.slice(0, 10).join(',')},…` : outboxIds.join(','),
      detail: `${outboxIds.length} given-up mail job(s) rescheduled`,
    });
    return outboxIds;
  });
}
