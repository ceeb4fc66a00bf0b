import { createCsr } from '@trustee/sdk';
import { jsonRequest } from './https-request';
import { takeClientKeyPair } from './test-keys';

export interface TestClient {
  fingerprint: string;
  state: string;
  cert: string;
  key: string;
  caCertificate: string;
}

/** An RSA 2048 key (new within this test file; pooled across files) and its CSR. */
export function makeCsr(org: string): { csr: string; key: string; publicKey: string } {
  const { privateKey, publicKey } = takeClientKeyPair();
  return { csr: createCsr({ privateKey, publicKey }, 'test-client', org), key: privateKey, publicKey };
}

/** Registers a fresh key pair over the real API; throws with the server's error body on failure. */
export async function registerTestClient(url: string, org: string, authCode?: string): Promise<TestClient> {
  const { csr, key } = makeCsr(org);
  const res = await jsonRequest(url, 'POST', '/v1/clients/register', {
    org,
    csr,
    ...(authCode !== undefined ? { authCode } : {}),
  });
  if (res.status !== 200) throw new Error(`registration failed: ${res.status} ${res.text}`);
  return {
    fingerprint: res.json.fingerprint,
    state: res.json.state,
    cert: res.json.certificate,
    key,
    caCertificate: res.json.caCertificate,
  };
}
