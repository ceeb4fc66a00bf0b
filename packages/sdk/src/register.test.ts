import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readConfigFile } from './config-file';
import { unwrapDataKey } from './data-key';
import { registerClient } from './client';
import { clientFingerprint } from './register';
import { FakeNode, answerHealth, sendJson } from '../test/support/fake-node';
import { selfSignedCert, signCsr } from '../test/support/tls-fixture';

describe('registerClient', () => {
  let dir: string;
  let node: FakeNode;
  const serverTls = selfSignedCert('127.0.0.1');

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-register-'));
    node = await FakeNode.start(serverTls);
    node.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      if (req.url === '/?a=fingerprint') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`4096R/${'AB'.repeat(20)}`);
        return;
      }
      const { csr, org } = JSON.parse(req.body) as { csr: string; org: string };
      if (org !== 'demo') {
        sendJson(res, 403, { error: { code: 'INVALID_AUTH_CODE', message: 'wrong org or code' } });
        return;
      }
      const certificate = signCsr(csr, serverTls);
      const fingerprint = clientFingerprint(
        new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      );
      sendJson(res, 200, { fingerprint, state: 'pending', certificate, caCertificate: serverTls.cert });
    };
  });

  afterEach(async () => {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('generates a key, registers, and writes a 0600 config whose data key unwraps', async () => {
    const configPath = path.join(dir, 'keytrustee.conf');
    const result = await registerClient({
      servers: [node.url],
      org: 'demo',
      authCode: 'c0de',
      configPath,
      ca: serverTls.cert,
      keyBits: 2048,
    });
    result.client.close();
    expect(result.state).toBe('pending');
    expect(result.fingerprint).toMatch(/^2048R\/[0-9A-F]{40}$/);
    expect(fs.statSync(configPath).mode & 0o777).toBe(0o600);
    const config = readConfigFile(configPath);
    expect(config).toMatchObject({
      version: 1,
      org: 'demo',
      endpoints: [node.url],
      encryption: 'envelope',
      clusterFingerprint: `4096R/${'AB'.repeat(20)}`,
    });
    expect(unwrapDataKey(config.dataKey, config.privateKey)).toHaveLength(32);
    const posted = JSON.parse(node.requests.find((r) => r.method === 'POST')?.body ?? '{}') as {
      csr: string;
      authCode: string;
    };
    expect(posted.csr).toContain('BEGIN CERTIFICATE REQUEST');
    expect(posted.authCode).toBe('c0de');
  });

  it('with skipSslCheck, pins the certificates the nodes presented (trust on first use)', async () => {
    const configPath = path.join(dir, 'tofu.conf');
    const result = await registerClient({
      servers: [node.url],
      org: 'demo',
      authCode: 'c0de',
      configPath,
      skipSslCheck: true,
      keyBits: 2048,
    });
    result.client.close();
    const config = readConfigFile(configPath);
    expect(config.skipSslCheck).toBeUndefined();
    expect(new X509Certificate(config.serverCa ?? '').fingerprint256).toBe(
      new X509Certificate(serverTls.cert).fingerprint256,
    );
  });

  it('keeps skipSslCheck when pinOnFirstUse is off', async () => {
    const configPath = path.join(dir, 'unpinned.conf');
    const result = await registerClient({
      servers: [node.url],
      org: 'demo',
      configPath,
      skipSslCheck: true,
      pinOnFirstUse: false,
      keyBits: 2048,
    });
    result.client.close();
    const config = readConfigFile(configPath);
    expect(config.skipSslCheck).toBe(true);
    expect(config.serverCa).toBeUndefined();
  });

  it('surfaces a refused registration as a typed error and writes nothing', async () => {
    const configPath = path.join(dir, 'keytrustee.conf');
    await expect(
      registerClient({ servers: [node.url], org: 'other', configPath, ca: serverTls.cert, keyBits: 2048 }),
    ).rejects.toMatchObject({
      code: 'INVALID_AUTH_CODE',
    });
    expect(fs.existsSync(configPath)).toBe(false);
  });

  it('refuses to overwrite an existing config file', async () => {
    const configPath = path.join(dir, 'keytrustee.conf');
    fs.writeFileSync(configPath, '{}', { mode: 0o600 });
    await expect(
      registerClient({ servers: [node.url], org: 'demo', configPath, ca: serverTls.cert }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
