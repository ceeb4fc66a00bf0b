import type { ServerResponse } from 'node:http';
import { TrusteeClient } from './client';
import { isEnvelope } from './envelope';
import { TrusteeError } from './errors';
import type { TrusteeClientOptions } from './types';
import {
  FakeNode,
  answerHealth,
  closedPortUrl,
  sendJson,
  type RecordedRequest,
} from '../test/support/fake-node';
import { useFakeNodes } from '../test/support/fake-nodes-fixture';
import { selfSignedCert } from '../test/support/tls-fixture';

/** Deposits stored by the fake cluster, shared by both fake nodes like the replicated database. */
type Store = Map<
  string,
  { version: number; value: string; idempotencyKeys: Map<string, number>; history?: Map<number, string> }
>;

/** Like the server: If-Match must name the current version (0 = absent), `?version=N` reads history. */
function depositHandler(store: Store, req: RecordedRequest, res: ServerResponse): void {
  const url = new URL(req.url, 'https://x');
  const name = decodeURIComponent(url.pathname.slice('/v1/deposits/'.length));
  if (req.method === 'PUT') {
    const entry = store.get(name) ?? { version: 0, value: '', idempotencyKeys: new Map<string, number>() };
    const key = String(req.headers['idempotency-key']);
    const replay = entry.idempotencyKeys.get(key);
    const ifMatch = req.headers['if-match'];
    if (replay === undefined && ifMatch !== undefined && Number(ifMatch) !== entry.version) {
      sendJson(res, 409, {
        error: { code: 'VERSION_CONFLICT', message: 'mismatch', currentVersion: entry.version },
      });
      return;
    }
    if (replay === undefined) {
      entry.version += 1;
      entry.value = (JSON.parse(req.body) as { value: string }).value;
      entry.idempotencyKeys.set(key, entry.version);
      entry.history ??= new Map();
      entry.history.set(entry.version, entry.value);
      store.set(name, entry);
    }
    sendJson(res, 201, { name, version: replay ?? entry.version });
    return;
  }
  const entry = store.get(name);
  if (entry === undefined) {
    sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'no such deposit' } });
    return;
  }
  const asked = url.searchParams.get('version');
  const version = asked === null ? entry.version : Number(asked);
  const value = asked === null ? entry.value : entry.history?.get(version);
  if (value === undefined) {
    sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'no such version' } });
    return;
  }
  sendJson(res, 200, {
    name,
    version,
    value,
    metadata: null,
    createdAt: new Date(0).toISOString(),
  });
}

