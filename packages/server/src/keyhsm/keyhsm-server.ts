import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { KekBackend } from '../keys/kek-backend';
import { HsmUnavailableError, KeyUnavailableError } from '../keys/key-hierarchy';
import { readPinFile } from '../keys/pin-file';
import { openPkcs11Kek } from '../keys/pkcs11-kek';
import type { Logger } from '../logger';
import { keyHsmPaths, loadKeyHsmConf, readTrustedFingerprints } from './keyhsm-config';

const LABEL_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_BODY_BYTES = 64 * 1024;

export interface RunningKeyHsm {
  server: Server;
  port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>);
      } catch {
        reject(new Error('body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

function b64(v: unknown): Buffer {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new Error('expected base64');
  return Buffer.from(v, 'base64');
}

/**
 * The Key HSM service (the seed's `keyhsm`, port 9090): HTTPS with mutual TLS in front of a
 * PKCS#11 token. Only clients whose certificate `keyhsm trust` added may connect; any other
 * connection is closed right after the handshake. TLS 1.2 at least (no SSL 3 / TLS 1.0 / 1.1).
 * It wraps and unwraps data keys under a KEK that never leaves the token:
 *   GET  /v1/health                  {token}
 *   GET  /v1/keks/:label             {exists}
 *   PUT  /v1/keks/:label             {result: created|exists}
 *   POST /v1/keks/:label/wrap        {plaintext, aad} → {wrapped}     (base64)
 *   POST /v1/keks/:label/unwrap      {wrapped, aad}   → {plaintext}
 * Errors: 503 {error:{code:'UNAVAILABLE', reason}} (token trouble), 422 INTEGRITY, 400, 404.
 */
export async function startKeyHsm(opts: {
  confdir: string;
  port?: number;
  log: Logger;
}): Promise<RunningKeyHsm> {
  const conf = loadKeyHsmConf(opts.confdir);
  const p = keyHsmPaths(opts.confdir);
  const kek: KekBackend = openPkcs11Kek({
    module: conf.PKCS11_MODULE,
    tokenLabel: conf.TOKEN_LABEL,
    pin: readPinFile(conf.PIN_FILE),
  });
  const server = createServer(
    {
      key: readFileSync(p.key),
      cert: readFileSync(p.cert),
      requestCert: true,
      // Client certificates are self-signed per node: trust is the fingerprint list, checked below.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    (req, res) => void handle(req, res),
  );
  const trusted = (socket: TLSSocket) => {
    const fp = socket.getPeerCertificate()?.fingerprint256;
    return !!fp && readTrustedFingerprints(opts.confdir).has(fp);
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    if (!trusted(socket)) {
      opts.log.warn(
        { remote: socket.remoteAddress },
        'untrusted client: connection closed (keyhsm trust CERT adds one)',
      );
      socket.destroy();
    }
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Checked again for every request: with TLS 1.3 a request sent right behind the handshake
    // reaches this handler before the secureConnection listener above has closed the socket.
    if (!trusted(req.socket as TLSSocket)) {
      req.socket.destroy();
      return;
    }
    try {
      const url = new URL(req.url ?? '/', 'https://keyhsm');
      if (url.pathname === '/v1/health' && req.method === 'GET') {
        const ok = await kek.hasKek('trustee-health-probe').then(
          () => true,
          () => false,
        );
        return send(res, ok ? 200 : 503, { token: conf.TOKEN_LABEL, ok });
      }
      const m = /^\/v1\/keks\/([^/]+)(\/wrap|\/unwrap)?$/.exec(url.pathname);
      if (!m) return send(res, 404, { error: { code: 'NOT_FOUND', message: 'no such route' } });
      let label: string;
      try {
        label = decodeURIComponent(m[1]);
      } catch {
        label = '';
      }
      if (!LABEL_RE.test(label))
        return send(res, 400, { error: { code: 'INVALID_REQUEST', message: 'invalid KEK label' } });
      if (!m[2] && req.method === 'GET') return send(res, 200, { exists: await kek.hasKek(label) });
      if (!m[2] && req.method === 'PUT') return send(res, 200, { result: await kek.ensureKek(label) });
      if (req.method !== 'POST')
        return send(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'method not allowed' } });
      let body: Record<string, unknown>;
      let aad: Buffer;
      try {
        body = await readJson(req);
        aad = b64(body.aad);
      } catch (e) {
        return send(res, 400, { error: { code: 'INVALID_REQUEST', message: (e as Error).message } });
      }
      if (m[2] === '/wrap') {
        const wrapped = await kek.wrap(label, b64(body.plaintext), aad);
        return send(res, 200, { wrapped: wrapped.toString('base64') });
      }
      const plain = await kek.unwrap(label, b64(body.wrapped), aad);
      send(res, 200, { plaintext: plain.toString('base64') });
      plain.fill(0);
    } catch (e) {
      if (e instanceof HsmUnavailableError)
        return send(res, 503, { error: { code: 'UNAVAILABLE', reason: e.reason, message: e.message } });
      if (e instanceof KeyUnavailableError)
        return send(res, 422, { error: { code: 'INTEGRITY', message: e.message } });
      opts.log.error({ err: (e as Error).message }, 'keyhsm request failed');
      send(res, 500, { error: { code: 'UNAVAILABLE', reason: 'INTERNAL', message: 'internal error' } });
    }
  }

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? conf.PORT, conf.LISTEN_ADDRESS, () => resolve());
    });
  } catch (e) {
    kek.close();
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  opts.log.info({ port, token: conf.TOKEN_LABEL }, 'keyhsm listening');
  return {
    server,
    port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      kek.close();
    },
  };
}
