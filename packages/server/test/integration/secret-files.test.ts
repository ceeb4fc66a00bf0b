import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { confPaths, keyFingerprint, startServer, StartupError } from '@trustee/server';
import { BINS, runCli } from '../support/cli';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { makeTempDir, removeDir } from '../support/temp-dir';
import { call } from '../support/api';

let node: SingleNode;
let home: string;
let confdir: string;
let initResult: { code: number | null; stdout: string; stderr: string };

const mode = (f: string) => statSync(f).mode & 0o777;

beforeAll(async () => {
  home = makeTempDir();
  confdir = join(home, 'confdir');
  [node, initResult] = await Promise.all([
    startSingleNode(),
    runCli(BINS.ktadmin, ['--confdir', confdir, 'init', '--host', 'kt.example.test']),
  ]);
});

afterAll(async () => {
  await node?.stop();
  if (home) removeDir(home);
});

describe('ktadmin init', () => {
  it('creates a 0700 confdir whose secret files are 0600', () => {
    expect(initResult.code).toBe(0);
    const p = confPaths(confdir);
    expect(mode(confdir)).toBe(0o700);
    expect(mode(p.sslDir) & 0o077).toBe(0);
    for (const secret of [p.identityKey, p.masterKey, p.sslKey])
      expect({ file: secret, mode: mode(secret) }).toEqual({ file: secret, mode: 0o600 });
    const conf = JSON.parse(readFileSync(p.conf, 'utf8')) as Record<string, unknown>;
    expect(conf).toMatchObject({ SSL_CERTIFICATE: expect.any(String), SSL_PRIVATE_KEY: expect.any(String) });
  });

  it('makes an RSA 4096 identity whose CA certificate holds the same key', () => {
    const p = confPaths(confdir);
    const key = createPublicKey(readFileSync(p.identityKey));
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(4096);
    const cert = new X509Certificate(readFileSync(p.identityCert));
    expect(keyFingerprint(cert.publicKey)).toBe(keyFingerprint(key));
    expect(cert.ca).toBe(true);
  });

  it('refuses to run again on an initialized confdir without --force (exit 1, nothing replaced)', async () => {
    const p = confPaths(confdir);
    const before = readFileSync(p.identityKey);
    const again = await runCli(BINS.ktadmin, ['--confdir', confdir, 'init', '--host', 'kt.example.test']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already initialized/);
    expect(again.stderr).toContain('--force');
    expect(readFileSync(p.identityKey).equals(before)).toBe(true);
  });
});

describe('secret file modes at start', () => {
  const secrets = ['trustee-identity.key', 'trustee-master.key', '.ssl/ssl-cert-keytrustee-pk.pem'];

  it.each(secrets.flatMap((f) => [[f, 0o644] as const, [f, 0o640] as const, [f, 0o604] as const]))(
    'refuses to start when %s has mode %o, naming the file and saying chmod 600',
    async (file, badMode) => {
      const path = join(confdir, file);
      chmodSync(path, badMode);
      try {
        const err = await startServer({ confdir, port: 0, listenAddress: '127.0.0.1' }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(StartupError);
        expect((err as Error).message).toContain(path);
        expect((err as Error).message).toContain('chmod 600');
      } finally {
        chmodSync(path, 0o600);
      }
    },
  );

  it('makes keytrusteed exit 1 with the chmod hint when the master key is world-readable', async () => {
    const path = confPaths(confdir).masterKey;
    chmodSync(path, 0o644);
    try {
      const r = await runCli(BINS.keytrusteed, ['--confdir', confdir], { timeoutMs: 20_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`chmod 600 ${path}`);
    } finally {
      chmodSync(path, 0o600);
    }
  });

  it('gets past the mode check once the files are 0600 again (the next failure is the missing database)', async () => {
    const err = await startServer({ confdir, port: 0, listenAddress: '127.0.0.1' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StartupError);
    expect((err as Error).message).not.toContain('chmod');
    expect((err as Error).message).toMatch(/db --bootstrap/);
  });
});

describe('cluster fingerprint endpoint', () => {
  it('answers GET /?a=fingerprint with text/plain 4096R/<SHA-1 of the identity key SPKI, upper-case hex>', async () => {
    const res = await call(node, undefined, 'GET', '/?a=fingerprint');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toMatch(/^4096R\/[0-9A-F]{40}$/);
    const der = createPublicKey(readFileSync(confPaths(node.confdir).identityKey)).export({
      type: 'spki',
      format: 'der',
    });
    expect(res.text).toBe(`4096R/${createHash('sha1').update(der).digest('hex').toUpperCase()}`);
  });
});
