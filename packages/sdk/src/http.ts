import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { TrusteeError, errorFromResponse, toTrusteeError } from './errors';

/** Largest answer body read (a 64 KiB value is ~88 KiB of JSON); more means something is wrong. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export interface HttpRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** Path plus query, e.g. `/v1/deposits/a?version=2`. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** TLS material for one endpoint's keep-alive agent. */
export interface AgentOptions {
  cert?: string;
  key?: string;
  ca?: string | string[];
  skipSslCheck?: boolean;
}

export function createAgent(options: AgentOptions): https.Agent {
  return new https.Agent({
    keepAlive: true,
    maxSockets: 64,
    cert: options.cert,
    key: options.key,
    ca: options.ca,
    rejectUnauthorized: options.skipSslCheck !== true,
    minVersion: 'TLSv1.2',
  });
}

/**
 * One HTTPS exchange, no retry. Resolves with any HTTP status (the caller maps errors); rejects with
 * a TrusteeError: TIMEOUT (this attempt's budget), ABORTED (caller's signal), TLS_ERROR, NETWORK_ERROR.
 */
export function sendRequest(
  agent: https.Agent,
  baseUrl: string,
  request: HttpRequest,
): Promise<HttpResponse> {
  const url = new URL(request.path, baseUrl);
  return new Promise<HttpResponse>((resolve, reject) => {
    if (request.signal?.aborted) {
      reject(abortedError(baseUrl, request.signal.reason));
      return;
    }
    let settled = false;
    const finish = (err: TrusteeError | undefined, res?: HttpResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
      if (err !== undefined) reject(err);
      else if (res !== undefined) resolve(res);
    };
    // A request id the server logs and echoes (error.requestId): quote it when reporting a failure.
    const headers: Record<string, string> = {
      accept: 'application/json',
      'x-request-id': randomUUID(),
      ...request.headers,
    };
    if (request.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(request.body));
    }
    let req: ReturnType<typeof https.request>;
    try {
      req = https.request(url, { method: request.method, agent, headers }, onResponse);
    } catch (e) {
      // Thrown before anything was sent (e.g. a header value Node refuses): the request is at
      // fault, not the node, so this must not be retried or counted against the node.
      reject(
        new TrusteeError('INVALID_ARGUMENT', `request to ${baseUrl} not sent: ${(e as Error).message}`, {
          node: baseUrl,
          cause: e,
        }),
      );
      return;
    }
    function onResponse(res: IncomingMessage): void {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          req.destroy();
          finish(
            new TrusteeError('PROTOCOL_ERROR', `answer from ${baseUrl} exceeds ${MAX_RESPONSE_BYTES} bytes`, {
              node: baseUrl,
            }),
          );
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        finish(undefined, {
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', (e) => finish(toTrusteeError(e, baseUrl)));
    }
    // Set once the whole request left this process: a failure after that may come after the
    // server acted on it (a write may be committed), which the caller must not call "not done".
    let sent = false;
    req.on('finish', () => {
      sent = true;
    });
    const timer = setTimeout(() => {
      finish(
        new TrusteeError('TIMEOUT', `no answer from ${baseUrl} within ${request.timeoutMs} ms`, {
          node: baseUrl,
          details: { requestSent: sent },
        }),
      );
      req.destroy();
    }, request.timeoutMs);
    const onAbort = (): void => {
      finish(abortedError(baseUrl, request.signal?.reason));
      req.destroy();
    };
    request.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (e) => {
      const error = toTrusteeError(e, baseUrl);
      if (error.code === 'NETWORK_ERROR') error.details.requestSent = sent;
      finish(error);
    });
    req.end(request.body);
  });
}

function abortedError(node: string, reason: unknown): TrusteeError {
  return new TrusteeError('ABORTED', 'call aborted by the caller', { node, cause: reason });
}

/** First value of a header that may be repeated. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Like sendRequest, but a non-2xx answer rejects with the TrusteeError of its body. */
export async function sendExpectOk(
  agent: https.Agent,
  baseUrl: string,
  request: HttpRequest,
): Promise<HttpResponse> {
  const res = await sendRequest(agent, baseUrl, request);
  if (res.status >= 200 && res.status < 300) return res;
  throw errorFromResponse(res.status, res.body, baseUrl, headerValue(res.headers, 'retry-after'));
}

/** `GET /v1/health/active` answers 200 exactly when the node is the active one. */
export async function isNodeActive(
  agent: https.Agent,
  baseUrl: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const res = await sendRequest(agent, baseUrl, {
    method: 'GET',
    path: '/v1/health/active',
    timeoutMs,
    signal,
  });
  return res.status === 200;
}
