import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { writePublicFile } from '../confdir/secret-files';

/**
 * `ktadmin keyhsm --trust`: fetches the Key HSM service's certificate (the one it presents in the
 * TLS handshake) and stores it as the pinned `.ssl/ssl-cert-keyhsm.pem`, as the seed does. From
 * then on only a service presenting exactly this certificate is used.
 */
export function fetchKeyHsmCert(
  server: string,
  client: { cert: string; key: string; passphrase?: string },
  timeoutMs = 5000,
): Promise<string> {
  const url = new URL(server);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port || 443),
      servername: /^[\d.]+$|:/.test(url.hostname) ? undefined : url.hostname,
      cert: client.cert,
      key: client.key,
      passphrase: client.passphrase,
      // Trust on first use: what the service presents now is what we pin (the operator ran --trust).
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      timeout: timeoutMs,
    });
    socket.once('secureConnect', () => {
      const raw = socket.getPeerCertificate()?.raw;
      socket.destroy();
      if (!raw) return reject(new Error(`${server} presented no certificate`));
      resolve(new X509Certificate(raw).toString());
    });
    socket.once('timeout', () =>
      socket.destroy(new Error(`${server} did not answer within ${timeoutMs} ms`)),
    );
    socket.once('error', (e) =>
      reject(new Error(`cannot reach the Key HSM service at ${server}: ${e.message}`)),
    );
  });
}

export function storeKeyHsmCert(file: string, pem: string): string {
  writePublicFile(file, pem);
  return new X509Certificate(pem).fingerprint256;
}
