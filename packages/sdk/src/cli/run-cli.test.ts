import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { runCli } from './run-cli';

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
