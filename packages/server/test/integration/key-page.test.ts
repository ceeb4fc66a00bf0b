/**
 * The contact key page (`/?q=TOKEN`, issue 15) on one real node, driven by real headless
 * Chromium, with keys made by the real gpg. Tokens are made directly in the database (the
 * contact mail that makes them in production is another module).
 */
import type { Browser } from 'playwright-core';
import { createLogger } from '@trustee/server';
import { KEY_PAGE_BODY_LIMIT_BYTES } from '../../src/routes/key-page';
import { CONTACT_TOKEN_FAILURES_PER_15_MIN } from '../../src/rate-limit';
import { addOrgCli } from '../support/api';
import { httpsRequest, type RawResponse } from '../support/https-request';
import {
  artifactPath,
  createContactToken,
  createKeyring,
  dumpDatabase,
  expectPageHeaders,
  launchChromium,
  postKeyForm,
  secretMarkers,
  selectStoredKey,
  submitKey,
  withPage,
  KEY_LABEL,
  type Keyring,
} from '../support/key-page';
import { withSuperuser } from '../support/psql';
import { startSingleNode, type SingleNode } from '../support/single-node';

const ORG = 'acme';
const ALICE = 'alice@acme.example.com';
const BOB = 'bob@acme.example.com';
const CAROL = 'carol@acme.example.com';
const DAVE = 'dave@acme.example.com';

let node: SingleNode;
let browser: Browser;
let keyring: Keyring;
let aliceFp: string;
let alicePublic: string;
const logLines: string[] = [];

beforeAll(async () => {
  // Every line the server logs, at debug, kept to look for what must never be logged.
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void logLines.push(s) } });
  node = await startSingleNode({ log });
  await addOrgCli(node, ORG, [ALICE, BOB, CAROL, DAVE].join(','));
  keyring = createKeyring();
  aliceFp = keyring.generate(`Alice <${ALICE}>`);
  alicePublic = keyring.exportPublic(aliceFp);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  keyring?.close();
  await node?.stop();
});

const newToken = (contact: string, ttlMs?: number) =>
  withSuperuser(node, (c) => createContactToken(c, ORG, contact, ttlMs));
const storedKey = (contact: string) => withSuperuser(node, (c) => selectStoredKey(c, ORG, contact));
const link = (token: string) => `${node.url}/?q=${token}`;

const postForm = (token: string, key: string, headers?: Record<string, string>) =>
  postKeyForm(node.url, token, key, headers);

