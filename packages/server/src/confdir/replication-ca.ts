import { existsSync, readFileSync } from 'node:fs';
import { createReplicationCaCert, generateRsaKeyPemSync } from '../crypto/certificates';
import { confPaths } from './paths';
import { readSecretFile, writePublicFile, writeSecretFile } from './secret-files';

/** RSA size of the replication CA key: made once per cluster, at `init` (≈0.3–1.3 s). */
const REPLICATION_CA_BITS = 3072;

export interface ReplicationCa {
  certPem: string;
  keyPem: string;
}

/** Raised when a node needs the cluster's replication CA and its confdir has none (or half of it). */
export class ReplicationCaMissingError extends Error {
  override name = 'ReplicationCaMissingError';
}

/** True when the confdir holds both files of the replication CA. */
export function hasReplicationCa(confdir: string): boolean {
  const p = confPaths(confdir);
  return existsSync(p.replicationCaKey) && existsSync(p.replicationCaCert);
}

/**
 * Makes the cluster's replication CA in the confdir (key 0600, certificate 0644). Only the
 * node that defines the cluster does this (`init`, or `db --bootstrap` of the active on a
 * confdir made before the CA existed); the passive gets both files with the confdir copy.
 * Synchronous: it runs once per cluster, in a CLI, and callers such as `nodeInstance` are.
 * `keyPem` (tests only, via initConfdir's `keys`) replaces the generated key.
 */
export function createReplicationCa(confdir: string, host: string, keyPem?: string): string[] {
  const p = confPaths(confdir);
  const key = keyPem ?? generateRsaKeyPemSync(REPLICATION_CA_BITS);
  writeSecretFile(p.replicationCaKey, key);
  writePublicFile(p.replicationCaCert, createReplicationCaCert(key, `Trustee replication CA ${host}`));
  return [p.replicationCaKey, p.replicationCaCert];
}

/**
 * The replication CA of the confdir, or a ReplicationCaMissingError saying how to get it: the
 * passive must hold the active's CA, so it is never made here.
 */
export function readReplicationCa(confdir: string): ReplicationCa {
  const p = confPaths(confdir);
  if (!hasReplicationCa(confdir)) {
    throw new ReplicationCaMissingError(
      `${confdir} has no replication CA (${p.replicationCaCert} and ${p.replicationCaKey}), which ` +
        'authenticates the PostgreSQL replication link. `ktadmin init` makes it on the active (and `ktadmin db --bootstrap` ' +
        'on the active for a confdir made before); the passive gets it with the confdir copy: copy both files from the ' +
        "active's confdir (rsync --exclude .ssl, or ktadmin init --from-peer-confdir), then run this command again",
    );
  }
  return {
    keyPem: readSecretFile(p.replicationCaKey).toString('utf8'),
    certPem: readFileSync(p.replicationCaCert, 'utf8'),
  };
}
