import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createPublicKey } from 'node:crypto';
import { runCli } from './run-cli';
import { writeConfigFile } from '../config-file';
import { generateDataKey, wrapDataKey } from '../data-key';
import { FakeNode, answerHealth, sendJson } from '../../test/support/fake-node';
import { selfSignedCert } from '../../test/support/tls-fixture';

async function run(
  argv: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const code = await runCli(argv, { stdout, stderr, env });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

describe('ktclient', () => {
  it('prints help with exit code 0 for the program and each command', async () => {
    const top = await run(['--help']);
    expect(top.code).toBe(0);
    for (const cmd of ['register', 'put', 'get', 'list', 'delete', 'status'])
      expect(top.stdout).toContain(cmd);
    const get = await run(['get', '--help']);
    expect(get).toMatchObject({ code: 0 });
    expect(get.stdout).toContain('--output');
  });

  it('exits 2 on usage errors', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
    expect((await run(['put', 'k'])).code).toBe(2);
    expect((await run(['put', 'k', '--file', 'f', '--value', 'v'])).code).toBe(2);
    expect((await run(['get', 'k', '--version', 'x'])).code).toBe(2);
    expect((await run(['register', '--org', 'demo'])).code).toBe(2);
  });

  it('prints error: CODE: message and exits 1 for an insecure config (path from TRUSTEE_CLIENT_CONFIG)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktclient-'));
    const file = path.join(dir, 'kt.conf');
    fs.writeFileSync(file, '{}', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const result = await run(['list'], { TRUSTEE_CLIENT_CONFIG: file });
    fs.rmSync(dir, { recursive: true });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `error: CONFIG_INSECURE: config file ${file} has mode 0644; it holds a private key and must be accessible by its owner only: run chmod 600 ${file}\n`,
    );
  });
});

describe('ktclient against a local https node', () => {
  let node: FakeNode;
  let dir: string;
  let configFile: string;
  const stored = new Map<string, string>();

  beforeAll(async () => {
    const serverTls = selfSignedCert('127.0.0.1');
    const clientTls = selfSignedCert('client');
    node = await FakeNode.start(serverTls);
    node.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      const name = decodeURIComponent(new URL(req.url, 'https://x').pathname.split('/').pop() ?? '');
      if (req.method === 'PUT') {
        stored.set(name, (JSON.parse(req.body) as { value: string }).value);
        sendJson(res, 201, { name, version: 1 });
        return;
      }
      const value = stored.get(name);
      if (value === undefined) sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'no' } });
      else sendJson(res, 200, { name, version: 1, value, metadata: null, createdAt: '2026-01-01T00:00:00Z' });
    };
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ktclient-'));
    configFile = path.join(dir, 'kt.conf');
    const publicKey = createPublicKey(clientTls.key).export({ type: 'spki', format: 'pem' }).toString();
    writeConfigFile(configFile, {
      version: 1,
      endpoints: [node.url],
      org: 'demo',
      fingerprint: 'x',
      state: 'active',
      certificate: clientTls.cert,
      privateKey: clientTls.key,
      caCertificate: serverTls.cert,
      serverCa: serverTls.cert,
      encryption: 'envelope',
      dataKey: wrapDataKey(generateDataKey(), publicKey),
    });
  });

  afterAll(async () => {
    await node.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exits 0 for `help CMD`', async () => {
    const result = await run(['help', 'put']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--file');
  });

  it('put --file stores the file bytes; get writes the raw bytes to stdout', async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 10]);
    const input = path.join(dir, 'in.bin');
    fs.writeFileSync(input, bytes);
    const put = await run(['--config', configFile, '--json', 'put', 'bin', '--file', input]);
    expect(put.code).toBe(0);
    expect(JSON.parse(put.stdout)).toEqual({ name: 'bin', version: 1, idempotencyKey: expect.any(String) });
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    const code = await runCli(['--config', configFile, 'get', 'bin'], {
      stdout,
      stderr: new PassThrough(),
      env: {},
    });
    expect(code).toBe(0);
    expect(Buffer.concat(chunks)).toEqual(bytes);
  });

  it('get --output replaces an existing wider-mode file with a 0600 one', async () => {
    await run(['--config', configFile, 'put', 'secret', '--value', 'plaintext']);
    const out = path.join(dir, 'out.txt');
    fs.writeFileSync(out, 'old');
    fs.chmodSync(out, 0o644);
    const result = await run(['--config', configFile, 'get', 'secret', '--output', out]);
    expect(result.code).toBe(0);
    expect(fs.readFileSync(out, 'utf8')).toBe('plaintext');
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('get refuses a value stored unencrypted unless --raw says it is expected', async () => {
    expect((await run(['--config', configFile, 'put', 'plain', '--value', 'cleartext', '--raw'])).code).toBe(
      0,
    );
    const refused = await run(['--config', configFile, 'get', 'plain']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('DECRYPT_FAILED');
    expect(refused.stdout).toBe('');
    const raw = await run(['--config', configFile, 'get', 'plain', '--raw']);
    expect(raw.code).toBe(0);
    expect(raw.stdout).toBe('cleartext');
    expect(raw.stderr).toContain('stored unencrypted');
  });
});