describe('the contact key page in a browser', () => {
  let aliceToken: string;

  it('shows an accessible form naming the org and the contact, styled under a CSP that allows nothing else', async () => {
    aliceToken = await newToken(ALICE);
    await withPage(browser, async (page, consoleErrors) => {
      const response = await page.goto(link(aliceToken));
      expect(response?.status()).toBe(200);
      expectPageHeaders(response!.headers());
      expect(await page.getAttribute('html', 'lang')).toBe('en');
      expect(await page.locator('main').count()).toBe(1);
      const heading = await page.getByRole('heading', { level: 1 }).textContent();
      expect(heading).toContain(ALICE);
      expect(heading).toContain(ORG);
      // The textarea is found by its label; the (empty) error region is an alert.
      expect(await page.getByLabel(KEY_LABEL).evaluate((e) => e.tagName)).toBe('TEXTAREA');
      expect(await page.locator('[role="alert"]').count()).toBe(1);
      expect(await page.getByText('-----BEGIN PGP PUBLIC KEY BLOCK-----').count()).toBe(1);
      // Keyboard only: Tab reaches the textarea, then the submit button.
      const focused = () =>
        page.evaluate<string>('document.activeElement.id || document.activeElement.tagName');
      let steps = 0;
      while ((await focused()) !== 'key' && steps++ < 10) await page.keyboard.press('Tab');
      expect(await focused()).toBe('key');
      await page.keyboard.press('Tab');
      expect(await focused()).toBe('BUTTON');
      // The inline stylesheet applied (its CSP hash matches), and nothing was refused.
      expect(await page.evaluate<string>('getComputedStyle(document.body).maxWidth')).toBe('672px');
      expect(consoleErrors).toEqual([]);
      await page.screenshot({ path: artifactPath('key-page-form.png'), fullPage: true });
    });
  });

  it('stores a public key made by gpg and confirms it with its fingerprint', async () => {
    await withPage(browser, async (page, consoleErrors) => {
      await page.goto(link(aliceToken));
      const [response] = await submitKey(page, alicePublic);
      expect(response.status()).toBe(200);
      expectPageHeaders(response.headers());
      const grouped = aliceFp.replace(/(.{4})(?!$)/g, '$1 ');
      expect(await page.locator('#fingerprint').textContent()).toBe(grouped);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toContain(ALICE);
      const shot = artifactPath('key-page-stored.png');
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`key page confirmation screenshot: ${shot}`);
      expect(consoleErrors).toEqual([]);
    });
    const row = await storedKey(ALICE);
    expect(row?.fingerprint).toBe(aliceFp);
    // What is stored is a public key gpg reads back as the same key.
    expect(row!.armored_public_key).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    expect(keyring.showKeys(row!.armored_public_key)).toEqual([aliceFp]);
  });

  it('answers a link used once already with a clear 410 page, and a second post stores nothing', async () => {
    await withPage(browser, async (page) => {
      const response = await page.goto(link(aliceToken));
      expect(response?.status()).toBe(410);
      expectPageHeaders(response!.headers());
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('This link was already used');
      expect(await page.getByRole('alert').textContent()).toContain('ask your Key Trustee administrator');
      // Nothing about the link's org or contact.
      const html = await page.content();
      expect(html).not.toContain(ORG);
      expect(html).not.toContain('alice');
    });
    const other = keyring.generate(`Alice Two <alice2@acme.example.com>`);
    const res = await postForm(aliceToken, keyring.exportPublic(other));
    expect(res.status).toBe(410);
    expect((await storedKey(ALICE))?.fingerprint).toBe(aliceFp);
    // The link (a capability) never reaches a log line, though every visit is logged.
    expect(logLines.join('')).toContain('contact key stored');
    expect(logLines.join('')).not.toContain(aliceToken);
  });

  it('answers an expired link with a clear 410 page that names nothing else', async () => {
    const expired = await newToken(CAROL, -60_000);
    await withPage(browser, async (page) => {
      const response = await page.goto(link(expired));
      expect(response?.status()).toBe(410);
      expectPageHeaders(response!.headers());
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('This link has expired');
      expect(await page.content()).not.toContain('carol');
    });
    expect((await postForm(expired, alicePublic)).status).toBe(410);
    expect(await storedKey(CAROL)).toBeUndefined();
  });

  it('refuses a private key pasted by mistake: says so, stores nothing, logs nothing of it', async () => {
    const bobFp = keyring.generate(`Bob <${BOB}>`);
    const secret = keyring.exportSecret(bobFp);
    const markers = secretMarkers(secret, keyring.exportPublic(bobFp));
    expect(markers.length).toBeGreaterThan(10);
    const token = await newToken(BOB);
    await withPage(browser, async (page) => {
      await page.goto(link(token));
      const [response] = await submitKey(page, secret);
      expect(response.status()).toBe(400);
      expectPageHeaders(response.headers());
      const alert = await page.getByRole('alert').textContent();
      expect(alert).toContain('This is a PRIVATE key: never share it');
      expect(alert).toContain('Paste your PUBLIC key');
      // The form is offered again, empty: the pasted text is never sent back.
      expect(await page.getByLabel(KEY_LABEL).inputValue()).toBe('');
      expect(await page.getByLabel(KEY_LABEL).getAttribute('aria-invalid')).toBe('true');
      const html = await page.content();
      for (const m of markers) expect(html).not.toContain(m);
      await page.screenshot({ path: artifactPath('key-page-private-key.png'), fullPage: true });
    });
    // The same secret packets under a PUBLIC armor header are refused too.
    const disguised = secret.replace(/PRIVATE KEY BLOCK/g, 'PUBLIC KEY BLOCK');
    const res = await postForm(token, disguised);
    expect(res.status).toBe(400);
    expect(res.text).toContain('This is a PRIVATE key');
    expect(await storedKey(BOB)).toBeUndefined();
    // Not stored anywhere in the database, not in any log line; the link is still usable.
    const dump = dumpDatabase(node);
    const log = logLines.join('');
    expect(log).toContain('contact key refused');
    for (const m of markers) {
      expect(dump).not.toContain(m);
      expect(log).not.toContain(m);
    }
    expect((await httpsRequest(node.url, { path: `/?q=${token}` })).status).toBe(200);
  });
});

