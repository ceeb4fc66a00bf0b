import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigError,
  DEFAULT_API_PORT,
  ENV,
  keytrusteeConfSchema,
  loadKeytrusteeConf,
  resolveConfPath,
} from './config';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'trustee-config-test-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh confdir holding keytrustee.conf with exactly `text`. */
function confdirWith(text: string): string {
  const confdir = mkdtempSync(join(dir, 'conf-'));
  writeFileSync(join(confdir, 'keytrustee.conf'), text, { mode: 0o600 });
  return confdir;
}

/** The ConfigError that loading `text` as keytrustee.conf raises. */
function loadError(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  const confdir = confdirWith(text);
  try {
    loadKeytrusteeConf(confdir, env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).name).toBe('ConfigError');
    expect((e as Error).message).toContain(join(confdir, 'keytrustee.conf'));
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, but the file loaded');
}

describe('loadKeytrusteeConf', () => {
  it('reads a minimal file and fills in every default', () => {
    const conf = loadKeytrusteeConf(confdirWith('{"HOST": "kt01.example.com"}'), {});
    expect(conf).toMatchObject({
      HOST: 'kt01.example.com',
      PORT: DEFAULT_API_PORT,
      LISTEN_ADDRESS: '0.0.0.0',
      SSL_CERTIFICATE: '.ssl/ssl-cert-keytrustee.pem',
      SSL_PRIVATE_KEY: '.ssl/ssl-cert-keytrustee-pk.pem',
      TLS_MIN_VERSION: 'TLSv1.2',
      METRICS_REQUIRE_CLIENT_CERT: false,
      DB_PORT: 11381,
      PEERS: [],
      COMMIT_WAIT_MS: 2000,
      MAX_VALUE_BYTES: 65536,
      MAX_PENDING_CLIENTS_PER_ORG: 100,
      RATE_LIMIT_PER_SECOND: 500,
      TLS_HANDSHAKE_TIMEOUT_MS: 10_000,
      HEADERS_TIMEOUT_MS: 10_000,
      REQUEST_TIMEOUT_MS: 30_000,
      MAX_CONNECTIONS_PER_SOURCE: 256,
      REGISTRATION_FAILURES_PER_15_MIN: 10,
      REGISTRATIONS_PER_15_MIN: 300,
      TRUSTED_PROXIES: [],
      CLIENT_ADDRESS_HEADER: 'X-Forwarded-For',
      SIGNING_QUEUE_MAX: 128,
      BACKUP_SCHEDULE: '0 * * * *',
      BACKUP_KEEP: 10,
    });
    for (const unset of [
      'REDIS_URL',
      'JOURNAL_DIR',
      'DB_ROOTDIR',
      'METRICS_LISTEN',
      'BACKUP_GPG_RECIPIENT',
    ]) {
      expect(conf).not.toHaveProperty(unset);
    }
  });

  it('keeps keys it does not know, so a newer node’s file does not stop an older binary', () => {
    const conf = loadKeytrusteeConf(confdirWith('{"HOST": "kt01", "SOME_FUTURE_KEY": [1, 2]}'), {});
    expect((conf as Record<string, unknown>).SOME_FUTURE_KEY).toEqual([1, 2]);
  });

  it('says to run `ktadmin init` when the file is missing', () => {
    const empty = mkdtempSync(join(dir, 'empty-'));
    expect(() => loadKeytrusteeConf(empty, {})).toThrow(
      new ConfigError(
        `could not read ${join(empty, 'keytrustee.conf')}: not found (run \`ktadmin init\` first)`,
      ),
    );
  });

  it('says why a file it cannot read is unreadable', () => {
    // A directory in the file's place fails for every user, root included.
    const confdir = mkdtempSync(join(dir, 'isdir-'));
    mkdirSync(join(confdir, 'keytrustee.conf'));
    expect(() => loadKeytrusteeConf(confdir, {})).toThrow(
      new RegExp(`^could not read ${join(confdir, 'keytrustee.conf')}: EISDIR`),
    );
  });

  it.each([
    ['an empty file', ''],
    ['a truncated object', '{"HOST": "kt01",'],
    ['a trailing comma', '{"HOST": "kt01",}'],
    ['single quotes', "{'HOST': 'kt01'}"],
  ])('refuses %s as not JSON, naming the file', (_label, text) => {
    expect(loadError(text).message).toMatch(/^could not read .*keytrustee\.conf: .*JSON/);
  });

  it('never quotes the text around a JSON error (it may be a secret written without quotes)', () => {
    for (const text of [
      '{"HOST": "kt01", "SSL_PRIVATE_KEY_PASSWORD_SCRIPT": echo s3cretPW}',
      '{"HOST": "kt01",\n "REDIS_URL": redis://:s3cretPW@kt03:6379}',
    ]) {
      const message = loadError(text).message;
      expect(message).toMatch(/not valid JSON/);
      expect(message).not.toMatch(/s3cre|echo|redis:/);
    }
  });

  it.each([
    ['an array', '[]', '(root)'],
    ['a string', '"kt01"', '(root)'],
    ['null', 'null', '(root)'],
    ['an object without HOST', '{}', 'HOST'],
    ['an empty HOST', '{"HOST": ""}', 'HOST'],
  ])('refuses %s, naming what is wrong', (_label, text, where) => {
    expect(loadError(text).message).toMatch(
      new RegExp(`^invalid .*keytrustee\\.conf: ${where.replace(/[()]/g, '\\$&')}: `),
    );
  });

  it.each<[string, unknown]>([
    ['PORT', -1],
    ['PORT', 65536],
    ['PORT', 443.5],
    ['PORT', '11371'],
    ['DB_PORT', 0],
    ['DB_PORT', 65536],
    ['COMMIT_WAIT_MS', 49],
    ['COMMIT_WAIT_MS', 60_001],
    ['COMMIT_WAIT_MS', '2s'],
    ['MAX_VALUE_BYTES', 0],
    ['MAX_VALUE_BYTES', 16 * 1024 * 1024 + 1],
    ['MAX_PENDING_CLIENTS_PER_ORG', 0],
    ['RATE_LIMIT_PER_SECOND', 0],
    ['TLS_HANDSHAKE_TIMEOUT_MS', 99],
    ['HEADERS_TIMEOUT_MS', 120_001],
    ['REQUEST_TIMEOUT_MS', 999],
    ['MAX_CONNECTIONS_PER_SOURCE', 0],
    ['REGISTRATION_FAILURES_PER_15_MIN', 0],
    ['REGISTRATIONS_PER_15_MIN', 1_000_001],
    ['SIGNING_THREADS', 0],
    ['SIGNING_THREADS', 65],
    ['SIGNING_QUEUE_MAX', 0],
    ['BACKUP_KEEP', 0],
    ['BACKUP_KEEP', 10_000],
    ['METRICS_REQUIRE_CLIENT_CERT', 'yes'],
    ['PEERS', 'https://kt02:11371'],
    ['PEERS', ['not a url']],
    ['PEERS', ['kt02:11371']],
    ['PEERS', ['http://kt02:11371']],
    ['PEERS', ['ftp://kt02:11371']],
    ['METRICS_LISTEN', 'localhost'],
    ['METRICS_LISTEN', '127.0.0.1:99999'],
    ['MAX_SLOT_WAL_KEEP_SIZE', '4G'],
    ['MAX_SLOT_WAL_KEEP_SIZE', '4 GB'],
    ['JOURNAL_DIR', 'journal'],
    ['BACKUP_DIR', 'backups'],
    ['BACKUP_GNUPGHOME', '~/.gnupg'],
    ['SSL_PRIVATE_KEY_PASSWORD_SCRIPT', ''],
    ['BACKUP_GPG_RECIPIENT', ''],
  ])('refuses %s = %j, naming the key', (key, value) => {
    const err = loadError(JSON.stringify({ HOST: 'kt01', [key]: value }));
    expect(err.message).toMatch(new RegExp(`^invalid .*keytrustee\\.conf: ${key}(\\.\\d+)?: .+`));
  });

  it.each<[string, unknown]>([
    ['PORT', 0],
    ['PORT', 65535],
    ['DB_PORT', 1],
    ['COMMIT_WAIT_MS', 50],
    ['COMMIT_WAIT_MS', 60_000],
    ['MAX_VALUE_BYTES', 1],
    ['MAX_VALUE_BYTES', 16 * 1024 * 1024],
    ['SIGNING_THREADS', 64],
    ['PEERS', ['https://kt02.example.com:11371', 'https://[::1]:11372']],
    ['METRICS_LISTEN', '127.0.0.1:9371'],
    ['MAX_SLOT_WAL_KEEP_SIZE', '512MB'],
    ['JOURNAL_DIR', '/mnt/journal'],
  ])('accepts %s = %j at or inside its bounds', (key, value) => {
    const conf = loadKeytrusteeConf(confdirWith(JSON.stringify({ HOST: 'kt01', [key]: value })), {});
    expect((conf as Record<string, unknown>)[key]).toEqual(value);
  });

  it('lets TRUSTEE_REDIS_URL override REDIS_URL, and only when set', () => {
    const confdir = confdirWith('{"HOST": "kt01", "REDIS_URL": "redis://file:6379"}');
    expect(loadKeytrusteeConf(confdir, {}).REDIS_URL).toBe('redis://file:6379');
    expect(loadKeytrusteeConf(confdir, { [ENV.REDIS_URL]: '' }).REDIS_URL).toBe('redis://file:6379');
    expect(loadKeytrusteeConf(confdir, { [ENV.REDIS_URL]: 'redis://env:6380' }).REDIS_URL).toBe(
      'redis://env:6380',
    );
    expect(ENV.REDIS_URL).toBe('TRUSTEE_REDIS_URL');
  });

  it('does not repeat a password-bearing value in a refusal of it', () => {
    const secret = 'redis-pw-8c1d77';
    const err = loadError(JSON.stringify({ HOST: 'kt01', PEERS: [`not a url ${secret}`] }));
    expect(err.message).toMatch(/PEERS\.0: /);
    expect(err.message).not.toContain(secret);
    const script = loadError(JSON.stringify({ HOST: 'kt01', SSL_PRIVATE_KEY_PASSWORD_SCRIPT: 7 }));
    expect(script.message).toMatch(/SSL_PRIVATE_KEY_PASSWORD_SCRIPT: /);
  });
});

describe('keytrusteeConfSchema', () => {
  it('reports the first issue only through loadKeytrusteeConf, but the schema lists them all', () => {
    const parsed = keytrusteeConfSchema.safeParse({ HOST: '', PORT: -1, DB_PORT: 0 });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => i.path.join('.')).sort()).toEqual(['DB_PORT', 'HOST', 'PORT']);
  });
});

describe('resolveConfPath', () => {
  it('resolves relative paths in the confdir and keeps absolute ones', () => {
    expect(resolveConfPath('/etc/kt', '.ssl/cert.pem')).toBe('/etc/kt/.ssl/cert.pem');
    expect(resolveConfPath('/etc/kt', '/srv/tls/cert.pem')).toBe('/srv/tls/cert.pem');
  });
});
