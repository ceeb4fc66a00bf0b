import { initConfdir } from '@trustee/server';
import { useTestCluster } from '../packages/server/test/support/cluster';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { waitFor } from '../packages/server/test/support/processes';

/**
 * DESIGN.md "Roles": a passive whose cluster identity differs from the active's (a half-done
 * confdir copy) refuses client traffic, says why in /v1/health and in a metric.
 */
describe('cluster identity check', () => {
  const fixture = useTestCluster();

  /** Stops node-b's server, re-initializes its confdir (fresh identity, or copied from node-a), restarts it. */
  async function reinitPassive(copyFromActive: boolean): Promise<void> {
    const b = fixture.cluster.node('b');
    await fixture.cluster.killServer('b', 'SIGTERM');
    await initConfdir({
      confdir: b.confdir,
      host: 'localhost',
      port: b.apiPort,
      peers: [fixture.cluster.a.url],
      ...(copyFromActive ? { fromPeerConfdir: fixture.cluster.a.confdir } : {}),
      force: true,
      // The fixture fakes a missed rsync on a passive whose database runs: allowed on purpose here.
      protectDatabase: false,
    });
    await fixture.cluster.startServer('b');
  }

  it('a passive holding a different identity key answers 503 on health with the reason and raises the metric', async () => {
    const b = fixture.cluster.node('b');
    // A fresh identity in node-b's confdir: what a missed rsync leaves behind.
    await reinitPassive(false);

    const health = await httpsRequest(b.url, { path: '/v1/health' });
    expect(health.status).toBe(503);
    expect(health.json.identity).toBe('mismatch');
    expect(health.json.reason).toMatch(/identity key differs/);
    expect((await httpsRequest(b.url, { path: '/v1/health/passive' })).status).toBe(503);
    const metrics = await httpsRequest(b.url, { path: '/metrics' });
    expect(metrics.text).toMatch(/^trustee_identity_mismatch 1$/m);
    const fpA = (await httpsRequest(fixture.cluster.a.url, { path: '/?a=fingerprint' })).text;
    const fpB = (await httpsRequest(b.url, { path: '/?a=fingerprint' })).text;
    expect(fpB).not.toBe(fpA);
  });

  it('copying the active confdir again (without .ssl) restores the passive', async () => {
    const b = fixture.cluster.node('b');
    await reinitPassive(true);
    const health = await waitFor('passive healthy', async () => {
      const h = await httpsRequest(b.url, { path: '/v1/health' });
      return h.status === 200 ? h : undefined;
    });
    expect(health.json.identity).toBe('ok');
    expect(health.json.role).toBe('passive');
    const metrics = await httpsRequest(b.url, { path: '/metrics' });
    expect(metrics.text).toMatch(/^trustee_identity_mismatch 0$/m);
  });
});
