import { TrusteeClient } from '../../src/client';
import { generateDataKey } from '../../src/data-key';
import type { TrusteeClientOptions } from '../../src/types';
import type { FakeNode } from './fake-node';
import { selfSignedCert, type CertAndKey } from './tls-fixture';

export interface FakeNodesFixture {
  serverTls: CertAndKey;
  clientTls: CertAndKey;
  /** Nodes a test started; stopped and emptied (in place) after each test. */
  nodes: FakeNode[];
  /** Clients a test made; closed and emptied (in place) after each test. */
  clients: TrusteeClient[];
  /** A client trusting the nodes' certificate, with short timeouts; closed after the test. */
  client(endpoints: string[], extra?: Partial<TrusteeClientOptions>): TrusteeClient;
}

/** Certificates for local https nodes and clients, plus per-test cleanup of both. */
export function useFakeNodes(): FakeNodesFixture {
  const fx: FakeNodesFixture = {
    serverTls: selfSignedCert('127.0.0.1'),
    clientTls: selfSignedCert('client'),
    nodes: [],
    clients: [],
    client(endpoints, extra = {}) {
      const c = new TrusteeClient({
        endpoints,
        ca: fx.serverTls.cert,
        cert: fx.clientTls.cert,
        key: fx.clientTls.key,
        dataKey: generateDataKey(),
        timeoutMs: 1000,
        deadlineMs: 3000,
        ...extra,
      });
      fx.clients.push(c);
      return c;
    },
  };
  afterEach(async () => {
    for (const c of fx.clients) c.close();
    await Promise.all(fx.nodes.map((n) => n.stop()));
    fx.nodes.length = 0;
    fx.clients.length = 0;
  });
  return fx;
}
