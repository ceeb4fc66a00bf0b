import { HA_STATE_FILE } from '../node/ha-state-file';
import {
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  copyFileSync,
  chmodSync,
  statSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createIdentityCaCert, createNodeTlsCert, generateRsaKeyPem } from '../crypto/certificates';
import { keyFingerprint } from '../crypto/fingerprint';
import { writeNewMasterKey } from '../keys/file-master-key';
import { CONF_FILE, confPaths } from './paths';
import { writePublicFile, writeSecretFile } from './secret-files';
import { giveConfdirToServiceAccount } from './service-account';
import { randomBytes } from 'node:crypto';

export interface InitOptions {
  confdir: string;
  host?: string;
  port?: number;
  peers?: string[];
  force?: boolean;
  /** Copy the cluster files (everything but .ssl/) from the active's confdir, like the seed's rsync. */
  fromPeerConfdir?: string;
  /** Progress lines for the CLI. */
  onStep?: (message: string) => void;
}

export interface InitResult {
  fingerprint: string;
  confdir: string;
  host: string;
  created: string[];
}

export class InitError extends Error {
  override name = 'InitError';
}

/**
 * Creates a confdir: keytrustee.conf, the cluster identity key + CA certificate (RSA 4096),
 * the master key, the replication secret, and this node's TLS key + self-signed certificate.
 * A confdir already holding an identity is refused unless `force`; a copied confdir (the
 * passive after rsync --exclude .ssl) keeps its identity and only gets its own .ssl/.
 * Run as root, the tree (and the parents it created, e.g. /var/lib/keytrustee) then belongs to
 * the service account, so `sudo -u keytrustee ktbackup` can read it and write beside it.
 */
export async function initConfdir(opts: InitOptions): Promise<InitResult> {
  const step = opts.onStep ?? (() => undefined);
  const p = confPaths(opts.confdir);
  const host = opts.host ?? hostname();
  const firstCreated = mkdirSync(opts.confdir, { recursive: true, mode: 0o700 });
  chmodSync(opts.confdir, 0o700);
  const created: string[] = [];

  // This node's own settings survive a re-copy of the peer's confdir.
  const ownNodeSettings = existsSync(p.conf)
    ? pickNodeSettings(JSON.parse(readFileSync(p.conf, 'utf8')) as Record<string, unknown>)
    : {};
  if (opts.fromPeerConfdir) {
    copyClusterFiles(opts.fromPeerConfdir, opts.confdir, opts.force ?? false);
    step(`copied cluster identity from ${opts.fromPeerConfdir} (without .ssl/)`);
  }
  const hasIdentity = existsSync(p.identityKey);
  const copied = hasIdentity && !existsSync(p.sslDir) && existsSync(p.conf);
  if (hasIdentity && !copied && !opts.force && !opts.fromPeerConfdir) {
    throw new InitError(
      `${opts.confdir} is already initialized (identity key present); refusing to overwrite it. Use --force to replace every key (clients registered so far will no longer validate).`,
    );
  }

  if (!hasIdentity || (opts.force && !opts.fromPeerConfdir && !copied)) {
    step('generating cluster identity key (RSA 4096)…');
    const t0 = Date.now();
    const identityKey = await generateRsaKeyPem(4096);
    writeSecretFile(p.identityKey, identityKey);
    writePublicFile(p.identityCert, createIdentityCaCert(identityKey, `Trustee cluster ${host}`));
    writeNewMasterKey(p.masterKey);
    writeSecretFile(p.replicationSecret, randomBytes(24).toString('base64url') + '\n');
    created.push(p.identityKey, p.identityCert, p.masterKey, p.replicationSecret);
    step(`identity key ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }

  step(`generating TLS key and self-signed certificate for ${host}…`);
  mkdirSync(p.sslDir, { recursive: true, mode: 0o700 });
  const nodeKey = await generateRsaKeyPem(2048);
  writeSecretFile(p.sslKey, nodeKey);
  writePublicFile(p.sslCert, createNodeTlsCert(nodeKey, host));
  created.push(p.sslKey, p.sslCert);

  const existing = {
    ...(existsSync(p.conf) ? (JSON.parse(readFileSync(p.conf, 'utf8')) as Record<string, unknown>) : {}),
    ...(opts.fromPeerConfdir ? ownNodeSettings : {}),
  };
  const conf = {
    ...existing,
    HOST: host,
    PORT: opts.port ?? (existing.PORT as number | undefined) ?? 11371,
    SSL_CERTIFICATE: '.ssl/ssl-cert-keytrustee.pem',
    SSL_PRIVATE_KEY: '.ssl/ssl-cert-keytrustee-pk.pem',
    TLS_MIN_VERSION: (existing.TLS_MIN_VERSION as string | undefined) ?? 'TLSv1.2',
    DB_PORT: (existing.DB_PORT as number | undefined) ?? 11381,
    PEERS: opts.peers ?? (existing.PEERS as string[] | undefined) ?? [],
  };
  // A copied conf names the active's DB directory; the node sets its own at db --bootstrap.
  if (copied || opts.fromPeerConfdir) {
    for (const k of [
      'DB_ROOTDIR',
      'DB_LISTEN_ADDRESSES',
      'REPLICATION_STANDBY',
      'REPLICATION_MASTER',
      'REPLICATION_SLAVE',
    ]) {
      if (!(k in ownNodeSettings)) delete (conf as Record<string, unknown>)[k];
    }
  }
  writePublicFile(p.conf, JSON.stringify(conf, null, 2) + '\n');
  created.push(join(opts.confdir, CONF_FILE));
  const account = giveConfdirToServiceAccount(opts.confdir, firstCreated);
  if (account) step(`${opts.confdir} belongs to the service account ${account.user}`);
  return { fingerprint: keyFingerprint(readFileSync(p.identityKey)), confdir: opts.confdir, host, created };
}

/** keytrustee.conf keys that describe one node, not the cluster. */
const NODE_KEYS = [
  'HOST',
  'PORT',
  'LISTEN_ADDRESS',
  'PEERS',
  'DB_ROOTDIR',
  'DB_PORT',
  'DB_LISTEN_ADDRESSES',
  'REPLICATION_MASTER',
  'REPLICATION_STANDBY',
  'REPLICATION_SLAVE',
  'SSL_CERTIFICATE',
  'SSL_PRIVATE_KEY',
  'SSL_PRIVATE_KEY_PASSWORD_SCRIPT',
];

function pickNodeSettings(conf: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(conf).filter(([k]) => NODE_KEYS.includes(k)));
}

function copyClusterFiles(from: string, to: string, force: boolean): void {
  const src = confPaths(from);
  const dst = confPaths(to);
  if (!existsSync(src.identityKey))
    throw new InitError(`${from} holds no cluster identity key; is it an initialized confdir?`);
  if (existsSync(dst.identityKey) && !force) {
    throw new InitError(`${to} already holds an identity key; use --force to replace it with the peer's`);
  }
  for (const f of readdirSync(from)) {
    // .ssl/ is per node; ha-state.json (fence, single-node writes) is this node's own history.
    if (f === '.ssl' || f === HA_STATE_FILE || f.endsWith('.pid')) continue;
    const s = join(from, f);
    if (!statSync(s).isFile()) continue;
    // Replace, never write through: a link planted in the confdir must not redirect root's copy.
    rmSync(join(to, f), { force: true });
    copyFileSync(s, join(to, f), constants.COPYFILE_EXCL);
    chmodSync(join(to, f), statSync(s).mode & 0o777);
  }
}
