import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DATA_KEY_WRAP_ALG, type WrappedDataKey } from './data-key';
import { TrusteeError } from './errors';
import type { ClientState, EncryptionMode, TrusteeClientOptions } from './types';

/** Env var overriding the default config path of ktclient. */
export const CONFIG_PATH_ENV = 'TRUSTEE_CLIENT_CONFIG';
export const CONFIG_FORMAT_VERSION = 1;

/** Contents of `keytrustee.conf` written by `register` (JSON, mode 0600: it holds the private key). */
export interface ClientConfigFile {
  version: typeof CONFIG_FORMAT_VERSION;
  /** Base URLs of both nodes. */
  endpoints: string[];
  org: string;
  name?: string;
  /** This client's fingerprint, `<bits>R/<SHA-1 of SPKI DER, upper hex>`. */
  fingerprint: string;
  /** State at registration time; a pending client gets CLIENT_PENDING until an admin enables it. */
  state: ClientState;
  /** PEM client certificate signed by the cluster CA. */
  certificate: string;
  /** PEM (PKCS#8) client private key. */
  privateKey: string;
  /** PEM of the cluster CA (the cluster identity certificate). */
  caCertificate: string;
  /** `4096R/...` fingerprint of the cluster identity key, when it could be read at registration. */
  clusterFingerprint?: string;
  /** PEM(s) trusted for the nodes' TLS certificates; absent = system roots. */
  serverCa?: string;
  /** Registration was done with --skip-ssl-check; TLS is not verified. */
  skipSslCheck?: boolean;
  encryption: EncryptionMode;
  /** The client data key, wrapped with this client's public key. */
  dataKey: WrappedDataKey;
}

/** `$HOME/.keytrustee/keytrustee.conf`, or `$TRUSTEE_CLIENT_CONFIG` when set. */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[CONFIG_PATH_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return path.join(env.HOME ?? os.homedir(), '.keytrustee', 'keytrustee.conf');
}

/**
 * Refuses a file any group/other permission bit is set on: it holds the private key and the
 * wrapped data key (the original product's 0600 rule).
 */
export function assertPrivateMode(filePath: string, mode: number): void {
  if ((mode & 0o077) === 0) return;
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  throw new TrusteeError(
    'CONFIG_INSECURE',
    `config file ${filePath} has mode ${octal}; it holds a private key and must be accessible by its owner only: run chmod 600 ${filePath}`,
    { details: { path: filePath, mode: octal } },
  );
}

/** Reads and checks a config file. The mode is checked on the open descriptor (no stat/open race). */
export function readConfigFile(filePath: string): ClientConfigFile {
  let fd: number;
  try {
    fd = fs.openSync(filePath, 'r');
  } catch (e) {
    throw new TrusteeError('CONFIG_INVALID', `cannot open config file ${filePath}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    assertPrivateMode(filePath, fs.fstatSync(fd).mode);
    return parseConfig(filePath, fs.readFileSync(fd, 'utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

export function parseConfig(filePath: string, text: string): ClientConfigFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TrusteeError('CONFIG_INVALID', `config file ${filePath} is not valid JSON`, { cause: e });
  }
  const c = raw as Partial<ClientConfigFile>;
  const missing = (['endpoints', 'certificate', 'privateKey', 'dataKey'] as const).filter(
    (k) => c[k] === undefined,
  );
  if (typeof raw !== 'object' || raw === null || missing.length > 0) {
    throw new TrusteeError(
      'CONFIG_INVALID',
      `config file ${filePath} lacks ${missing.join(', ') || 'an object'}`,
    );
  }
  if (c.version !== CONFIG_FORMAT_VERSION) {
    throw new TrusteeError(
      'CONFIG_INVALID',
      `config file ${filePath} has format version ${String(c.version)}, expected ${CONFIG_FORMAT_VERSION}`,
    );
  }
  if (!Array.isArray(c.endpoints) || c.dataKey?.alg !== DATA_KEY_WRAP_ALG) {
    throw new TrusteeError('CONFIG_INVALID', `config file ${filePath} has malformed endpoints or dataKey`);
  }
  return c as ClientConfigFile;
}

/**
 * Writes the config atomically: a temp file created 0600 next to the target (exclusive create, so
 * never a wider mode even for an instant), then rename. The directory is created 0700.
 */
export function writeConfigFile(filePath: string, config: ClientConfigFile): void {
  fs.mkdirSync(path.dirname(filePath), { recursive: true, mode: 0o700 });
  writePrivateFile(filePath, `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * Replaces `filePath` atomically with a file readable by its owner only: the data goes to a temp
 * file created 0600 with exclusive create next to it, then is renamed over it. An existing file's
 * (possibly wider) mode is never reused, and a failed write leaves no temp file behind.
 */
export function writePrivateFile(filePath: string, data: string | Uint8Array): void {
  const dir = path.dirname(filePath);
  const tmp = path.join(
    dir,
    `.${path.basename(filePath)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, filePath);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Client options from a config file; `overrides` win (e.g. timeouts, hooks, logger). */
export function optionsFromConfig(
  config: ClientConfigFile,
  overrides: Partial<TrusteeClientOptions> = {},
): TrusteeClientOptions {
  // The cluster CA is trusted next to the operator-given server CA so that nodes whose TLS cert
  // the cluster CA signed also verify.
  const ca = config.serverCa === undefined ? undefined : [config.serverCa, config.caCertificate];
  return {
    endpoints: config.endpoints,
    ca,
    skipSslCheck: config.skipSslCheck,
    cert: config.certificate,
    key: config.privateKey,
    dataKey: config.dataKey,
    encryption: config.encryption,
    ...overrides,
  };
}
