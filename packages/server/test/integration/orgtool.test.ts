import { listOrgs, openNodeServices, type NodeServices } from '@trustee/server';
import type { CliResult } from '../support/cli';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { orgtool } from '../support/api';

let node: SingleNode;
let services: NodeServices;

const BAD_NAMES: [string, string][] = [
  ['a space', 'bad org'],
  ['a "!"', 'a!b'],
  ['a non-ASCII letter', 'sociét'],
  ['64 characters', 'o'.repeat(64)],
];
const BAD_CONTACTS: [string, string][] = [
  ['a space after the comma', 'a@x.com, b@y.com'],
  ['a missing @', 'a@x.com,bob'],
];
const SUBCOMMANDS = ['add', 'list', 'set-auth', 'enable-client', 'disable-client'];
const BAD_FINGERPRINTS = ['not-a-fingerprint', '4096R/abc', `4096R/${'a'.repeat(40)}`];

/** The refusal runs are independent CLI processes: start them all at once, assert each on its own. */
const runs = new Map<string, CliResult>();

async function orgNames(): Promise<string[]> {
  return Object.keys(await listOrgs(services));
}

beforeAll(async () => {
  node = await startSingleNode();
  services = await openNodeServices(node.confdir);
  const r = await orgtool(node, 'add', '-n', 'acme', '-c', 'a@x.com,b@x.com');
  expect(r.code).toBe(0);
  const jobs: [string, string[]][] = [
    ...BAD_NAMES.map(([, name]): [string, string[]] => [
      `name:${name}`,
      ['add', '-n', name, '-c', 'a@x.com'],
    ]),
    ...BAD_CONTACTS.map(([, c]): [string, string[]] => [
      `contacts:${c}`,
      ['add', '-n', 'contactless', '-c', c],
    ]),
    ...['', ...SUBCOMMANDS].map((sub): [string, string[]] => [
      `help:${sub}`,
      [...(sub ? [sub] : []), '--help'],
    ]),
    ...BAD_FINGERPRINTS.map((fp): [string, string[]] => [
      `fp:enable-client:${fp}`,
      ['enable-client', '--fingerprint', fp],
    ]),
    ['fp:disable-client', ['disable-client', '--fingerprint', BAD_FINGERPRINTS[1]]],
  ];
  const results = await Promise.all(jobs.map(([, args]) => orgtool(node, ...args)));
  jobs.forEach(([key], i) => runs.set(key, results[i]));
});

afterAll(async () => {
  await services?.close();
  await node?.stop();
});

describe('keytrustee-orgtool', () => {
  it("prints list as the original product's JSON: an object keyed by org name with exactly its eight fields", async () => {
    const r = await orgtool(node, 'list');
    expect(r.code).toBe(0);
    const orgs = JSON.parse(r.stdout) as Record<string, Record<string, unknown>>;
    expect(Object.keys(orgs)).toEqual(['acme']);
    const acme = orgs.acme;
    expect(Object.keys(acme).sort()).toEqual([
      'auth_secret',
      'contacts',
      'creation',
      'expiration',
      'key_info',
      'name',
      'state',
      'uuid',
    ]);
    expect(acme).toEqual({
      auth_secret: expect.stringMatching(/^[A-Za-z0-9+/]{22}==$/),
      contacts: ['a@x.com', 'b@x.com'],
      creation: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/),
      expiration: '9999-12-31T15:59:59',
      key_info: null,
      name: 'acme',
      state: 0,
      uuid: expect.stringMatching(/^[A-Za-z0-9]{43}$/),
    });
    expect(Math.abs(Date.parse(`${acme.creation as string}Z`) - Date.now())).toBeLessThan(5 * 60_000);
  });

  it('generates a distinct random base64 auth secret for every new org', async () => {
    expect((await orgtool(node, 'add', '-n', 'second_org', '-c', 'ops@second.example')).code).toBe(0);
    const orgs = await listOrgs(services);
    expect(orgs.second_org.auth_secret).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(orgs.second_org.auth_secret).not.toBe(orgs.acme.auth_secret);
    expect(orgs.second_org.uuid).not.toBe(orgs.acme.uuid);
  });

  it('adds only new contacts when add runs again on an existing org, keeping its secret and uuid', async () => {
    const before = (await listOrgs(services)).acme;
    const r = await orgtool(node, 'add', '-n', 'acme', '-c', 'b@x.com,c@x.com');
    expect(r.code).toBe(0);
    const after = (await listOrgs(services)).acme;
    expect(after.contacts).toEqual(['a@x.com', 'b@x.com', 'c@x.com']);
    expect(after.auth_secret).toBe(before.auth_secret);
    expect(after.uuid).toBe(before.uuid);
    expect(after.creation).toBe(before.creation);
  });

  it('stores a contact given twice in one list only once', async () => {
    expect((await orgtool(node, 'add', '-n', 'dupes', '-c', 'x@d.com,x@d.com,y@d.com')).code).toBe(0);
    expect((await listOrgs(services)).dupes.contacts).toEqual(['x@d.com', 'y@d.com']);
  });

  it.each(BAD_NAMES)(
    'refuses an org name with %s (exit 1, a clear message, nothing created)',
    async (_what, name) => {
      const r = runs.get(`name:${name}`)!;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/invalid organization name/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(await orgNames()).not.toContain(name);
    },
  );

  it.each(BAD_CONTACTS)(
    'refuses a contact list with %s (exit 1, a clear message, nothing created)',
    async (_what, contacts) => {
      const r = runs.get(`contacts:${contacts}`)!;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/invalid contact/);
      expect(await orgNames()).not.toContain('contactless');
    },
  );

  it('changes the auth secret with set-auth, including to the blank code', async () => {
    expect((await orgtool(node, 'set-auth', '-n', 'second_org', '-s', 'new-code-123')).code).toBe(0);
    expect((await listOrgs(services)).second_org.auth_secret).toBe('new-code-123');
    expect((await orgtool(node, 'set-auth', '-n', 'second_org', '-s', '')).code).toBe(0);
    expect((await listOrgs(services)).second_org.auth_secret).toBe('');
  });

  it('fails set-auth on an unknown org with exit 1', async () => {
    const r = await orgtool(node, 'set-auth', '-n', 'ghost', '-s', 'x');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ghost/);
  });

  it.each(['', ...SUBCOMMANDS])('prints help and exits 0 for "%s --help"', (sub) => {
    const r = runs.get(`help:${sub}`)!;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage:/);
  });

  it('refuses a malformed fingerprint in enable-client and disable-client with exit 1', () => {
    for (const key of [...BAD_FINGERPRINTS.map((fp) => `fp:enable-client:${fp}`), 'fp:disable-client']) {
      const r = runs.get(key)!;
      expect({ key, code: r.code }).toEqual({ key, code: 1 });
      expect(r.stderr).toMatch(/not a client fingerprint/);
    }
  });

  it('fails enable-client for a well-formed fingerprint no client has, with exit 1', async () => {
    const r = await orgtool(node, 'enable-client', '--fingerprint', `2048R/${'A'.repeat(40)}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no client/);
  });

  it('exits non-zero with usage when a required flag is missing', async () => {
    const r = await orgtool(node, 'add', '-n', 'nocontacts');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/contacts/);
    expect(await orgNames()).not.toContain('nocontacts');
  });
});
