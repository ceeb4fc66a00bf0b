import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { makeCsr } from '../support/clients';
import { jsonRequest } from '../support/https-request';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, call, expectError, orgtool } from '../support/api';

let node: SingleNode;
let acmeCode: string;

beforeAll(async () => {
  node = await startSingleNode();
  acmeCode = await addOrgCli(node, 'acme');
  await addOrgCli(node, 'openorg');
  expect((await orgtool(node, 'set-auth', '-n', 'openorg', '-s', '')).code).toBe(0);
});

afterAll(async () => {
  await node?.stop();
});

function register(body: Record<string, unknown>) {
  return jsonRequest(node.url, 'POST', '/v1/clients/register', body);
}

/** Registers a fresh key pair; returns the response and the key material. */
async function registerNew(org: string, authCode?: string) {
  const k = makeCsr(org);
  const res = await register({ org, csr: k.csr, ...(authCode !== undefined ? { authCode } : {}) });
  return { res, ...k };
}

function depositsList(res: { json: { certificate: string } }, key: string) {
  return call(node, { cert: res.json.certificate, key }, 'GET', '/v1/deposits');
}

describe('client registration', () => {
  it('activates a client that presents the correct auth code, and the client can call the API at once', async () => {
    const { res, key } = await registerNew('acme', acmeCode);
    // The body says why when it is not 200 (a 503 under load names its code and reason).
    expect({ status: res.status, body: res.json }).toMatchObject({ status: 200 });
    expect(res.json.state).toBe('active');
    expect((await depositsList(res, key)).status).toBe(200);
  });

  it('auto-approves clients of an org whose auth code is blank', async () => {
    const { res, key } = await registerNew('openorg');
    // The body says why when it is not 200 (a 503 under load names its code and reason).
    expect({ status: res.status, body: res.json }).toMatchObject({ status: 200 });
    expect(res.json.state).toBe('active');
    expect((await depositsList(res, key)).status).toBe(200);
  });

  it('keeps a client that gave no code pending (403 CLIENT_PENDING) until enable-client approves it', async () => {
    const { res, key } = await registerNew('acme');
    // The body says why when it is not 200 (a 503 under load names its code and reason).
    expect({ status: res.status, body: res.json }).toMatchObject({ status: 200 });
    expect(res.json.state).toBe('pending');
    expectError(await depositsList(res, key), 403, 'CLIENT_PENDING');
    expectError(await depositsList(res, key), 403, 'CLIENT_PENDING');

    const enabled = await orgtool(node, 'enable-client', '--fingerprint', res.json.fingerprint);
    expect(enabled.code).toBe(0);
    const next = await depositsList(res, key);
    expect(next.status).toBe(200);
    expect(next.json.items).toEqual([]);
  });

  it('refuses a wrong auth code with 403 INVALID_AUTH_CODE and stores no client', async () => {
    const { res, csr } = await registerNew('acme', 'not-the-code');
    expectError(res, 403, 'INVALID_AUTH_CODE');
    // The same key registered afterwards with no code is new (pending), not a leftover of the refusal.
    const again = await register({ org: 'acme', csr });
    expect(again.json.state).toBe('pending');
  });

  it('answers an unknown org exactly like a known one, so org names cannot be probed', async () => {
    const unknown = await registerNew('no-such-org', 'whatever');
    const wrong = await registerNew('acme', 'whatever');
    expectError(unknown.res, 403, 'INVALID_AUTH_CODE');
    // Identical but for the per-request id every error body carries.
    expect({ ...unknown.res.json.error, requestId: 'x' }).toEqual({
      ...wrong.res.json.error,
      requestId: 'x',
    });
    expect(unknown.res.text).not.toContain('no-such-org');
    // Without a code, an unknown org answers "pending" as a known org does (issue 10, finding 5;
    // the whole comparison is in tests/issue-10-registration.test.ts).
    const pending = await registerNew('no-such-org');
    expect(pending.res.status).toBe(200);
    expect(pending.res.json.state).toBe('pending');
  });

  it('returns the same fingerprint, state and certificate when the same key registers again', async () => {
    const first = await registerNew('acme', acmeCode);
    const again = await register({ org: 'acme', csr: first.csr, authCode: acmeCode });
    expect(again.status).toBe(200);
    expect(again.json.fingerprint).toBe(first.res.json.fingerprint);
    expect(again.json.state).toBe(first.res.json.state);
    expect(again.json.certificate).toBe(first.res.json.certificate);
  });

  it('never upgrades a pending key to active when it re-registers with the right code', async () => {
    const first = await registerNew('acme');
    expect(first.res.json.state).toBe('pending');
    const again = await register({ org: 'acme', csr: first.csr, authCode: acmeCode });
    expect(again.json.state).toBe('pending');
  });

  it('refuses a key already registered in another org', async () => {
    const first = await registerNew('acme', acmeCode);
    expectError(await register({ org: 'openorg', csr: first.csr }), 400, 'INVALID_REQUEST');
  });

  it('answers concurrent registrations of one key with one stored client: the same certificate for all in its org, "another organization" elsewhere', async () => {
    const k = makeCsr('acme');
    const same = await Promise.all(
      Array.from({ length: 8 }, () => register({ org: 'acme', csr: k.csr, authCode: acmeCode })),
    );
    expect(same.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(new Set(same.map((r) => r.json.certificate)).size).toBe(1);
    expect(new Set(same.map((r) => r.json.fingerprint)).size).toBe(1);

    const other = makeCsr('acme');
    const [a, b] = await Promise.all([
      register({ org: 'acme', csr: other.csr, authCode: acmeCode }),
      register({ org: 'openorg', csr: other.csr }),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([200, 400]);
    const loser = a.status === 400 ? a : b;
    expectError(loser, 400, 'INVALID_REQUEST');
    expect(loser.json.error.message).toContain('another organization');
    const winner = a.status === 200 ? a : b;
    // The winner's certificate works; the loser got none.
    expect((await depositsList(winner, other.key)).status).toBe(200);
  });

  it('derives the fingerprint as <bits>R/<SHA-1 of the DER SPKI, upper-case hex> of the client key', async () => {
    const { res, publicKey } = await registerNew('acme', acmeCode);
    const der = createPublicKey(publicKey).export({ type: 'spki', format: 'der' });
    const expected = `2048R/${createHash('sha1').update(der).digest('hex').toUpperCase()}`;
    expect(res.json.fingerprint).toBe(expected);
  });

  it('issues a certificate for the client key that chains to the returned CA certificate', async () => {
    const { res, publicKey } = await registerNew('acme', acmeCode);
    const cert = new X509Certificate(res.json.certificate);
    const ca = new X509Certificate(res.json.caCertificate);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(publicKey);
    expect(new Date(cert.validTo).getTime()).toBeGreaterThan(Date.now());
    // The CA is the cluster identity: the one /?a=fingerprint names.
    const fp = await call(node, undefined, 'GET', '/?a=fingerprint');
    const caDer = ca.publicKey.export({ type: 'spki', format: 'der' });
    expect(fp.text).toBe(`4096R/${createHash('sha1').update(caDer).digest('hex').toUpperCase()}`);
  });

  it.each([
    ['garbage text', 'not a csr'],
    [
      'a PEM block holding garbage',
      '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
    ],
    ['a certificate instead of a CSR', 'CERT'],
  ])('answers a malformed CSR (%s) with 400 INVALID_REQUEST', async (_what, csr) => {
    const body = csr === 'CERT' ? (await registerNew('acme', acmeCode)).res.json.certificate : csr;
    expectError(await register({ org: 'acme', authCode: acmeCode, csr: body }), 400, 'INVALID_REQUEST');
  });

  it('rate-limits repeated wrong codes per address and org with 429 RATE_LIMITED', async () => {
    await addOrgCli(node, 'bruteforced');
    const limit = node.server.conf.REGISTRATION_FAILURES_PER_15_MIN;
    const { csr } = makeCsr('bruteforced');
    for (let i = 0; i < limit; i++) {
      expectError(
        await register({ org: 'bruteforced', csr, authCode: `guess-${i}` }),
        403,
        'INVALID_AUTH_CODE',
      );
    }
    const limited = await register({ org: 'bruteforced', csr, authCode: 'guess-last' });
    expectError(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Locked out even with the right code for the rest of the window...
    const code = (await orgtool(node, 'list')).stdout;
    const secret = (JSON.parse(code) as Record<string, { auth_secret: string }>).bruteforced.auth_secret;
    expectError(await register({ org: 'bruteforced', csr, authCode: secret }), 429, 'RATE_LIMITED');
    // ...while other orgs from the same address are unaffected.
    expect((await registerNew('acme', acmeCode)).res.status).toBe(200);
  });
});
