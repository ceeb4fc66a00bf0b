import { execFile, type ChildProcess } from 'node:child_process';
import { X509Certificate, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { confPaths, spawnNodeServer, updateKeytrusteeConf, waitForHealth } from '@trustee/server';
import { createIdentityCaCert, issueClientCert } from '../packages/server/src/crypto/certificates';
import { addOrgCli } from '../packages/server/test/support/api';
import { BINS } from '../packages/server/test/support/cli';
import { registerTestClient } from '../packages/server/test/support/clients';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { freePort } from '../packages/server/test/support/ports';
import { trackPid, untrackPid, waitFor, waitForExit } from '../packages/server/test/support/processes';
import { startSingleNode, type SingleNode } from '../packages/server/test/support/single-node';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

/**
 * The seed's TLS policy (001-admin-guide "TLS" sections, issue 10) on a real node: an
 * `openssl s_client` matrix of protocols and ciphers, TLS_MIN_VERSION / TLS_CIPHERS in the seed's
 * spelling, the seed's password script, certificate replacement with a CA-signed certificate
 * reloaded on SIGHUP, the expiry metric, and /metrics restricted by configuration.
 */

let work: string;
/** s_client and the openssl commands read no system openssl.cnf (a distro MinProtocol would hide the server's answer). */
const opensslEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  OPENSSL_CONF: join(work, 'empty-openssl.cnf'),
});

function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: opensslEnv(), timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
    child.stdin?.end();
  });
}

async function openssl(args: string[]): Promise<string> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.out}`);
  return r.out;
}

interface Handshake {
  ok: boolean;
  protocol?: string;
  cipher?: string;
  output: string;
}

/** One `openssl s_client` handshake (stdin closed: it connects, prints the session and quits). */
async function sClient(port: number, args: string[]): Promise<Handshake> {
  const r = await run('openssl', [
    's_client',
    '-connect',
    `127.0.0.1:${port}`,
    '-servername',
    'localhost',
    ...args,
  ]);
  // "New, <the cipher's version>, Cipher is X"; the session's version is in "Protocol  :" (not
  // printed for TLS 1.3 before a session ticket, when the "New" line names TLSv1.3 anyway).
  const m = /New, (\S+), Cipher is (\S+)/.exec(r.out);
  const session = /^\s+Protocol\s*:\s*(\S+)$/m.exec(r.out);
  const ok = r.code === 0 && !!m && m[2] !== '(NONE)';
  return { ok, protocol: session?.[1] ?? m?.[1], cipher: m?.[2], output: r.out };
}

/** Runs `fn` over `items`, `width` at a time. */
async function mapLimit<T, R>(items: T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}

/** Every TLS 1.2 cipher the local openssl can offer (security level 0: the client never refuses first). */
async function clientTls12Ciphers(): Promise<string[]> {
  const list = await openssl(['ciphers', '-tls1_2', '-s', 'ALL:COMPLEMENTOFALL:@SECLEVEL=0']);
  return list
    .trim()
    .split(':')
    .filter((c) => c && !c.startsWith('TLS_'));
}

/** The TLS 1.2 ciphers the server accepts, out of everything the client can offer. */
async function acceptedTls12(port: number): Promise<string[]> {
  const ciphers = await clientTls12Ciphers();
  const results = await mapLimit(ciphers, 8, (c) =>
    sClient(port, ['-tls1_2', '-cipher', `${c}:@SECLEVEL=0`]),
  );
  return ciphers.filter((_, i) => results[i].ok).sort();
}

const TLS13_SUITES = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_CCM_SHA256',
  'TLS_AES_128_CCM_8_SHA256',
];

async function acceptedTls13(port: number): Promise<string[]> {
  const results = await mapLimit(TLS13_SUITES, 5, (s) => sClient(port, ['-tls1_3', '-ciphersuites', s]));
  return TLS13_SUITES.filter((_, i) => results[i].ok).sort();
}

/** Which protocol versions the server accepts from a client willing to speak any of them. */
async function acceptedProtocols(port: number): Promise<string[]> {
  const flags = { TLSv1: '-tls1', 'TLSv1.1': '-tls1_1', 'TLSv1.2': '-tls1_2', 'TLSv1.3': '-tls1_3' };
  const out: string[] = [];
  for (const [v, flag] of Object.entries(flags)) {
    const r = await sClient(port, [flag, '-cipher', 'ALL:@SECLEVEL=0']);
    if (r.ok) {
      expect(r.protocol).toBe(v);
      out.push(v);
    }
  }
  return out;
}

/** The certificate a new connection is served, verified against `ca` when given. */
function servedCertificate(
  port: number,
  ca?: string,
): Promise<{ fingerprint256: string; validTo: string; chain: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ...(ca ? { ca, rejectUnauthorized: true } : { rejectUnauthorized: false }),
    });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(true);
      let chain = 1;
      for (let c = peer; c.issuerCertificate && c.issuerCertificate !== c; c = c.issuerCertificate) chain++;
      socket.destroy();
      resolve({ fingerprint256: peer.fingerprint256, validTo: peer.valid_to, chain });
    });
    socket.once('error', reject);
  });
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;
const expirySeconds = (pem: string) =>
  Math.floor(new Date(new X509Certificate(pem).validTo).getTime() / 1000);

function metricValue(text: string, name: string): number | undefined {
  const escaped = name.replace(/[{}"=]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

interface Variant {
  dir: string;
  confdir: string;
  port: number;
  url: string;
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/**
 * keytrusteed as its own process (SIGHUP, exit codes) on a copy of the node's confdir (same
 * identity, same PostgreSQL), with `conf` merged into its keytrustee.conf after `prepare`.
 */
async function launch(
  node: SingleNode,
  name: string,
  conf: Record<string, unknown>,
  prepare?: (confdir: string, dir: string) => Promise<void> | void,
): Promise<Variant> {
  const dir = join(work, name);
  const confdir = join(dir, 'confdir');
  mkdirSync(dir, { recursive: true });
  cpSync(node.confdir, confdir, { recursive: true });
  await prepare?.(confdir, dir);
  const port = await freePort();
  updateKeytrusteeConf(confdir, { ...conf, PORT: port, LISTEN_ADDRESS: '127.0.0.1' });
  const url = `https://localhost:${port}`;
  const child = spawnNodeServer(
    { name: 'node-a', dir, confdir, dbDir: node.dbDir, apiPort: port, dbPort: node.dbPort, url },
    { keytrusteedBin: BINS.keytrusteedDist, logLevel: 'info' },
  );
  trackPid(child.pid!);
  const log = () => readFileSync(join(dir, 'keytrusteed.log'), 'utf8');
  return {
    dir,
    confdir,
    port,
    url,
    child,
    log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await waitForExit(child.pid!, 10_000);
      untrackPid(child.pid!);
    },
  };
}

