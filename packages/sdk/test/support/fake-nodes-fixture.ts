import type { TrusteeClient } from '../../src/client';
import type { FakeNode } from './fake-node';
import { selfSignedCert, type CertAndKey } from './tls-fixture';

export interface FakeNodesFixture {
  serverTls: CertAndKey;
  clientTls: CertAndKey;
  /** Nodes a test started; stopped and emptied (in place) after each test. */
  nodes: FakeNode[];
  /** Clients a test made; closed and emptied (in place) after each test. */
  clients: TrusteeClient[];
}

/** Certificates for local https nodes and clients, plus per-test cleanup of both. */
export function useFakeNodes(): FakeNodesFixture {
  const fx: FakeNodesFixture = {
    serverTls: selfSignedCert('127.0.0.1'),
    clientTls: selfSignedCert('client'),
    nodes: [],
    clients: [],
  };
  afterEach(async () => {
    for (const c of fx.clients) c.close();
    await Promise.all(fx.nodes.map((n) => n.stop()));
    fx.nodes.length = 0;
    fx.clients.length = 0;
  });
  return fx;
}
