import {
  createPublicKey,
  generateKeyPair,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
  X509Certificate,
} from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import type Forge from 'node-forge';
import { lazyModule } from '../lazy-module';

/** Loaded on first use (860 KB): only issuing and reading certificates needs it. */
const forge = lazyModule(() => require('node-forge') as typeof Forge);

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * RSA generation uses Node's native crypto (≈1 s for 4096 bits); node-forge's pure-JS path
 * can take half a minute (NOTES.md). node-forge is used only for X.509 structures.
 */
export async function generateRsaKeyPem(bits: number): Promise<string> {
  const { privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return privateKey;
}

/** The same, synchronously (≈0.1 s for 2048 bits): for callers that cannot wait, e.g. issuing at start. */
export function generateRsaKeyPemSync(bits: number): string {
  return generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  }).privateKey;
}

function forgeKeys(privateKeyPem: string) {
  const publicPem = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }) as string;
  return { privateKeyPem, publicKey: forge.pki.publicKeyFromPem(publicPem) };
}

/**
 * Signs a forge certificate with Node's native RSA (sha256WithRSAEncryption, PKCS#1 v1.5), as
 * forge's own `cert.sign` would, but without its pure-JS big-number code: an RSA 4096 signature
 * in JS blocks the event loop for hundreds of milliseconds per registration.
 */
function signCertificate(cert: Forge.pki.Certificate, privateKeyPem: string): void {
  cert.signature = sign('sha256', tbsDer(cert), privateKeyPem).toString('binary');
}

/** Sets sha256WithRSAEncryption as the certificate's algorithm and returns its to-be-signed DER. */
function tbsDer(cert: Forge.pki.Certificate): Buffer {
  const oid = forge.pki.oids.sha256WithRSAEncryption;
  cert.siginfo.algorithmOid = oid;
  cert.signatureOid = oid;
  // getTBSCertificate exists in node-forge but is missing from its type definitions.
  const tbs = (
    forge.pki as unknown as { getTBSCertificate(c: Forge.pki.Certificate): Forge.asn1.Asn1 }
  ).getTBSCertificate(cert);
  (cert as unknown as { tbsCertificate: Forge.asn1.Asn1 }).tbsCertificate = tbs;
  return Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
}

/**
 * Makes the sha256WithRSAEncryption (PKCS#1 v1.5) signature of a to-be-signed DER with the
 * cluster CA key. The server passes its worker pool (sign-pool.ts), so the RSA 4096 private-key
 * operation runs off the event loop.
 */
export type TbsSigner = (tbsDer: Buffer) => Promise<Buffer>;

/** Positive random serial number (RFC 5280: ≤ 20 octets, positive). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

function validity(cert: Forge.pki.Certificate, years: number): void {
  const now = new Date();
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60 * 1000); // tolerate clock skew between nodes
  cert.validity.notAfter = new Date(now);
  cert.validity.notAfter.setFullYear(now.getFullYear() + years);
}

/** Self-signed CA certificate for the cluster identity key (signs client certificates). */
export function createIdentityCaCert(identityKeyPem: string, commonName: string): string {
  return createCaCert(identityKeyPem, [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'Trustee cluster identity' },
  ]);
}

/**
 * Self-signed CA of the PostgreSQL replication link (the confdir's `trustee-replication-ca.*`):
 * it issues each node's PostgreSQL server certificate, and each node verifies its peer against
 * it (`sslmode=verify-full`). Separate from the identity CA, whose key signs client certificates.
 */
export function createReplicationCaCert(caKeyPem: string, commonName: string): string {
  return createCaCert(caKeyPem, [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'Trustee replication CA' },
    // Unique per CA: OpenSSL picks the issuer by name, so another cluster's CA with the same
    // subject would be tried (and fail as "invalid padding") instead of being reported unknown.
    { name: 'organizationalUnitName', value: `CA ${randomBytes(6).toString('hex')}` },
  ]);
}

function createCaCert(keyPem: string, attrs: Forge.pki.CertificateField[]): string {
  const { privateKeyPem, publicKey } = forgeKeys(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerial();
  validity(cert, 20);
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signCertificate(cert, privateKeyPem);
  return forge.pki.certificateToPem(cert);
}

/** subjectAltName entries: IP addresses as iPAddress, everything else as dNSName. */
function altNamesFor(names: Iterable<string>): { type: number; value?: string; ip?: string }[] {
  return [...new Set(names)].map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
}

/**
 * A TLS server certificate for `keyPem`, issued by the CA (`caCertPem`/`caKeyPem`) for `names`
 * (host names and IP addresses, as SANs; the first is also the common name). Valid 10 years.
 */
export function issueServerCert(args: {
  keyPem: string;
  names: string[];
  caCertPem: string;
  caKeyPem: string;
  organizationalUnit?: string;
}): string {
  if (args.names.length === 0) throw new Error('a server certificate needs at least one name');
  const ca = forge.pki.certificateFromPem(args.caCertPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forgeKeys(args.keyPem).publicKey;
  cert.serialNumber = randomSerial();
  validity(cert, 10);
  cert.setSubject([
    { name: 'commonName', value: args.names[0] },
    ...(args.organizationalUnit ? [{ name: 'organizationalUnitName', value: args.organizationalUnit }] : []),
  ]);
  cert.setIssuer(ca.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: altNamesFor(args.names) },
  ]);
  signCertificate(cert, args.caKeyPem);
  return forge.pki.certificateToPem(cert);
}

/**
 * True when `certPem` was signed by `caCertPem`, names every one of `names` (as a verify-full
 * client checks them) and stays valid for at least `minValidMs` more.
 */
