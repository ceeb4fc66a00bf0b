/**
 * The contact key page (`/?q=TOKEN`, issue 15) on a real pair, in real headless Chromium: the
 * passive reads the link from its own database; a form posted to the passive is answered 307 to
 * the active, which the browser re-posts and which stores the key on both nodes (runWrite).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { useTestCluster } from '../packages/server/test/support/cluster';
import { isWritable } from '../packages/server/test/support/deposit-requests';
import { httpsRequest } from '../packages/server/test/support/https-request';
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
  type Keyring,
} from '../packages/server/test/support/key-page';
import { waitFor } from '../packages/server/test/support/processes';
import { withSuperuser } from '../packages/server/test/support/psql';

describe('the contact key page on a pair', () => {
  const fixture = useTestCluster();
  let browser: Browser;
  let keyring: Keyring;

  beforeAll(async () => {
    keyring = createKeyring();
    browser = await launchChromium();
    await waitFor('the pair is writable', () => isWritable(fixture.cluster.a.url), 30_000);
  });

  afterAll(async () => {
    await browser?.close();
    keyring?.close();
  });

  const a = () => fixture.cluster.a;
  const b = () => fixture.cluster.b;
  const org = () => fixture.cluster.org;
  /** Made on the active (remote_apply): the passive has it when this returns. */
  const newToken = (contact: string) => withSuperuser(a(), (c) => createContactToken(c, org(), contact));
  const storedOn = (node: 'a' | 'b', contact: string) =>
    withSuperuser(fixture.cluster.node(node), (c) => selectStoredKey(c, org(), contact));

  it('shows the form on the passive, read from its own database, allowing the form on to the active', async () => {
    const contact = 'page@pair.example.com';
    const token = await newToken(contact);
    await withPage(browser, async (page) => {
      const response = await page.goto(`${b().url}/?q=${token}`);
      expect(response?.status()).toBe(200);
      expect(response!.url().startsWith(b().url)).toBe(true);
      expectPageHeaders(response!.headers());
      // form-action names the peer: Chromium applies it to the 307 that sends the form on.
      expect(response!.headers()['content-security-policy']).toContain(
        `form-action 'self' ${new URL(a().url).origin};`,
      );
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toContain(contact);
    });
  });

  it('stores a key posted on the passive: 307 to the active, stored on both nodes, confirmed with the fingerprint', async () => {
    const contact = 'alice@pair.example.com';
    const fp = keyring.generate(`Alice <${contact}>`);
    const token = await newToken(contact);
    await withPage(browser, async (page) => {
      await page.goto(`${b().url}/?q=${token}`);
      const answers = await submitKey(page, keyring.exportPublic(fp));
      expect(answers.map((r) => r.status())).toEqual([307, 200]);
      expect(answers[0].url().startsWith(b().url)).toBe(true);
      expectPageHeaders(answers[0].headers());
      expect(answers[0].headers().location).toBe(`${a().url}/?q=${token}&via=peer`);
      expect(answers[1].url().startsWith(a().url)).toBe(true);
      expect(await page.locator('#fingerprint').textContent()).toBe(fp.replace(/(.{4})(?!$)/g, '$1 '));
      const shot = artifactPath('key-page-cluster-stored.png');
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`key page (pair) confirmation screenshot: ${shot}`);
    });
    // Committed on both (remote_apply): the passive has it as soon as the active answered.
    expect((await storedOn('a', contact))?.fingerprint).toBe(fp);
    expect((await storedOn('b', contact))?.fingerprint).toBe(fp);
    // The link is used, as seen from either node.
    for (const url of [a().url, b().url]) {
      expect((await httpsRequest(url, { path: `/?q=${token}` })).status).toBe(410);
    }
    // The link (a capability) is in no log line of either node.
    for (const node of [a(), b()]) {
      expect(readFileSync(join(node.dir, 'keytrusteed.log'), 'utf8')).not.toContain(token);
    }
  });

  it('refuses a private key on the passive itself: never sent on to the active, stored or logged on either node', async () => {
    const contact = 'bob@pair.example.com';
    const fp = keyring.generate(`Bob <${contact}>`);
    const secret = keyring.exportSecret(fp);
    const markers = secretMarkers(secret, keyring.exportPublic(fp));
    expect(markers.length).toBeGreaterThan(10);
    const token = await newToken(contact);
    await withPage(browser, async (page) => {
      await page.goto(`${b().url}/?q=${token}`);
      const answers = await submitKey(page, secret);
      expect(answers.map((r) => r.status())).toEqual([400]);
      expect(answers[0].url().startsWith(b().url)).toBe(true);
      expect(await page.getByRole('alert').textContent()).toContain('This is a PRIVATE key: never share it');
    });
    for (const node of ['a', 'b'] as const) {
      expect(await storedOn(node, contact)).toBeUndefined();
      const spec = fixture.cluster.node(node);
      const log = readFileSync(join(spec.dir, 'keytrusteed.log'), 'utf8');
      const dump = dumpDatabase(spec);
      for (const m of markers) {
        expect(log).not.toContain(m);
        expect(dump).not.toContain(m);
      }
    }
    expect(readFileSync(join(b().dir, 'keytrusteed.log'), 'utf8')).toContain('contact key refused');
  });

  // Last: it stops the active's server.
  it('with the active’s server down, a form posted on the passive gets a clear 503 page, not a redirect to a dead node', async () => {
    const contact = 'carol@pair.example.com';
    const fp = keyring.generate(`Carol <${contact}>`);
    const token = await newToken(contact);
    await fixture.cluster.killServer('a');
    // Until the passive's next probe of its peer (every second) it still redirects.
    const res = await waitFor(
      'the passive sees its peer down',
      async () => {
        const r = await postKeyForm(b().url, token, keyring.exportPublic(fp));
        return r.status === 503 ? r : undefined;
      },
      15_000,
    );
    expectPageHeaders(res.headers);
    expect(res.headers.location).toBeUndefined();
    expect(res.text).toContain('Nothing was stored');
    expect(await storedOn('b', contact)).toBeUndefined();
    // The link still opens on the passive (a read).
    expect((await httpsRequest(b().url, { path: `/?q=${token}` })).status).toBe(200);
  });
});
