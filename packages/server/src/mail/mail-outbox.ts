/**
 * The mail outbox (migrations/0007-org-contacts.sql `mail_outbox`): mail is queued in the write
 * that causes it (adding a contact, a pending registration), so it replicates to the passive
 * with that write and survives a promotion; a graphile-worker job on the active carries only the
 * row id and sends it (jobs/send-mail-task.ts). Payloads are sealed by the key hierarchy: a
 * contact mail holds its link's token.
 */
import type { ClientBase } from 'pg';
import type { KeyHierarchy } from '../keys/key-hierarchy';
import type { PendingClientNotice, RenderedMail } from './mail-messages';

export const SEND_MAIL_TASK = 'send-mail';
/**
 * graphile-worker attempts of one mail (its backoff is exp(min(attempt, 10)) s: 3 s, 7 s, 20 s …
 * then about 6 h; 25 attempts span about 4 days of SMTP outage). After that the row stays
 * unsent, with `last_error`, and is not retried by itself.
 */
export const MAIL_MAX_ATTEMPTS = 25;

export type MailKind = 'contact-registration' | 'pending-client';
export type MailPayload =
  | { kind: 'contact-registration'; mail: RenderedMail }
  | { kind: 'pending-client'; client: PendingClientNotice };

export interface OutboxRow {
  id: string;
  kind: MailKind;
  org_id: string;
  org_name: string;
  recipient: string;
  payload_sealed: Buffer;
  payload_key_id: string;
  attempts: number;
  sent_at: Date | null;
}

function payloadAad(kind: MailKind, orgId: string, recipient: string): Buffer {
  return Buffer.from(`trustee-mail-v1\u0000${kind}\u0000${orgId}\u0000${recipient}`, 'utf8');
}

/** Queues one mail in the caller's transaction; queues its job too when this role can. */
export async function insertOutboxMail(
  c: ClientBase,
  keys: KeyHierarchy,
  m: { orgId: string; recipient: string; payload: MailPayload },
): Promise<string> {
  const sealed = await keys.seal(
    Buffer.from(JSON.stringify(m.payload), 'utf8'),
    payloadAad(m.payload.kind, m.orgId, m.recipient),
  );
  const { rows } = await c.query<{ id: string }>(
    `insert into mail_outbox (kind, org_id, recipient, payload_sealed, payload_key_id)
     values ($1, $2, $3, $4, $5) returning id`,
    [m.payload.kind, m.orgId, m.recipient, sealed.blob, sealed.keyId],
  );
  const id = rows[0].id;
  // Pending-client notices wait for the sweep (they are coalesced per contact); a contact mail
  // goes at once when the job queue exists and this role may use it (the admin tools' owner
  // role; not the request role, which has no grant on graphile_worker).
  if (m.payload.kind === 'contact-registration' && (await canQueueJobs(c))) await queueMailJob(c, id);
  return id;
}

/** False before the first job runner created graphile-worker's schema, or for the request role. */
async function canQueueJobs(c: ClientBase): Promise<boolean> {
  const { rows } = await c.query<{ ok: boolean }>(
    `select case when to_regnamespace('graphile_worker') is null then false
                 else has_schema_privilege('graphile_worker', 'USAGE') end as ok`,
  );
  return rows[0].ok;
}

/**
 * The job of one outbox row. Keyed by the row id in `unsafe_dedupe` mode: while a job of that
 * key exists (waiting, running or failed for good) another add is a no-op, so the sweep never
 * resets a job's backoff nor runs two jobs of one mail.
 */
export async function queueMailJob(c: ClientBase, id: string): Promise<void> {
  await c.query(
    `select graphile_worker.add_job($1, json_build_object('outboxId', $2::text),
                                    max_attempts => $3, job_key => 'mail-' || $2::text,
                                    job_key_mode => 'unsafe_dedupe')`,
    [SEND_MAIL_TASK, id, MAIL_MAX_ATTEMPTS],
  );
}

/** SQL: `j` is the graphile-worker job of outbox row `o` (its job_key, queueMailJob). */
export const MAIL_JOB_OF_ROW = `j.key = 'mail-' || o.id::text`;
/** SQL: job `j` used all its attempts and does not run: it is never retried by itself. */
export const JOB_GIVEN_UP = 'j.attempts >= j.max_attempts and j.locked_at is null';
/** The relation holding the jobs, or an empty stand-in before graphile-worker made its schema. */
export const NO_JOBS = `(select null::bigint as id, null::text as key, null::int as attempts, null::int as max_attempts,
         null::timestamptz as run_at, null::timestamptz as locked_at where false)`;

/**
 * Unsent rows that need a job: queued by a role that could not add one, queued before any job
 * runner existed, or left by an active that died (its jobs may not have replicated). Pending
 * notices of a contact that got one less than `pendingNoticeIntervalS` ago wait.
 * Returns how many jobs were queued.
 */