/** A variant that must serve: waits for /v1/health. */
async function startVariant(...args: Parameters<typeof launch>): Promise<Variant> {
  const v = await launch(...args);
  const exited = new Promise<never>((_, reject) =>
    v.child.once('exit', (code) => reject(new Error(`keytrusteed exited (${code}):\n${v.log()}`))),
  );
  await Promise.race([waitForHealth(v.url, 30_000), exited]);
  v.child.removeAllListeners('exit');
  return v;
}

/** A variant that must refuse to start: resolves with its exit code and output. */
async function refusedStart(
  ...args: Parameters<typeof launch>
): Promise<{ code: number | null; log: string }> {
  const v = await launch(...args);
  const code = await new Promise<number | null>((resolve) => {
    if (v.child.exitCode !== null) resolve(v.child.exitCode);
    else v.child.once('exit', (c) => resolve(c));
  });
  untrackPid(v.child.pid!);
  return { code, log: v.log() };
}

/** pino lines of a log file with this message. */
function logLines(log: string, msg: string): Record<string, unknown>[] {
  return log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

/** A key encrypted with `openssl genrsa -aes256` and a certificate for it, made as the seed says. */
async function encryptedKeyAndSelfSignedCert(
  dir: string,
  password: string,
): Promise<{ key: string; cert: string }> {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'keytrustee_private_key.pem');
  const csr = join(dir, 'new.csr');
  const cert = join(dir, 'new_keytrustee_certificate.pem');
  await openssl(['genrsa', '-aes256', '-passout', `pass:${password}`, '-out', key, '2048']);
  // Seed, "Generating a New Certificate": openssl req -new -key … -out new.csr, then x509 -req -signkey.
  await openssl([
    'req',
    '-new',
    '-key',
    key,
    '-passin',
    `pass:${password}`,
    '-out',
    csr,
    '-subj',
    '/CN=localhost',
  ]);
  await openssl([
    'x509',
    '-req',
    '-days',
    '365',
    '-in',
    csr,
    '-signkey',
    key,
    '-passin',
    `pass:${password}`,
    '-out',
    cert,
  ]);
  chmodSync(key, 0o600);
  chmodSync(cert, 0o600);
  return { key, cert };
}

