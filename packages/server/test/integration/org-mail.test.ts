/**
 * Issue 15, the mail: contact registration mail and pending-client notices, through a real SMTP
 * server (smtp-server in this process) and checked with the real gpg. One node for the file.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { updateKeytrusteeConf } from '@trustee/server';
import { orgtool } from '../support/api';
import { BINS, runCli } from '../support/cli';
import { makeCsr } from '../support/clients';
import { tempGpg, type Gpg } from '../support/gpg';
import { httpsRequest, jsonRequest } from '../support/https-request';
import { withSuperuser } from '../support/psql';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../support/smtp-sink';

const NOTICE_INTERVAL_S = 6;
let node: SingleNode;
let smtp: SmtpSink;
let gpg: Gpg;

beforeAll(async () => {
  smtp = await startSmtpSink();
  gpg = tempGpg();
  node = await startSingleNode({
    conf: {
      SMTP_URL: smtp.url,
      SMTP_FROM: 'trustee@localhost.test',
      MAIL_PENDING_NOTICE_INTERVAL_SECONDS: NOTICE_INTERVAL_S,
    },
  });
  // The server's public key, as an administrator gets it, in the test keyring.
  const key = await httpsRequest(node.url, { method: 'GET', path: '/?a=gpgkey' });
  expect(key.status).toBe(200);
  expect(gpg.run(['--import'], key.text).code).toBe(0);
});

afterAll(async () => {
  await node?.stop();
  await smtp?.close();
  gpg?.remove();
});

const to = (addr: string) => (m: ReceivedMail[]) => m.filter((x) => x.to.includes(addr));

function outbox(recipient: string) {
  return withSuperuser(node, async (c) => {
    const { rows } = await c.query<{
      id: string;
      kind: string;
      attempts: number;
      last_error: string | null;
      sent_at: Date | null;
      message_id: string | null;
    }>(
      'select id::text, kind, attempts, last_error, sent_at, message_id from mail_outbox where recipient = $1 order by id',
      [recipient],
    );
    return rows;
  });
}

/** `gpg --verify` of a cleartext-signed body: the signer's fingerprint when good. */
function verifiedSigner(text: string): string | undefined {
  const file = join(gpg.home, 'mail.asc');
  writeFileSync(file, text);
  const r = gpg.run(['--status-fd', '1', '--verify', file]);
  return /^\[GNUPG:\] VALIDSIG ([0-9A-F]+) /m.exec(r.stdout)?.[1];
}

