import { registerTestClient, type TestClient } from '../support/clients';
import type { RawResponse } from '../support/https-request';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, call, expectError, putDeposit, type Creds } from '../support/api';

let node: SingleNode;
let alice: TestClient;
let bob: TestClient;

beforeAll(async () => {
  node = await startSingleNode();
  const code = await addOrgCli(node, 'acme');
  [alice, bob] = await Promise.all([
    registerTestClient(node.url, 'acme', code),
    registerTestClient(node.url, 'acme', code),
  ]);
});

afterAll(async () => {
  await node?.stop();
});

function get(who: Creds, name: string, query = ''): Promise<RawResponse> {
  return call(node, who, 'GET', `/v1/deposits/${name}${query}`);
}

function del(who: Creds, name: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return call(node, who, 'DELETE', `/v1/deposits/${name}`, undefined, headers);
}

function decoded(res: RawResponse): string {
  expect(res.status).toBe(200);
  return Buffer.from(res.json.value as string, 'base64').toString('utf8');
}

async function listAll(who: Creds, query: string): Promise<{ pages: { name: string; version: number }[][] }> {
  const pages: { name: string; version: number }[][] = [];
  let cursor: string | null = null;
  do {
    const res = await call(
      node,
      who,
      'GET',
      `/v1/deposits?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    expect(res.status).toBe(200);
    pages.push(
      (res.json.items as { name: string; version: number }[]).map(({ name, version }) => ({ name, version })),
    );
    cursor = res.json.nextCursor as string | null;
    expect(pages.length).toBeLessThan(20);
  } while (cursor);
  return { pages };
}

describe('deposit lifecycle', () => {
  it('stores versions, reads latest and older versions, tombstones on delete and continues numbering after it', async () => {
    const created = await putDeposit(node, alice, 'life', 'first', { metadata: { purpose: 'test' } });
    expect(created.status).toBe(201);
    expect(created.json).toEqual({ name: 'life', version: 1 });

    const read = await get(alice, 'life');
    expect(decoded(read)).toBe('first');
    expect(read.json).toMatchObject({ name: 'life', version: 1, metadata: { purpose: 'test' } });
    expect(Date.parse(read.json.createdAt)).toBeGreaterThan(Date.now() - 60_000);

    expect((await putDeposit(node, alice, 'life', 'second')).json).toEqual({ name: 'life', version: 2 });
    const latest = await get(alice, 'life');
    expect(decoded(latest)).toBe('second');
    expect(latest.json.version).toBe(2);
    expect(latest.json.metadata).toBeNull();
    expect(decoded(await get(alice, 'life', '?version=1'))).toBe('first');
    expectError(await get(alice, 'life', '?version=3'), 404, 'NOT_FOUND');

    const deleted = await del(alice, 'life');
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expectError(await get(alice, 'life'), 404, 'NOT_FOUND');
    // Server behaviour: the tombstone is version 3; versions before it stay readable by number.
    expect(decoded(await get(alice, 'life', '?version=1'))).toBe('first');
    expect(decoded(await get(alice, 'life', '?version=2'))).toBe('second');
    expectError(await get(alice, 'life', '?version=3'), 404, 'NOT_FOUND');
    expectError(await del(alice, 'life'), 404, 'NOT_FOUND');

    expect((await putDeposit(node, alice, 'life', 'reborn')).json).toEqual({ name: 'life', version: 4 });
    expect(decoded(await get(alice, 'life'))).toBe('reborn');
  });

  it('stores and returns arbitrary binary values and an empty value byte-for-byte', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect((await putDeposit(node, alice, 'binary', bytes)).status).toBe(201);
    expect(Buffer.from((await get(alice, 'binary')).json.value, 'base64').equals(bytes)).toBe(true);
    expect((await putDeposit(node, alice, 'empty', '')).status).toBe(201);
    expect(decoded(await get(alice, 'empty'))).toBe('');
  });

  it('accepts a value of exactly the size limit', async () => {
    const max = node.server.conf.MAX_VALUE_BYTES;
    expect((await putDeposit(node, alice, 'biggest', Buffer.alloc(max, 7))).status).toBe(201);
    expect(Buffer.from((await get(alice, 'biggest')).json.value, 'base64').length).toBe(max);
  });

  it('lists latest versions only, by prefix, hides deleted names and paginates with a cursor', async () => {
    const names = ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'];
    for (const n of names) expect((await putDeposit(node, alice, n, `v1-${n}`)).status).toBe(201);
    expect((await putDeposit(node, alice, 'page-b', 'v2')).status).toBe(201);
    expect((await del(alice, 'page-d')).status).toBe(204);
    expect((await putDeposit(node, alice, 'other-x', 'not in prefix')).status).toBe(201);

    const { pages } = await listAll(alice, 'prefix=page-&limit=2');
    expect(pages).toEqual([
      [
        { name: 'page-a', version: 1 },
        { name: 'page-b', version: 2 },
      ],
      [
        { name: 'page-c', version: 1 },
        { name: 'page-e', version: 1 },
      ],
    ]);
    const one = await listAll(alice, 'prefix=page-&limit=1');
    expect(one.pages.flat().map((i) => i.name)).toEqual(['page-a', 'page-b', 'page-c', 'page-e']);
    const all = await call(node, alice, 'GET', '/v1/deposits');
    expect(all.json.items.map((i: { name: string }) => i.name)).toEqual(
      expect.arrayContaining(['other-x', 'page-a']),
    );
    expect(all.json.items.map((i: { name: string }) => i.name)).not.toContain('page-d');
    expect(all.json.nextCursor).toBeNull();
    expect((await call(node, alice, 'GET', '/v1/deposits?prefix=nothing-here')).json).toEqual({
      items: [],
      nextCursor: null,
    });
  });
});

describe('idempotent writes and If-Match', () => {
  it('returns the first result for a PUT retried with the same Idempotency-Key, marked Idempotent-Replayed', async () => {
    const headers = { 'Idempotency-Key': 'put-once-1' };
    const first = await putDeposit(node, alice, 'idem', 'payload', { headers });
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const retry = await putDeposit(node, alice, 'idem', 'payload', { headers });
    expect(retry.status).toBe(201);
    expect(retry.json).toEqual(first.json);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    // Only one version was written.
    expect((await get(alice, 'idem')).json.version).toBe(1);
    expectError(await get(alice, 'idem', '?version=2'), 404, 'NOT_FOUND');
  });

  it('refuses the same Idempotency-Key with a different body or name with 400 INVALID_REQUEST', async () => {
    const headers = { 'Idempotency-Key': 'put-once-2' };
    expect((await putDeposit(node, alice, 'idem2', 'original', { headers })).status).toBe(201);
    expectError(await putDeposit(node, alice, 'idem2', 'changed', { headers }), 400, 'INVALID_REQUEST');
    expectError(
      await putDeposit(node, alice, 'idem2-other', 'original', { headers }),
      400,
      'INVALID_REQUEST',
    );
    expect(decoded(await get(alice, 'idem2'))).toBe('original');
    expectError(await get(alice, 'idem2-other'), 404, 'NOT_FOUND');
  });

  it('scopes Idempotency-Keys per client: another client may use the same key for its own write', async () => {
    const headers = { 'Idempotency-Key': 'shared-key' };
    expect((await putDeposit(node, alice, 'idem3', 'alice', { headers })).json.version).toBe(1);
    const b = await putDeposit(node, bob, 'idem3', 'bob', { headers });
    expect(b.status).toBe(201);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    expect(decoded(await get(bob, 'idem3'))).toBe('bob');
  });

  it('replays an idempotent DELETE instead of answering 404 the second time', async () => {
    expect((await putDeposit(node, alice, 'idem-del', 'x')).status).toBe(201);
    const headers = { 'Idempotency-Key': 'delete-once' };
    expect((await del(alice, 'idem-del', headers)).status).toBe(204);
    expect((await del(alice, 'idem-del', headers)).status).toBe(204);
    expectError(await del(alice, 'idem-del'), 404, 'NOT_FOUND');
  });

  it('answers If-Match with the wrong version 409 VERSION_CONFLICT and accepts the right one', async () => {
    expect((await putDeposit(node, alice, 'cas', 'v1')).status).toBe(201);
    const conflict = await putDeposit(node, alice, 'cas', 'stale', { headers: { 'If-Match': '7' } });
    expectError(conflict, 409, 'VERSION_CONFLICT');
    expect(decoded(await get(alice, 'cas'))).toBe('v1');
    const ok = await putDeposit(node, alice, 'cas', 'v2', { headers: { 'If-Match': '1' } });
    expect(ok.status).toBe(201);
    expect(ok.json.version).toBe(2);
    expect(
      (await putDeposit(node, alice, 'cas', 'v3', { headers: { 'If-Match': '"2"' } })).json.version,
    ).toBe(3);
    expectError(await del(alice, 'cas', { 'If-Match': '2' }), 409, 'VERSION_CONFLICT');
    expect((await del(alice, 'cas', { 'If-Match': '3' })).status).toBe(204);
  });

  it('treats If-Match: 0 as "must not exist yet": it creates a new name and conflicts on an existing one', async () => {
    const headers = { 'If-Match': '0' };
    expect((await putDeposit(node, alice, 'fresh', 'mine', { headers })).json).toEqual({
      name: 'fresh',
      version: 1,
    });
    expectError(await putDeposit(node, alice, 'fresh', 'again', { headers }), 409, 'VERSION_CONFLICT');
    expect(decoded(await get(alice, 'fresh'))).toBe('mine');
  });
});

describe('cross-client isolation', () => {
  it("answers another client's deposit with the same 404 as a name that never existed", async () => {
    const before = await get(bob, 'alices-secret');
    expect((await putDeposit(node, alice, 'alices-secret', 'for alice only')).status).toBe(201);
    const after = await get(bob, 'alices-secret');
    expectError(after, 404, 'NOT_FOUND');
    // Identical but for the per-request id every error body echoes.
    const withoutId = (j: { error: Record<string, unknown> }) => ({ ...j.error, requestId: undefined });
    expect(withoutId(after.json)).toEqual(withoutId(before.json));
    expect(after.text).not.toContain('for alice only');
    expectError(await get(bob, 'alices-secret', '?version=1'), 404, 'NOT_FOUND');
  });

  it("keeps another client's deposits out of its list and lets it delete nothing of them", async () => {
    expect((await putDeposit(node, alice, 'iso-list', 'a')).status).toBe(201);
    const list = await call(node, bob, 'GET', '/v1/deposits?prefix=iso-');
    expect(list.json).toEqual({ items: [], nextCursor: null });
    expectError(await del(bob, 'iso-list'), 404, 'NOT_FOUND');
    expectError(
      await putDeposit(node, bob, 'iso-list', 'b', { headers: { 'If-Match': '1' } }),
      409,
      'VERSION_CONFLICT',
    );
    expect(decoded(await get(alice, 'iso-list'))).toBe('a');
  });

  it('lets two clients keep independent deposits of the same name', async () => {
    expect((await putDeposit(node, alice, 'same-name', 'alice-1')).json.version).toBe(1);
    expect((await putDeposit(node, alice, 'same-name', 'alice-2')).json.version).toBe(2);
    expect((await putDeposit(node, bob, 'same-name', 'bob-1')).json.version).toBe(1);
    expect(decoded(await get(alice, 'same-name'))).toBe('alice-2');
    expect(decoded(await get(bob, 'same-name'))).toBe('bob-1');
    expect((await del(bob, 'same-name')).status).toBe(204);
    expect(decoded(await get(alice, 'same-name'))).toBe('alice-2');
  });
});
