import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod/v3';
import { readJsonConfFile } from '../config';

/** The Key HSM service's defaults: its directory, and the seed's port. */
export const KEYHSM_DEFAULT_CONFDIR = '/var/lib/keyhsm';
export const KEYHSM_DEFAULT_PORT = 9090;
/** Environment overrides (tests run on a free port). */
export const KEYHSM_ENV = { CONFDIR: 'TRUSTEE_KEYHSM_CONFDIR', PORT: 'TRUSTEE_KEYHSM_PORT' } as const;

export function keyHsmPaths(confdir: string) {
  return {
    conf: join(confdir, 'keyhsm.conf'),
    cert: join(confdir, 'ssl', 'keyhsm-cert.pem'),
    key: join(confdir, 'ssl', 'keyhsm-key.pem'),
    trustedDir: join(confdir, 'trusted'),
  };
}

/** keyhsm.conf (JSON), written by `keyhsm setup`. */
export const keyHsmConfSchema = z.object({
  /** Host name in the service's self-signed certificate. */
  HOST: z.string().min(1),
  /** HTTPS port; default 9090 (the seed's). TRUSTEE_KEYHSM_PORT or --port override it. */
  PORT: z.number().int().min(0).max(65535).default(KEYHSM_DEFAULT_PORT),
  /** Address to bind; default 127.0.0.1 (the seed installs Key HSM on the Key Trustee Server host). */
  LISTEN_ADDRESS: z.string().default('127.0.0.1'),
  PKCS11_MODULE: z.string().startsWith('/', 'an absolute path'),
  TOKEN_LABEL: z.string().min(1).max(32),
  /** 0600 file with the token user PIN. */
  PIN_FILE: z.string().startsWith('/', 'an absolute path'),
});
export type KeyHsmConf = z.infer<typeof keyHsmConfSchema>;

export class KeyHsmConfigError extends Error {
  override name = 'KeyHsmConfigError';
}

export function loadKeyHsmConf(confdir: string): KeyHsmConf {
  const file = keyHsmPaths(confdir).conf;
  const raw = readJsonConfFile(file, 'run `keyhsm setup` first', (m) => new KeyHsmConfigError(m));
  const parsed = keyHsmConfSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeyHsmConfigError(`invalid ${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** SHA-256 fingerprints of the client certificates `keyhsm trust` added (re-read per connection). */
export function readTrustedFingerprints(confdir: string): Set<string> {
  const dir = keyHsmPaths(confdir).trustedDir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const out = new Set<string>();
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.pem')) continue;
    try {
      out.add(new X509Certificate(readFileSync(join(dir, f))).fingerprint256);
    } catch {
      // not a certificate: ignored (keyhsm trust only writes valid ones)
    }
  }
  return out;
}
