import { loadKeytrusteeConf, type KeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { readSecretFile } from '../confdir/secret-files';
import { keyFingerprint } from '../crypto/fingerprint';
import type { Db } from '../db/pool';
import type { WritePathOptions } from '../db/write-path';
import { openKeyHierarchy, type OpenedKeys } from '../keys/open-key-hierarchy';
import type { KeyHierarchy } from '../keys/key-hierarchy';
import type { HsmKeyHierarchy } from '../keys/hsm-key-hierarchy';
import { connectNodeDb } from '../db/node-db';
import { NodeState } from './node-state';
import { deriveAuditKey } from '../audit/audit-mac';
import { nodePublicUrl } from '../mail/mail-messages';

export interface NodeServices {
  confdir: string;
  conf: KeytrusteeConf;
  db: Db;
  /**
   * The key hierarchy, opened on first use: an admin command that needs no key (e.g.
   * `keytrustee-orgtool disable-client`) works while the HSM is unreachable.
   */
  keys: KeyHierarchy;
  /** The HSM hierarchy when an HSM holds the KEK (opens it now), else undefined. */
  openHsm(): Promise<HsmKeyHierarchy | undefined>;
  write: WritePathOptions;
  /** `https://HOST:PORT` of this node (links in contact mail). */
  publicUrl: string;
  /** The node's state as the server decides it (polled once at open; `poll()` refreshes it). */
  state: NodeState;
  close(): Promise<void>;
}

/**
 * Database services for admin tools running next to a node: the same write path and write
 * gate as the server (org changes are writes: refused when the passive is down; only
 * `disable-client` may proceed without it, see orgs/revoke-client.ts).
 */
export async function openNodeServices(confdir: string): Promise<NodeServices> {
  const conf = loadKeytrusteeConf(confdir);
  const p = confPaths(confdir);
  const db = connectNodeDb(conf, confdir, { max: 2 });
  let opening: Promise<OpenedKeys> | undefined;
  let opened: OpenedKeys | undefined;
  const openKeys = () =>
    (opening ??= openKeyHierarchy(confdir, conf, { pool: db.pool }).then((o) => (opened = o)));
  const keys: KeyHierarchy = {
    get currentKeyId(): string {
      return opened?.keys.currentKeyId ?? 'not opened yet';
    },
    seal: async (plaintext, aad) => (await openKeys()).keys.seal(plaintext, aad),
    open: async (keyId, blob, aad) => (await openKeys()).keys.open(keyId, blob, aad),
    digest: async (data) => (await openKeys()).keys.digest(data),
  };
  const state = new NodeState({
    pool: db.control,
    identityFingerprint: keyFingerprint(readSecretFile(p.identityKey).toString('utf8')),
    requireSyncStandby: conf.PEERS.length > 0,
    peerUrl: conf.PEERS[0],
    confdir,
  });
  await state.probePeerOnce();
  await state.poll();
  return {
    confdir,
    conf,
    db,
    keys,
    openHsm: async () => (await openKeys()).hsm,
    publicUrl: nodePublicUrl(conf.HOST, conf.PORT),
    write: {
      db,
      commitWaitMs: conf.COMMIT_WAIT_MS,
      requireSyncStandby: conf.PEERS.length > 0,
      gate: () => state.admitWrite(),
      auditKey: deriveAuditKey(p.masterKey),
    },
    state,
    async close() {
      await opening?.catch(() => undefined);
      opened?.hsm?.close();
      await db.close();
    },
  };
}