async function waitForDb<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('contact registration mail', () => {
  it("sends the seed's mail to a new contact: subject, a 12-hour link to this node, the expiry in UTC, signed by the server key", async () => {
    const add = await orgtool(node, 'add', '-n', 'acme', '-c', 'alice@acme.test');
    expect(add.code).toBe(0);
    expect(add.stdout).toMatch(/contact registration mail queued for alice@acme\.test/);
    await smtp.waitFor((m) => to('alice@acme.test')(m).length === 1, 30_000, "alice's mail");
    const [mail] = to('alice@acme.test')(smtp.messages);
    expect(mail.subject).toBe('KeyTrustee Contact Registration');
    expect(mail.from).toBe('trustee@localhost.test');
    expect(mail.text).toContain('-----BEGIN PGP SIGNED MESSAGE-----');
    expect(mail.text).toContain('at your organization [acme]');
    // https://<HOST>:<PORT>/?q=<43 base64url>, the node's public host and port (PORT 0 → 11371).
    const link = /^https:\/\/localhost:11371\/\?q=([A-Za-z0-9_-]{43})$/m.exec(mail.text);
    expect(link).not.toBeNull();
    const token = link![1];
    const stored = await withSuperuser(node, (c) =>
      c.query<{ expires_at: Date; created_at: Date }>(
        'select expires_at, created_at from contact_tokens where token_hash = $1',
        [createHash('sha256').update(token).digest()],
      ),
    );
    expect(stored.rows).toHaveLength(1);
    const { expires_at: expiresAt, created_at: createdAt } = stored.rows[0];
    expect(expiresAt.getTime() - createdAt.getTime()).toBe(12 * 3600 * 1000);
    // e.g. "This link will expire in 12 hours, at Thu Sep  3 00:08:25 2015 UTC."
    const stated =
      /This link will expire in 12 hours, at (\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}) UTC\./.exec(
        mail.text,
      );
    expect(stated).not.toBeNull();
    expect(new Date(`${stated![1]} UTC`).getTime()).toBe(Math.floor(expiresAt.getTime() / 1000) * 1000);
    // The signature verifies with the key served at /?a=gpgkey; ktadmin prints the same key.
    const signer = verifiedSigner(mail.text);
    expect(signer).toMatch(/^[0-9A-F]{40}$/);
    expect(mail.headers.get('x-trustee-signer')).toBe(signer);
    const exported = await runCli(BINS.ktadmin, ['--confdir', node.confdir, 'gpg-key', '--export']);
    expect(exported.code).toBe(0);
    const served = await httpsRequest(node.url, { method: 'GET', path: '/?a=gpgkey' });
    expect(exported.stdout.trim()).toBe(served.text.trim());
    const shown = await runCli(BINS.ktadmin, ['--confdir', node.confdir, 'gpg-key']);
    expect(shown.stdout.trim()).toBe(`server mail key fingerprint ${signer}`);
    const rows = await outbox('alice@acme.test');
    expect(rows).toEqual([
      expect.objectContaining({ kind: 'contact-registration', attempts: 1, last_error: null }),
    ]);
    expect(rows[0].sent_at).not.toBeNull();
    // The job runner runs for mail alone here: no backup schedule without a backup recipient.
    const crons = await withSuperuser(node, (c) =>
      c.query('select identifier from graphile_worker._private_known_crontabs'),
    );
    expect(crons.rows).toEqual([]);
    // The token appears nowhere in the outbox row in clear.
    const raw = await withSuperuser(node, (c) =>
      c.query<{ t: string }>('select mail_outbox::text as t from mail_outbox where id = $1', [rows[0].id]),
    );
    expect(raw.rows[0].t).not.toContain(token);
  });

  it('a repeated add with the same contact sends nothing; a new contact gets exactly one mail', async () => {
    const again = await orgtool(node, 'add', '-n', 'acme', '-c', 'alice@acme.test');
    expect(again.code).toBe(0);
    expect(again.stdout).not.toMatch(/mail/);
    const more = await orgtool(node, 'add', '-n', 'acme', '-c', 'alice@acme.test,dave@acme.test');
    expect(more.code).toBe(0);
    expect(more.stdout).toMatch(/mail queued for dave@acme\.test /);
    await smtp.waitFor((m) => to('dave@acme.test')(m).length === 1, 30_000, "dave's mail");
    expect(await outbox('alice@acme.test')).toHaveLength(1);
    expect(await outbox('dave@acme.test')).toHaveLength(1);
    // A sweep period later, still one each.
    await new Promise((r) => setTimeout(r, 6000));
    expect(to('alice@acme.test')(smtp.messages)).toHaveLength(1);
    expect(to('dave@acme.test')(smtp.messages)).toHaveLength(1);
  });

  it('retries with backoff while the SMTP server answers 451, then delivers exactly once, attempts recorded', async () => {
    smtp.refuseNext(2);
    const before = smtp.refused();
    expect((await orgtool(node, 'add', '-n', 'flaky', '-c', 'erin@flaky.test')).code).toBe(0);
    const failing = await waitForDb(
      () => outbox('erin@flaky.test'),
      (r) => r.length === 1 && r[0].attempts >= 1,
      'a recorded failed attempt',
    );
    expect(failing[0].sent_at).toBeNull();
    expect(failing[0].last_error).toMatch(/451/);
    await smtp.waitFor((m) => to('erin@flaky.test')(m).length === 1, 45_000, "erin's mail after retries");
    expect(smtp.refused() - before).toBe(2);
    const rows = await waitForDb(
      () => outbox('erin@flaky.test'),
      (r) => r[0].sent_at !== null,
      'the row marked sent',
    );
    expect(rows[0].attempts).toBe(3);
    await new Promise((r) => setTimeout(r, 3000));
    expect(to('erin@flaky.test')(smtp.messages)).toHaveLength(1);
  });

  it('without SMTP_URL, add still succeeds and says the mail stays queued (sent once SMTP is configured)', async () => {
    // Only the CLI's copy of the conf: the running server keeps its SMTP_URL and sends it.
    updateKeytrusteeConf(node.confdir, { SMTP_URL: '' });
    try {
      const add = await orgtool(node, 'add', '-n', 'nosmtp', '-c', 'fay@nosmtp.test');
      expect(add.code).toBe(0);
      expect(add.stdout).toContain(
        'contact registration mail for fay@nosmtp.test kept unsent: SMTP_URL is not set in keytrustee.conf',
      );
      expect(add.stdout + add.stderr).not.toMatch(/\?q=/);
    } finally {
      updateKeytrusteeConf(node.confdir, { SMTP_URL: smtp.url });
    }
    expect(await outbox('fay@nosmtp.test')).toHaveLength(1);
    await smtp.waitFor((m) => to('fay@nosmtp.test')(m).length === 1, 30_000, "fay's mail");
  });

  it('a job run again after a successful send sends nothing', async () => {
    const [row] = await outbox('alice@acme.test');
    expect(row.sent_at).not.toBeNull();
    await withSuperuser(node, (c) =>
      c.query(
        `select graphile_worker.add_job('send-mail', json_build_object('outboxId', $1::text), job_key => 'rerun-' || $1::text)`,
        [row.id],
      ),
    );
    await waitForDb(
      () =>
        withSuperuser(node, (c) =>
          c.query('select 1 from graphile_worker.jobs where key = $1', [`rerun-${row.id}`]),
        ),
      (r) => r.rowCount === 0,
      'the re-run job to complete',
    );
    expect(to('alice@acme.test')(smtp.messages)).toHaveLength(1);
    expect((await outbox('alice@acme.test'))[0].message_id).toBe(row.message_id);
  });

  it("a send whose 'sent' mark was lost goes again under the same Message-ID", async () => {
    // The window of at-least-once: the SMTP server accepted the mail, then the active died before
    // its "sent" mark reached the passive, so the new active finds the row unsent. Recreated
    // here by clearing the mark and queueing the job again.
    const [row] = await outbox('alice@acme.test');
    const first = to('alice@acme.test')(smtp.messages);
    expect(first).toHaveLength(1);
    await withSuperuser(node, (c) =>
      c.query(
        `with lost as (update mail_outbox set sent_at = null, message_id = null where id = $1::bigint)
         select graphile_worker.add_job('send-mail', json_build_object('outboxId', $1::text), job_key => 'lost-mark-' || $1::text)`,
        [row.id],
      ),
    );
    await smtp.waitFor((m) => to('alice@acme.test')(m).length === 2, 30_000, "alice's mail again");
    const [a, b] = to('alice@acme.test')(smtp.messages);
    expect(a.headers.get('message-id')).toMatch(/^<trustee-outbox\.\d+\.[0-9a-f]{16}@localhost\.test>$/);
    expect(b.headers.get('message-id')).toBe(a.headers.get('message-id'));
    const again = await waitForDb(
      () => outbox('alice@acme.test'),
      (r) => r[0].sent_at !== null,
      'the row marked sent again',
    );
    expect(again[0].message_id).toBe(a.headers.get('message-id'));
    expect(row.message_id).toBe(a.headers.get('message-id'));
  });
});