describe('TLS: the seed policy on a real node', () => {
  let node: SingleNode;

  beforeAll(async () => {
    work = makeTempDir('trustee-tls-');
    writeFileSync(join(work, 'empty-openssl.cnf'), '');
    node = await startSingleNode();
  });

  afterAll(async () => {
    await node?.stop();
    removeDir(work);
  });

  describe('defaults (TLS_MIN_VERSION tlsv1.2, empty TLS_CIPHERS)', () => {
    it('TLS 1.2 accepts only ECDHE with AEAD suites: the CBC suite ECDHE-RSA-AES128-SHA is refused', async () => {
      const cbc = await sClient(node.server.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA']);
      expect(cbc.ok).toBe(false);
      const gcm = await sClient(node.server.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']);
      expect(gcm).toMatchObject({ ok: true, protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' });
      const chacha = await sClient(node.server.port, ['-tls1_2', '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305']);
      expect(chacha).toMatchObject({ ok: true, cipher: 'ECDHE-RSA-CHACHA20-POLY1305' });
      // Everything else the client knows (CBC, static RSA, DHE, CCM, ARIA, CAMELLIA, anonymous, NULL): refused.
      expect(await acceptedTls12(node.server.port)).toEqual([
        'ECDHE-RSA-AES128-GCM-SHA256',
        'ECDHE-RSA-AES256-GCM-SHA384',
        'ECDHE-RSA-CHACHA20-POLY1305',
      ]);
    });

    it('TLS 1.0 and 1.1 are refused (-tls1_1 fails); TLS 1.2 and 1.3 are accepted, 1.3 with its AEAD suites', async () => {
      const tls11 = await sClient(node.server.port, ['-tls1_1', '-cipher', 'ALL:@SECLEVEL=0']);
      expect(tls11.ok).toBe(false);
      expect(await acceptedProtocols(node.server.port)).toEqual(['TLSv1.2', 'TLSv1.3']);
      expect(await acceptedTls13(node.server.port)).toEqual([
        'TLS_AES_128_GCM_SHA256',
        'TLS_AES_256_GCM_SHA384',
        'TLS_CHACHA20_POLY1305_SHA256',
      ]);
    });

    it("the expiry metric equals the node certificate's notAfter, and /metrics stays open by default", async () => {
      const certPem = readFileSync(confPaths(node.confdir).sslCert, 'utf8');
      const m = await httpsRequest(node.url, { path: '/metrics' });
      expect(m.status).toBe(200);
      expect(m.text).toMatch(/^# TYPE trustee_tls_certificate_expiry_timestamp_seconds gauge$/m);
      expect(metricValue(m.text, 'trustee_tls_certificate_expiry_timestamp_seconds')).toBe(
        expirySeconds(certPem),
      );
      expect((await servedCertificate(node.server.port)).fingerprint256).toBe(fingerprintOf(certPem));
    });
  });

  describe("TLS_MIN_VERSION and TLS_CIPHERS in the seed's spelling", () => {
    it('TLSV1.3 (any case) refuses TLS 1.2', async () => {
      const v = await startVariant(node, 'min-tls13', { TLS_MIN_VERSION: 'TLSV1.3' });
      try {
        expect(await acceptedProtocols(v.port)).toEqual(['TLSv1.3']);
        expect(logLines(v.log(), 'TLS ready')[0]).toMatchObject({
          minVersion: 'TLSv1.3',
          protocols: ['TLSv1.3'],
        });
      } finally {
        await v.stop();
      }
    });

    it("the seed's `AES256, CAMELLIA256-SHA` (comma and space) with tlsv1: only those ciphers; TLS 1.0/1.1 not offered, and the log says so", async () => {
      const v = await startVariant(node, 'seed-ciphers', {
        TLS_MIN_VERSION: 'tlsv1',
        TLS_CIPHERS: 'AES256, CAMELLIA256-SHA',
      });
      try {
        const accepted = await acceptedTls12(v.port);
        // Only what the list names: AES-256 suites and CAMELLIA256-SHA (usable with an RSA key).
        const named = (await openssl(['ciphers', 'AES256:CAMELLIA256-SHA:@SECLEVEL=0'])).trim().split(':');
        for (const c of accepted) expect(named).toContain(c);
        expect(accepted).toEqual(expect.arrayContaining(['CAMELLIA256-SHA', 'ECDHE-RSA-AES256-GCM-SHA384']));
        expect(accepted).not.toContain('ECDHE-RSA-AES128-GCM-SHA256');
        expect(accepted).not.toContain('ECDHE-RSA-CHACHA20-POLY1305');
        // OpenSSL 3 refuses TLS 1.0/1.1 at security level 1: what is offered is TLS 1.2+, logged.
        expect(await acceptedProtocols(v.port)).toEqual(['TLSv1.2', 'TLSv1.3']);
        const log = v.log();
        expect(logLines(log, 'TLS ready')[0]).toMatchObject({
          minVersion: 'TLSv1',
          protocols: ['TLSv1.2', 'TLSv1.3'],
          ciphers: 'AES256:CAMELLIA256-SHA:!aNULL:!eNULL',
        });
        expect(log).toMatch(/TLS_MIN_VERSION allows older protocols than OpenSSL negotiates/);
      } finally {
        await v.stop();
      }
    });

    it('tlsv1.1 with CBC ciphers and @SECLEVEL=0 is honoured: TLS 1.1 accepted (and warned about), TLS 1.0 refused', async () => {
      const v = await startVariant(node, 'min-tls11', {
        TLS_MIN_VERSION: 'tlsv1.1',
        TLS_CIPHERS: 'ECDHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-AES128-SHA @SECLEVEL=0',
      });
      try {
        expect(await acceptedProtocols(v.port)).toEqual(['TLSv1.1', 'TLSv1.2', 'TLSv1.3']);
        const tls11 = await sClient(v.port, ['-tls1_1', '-cipher', 'ALL:@SECLEVEL=0']);
        expect(tls11).toMatchObject({ ok: true, protocol: 'TLSv1.1', cipher: 'ECDHE-RSA-AES128-SHA' });
        const log = v.log();
        expect(logLines(log, 'TLS ready')[0]).toMatchObject({ protocols: ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'] });
        expect(log).toMatch(/deprecated TLS 1.0\/1.1 offered/);
      } finally {
        await v.stop();
      }
    });

    it('a TLS_CIPHERS that selects nothing or a TLS_MIN_VERSION that names no version stops the start, naming the key', async () => {
      const ciphers = await refusedStart(node, 'bad-ciphers', { TLS_CIPHERS: 'NO-SUCH-CIPHER' });
      expect(ciphers.code).toBe(1);
      expect(ciphers.log).toMatch(/TLS_CIPHERS selects no cipher OpenSSL knows/);
      const version = await refusedStart(node, 'bad-version', { TLS_MIN_VERSION: 'sslv3' });
      expect(version.code).toBe(1);
      expect(version.log).toMatch(/TLS_MIN_VERSION: "sslv3" is not one of tlsv1, tlsv1.1, tlsv1.2, tlsv1.3/);
    });
  });

  describe('SSL_PRIVATE_KEY_PASSWORD_SCRIPT', () => {
    it('the seed\'s "/bin/echo -n password" opens a key made with openssl genrsa -aes256; the password is never logged', async () => {
      const v = await startVariant(node, 'pw-seed', {}, async (confdir, dir) => {
        const made = await encryptedKeyAndSelfSignedCert(join(dir, 'new'), 'password');
        updateKeytrusteeConf(confdir, {
          SSL_CERTIFICATE: made.cert,
          SSL_PRIVATE_KEY: made.key,
          SSL_PRIVATE_KEY_PASSWORD_SCRIPT: '/bin/echo -n password',
        });
      });
      try {
        const certPem = readFileSync(join(v.dir, 'new', 'new_keytrustee_certificate.pem'), 'utf8');
        expect((await servedCertificate(v.port)).fingerprint256).toBe(fingerprintOf(certPem));
        expect(readFileSync(join(v.dir, 'new', 'keytrustee_private_key.pem'), 'utf8')).toMatch(/ENCRYPTED/);
        expect(logLines(v.log(), 'TLS ready')[0]).toMatchObject({
          protocols: ['TLSv1.2', 'TLSv1.3'],
          chain: 1,
        });
        expect(v.log()).not.toMatch(/TLS_MIN_VERSION allows older protocols/);
        expect(v.log()).not.toMatch(/\bpassword\b/);
      } finally {
        await v.stop();
      }
    });

    it('a quoted passphrase with a space, for a key encrypted by node crypto (PKCS#8)', async () => {
      const v = await startVariant(node, 'pw-quoted', {}, async (confdir, dir) => {
        const { privateKey } = generateKeyPairSync('rsa', {
          modulusLength: 2048,
          publicKeyEncoding: { type: 'spki', format: 'pem' },
          privateKeyEncoding: {
            type: 'pkcs8',
            format: 'pem',
            cipher: 'aes-256-cbc',
            passphrase: 'correct horse',
          },
        });
        const key = join(dir, 'node-key.pem');
        writeFileSync(key, privateKey, { mode: 0o600 });
        const cert = join(dir, 'node-cert.pem');
        await openssl([
          'req',
          '-x509',
          '-key',
          key,
          '-passin',
          'pass:correct horse',
          '-subj',
          '/CN=localhost',
          '-days',
          '30',
          '-out',
          cert,
        ]);
        updateKeytrusteeConf(confdir, {
          SSL_CERTIFICATE: cert,
          SSL_PRIVATE_KEY: key,
          SSL_PRIVATE_KEY_PASSWORD_SCRIPT: `/bin/echo -n 'correct horse'`,
        });
      });
      try {
        const certPem = readFileSync(join(v.dir, 'node-cert.pem'), 'utf8');
        expect((await servedCertificate(v.port)).fingerprint256).toBe(fingerprintOf(certPem));
        expect(v.log()).not.toMatch(/correct horse/);
      } finally {
        await v.stop();
      }
    });

    it('a wrong passphrase or a missing script stops the start with a message naming the key, not the password', async () => {
      const prepare = (script?: string) => async (confdir: string, dir: string) => {
        const made = await encryptedKeyAndSelfSignedCert(join(dir, 'new'), 'password');
        updateKeytrusteeConf(confdir, {
          SSL_CERTIFICATE: made.cert,
          SSL_PRIVATE_KEY: made.key,
          ...(script ? { SSL_PRIVATE_KEY_PASSWORD_SCRIPT: script } : {}),
        });
      };
      const wrong = await refusedStart(node, 'pw-wrong', {}, prepare('/bin/echo -n hunter2'));
      expect(wrong.code).toBe(1);
      expect(wrong.log).toMatch(
        /cannot be decrypted with the passphrase SSL_PRIVATE_KEY_PASSWORD_SCRIPT printed/,
      );
      expect(wrong.log).not.toMatch(/hunter2/);
      const failing = await refusedStart(node, 'pw-fails', {}, prepare('/bin/false hunter2'));
      expect(failing.log).toMatch(/SSL_PRIVATE_KEY_PASSWORD_SCRIPT \(\/bin\/false\) exited with code 1/);
      expect(failing.log).not.toMatch(/hunter2/);
      const missing = await refusedStart(node, 'pw-missing', {}, prepare());
      expect(missing.log).toMatch(/is encrypted: set SSL_PRIVATE_KEY_PASSWORD_SCRIPT/);
    });
  });

  describe('certificate replacement (seed: "Replacing Key Trustee Server Certificates") and SIGHUP', () => {
    it('a CA-signed certificate with its CA file is served to new connections after SIGHUP; an open keep-alive connection keeps working; a bad one is refused and the old kept', async () => {
      const v = await startVariant(node, 'replace', {});
      const agent = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
      try {
        const get = (path: string) =>
          new Promise<{ status: number; reused: boolean; fingerprint256: string; text: string }>(
            (resolve, reject) => {
              const req = request(`${v.url}${path}`, { agent }, (res) => {
                // The socket goes back to the agent at the end of the response: read it now.
                const fingerprint256 = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (c: string) => (text += c));
                res.on('end', () =>
                  resolve({
                    status: res.statusCode ?? 0,
                    reused: req.reusedSocket,
                    fingerprint256,
                    text,
                  }),
                );
              });
              req.on('error', reject);
              req.end();
            },
          );
        const oldPem = readFileSync(join(v.confdir, '.ssl', 'ssl-cert-keytrustee.pem'), 'utf8');
        const first = await get('/v1/health');
        expect(first).toMatchObject({ status: 200, reused: false, fingerprint256: fingerprintOf(oldPem) });

        // A CA, and from it a certificate for a new password-protected key (seed: generate, CSR, CA signs).
        const ca = join(work, 'ca');
        mkdirSync(ca);
        await openssl([
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(ca, 'ca.key'),
          '-out',
          join(ca, 'rootca.pem'),
          '-days',
          '30',
          '-subj',
          '/CN=Trustee test root CA',
          '-addext',
          'basicConstraints=critical,CA:TRUE',
          '-addext',
          'keyUsage=critical,keyCertSign,cRLSign',
        ]);
        const rootPem = readFileSync(join(ca, 'rootca.pem'), 'utf8');
        const newDir = join(v.dir, 'new');
        mkdirSync(newDir);
        const key = join(newDir, 'private_key.pem');
        const cert = join(newDir, 'certificate.pem');
        await openssl(['genrsa', '-aes256', '-passout', 'pass:password', '-out', key, '2048']);
        await openssl([
          'req',
          '-new',
          '-key',
          key,
          '-passin',
          'pass:password',
          '-out',
          join(newDir, 'new.csr'),
          '-subj',
          '/CN=localhost',
        ]);
        writeFileSync(
          join(ca, 'ext.cnf'),
          'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
        );
        await openssl([
          'x509',
          '-req',
          '-in',
          join(newDir, 'new.csr'),
          '-CA',
          join(ca, 'rootca.pem'),
          '-CAkey',
          join(ca, 'ca.key'),
          '-CAcreateserial',
          '-days',
          '60',
          '-extfile',
          join(ca, 'ext.cnf'),
          '-out',
          cert,
        ]);
        const newPem = readFileSync(cert, 'utf8');
        // 1. back up .ssl; 2. the CA certificate into .ssl/ssl-cert-keytrustee-ca.pem; 3. chmod 600;
        // 4. keytrustee.conf names the new files and the password script; 5. instead of a restart: SIGHUP.
        cpSync(join(v.confdir, '.ssl'), join(v.confdir, '.ssl.bak'), { recursive: true });
        renameSync(join(ca, 'rootca.pem'), join(v.confdir, '.ssl', 'ssl-cert-keytrustee-ca.pem'));
        chmodSync(cert, 0o600);
        chmodSync(key, 0o600);
        updateKeytrusteeConf(v.confdir, {
          SSL_CERTIFICATE: cert,
          SSL_PRIVATE_KEY: key,
          SSL_PRIVATE_KEY_PASSWORD_SCRIPT: '/bin/echo -n password',
        });
        v.child.kill('SIGHUP');
        await waitFor(
          'reload logged',
          () => logLines(v.log(), 'TLS certificate reloaded').length === 1,
          20_000,
        );

        // New connections: the CA-signed certificate and the CA, verifiable by a client trusting only the CA.
        const served = await servedCertificate(v.port, rootPem);
        expect(served).toMatchObject({ fingerprint256: fingerprintOf(newPem), chain: 2 });
        const showcerts = await sClient(v.port, ['-showcerts']);
        expect(showcerts.output.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
        // The open keep-alive connection was not dropped: same socket, old certificate, still answering.
        const second = await get('/v1/health');
        expect(second).toMatchObject({ status: 200, reused: true, fingerprint256: fingerprintOf(oldPem) });
        const reloaded = logLines(v.log(), 'TLS certificate reloaded')[0];
        expect(reloaded).toMatchObject({
          certificate: cert,
          chain: 2,
          fingerprint256: fingerprintOf(newPem),
        });
        expect(v.log()).not.toMatch(/\bpassword\b/);
        const metrics = (await httpsRequest(v.url, { path: '/metrics' })).text;
        expect(metricValue(metrics, 'trustee_tls_certificate_expiry_timestamp_seconds')).toBe(
          expirySeconds(newPem),
        );
        expect(metricValue(metrics, 'trustee_tls_reloads_total{result="ok"}')).toBe(1);

        // A bad new certificate (not for the configured key): the CA-signed one stays, the log says why.
        writeFileSync(cert, oldPem);
        v.child.kill('SIGHUP');
        await waitFor(
          'failed reload logged',
          () => logLines(v.log(), 'TLS reload failed; still serving the previous certificate').length === 1,
        );
        const failed = logLines(v.log(), 'TLS reload failed; still serving the previous certificate')[0];
        expect(failed.reason).toMatch(
          /SSL_PRIVATE_KEY .* does not belong to the certificate in SSL_CERTIFICATE/,
        );
        expect((await servedCertificate(v.port, rootPem)).fingerprint256).toBe(fingerprintOf(newPem));
        const after = (await httpsRequest(v.url, { path: '/metrics' })).text;
        expect(metricValue(after, 'trustee_tls_reloads_total{result="failed"}')).toBe(1);
        expect(metricValue(after, 'trustee_tls_certificate_expiry_timestamp_seconds')).toBe(
          expirySeconds(newPem),
        );
        expect((await get('/v1/health')).status).toBe(200);
      } finally {
        agent.destroy();
        await v.stop();
      }
    });
  });

  describe('/metrics restricted by configuration', () => {
    function plainGet(port: number, path: string): Promise<{ status: number; text: string }> {
      return new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.end();
      });
    }

    it('METRICS_REQUIRE_CLIENT_CERT: only a client certificate issued by the cluster CA scrapes; METRICS_LISTEN serves plain HTTP', async () => {
      const metricsPort = await freePort();
      const v = await startVariant(node, 'metrics-mtls', {
        METRICS_REQUIRE_CLIENT_CERT: true,
        METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
      });
      try {
        const pair = () =>
          generateKeyPairSync('rsa', {
            modulusLength: 2048,
            publicKeyEncoding: { type: 'spki', format: 'pem' },
            privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
          });
        // The scraper is a registered, active client (a CA-signed certificate alone is not enough).
        const scraper = await registerTestClient(v.url, 'monitoring', await addOrgCli(node, 'monitoring'));
        const otherCa = pair();
        const foreign = await issueClientCert(
          {
            publicKeyPem: createPublicKey(scraper.key).export({ type: 'spki', format: 'pem' }) as string,
            fingerprint: 'prometheus',
            org: 'monitoring',
            caCertPem: createIdentityCaCert(otherCa.privateKey, 'another cluster'),
          },
          async (der) => sign('sha256', der, otherCa.privateKey),
        );
        const anonymous = await httpsRequest(v.url, { path: '/metrics' });
        expect(anonymous.status).toBe(401);
        expect(anonymous.json.error.code).toBe('UNAUTHENTICATED');
        expect((await httpsRequest(v.url, { path: '/METRICS/' })).status).toBe(401);
        expect(
          (await httpsRequest(v.url, { path: '/metrics', cert: foreign, key: scraper.key })).status,
        ).toBe(401);
        const allowed = await httpsRequest(v.url, { path: '/metrics', cert: scraper.cert, key: scraper.key });
        expect(allowed.status).toBe(200);
        expect(allowed.text).toMatch(/^trustee_tls_certificate_expiry_timestamp_seconds \d+$/m);
        // The rest of the API is unchanged.
        expect((await httpsRequest(v.url, { path: '/v1/health' })).status).toBe(200);

        const plain = await plainGet(metricsPort, '/metrics');
        expect(plain.status).toBe(200);
        expect(plain.text).toMatch(/^trustee_node_role\{role="active"\} 1$/m);
        expect((await plainGet(metricsPort, '/v1/health')).status).toBe(404);
      } finally {
        await v.stop();
      }
    });

    it('METRICS_LISTEN alone moves /metrics off the API port', async () => {
      const metricsPort = await freePort();
      const v = await startVariant(node, 'metrics-listen', { METRICS_LISTEN: `127.0.0.1:${metricsPort}` });
      try {
        const api = await httpsRequest(v.url, { path: '/metrics' });
        expect(api.status).toBe(404);
        expect(api.json.error.code).toBe('NOT_FOUND');
        expect((await httpsRequest(v.url, { path: '/Metrics' })).status).toBe(404);
        expect((await plainGet(metricsPort, '/metrics')).status).toBe(200);
        expect(logLines(v.log(), 'metrics served over plain HTTP on loopback')[0]).toMatchObject({
          port: metricsPort,
        });
      } finally {
        await v.stop();
      }
    });
  });
});
