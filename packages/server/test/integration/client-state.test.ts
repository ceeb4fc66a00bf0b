import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { createCsr } from '@trustee/sdk';
import { registerTestClient, type TestClient } from '../support/clients';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, call, expectError, orgtool, putDeposit, selfSignedCert } from '../support/api';

let node: SingleNode;
let code: string;
let client: TestClient;

beforeAll(async () => {
  node = await startSingleNode();
  code = await addOrgCli(node, 'acme');
  client = await registerTestClient(node.url, 'acme', code);
  expect((await putDeposit(node, client, 'kept', 'still-here')).status).toBe(201);
});

afterAll(async () => {
  await node?.stop();
});

describe('client state and authentication', () => {
  it('refuses a disabled client on its very next request with 403 CLIENT_DISABLED, and enable-client restores it', async () => {
    expect((await call(node, client, 'GET', '/v1/deposits/kept')).status).toBe(200);

    expect((await orgtool(node, 'disable-client', '--fingerprint', client.fingerprint)).code).toBe(0);
    expectError(await call(node, client, 'GET', '/v1/deposits/kept'), 403, 'CLIENT_DISABLED');
    expectError(await putDeposit(node, client, 'while-disabled', 'x'), 403, 'CLIENT_DISABLED');
    expectError(await call(node, client, 'GET', '/v1/deposits'), 403, 'CLIENT_DISABLED');

    expect((await orgtool(node, 'enable-client', '--fingerprint', client.fingerprint)).code).toBe(0);
    const back = await call(node, client, 'GET', '/v1/deposits/kept');
    expect(back.status).toBe(200);
    expect(Buffer.from(back.json.value, 'base64').toString()).toBe('still-here');
    // The write refused while disabled never happened.
    expectError(await call(node, client, 'GET', '/v1/deposits/while-disabled'), 404, 'NOT_FOUND');
  });

  it('keeps a disabled client disabled when its key registers again with the right code', async () => {
    const other = await registerTestClient(node.url, 'acme', code);
    expect((await orgtool(node, 'disable-client', '--fingerprint', other.fingerprint)).code).toBe(0);
    const publicKey = createPublicKey(other.key).export({ type: 'spki', format: 'pem' }) as string;
    const csr = createCsr({ privateKey: other.key, publicKey }, 'again', 'acme');
    const again = await call(node, undefined, 'POST', '/v1/clients/register', {
      org: 'acme',
      authCode: code,
      csr,
    });
    expect(again.status).toBe(200);
    expect(again.json.state).toBe('disabled');
    expectError(await call(node, other, 'GET', '/v1/deposits'), 403, 'CLIENT_DISABLED');
  });

  it('answers a request without a client certificate with 401 UNAUTHENTICATED', async () => {
    expectError(await call(node, undefined, 'GET', '/v1/deposits'), 401, 'UNAUTHENTICATED');
    expectError(await call(node, undefined, 'GET', '/v1/deposits/kept'), 401, 'UNAUTHENTICATED');
    expectError(
      await call(node, undefined, 'PUT', '/v1/deposits/anon', { value: 'eA==' }),
      401,
      'UNAUTHENTICATED',
    );
    expectError(await call(node, undefined, 'DELETE', '/v1/deposits/kept'), 401, 'UNAUTHENTICATED');
  });

  it('answers a certificate signed by some other CA with 401, even for the key of a registered client', async () => {
    const { privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    const stranger = { key: privateKey, cert: selfSignedCert(privateKey) };
    expectError(await call(node, stranger, 'GET', '/v1/deposits'), 401, 'UNAUTHENTICATED');

    // Same public key as the registered client, but not issued by the cluster CA.
    const forged = { key: client.key, cert: selfSignedCert(client.key, 'test-client') };
    expectError(await call(node, forged, 'GET', '/v1/deposits/kept'), 401, 'UNAUTHENTICATED');
    expectError(await putDeposit(node, forged, 'kept', 'overwritten'), 401, 'UNAUTHENTICATED');
    const kept = await call(node, client, 'GET', '/v1/deposits/kept');
    expect(Buffer.from(kept.json.value, 'base64').toString()).toBe('still-here');
  });

  it('answers a certificate of the cluster CA presented with the wrong private key by failing the TLS handshake', async () => {
    const { privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    // Node refuses to even build a TLS context whose key does not match the certificate.
    await expect(call(node, { cert: client.cert, key: privateKey }, 'GET', '/v1/deposits')).rejects.toThrow();
  });

  it('lets anonymous callers reach only the public endpoints', async () => {
    expect((await call(node, undefined, 'GET', '/v1/health')).status).toBe(200);
    expect((await call(node, undefined, 'GET', '/?a=fingerprint')).status).toBe(200);
    expect((await call(node, undefined, 'GET', '/metrics')).status).toBe(200);
  });
});