describe('the contact key page over plain HTTPS', () => {
  it.each([
    ['text that is no key', () => 'hello', 'This is not an ASCII-armored OpenPGP public key'],
    ['an empty form', () => '', 'This is not an ASCII-armored OpenPGP public key'],
    [
      'two keys at once',
      () => alicePublic + keyring.exportPublic(keyring.generate('Eve <eve@x.example>')),
      'several keys',
    ],
    [
      'an expired key',
      () =>
        keyring.exportPublic(
          keyring.generate('Old <old@x.example>', { at: '20200101T000000', expires: '1d' }),
        ),
      'This key has expired',
    ],
    [
      'a key that cannot encrypt',
      () =>
        keyring.exportPublic(
          keyring.generate('Signer <signer@x.example>', { algo: 'rsa3072', usage: 'sign' }),
        ),
      'no valid encryption key',
    ],
    [
      'a revoked key',
      () => {
        const fp = keyring.generate('Revoked <revoked@x.example>');
        keyring.revoke(fp);
        return keyring.exportPublic(fp);
      },
      'This key has been revoked',
    ],
  ])('refuses %s with a 400 page saying why, and stores nothing', async (what, key, reason) => {
    const contact = `${what.replace(/\W+/g, '-')}@acme.example.com`;
    const token = await newToken(contact);
    const res = await postForm(token, key());
    expect(res.status).toBe(400);
    expectPageHeaders(res.headers);
    expect(res.text).toContain(reason);
    expect(res.text).toMatch(/<div id="key-error" class="alert" role="alert">[^<]+<\/div>/);
    expect(await storedKey(contact)).toBeUndefined();
  });

  it('answers unknown and malformed links with the same 404 page, revealing nothing', async () => {
    const unknown = 'A'.repeat(43);
    const answers = await Promise.all(
      [`/?q=${unknown}`, '/?q=short', '/?q=', `/?q=${unknown}&q=${unknown}`].map((path) =>
        httpsRequest(node.url, { path }),
      ),
    );
    for (const res of answers) {
      expect(res.status).toBe(404);
      expectPageHeaders(res.headers);
      expect(res.text).toContain('This link is not valid');
      expect(res.text).not.toContain(ORG);
    }
    expect((await postForm(unknown, alicePublic)).status).toBe(404);
  });

  it('refuses a form that is not this page’s: wrong type 415, over the limit 413, from another site 400', async () => {
    const token = await newToken(DAVE);
    const json = await httpsRequest(node.url, {
      method: 'POST',
      path: `/?q=${token}`,
      body: JSON.stringify({ key: alicePublic }),
      headers: { 'content-type': 'application/json' },
    });
    expect(json.status).toBe(415);
    expectPageHeaders(json.headers);
    const big = await postForm(token, 'x'.repeat(KEY_PAGE_BODY_LIMIT_BYTES + 1));
    expect(big.status).toBe(413);
    expectPageHeaders(big.headers);
    expect(big.text).toContain('The key is too large');
    const foreign = await postForm(token, alicePublic, { origin: 'https://evil.example' });
    expect(foreign.status).toBe(400);
    expect(foreign.text).toContain('only be sent from the key page itself');
    const put = await httpsRequest(node.url, { method: 'PUT', path: `/?q=${token}` });
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe('GET, POST');
    expect(await storedKey(DAVE)).toBeUndefined();
    // Its own origin (as a browser sends it without no-referrer) is accepted.
    const own = await postForm(token, alicePublic, { origin: node.url });
    expect(own.status).toBe(200);
    expect((await storedKey(DAVE))?.fingerprint).toBe(aliceFp);
  });

  it('leaves GET /?a=fingerprint and the 404 of a bare / as they were', async () => {
    const fp = await httpsRequest(node.url, { path: '/?a=fingerprint' });
    expect(fp.status).toBe(200);
    expect(fp.text).toMatch(/^4096R\/[0-9A-F]{40}$/);
    const bare = await httpsRequest(node.url, { path: '/' });
    expect(bare.status).toBe(404);
    expect(bare.json.error.code).toBe('NOT_FOUND');
  });

  // Last: it locks this address out of the key page for 15 minutes.
  it('rate-limits wrong links per address (429), and then refuses even a good link from it', async () => {
    const good = await newToken(CAROL);
    let res: RawResponse | undefined;
    for (let i = 0; i <= CONTACT_TOKEN_FAILURES_PER_15_MIN; i++) {
      res = await httpsRequest(node.url, { path: `/?q=${String(i).padStart(43, 'B')}` });
      if (res.status === 429) break;
      expect(res.status).toBe(404);
    }
    expect(res?.status).toBe(429);
    expectPageHeaders(res!.headers);
    expect(Number(res!.headers['retry-after'])).toBeGreaterThan(0);
    expect(res!.text).toContain('Too many attempts');
    expect((await httpsRequest(node.url, { path: `/?q=${good}` })).status).toBe(429);
  });
});