describe('TrusteeClient against local https nodes', () => {
  const fx = useFakeNodes();
  const { serverTls, nodes } = fx;

  async function startNode(role: 'active' | 'passive', store: Store): Promise<FakeNode> {
    const node = await FakeNode.start(serverTls);
    node.handler = (req, res) => {
      if (answerHealth(req, res, role)) return;
      if (role === 'passive' && req.method !== 'GET') {
        sendJson(res, 503, { error: { code: 'NOT_ACTIVE', message: 'passive', active: null } });
        return;
      }
      depositHandler(store, req, res);
    };
    nodes.push(node);
    return node;
  }

  /** Fast backoff for these tests; everything else from the fixture's client. */
  const client = (endpoints: string[], extra: Partial<TrusteeClientOptions> = {}): TrusteeClient =>
    fx.client(endpoints, { retry: { baseDelayMs: 5, backoffLimitMs: 20 }, ...extra });

  it('writes to the discovered active, stores only ciphertext and reads back the plaintext', async () => {
    const store: Store = new Map();
    const passive = await startNode('passive', store);
    const active = await startNode('active', store);
    const c = client([passive.url, active.url]);
    const put = await c.put('hdfs-key', 'top secret', { metadata: { owner: 'kms' } });
    expect(put).toMatchObject({ name: 'hdfs-key', version: 1 });
    const putRequest = active.requests.find((r) => r.method === 'PUT');
    expect(putRequest?.headers['idempotency-key']).toBe(put.idempotencyKey);
    const storedBytes = Buffer.from(store.get('hdfs-key')?.value ?? '', 'base64');
    expect(isEnvelope(storedBytes)).toBe(true);
    expect(storedBytes.toString('latin1')).not.toContain('top secret');
    const got = await c.get('hdfs-key');
    expect(got.text()).toBe('top secret');
    expect(got).toMatchObject({ version: 1, encrypted: true, source: 'server' });
  });

  it('follows the active named in NOT_ACTIVE and keeps the same Idempotency-Key', async () => {
    const store: Store = new Map();
    // The target still reports passive in health (its view lags) but accepts writes.
    const target = await FakeNode.start(serverTls);
    nodes.push(target);
    target.handler = (req, res) => answerHealth(req, res, 'passive') || depositHandler(store, req, res);
    const stale = await FakeNode.start(serverTls);
    nodes.push(stale);
    // The first node still claims to be active in health (stale view) but refuses writes.
    stale.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      sendJson(res, 503, { error: { code: 'NOT_ACTIVE', message: 'demoted', active: `${target.url}/` } });
    };
    const changes: Array<string | null> = [];
    const c = client([stale.url, target.url], { hooks: { onActiveChange: (e) => changes.push(e.active) } });
    const put = await c.put('k', 'v', { idempotencyKey: 'fixed-key-1' });
    expect(put.version).toBe(1);
    expect(stale.requests.filter((r) => r.method === 'PUT')[0].headers['idempotency-key']).toBe(
      'fixed-key-1',
    );
    expect(target.requests.filter((r) => r.method === 'PUT')[0].headers['idempotency-key']).toBe(
      'fixed-key-1',
    );
    expect(changes).toEqual([stale.url, target.url]);
  });

  it('fails reads over to the other node when the first refuses connections', async () => {
    const store: Store = new Map();
    const survivor = await startNode('passive', store);
    store.set('k', { version: 3, value: Buffer.from('raw').toString('base64'), idempotencyKeys: new Map() });
    const failovers: string[] = [];
    const c = client([await closedPortUrl(), survivor.url], {
      encryption: 'none',
      hooks: { onFailover: (e) => failovers.push(`${e.error.code} -> ${e.to}`) },
    });
    const got = await c.get('k');
    expect(got.text()).toBe('raw');
    expect(failovers).toEqual([`NETWORK_ERROR -> ${survivor.url}`]);
    // The survivor is now preferred: the next read goes straight there.
    failovers.length = 0;
    await c.get('k', { noCache: true });
    expect(failovers).toEqual([]);
  });

  it('retries WRITE_IN_DOUBT with the same key and the write lands once', async () => {
    const store: Store = new Map();
    const active = await startNode('active', store);
    const inner = active.handler;
    let doubts = 2;
    active.handler = (req, res) => {
      if (req.method === 'PUT' && doubts > 0) {
        doubts -= 1;
        inner(req, { ...res, writeHead: () => res, end: () => res } as unknown as ServerResponse); // commit locally...
        sendJson(res, 503, { error: { code: 'WRITE_IN_DOUBT', message: 'not confirmed by the passive' } }); // ...but doubt
        return;
      }
      inner(req, res);
    };
    const retries: string[] = [];
    const c = client([active.url], { hooks: { onRetry: (e) => retries.push(e.error.code) } });
    const put = await c.put('k', 'v');
    expect(put.version).toBe(1);
    const keys = new Set(
      active.requests.filter((r) => r.method === 'PUT').map((r) => r.headers['idempotency-key']),
    );
    expect(keys).toEqual(new Set([put.idempotencyKey]));
    expect(retries).toEqual(['WRITE_IN_DOUBT', 'WRITE_IN_DOUBT']);
  });

  it('reports WRITE_IN_DOUBT at the deadline even when later attempts only timed out', async () => {
    const active = await FakeNode.start(serverTls);
    nodes.push(active);
    let puts = 0;
    active.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      puts += 1;
      if (puts === 1) {
        sendJson(res, 503, { error: { code: 'WRITE_IN_DOUBT', message: 'not confirmed by the passive' } });
        return;
      }
      // Later attempts hang: the node stopped answering; the earlier doubt must not be lost.
    };
    const c = client([active.url], { deadlineMs: 600, timeoutMs: 150 });
    const error = await c.put('k', 'v').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrusteeError);
    expect((error as TrusteeError).code).toBe('WRITE_IN_DOUBT');
    expect((error as TrusteeError).details.idempotencyKey).toEqual(expect.any(String));
    expect(puts).toBeGreaterThan(1);
  });

  it('retries PASSIVE_UNAVAILABLE until the deadline, then says writes need both nodes', async () => {
    const active = await FakeNode.start(serverTls);
    nodes.push(active);
    active.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      sendJson(res, 503, { error: { code: 'PASSIVE_UNAVAILABLE', message: 'no sync standby' } });
    };
    const c = client([active.url], { deadlineMs: 600 });
    const started = Date.now();
    const error = await c.put('k', 'v').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrusteeError);
    expect(error).toMatchObject({ code: 'PASSIVE_UNAVAILABLE', retryable: true });
    expect((error as Error).message).toContain('writes need both nodes');
    expect((error as TrusteeError).details.idempotencyKey).toEqual(expect.any(String));
    expect(Date.now() - started).toBeLessThan(1500);
    expect(active.requests.filter((r) => r.method === 'PUT').length).toBeGreaterThan(3);
  });

  it('does not retry NOT_FOUND', async () => {
    const node = await startNode('active', new Map());
    const c = client([node.url]);
    await expect(c.get('absent')).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404, node: node.url });
    expect(node.requests.filter((r) => r.url.startsWith('/v1/deposits')).length).toBe(1);
  });

  it('serves a stale cached value when every node is down, then fails after maxStaleMs', async () => {
    const store: Store = new Map();
    const node = await startNode('active', store);
    const hits: string[] = [];
    const c = client([node.url], {
      cache: { ttlMs: 0, maxStaleMs: 60_000 },
      retry: { limit: 1, baseDelayMs: 1, backoffLimitMs: 2 },
      hooks: { onCacheHit: (e) => hits.push(e.freshness) },
    });
    await c.put('k', 'cached secret');
    await c.get('k');
    await node.stop();
    nodes.length = 0;
    const got = await c.get('k');
    expect(got.text()).toBe('cached secret');
    expect(got.source).toBe('stale-cache');
    expect(hits).toEqual(['stale']);
    const strict = client([node.url], { cache: { ttlMs: 0, maxStaleMs: 0 }, retry: { limit: 0 } });
    await expect(strict.get('k')).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
  });

  it('refuses an untrusted server certificate without retrying', async () => {
    const node = await startNode('active', new Map());
    const c = client([node.url], { ca: selfSignedCert('someone else').cert });
    await expect(c.get('k')).rejects.toMatchObject({ code: 'TLS_ERROR', retryable: false });
  });

  it('reports the health of every endpoint, reachable or not', async () => {
    const node = await startNode('active', new Map());
    const down = await closedPortUrl();
    const status = await client([node.url, down]).status();
    expect(status.active).toBe(node.url);
    expect(status.endpoints[0]).toMatchObject({
      url: node.url,
      reachable: true,
      health: { role: 'active' },
      breaker: 'closed',
    });
    expect(status.endpoints[1]).toMatchObject({
      url: down,
      reachable: false,
      error: { code: 'NETWORK_ERROR' },
    });
  });

  it('lists every page through the async iterator', async () => {
    const node = await FakeNode.start(serverTls);
    nodes.push(node);
    node.handler = (req, res) => {
      const cursor = new URL(req.url, 'https://x').searchParams.get('cursor');
      const page =
        cursor === null
          ? { items: [{ name: 'a', version: 1, createdAt: '2026-01-01T00:00:00Z' }], nextCursor: 'a' }
          : { items: [{ name: 'b', version: 2, createdAt: '2026-01-01T00:00:00Z' }], nextCursor: null };
      sendJson(res, 200, page);
    };
    const names: string[] = [];
    for await (const item of client([node.url]).list({ prefix: '', pageSize: 1 }))
      names.push(`${item.name}@${item.version}`);
    expect(names).toEqual(['a@1', 'b@2']);
  });

  it('stops with PROTOCOL_ERROR when the server repeats a list cursor instead of looping forever', async () => {
    const node = await FakeNode.start(serverTls);
    nodes.push(node);
    let pages = 0;
    node.handler = (_req, res) => {
      pages += 1;
      sendJson(res, 200, {
        items: [{ name: 'a', version: 1, createdAt: '2026-01-01T00:00:00Z' }],
        nextCursor: 'same',
      });
    };
    const seen: string[] = [];
    const error = await (async () => {
      for await (const item of client([node.url]).list()) seen.push(item.name);
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrusteeError);
    expect((error as TrusteeError).code).toBe('PROTOCOL_ERROR');
    expect(pages).toBe(2);
  });

  it('never serves a value read before its own put finished (in-flight read vs. invalidation)', async () => {
    const store: Store = new Map();
    const node = await FakeNode.start(serverTls);
    nodes.push(node);
    // While `held` is set, a GET is answered with the value of the moment but only on release().
    let held: Array<() => void> | undefined;
    node.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      if (req.method === 'GET' && held !== undefined) {
        const answer = new Map([...store].map(([k, e]) => [k, { ...e }]));
        held.push(() => depositHandler(answer as Store, req, res));
        return;
      }
      depositHandler(store, req, res);
    };
    const c = client([node.url], { cache: { ttlMs: 60_000 } });
    await c.put('k', 'old');
    held = [];
    const slowRead = c.get('k');
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    const release = held;
    held = undefined;
    await c.put('k', 'new');
    for (const r of release) r();
    expect((await slowRead).text()).toBe('old'); // began before the put: fine to return
    const after = await c.get('k');
    expect(after.text()).toBe('new');
    expect(after.source).toBe('server');
  });

  it('seals a put for the version it will be stored as, re-sealing after another writer came first', async () => {
    const store: Store = new Map();
    const active = await startNode('active', store);
    const writer = client([active.url]);
    const other = client([active.url]);
    for (let i = 1; i <= 4; i++) expect((await other.put('shared', `other-${i}`)).version).toBe(i);
    // `writer` has never seen `shared`: it guesses If-Match 0, is told 4, re-seals for 5.
    const put = await writer.put('shared', 'mine');
    expect(put.version).toBe(5);
    const puts = active.requests.filter((r) => r.method === 'PUT' && r.url.endsWith('/shared'));
    expect(puts.slice(-2).map((r) => r.headers['if-match'])).toEqual(['0', '4']);
    expect((await writer.get('shared', { noCache: true })).text()).toBe('mine');
    // A caller's own ifMatch is not second-guessed.
    await expect(writer.put('shared', 'x', { ifMatch: 2 })).rejects.toMatchObject({
      code: 'VERSION_CONFLICT',
    });
  });

  it("detects a server answering an old version's ciphertext as the latest version", async () => {
    const store: Store = new Map();
    const active = await startNode('active', store);
    const c = client([active.url], { cache: { maxEntries: 0 } });
    await c.put('rolled', 'old key');
    await c.put('rolled', 'new key');
    const entry = store.get('rolled');
    if (entry?.history === undefined) throw new Error('fake store lost the history');
    // The rollback: version 2 is answered with version 1's ciphertext.
    entry.value = entry.history.get(1) ?? '';
    await expect(c.get('rolled')).rejects.toMatchObject({ code: 'DECRYPT_FAILED' });
    expect((await c.get('rolled', { version: 1 })).text()).toBe('old key');
  });

  it('refuses an answer for another version than the one asked for', async () => {
    const store: Store = new Map();
    const active = await FakeNode.start(serverTls);
    nodes.push(active);
    active.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      // Whatever version is asked, this server answers the latest.
      depositHandler(store, { ...req, url: req.url.replace(/\?version=\d+$/, '') }, res);
    };
    const c = client([active.url], { encryption: 'none' });
    await c.put('k', 'one');
    await c.put('k', 'two');
    const e = await c.get('k', { version: 1 }).catch((x: unknown) => x as TrusteeError);
    expect(e).toMatchObject({ code: 'PROTOCOL_ERROR' });
    expect((e as TrusteeError).message).toContain('asked for k version 1, got version 2');
  });

  it('rejects an invalid name before any request', async () => {
    const node = await startNode('active', new Map());
    await expect(client([node.url]).put('../x', 'v')).rejects.toMatchObject({ code: 'INVALID_NAME' });
    expect(node.requests).toEqual([]);
  });
});
