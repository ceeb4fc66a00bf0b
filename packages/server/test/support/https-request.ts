import { request, type Agent } from 'node:https';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface RawRequest {
  method?: string;
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  cert?: string;
  key?: string;
  timeoutMs?: number;
  /** Source address (e.g. 127.0.0.2) to spread many connections over loopback addresses. */
  localAddress?: string;
  /** A keep-alive agent to reuse one TLS connection; default none (a new connection per request). */
  agent?: Agent;
}

/** One raw HTTPS request (no retries, no SDK): tests use it to send exactly the bytes they mean. */
export function httpsRequest(baseUrl: string, r: RawRequest): Promise<RawResponse> {
  const url = new URL(r.path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: r.method ?? 'GET',
        headers: {
          ...(r.body !== undefined ? { 'content-length': String(Buffer.byteLength(r.body)) } : {}),
          ...r.headers,
        },
        cert: r.cert,
        key: r.key,
        rejectUnauthorized: false,
        agent: r.agent ?? false,
        localAddress: r.localAddress,
        timeout: r.timeoutMs ?? 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url.href} timed out`)));
    req.on('error', reject);
    if (r.body !== undefined) req.write(r.body);
    req.end();
  });
}

export function jsonRequest(
  baseUrl: string,
  method: string,
  path: string,
  body: unknown,
  opts: Omit<RawRequest, 'method' | 'path' | 'body'> = {},
): Promise<RawResponse> {
  return httpsRequest(baseUrl, {
    ...opts,
    method,
    path,
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...opts.headers },
  });
}
