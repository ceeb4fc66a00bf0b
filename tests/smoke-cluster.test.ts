import { startTestCluster, type TestCluster } from './helpers/cluster';
import { httpsRequest } from './helpers/https-request';

describe('two-node cluster harness', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('starts an active and a passive that agree on the cluster fingerprint', async () => {
    const a = await httpsRequest(cluster.a.url, { path: '/v1/health' });
    const b = await httpsRequest(cluster.b.url, { path: '/v1/health' });
    expect(a.json.role).toBe('active');
    expect(a.json.writable).toBe(true);
    expect(b.json.role).toBe('passive');
    const fa = await httpsRequest(cluster.a.url, { path: '/?a=fingerprint' });
    const fb = await httpsRequest(cluster.b.url, { path: '/?a=fingerprint' });
    expect(fa.text).toMatch(/^4096R\/[0-9A-F]{40}$/);
    expect(fb.text).toBe(fa.text);
  });
});
