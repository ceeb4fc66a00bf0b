/**
 * Issue 10, registration side: org names cannot be probed (finding 5), certificate signatures run
 * off the event loop (finding 5), every registration attempt is charged per client address and
 * the lockout follows the client behind a trusted proxy (findings 1 and 7), and /metrics behind
 * METRICS_REQUIRE_CLIENT_CERT admits active clients only.
 */
import { createHash, createPublicKey, generateKeyPair, sign, X509Certificate } from 'node:crypto';
import { Agent, request } from 'node:https';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { threadId } from 'node:worker_threads';
import { createCsr } from '@trustee/sdk';
import { addToDenyList } from '../packages/server/src/auth/deny-list';
import { addOrgCli, expectError, orgtool } from '../packages/server/test/support/api';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { updateKeytrusteeConf } from '@trustee/server';
import { BINS, runCli } from '../packages/server/test/support/cli';
import { makeCsr } from '../packages/server/test/support/clients';
import { httpsRequest, jsonRequest, type RawResponse } from '../packages/server/test/support/https-request';
import { waitFor } from '../packages/server/test/support/processes';
import { startSingleNode, type SingleNode } from '../packages/server/test/support/single-node';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Budgets small enough to reach in a test; the flood below spreads over forwarded addresses. */
const FAILURES = 3;
const ATTEMPTS = 5;

let node: SingleNode;
let acmeCode: string;
/** A fresh forwarded client address per use (TEST-NET-2), so budgets never mix between tests. */
let nextHost = 1;
const freshAddress = () => `198.51.${Math.floor(nextHost / 250)}.${(nextHost++ % 250) + 1}`;

beforeAll(async () => {
  node = await startSingleNode({
    conf: {
      TRUSTED_PROXIES: ['127.0.0.1'],
      REGISTRATION_FAILURES_PER_15_MIN: FAILURES,
      REGISTRATIONS_PER_15_MIN: ATTEMPTS,
      MAX_PENDING_CLIENTS_PER_ORG: 10_000,
      METRICS_REQUIRE_CLIENT_CERT: true,
    },
  });
  acmeCode = await addOrgCli(node, 'acme');
});

afterAll(async () => {
  await node?.stop();
});

/** A registration through the trusted proxy (127.0.0.1) on behalf of `forwardedFor`. */
function register(
  body: Record<string, unknown>,
  forwardedFor: string = freshAddress(),
  localAddress = '127.0.0.1',
): Promise<RawResponse> {
  return jsonRequest(node.url.replace('localhost', '127.0.0.1'), 'POST', '/v1/clients/register', body, {
    headers: { 'x-forwarded-for': forwardedFor },
    localAddress,
    timeoutMs: 60_000,
  });
}

/** An answer without its per-request id (every error body carries a fresh `requestId`). */
function sameness(res: RawResponse): unknown {
  if (!res.json?.error) return { status: res.status, body: res.json };
  return { status: res.status, error: { ...(res.json.error as Record<string, unknown>), requestId: 'x' } };
}

function fingerprintOf(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return `2048R/${createHash('sha1').update(der).digest('hex').toUpperCase()}`;
}

async function storedClients(fingerprint: string): Promise<number> {
  const { rows } = await node.server.ctx.db.control.query<{ n: number }>(
    'select count(*)::int as n from clients where fingerprint = $1',
    [fingerprint],
  );
  return rows[0].n;
}