export async function sweepOutbox(c: ClientBase, pendingNoticeIntervalS = 60, limit = 100): Promise<number> {
  const { rows } = await c.query<{ id: string }>(
    `select o.id from mail_outbox o
      where o.sent_at is null
        -- rows with a job (waiting, running, or failed for good) are left alone, so a backlog
        -- of given-up rows never hides newer ones behind the limit
        and not exists (select 1 from graphile_worker.jobs j where ${MAIL_JOB_OF_ROW})
        and not (o.kind = 'pending-client' and exists (
              select 1 from mail_outbox s
               where s.org_id = o.org_id and s.recipient = o.recipient and s.kind = 'pending-client'
                 and s.sent_at > now() - make_interval(secs => $1)))
      order by o.id limit $2`,
    [pendingNoticeIntervalS, limit],
  );
  for (const r of rows) await queueMailJob(c, r.id);
  return rows.length;
}

export interface OutboxStats {
  unsent: number;
  /** Age of the oldest unsent row, s (0: none). */
  oldestSeconds: number;
  /** Unsent rows whose job used all its attempts (failed for good; not retried by itself). */
  givenUp: number;
}

/**
 * What the metrics and `ktadmin mail status` show of the outbox (the active's sweep counts it
 * every few seconds). `jobs`: graphile_worker.jobs, or NO_JOBS before its schema exists.
 */
export async function outboxStats(c: ClientBase, jobs = 'graphile_worker.jobs'): Promise<OutboxStats> {
  const { rows } = await c.query<OutboxStats>(
    `select count(*)::int as "unsent",
            coalesce(extract(epoch from now() - min(o.created_at)), 0)::float8 as "oldestSeconds",
            count(*) filter (where exists (
              select 1 from ${jobs} j where ${MAIL_JOB_OF_ROW} and ${JOB_GIVEN_UP}))::int as "givenUp"
       from mail_outbox o where o.sent_at is null`,
  );
  return rows[0];
}

/** Locks one row (and, for a pending notice, the contact's other unsent ones to merge). */
export async function lockOutboxRows(c: ClientBase, id: string): Promise<OutboxRow[]> {
  const cols = `o.id, o.kind, o.org_id, g.name as org_name, o.recipient, o.payload_sealed,
                o.payload_key_id, o.attempts, o.sent_at`;
  const { rows } = await c.query<OutboxRow>(
    `select ${cols} from mail_outbox o join orgs g on g.id = o.org_id where o.id = $1 for update of o`,
    [id],
  );
  const first = rows[0];
  if (!first || first.sent_at || first.kind !== 'pending-client') return rows;
  const more = await c.query<OutboxRow>(
    `select ${cols} from mail_outbox o join orgs g on g.id = o.org_id
      where o.org_id = $1 and o.recipient = $2 and o.kind = 'pending-client' and o.sent_at is null
        and o.id <> $3
      order by o.id limit 500 for update of o skip locked`,
    [first.org_id, first.recipient, id],
  );
  return [first, ...more.rows];
}

export async function openOutboxPayload(keys: KeyHierarchy, row: OutboxRow): Promise<MailPayload> {
  const plain = await keys.open(
    row.payload_key_id,
    row.payload_sealed,
    payloadAad(row.kind, row.org_id, row.recipient),
  );
  return JSON.parse(plain.toString('utf8')) as MailPayload;
}

export async function markOutboxSent(c: ClientBase, ids: string[], messageId: string): Promise<void> {
  await c.query(
    `update mail_outbox set sent_at = now(), message_id = $2, attempts = attempts + 1, last_error = null
      where id = any($1::bigint[])`,
    [ids, messageId],
  );
}

/** `error` must never hold a token or body: callers pass the SMTP code and reply only. */
export async function markOutboxFailed(c: ClientBase, ids: string[], error: string): Promise<void> {
  await c.query(
    `update mail_outbox set attempts = attempts + 1, last_error = $2 where id = any($1::bigint[])`,
    [ids, error.slice(0, 500)],
  );
}

/**
 * A client registered without the code: a notice to every contact of its org, in the
 * registration's write. Bounded: the org's pending cap (MAX_PENDING_CLIENTS_PER_ORG) bounds the
 * rows, and the sender merges a contact's notices into one mail per MAIL_PENDING_NOTICE_INTERVAL_SECONDS.
 */
export async function insertPendingNotices(
  c: ClientBase,
  keys: KeyHierarchy,
  org: { id: string; contacts: string[] },
  client: PendingClientNotice,
): Promise<void> {
  for (const recipient of org.contacts) {
    await insertOutboxMail(c, keys, {
      orgId: org.id,
      recipient,
      payload: { kind: 'pending-client', client },
    });
  }
}
