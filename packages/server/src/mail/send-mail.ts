/**
 * Turning a rendered mail into what goes on the wire: signed by the server's key (OpenPGP
 * cleartext signature, so `gpg --verify` checks the body as received), or signed and encrypted
 * to the recipient's uploaded key (inline armored message, `gpg --decrypt`); then nodemailer
 * to SMTP_URL.
 */
import { createHash } from 'node:crypto';
import type * as Nodemailer from 'nodemailer';
import { lazyModule } from '../lazy-module';
import { openpgp } from '../backup/openpgp';
import type { ServerMailKey } from './server-mail-key';

/** Loaded when the first mail goes out (450 KB). */
const nodemailer = lazyModule(() => require('nodemailer') as typeof Nodemailer);

/** Bounds on one SMTP conversation: a hung server must not hold the outbox row lock for long. */
const SMTP_TIMEOUT_MS = 20_000;

export interface SmtpSettings {
  url: string;
  from: string;
}

export function createMailTransport(s: SmtpSettings): Nodemailer.Transporter {
  return nodemailer.createTransport({
    url: s.url,
    connectionTimeout: SMTP_TIMEOUT_MS,
    greetingTimeout: SMTP_TIMEOUT_MS,
    socketTimeout: SMTP_TIMEOUT_MS,
  } as Parameters<typeof Nodemailer.createTransport>[0]);
}

/** The body as sent: cleartext-signed, or (with `encryptTo`) signed then encrypted to that key. */
export async function protectMailText(text: string, key: ServerMailKey, encryptTo?: string): Promise<string> {
  if (encryptTo) {
    const recipient = await openpgp.readKey({ armoredKey: encryptTo });
    return openpgp.encrypt({
      message: await openpgp.createMessage({ text }),
      encryptionKeys: recipient,
      signingKeys: key.privateKey,
    });
  }
  return openpgp.sign({
    message: await openpgp.createCleartextMessage({ text }),
    signingKeys: key.privateKey,
  });
}

/**
 * The Message-ID of the mail of these outbox rows: the same on every send of the same rows. A
 * send is at least once — the active can die after the SMTP server accepted a mail and before
 * its "sent" mark reached the passive, and the new active sends it again — so a repeat carries
 * the first one's Message-ID: mail systems that deduplicate drop it, and a reader sees it is the
 * same mail. The domain is SMTP_FROM's.
 */
export function outboxMessageId(ids: readonly string[], from: string): string {
  const sorted = [...ids].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : BigInt(x) > BigInt(y) ? 1 : 0));
  const digest = createHash('sha256').update(sorted.join(',')).digest('hex').slice(0, 16);
  const domain = /@([A-Za-z0-9.-]+)>?\s*$/.exec(from)?.[1] ?? 'trustee.invalid';
  return `<trustee-outbox.${sorted[0]}.${digest}@${domain}>`;
}

/** Sends one message under `messageId`; resolves with the Message-ID as sent. */
export async function sendMail(
  transport: Nodemailer.Transporter,
  s: SmtpSettings,
  m: { to: string; subject: string; text: string; signerFingerprint: string; messageId: string },
): Promise<string> {
  const info = await transport.sendMail({
    from: s.from,
    to: m.to,
    subject: m.subject,
    text: m.text,
    messageId: m.messageId,
    headers: { 'X-Trustee-Signer': m.signerFingerprint },
  });
  return String(info.messageId);
}

/**
 * What may be stored and logged about a failed send: the error code and the SMTP reply (the
 * server's words about the envelope), never the message (it holds the link's token).
 */
export function describeSendError(e: unknown): string {
  const err = e as { code?: unknown; responseCode?: unknown; response?: unknown; message?: unknown };
  const parts = [
    typeof err.code === 'string' ? err.code : 'ERROR',
    typeof err.responseCode === 'number' ? String(err.responseCode) : undefined,
    typeof err.response === 'string'
      ? err.response
      : typeof err.message === 'string'
        ? err.message
        : undefined,
  ];
  return parts.filter(Boolean).join(' ').slice(0, 300);
}
