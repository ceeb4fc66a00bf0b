import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { createCsr } from '@trustee/sdk';
import { makeCsr } from '../support/clients';
import { jsonRequest } from '../support/https-request';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, expectError } from '../support/api';

/** Hardening found by review: guessing codes in parallel, and CSRs built to stall the server. */
describe('registration abuse', () => {
  let node: SingleNode;
  const csr = makeCsr('guarded').csr;

  beforeAll(async () => {
    node = await startSingleNode();
    await addOrgCli(node, 'guarded');
    await addOrgCli(node, 'other');
  });
  afterAll(async () => {
    await node?.stop();
  });

  const guess = (org: string, i: number) =>
    jsonRequest(node.url, 'POST', '/v1/clients/register', { org, csr, authCode: `wrong-${i}` });

  it('refuses a CSR whose RSA key uses another public exponent, before any costly check', async () => {
    const keys = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicExponent: 3,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const res = await jsonRequest(node.url, 'POST', '/v1/clients/register', {
      org: 'other',
      csr: createCsr(keys, 'odd', 'other'),
    });
    expectError(res, 400, 'INVALID_REQUEST');
    expect(res.json.error.message).toMatch(/exponent 65537/);
  });

  it('refuses a CSR whose key is larger than 8192 bits', async () => {
    // A tampered CSR: a 16384-bit modulus would make signature checks very slow. Build the request
    // structure by hand with node-forge (no real key of that size needed: the size check comes first).
    const big = forge.pki.setRsaPublicKey(
      new forge.jsbn.BigInteger('f'.repeat(4096), 16),
      new forge.jsbn.BigInteger('65537', 10),
    );
    const req = forge.pki.createCertificationRequest();
    req.publicKey = big;
    req.setSubject([{ name: 'commonName', value: 'huge' }]);
    // Any signature bytes: the key size is refused before the signature is looked at.
    const small = forge.pki.privateKeyFromPem(
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
        type: 'pkcs1',
        format: 'pem',
      }) as string,
    );
    req.sign(small, forge.md.sha256.create());
    const res = await jsonRequest(node.url, 'POST', '/v1/clients/register', {
      org: 'other',
      csr: forge.pki.certificationRequestToPem(req),
    });
    expectError(res, 400, 'INVALID_REQUEST');
    expect(res.json.error.message).toMatch(/16384 bits/);
  });

  // The CSR checks run first: the guesses below use up this address's registration allowance.
  it('checks at most 10 codes per org from one address even when 40 guesses arrive at once', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => guess('guarded', i)));
    const codes = answers.map((a) => a.json?.error?.code);
    expect(codes.filter((c) => c === 'INVALID_AUTH_CODE').length).toBeLessThanOrEqual(10);
    expect(codes.filter((c) => c === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(30);
    expect(codes.every((c) => c === 'INVALID_AUTH_CODE' || c === 'RATE_LIMITED')).toBe(true);
  });

  it('caps guesses across orgs per address too (5x the per-org allowance)', async () => {
    const orgs = Array.from({ length: 8 }, (_, i) => `org-${i}`);
    const answers = await Promise.all(
      orgs.flatMap((org) => Array.from({ length: 10 }, (_, i) => guess(org, i))),
    );
    const checked = answers.filter((a) => a.json?.error?.code === 'INVALID_AUTH_CODE').length;
    // 10 were already spent on 'guarded' from this address; the address allows 50 in all.
    expect(checked).toBeLessThanOrEqual(40);
    expect(answers.filter((a) => a.json?.error?.code === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(40);
  });
});
