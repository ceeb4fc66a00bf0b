import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePublicFile, writeSecretFile } from '../confdir/secret-files';
import { createIdentityCaCert, generateRsaKeyPemSync } from '../crypto/certificates';
import { readPinFile } from '../keys/pin-file';
import { openPkcs11Kek } from '../keys/pkcs11-kek';
import { keyHsmPaths, type KeyHsmConf } from './keyhsm-config';

/**
 * `keyhsm setup`: checks the token and PIN (a missing token or a wrong PIN changes nothing),
 * writes keyhsm.conf and, once, the service's key and self-signed certificate (the certificate
 * `ktadmin keyhsm --trust` pins).
 */
export function setupKeyHsm(confdir: string, conf: KeyHsmConf): { certCreated: boolean } {
  openPkcs11Kek({
    module: conf.PKCS11_MODULE,
    tokenLabel: conf.TOKEN_LABEL,
    pin: readPinFile(conf.PIN_FILE),
  }).close();
  const p = keyHsmPaths(confdir);
  mkdirSync(join(confdir, 'ssl'), { recursive: true, mode: 0o700 });
  mkdirSync(p.trustedDir, { recursive: true, mode: 0o700 });
  writePublicFile(p.conf, JSON.stringify(conf, null, 2) + '\n');
  if (existsSync(p.cert) && existsSync(p.key)) return { certCreated: false };
  const key = generateRsaKeyPemSync(2048);
  writeSecretFile(p.key, key);
  writePublicFile(p.cert, createIdentityCaCert(key, conf.HOST));
  return { certCreated: true };
}

/** `keyhsm trust CERT`: the Key Trustee Server certificate may connect from now on. */
export function trustClientCert(confdir: string, certFile: string): { fingerprint: string; subject: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(certFile));
  } catch (e) {
    throw new Error(`${certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  const dir = keyHsmPaths(confdir).trustedDir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writePublicFile(join(dir, `${cert.fingerprint256.replace(/:/g, '').toLowerCase()}.pem`), cert.toString());
  return { fingerprint: cert.fingerprint256, subject: cert.subject.replace(/\n/g, ', ') };
}
