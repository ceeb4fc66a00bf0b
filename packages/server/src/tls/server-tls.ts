import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createSecureContext, type SecureContextOptions, type SecureVersion } from 'node:tls';
import { readSecretFile } from '../confdir/secret-files';
import { serverCipherList } from './cipher-list';
import { readKeyPassphrase } from './key-passphrase';
import { isEncryptedKeyPem, servedChain } from './pem-chain';
import { TlsConfigError } from './tls-config-error';

/**
 * The seed's CA file (root or intermediate, concatenated when both): when present it is sent after
 * the node certificate, so clients trusting that CA can verify a CA-signed certificate.
 */
export const CA_CHAIN_FILE = join('.ssl', 'ssl-cert-keytrustee-ca.pem');

/** The keytrustee.conf keys that shape the HTTPS listener's TLS (the parsed values of config.ts). */
export interface TlsSettings {
  SSL_CERTIFICATE: string;
  SSL_PRIVATE_KEY: string;
  SSL_PRIVATE_KEY_PASSWORD_SCRIPT?: string;
  TLS_MIN_VERSION: SecureVersion;
  TLS_CIPHERS?: string;
}

export interface ServerTls {
  /** For https.createServer and server.setSecureContext: key, served chain, passphrase, client CA, protocol floor, ciphers. */
  options: SecureContextOptions;
  /** The node certificate (first of the chain). */
  certificate: X509Certificate;
  /** Certificates sent, the node certificate first. */
  chain: X509Certificate[];
  files: { certificate: string; privateKey: string; ca?: string };
  minVersion: SecureVersion;
  /** Cipher list in effect (OpenSSL notation); `isDefaultCiphers` when TLS_CIPHERS is empty. */
  ciphers: string;
  isDefaultCiphers: boolean;
}

function confPath(confdir: string, p: string): string {
  return resolve(confdir, p);
}

