/**
 * The texts of the mail the server sends (pure: rendered from what the outbox holds). The contact
 * mail follows the seed ("Notification Email and GPG Keys") with this product's name.
 */

export const CONTACT_MAIL_SUBJECT = 'KeyTrustee Contact Registration';

export interface RenderedMail {
  subject: string;
  text: string;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** C `asctime` in UTC, as the seed prints it: `Thu Sep  3 00:08:25 2015 UTC`. */
export function formatUtcAsctime(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const time = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${time} ${d.getUTCFullYear()} UTC`;
}

/** This node's public URL from keytrustee.conf (`ktadmin init --host/--port`; PORT 0: 11371). */
export function nodePublicUrl(host: string, port: number): string {
  return `https://${host}:${port || 11371}`;
}

/** The link of the key page: `https://HOST:PORT/?q=TOKEN`. */
export function contactLink(publicUrl: string, token: string): string {
  return `${publicUrl}/?q=${token}`;
}

export function contactRegistrationMail(m: { org: string; link: string; expiresAt: Date }): RenderedMail {
  return {
    subject: CONTACT_MAIL_SUBJECT,
    text: [
      'Hello, this is an automated message from your Trustee keytrustee Server.',
      '',
      'Welcome to keytrustee! You have been listed as an administrator contact',
      `for keytrustee services at your organization [${m.org}]. As an administrator,`,
      'you may be contacted to authorize the activation of new keytrustee clients.',
      '',
      'We recommend that you register a GPG public key for secure administration of',
      'your clients. To do so, visit the link below and follow the instructions.',
      '',
      m.link,
      ` This link will expire in 12 hours, at ${formatUtcAsctime(m.expiresAt)}.`,
      '',
      "This message is signed with the Key Trustee Server's GPG key. Get the key",
      'from /?a=gpgkey on the server (or `ktadmin gpg-key --export`) and check',
      'this message with `gpg --verify`.',
      '',
    ].join('\n'),
  };
}

export interface PendingClientNotice {
  fingerprint: string;
  name: string | null;
  /** ISO time of the registration. */
  registeredAt: string;
}

/** One notice for every client of the org that registered without the code since the last one. */
export function pendingClientsMail(m: { org: string; clients: PendingClientNotice[] }): RenderedMail {
  const n = m.clients.length;
  const lines = [
    'Hello, this is an automated message from your Trustee keytrustee Server.',
    '',
    `${n === 1 ? 'A new client has' : `${n} new clients have`} registered to organization [${m.org}]`,
    'without the authorization code and await approval by an administrator.',
    'If you expected it, approve it on the active Key Trustee Server with the line given;',
    'if not, disable it with `keytrustee-orgtool disable-client --fingerprint <FP>`.',
    '',
  ];
  for (const c of m.clients) {
    lines.push(
      `Client fingerprint: ${c.fingerprint}`,
      `Client name: ${c.name ?? '(none given)'}`,
      `Registered: ${formatUtcAsctime(new Date(c.registeredAt))}`,
      `keytrustee-orgtool enable-client --fingerprint ${c.fingerprint}`,
      '',
    );
  }
  return {
    subject: `KeyTrustee client awaiting approval in ${m.org}`,
    text: lines.join('\n'),
  };
}