export function isServerCertUsable(
  certPem: string,
  caCertPem: string,
  names: string[],
  minValidMs: number,
  now: number = Date.now(),
): boolean {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    ca = new X509Certificate(caCertPem);
  } catch {
    return false;
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
  if (Date.parse(cert.validTo) - now < minValidMs) return false;
  return names.every((n) =>
    isIP(n) ? cert.checkIP(n) !== undefined : cert.checkHost(n, { subject: 'never' }) !== undefined,
  );
}

/** Self-signed per-node TLS server certificate for `host` (DNS or IP SAN; localhost names added). */
export function createNodeTlsCert(nodeKeyPem: string, host: string): string {
  const { privateKeyPem, publicKey } = forgeKeys(nodeKeyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = randomSerial();
  validity(cert, 10);
  // A unique subject: both nodes usually share a host name locally, and a client trusting both
  // self-signed certificates must not confuse one with the other during issuer lookup.
  const attrs = [
    { name: 'commonName', value: host },
    { name: 'organizationalUnitName', value: `Trustee node ${randomBytes(6).toString('hex')}` },
  ];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  const altNames: { type: number; value?: string; ip?: string }[] = [];
  const names = new Set([host, 'localhost', '127.0.0.1', '::1']);
  for (const n of names) {
    if (/^[\d.]+$/.test(n) || n.includes(':')) altNames.push({ type: 7, ip: n });
    else altNames.push({ type: 2, value: n });
  }
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'subjectKeyIdentifier' },
  ]);
  signCertificate(cert, privateKeyPem);
  return forge.pki.certificateToPem(cert);
}

export interface ParsedCsr {
  publicKeyPem: string;
}

export class CsrError extends Error {
  override name = 'CsrError';
}

/** Signature algorithms accepted on a CSR, by OID, with Node's digest name. */
const CSR_SIGNATURE_DIGESTS: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption (literal OIDs: forge loads on first use)
  '1.2.840.113549.1.1.12': 'sha384', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13': 'sha512', // sha512WithRSAEncryption
};
const MIN_CSR_BITS = 2048;
const MAX_CSR_BITS = 8192;

/**
 * Parses and verifies a PEM PKCS#10 request (its self-signature must match its key). RSA
 * 2048–8192 bits with exponent 65537 only, checked *before* the signature: a huge modulus or
 * exponent would make verification an easy way to stall the server. The signature is verified
 * with Node's native crypto.
 */
export function parseCsr(csrPem: string): ParsedCsr {
  let csr: Forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch {
    throw new CsrError('csr is not a valid PEM PKCS#10 certificate request (RSA keys only)');
  }
  const key = csr.publicKey as Forge.pki.rsa.PublicKey | null;
  if (!key?.n || !key.e) throw new CsrError('csr has no RSA public key');
  const bits = key.n.bitLength();
  if (bits < MIN_CSR_BITS || bits > MAX_CSR_BITS) {
    throw new CsrError(
      `csr key is RSA ${bits} bits; between ${MIN_CSR_BITS} and ${MAX_CSR_BITS} bits are required`,
    );
  }
  if (key.e.toString(10) !== '65537') throw new CsrError('csr key must use the public exponent 65537');
  const digest =
    CSR_SIGNATURE_DIGESTS[(csr as unknown as { siginfo: { algorithmOid: string } }).siginfo.algorithmOid];
  if (!digest) throw new CsrError('csr must be signed with sha256, sha384 or sha512 with RSA');
  const publicKeyPem = forge.pki.publicKeyToPem(key);
  // getCertificationRequestInfo exists in node-forge but is missing from its type definitions.
  const info = (
    forge.pki as unknown as {
      getCertificationRequestInfo(c: Forge.pki.CertificateSigningRequest): Forge.asn1.Asn1;
    }
  ).getCertificationRequestInfo(csr);
  const infoDer = Buffer.from(forge.asn1.toDer(info).getBytes(), 'binary');
  const signature = Buffer.from(csr.signature as string, 'binary');
  if (!verify(digest, infoDer, publicKeyPem, signature))
    throw new CsrError('csr signature does not match its public key');
  return { publicKeyPem };
}

/** The CA certificate's subject, parsed once per PEM (forge parsing costs ~1 ms per call). */
const caSubjects = new Map<string, Forge.pki.CertificateField[]>();
function caSubject(caCertPem: string): Forge.pki.CertificateField[] {
  let subject = caSubjects.get(caCertPem);
  if (!subject) {
    subject = forge.pki.certificateFromPem(caCertPem).subject.attributes;
    if (caSubjects.size >= 4) caSubjects.clear();
    caSubjects.set(caCertPem, subject);
  }
  return subject;
}

/**
 * Issues a client certificate (clientAuth) for `publicKeyPem`, signed by the cluster CA through
 * `signTbs` (the worker pool). `serialHex` (positive, ≤ 16 bytes) replaces the random serial.
 */
export async function issueClientCert(
  args: {
    publicKeyPem: string;
    fingerprint: string;
    org: string;
    caCertPem: string;
    serialHex?: string;
  },
  signTbs: TbsSigner,
): Promise<string> {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(args.publicKeyPem);
  cert.serialNumber = args.serialHex ?? randomSerial();
  validity(cert, 10);
  cert.setSubject([
    { name: 'commonName', value: args.fingerprint },
    { name: 'organizationName', value: args.org },
  ]);
  cert.setIssuer(caSubject(args.caCertPem));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  const tbs = tbsDer(cert);
  cert.signature = (await signTbs(tbs)).toString('binary');
  return forge.pki.certificateToPem(cert);
}

/** Public key of a certificate (DER SPKI export used for fingerprints). */
export function certificatePublicKey(certDerOrPem: Buffer | string) {
  return new X509Certificate(certDerOrPem).publicKey;
}
