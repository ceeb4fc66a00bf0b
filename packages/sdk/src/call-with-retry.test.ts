import { TrusteeClient } from './client';
import type { TrusteeClientOptions } from './types';
import type { ServerResponse } from 'node:http';
import { FakeNode, answerHealth, sendJson, type RecordedRequest } from '../test/support/fake-node';
import { useFakeNodes } from '../test/support/fake-nodes-fixture';

/** Routing and retry behaviour of one call (call-with-retry.ts) seen through the client. */
describe('callWithRetry through TrusteeClient', () => {
  const fx = useFakeNodes();
  const { serverTls, nodes } = fx;

  async function node(): Promise<FakeNode> {
    const n = await FakeNode.start(serverTls);
    nodes.push(n);
    return n;
  }

  const client = (endpoints: string[], extra: Partial<TrusteeClientOptions> = {}): TrusteeClient =>
    fx.client(endpoints, extra);

  const puts = (n: FakeNode): number => n.requests.filter((r) => r.method === 'PUT').length;

  it('does not busy-loop when two demoted nodes name each other in NOT_ACTIVE', async () => {
    // Both were active once (so health says active) and now each points at the other.
    const a = await node();
    const b = await node();
    for (const [self, other] of [
      [a, b],
      [b, a],
    ]) {
      self.handler = (req, res) => {
        if (answerHealth(req, res, 'active')) return;
        sendJson(res, 503, { error: { code: 'NOT_ACTIVE', message: 'demoted', active: other.url } });
      };
    }
    const delays: number[] = [];
    const c = client([a.url, b.url], {
      deadlineMs: 600,
      retry: { baseDelayMs: 50, backoffLimitMs: 50, jitter: 'none' },
      hooks: { onRetry: (e) => delays.push(e.delayMs) },
    });
    const error = await c.put('k', 'v').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    // Without backoff this ran hundreds of requests in 600 ms; now every other retry waits 50 ms.
    expect(puts(a) + puts(b)).toBeLessThan(30);
    // A hint is followed at once at most once in a row.
    expect(delays.some((d, i) => d === 0 && delays[i - 1] === 0)).toBe(false);
    expect(delays.filter((d) => d > 0).length).toBeGreaterThan(0);
    // Every try of the one call carried the same key.
    const keys = new Set([...a.requests, ...b.requests].map((r) => r.headers['idempotency-key']));
    keys.delete(undefined);
    expect(keys.size).toBe(1);
  });

  it('does not follow a NOT_ACTIVE hint naming the answering node itself without backoff', async () => {
    const a = await node();
    a.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      sendJson(res, 503, { error: { code: 'NOT_ACTIVE', message: 'confused', active: a.url } });
    };
    const c = client([a.url], {
      deadlineMs: 500,
      retry: { baseDelayMs: 50, backoffLimitMs: 50, jitter: 'none' },
    });
    await expect(c.put('k', 'v')).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(puts(a)).toBeLessThan(15);
  });

  it('ignores a NOT_ACTIVE hint naming a node that is not configured', async () => {
    const a = await node();
    let calls = 0;
    a.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      calls += 1;
      if (calls === 1) {
        sendJson(res, 503, { error: { code: 'NOT_ACTIVE', message: 'x', active: 'https://evil.example:1' } });
        return;
      }
      sendJson(res, 201, { name: 'k', version: 1 });
    };
    const hosts: string[] = [];
    const c = client([a.url], {
      retry: { baseDelayMs: 1, backoffLimitMs: 1 },
      hooks: { onRequest: (e) => hosts.push(e.node) },
    });
    await expect(c.put('k', 'v')).resolves.toMatchObject({ version: 1 });
    expect(new Set(hosts)).toEqual(new Set([a.url]));
  });

  it('aborts an attempt at the remaining deadline when the node stalls', async () => {
    const a = await node();
    a.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      // never answers
    };
    const c = client([a.url], { timeoutMs: 5000, deadlineMs: 300 });
    const started = Date.now();
    await expect(c.get('k')).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('ends a write that was sent and then timed out as WRITE_IN_DOUBT with its key, not DEADLINE_EXCEEDED', async () => {
    const a = await node();
    a.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      // The request arrives, the answer never does (a commit stuck waiting for the passive).
    };
    const c = client([a.url], {
      timeoutMs: 150,
      deadlineMs: 700,
      retry: { baseDelayMs: 10, backoffLimitMs: 20 },
    });
    const error = (await c.put('k', 'v', { idempotencyKey: 'doubt-1' }).catch((e: unknown) => e)) as {
      code: string;
      details: Record<string, unknown>;
    };
    expect(error).toMatchObject({ code: 'WRITE_IN_DOUBT', details: { idempotencyKey: 'doubt-1' } });
    expect(puts(a)).toBeGreaterThanOrEqual(1);
    expect(
      new Set(a.requests.filter((r) => r.method === 'PUT').map((r) => r.headers['idempotency-key'])),
    ).toEqual(new Set(['doubt-1']));
  });

  it('resolves a timed-out write by retrying it with the same key', async () => {
    const a = await node();
    let seen = 0;
    a.handler = (req, res) => {
      if (answerHealth(req, res, 'active')) return;
      seen += 1;
      if (seen === 1) return; // first try: no answer
      sendJson(res, 201, { name: 'k', version: 1 });
    };
    const c = client([a.url], {
      timeoutMs: 150,
      deadlineMs: 5000,
      retry: { baseDelayMs: 10, backoffLimitMs: 20 },
    });
    await expect(c.put('k', 'v')).resolves.toMatchObject({ version: 1 });
    expect(puts(a)).toBe(2);
  });

  it('a tampered row (integrity error) is not a node failure: no retry, no open breaker, the other node answers', async () => {
    const a = await node();
    const b = await node();
    const states: string[] = [];
    const answer = (who: FakeNode, bad: boolean) => (req: RecordedRequest, res: ServerResponse) => {
      if (answerHealth(req, res, who === a ? 'active' : 'passive')) return;
      if (bad && req.url.startsWith('/v1/deposits/bad')) {
        sendJson(res, 503, {
          error: { code: 'UNAVAILABLE', message: 'integrity check failed', reason: 'INTEGRITY' },
        });
        return;
      }
      const name = decodeURIComponent(req.url.slice('/v1/deposits/'.length).split('?')[0]);
      sendJson(res, 200, {
        name,
        version: 1,
        value: Buffer.from(`${name} from ${who === a ? 'a' : 'b'}`).toString('base64'),
        metadata: null,
        createdAt: new Date(0).toISOString(),
      });
    };
    a.handler = answer(a, true);
    b.handler = answer(b, true);
    const c = client([a.url, b.url], {
      encryption: 'none',
      cache: { maxEntries: 0 },
      breaker: { threshold: 3, halfOpenAfterMs: 60_000 },
      hooks: { onBreakerStateChange: (e) => states.push(`${e.node} ${e.state}`) },
    });
    for (let i = 0; i < 6; i++) {
      const e = await c.get('bad').catch((x: unknown) => x as { code: string; retryable: boolean });
      expect(e).toMatchObject({ code: 'UNAVAILABLE', retryable: false });
    }
    // One try per node per call: no retries of a verdict that cannot change.
    expect(a.requests.filter((r) => r.url.startsWith('/v1/deposits/bad'))).toHaveLength(6);
    expect(b.requests.filter((r) => r.url.startsWith('/v1/deposits/bad'))).toHaveLength(6);
    expect(states).toEqual([]);
    expect((await c.get('good')).text()).toMatch(/^good from [ab]$/);
    // When only one node's copy is bad, the read is answered by the other node.
    b.handler = answer(b, false);
    expect((await c.get('bad')).text()).toBe('bad from b');
  });

  it('lets a recovered node back in through the half-open breaker', async () => {
    const a = await node();
    let healthy = false;
    a.handler = (req, res) => {
      if (!healthy) {
        sendJson(res, 500, { error: { code: 'UNAVAILABLE', message: 'down' } });
        return;
      }
      sendJson(res, 200, {
        name: 'k',
        version: 1,
        value: Buffer.from('plain').toString('base64'),
        metadata: null,
        createdAt: '2026-01-01T00:00:00Z',
      });
    };
    const states: string[] = [];
    const c = client([a.url], {
      encryption: 'none',
      breaker: { threshold: 2, halfOpenAfterMs: 200 },
      retry: { limit: 0 },
      cache: { maxEntries: 0 },
      hooks: { onBreakerStateChange: (e) => states.push(e.state) },
    });
    await expect(c.get('k')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(c.get('k')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(c.get('k')).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    healthy = true;
    await expect(c.get('k')).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' });
    await new Promise((r) => setTimeout(r, 250));
    await expect(c.get('k')).resolves.toMatchObject({ version: 1, source: 'server' });
    await expect(c.get('k')).resolves.toMatchObject({ version: 1 });
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('takes the attempt budget after a half-open breaker held the call, not before', async () => {
    const a = await node();
    let n = 0;
    a.handler = (_req, res) => {
      n += 1;
      if (n === 1) sendJson(res, 500, { error: { code: 'UNAVAILABLE', message: 'down' } });
      else if (n === 2)
        setTimeout(() => sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'no' } }), 300);
      // later requests stall
    };
    const c = client([a.url], {
      timeoutMs: 400,
      breaker: { threshold: 1, halfOpenAfterMs: 20 },
      retry: { limit: 0 },
    });
    await expect(c.get('k')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await new Promise((r) => setTimeout(r, 40));
    const tester = c.get('k'); // the half-open test: answered after 300 ms
    const started = Date.now();
    const held = c.get('k2', { deadlineMs: 400 }); // waits for the test, then must keep to its deadline
    await expect(tester).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(held).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(600);
  });

  it('reports ABORTED, not UNAVAILABLE, when the caller aborts during discovery', async () => {
    const a = await node();
    a.handler = () => {
      // health never answers: discovery hangs until aborted
    };
    const controller = new AbortController();
    const c = client([a.url], {
      timeoutMs: 2000,
      retry: { limit: 10, baseDelayMs: 0, backoffLimitMs: 0 },
    });
    setTimeout(() => controller.abort(), 100);
    await expect(c.put('k', 'v', { signal: controller.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('never retries a NOT_FOUND read nor fails it over to the other node', async () => {
    const a = await node();
    const b = await node();
    for (const n of [a, b])
      n.handler = (_req, res) => sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'no' } });
    const c = client([a.url, b.url]);
    await expect(c.get('k')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(a.requests.length + b.requests.length).toBe(1);
  });

  it('refuses an idempotency key that is not a valid header value, before any request', async () => {
    const a = await node();
    const c = client([a.url]);
    await expect(c.put('k', 'v', { idempotencyKey: 'bad\nkey' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(c.delete('k', { idempotencyKey: 'has space' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(a.requests).toEqual([]);
  });
});
