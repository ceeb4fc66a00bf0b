import { randomUUID } from 'node:crypto';
import { httpsRequest, jsonRequest, type RawResponse } from './https-request';

/** A registered client's mTLS credentials. */
export interface ClientCreds {
  cert: string;
  key: string;
}

export interface TimedResponse extends RawResponse {
  durationMs: number;
}

/** Raw `PUT /v1/deposits/:name` (value stored as given) with an explicit Idempotency-Key; timed. */
export async function putDepositRaw(
  url: string,
  creds: ClientCreds,
  name: string,
  value: string | Buffer,
  opts: { idempotencyKey?: string; timeoutMs?: number; localAddress?: string } = {},
): Promise<TimedResponse> {
  const started = Date.now();
  const res = await jsonRequest(
    url,
    'PUT',
    `/v1/deposits/${encodeURIComponent(name)}`,
    { value: Buffer.from(value).toString('base64') },
    {
      cert: creds.cert,
      key: creds.key,
      timeoutMs: opts.timeoutMs ?? 15_000,
      localAddress: opts.localAddress,
      headers: { 'idempotency-key': opts.idempotencyKey ?? randomUUID() },
    },
  );
  return { ...res, durationMs: Date.now() - started };
}

/** Raw `GET /v1/deposits/:name[?version=N]`. */
export function getDepositRaw(
  url: string,
  creds: ClientCreds,
  name: string,
  version?: number,
): Promise<RawResponse> {
  const q = version === undefined ? '' : `?version=${version}`;
  return httpsRequest(url, {
    path: `/v1/deposits/${encodeURIComponent(name)}${q}`,
    cert: creds.cert,
    key: creds.key,
    timeoutMs: 10_000,
  });
}

/** Decoded value of a 200 GET answer. */
export function valueOf(res: RawResponse): string {
  return Buffer.from(res.json.value as string, 'base64').toString('utf8');
}

/** Node health (status + body), never throws for a 503. */
export function health(
  url: string,
  which: '' | '/active' | '/passive' | '/writable' = '',
): Promise<RawResponse> {
  return httpsRequest(url, { path: `/v1/health${which}`, timeoutMs: 5_000 });
}

/** True when the node's write gate is open (a synchronous standby is streaming). */
export async function isWritable(url: string): Promise<boolean> {
  try {
    return (await health(url, '/writable')).status === 200;
  } catch {
    return false;
  }
}
