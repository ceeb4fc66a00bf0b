/**
 * `db --bootstrap` over a data directory that already holds a cluster (DESIGN.md "Losing a
 * node"): the seed's "restore the active from the passive" (a copy of the passive's data
 * directory, with or without recovery.conf / standby.signal) and adding HA to a running
 * standalone node (admin guide, HA step 1b) both end here, without re-initialising anything.
 * A copy of a passive is promoted (a new timeline, so the old active can never be mistaken for
 * its continuation); a primary is kept as it is.
 */
import {
  clearStandbyConfig,
  createPgInstance,
  hasStandbyConfig,
  isRecoveryState,
  promoteStandby,
  readControlData,
  parsePostmasterPidFile,
  readPostmasterPid,
  readTimeline,
  setSyncStandby,
  startPostgres,
  stopPostgres,
  takeBasebackup,
  type PgInstance,
} from '@trustee/replicator';
import { chownSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadKeytrusteeConf, resolveConfPath } from '../config';
import { updateKeytrusteeConf } from '../confdir/update-conf';
import {
  addStandbyOnActive,
  isEmptyDir,
  moveAside,
  listenFor,
  nodeInstance,
  parseHostPort,
  replicationPassword,
  standbyNameFor,
} from './bootstrap-db';
import { FailoverRefused } from './failover';
import { updateHaState } from './ha-state-file';

type Step = (message: string) => void;

/** The data directory holds a PostgreSQL cluster. */
export function holdsCluster(dataDir: string): boolean {
  return existsSync(join(dataDir, 'PG_VERSION'));
}

/**
 * Removes a postmaster.pid that is not a live postmaster of this directory: one copied from
 * another host or directory (line 2 names another data dir), or left by a crash. True if removed.
 */
function removeForeignPidFile(dataDir: string): boolean {
  const file = join(dataDir, 'postmaster.pid');
  if (!existsSync(file)) return false;
  const ours = parsePostmasterPidFile(readFileSync(file, 'utf8'))?.dataDir === dataDir;
  if (ours && readPostmasterPid(dataDir)) return false;
  rmSync(file);
  return true;
}

/** Copied files may belong to root (rsync/cp by an operator): PostgreSQL must own its data. */
function chownTree(dir: string, inst: PgInstance): void {
  if (!inst.runAs) return;
  const { uid, gid } = inst.runAs;
  const walk = (d: string) => {
    chownSync(d, uid, gid);
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else chownSync(p, uid, gid);
    }
  };
  walk(dir);
}

/**
 * Turns a stopped copy of a passive into a primary: clear its standby settings, start it in
 * recovery with no upstream (it replays the WAL it has), then promote it onto a new timeline.
 */
async function promoteCopy(inst: PgInstance, step: Step): Promise<void> {
  removeForeignPidFile(inst.dataDir);
  const cleared = clearStandbyConfig(inst);
  if (cleared.length)
    step(`removed the passive's standby settings (${cleared.map((f) => f.split('/').pop()).join(', ')})`);
  const signal = join(inst.dataDir, 'standby.signal');
  writeFileSync(signal, '', { mode: 0o600 });
  if (inst.runAs) chownSync(signal, inst.runAs.uid, inst.runAs.gid);
  step('starting the copied data in recovery (no upstream) to replay its WAL…');
  await startPostgres(inst);
  const r = await promoteStandby(inst);
  step(`promoted the copy: timeline ${r.fromTimeline} -> ${r.toTimeline} in ${r.elapsedMs} ms`);
}

/**
 * A confdir copied from the passive (the seed's rsync of .keytrustee) describes the passive:
 * its HOST/PORT are the passive's and its PEERS[0] is this node. Swap them so this node serves as
 * itself. Recognised by REPLICATION_MASTER being set while --slave names the confdir's own host
 * and database port.
 */
function adoptCopiedConf(confdir: string, slave: string, step: Step): void {
  const conf = loadKeytrusteeConf(confdir);
  const s = parseHostPort(slave);
  if (!conf.REPLICATION_MASTER || s.host !== conf.HOST || s.port !== conf.DB_PORT || !conf.PEERS[0]) return;
  const me = new URL(conf.PEERS[0]);
  const self = { HOST: me.hostname, PORT: Number(me.port || 11371) };
  updateKeytrusteeConf(confdir, {
    ...self,
    PEERS: [`https://${conf.HOST}:${conf.PORT}`],
    REPLICATION_MASTER: undefined,
  });
  // The passive's own HA history (a fence, a single-node permission) does not describe this node.
  updateHaState(confdir, (h) => ({ promotions: h.promotions }));
  step(
    `keytrustee.conf was copied from the passive ${conf.HOST}: this node is now ${self.HOST}:${self.PORT} with peer https://${conf.HOST}:${conf.PORT}`,
  );
  const sslCert = resolveConfPath(confdir, conf.SSL_CERTIFICATE);
  if (!existsSync(sslCert)) {
    throw new FailoverRefused(
      `${sslCert} is missing (the copy excluded .ssl/, as it should): create this node's TLS certificate with ` +
        `ktadmin --confdir ${confdir} init --host ${self.HOST} --port ${self.PORT} (it keeps the copied identity), then run this command again`,
    );
  }
}

