/**
 * Issue 10, finding 4: the replication link authenticates the active. Each node's PostgreSQL
 * serves a certificate issued by the cluster's replication CA (made at `ktadmin init`, copied
 * with the confdir); the passive connects with sslmode=verify-full and channel_binding=require,
 * so a relay or impostor with any other certificate gets no WAL stream and no base backup.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  readPostmasterPid,
  renderAutoConf,
  renderConninfo,
  startPostgres,
  stopPostgres,
} from '@trustee/replicator';
import {
  bootstrapPassiveDb,
  initConfdir,
  nodeInstance,
  setupLocalCluster,
  stopLocalDatabases,
} from '@trustee/server';
import { parseConfValue, parseConninfo } from '../packages/replicator/src/postgres/standby-config';
import { confPaths } from '../packages/server/src/confdir/paths';
import {
  createReplicationCaCert,
  generateRsaKeyPemSync,
  issueServerCert,
} from '../packages/server/src/crypto/certificates';
import { dbTlsFiles } from '../packages/server/src/node/db-tls';
import { useTestCluster } from '../packages/server/test/support/cluster';
import { freePort } from '../packages/server/test/support/ports';
import { withSuperuser } from '../packages/server/test/support/psql';
import { trackPid, untrackPid, waitFor } from '../packages/server/test/support/processes';

interface WalSender {
  pid: number;
  application_name: string;
  state: string;
  ssl: boolean;
  version: string;
}

describe('replication link TLS (issue 10, finding 4)', () => {
  const fixture = useTestCluster();

  const walSenders = (): Promise<WalSender[]> =>
    withSuperuser(fixture.cluster.a, async (c) => {
      const r = await c.query<WalSender>(
        `select r.pid, r.application_name, r.state, s.ssl, s.version
           from pg_stat_replication r join pg_stat_ssl s using (pid)`,
      );
      return r.rows;
    });

  /** The passive's PostgreSQL log (all files), where the walreceiver reports why it cannot connect. */
  const passiveLog = (): string => {
    const dir = join(fixture.cluster.b.dbDir, 'log');
    return readdirSync(dir)
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('');
  };

  /**
   * Serves `certPem`/`keyPem` from the active's PostgreSQL (reload), drops the passive's
   * connection so it must connect again, runs `check`, then puts the real files back and waits
   * until the passive streams over TLS again.
   */
  async function withActiveCertificate(certPem: string, keyPem: string, check: () => Promise<void>) {
    const files = dbTlsFiles(fixture.cluster.a.dbDir);
    const saved = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
    const reloadAndKick = () =>
      withSuperuser(fixture.cluster.a, async (c) => {
        await c.query('select pg_reload_conf()');
        // The reload applies to new connections only; the SSL context is re-read by then.
        await new Promise((r) => setTimeout(r, 500));
        await c.query('select pg_terminate_backend(pid) from pg_stat_replication');
      });
    try {
      writeFileSync(files.key, keyPem);
      writeFileSync(files.cert, certPem);
      await reloadAndKick();
      await check();
    } catch (e) {
      throw new Error(`${(e as Error).message}\npassive log tail:\n${passiveLog().slice(-3000)}`);
    } finally {
      writeFileSync(files.key, saved.key);
      writeFileSync(files.cert, saved.cert);
      await reloadAndKick();
      await waitFor(
        'the passive streams again with the real certificate',
        async () => (await walSenders()).some((w) => w.state === 'streaming' && w.ssl),
        60_000,
        250,
      );
    }
  }

  it('streams WAL over TLS, verified against the cluster CA with channel binding required', async () => {
    const { a, b } = fixture.cluster;
    const senders = await waitFor('a walsender for the passive', async () => {
      const w = await walSenders();
      return w.some((s) => s.state === 'streaming') ? w : undefined;
    });
    const stream = senders.filter((s) => s.state === 'streaming');
    expect(stream).toHaveLength(1);
    expect(stream[0].ssl).toBe(true);
    expect(stream[0].version).toMatch(/^TLSv1\.[23]$/);

    const files = dbTlsFiles(b.dbDir);
    const receiver = await withSuperuser(b, async (c) => {
      const r = await c.query<{ status: string; conninfo: string; primary_conninfo: string }>(
        `select status, conninfo, current_setting('primary_conninfo') as primary_conninfo from pg_stat_wal_receiver`,
      );
      return r.rows[0];
    });
    expect(receiver.status).toBe('streaming');
    for (const info of [receiver.primary_conninfo, receiver.conninfo]) {
      expect(info).toContain('sslmode=verify-full');
      expect(info).toContain(`sslrootcert=${files.ca}`);
      expect(info).toContain('channel_binding=require');
    }

    // Both nodes hold the same CA (copied with the confdir); each serves its own certificate.
    const caA = readFileSync(confPaths(a.confdir).replicationCaCert, 'utf8');
    expect(readFileSync(confPaths(b.confdir).replicationCaCert, 'utf8')).toBe(caA);
    expect(readFileSync(files.ca, 'utf8')).toBe(caA);
    expect(statSync(confPaths(a.confdir).replicationCaKey).mode & 0o777).toBe(0o600);
    const certA = readFileSync(dbTlsFiles(a.dbDir).cert, 'utf8');
    expect(certA).not.toBe(readFileSync(files.cert, 'utf8'));

    // Next to the data directory (never copied by base backups or pg_rewind), owned by the
    // PostgreSQL account, private; the key is not encrypted, so no passphrase command is needed.
    const runAs = nodeInstance({ confdir: b.confdir }).runAs;
    expect(files.dir.startsWith(`${b.dbDir}/`)).toBe(false);
    expect(existsSync(join(b.dbDir, 'server.key'))).toBe(false);
    expect(statSync(files.dir).mode & 0o777).toBe(0o700);
    for (const f of [files.key, files.cert, files.ca]) {
      const st = statSync(f);
      expect({ f, mode: st.mode & 0o777 }).toEqual({ f, mode: 0o600 });
      if (runAs) expect({ f, uid: st.uid }).toEqual({ f, uid: runAs.uid });
    }
    expect(readFileSync(files.key, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('a passive refuses to stream from an active whose certificate comes from another CA', async () => {
    const foreignCaKey = generateRsaKeyPemSync(2048);
    const foreignCa = createReplicationCaCert(foreignCaKey, 'impostor CA');
    const keyPem = generateRsaKeyPemSync(2048);
    const certPem = issueServerCert({
      keyPem,
      names: ['localhost', '127.0.0.1', '::1'],
      caCertPem: foreignCa,
      caKeyPem: foreignCaKey,
    });
    const logBefore = passiveLog().length;
    await withActiveCertificate(certPem, keyPem, async () => {
      const why = await waitFor(
        'the passive logs why it refuses the active',
        () => /certificate verify failed/.exec(passiveLog().slice(logBefore))?.[0],
        60_000,
        250,
      );
      expect(why).toBe('certificate verify failed');
      // Nothing streams meanwhile: no walsender reaches "streaming" with the impostor's certificate.
      expect((await walSenders()).filter((w) => w.state === 'streaming')).toEqual([]);
    });
  });

  it('a passive refuses to stream from an active whose certificate does not name the address it dials', async () => {
    const ca = confPaths(fixture.cluster.a.confdir);
    const keyPem = generateRsaKeyPemSync(2048);
    // The cluster's own CA, but for another host: verify-full checks the name, not just the issuer.
    const certPem = issueServerCert({
      keyPem,
      names: ['kt99.example.com', '192.0.2.99'],
      caCertPem: readFileSync(ca.replicationCaCert, 'utf8'),
      caKeyPem: readFileSync(ca.replicationCaKey, 'utf8'),
    });
    const logBefore = passiveLog().length;
    await withActiveCertificate(certPem, keyPem, async () => {
      const why = await waitFor(
        'the passive logs the name mismatch',
        () =>
          /server certificate for .* does not match host name "127\.0\.0\.1"/.exec(
            passiveLog().slice(logBefore),
          )?.[0],
        60_000,
        250,
      );
      expect(why).toMatch(/kt99\.example\.com|192\.0\.2\.99/);
      expect((await walSenders()).filter((w) => w.state === 'streaming')).toEqual([]);
    });
  });

  it('a base backup from an active of another cluster (another CA) fails before copying anything', async () => {
    const { a, home } = fixture.cluster;
    const confdir = join(home, 'node-c', 'confdir');
    // A confdir with its own CA but the right replication password: only the certificate is wrong.
    await initConfdir({ confdir, host: 'localhost', port: await freePort(), peers: [a.url] });
    writeFileSync(confPaths(confdir).replicationSecret, readFileSync(confPaths(a.confdir).replicationSecret));
    const dbDir = join(home, 'node-c', 'db');
    await expect(
      bootstrapPassiveDb({
        confdir,
        pgRootdir: dbDir,
        port: await freePort(),
        master: `localhost:${a.dbPort}`,
      }),
    ).rejects.toThrow(/certificate verify failed[\s\S]*not issued by this cluster's replication CA/);
    expect(existsSync(join(dbDir, 'PG_VERSION'))).toBe(false);

    // Without the CA files a passive stops before PostgreSQL, naming what to copy.
    rmSync(confPaths(confdir).replicationCaKey);
    rmSync(confPaths(confdir).replicationCaCert);
    expect(() => nodeInstance({ confdir, pgRootdir: dbDir, prepareTls: true })).toThrow(
      /has no replication CA \(.*trustee-replication-ca\.crt and .*trustee-replication-ca\.key\).*copy both files from the active's confdir/,
    );
  });

  it('a passive set up before the CA existed verifies its active from its next start', async () => {
    const { b } = fixture.cluster;
    const autoConf = join(b.dbDir, 'postgresql.auto.conf');
    const oldPid = readPostmasterPid(b.dbDir);
    await stopPostgres(nodeInstance({ confdir: b.confdir }));
    if (oldPid) untrackPid(oldPid);
    // What the code before the CA wrote on loopback: no TLS parameters at all.
    const text = readFileSync(autoConf, 'utf8');
    const line =
      text
        .split('\n')
        .filter((l) => /^primary_conninfo/.test(l))
        .pop() ?? '';
    const legacy = parseConninfo(parseConfValue(line.slice(line.indexOf('=') + 1))).filter(
      ([k]) => !['sslmode', 'sslrootcert', 'channel_binding'].includes(k),
    );
    writeFileSync(
      autoConf,
      renderAutoConf(text, { primary_conninfo: renderConninfo(Object.fromEntries(legacy)) }),
    );
    expect(readFileSync(autoConf, 'utf8')).not.toContain('verify-full');

    await startPostgres(nodeInstance({ confdir: b.confdir, prepareTls: true }));
    const pid = readPostmasterPid(b.dbDir);
    if (pid) trackPid(pid);
    const receiver = await waitFor(
      'the upgraded passive streams',
      () =>
        withSuperuser(b, async (c) => {
          const r = await c.query<{ status: string; conninfo: string }>(
            'select status, conninfo from pg_stat_wal_receiver',
          );
          return r.rows[0]?.status === 'streaming' ? r.rows[0] : undefined;
        }),
      60_000,
      250,
    );
    expect(receiver.conninfo).toContain('sslmode=verify-full');
    expect(receiver.conninfo).toContain('channel_binding=require');
    expect((await walSenders()).filter((w) => w.state === 'streaming').map((w) => w.ssl)).toEqual([true]);
  });
  it('npm start reusing a state made before the CA: creates it on node-a, copies it to node-b, and the passive streams verified', async () => {
    const { cluster } = fixture;
    const { a, b } = cluster;
    await stopLocalDatabases(cluster);
    for (const n of [a, b]) {
      const p = confPaths(n.confdir);
      rmSync(p.replicationCaKey, { force: true });
      rmSync(p.replicationCaCert, { force: true });
      rmSync(dirname(dbTlsFiles(n.dbDir).cert), { recursive: true, force: true });
    }
    const steps: string[] = [];
    await setupLocalCluster({
      home: cluster.home,
      apiPorts: [a.apiPort, b.apiPort],
      dbPorts: [a.dbPort, b.dbPort],
      onStep: (m) => steps.push(m),
    });
    for (const n of [a, b]) {
      const pid = readPostmasterPid(n.dbDir);
      if (pid) trackPid(pid);
    }
    expect(steps.join('\n')).toContain('predates the replication CA');
    const [caA, caB] = [a, b].map((n) => readFileSync(confPaths(n.confdir).replicationCaCert, 'utf8'));
    expect(caB).toBe(caA);
    expect(statSync(confPaths(b.confdir).replicationCaKey).mode & 0o777).toBe(0o600);
    await waitFor(
      'the passive streams over verified TLS again',
      async () => (await walSenders()).some((w) => w.state === 'streaming' && w.ssl),
      60_000,
      250,
    );
  });
});
