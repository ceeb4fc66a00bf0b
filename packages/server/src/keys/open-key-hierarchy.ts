import { existsSync, readFileSync } from 'node:fs';
import { readSecretFile } from '../confdir/secret-files';
import { checkKeyHsm, openKeyHsmKek } from './keyhsm-kek';
import type { Pool } from 'pg';
import { resolveConfPath, type KeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { SECOND } from '../config';
import { createFileMasterKey, readFileMasterKey } from './file-master-key';
import { createHsmKeyHierarchy, DATA_KEY_LOOKUP, type HsmKeyHierarchy } from './hsm-key-hierarchy';
import type { HsmObserver, KekBackend } from './kek-backend';
import { HsmUnavailableError, type KeyHierarchy } from './key-hierarchy';
import { readPinFile } from './pin-file';
import { openPkcs11Kek } from './pkcs11-kek';

/** The HSM settings of keytrustee.conf, when an HSM is configured: a token, or the Key HSM service. */
export type HsmSettings =
  | { kind: 'pkcs11'; module: string; tokenLabel: string; pinFile: string }
  | {
      kind: 'keyhsm';
      server: string;
      clientCertFile: string;
      clientKeyFile: string;
      passphraseFile?: string;
      /** The pinned service certificate (.ssl/ssl-cert-keyhsm.pem). */
      serverCertFile: string;
    };

export class HsmConfigError extends Error {
  override name = 'HsmConfigError';
}

export function hsmSettings(confdir: string, conf: KeytrusteeConf): HsmSettings | undefined {
  const set = [conf.HSM_PKCS11_MODULE, conf.HSM_TOKEN_LABEL, conf.HSM_PIN_FILE].filter(
    (v) => v !== undefined,
  );
  if (conf.HSM_SERVER !== undefined) {
    if (set.length)
      throw new HsmConfigError('keytrustee.conf sets both HSM_SERVER and HSM_PKCS11_*: keep one of them');
    if (!conf.HSM_CLIENT_CERTFILE || !conf.HSM_CLIENT_KEYFILE)
      throw new HsmConfigError(
        'keytrustee.conf sets HSM_SERVER without HSM_CLIENT_CERTFILE and HSM_CLIENT_KEYFILE',
      );
    return {
      kind: 'keyhsm',
      server: conf.HSM_SERVER,
      clientCertFile: resolveConfPath(confdir, conf.HSM_CLIENT_CERTFILE),
      clientKeyFile: resolveConfPath(confdir, conf.HSM_CLIENT_KEYFILE),
      passphraseFile: conf.HSM_CLIENT_KEY_PASSPHRASE_FILE
        ? resolveConfPath(confdir, conf.HSM_CLIENT_KEY_PASSPHRASE_FILE)
        : undefined,
      serverCertFile: confPaths(confdir).keyHsmCert,
    };
  }
  if (set.length === 0) return undefined;
  if (set.length !== 3)
    throw new HsmConfigError(
      'keytrustee.conf sets only some of HSM_PKCS11_MODULE, HSM_TOKEN_LABEL, HSM_PIN_FILE: set all three (ktadmin keyhsm does) or none',
    );
  return {
    kind: 'pkcs11',
    module: conf.HSM_PKCS11_MODULE!,
    tokenLabel: conf.HSM_TOKEN_LABEL!,
    pinFile: resolveConfPath(confdir, conf.HSM_PIN_FILE!),
  };
}

function readFileOrFail(file: string, what: string, secret = false): string {
  try {
    return (secret ? readSecretFile(file) : readFileSync(file)).toString('utf8');
  } catch (e) {
    throw new HsmConfigError(
      `cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/**
 * Opens where the KEK lives: the token (PIN from its 0600 file) or the Key HSM service (which
 * must answer). A missing token, a wrong PIN or an unreachable service throws, saying which.
 */
export async function openKekBackend(s: HsmSettings, observer?: HsmObserver): Promise<KekBackend> {
  if (s.kind === 'pkcs11')
    return openPkcs11Kek({
      module: s.module,
      tokenLabel: s.tokenLabel,
      pin: readPinFile(s.pinFile),
      observer,
    });
  const kek = openKeyHsmKek({
    server: s.server,
    clientCert: readFileOrFail(s.clientCertFile, 'the client certificate'),
    clientKey: readFileOrFail(s.clientKeyFile, 'the client key', true),
    passphrase: s.passphraseFile
      ? readFileOrFail(s.passphraseFile, 'the passphrase file', true).replace(/\r?\n$/, '')
      : undefined,
    serverCert: readFileOrFail(
      s.serverCertFile,
      'the trusted Key HSM certificate (run ktadmin keyhsm --trust)',
    ),
    observer,
  });
  await checkKeyHsm(kek);
  return kek;
}

export interface OpenedKeys {
  keys: KeyHierarchy;
  /** Set when an HSM holds the KEK. */
  hsm?: HsmKeyHierarchy;
}

/**
 * The node's key hierarchy from keytrustee.conf: the master key file (default), or data keys under
 * a KEK on the configured PKCS#11 token. Both nodes must reach a token holding the same KEK.
 */
export async function openKeyHierarchy(
  confdir: string,
  conf: KeytrusteeConf,
  opts: {
    pool: Pool;
    observer?: HsmObserver;
    /** Data keys re-wrapped during a KEK rotation (metrics). */
    onRewrap?: (count: number) => void;
    /** Keep going when the database does not answer yet (the server's maintenance loop loads the keys later). */
    tolerateDatabaseDown?: boolean;
  },
): Promise<OpenedKeys> {
  const masterKeyFile = confPaths(confdir).masterKey;
  const settings = hsmSettings(confdir, conf);
  if (!settings) return { keys: createFileMasterKey(masterKeyFile) };
  const kek = await openKekBackend(settings, opts.observer);
  const hsm = createHsmKeyHierarchy({
    kek,
    pool: opts.pool,
    fileKey: existsSync(masterKeyFile) ? readFileMasterKey(masterKeyFile) : undefined,
    cacheSize: conf.HSM_DATA_KEY_CACHE_SIZE,
    maxDataKeyAgeMs: conf.HSM_DATA_KEY_MAX_AGE_SECONDS * SECOND,
    onRewrap: opts.onRewrap,
  });
  try {
    await hsm.init();
  } catch (e) {
    const dbDown = e instanceof HsmUnavailableError && e.reason === DATA_KEY_LOOKUP;
    if (!(dbDown && opts.tolerateDatabaseDown)) {
      hsm.close();
      throw e;
    }
  }
  return { keys: hsm, hsm };
}
