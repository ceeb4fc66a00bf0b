import type { PgInstance } from '@trustee/replicator';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { KeytrusteeConf } from '../config';
import { readReplicationCa } from '../confdir/replication-ca';
import { generateRsaKeyPemSync, isServerCertUsable, issueServerCert } from '../crypto/certificates';

/** RSA size of a node's PostgreSQL key (issued at bootstrap/start, so it must be quick: ≈0.1 s). */
const DB_KEY_BITS = 2048;

/** A certificate closer than this to its end is issued again at the next start. */
const RENEW_BEFORE_MS = 30 * 86_400_000;

/**
 * This node's PostgreSQL TLS files: beside the data directory, never inside it (base backups
 * and pg_rewind copy the data directory, and the peer has its own). The directory and files
 * belong to the PostgreSQL OS user; the key is 0600 and not encrypted, so PostgreSQL needs no
 * `ssl_passphrase_command` (whoever can read it can read the data files next to it anyway).
 */
export function dbTlsFiles(dataDir: string) {
  const dir = `${dataDir.replace(/\/+$/, '')}.tls`;
  return {
    dir,
    cert: join(dir, 'server.crt'),
    key: join(dir, 'server.key'),
    /** Copy of the confdir's replication CA certificate, readable by PostgreSQL's walreceiver. */
    ca: join(dir, 'replication-ca.crt'),
  };
}

/**
 * Names the peer may use to reach this node's PostgreSQL, all of which the certificate must
 * carry (verify-full checks the one in `--master`/`rejoin --master`): HOST from keytrustee.conf,
 * the machine's host name, its interface addresses (not link-local), explicit listen addresses,
 * and the loopback names (the local two-node cluster).
 */
export function dbCertNames(
  conf: Pick<KeytrusteeConf, 'HOST'>,
  inst: Pick<PgInstance, 'listenAddresses'>,
): string[] {
  const names = new Set<string>([conf.HOST, hostname()].filter((n): n is string => !!n));
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (!a.internal && !/^fe80:/i.test(a.address)) names.add(a.address);
    }
  }
  for (const a of inst.listenAddresses.split(',').map((s) => s.trim())) {
    if (isIP(a) && a !== '0.0.0.0' && a !== '::') names.add(a);
  }
  for (const n of ['localhost', '127.0.0.1', '::1']) names.add(n);
  return [...names];
}

/**
 * Makes sure this node's PostgreSQL has a certificate issued by the cluster's replication CA
 * for every name in `dbCertNames`, and a current copy of the CA certificate: issued again
 * when missing, issued by another CA, lacking a name, or within 30 days of its end. Throws
 * (ReplicationCaMissingError) when the confdir has no replication CA.
 */
export function prepareDbTls(confdir: string, conf: KeytrusteeConf, inst: PgInstance): void {
  const ca = readReplicationCa(confdir);
  const files = dbTlsFiles(inst.dataDir);
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  own(inst, files.dir, 0o700);
  const names = dbCertNames(conf, inst);
  if (!hasUsableCert(files, ca.certPem, names)) {
    const keyPem = generateRsaKeyPemSync(DB_KEY_BITS);
    const certPem = issueServerCert({
      keyPem,
      names,
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      organizationalUnit: 'Trustee PostgreSQL',
    });
    // A crash between the two renames leaves a key that does not match the certificate: the
    // next start sees that (hasUsableCert) and issues both again.
    writeOwned(inst, files.key, keyPem);
    writeOwned(inst, files.cert, certPem);
  }
  if (!existsSync(files.ca) || readFileSync(files.ca, 'utf8') !== ca.certPem)
    writeOwned(inst, files.ca, ca.certPem);
}

/**
 * PostgreSQL settings for this node's TLS files when they exist (passed on the command line at
 * every start, so a restart without `prepareDbTls` keeps them), and the replication CA the
 * node verifies its peer against (`inst.replicationCa`).
 */
export function dbTlsSettings(inst: PgInstance): Record<string, string> | undefined {
  const files = dbTlsFiles(inst.dataDir);
  if (!existsSync(files.cert) || !existsSync(files.key)) return undefined;
  if (existsSync(files.ca)) inst.replicationCa = files.ca;
  return {
    ssl: 'on',
    ssl_cert_file: files.cert,
    ssl_key_file: files.key,
    ssl_min_protocol_version: 'TLSv1.2',
  };
}

function hasUsableCert(files: ReturnType<typeof dbTlsFiles>, caCertPem: string, names: string[]): boolean {
  if (!existsSync(files.cert) || !existsSync(files.key)) return false;
  const certPem = readFileSync(files.cert, 'utf8');
  if (!isServerCertUsable(certPem, caCertPem, names, RENEW_BEFORE_MS)) return false;
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(readFileSync(files.key)));
  } catch {
    return false;
  }
}

function own(inst: PgInstance, file: string, mode: number): void {
  if (inst.runAs) chownSync(file, inst.runAs.uid, inst.runAs.gid);
  chmodSync(file, mode);
}

/** Writes via a temporary name and a rename, owned by the PostgreSQL user, 0600 from the start. */
function writeOwned(inst: PgInstance, file: string, text: string): void {
  const tmp = `${file}.trustee-tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  own(inst, tmp, 0o600);
  renameSync(tmp, file);
}
