import { X509Certificate } from 'node:crypto';
import { request, Agent } from 'node:https';
import type { HsmObserver, HsmOp, KekBackend } from './kek-backend';
import { HsmUnavailableError, KeyUnavailableError } from './key-hierarchy';
import { Pkcs11SetupError } from './pkcs11-kek';

export interface KeyHsmClientOptions {
  /** https://H:9090 */
  server: string;
  /** The Key Trustee Server's certificate and key (PEM), presented as the TLS client. */
  clientCert: string;
  clientKey: string;
  passphrase?: string;
  /** The Key HSM service certificate pinned by `ktadmin keyhsm --trust` (.ssl/ssl-cert-keyhsm.pem). */
  serverCert: string;
  timeoutMs?: number;
  observer?: HsmObserver;
}

const NET_REASONS =
  /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EPIPE|EAI_AGAIN)$/;

/**
 * The KEK on the Key HSM service (the seed's integration form): the same operations as
 * pkcs11-kek.ts, over HTTPS with mutual TLS. The service's certificate is pinned (its SHA-256
 * fingerprint must equal the trusted file's), so neither a CA nor the host name is involved.
 */
export function openKeyHsmKek(opts: KeyHsmClientOptions): KekBackend {
  const pinned = new X509Certificate(opts.serverCert).fingerprint256;
  const observe = opts.observer ?? (() => undefined);
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 8,
    cert: opts.clientCert,
    key: opts.clientKey,
    passphrase: opts.passphrase,
    ca: opts.serverCert,
    minVersion: 'TLSv1.2',
    checkServerIdentity: (_host, cert) =>
      cert.fingerprint256 === pinned
        ? undefined
        : new Error('the Key HSM service presented another certificate than the trusted one'),
  });
  const description = `Key HSM service ${opts.server}`;

  function call(
    op: HsmOp,
    method: string,
    path: string,
    body?: Record<string, string>,
  ): Promise<Record<string, unknown>> {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const fail = (reason: string, message: string, cause?: unknown) => {
        observe(op, seconds(), reason);
        reject(new HsmUnavailableError(reason, `${op} on ${description}: ${message}`, { cause }));
      };
      const payload = body ? JSON.stringify(body) : undefined;
      const req = request(
        new URL(path, opts.server),
        {
          method,
          agent,
          timeout: opts.timeoutMs ?? 5000,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            let json: Record<string, unknown> = {};
            try {
              json = JSON.parse(text) as Record<string, unknown>;
            } catch {
              // an empty or foreign answer: handled by the status below
            }
            const err = (json.error ?? {}) as { reason?: string; code?: string; message?: string };
            if (res.statusCode === 200) {
              observe(op, seconds());
              return resolve(json);
            }
            if (res.statusCode === 422) {
              observe(op, seconds(), 'INTEGRITY');
              return reject(new KeyUnavailableError(err.message ?? 'a data key did not unwrap'));
            }
            const reason =
              typeof err.reason === 'string' && /^[A-Z0-9_]{1,64}$/.test(err.reason)
                ? err.reason
                : `HTTP_${res.statusCode}`;
            fail(reason, err.message ?? `HTTP ${res.statusCode}`);
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => {
        const code =
          e.code && NET_REASONS.test(e.code)
            ? e.code
            : e.code?.startsWith('ERR_TLS') || /certificate|handshake|socket hang up/i.test(e.message)
              ? 'TLS_REFUSED'
              : 'NETWORK_ERROR';
        fail(code, e.message, e);
      });
      req.end(payload);
    });
  }

  const kekPath = (label: string) => `/v1/keks/${encodeURIComponent(label)}`;
  return {
    description,
    async ensureKek(label) {
      const r = await call('generate', 'PUT', kekPath(label));
      return r.result === 'created' ? 'created' : 'exists';
    },
    async hasKek(label) {
      return (await call('find', 'GET', kekPath(label))).exists === true;
    },
    async wrap(label, plaintext, aad) {
      const r = await call('wrap', 'POST', `${kekPath(label)}/wrap`, {
        plaintext: plaintext.toString('base64'),
        aad: aad.toString('base64'),
      });
      return Buffer.from(String(r.wrapped), 'base64');
    },
    async unwrap(label, wrapped, aad) {
      const r = await call('unwrap', 'POST', `${kekPath(label)}/unwrap`, {
        wrapped: wrapped.toString('base64'),
        aad: aad.toString('base64'),
      });
      return Buffer.from(String(r.plaintext), 'base64');
    },
    close() {
      agent.destroy();
    },
  };
}

/** Start-up check: the service answers and its token is usable; else a clear error. */
export async function checkKeyHsm(kek: KekBackend): Promise<void> {
  try {
    await kek.hasKek('trustee-health-probe');
  } catch (e) {
    kek.close();
    throw new Pkcs11SetupError(`${kek.description} is not usable: ${(e as Error).message}`);
  }
}
