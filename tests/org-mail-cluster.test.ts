/**
 * Issue 15 on a real pair: the wrong-auth-code lockout is shared through the real Redis (both
 * nodes answer it), and a contact mail queued while SMTP is down survives losing the active:
 * the promoted passive sends it once SMTP is back.
 */
import Redis from 'ioredis';
import { BINS, runCli, type CliResult } from '../packages/server/test/support/cli';
import { startTestCluster, type NodeName, type TestCluster } from '../packages/server/test/support/cluster';
import { makeCsr } from '../packages/server/test/support/clients';
import { jsonRequest } from '../packages/server/test/support/https-request';
import { freePort } from '../packages/server/test/support/ports';
import { waitFor } from '../packages/server/test/support/processes';
import { withSuperuser } from '../packages/server/test/support/psql';
import { startSmtpSink, type SmtpSink } from '../packages/server/test/support/smtp-sink';

const REDIS_URL = 'redis://127.0.0.1:6379';
/** This run's keys only: parallel runs share the one Redis. */
const PREFIX = `trustee-test-${process.pid}-${Date.now()}:`;
const ALLOWED_FAILURES = 3;
const WINDOW_S = 8;

let cluster: TestCluster;
let smtpPort: number;
let smtp: SmtpSink | undefined;

const orgtool = (n: NodeName, ...args: string[]): Promise<CliResult> =>
  runCli(BINS.orgtool, ['--confdir', cluster.node(n).confdir, ...args]);
const ktadmin = (n: NodeName, ...args: string[]): Promise<CliResult> =>
  runCli(BINS.ktadmin, ['--confdir', cluster.node(n).confdir, ...args], { timeoutMs: 120_000 });

beforeAll(async () => {
  smtpPort = await freePort(); // nothing listens there yet: SMTP is down
  cluster = await startTestCluster({
    conf: {
      SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
      REDIS_URL,
      REDIS_KEY_PREFIX: PREFIX,
      REGISTRATION_FAILURES_PER_15_MIN: ALLOWED_FAILURES,
      REGISTRATION_FAILURE_WINDOW_SECONDS: WINDOW_S,
    },
  });
});

afterAll(async () => {
  await cluster?.stop();
  await smtp?.close();
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys(`${PREFIX}*`);
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
});

function register(n: NodeName, org: string, authCode: string) {
  return jsonRequest(cluster.node(n).url, 'POST', '/v1/clients/register', {
    org,
    authCode,
    csr: makeCsr(org).csr,
  });
}

describe('wrong-auth-code lockout shared through Redis', () => {
  it('N wrong codes on the active lock the address out on both nodes until the window ends', async () => {
    expect((await orgtool('a', 'add', '-n', 'locked', '-c', 'sec@locked.test')).code).toBe(0);
    const list = await orgtool('a', 'list');
    const code = (JSON.parse(list.stdout) as Record<string, { auth_secret: string }>).locked.auth_secret;
    // Before: the passive answers NOT_ACTIVE (registration is a write).
    const before = await register('b', 'locked', code);
    expect([before.status, before.json.error.code]).toEqual([503, 'NOT_ACTIVE']);
    for (let i = 0; i < ALLOWED_FAILURES; i++) {
      const r = await register('a', 'locked', 'wrong-code');
      expect([r.status, r.json.error.code]).toEqual([403, 'INVALID_AUTH_CODE']);
    }
    const t0 = Date.now();
    // Locked out: the right code is refused by the active and by the passive alike.
    const onA = await register('a', 'locked', code);
    expect([onA.status, onA.json.error.code]).toEqual([429, 'RATE_LIMITED']);
    const onB = await register('b', 'locked', code);
    expect([onB.status, onB.json.error.code]).toEqual([429, 'RATE_LIMITED']);
    expect(Number(onB.headers['retry-after'])).toBeGreaterThan(0);
    // The counters are in Redis under this run's prefix.
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      expect((await redis.keys(`${PREFIX}regfail:*`)).length).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
    // After the window the right code works again (on the active; the passive is back to NOT_ACTIVE).
    await new Promise((r) => setTimeout(r, Math.max(0, WINDOW_S * 1000 + 500 - (Date.now() - t0))));
    const afterB = await register('b', 'locked', code);
    expect([afterB.status, afterB.json.error.code]).toEqual([503, 'NOT_ACTIVE']);
    const afterA = await register('a', 'locked', code);
    expect(afterA.status).toBe(200);
    expect(afterA.json.state).toBe('active');
  });
});

describe('mail survives losing the active', () => {
  it('a contact mail queued while SMTP is down is sent by the promoted passive once SMTP is back', async () => {
    const add = await orgtool('a', 'add', '-n', 'mailorg', '-c', 'zed@mailorg.test');
    expect(add.code).toBe(0);
    const row = () =>
      withSuperuser(cluster.node('b'), async (c) => {
        const { rows } = await c.query<{ attempts: number; sent_at: Date | null; last_error: string | null }>(
          `select attempts, sent_at, last_error from mail_outbox where recipient = 'zed@mailorg.test'`,
        );
        return rows[0];
      });
    // The active tried and failed (nothing listens on the SMTP port); the passive has the row.
    const failed = await waitFor('a failed attempt replicated to the passive', async () => {
      const r = await row();
      return r && r.attempts >= 1 ? r : undefined;
    });
    expect(failed.sent_at).toBeNull();
    expect(failed.last_error).toMatch(/ECONNREFUSED|ESOCKET|ECONNECTION/);
    expect(failed.last_error).not.toMatch(/\?q=/);
    // The passive lists the replicated outbox; a retry there is a write, refused.
    const listed = await ktadmin('b', 'mail', 'status');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/zed@mailorg\.test/);
    const refused = await ktadmin('b', 'mail', 'retry');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: NOT_ACTIVE: /);
    // The active is lost; the operator promotes the passive.
    await cluster.killServer('a', 'SIGKILL');
    await cluster.killPostgres('a');
    const promoted = await ktadmin('b', 'promote');
    expect(promoted.code).toBe(0);
    smtp = await startSmtpSink(smtpPort);
    await smtp.waitFor(
      (m) => m.some((x) => x.to.includes('zed@mailorg.test')),
      60_000,
      'the mail from the promoted node',
    );
    expect(smtp.messages.find((x) => x.to.includes('zed@mailorg.test'))!.subject).toBe(
      'KeyTrustee Contact Registration',
    );
    const sent = await waitFor('the row marked sent', async () => {
      const r = await row();
      return r?.sent_at ? r : undefined;
    });
    expect(sent.attempts).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 6000));
    expect(smtp.messages.filter((x) => x.to.includes('zed@mailorg.test'))).toHaveLength(1);
  });
});