describe('pending-client notices', () => {
  let bobKeyFpr: string;

  beforeAll(async () => {
    expect((await orgtool(node, 'add', '-n', 'pend', '-c', 'bob@pend.test,carol@pend.test')).code).toBe(0);
    await smtp.waitFor(
      (m) => to('bob@pend.test')(m).length === 1 && to('carol@pend.test')(m).length === 1,
      30_000,
      'contact mail of bob and carol',
    );
    // Bob uploaded a key (the key page stores it in contact_keys; inserted directly here).
    bobKeyFpr = gpg.genKey('Bob <bob@pend.test>');
    const armored = gpg.exportPublic(bobKeyFpr);
    await withSuperuser(node, (c) =>
      c.query(
        `insert into contact_keys (org_id, contact, fingerprint, armored_public_key)
         select id, 'bob@pend.test', $1, $2 from orgs where name = 'pend'`,
        [bobKeyFpr, armored],
      ),
    );
  });

  const register = (name: string) =>
    jsonRequest(node.url, 'POST', '/v1/clients/register', { org: 'pend', csr: makeCsr('pend').csr, name });

  it('tells every contact, encrypted to an uploaded key, with the enable-client line that approves the client', async () => {
    const res = await register('web-01');
    expect(res.status).toBe(200);
    expect(res.json.state).toBe('pending');
    const fp = res.json.fingerprint as string;
    await smtp.waitFor(
      (m) => to('bob@pend.test')(m).length === 2 && to('carol@pend.test')(m).length === 2,
      30_000,
      'pending notices',
    );
    const line = `keytrustee-orgtool enable-client --fingerprint ${fp}`;
    // Carol has no key: signed in clear.
    const carol = to('carol@pend.test')(smtp.messages)[1];
    expect(carol.subject).toBe('KeyTrustee client awaiting approval in pend');
    expect(carol.text).toContain(line);
    expect(carol.text).toContain('Client name: web-01');
    expect(verifiedSigner(carol.text)).toMatch(/^[0-9A-F]{40}$/);
    // Bob's is encrypted to his key: nothing readable without it, and signed by the server.
    const bob = to('bob@pend.test')(smtp.messages)[1];
    expect(bob.text).toContain('-----BEGIN PGP MESSAGE-----');
    expect(bob.text).not.toContain(fp);
    const file = join(gpg.home, 'bob.asc');
    writeFileSync(file, bob.text);
    const dec = gpg.run(['--status-fd', '2', '--decrypt', file]);
    expect(dec.code).toBe(0);
    expect(dec.stdout).toContain(line);
    expect(dec.stderr).toMatch(/\[GNUPG:\] GOODSIG /);
    expect(dec.stderr).toContain(`[GNUPG:] VALIDSIG ${verifiedSigner(carol.text)}`);
    // The administrator runs the line from the mail: the client is active.
    const args = /keytrustee-orgtool (enable-client --fingerprint \S+)/.exec(dec.stdout)![1].split(' ');
    expect((await orgtool(node, ...args)).code).toBe(0);
    const state = await withSuperuser(node, (c) =>
      c.query<{ state: string }>('select state from clients where fingerprint = $1', [fp]),
    );
    expect(state.rows[0].state).toBe('active');
  });

  it('merges a burst of pending registrations into at most one notice per contact per interval', async () => {
    const seen = to('carol@pend.test')(smtp.messages).length;
    const fps: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await register(`burst-${i}`);
      expect(res.json.state).toBe('pending');
      fps.push(res.json.fingerprint as string);
    }
    const received = () => to('carol@pend.test')(smtp.messages).slice(seen);
    await smtp.waitFor(
      () => fps.every((fp) => received().some((m) => m.text.includes(fp))),
      45_000,
      'every burst client in a notice',
    );
    // Four registrations; the previous notice went out within the interval: one or two mails.
    expect(received().length).toBeLessThanOrEqual(2);
    expect(received().some((m) => fps.filter((fp) => m.text.includes(fp)).length >= 2)).toBe(true);
    const rows = (await outbox('carol@pend.test')).filter((r) => r.kind === 'pending-client');
    expect(rows.every((r) => r.sent_at !== null)).toBe(true);
  });
});

