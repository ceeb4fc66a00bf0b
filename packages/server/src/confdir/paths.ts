import { join } from 'node:path';

export const CONF_FILE = 'keytrustee.conf';

/** Every file of a confdir in one place. `.ssl/` is per node and never copied to the peer. */
export function confPaths(confdir: string) {
  return {
    conf: join(confdir, CONF_FILE),
    /** Cluster identity key (RSA 4096, PEM PKCS#8), shared by both nodes; also the client CA key. */
    identityKey: join(confdir, 'trustee-identity.key'),
    /** Self-signed CA certificate of the identity key. */
    identityCert: join(confdir, 'trustee-identity.crt'),
    /** At-rest master key (32 random bytes, base64) unless an HSM holds it. */
    masterKey: join(confdir, 'trustee-master.key'),
    /** Password of the PostgreSQL replication role, shared by both nodes. */
    replicationSecret: join(confdir, 'trustee-replication.secret'),
    /**
     * CA of the PostgreSQL replication link (RSA 3072, PEM PKCS#8, 0600) and its self-signed
     * certificate, shared by both nodes: each node's PostgreSQL serves a certificate it issued,
     * and each node verifies its peer's against it.
     */
    replicationCaKey: join(confdir, 'trustee-replication-ca.key'),
    replicationCaCert: join(confdir, 'trustee-replication-ca.crt'),
    sslDir: join(confdir, '.ssl'),
    sslCert: join(confdir, '.ssl', 'ssl-cert-keytrustee.pem'),
    sslKey: join(confdir, '.ssl', 'ssl-cert-keytrustee-pk.pem'),
    /** The Key HSM service's certificate, pinned by `ktadmin keyhsm --trust` (the seed's path). */
    keyHsmCert: join(confdir, '.ssl', 'ssl-cert-keyhsm.pem'),
    keyHsmPassphrase: join(confdir, '.ssl', 'keyhsm-client-key.pass'),
  };
}

/** The pid file of keytrusteed: DIR/../keytrusteed.pid (DESIGN.md). */
export function pidFilePath(confdir: string): string {
  return join(confdir, '..', 'keytrusteed.pid');
}
