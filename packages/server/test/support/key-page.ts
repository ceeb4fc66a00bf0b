import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Client } from 'pg';
import { chromium, type Browser, type Page, type Response } from 'playwright-core';
import { DB_SUPERUSER, findPgBinDir, socketDirFor } from '@trustee/replicator';
import { insertContactToken } from '../../src/orgs/contact-tokens';
import { httpsRequest, type RawResponse } from './https-request';
import { makeTempDir, removeDir } from './temp-dir';

/**
 * Shared by the key page tests (issue 15): real headless Chromium, real gpg keys, and contact
 * tokens made directly in the database (the contact mail that makes them is another module).
 */

export const CHROMIUM = '/usr/bin/chromium';

/** Where screenshots are kept after the run (repo root, git-ignored). */
export const ARTIFACTS_DIR = resolve(__dirname, '../../../../test-artifacts');

/**
 * Launches the system's Chromium headless. Missing Chromium is a failure, never a skip:
 * `npm test` (scripts/prepare.js --test) and .ci/run install it.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the key page tests drive a real Chromium. Run \`npm test\` (it installs it as root on Debian) or \`apt-get install chromium\`.`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Runs `fn` with a page of a fresh browser context (no shared cookies or cache; the nodes' TLS
 * certificates are self-signed), closed after it; `consoleErrors` collects the page's console
 * errors (a CSP refusal is one).
 */
export async function withPage(
  browser: Browser,
  fn: (page: Page, consoleErrors: string[]) => Promise<void>,
): Promise<void> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    await fn(page, consoleErrors);
  } finally {
    await context.close();
  }
}

/** The label of the page's textarea (the tests find it by its label, as a screen reader does). */
export const KEY_LABEL = 'Your ASCII-armored GPG public key';

/**
 * Pastes `text` into the form and submits it from the keyboard (Enter on the focused button);
 * returns the answers to the POST in order (a passive's 307, then the active's page).
 */
export async function submitKey(page: Page, text: string): Promise<Response[]> {
  const answers: Response[] = [];
  page.on('response', (r) => {
    if (r.request().method() === 'POST') answers.push(r);
  });
  await page.getByLabel(KEY_LABEL).fill(text);
  await page.getByRole('button', { name: 'Upload public key' }).focus();
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  return answers;
}

/** A screenshot path under ARTIFACTS_DIR (the directory is made). */
export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return join(ARTIFACTS_DIR, name);
}

/** A throwaway GnuPG home; `gpg` runs in it without a passphrase. */
export interface Keyring {
  home: string;
  gpg(args: string[], input?: string): string;
  /** Makes a key; `expires` as gpg's quick-gen-key takes it; `at` fakes gpg's clock (an old key). */
  generate(uid: string, opts?: { algo?: string; usage?: string; expires?: string; at?: string }): string;
  exportPublic(fingerprint: string): string;
  exportSecret(fingerprint: string): string;
  /** Revokes a key with the revocation certificate gpg made with it. */
  revoke(fingerprint: string): void;
  /** Fingerprints (upper-case hex) of the keys `gpg --show-keys` finds in armored text. */
  showKeys(armored: string): string[];
  close(): void;
}

