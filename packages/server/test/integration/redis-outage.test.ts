/**
 * Issue 10, finding 7: the registration lockout must not vanish when its shared store does.
 * A Redis of the test's own (redis-server on a free port) is stopped mid-test: registrations are
 * refused (UNAVAILABLE, fail closed, logged and counted) while a registered client keeps reading
 * its deposits (per-request limits fail open); with Redis back, registration works again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { makeCsr, registerTestClient, type TestClient } from '../support/clients';
import { httpsRequest } from '../support/https-request';
import { freePort } from '../support/ports';
import { trackPid, untrackPid, waitFor, waitForExit } from '../support/processes';
import { makeTempDir, removeDir } from '../support/temp-dir';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, orgtool, putDeposit } from '../support/api';

describe('registration fails closed when the rate-limit store is down (issue 10)', () => {
  let node: SingleNode;
  let client: TestClient;
  let redis: ChildProcess | undefined;
  let port: number;
  let dir: string;

  const answers = () =>
    new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });

  async function startRedis(): Promise<void> {
    redis = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      {
        stdio: 'ignore',
      },
    );
    trackPid(redis.pid!);
    await waitFor('redis answers', answers, 10_000);
  }
  async function stopRedis(): Promise<void> {
    if (!redis?.pid) return;
    redis.kill('SIGKILL');
    await waitForExit(redis.pid, 10_000);
    untrackPid(redis.pid);
    redis = undefined;
  }
  const register = () =>
    httpsRequest(node.url, {
      method: 'POST',
      path: '/v1/clients/register',
      body: JSON.stringify({ org: 'outage', csr: makeCsr('outage').csr }),
      headers: { 'content-type': 'application/json' },
    });

  beforeAll(async () => {
    port = await freePort();
    dir = makeTempDir('trustee-redis-');
    await startRedis();
    node = await startSingleNode({ conf: { REDIS_URL: `redis://127.0.0.1:${port}` } });
    await addOrgCli(node, 'outage');
    expect((await orgtool(node, 'set-auth', '-n', 'outage', '-s', '')).code).toBe(0);
    client = await registerTestClient(node.url, 'outage');
    expect((await putDeposit(node, client, 'kept', 'v')).status).toBe(201);
  });
  afterAll(async () => {
    await stopRedis();
    await node?.stop();
    removeDir(dir);
  });

  it('refuses registrations while Redis is down, keeps serving registered clients, and says so in the metrics', async () => {
    await stopRedis();
    const refused = await waitFor(
      'registration refused',
      async () => {
        const r = await register();
        return r.status === 503 ? r : undefined;
      },
      20_000,
    );
    expect(refused.json.error.code).toBe('UNAVAILABLE');
    expect(refused.json.error.message).toMatch(/rate-limit store does not answer/);
    const read = await httpsRequest(node.url, {
      path: '/v1/deposits/kept',
      cert: client.cert,
      key: client.key,
    });
    expect(read.status).toBe(200);
    const m = await httpsRequest(node.url, { path: '/metrics' });
    expect(m.text).toMatch(/^trustee_rate_limit_store_errors_total\{limiter="registration"\} [1-9]/m);
    expect(m.text).toMatch(/^trustee_rate_limit_store_errors_total\{limiter="requests"\} [1-9]/m);

    await startRedis();
    await waitFor('registration works again', async () => (await register()).status === 200, 20_000);
  });
});
