import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { CertAndKey } from './tls-fixture';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Handler = (req: RecordedRequest, res: ServerResponse) => void;

/** A real node:https server on 127.0.0.1 that asks for (but does not verify) client certs. */
export class FakeNode {
  readonly requests: RecordedRequest[] = [];
  handler: Handler = (_req, res) =>
    sendJson(res, 404, { error: { code: 'NOT_FOUND', message: 'no handler' } });
  private readonly server: https.Server;

  private constructor(tls: CertAndKey) {
    this.server = https.createServer({ ...tls, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const recorded = {
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString(),
        };
        this.requests.push(recorded);
        this.handler(recorded, res);
      });
    });
  }

  static async start(tls: CertAndKey): Promise<FakeNode> {
    const node = new FakeNode(tls);
    await new Promise<void>((resolve) => node.server.listen(0, '127.0.0.1', resolve));
    node.url = `https://127.0.0.1:${(node.server.address() as AddressInfo).port}`;
    return node;
  }

  /** Fixed at start so it stays valid after stop(). */
  url = '';

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Health answers for a node with the given role. */
export function answerHealth(req: RecordedRequest, res: ServerResponse, role: 'active' | 'passive'): boolean {
  if (req.url === '/v1/health/active') {
    sendJson(res, role === 'active' ? 200 : 503, { active: role === 'active' });
    return true;
  }
  if (req.url === '/v1/health') {
    sendJson(res, 200, {
      role,
      writable: role === 'active',
      db: 'ok',
      replication: { state: 'streaming', syncState: 'sync', lagBytes: 0, replayLagSeconds: 0 },
      version: 'test',
    });
    return true;
  }
  return false;
}

/** A port nothing listens on (bound then released). */
export async function closedPortUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `https://127.0.0.1:${port}`;
}