describe('outbox administration (ktadmin mail, metrics)', () => {
  /** A table row of `mail status` for one outbox id. */
  const rowLine = (id: string) => new RegExp(`^${id}\\s+(contact-registration|pending-client)\\s`);
  const ktadmin = (...args: string[]) => runCli(BINS.ktadmin, ['--confdir', node.confdir, 'mail', ...args]);
  async function metric(name: string): Promise<number | undefined> {
    const res = await httpsRequest(node.url, { path: '/metrics' });
    const line = res.text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line === undefined ? undefined : Number(line.split(' ').at(-1));
  }
  const sum = async (name: string) => {
    const res = await httpsRequest(node.url, { path: '/metrics' });
    return res.text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`))
      .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
  };

  it('a mail whose job used all its attempts shows as GIVEN UP (status, metric) until `mail retry` sends it', async () => {
    expect(await metric('trustee_mail_enabled')).toBe(1);
    const failuresBefore = await sum('trustee_mail_send_failures_total');
    const sentBefore = await sum('trustee_mail_sent_total');
    smtp.refuseNext(1000);
    try {
      expect((await orgtool(node, 'add', '-n', 'stuck', '-c', 'gus@stuck.test')).code).toBe(0);
      const [row] = await waitForDb(
        () => outbox('gus@stuck.test'),
        (r) => r.length === 1 && r[0].attempts >= 1,
        'a failed attempt',
      );
      // Four days of refusals, shortened: the job's attempts are spent once it may make no more.
      await withSuperuser(node, (c) =>
        c.query(
          `select graphile_worker.reschedule_jobs(array[id], max_attempts := attempts)
             from graphile_worker.jobs where key = $1`,
          [`mail-${row.id}`],
        ),
      );
      await waitForDb(
        () => metric('trustee_mail_given_up'),
        (n) => n === 1,
        'trustee_mail_given_up 1',
      );
      expect(await sum('trustee_mail_send_failures_total')).toBeGreaterThan(failuresBefore);
      expect(await metric('trustee_mail_unsent')).toBeGreaterThanOrEqual(1);
      expect(await metric('trustee_mail_oldest_unsent_seconds')).toBeGreaterThan(0);

      const status = await ktadmin('status');
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^\d+ unsent mail\(s\), 1 given up; SMTP_URL is set on this node$/m);
      const line = status.stdout.split('\n').find((l) => rowLine(row.id).test(l));
      expect(line).toMatch(
        /contact-registration\s+stuck\s+gus@stuck\.test\s+\S+Z\s+GIVEN UP after \d+ attempts\s+.*451/,
      );
      expect(status.stdout).toContain('mail retry');

      // Bad input changes nothing.
      const bad = await ktadmin('retry', '--id', 'abc');
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/^error: INVALID_REQUEST: not an outbox id: abc/);
      const unknown = await ktadmin('retry', '--id', '999999999');
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^error: NOT_FOUND: no given-up mail with outbox id 999999999/);
      expect((await ktadmin('status', '--limit', '0')).code).toBe(2);
      expect(await metric('trustee_mail_given_up')).toBe(1);
    } finally {
      smtp.refuseNext(0);
    }
    const [row] = await outbox('gus@stuck.test');
    const retried = await ktadmin('retry', '--id', row.id);
    expect(retried.code).toBe(0);
    expect(retried.stdout).toContain(`1 mail(s) queued again, attempts reset (outbox ids ${row.id})`);
    const audited = await withSuperuser(node, (c) =>
      c.query<{ actor_kind: string; actor: string; detail: string }>(
        `select actor_kind, actor, detail from audit_log where action = 'mail.retry' and subject = $1`,
        [row.id],
      ),
    );
    expect(audited.rows).toEqual([
      { actor_kind: 'admin', actor: 'ktadmin', detail: '1 given-up mail job(s) rescheduled' },
    ]);
    await smtp.waitFor((m) => to('gus@stuck.test')(m).length === 1, 30_000, "gus's mail after the retry");
    await waitForDb(
      () => metric('trustee_mail_given_up'),
      (n) => n === 0,
      'trustee_mail_given_up 0',
    );
    expect(await sum('trustee_mail_sent_total')).toBeGreaterThan(sentBefore);
    const after = await ktadmin('status');
    expect(after.stdout.split('\n').some((l) => rowLine(row.id).test(l))).toBe(false);
    expect((await ktadmin('retry')).stdout).toContain('no given-up mail: nothing to retry');
  });
});
