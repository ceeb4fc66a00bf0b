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
  renameSync,
  rmSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join, relative } from 'node:path';
import { readPostmasterPid } from '@trustee/replicator';
import { loadKeytrusteeConf } from '../config';
import { createIdentityCaCert, createNodeTlsCert, generateRsaKeyPem } from '../crypto/certificates';
import { keyFingerprint } from '../crypto/fingerprint';
import { connectNodeDb } from '../db/node-db';
import { writeNewMasterKey } from '../keys/file-master-key';
import { holdsCluster } from '../node/existing-data';
import { CONF_FILE, confPaths } from './paths';
import { createReplicationCa } from './replication-ca';
import { fsyncDir, writePublicFile, writeSecretFile } from './secret-files';
import { giveConfdirToServiceAccount } from './service-account';
import { randomBytes } from 'node:crypto';

export interface InitOptions {
  confdir: string;
  host?: string;
  port?: number;
  peers?: string[];
  force?: boolean;
  /**
   * With `force`: refuse (KEYS_IN_USE) when keytrustee.conf names a data directory holding a
   * PostgreSQL cluster, running or not, since its deposits are sealed with the keys `force`
   * would replace. Default true; only a test fixture faking a missed rsync on a passive turns it
   * off (tests/cluster-identity.test.ts). The old keys are kept in `retired-<time>/` either way.
   */
  protectDatabase?: boolean;
  /** Copy the cluster files (everything but .ssl/) from the active's confdir, like the seed's rsync. */
  fromPeerConfdir?: string;
  /** Progress lines for the CLI. */
  onStep?: (message: string) => void;
  /**
   * Ready-made private keys (PKCS#8 PEM) to use instead of generating them when this run makes
   * a new identity: only the test helpers pass them, from a per-run pool, to skip RSA 4096/3072
   * generation. Not exposed on the CLI; everything else (certificates, master key, replication
   * secret, TLS key) is still made fresh.
   */
  keys?: InitKeys;
}

export interface InitKeys {
  identityKeyPem?: string;
  replicationCaKeyPem?: string;
}

export interface InitResult {
  fingerprint: string;
  confdir: string;
  host: string;
  created: string[];
  /** Where the key files this run replaced were moved (`DIR/retired-<time>/`), if any. */
  retiredDir?: string;
}

export type InitErrorCode = 'ALREADY_INITIALIZED' | 'KEYS_IN_USE' | 'NOT_A_CONFDIR';