/**
 * `db --bootstrap [--slave H2]` on a data directory that already holds a cluster: promote it if
 * it is a copy of a passive, start it if stopped, then prepare replication for H2 (role, pg_hba,
 * slot, synchronous name). Idempotent: the seed runs the same command twice.
 */
export async function bootstrapActiveOnExistingData(opts: {
  confdir: string;
  pgRootdir: string;
  port?: number;
  slave?: string;
  onStep?: Step;
}): Promise<PgInstance> {
  const step = opts.onStep ?? (() => undefined);
  if (opts.slave) adoptCopiedConf(opts.confdir, opts.slave, step);
  const listen = opts.slave ? listenFor(parseHostPort(opts.slave).host) : undefined;
  const inst = nodeInstance({
    confdir: opts.confdir,
    pgRootdir: opts.pgRootdir,
    port: opts.port,
    listenAddresses: listen,
    prepareTls: true,
    defineReplicationCa: true,
  });
  const running = readPostmasterPid(inst.dataDir) !== undefined && !removeForeignPidFile(inst.dataDir);
  let promoted = false;
  if (!running) {
    chownTree(inst.dataDir, inst);
    const control = await readControlData(inst);
    if (hasStandbyConfig(inst.dataDir) || isRecoveryState(control.state)) {
      step(
        `${inst.dataDir} is a copy of a passive (${control.state}, timeline ${control.timeline ?? '?'}); making it the active`,
      );
      await promoteCopy(inst, step);
      promoted = true;
    } else {
      step(`${inst.dataDir} holds a stopped primary (${control.state}); starting it`);
      await startPostgres(inst);
    }
  } else {
    const t = await readTimeline(inst);
    if (t.inRecovery) {
      throw new FailoverRefused(
        `PostgreSQL in ${inst.dataDir} is running as a passive; stop it first (ktadmin db --stop) or promote it (ktadmin promote)`,
      );
    }
    if (
      listen &&
      listen !== '127.0.0.1' &&
      inst.listenAddresses !== loadKeytrusteeConf(opts.confdir).DB_LISTEN_ADDRESSES
    ) {
      step('restarting PostgreSQL to listen for the passive (with TLS)…');
      await stopPostgres(inst);
      await startPostgres(inst);
    }
    step(`${inst.dataDir} holds a running active; keeping its data`);
  }
  updateKeytrusteeConf(opts.confdir, {
    DB_ROOTDIR: inst.dataDir,
    DB_PORT: inst.port,
    DB_LISTEN_ADDRESSES: inst.listenAddresses,
    REPLICATION_MASTER: undefined,
  });
  if (opts.slave) {
    const r = await addStandbyOnActive({ confdir: opts.confdir, slave: opts.slave, onStep: step });
    // A promoted copy is a two-node active at once, as after `promote`: commits need the passive
    // (the gate refuses writes until it streams). A standalone node keeps writing until the
    // operator runs enable-synchronous-replication (admin guide, HA step 1b).
    if (promoted) await setSyncStandby(inst, r.standbyName);
  }
  return inst;
}

/**
 * `ktadmin restore --from-passive H[:PORT]`: a new active from the passive's data in one command
 * (base backup streamed from the standby, promoted onto a new timeline, replication prepared for
 * the passive, which follows the new timeline on its own).
 */
export async function restoreFromPassive(opts: {
  confdir: string;
  passive: string;
  pgRootdir: string;
  port?: number;
  force?: boolean;
  onStep?: Step;
}): Promise<{ inst: PgInstance; movedAside?: string; elapsedMs: number }> {
  const step = opts.onStep ?? (() => undefined);
  const t0 = Date.now();
  const { host, port } = parseHostPort(opts.passive);
  const conf = loadKeytrusteeConf(opts.confdir);
  const inst = createPgInstance({
    dataDir: opts.pgRootdir,
    port: opts.port ?? conf.DB_PORT,
    listenAddresses: listenFor(host),
  });
  let movedAside: string | undefined;
  if (!isEmptyDir(inst.dataDir)) {
    if (readPostmasterPid(inst.dataDir) && !removeForeignPidFile(inst.dataDir)) {
      throw new FailoverRefused(
        `PostgreSQL is running in ${inst.dataDir}; stop it first (ktadmin db --stop)`,
      );
    }
    if (!opts.force) {
      throw new FailoverRefused(
        `${inst.dataDir} is not empty; use --force to keep it aside and restore over it`,
      );
    }
    movedAside = moveAside(inst.dataDir);
    step(`old data directory kept as ${movedAside}`);
  }
  step(`copying the passive's data from ${host}:${port} (base backup from the standby)…`);
  await takeBasebackup(inst, {
    primaryHost: host === 'localhost' ? '127.0.0.1' : host,
    primaryPort: port,
    standbyName: `${standbyNameFor(conf.HOST, inst.port)}_restore`,
    password: replicationPassword(opts.confdir),
    backupSlot: null,
    configureStandby: false,
  });
  await bootstrapActiveOnExistingData({
    confdir: opts.confdir,
    pgRootdir: inst.dataDir,
    port: inst.port,
    slave: opts.passive,
    onStep: step,
  });
  return { inst, movedAside, elapsedMs: Date.now() - t0 };
}