describe('an unknown organization answers exactly like a known one (issue 10, finding 5)', () => {
  it('without a code: 200 pending, same body shape, a certificate of the submitted key signed by the CA, the same bytes on a re-send, CLIENT_PENDING when used — and nothing stored', async () => {
    const known = makeCsr('acme');
    const unknown = makeCsr('no-such-org');
    const a = await register({ org: 'acme', csr: known.csr });
    const b = await register({ org: 'no-such-org', csr: unknown.csr });
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(Object.keys(b.json).sort()).toEqual(Object.keys(a.json).sort());
    expect(b.json.state).toBe('pending');
    expect(a.json.state).toBe('pending');
    expect(b.json.fingerprint).toBe(fingerprintOf(unknown.publicKey));
    expect(b.json.caCertificate).toBe(a.json.caCertificate);
    for (const [res, k, org] of [
      [a, known, 'acme'],
      [b, unknown, 'no-such-org'],
    ] as const) {
      const cert = new X509Certificate(res.json.certificate);
      const ca = new X509Certificate(res.json.caCertificate);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(k.publicKey);
      expect(cert.subject).toContain(`O=${org}`);
      expect(cert.serialNumber.length).toBeGreaterThanOrEqual(30);
    }
    // Re-sending the same CSR returns the same certificate in both cases.
    expect((await register({ org: 'acme', csr: known.csr })).json).toEqual(a.json);
    expect((await register({ org: 'no-such-org', csr: unknown.csr })).json).toEqual(b.json);
    // Using the certificate: both are "awaiting approval".
    const useA = await httpsRequest(node.url, {
      path: '/v1/deposits',
      cert: a.json.certificate,
      key: known.key,
    });
    const useB = await httpsRequest(node.url, {
      path: '/v1/deposits',
      cert: b.json.certificate,
      key: unknown.key,
    });
    expectError(useA, 403, 'CLIENT_PENDING');
    expect(useB.status).toBe(useA.status);
    expect(sameness(useB)).toEqual(sameness(useA));
    // Only the known org stored a client.
    expect(await storedClients(a.json.fingerprint)).toBe(1);
    expect(await storedClients(b.json.fingerprint)).toBe(0);
  });

  it('with a code: the same refusal as a wrong code; a key of another org: the same refusal as for a known org', async () => {
    const wrong = await register({ org: 'acme', csr: makeCsr('acme').csr, authCode: 'guess' });
    const unknown = await register({ org: 'no-such-org', csr: makeCsr('x').csr, authCode: 'guess' });
    expectError(wrong, 403, 'INVALID_AUTH_CODE');
    expect(unknown.status).toBe(403);
    expect(sameness(unknown)).toEqual(sameness(wrong));

    await addOrgCli(node, 'other');
    const taken = makeCsr('acme');
    expect((await register({ org: 'acme', csr: taken.csr, authCode: acmeCode })).json.state).toBe('active');
    const toKnown = await register({ org: 'other', csr: taken.csr });
    const toUnknown = await register({ org: 'no-such-org', csr: taken.csr });
    expectError(toKnown, 400, 'INVALID_REQUEST');
    expect(toUnknown.status).toBe(400);
    expect(sameness(toUnknown)).toEqual(sameness(toKnown));
  });
});

describe('a key sent for an unknown org then for another org (issue 10, finding 5)', () => {
  it('answers "registered in another organization" as it would had the first org existed', async () => {
    const viaKnown = makeCsr('acme');
    const viaUnknown = makeCsr('no-such-org');
    expect((await register({ org: 'acme', csr: viaKnown.csr })).json.state).toBe('pending');
    expect((await register({ org: 'no-such-org', csr: viaUnknown.csr })).json.state).toBe('pending');
    for (const next of ['other', 'yet-another-unknown-org']) {
      const afterKnown = await register({ org: next, csr: viaKnown.csr });
      const afterUnknown = await register({ org: next, csr: viaUnknown.csr });
      expectError(afterKnown, 400, 'INVALID_REQUEST');
      expect(afterUnknown.status).toBe(400);
      expect(sameness(afterUnknown)).toEqual(sameness(afterKnown));
    }
  });
});

