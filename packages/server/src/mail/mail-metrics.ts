import { Counter, Gauge, type Registry } from 'prom-client';
import type { MailKind } from './mail-outbox';

const MAIL_KINDS: readonly MailKind[] = ['contact-registration', 'pending-client'];

/** Mail series. Labels are mail kinds of this code base, never recipients or contents. */
export function createMailMetrics(registry: Registry) {
  const m = {
    enabled: new Gauge({
      name: 'trustee_mail_enabled',
      help: '1 when SMTP_URL is set on this node (mail is sent by the active); 0: mail stays queued in mail_outbox',
      registers: [registry],
    }),
    sent: new Counter({
      name: 'trustee_mail_sent_total',
      help: 'Mails the SMTP server accepted from this node, by kind (merged pending-client notices count once)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    sendFailures: new Counter({
      name: 'trustee_mail_send_failures_total',
      help: 'Send attempts the SMTP server refused or that failed on the way, by kind; each is retried with backoff',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    unsent: new Gauge({
      name: 'trustee_mail_unsent',
      help: 'Outbox rows not sent yet, as the active last counted them (every 5 s while SMTP_URL is set; 0 on a passive or with mail off: ktadmin mail status counts them then)',
      registers: [registry],
    }),
    oldestUnsentSeconds: new Gauge({
      name: 'trustee_mail_oldest_unsent_seconds',
      help: 'Age of the oldest unsent outbox row, as the active last counted (0: none)',
      registers: [registry],
    }),
    givenUp: new Gauge({
      name: 'trustee_mail_given_up',
      help: 'Unsent outbox rows whose job used all its attempts: not retried by themselves; see `ktadmin mail status`, then `ktadmin mail retry`',
      registers: [registry],
    }),
  };
  // Every kind's series exists from the start (at 0), so a dashboard or a rate() has one to read.
  for (const kind of MAIL_KINDS) {
    m.sent.inc({ kind }, 0);
    m.sendFailures.inc({ kind }, 0);
  }
  return m;
}

export type MailMetrics = ReturnType<typeof createMailMetrics>;
