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
import type { MailKind } from './mail-outbox';

export type OutboxJobState = 'no job yet' | 'waiting' | 'sending' | 'given up';

export interface OutboxEntry {
  id: string;
  kind: MailKind;
  org: string;
  recipient: string;
  createdAt: Date;
  attempts: number;
  maxAttempts: number | null;
  state: OutboxJobState;
  /** When the job runs next (waiting). */
  nextAttemptAt: Date | null;
  /** The SMTP server's reply to the last failed attempt (never a body or token). */
  lastError: string | null;
}

interface EntryRow {
  id: string;
  kind: MailKind;
  org: string;
  recipient: string;
  created_at: Date;
  attempts: number;
  max_attempts: number | null;
  run_at: Date | null;
  locked_at: Date | null;
  has_job: boolean;
  job_attempts: number | null;
  last_error: string | null;
}

const GIVEN_UP = 'j.attempts >= j.max_attempts and j.locked_at is null';

function toEntry(r: EntryRow): OutboxEntry {
  const jobAttempts = r.job_attempts;
  let state: OutboxJobState = 'no job yet';
  if (r.has_job) {
    if (r.locked_at) state = 'sending';
    else if (jobAttempts !== null && r.max_attempts !== null && jobAttempts >= r.max_attempts)
      state = 'given up';
    else state = 'waiting';
  }
  return {
    id: r.id,
    kind: r.kind,
    org: r.org,
    recipient: r.recipient,
    createdAt: r.created_at,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    state,
    nextAttemptAt: state === 'waiting' ? r.run_at : null,
    lastError: r.last_error,
  };
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
  if (!(await hasJobQueue(c))) {
    const { rows } = await c.query<EntryRow>(
      `select o.id::text, o.kind, g.name as org, o.recipient, o.created_at, o.attempts, o.last_error,
              null::int as max_attempts, null::timestamptz as run_at, null::timestamptz as locked_at,
              false as has_job, null::int as job_attempts
         from mail_outbox o join orgs g on g.id = o.org_id
        where o.sent_at is null order by o.id limit $1`,
      [limit],
    );
    const { rows: n } = await c.query<{ total: number }>(
      'select count(*)::int as total from mail_outbox where sent_at is null',
    );
    return { total: n[0].total, givenUp: 0, entries: rows.map(toEntry) };
  }
  const { rows } = await c.query<EntryRow>(
    `select o.id::text, o.kind, g.name as org, o.recipient, o.created_at, o.attempts, o.last_error,
            j.max_attempts, j.run_at, j.locked_at, j.id is not null as has_job,
            j.attempts as job_attempts
       from mail_outbox o
       join orgs g on g.id = o.org_id
       left join graphile_worker.jobs j on j.key = 'mail-' || o.id::text
      where o.sent_at is null
      order by o.id limit $1`,
    [limit],
  );
  const { rows: counts } = await c.query<{ total: number; given_up: number }>(
    `select count(*)::int as total,
            count(*) filter (where exists (select 1 from graphile_worker.jobs j
                                            where j.key = 'mail-' || o.id::text and ${GIVEN_UP}))::int as given_up
       from mail_outbox o where o.sent_at is null`,
  );
  const entries = rows.map(toEntry);
  return { total: counts[0].total, givenUp: counts[0].given_up, entries };
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
         from mail_outbox o join graphile_worker.jobs j on j.key = 'mail-' || o.id::text
        where o.sent_at is null and ${GIVEN_UP} and ($1::bigint[] is null or o.id = any($1::bigint[]))
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