describe('certificate signatures run on worker threads (issue 10, finding 5)', () => {
  it('a flood of 200 concurrent registrations is signed off the event loop while health keeps answering', async () => {
    const FLOOD = 200;
    const newKey = async () =>
      generateKeyPairAsync('rsa', {
        modulusLength: 2048,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      });
    // Each registration below needs its own signature, so its own key: 20 new pending clients of
    // acme and 180 registrations for unknown orgs (decoys).
    const csrs = await Promise.all(
      Array.from({ length: FLOOD }, async (_, i) => createCsr(await newKey(), `flood-${i}`, 'acme')),
    );
    const bodies = csrs.map((csr, i) => (i < 20 ? { org: 'acme', csr } : { org: `ghost-${i}`, csr }));
    const pool = node.server.ctx.signPool;
    const signedBefore = [...pool.completedByThread.values()].reduce((a, b) => a + b, 0);
    // What one signature costs on this thread now (the work a flood would put on the event loop).
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 5; i++) sign('sha256', Buffer.from(`probe ${i}`), node.server.ctx.identity.keyPem);
    const inlineSignMs = Number(process.hrtime.bigint() - t0) / 5e6;

    // Health over one kept-alive connection opened before the flood: its latency is the server's
    // event loop, not the queue of 200 TLS handshakes the flood opens at once.
    const agent = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const health = () =>
      new Promise<{ status: number; ms: number }>((resolve, reject) => {
        const started = process.hrtime.bigint();
        const req = request(new URL('/v1/health', node.url), { agent, timeout: 60_000 }, (res) => {
          res.resume();
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - started) / 1e6 }),
          );
        });
        req.on('timeout', () => req.destroy(new Error('health timed out')));
        req.on('error', reject);
        req.end();
      });
    const baseline: number[] = [];
    for (let i = 0; i < 10; i++) baseline.push((await health()).ms);

    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    let flooding = true;
    const during: { status: number; ms: number }[] = [];
    const prober = (async () => {
      for (let i = 0; flooding && i < 10_000; i++) {
        during.push(await health());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    let answers: RawResponse[];
    const floodStarted = Date.now();
    try {
      answers = await Promise.all(bodies.map((b) => register(b)));
    } finally {
      flooding = false;
      await prober;
      loop.disable();
      agent.destroy();
    }
    const floodMs = Date.now() - floodStarted;
    const byStatus: Record<string, number> = {};
    for (const a of answers) {
      const k = a.status === 200 ? '200' : String(a.json?.error?.code);
      byStatus[k] = (byStatus[k] ?? 0) + 1;
    }
    const signed = [...pool.completedByThread.values()].reduce((a, b) => a + b, 0) - signedBefore;
    const maxDuring = Math.max(...during.map((d) => d.ms));
    console.log(
      `registration flood: ${JSON.stringify(byStatus)} in ${floodMs} ms; ${signed} signatures on threads ${JSON.stringify([...pool.completedByThread.keys()])}; ` +
        `inline signature ${inlineSignMs.toFixed(1)} ms; health ms baseline max ${Math.max(...baseline).toFixed(1)}, ` +
        `during flood n=${during.length} max ${maxDuring.toFixed(1)}; event-loop delay p50 ${(loop.percentile(50) / 1e6).toFixed(1)} ms, ` +
        `p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms`,
    );
    // Every registration was answered; a full signing queue may turn some away (503, Retry-After).
    expect(Object.keys(byStatus).every((k) => k === '200' || k === 'UNAVAILABLE')).toBe(true);
    for (const a of answers.filter((x) => x.status === 503))
      expect(Number(a.headers['retry-after'])).toBeGreaterThan(0);
    expect(byStatus['200']).toBeGreaterThanOrEqual(FLOOD / 2);
    // Each 200 needed one signature (a signed registration may still end UNAVAILABLE when the
    // database is slow to answer on a loaded machine), and none ran on this (the server's) thread.
    expect(signed).toBeGreaterThanOrEqual(byStatus['200']);
    expect(signed).toBeLessThanOrEqual(FLOOD);
    expect(pool.completedByThread.has(threadId)).toBe(false);
    expect(pool.threadIds().every((t) => t !== threadId)).toBe(true);
    // Health answered throughout.
    expect(during.length).toBeGreaterThan(0);
    expect(during.every((d) => d.status === 200)).toBe(true);
    // The loop never stalled for the signing work of the flood (200 signatures in a row).
    expect(loop.max / 1e6).toBeLessThan(FLOOD * inlineSignMs);
  });
});