export function createKeyring(): Keyring {
  const home = makeTempDir('trustee-keypage-gnupg-');
  const run = (args: string[], input?: string): string => {
    const r = spawnSync(
      'gpg',
      ['--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args],
      {
        env: { ...process.env, GNUPGHOME: home },
        encoding: 'utf8',
        input,
        timeout: 60_000,
      },
    );
    if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };
  const fingerprints = (colons: string) =>
    colons
      .split('\n')
      .filter((l) => l.startsWith('fpr:'))
      .map((l) => l.split(':')[9]);
  return {
    home,
    gpg: run,
    generate(uid, opts = {}) {
      const faked = opts.at ? ['--faked-system-time', opts.at] : [];
      run([
        ...faked,
        '--quick-gen-key',
        uid,
        opts.algo ?? 'default',
        opts.usage ?? 'default',
        opts.expires ?? 'never',
      ]);
      // The primary key's fingerprint is the first fpr line of the listing.
      return fingerprints(run(['--with-colons', '--list-keys', uid]))[0];
    },
    exportPublic: (fp) => run(['--export', '--armor', fp]),
    exportSecret: (fp) => run(['--export-secret-keys', '--armor', fp]),
    revoke(fp) {
      // gpg prefixes the stored certificate's armor with ':' so it cannot be imported by accident.
      const cert = readFileSync(join(home, 'openpgp-revocs.d', `${fp}.rev`), 'utf8').replace(
        /^:-----/m,
        '-----',
      );
      run(['--import'], cert);
    },
    showKeys(armored) {
      // Primary keys only: `pub` records, each followed by its fpr line.
      const lines = run(['--with-colons', '--show-keys'], armored).split('\n');
      return lines.flatMap((l, i) => (l.startsWith('pub:') ? [lines[i + 1].split(':')[9]] : []));
    },
    close() {
      // Stops only this home's gpg-agent (started by the calls above).
      spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: home }, timeout: 10_000 });
      removeDir(home);
    },
  };
}

/**
 * A contact token for `contact` of `org`, as the contact mail would make it; `ttlMs` < 0 makes
 * an expired one. remote_apply: on a pair, the passive can read it as soon as this returns.
 */
export async function createContactToken(
  c: Client,
  org: string,
  contact: string,
  ttlMs?: number,
): Promise<string> {
  const { rows } = await c.query<{ id: string }>('select id from orgs where name = $1', [org]);
  if (!rows[0]) throw new Error(`no org ${org}`);
  await c.query('set synchronous_commit = remote_apply');
  return (await insertContactToken(c, rows[0].id, contact, ttlMs)).token;
}

/** The key page's form as a browser sends it, without a browser. */
export function postKeyForm(
  url: string,
  token: string,
  key: string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return httpsRequest(url, {
    method: 'POST',
    path: `/?q=${token}`,
    body: new URLSearchParams({ key }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  });
}

/** The stored key of a contact, if any. */
export async function selectStoredKey(
  c: Client,
  org: string,
  contact: string,
): Promise<{ fingerprint: string; armored_public_key: string } | undefined> {
  const { rows } = await c.query<{ fingerprint: string; armored_public_key: string }>(
    `select k.fingerprint, k.armored_public_key from contact_keys k join orgs o on o.id = k.org_id
      where o.name = $1 and k.contact = $2`,
    [org, contact],
  );
  return rows[0];
}

/** Everything in a node's keytrustee database, as `pg_dump` prints it (to look for what must not be there). */
export function dumpDatabase(node: { dbDir: string; dbPort: number }): string {
  return execFileSync(
    join(findPgBinDir(), 'pg_dump'),
    ['-h', socketDirFor(node.dbDir), '-p', String(node.dbPort), '-U', DB_SUPERUSER, '-d', 'keytrustee'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 },
  );
}

/**
 * Pieces of a private key that its public key does not contain: runs of 16+ letters and digits
 * (they survive form and JSON encoding unchanged) from the armored secret-key lines.
 */
export function secretMarkers(secretArmor: string, publicArmor: string): string[] {
  const body = secretArmor.split('\n').filter((l) => /^[A-Za-z0-9+/]{40,}$/.test(l));
  const runs = body.flatMap((l) => l.match(/[A-Za-z0-9]{16,}/g) ?? []);
  return runs.filter((r) => !publicArmor.includes(r));
}

/** The headers every key page answer carries (CSP, no referrer, no caching, no framing). */
export function expectPageHeaders(headers: Record<string, string | string[] | undefined>): void {
  const csp = String(headers['content-security-policy']);
  expect(csp).toMatch(/^default-src 'none'; /);
  expect(csp).toMatch(/; style-src 'sha256-[A-Za-z0-9+/]+=*';/);
  expect(csp).toMatch(/; form-action 'self'/);
  expect(csp).toContain("; frame-ancestors 'none'");
  expect(csp).toContain("; base-uri 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(headers).toMatchObject({
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
  });
  expect(String(headers['content-type'])).toBe('text/html; charset=utf-8');
}
