import { registerTestClient, type TestClient } from '../support/clients';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, call, putDeposit } from '../support/api';

let node: SingleNode;
let client: TestClient;
const SECRET_NAME = 'metric-secret-name-4c1e';
const SECRET_VALUE = 'metric-secret-value-93ab';

beforeAll(async () => {
  node = await startSingleNode();
  client = await registerTestClient(node.url, 'acme', await addOrgCli(node, 'acme'));
});

afterAll(async () => {
  await node?.stop();
});

async function metrics(): Promise<string> {
  const res = await call(node, undefined, 'GET', '/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  return res.text;
}

describe('health', () => {
  it('reports a single node as active and writable with its database up', async () => {
    const res = await call(node, undefined, 'GET', '/v1/health');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ role: 'active', writable: true, db: 'up', version: expect.any(String) });
    expect(res.json.replication).toEqual(expect.any(Object));
  });

  it.each([
    ['/v1/health/active', 200],
    ['/v1/health/writable', 200],
    ['/v1/health/passive', 503],
  ])('answers %s with %i on a single active node', async (path, status) => {
    const res = await call(node, undefined, 'GET', path);
    expect(res.status).toBe(status);
    expect(res.json.role).toBe('active');
  });
});

describe('metrics', () => {
  it('counts requests by route template and status code, never by deposit name or value', async () => {
    expect((await putDeposit(node, client, SECRET_NAME, SECRET_VALUE)).status).toBe(201);
    expect((await call(node, client, 'GET', `/v1/deposits/${SECRET_NAME}`)).status).toBe(200);
    expect((await call(node, client, 'GET', `/v1/deposits/${SECRET_NAME}-missing`)).status).toBe(404);
    expect((await call(node, client, 'GET', `/v1/unknown-${SECRET_NAME}`)).status).toBe(404);
    const text = await metrics();
    expect(text).toMatch(
      /^trustee_http_requests_total\{route="\/v1\/deposits\/:name",method="PUT",code="201"\} 1$/m,
    );
    expect(text).toMatch(
      /^trustee_http_requests_total\{route="\/v1\/deposits\/:name",method="GET",code="200"\} 1$/m,
    );
    expect(text).toMatch(
      /^trustee_http_requests_total\{route="\/v1\/deposits\/:name",method="GET",code="404"\} 1$/m,
    );
    expect(text).toMatch(
      /^trustee_http_requests_total\{route="\/v1\/clients\/register",method="POST",code="200"\} \d+$/m,
    );
    for (const leak of [
      SECRET_NAME,
      SECRET_VALUE,
      Buffer.from(SECRET_VALUE).toString('base64'),
      client.fingerprint,
    ]) {
      expect(text).not.toContain(leak);
    }
  });

  it('labels requests refused before routing (no client certificate) without the raw path', async () => {
    expect((await call(node, undefined, 'GET', `/v1/deposits/${SECRET_NAME}`)).status).toBe(401);
    const text = await metrics();
    expect(text).toMatch(
      /^trustee_http_requests_total\{route="\/v1\/deposits\/:name",method="GET",code="401"\} 1$/m,
    );
    expect(text).not.toContain(SECRET_NAME);
  });

  it('exports the latency histogram by route template', async () => {
    const text = await metrics();
    expect(text).toContain('# TYPE trustee_http_request_duration_seconds histogram');
    expect(text).toMatch(
      /^trustee_http_request_duration_seconds_bucket\{le="0\.1",route="\/v1\/deposits\/:name",method="PUT"\} \d+$/m,
    );
    expect(text).toMatch(
      /^trustee_http_request_duration_seconds_count\{route="\/v1\/deposits\/:name",method="PUT"\} 1$/m,
    );
  });

  it('exports the node role, writability and database gauges plus the Node.js defaults', async () => {
    const text = await metrics();
    expect(text).toMatch(/^trustee_node_role\{role="active"\} 1$/m);
    expect(text).toMatch(/^trustee_node_role\{role="passive"\} 0$/m);
    expect(text).toMatch(/^trustee_writable 1$/m);
    expect(text).toMatch(/^trustee_db_up 1$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });
});
