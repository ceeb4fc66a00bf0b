import { existsSync } from 'node:fs';
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

/** The HSM settings of keytrustee.conf, when an HSM is configured. */
export interface HsmSettings {
  module: string;
  tokenLabel: string;
  pinFile: string;
}

export class HsmConfigError extends Error {
  override name = 'HsmConfigError';
}

export function hsmSettings(confdir: string, conf: KeytrusteeConf): HsmSettings | undefined {
  const set = [conf.HSM_PKCS11_MODULE, conf.HSM_TOKEN_LABEL, conf.HSM_PIN_FILE].filter(
    (v) => v !== undefined,
  );
  if (set.length === 0) return undefined;
  if (set.length !== 3)
    throw new HsmConfigError(
      'keytrustee.conf sets only some of HSM_PKCS11_MODULE, HSM_TOKEN_LABEL, HSM_PIN_FILE: set all three (ktadmin keyhsm does) or none',
    );
  return {
    module: conf.HSM_PKCS11_MODULE!,
    tokenLabel: conf.HSM_TOKEN_LABEL!,
    pinFile: resolveConfPath(confdir, conf.HSM_PIN_FILE!),
  };
}

/** Opens the token of `s` (PIN from its 0600 file): a missing token or a wrong PIN throws, saying which. */
export function openKekBackend(s: HsmSettings, observer?: HsmObserver): KekBackend {
  return openPkcs11Kek({ module: s.module, tokenLabel: s.tokenLabel, pin: readPinFile(s.pinFile), observer });
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
    /** Keep going when the database does not answer yet (the server's maintenance loop loads the keys later). */
    tolerateDatabaseDown?: boolean;
  },
): Promise<OpenedKeys> {
  const masterKeyFile = confPaths(confdir).masterKey;
  const settings = hsmSettings(confdir, conf);
  if (!settings) return { keys: createFileMasterKey(masterKeyFile) };
  const kek = openKekBackend(settings, opts.observer);
  const hsm = createHsmKeyHierarchy({
    kek,
    pool: opts.pool,
    fileKey: existsSync(masterKeyFile) ? readFileMasterKey(masterKeyFile) : undefined,
    cacheSize: conf.HSM_DATA_KEY_CACHE_SIZE,
    maxDataKeyAgeMs: conf.HSM_DATA_KEY_MAX_AGE_SECONDS * SECOND,
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
