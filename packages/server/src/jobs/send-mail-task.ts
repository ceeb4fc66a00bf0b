/**
 * The graphile-worker task that sends one outbox row (mail/mail-outbox.ts), on the active only.
 *
 * At most once, with one residual window: the row is locked (`for update`) for the whole SMTP
 * conversation and marked sent in the same transaction, so a job retried after a successful send,
 * or a second job of the same row, finds `sent_at` and stops. A mail is sent twice only when the
 * SMTP server accepted it and this node died (or lost its database) before that transaction
 * committed and replicated — the job bookkeeping commits locally (jobs-pool.ts), so "replicated"
 * may lag the commit by the replication delay. The new active then sends it again, under the
 * same Message-ID (outboxMessageId), which deduplicating mail systems drop.
 */
import type { Task } from 'graphile-worker';
import type { PoolClient } from 'pg';
import type { KeyHierarchy } from '../keys/key-hierarchy';
import type { Logger } from '../logger';
import type { MailMetrics } from '../mail/mail-metrics';
import { selectContactKey } from '../orgs/contact-tokens';
import { pendingClientsMail, type PendingClientNotice, type RenderedMail } from '../mail/mail-messages';
import {
  lockOutboxRows,
  markOutboxFailed,
  markOutboxSent,
  openOutboxPayload,
  type OutboxRow,
} from '../mail/mail-outbox';
import {
  createMailTransport,
  describeSendError,
  outboxMessageId,
  protectMailText,
  sendMail,
  type SmtpSettings,
} from '../mail/send-mail';
import { serverMailKey } from '../mail/server-mail-key';

export interface MailTaskOptions {
  keys: KeyHierarchy;
  /** The cluster identity key (PEM): the server's mail key derives from it. */
  identityKeyPem: string;
  smtp: SmtpSettings;
  /** MAIL_PENDING_NOTICE_INTERVAL_SECONDS: one pending notice per contact and org per this long. */
  pendingNoticeIntervalS: number;
  log: Logger;
  metrics: MailMetrics;
}

/** The failed send, as graphile-worker records it (no body, no token). */
export class MailSendError extends Error {
  override name = 'MailSendError';
}

export function parseOutboxId(payload: unknown): string {
  const id = (payload as { outboxId?: unknown } | null)?.outboxId;
  if (typeof id !== 'string' || !/^[1-9][0-9]{0,18}$/.test(id)) {
    throw new Error('send-mail job without a valid outboxId');
  }
  return id;
}

/** A rendered mail, or undefined when nothing is left to say (every client already decided). */
async function renderRows(
  c: PoolClient,
  opts: MailTaskOptions,
  rows: OutboxRow[],
): Promise<{ mail: RenderedMail; encryptTo?: string } | undefined> {
  const payloads = await Promise.all(rows.map((r) => openOutboxPayload(opts.keys, r)));
  const first = payloads[0];
  if (first.kind === 'contact-registration') return { mail: first.mail };
  const clients: PendingClientNotice[] = [];
  for (const p of payloads) if (p.kind === 'pending-client') clients.push(p.client);
  // A client an administrator enabled or disabled meanwhile needs no notice.
  const { rows: still } = await c.query<{ fingerprint: string }>(
    `select fingerprint from clients where fingerprint = any($1::text[]) and state = 'pending'`,
    [clients.map((x) => x.fingerprint)],
  );
  const pending = new Set(still.map((r) => r.fingerprint));
  const waiting = clients.filter((x) => pending.has(x.fingerprint));
  if (!waiting.length) return undefined;
  const key = await selectContactKey(c, rows[0].org_id, rows[0].recipient);
  return { mail: pendingClientsMail({ org: rows[0].org_name, clients: waiting }), encryptTo: key?.armored };
}

export function createSendMailTask(opts: MailTaskOptions): Task {
  const transport = createMailTransport(opts.smtp);
  const log = opts.log;
  return async (payload, helpers) => {
    const id = parseOutboxId(payload);
    const job = helpers.job;
    const fields = { jobId: job.id, outboxId: id, attempt: job.attempts, maxAttempts: job.max_attempts };
    await helpers.withPgClient(async (c) => {
      await c.query('begin');
      let failure: MailSendError | undefined;
      try {
        const rows = await lockOutboxRows(c, id);
        const row = rows[0];
        const ids = rows.map((r) => r.id);
        if (!row) {
          log.warn(fields, 'mail job for an outbox row that does not exist; dropped');
        } else if (row.sent_at) {
          // The job ran again after a send that committed (retried, or a duplicate job).
          log.info({ ...fields, sentAt: row.sent_at }, 'mail already sent; not sent again');
        } else {
          const rendered = await renderRows(c, opts, rows);
          if (!rendered) {
            await markOutboxSent(c, ids, '');
            log.info({ ...fields, kind: row.kind }, 'notice dropped: its clients are no longer pending');
          } else {
            const key = await serverMailKey(opts.identityKeyPem);
            const text = await protectMailText(rendered.mail.text, key, rendered.encryptTo);
            try {
              const messageId = await sendMail(transport, opts.smtp, {
                to: row.recipient,
                subject: rendered.mail.subject,
                text,
                signerFingerprint: key.fingerprint,
                messageId: outboxMessageId(ids, opts.smtp.from),
              });
              await markOutboxSent(c, ids, messageId);
              opts.metrics.sent.inc({ kind: row.kind });
              log.info(
                { ...fields, kind: row.kind, merged: ids.length, encrypted: !!rendered.encryptTo, messageId },
                'mail sent',
              );
            } catch (e) {
              const why = describeSendError(e);
              await markOutboxFailed(c, ids, why);
              opts.metrics.sendFailures.inc({ kind: row.kind });
              log.warn(
                { ...fields, kind: row.kind, err: why, retry: job.attempts < job.max_attempts },
                'mail not accepted by the SMTP server; retried with backoff',
              );
              failure = new MailSendError(`SMTP send failed: ${why}`);
            }
          }
        }
        await c.query('commit');
      } catch (e) {
        await c.query('rollback').catch(() => undefined);
        throw e;
      }
      if (failure) throw failure;
    });
  };
}
