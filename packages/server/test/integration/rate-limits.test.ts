import Redis from 'ioredis';
import { registerTestClient, type TestClient } from '../support/clients';
import { httpsRequest } from '../support/https-request';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, orgtool } from '../support/api';

/** Rate limits shared through the real Redis on 127.0.0.1:6379 (REDIS_URL). */
describe('rate limits through Redis', () => {
  const REDIS_URL = 'redis://127.0.0.1:6379';
  let node: SingleNode;
  let client: TestClient;
  let redis: Redis;

  beforeAll(async () => {
    node = await startSingleNode({ conf: { REDIS_URL, RATE_LIMIT_PER_SECOND: 2 } });
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    await addOrgCli(node, 'limited');
    expect((await orgtool(node, 'set-auth', '-n', 'limited', '-s', '')).code).toBe(0);
    client = await registerTestClient(node.url, 'limited');
  });
  afterAll(async () => {
    redis?.disconnect();
    await node?.stop();
  });

  it('answers 429 RATE_LIMITED with Retry-After past the per-client rate, counted in Redis', async () => {
    const answers = await Promise.all(
      Array.from({ length: 30 }, () =>
        httpsRequest(node.url, { path: '/v1/deposits', cert: client.cert, key: client.key }),
      ),
    );
    const limited = answers.filter((a) => a.status === 429);
    expect(answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(1);
    expect(limited.length).toBeGreaterThanOrEqual(10);
    expect(limited[0].json.error.code).toBe('RATE_LIMITED');
    expect(Number(limited[0].headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // The counter lives in Redis (shared by both nodes), keyed by the client, never by a secret.
    const keys = await redis.keys(`trustee:req:${client.fingerprint}*`);
    expect(keys.length).toBe(1);
  });

  it('lets the client through again after the window', async () => {
    await new Promise((r) => setTimeout(r, 1100));
    const res = await httpsRequest(node.url, { path: '/v1/deposits', cert: client.cert, key: client.key });
    expect(res.status).toBe(200);
  });
});
