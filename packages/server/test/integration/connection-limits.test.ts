/**
 * Issue 10, finding 6: a peer cannot hold the server with half-open work. A TCP connection that
 * never completes its TLS handshake is closed; one source address cannot hold more than
 * MAX_CONNECTIONS_PER_SOURCE connections; a deposit request without this cluster's client
 * certificate is answered 401 before its body is read or parsed.
 */
import { connect, type Socket } from 'node:net';
import { httpsRequest } from '../support/https-request';
import { waitFor } from '../support/processes';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { expectError } from '../support/api';

describe('connection limits (issue 10, finding 6)', () => {
  let node: SingleNode;
  const sockets: Socket[] = [];
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: node.server.port });
      sockets.push(s);
      s.on('error', () => undefined);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });

  beforeAll(async () => {
    node = await startSingleNode({ conf: { TLS_HANDSHAKE_TIMEOUT_MS: 1500, MAX_CONNECTIONS_PER_SOURCE: 5 } });
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await node?.stop();
  });

  it('closes a connection that never starts its TLS handshake', async () => {
    const s = await open();
    await waitFor('the server closes the silent connection', () => s.closed || s.destroyed, 10_000, 50);
  });

  it('refuses connections beyond the per-source cap, leaving the first ones open, and counts them', async () => {
    const first = await Promise.all([open(), open(), open(), open(), open()]);
    const extra = await open();
    await waitFor('the extra connection is closed', () => extra.closed || extra.destroyed, 5_000, 10);
    // The first five were still open when the sixth was refused (no handshake timeout yet).
    expect(first.filter((s) => s.closed || s.destroyed)).toHaveLength(0);
    for (const s of first) s.destroy();
    await waitFor('the server released them', async () => {
      const m = await httpsRequest(node.url, { path: '/metrics' }).catch(() => undefined);
      return m?.status === 200 ? m : undefined;
    });
    const m = await httpsRequest(node.url, { path: '/metrics' });
    expect(m.text).toMatch(/^trustee_connections_refused_total [1-9]/m);
  });

  it('answers a deposit write without a client certificate 401 before parsing its body', async () => {
    const res = await httpsRequest(node.url, {
      method: 'PUT',
      path: '/v1/deposits/anything',
      body: '{ not json at all',
      headers: { 'content-type': 'application/json' },
    });
    expectError(res, 401, 'UNAUTHENTICATED');
  });
});