export class InitError extends Error {
  override name = 'InitError';
  constructor(
    readonly code: InitErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What replacing the keys destroys, in the words of every refusal and of `--force`'s help. */
export const KEY_LOSS_CONSEQUENCE =
  'deposits sealed with this master key would become unreadable; clients registered with this identity would stop validating';

/**
 * Creates a confdir: keytrustee.conf, the cluster identity key + CA certificate (RSA 4096),
 * the master key, the replication secret, the replication CA (RSA 3072, authenticates the
 * PostgreSQL link), and this node's TLS key + self-signed certificate.
 * A confdir already holding an identity is refused unless `force`; a copied confdir (the
 * passive after rsync --exclude .ssl) keeps its identity and only gets its own .ssl/.
 * Key material is never overwritten in place: files a run replaces are first moved to
 * `retired-<time>/` (0700, files keep 0600), so a mistaken `--force` can be undone by hand.
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
  await assertMayInit(opts);

  let retiredDir: string | undefined;
  const retire = (files: string[]) => {
    retiredDir ??= makeRetiredDir(opts.confdir, new Date());
    retireFiles(opts.confdir, retiredDir, files);
  };
  if (opts.fromPeerConfdir) {
    // The peer's keys again (a re-copy): nothing to keep. Different ones are kept, not dropped.
    const src = confPaths(opts.fromPeerConfdir);
    const srcFiles = clusterKeyFiles(src);
    const differing = clusterKeyFiles(p).filter((f, i) => differsFrom(f, srcFiles[i]));
    const mayCopy = existsSync(src.identityKey) && (!existsSync(p.identityKey) || opts.force);
    if (mayCopy && differing.length) retire(differing);
    copyClusterFiles(opts.fromPeerConfdir, opts.confdir, opts.force ?? false);
    step(`copied cluster identity from ${opts.fromPeerConfdir} (without .ssl/)`);
  }
  const hasIdentity = existsSync(p.identityKey);
  const copied = hasIdentity && !existsSync(p.sslDir) && existsSync(p.conf);
  const regenerate = !hasIdentity || (!!opts.force && !opts.fromPeerConfdir && !copied);

  if (regenerate) {
    // Files left by an earlier run (a partial init, or the keys --force replaces) are kept.
    const previous = [...clusterKeyFiles(p), p.sslKey, p.sslCert].filter((f) => existsSync(f));
    if (previous.length) retire(previous);
    step('generating cluster identity key (RSA 4096)…');
    const t0 = Date.now();
    const identityKey = opts.keys?.identityKeyPem ?? (await generateRsaKeyPem(4096));
    writeSecretFile(p.identityKey, identityKey);
    writePublicFile(p.identityCert, createIdentityCaCert(identityKey, `Trustee cluster ${host}`));
    writeNewMasterKey(p.masterKey);
    writeSecretFile(p.replicationSecret, randomBytes(24).toString('base64url') + '\n');
    created.push(p.identityKey, p.identityCert, p.masterKey, p.replicationSecret);
    created.push(...createReplicationCa(opts.confdir, host, opts.keys?.replicationCaKeyPem));
    step(`identity key ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  if (retiredDir) {
    step(
      `the previous keys were moved to ${retiredDir} (not deleted): put them back to read what they sealed`,
    );
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
  return {
    fingerprint: keyFingerprint(readFileSync(p.identityKey)),
    confdir: opts.confdir,
    host,
    created,
    ...(retiredDir ? { retiredDir } : {}),
  };
}

/**
 * Decides, before anything is copied or moved, whether this run may touch the confdir: an
 * initialized one only with `force` (or a peer copy), and with `protectDatabase` never the
 * keys of a node whose database holds a cluster. A copied confdir (identity, no .ssl/) only
 * gets its TLS files, so it is never refused.
 */
async function assertMayInit(opts: InitOptions): Promise<void> {
  const p = confPaths(opts.confdir);
  const hasIdentity = existsSync(p.identityKey);
  const copied = hasIdentity && !existsSync(p.sslDir) && existsSync(p.conf);
  if (hasIdentity && !copied && !opts.force && !opts.fromPeerConfdir) {
    throw new InitError(
      'ALREADY_INITIALIZED',
      `${opts.confdir} is already initialized (identity key present); refusing to overwrite it. ` +
        `Replacing its keys means ${KEY_LOSS_CONSEQUENCE}. --force replaces them only when keytrustee.conf ` +
        `names no database holding a cluster, and keeps the old ones in retired-<time>/.`,
    );
  }
  // A peer copy brings the peer's identity (or fails): it never generates keys here.
  const regenerates = !opts.fromPeerConfdir && (!hasIdentity || (opts.force && !copied));
  if (regenerates && (opts.protectDatabase ?? true) && clusterKeyFiles(p).some((f) => existsSync(f))) {
    await assertNoDatabaseOnKeys(opts.confdir);
  }
}

/** The files both nodes share that seal or prove something: losing one loses data or trust. */
function clusterKeyFiles(p: ReturnType<typeof confPaths>): string[] {
  return [
    p.identityKey,
    p.identityCert,
    p.masterKey,
    p.replicationSecret,
    p.replicationCaKey,
    p.replicationCaCert,
  ];
}

function differsFrom(file: string, other: string): boolean {
  if (!existsSync(file)) return false;
  return !existsSync(other) || !readFileSync(file).equals(readFileSync(other));
}

/**
 * Refuses to replace the keys of a node whose database holds a cluster: every deposit in it is
 * sealed with this master key and every client in it was registered with this identity. The
 * data directory decides, not whether PostgreSQL runs: a stopped database loses its deposits
 * just the same. Counts when the database answers, so the operator sees what is at stake.
 */
async function assertNoDatabaseOnKeys(confdir: string): Promise<void> {
  const file = join(confdir, CONF_FILE);
  if (!existsSync(file)) return;
  const dataDir = (JSON.parse(readFileSync(file, 'utf8')) as { DB_ROOTDIR?: unknown }).DB_ROOTDIR;
  if (typeof dataDir !== 'string' || !holdsCluster(dataDir)) return;
  const counts = await countSealedData(confdir, dataDir);
  const stake =
    typeof counts === 'string'
      ? `${counts}, so its deposits could not be counted: all ${KEY_LOSS_CONSEQUENCE}`
      : `${counts.deposits} ${KEY_LOSS_CONSEQUENCE} (${counts.clients} registered)`;
  throw new InitError(
    'KEYS_IN_USE',
    `refusing to replace the keys of ${confdir}: keytrustee.conf names the database in ${dataDir}, and ` +
      `${stake}. Nothing was changed. To start this node over on purpose, stop its database and move ` +
      `${dataDir} aside first; init --force then keeps the old keys in retired-<time>/.`,
  );
}

/** Sealed deposit versions and clients in the node's database, or why they could not be counted. */
async function countSealedData(
  confdir: string,
  dataDir: string,
): Promise<{ deposits: number; clients: number } | string> {
  if (!readPostmasterPid(dataDir)) return 'PostgreSQL is not running';
  try {
    const db = connectNodeDb(loadKeytrusteeConf(confdir), confdir, { max: 1 });
    try {
      const r = await db.control.query<{ deposits: string; clients: string }>(
        `select (select count(*) from deposits where sealed_value is not null) as deposits,
                (select count(*) from clients) as clients`,
      );
      return { deposits: Number(r.rows[0].deposits), clients: Number(r.rows[0].clients) };
    } finally {
      await db.close();
    }
  } catch (e) {
    return `the database does not answer: ${(e as Error).message}`;
  }
}

/** DIR/retired-<UTC time>/ (0700), a fresh name even when two runs share a second. */
function makeRetiredDir(confdir: string, now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
  for (let n = 1; ; n++) {
    const dir = join(confdir, `retired-${stamp}${n > 1 ? `-${n}` : ''}`);
    try {
      mkdirSync(dir, { mode: 0o700 });
      chmodSync(dir, 0o700);
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/**
 * Moves files (paths inside the confdir) into the retired folder by rename: the same bytes and
 * mode (0600 keys stay 0600), never a copy that could be left half-written. Both directories
 * are fsynced so the move survives a crash before the new keys are written.
 */
function retireFiles(confdir: string, retiredDir: string, files: string[]): void {
  const dirs = new Set([confdir, retiredDir]);
  for (const f of files) {
    const to = join(retiredDir, relative(confdir, f));
    mkdirSync(join(to, '..'), { recursive: true, mode: 0o700 });
    renameSync(f, to);
    dirs.add(join(f, '..')).add(join(to, '..'));
  }
  for (const d of dirs) fsyncDir(d);
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
    throw new InitError(
      'NOT_A_CONFDIR',
      `${from} holds no cluster identity key; is it an initialized confdir?`,
    );
  if (existsSync(dst.identityKey) && !force) {
    throw new InitError(
      'ALREADY_INITIALIZED',
      `${to} already holds an identity key; use --force to replace it with the peer's (the current keys are kept in retired-<time>/ when they differ)`,
    );
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