function readCertificates(file: string, key: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new TlsConfigError(`cannot read ${key} ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}

function parseCertificate(pem: string, where: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new TlsConfigError(`${where} holds a certificate that cannot be parsed`);
  }
}

function readPrivateKey(file: string): string {
  try {
    return readSecretFile(file).toString('utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TlsConfigError(
      code ? `cannot read SSL_PRIVATE_KEY ${file}: ${code}` : `SSL_PRIVATE_KEY: ${(e as Error).message}`,
    );
  }
}

/** Turns OpenSSL's reason into what to fix; OpenSSL messages never carry the passphrase. */
function contextError(e: Error, files: ServerTls['files'], hasPassphrase: boolean): TlsConfigError {
  const m = e.message;
  if (/key values mismatch/i.test(m))
    return new TlsConfigError(
      `SSL_PRIVATE_KEY ${files.privateKey} does not belong to the certificate in SSL_CERTIFICATE ${files.certificate}`,
    );
  if (/no cipher match/i.test(m)) return new TlsConfigError('TLS_CIPHERS selects no cipher OpenSSL knows');
  if (/bad decrypt|bad password|DECODER routines|PEM routines/i.test(m))
    return new TlsConfigError(
      hasPassphrase
        ? `SSL_PRIVATE_KEY ${files.privateKey} cannot be decrypted with the passphrase SSL_PRIVATE_KEY_PASSWORD_SCRIPT printed`
        : `SSL_PRIVATE_KEY ${files.privateKey} is not a usable PEM private key`,
    );
  return new TlsConfigError(`TLS settings rejected by OpenSSL: ${m.split('\n')[0]}`);
}

/**
 * Reads this node's TLS files as keytrustee.conf names them and builds (and so checks) the
 * context: the key matches the certificate, the passphrase opens the key, the cipher list selects
 * something. Nothing is applied here; the caller serves the result or keeps what it had.
 */
export async function loadServerTls(args: {
  confdir: string;
  settings: TlsSettings;
  /** CA of client certificates (the cluster identity certificate). */
  clientCaPem: string;
}): Promise<ServerTls> {
  const { confdir, settings } = args;
  const caFile = join(confdir, CA_CHAIN_FILE);
  const files: ServerTls['files'] = {
    certificate: confPath(confdir, settings.SSL_CERTIFICATE),
    privateKey: confPath(confdir, settings.SSL_PRIVATE_KEY),
    ...(existsSync(caFile) ? { ca: caFile } : {}),
  };
  const certText = readCertificates(files.certificate, 'SSL_CERTIFICATE');
  const caText = files.ca ? readCertificates(files.ca, 'the CA file') : undefined;
  if (caText !== undefined && servedChain(caText).length === 0)
    throw new TlsConfigError(`the CA file ${files.ca} holds no PEM certificate`);
  const chain = servedChain(certText, caText);
  if (servedChain(certText).length === 0)
    throw new TlsConfigError(`SSL_CERTIFICATE ${files.certificate} holds no PEM certificate`);
  const parsed = chain.map((pem, i) =>
    parseCertificate(
      pem,
      i === 0 ? `SSL_CERTIFICATE ${files.certificate}` : `the chain (${files.ca ?? files.certificate})`,
    ),
  );
  const key = readPrivateKey(files.privateKey);
  let passphrase: string | undefined;
  if (settings.SSL_PRIVATE_KEY_PASSWORD_SCRIPT)
    passphrase = await readKeyPassphrase(settings.SSL_PRIVATE_KEY_PASSWORD_SCRIPT, confdir);
  else if (isEncryptedKeyPem(key))
    throw new TlsConfigError(
      `SSL_PRIVATE_KEY ${files.privateKey} is encrypted: set SSL_PRIVATE_KEY_PASSWORD_SCRIPT to a command printing its passphrase`,
    );
  const ciphers = serverCipherList(settings.TLS_CIPHERS);
  const options: SecureContextOptions = {
    key,
    cert: chain.join(''),
    ...(passphrase !== undefined ? { passphrase } : {}),
    ca: args.clientCaPem,
    minVersion: settings.TLS_MIN_VERSION,
    ciphers,
    // The server's order decides: with an operator's TLS_CIPHERS the strongest listed wins.
    honorCipherOrder: true,
  };
  try {
    createSecureContext(options);
  } catch (e) {
    throw contextError(e as Error, files, passphrase !== undefined);
  }
  return {
    options,
    certificate: parsed[0],
    chain: parsed,
    files,
    minVersion: settings.TLS_MIN_VERSION,
    ciphers,
    isDefaultCiphers: settings.TLS_CIPHERS === undefined,
  };
}

/** Why the node certificate should not be served at `now` (expired, not yet valid), else undefined. */
export function certificateValidityProblem(cert: X509Certificate, now: Date): string | undefined {
  if (new Date(cert.validTo).getTime() <= now.getTime()) return `the certificate expired on ${cert.validTo}`;
  if (new Date(cert.validFrom).getTime() > now.getTime())
    return `the certificate is not valid before ${cert.validFrom}`;
  return undefined;
}

/** notAfter of a certificate in Unix seconds. */
export function certificateExpirySeconds(cert: X509Certificate): number {
  return Math.floor(new Date(cert.validTo).getTime() / 1000);
}

/**
 * Why clients may fail to build a path from the served chain (a warning, never a refusal: the
 * operator may rely on clients that hold the intermediate themselves).
 */
export function chainProblem(chain: X509Certificate[]): string | undefined {
  const [leaf, next] = chain;
  if (!next) {
    if (leaf.checkIssued(leaf)) return undefined;
    return `the certificate is issued by "${leaf.issuer.replace(/\n/g, ', ')}" but no chain is served: put that CA certificate into ${CA_CHAIN_FILE}`;
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i].checkIssued(chain[i + 1]))
      return `certificate ${i + 2} of the served chain did not issue certificate ${i + 1} (check the order and ${CA_CHAIN_FILE})`;
  }
  return undefined;
}
