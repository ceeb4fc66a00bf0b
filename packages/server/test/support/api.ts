import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { BINS, runCli, type CliResult } from './cli';
import { httpsRequest, jsonRequest, type RawResponse } from './https-request';
import type { SingleNode } from './single-node';
import type { OrgListing } from '@trustee/server';

/** The TLS identity a test client presents (absent: an anonymous caller). */
export interface Creds {
  cert: string;
  key: string;
}

/** A JSON request with the client's certificate; `body === undefined` sends no body at all. */
export function call(
  node: SingleNode,
  who: Creds | undefined,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const tls = who ? { cert: who.cert, key: who.key } : {};
  if (body === undefined) return httpsRequest(node.url, { method, path, headers, ...tls });
  return jsonRequest(node.url, method, path, body, { headers, ...tls });
}

/** PUTs a deposit holding `value` (a string or bytes, sent base64). */
export function putDeposit(
  node: SingleNode,
  who: Creds,
  name: string,
  value: string | Buffer,
  extra: { metadata?: unknown; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const b64 = Buffer.from(value).toString('base64');
  const body = extra.metadata === undefined ? { value: b64 } : { value: b64, metadata: extra.metadata };
  return call(node, who, 'PUT', `/v1/deposits/${name}`, body, extra.headers);
}

/** Asserts the documented error shape: status, stable code, a message, and no stack trace. */
export function expectError(res: RawResponse, status: number, code: string): void {
  expect({ status: res.status, code: res.json?.error?.code }).toEqual({ status, code });
  expect(typeof res.json.error.message).toBe('string');
  expect(res.json.error.message.length).toBeGreaterThan(0);
  expectNoStackTrace(res.text);
}

export function expectNoStackTrace(text: string): void {
  expect(text).not.toMatch(/\bat [\w.<>]+ \(|\n\s+at /);
  expect(text).not.toContain('Error:');
  expect(text).not.toMatch(/node_modules|\.ts:\d+|\.js:\d+/);
}

/** Runs keytrustee-orgtool against the node's confdir. */
export function orgtool(node: SingleNode, ...args: string[]): Promise<CliResult> {
  return runCli(BINS.orgtool, ['--confdir', node.confdir, ...args]);
}

/** `keytrustee-orgtool list`, parsed; throws when the command fails. */
export async function listOrgsCli(node: SingleNode): Promise<Record<string, OrgListing>> {
  const r = await orgtool(node, 'list');
  if (r.code !== 0) throw new Error(`orgtool list failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, OrgListing>;
}

/** Creates an org with the real CLI and returns its auto-generated auth code. */
export async function addOrgCli(
  node: SingleNode,
  name: string,
  contacts = `admin@${name}.example.com`,
): Promise<string> {
  const r = await orgtool(node, 'add', '-n', name, '-c', contacts);
  if (r.code !== 0) throw new Error(`orgtool add failed (${r.code}): ${r.stderr}`);
  return (await listOrgsCli(node))[name].auth_secret;
}

/** A certificate for `keyPem` signed by itself, i.e. not by the cluster CA. */
export function selfSignedCert(keyPem: string, commonName = 'impostor'): string {
  const pkcs1 = createPrivateKey(keyPem).export({ type: 'pkcs1', format: 'pem' }) as string;
  const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }) as string;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(spki);
  const serial = randomBytes(8);
  serial[0] &= 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const attrs = [{ name: 'commonName', value: commonName }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([{ name: 'extKeyUsage', clientAuth: true }]);
  cert.sign(forge.pki.privateKeyFromPem(pkcs1), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

export type { OrgListing };
