import type { AddressInfo } from 'node:net';
import { connect, createServer, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { DEFAULT_TLS13_SUITES } from './cipher-list';
import { TLS_VERSIONS } from './tls-version';

/** Bound on one probe handshake over loopback. */
const PROBE_TIMEOUT_MS = 3000;

/**
 * A client willing to speak anything OpenSSL can (security level 0, every cipher), so a failed
 * handshake is the server's refusal, never the probe's.
 */
const PROBE_CLIENT_CIPHERS = [...DEFAULT_TLS13_SUITES, 'ALL', '@SECLEVEL=0'].join(':');

function handshake(port: number, version: SecureVersion): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      minVersion: version,
      maxVersion: version,
      ciphers: PROBE_CLIENT_CIPHERS,
      // The probe asks which protocols the server accepts, not whom it trusts.
      rejectUnauthorized: false,
      timeout: PROBE_TIMEOUT_MS,
    });
    const finish = (ok: boolean) => {
      socket.destroy();
      done(ok);
    };
    socket.once('secureConnect', () => finish(socket.getProtocol() === version));
    socket.once('error', () => finish(false));
    socket.once('timeout', () => finish(false));
  });
}

/**
 * The protocol versions a server built from `options` really negotiates, found by handshakes on a
 * private loopback listener: OpenSSL 3 refuses TLS 1.0/1.1 at security level 1 and above (their
 * handshake signs with MD5-SHA1), and they have no AEAD cipher, so TLS_MIN_VERSION alone does not
 * say what is offered.
 */
export async function probeOfferedProtocols(options: SecureContextOptions): Promise<SecureVersion[]> {
  // The client ends each connection: destroying it here could lose the server's TLS 1.2 Finished.
  const server = createServer({ ...options, requestCert: false }, (s) => s.on('error', () => undefined));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  try {
    const { port } = server.address() as AddressInfo;
    const offered: SecureVersion[] = [];
    for (const v of TLS_VERSIONS) if (await handshake(port, v)) offered.push(v);
    return offered;
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