describe('registration limits per client address (issue 10, findings 1 and 7)', () => {
  it('charges every attempt, successes and re-sends included, to the client address', async () => {
    const who = freshAddress();
    const k = makeCsr('acme');
    for (let i = 0; i < ATTEMPTS; i++) {
      // A success, then re-sends of the same CSR: each costs one attempt.
      const res = await register({ org: 'acme', csr: k.csr, authCode: acmeCode }, who);
      expect(res.status).toBe(200);
    }
    const over = await register({ org: 'acme', csr: makeCsr('acme').csr, authCode: acmeCode }, who);
    expectError(over, 429, 'RATE_LIMITED');
    expect(over.json.error.message).toMatch(/registration attempts/);
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    // Another client address has its own budget.
    expect((await register({ org: 'acme', csr: makeCsr('acme').csr, authCode: acmeCode })).status).toBe(200);
  });

  it('behind a trusted proxy, two forwarded clients get two lockout budgets; from an untrusted source the header is ignored', async () => {
    const guess = (forwardedFor: string, localAddress?: string) =>
      register({ org: 'acme', csr: makeCsr('acme').csr, authCode: 'wrong' }, forwardedFor, localAddress);
    const first = freshAddress();
    const second = freshAddress();
    for (let i = 0; i < FAILURES; i++) expectError(await guess(first), 403, 'INVALID_AUTH_CODE');
    expectError(await guess(first), 429, 'RATE_LIMITED');
    // The proxy itself (127.0.0.1) is not locked out: the second client still gets its code checked.
    expectError(await guess(second), 403, 'INVALID_AUTH_CODE');
    // The client's own claim further left proves nothing: charged to the address the proxy saw.
    expectError(await guess(`${second}, ${first}`), 429, 'RATE_LIMITED');

    // 127.0.0.2 is not a trusted proxy: whatever it forwards, the budget is its own.
    for (let i = 0; i < FAILURES; i++)
      expectError(await guess(freshAddress(), '127.0.0.2'), 403, 'INVALID_AUTH_CODE');
    expectError(await guess(freshAddress(), '127.0.0.2'), 429, 'RATE_LIMITED');
  });
});

describe('/metrics with METRICS_REQUIRE_CLIENT_CERT admits active clients only', () => {
  const scrape = (cert: string, key: string) => httpsRequest(node.url, { path: '/metrics', cert, key });

  it('refuses pending, disabled and deny-listed clients, and decoys like pending ones', async () => {
    const active = makeCsr('acme');
    const reg = await register({ org: 'acme', csr: active.csr, authCode: acmeCode });
    expect(reg.json.state).toBe('active');
    const ok = await scrape(reg.json.certificate, active.key);
    expect(ok.status).toBe(200);
    expect(ok.text).toMatch(/^trustee_node_role\{role="active"\} 1$/m);

    const pending = makeCsr('acme');
    const p = await register({ org: 'acme', csr: pending.csr });
    expectError(await scrape(p.json.certificate, pending.key), 403, 'CLIENT_PENDING');
    const decoy = makeCsr('ghost');
    const d = await register({ org: 'ghost-org', csr: decoy.csr });
    expectError(await scrape(d.json.certificate, decoy.key), 403, 'CLIENT_PENDING');

    // Revoked through the node-local deny list (as on a passive whose active is lost).
    const listed = makeCsr('acme');
    const l = await register({ org: 'acme', csr: listed.csr, authCode: acmeCode });
    expect((await scrape(l.json.certificate, listed.key)).status).toBe(200);
    await addToDenyList(node.confdir, {
      fingerprint: l.json.fingerprint,
      since: new Date().toISOString(),
      by: 'test',
    });
    const denied = await waitFor('the deny list is honoured', async () => {
      const r = await scrape(l.json.certificate, listed.key);
      return r.status === 403 ? r : undefined;
    });
    expectError(denied, 403, 'CLIENT_DISABLED');

    // Disabled with the admin tool.
    expect((await orgtool(node, 'disable-client', '--fingerprint', reg.json.fingerprint)).code).toBe(0);
    expectError(await scrape(reg.json.certificate, active.key), 403, 'CLIENT_DISABLED');
  });
});

describe('trusted proxy settings are checked at start', () => {
  it.each([
    [{ TRUSTED_PROXIES: ['10.0.0.0/8', 'lb.example'] }, /TRUSTED_PROXIES: "lb.example" is not an IP address/],
    [{ TRUSTED_PROXIES: ['10.0.0.0/40'] }, /TRUSTED_PROXIES: "10.0.0.0\/40" is not a CIDR block/],
    [{ CLIENT_ADDRESS_HEADER: 'X Forwarded For' }, /CLIENT_ADDRESS_HEADER: an HTTP header name/],
  ])('keytrusteed refuses to start with %j, naming the key', async (conf, message) => {
    const dir = makeTempDir();
    try {
      const confdir = join(dir, 'confdir');
      cpSync(node.confdir, confdir, { recursive: true });
      updateKeytrusteeConf(confdir, conf);
      const r = await runCli(BINS.keytrusteedDist, ['--confdir', confdir], { timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
    } finally {
      removeDir(dir);
    }
  });
});
