import { existsSync } from 'node:fs';
import { runMigrations } from '@trustee/replicator';
import { loadKeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { updateKeytrusteeConf } from '../confdir/update-conf';
import { connectNodeOwner } from '../db/node-db';
import { hasHsmTables, insertDataKey, insertKek, selectDigestKey, selectKeks } from '../db/sql/data-keys';
import { runWrite } from '../db/write-path';
import { openNodeServices, type NodeServices } from '../node/node-services';
import { MIGRATIONS_DIR } from '../package-info';
import { randomBytes } from 'node:crypto';
import { dataKeyAad, DATA_KEY_BYTES, newDataKeyId } from './data-keys';
import { readFileMasterKey } from './file-master-key';
import type { KekBackend } from './kek-backend';
import { openKekBackend, type HsmSettings } from './open-key-hierarchy';

/** Label of the first KEK on the token (rotation makes trustee-kek-2, …). */
export const FIRST_KEK_LABEL = 'trustee-kek-1';

export class EnableHsmError extends Error {
  override name = 'EnableHsmError';
}

export interface EnableHsmResult {
  role: 'active' | 'passive';
  kekId: string;
  /** True when this run created the KEK and the first data keys (the active's first run). */
  created: boolean;
}

/** Proves the token holds the cluster's KEK: the digest key recorded in the database unwraps. */
async function verifyKek(kek: KekBackend, svc: NodeServices): Promise<string> {
  if (!(await hasHsmTables(svc.db.pool)))
    throw new EnableHsmError('the database has no HSM tables yet: run `ktadmin keyhsm` on the active first');
  const digest = await selectDigestKey(svc.db.pool);
  if (!digest)
    throw new EnableHsmError(
      'the database holds no HSM data keys yet: run `ktadmin keyhsm` on the active first',
    );
  if (!(await kek.hasKek(digest.kek_id))) {
    throw new EnableHsmError(
      `${kek.description} does not hold the KEK "${digest.kek_id}" the cluster's data keys are wrapped with: point this node at the same token (or a token holding a copy of that KEK)`,
    );
  }
  await kek.unwrap(digest.kek_id, digest.wrapped, dataKeyAad(digest.id, 'digest'));
  return digest.kek_id;
}

/** Applies pending schema migrations (0005 adds the HSM tables) on the active, like keytrusteed's start. */
async function migrateSchema(svc: NodeServices): Promise<void> {
  const client = await connectNodeOwner(svc.conf, svc.confdir);
  try {
    await client.query('set synchronous_commit = local');
    await runMigrations(client, MIGRATIONS_DIR);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * `ktadmin keyhsm --pkcs11-module LIB --token-label LABEL --pin-file FILE` on one node.
 * On the active, the first run creates the KEK on the token and, through the write path (so on
 * both nodes), the KEK record, the request-digest key (the master key file's, so idempotent
 * retries keep matching) and the first deposit data key, all wrapped by the KEK. On the passive
 * (or any later run) it proves the token holds that KEK. Then keytrustee.conf names the token;
 * keytrusteed uses it after a restart.
 */
export async function enableHsm(opts: {
  confdir: string;
  settings: HsmSettings;
  onStep?: (m: string) => void;
}): Promise<EnableHsmResult> {
  const step = opts.onStep ?? (() => undefined);
  loadKeytrusteeConf(opts.confdir);
  // Token and PIN first: a missing token or a wrong PIN changes nothing.
  const kek = await openKekBackend(opts.settings);
  try {
    step(`token ready: ${kek.description}`);
    const svc = await openNodeServices(opts.confdir);
    try {
      const role = svc.state.decide().role;
      if (role !== 'active' && role !== 'passive')
        throw new EnableHsmError(`this node is ${role}; run this on a running active or passive node`);
      let result: EnableHsmResult;
      if (role === 'active') {
        await migrateSchema(svc);
        const keks = await selectKeks(svc.db.pool);
        if (keks.length === 0) {
          await kek.ensureKek(FIRST_KEK_LABEL);
          const masterKeyFile = confPaths(opts.confdir).masterKey;
          const digestValue = existsSync(masterKeyFile)
            ? readFileMasterKey(masterKeyFile).digestKey
            : randomBytes(DATA_KEY_BYTES);
          const digestId = newDataKeyId();
          const depositId = newDataKeyId();
          const rows = [
            {
              id: digestId,
              purpose: 'digest' as const,
              wrapped: await kek.wrap(FIRST_KEK_LABEL, digestValue, dataKeyAad(digestId, 'digest')),
            },
            {
              id: depositId,
              purpose: 'deposit' as const,
              wrapped: await kek.wrap(
                FIRST_KEK_LABEL,
                randomBytes(DATA_KEY_BYTES),
                dataKeyAad(depositId, 'deposit'),
              ),
            },
          ];
          // One write: the KEK record and its first data keys exist on both nodes, or none do.
          await runWrite(svc.write, async (c) => {
            await insertKek(c, FIRST_KEK_LABEL, 'active');
            for (const r of rows) await insertDataKey(c, { ...r, kekId: FIRST_KEK_LABEL });
          });
          step(`created the KEK "${FIRST_KEK_LABEL}" on the token and the first data keys (on both nodes)`);
          result = { role, kekId: FIRST_KEK_LABEL, created: true };
        } else {
          result = { role, kekId: await verifyKek(kek, svc), created: false };
          step(`the token holds the cluster's KEK "${result.kekId}"`);
        }
      } else {
        result = { role, kekId: await verifyKek(kek, svc), created: false };
        step(`the token holds the cluster's KEK "${result.kekId}"`);
      }
      const s = opts.settings;
      if (s.kind === 'pkcs11') {
        updateKeytrusteeConf(opts.confdir, {
          HSM_PKCS11_MODULE: s.module,
          HSM_TOKEN_LABEL: s.tokenLabel,
          HSM_PIN_FILE: s.pinFile,
          HSM_SERVER: undefined,
          HSM_CLIENT_CERTFILE: undefined,
          HSM_CLIENT_KEYFILE: undefined,
          HSM_CLIENT_KEY_PASSPHRASE_FILE: undefined,
        });
        step('keytrustee.conf now names the token (HSM_PKCS11_MODULE, HSM_TOKEN_LABEL, HSM_PIN_FILE)');
      } else {
        updateKeytrusteeConf(opts.confdir, {
          HSM_SERVER: s.server,
          HSM_CLIENT_CERTFILE: s.clientCertFile,
          HSM_CLIENT_KEYFILE: s.clientKeyFile,
          // The passphrase file ktadmin keeps (--passphrase); it may still carry its pending name here.
          HSM_CLIENT_KEY_PASSPHRASE_FILE: s.passphraseFile
            ? confPaths(opts.confdir).keyHsmPassphrase
            : undefined,
          HSM_PKCS11_MODULE: undefined,
          HSM_TOKEN_LABEL: undefined,
          HSM_PIN_FILE: undefined,
        });
        step(
          'keytrustee.conf now names the Key HSM service (HSM_SERVER, HSM_CLIENT_CERTFILE, HSM_CLIENT_KEYFILE)',
        );
      }
      return result;
    } finally {
      await svc.close();
    }
  } finally {
    kek.close();
  }
}
