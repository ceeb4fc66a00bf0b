/**
 * Losing a node (DESIGN.md "Losing a node: recovery and promotion"): the operator commands that
 * bring writes back. PostgreSQL actions are the replicator's; this module sequences them, checks
 * the guards (never two actives), and records what happened in keytrustee.conf / ha-state.json.
 */
import {
  bootstrapActiveReplication,
  promoteStandby,
  readPostmasterPid,
  readTimeline,
  rewindFrom,
  setSyncStandby,
  startPostgres,
  stopPostgres,
  takeBasebackup,
  writeStandbyConfig,
  connectLocal,
  type PgInstance,
  type PromoteResult,
} from '@trustee/replicator';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { loadKeytrusteeConf, type KeytrusteeConf } from '../config';
import { updateKeytrusteeConf } from '../confdir/update-conf';
import {
  isEmptyDir,
  moveAside,
  nodeInstance,
  parseHostPort,
  replicationPassword,
  standbyNameFor,
} from './bootstrap-db';
import { readHaState, updateHaState } from './ha-state-file';
import { probePeer } from './peer-probe';

type Step = (message: string) => void;
const SECOND_MS = 1000;

/** A guard refused the command: exit 1 with this message, nothing changed. */
export class FailoverRefused extends Error {
  override name = 'FailoverRefused';
}

/** Resolves when a TCP connection to host:port succeeds (true) or fails / times out (false). */
export function tcpAnswers(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The peer's PostgreSQL address as this node knows it (its master, or the passive it prepared). */
function peerDbAddress(conf: KeytrusteeConf): string | undefined {
  return (conf.REPLICATION_MASTER as string | undefined) ?? (conf.REPLICATION_SLAVE as string | undefined);
}

/**
 * Why the peer must be considered alive, or undefined when it answers neither on its API nor on
 * its PostgreSQL (the operator's declaration that it is dead is then plausible).
 */
export async function livePeerEvidence(conf: KeytrusteeConf): Promise<string | undefined> {
  const url = conf.PEERS[0];
  if (url) {
    const o = await probePeer(url, 2000);
    if (o.reachable) return `the peer answers on its API at ${url} (role ${o.role ?? 'unknown'})`;
  }
  const db = peerDbAddress(conf);
  if (db) {
    const { host, port } = parseHostPort(db);
    if (await tcpAnswers(host === 'localhost' ? '127.0.0.1' : host, port)) {
      return `the peer's PostgreSQL accepts connections at ${host}:${port}`;
    }
  }
  return undefined;
}

async function walReceiverStatus(inst: PgInstance): Promise<string | undefined> {
  const c = await connectLocal(inst, 'postgres');
  try {
    const { rows } = await c.query<{ status: string }>('select status from pg_stat_wal_receiver');
    return rows[0]?.status;
  } finally {
    await c.end();
  }
}

async function assertRunning(inst: PgInstance, confdir: string): Promise<void> {
  if (!readPostmasterPid(inst.dataDir)) {
    throw new FailoverRefused(
      `PostgreSQL of this node (${inst.dataDir}) is not running; start it first: ktadmin --confdir ${confdir} db --start --background`,
    );
  }
}

export interface PromoteOutcome extends PromoteResult {
  standbyName: string | undefined;
  host: string;
  dbPort: number;
}

/**
 * `ktadmin promote`: on the passive, when the active is lost. Refuses while the old active
 * answers (unless forced), promotes PostgreSQL (new timeline), prepares replication for the old
 * active's return (slot, pg_hba, synchronous name) and records the promotion. Writes stay
 * refused (strict) until a passive streams again.
 */
export async function promoteNode(opts: {
  confdir: string;
  force?: boolean;
  onStep?: Step;
}): Promise<PromoteOutcome> {
  const step = opts.onStep ?? (() => undefined);
  const conf = loadKeytrusteeConf(opts.confdir);
  const inst = nodeInstance({ confdir: opts.confdir });
  await assertRunning(inst, opts.confdir);
  const before = await readTimeline(inst);
  if (!before.inRecovery) {
    throw new FailoverRefused(
      `this node is already active (PostgreSQL is not in recovery, timeline ${before.timeline}); nothing to promote`,
    );
  }
  const receiver = await walReceiverStatus(inst);
  const evidence =
    receiver === 'streaming'
      ? `this passive still streams WAL from the active (${String(conf.REPLICATION_MASTER ?? 'its master')})`
      : await livePeerEvidence(conf);
  if (evidence && !opts.force) {
    throw new FailoverRefused(
      `refusing to promote: ${evidence}. Promoting now would make two actives. ` +
        'Stop the old active first (or, if you are sure it is dead and fenced off, use --force).',
    );
  }
  if (evidence) step(`WARNING: ${evidence}; promoting anyway (--force)`);
  step(`promoting PostgreSQL in ${inst.dataDir} (timeline ${before.timeline})…`);
  const result = await promoteStandby(inst);
  step(`promoted: timeline ${result.fromTimeline} -> ${result.toTimeline} in ${result.elapsedMs} ms`);
  const master = conf.REPLICATION_MASTER as string | undefined;
  let standbyName: string | undefined;
  if (master) {
    // The old active will come back as this node's passive: slot, pg_hba and its synchronous name now.
    const { host, port } = parseHostPort(master);
    standbyName = standbyNameFor(host, port);
    const r = await bootstrapActiveReplication(inst, {
      standbyName,
      peerAddress: host === 'localhost' ? '127.0.0.1' : host,
      password: replicationPassword(opts.confdir),
    });
    await setSyncStandby(inst, standbyName);
    step(
      `replication prepared for the old active ${master} (slot ${r.slotName}, synchronous name ${standbyName})`,
    );
  }
  updateKeytrusteeConf(opts.confdir, {
    REPLICATION_MASTER: undefined,
    REPLICATION_STANDBY: standbyName,
    REPLICATION_SLAVE: master,
  });
  updateHaState(opts.confdir, (h) => ({
    ...h,
    fenced: undefined,
    promotions: [
      ...(h.promotions ?? []),
      {
        at: new Date().toISOString(),
        fromTimeline: result.fromTimeline,
        toTimeline: result.toTimeline,
        forced: !!evidence,
        by: userInfo().username,
      },
    ],
  }));
  return { ...result, standbyName, host: conf.HOST, dbPort: inst.port };
}

/** Waits until the local standby's WAL receiver streams; returns the wait in ms or throws naming what it saw. */
export async function waitStreaming(inst: PgInstance, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let last: string | undefined;
  while (Date.now() - t0 < timeoutMs) {
    last = await walReceiverStatus(inst).catch((e: Error) => e.message);
    if (last === 'streaming') return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `the passive did not stream within ${timeoutMs / SECOND_MS} s (WAL receiver: ${last ?? 'not running'}); see ${inst.dataDir}/log`,
  );
}

export interface RejoinOutcome {
  method: 'rewind' | 'rebuild';
  elapsedMs: number;
  streamingAfterMs: number;
  movedAside?: string;
}

/**
 * `ktadmin rejoin --master H[:PORT]`: the old active becomes the passive of the promoted node.
 * pg_rewind by default (stop, rewind, standby config, start); `--rebuild` takes a fresh base
 * backup instead, keeping the old data directory aside. Clears this node's fence.
 */
export async function rejoinNode(opts: {
  confdir: string;
  master: string;
  rebuild?: boolean;
  force?: boolean;
  onStep?: Step;
}): Promise<RejoinOutcome> {
  const step = opts.onStep ?? (() => undefined);
  const t0 = Date.now();
  const conf = loadKeytrusteeConf(opts.confdir);
  const { host, port } = parseHostPort(opts.master);
  const primaryHost = host === 'localhost' ? '127.0.0.1' : host;
  const inst = nodeInstance({ confdir: opts.confdir, prepareTls: true });
  if (!opts.force && conf.PEERS[0]) {
    const peer = await probePeer(conf.PEERS[0], 2000);
    if (peer.reachable && peer.role !== 'active') {
      throw new FailoverRefused(
        `the peer at ${conf.PEERS[0]} says it is ${peer.role ?? 'unknown'}, not active; promote it first (ktadmin promote on that node), or use --force`,
      );
    }
  }
  if (!(await tcpAnswers(primaryHost, port))) {
    throw new FailoverRefused(
      `the new active's PostgreSQL at ${host}:${port} does not answer; start it first`,
    );
  }
  const standbyName = standbyNameFor(conf.HOST, inst.port);
  const password = replicationPassword(opts.confdir);
  if (readPostmasterPid(inst.dataDir)) {
    step(`stopping PostgreSQL in ${inst.dataDir}…`);
    await stopPostgres(inst).catch(() => stopPostgres(inst, { mode: 'immediate' }));
  }
  let method: RejoinOutcome['method'] = opts.rebuild ? 'rebuild' : 'rewind';
  let movedAside: string | undefined;
  if (!opts.rebuild && !isEmptyDir(inst.dataDir)) {
    step(`pg_rewind from ${host}:${port}…`);
    const r = await rewindFrom(inst, { sourceHost: primaryHost, sourcePort: port, password }).catch(
      (e: unknown) => {
        const code = (e as { code?: string }).code;
        throw new FailoverRefused(
          `${(e as Error).message.trim()}\n` +
            (code === 'REWIND_IMPOSSIBLE'
              ? 'pg_rewind cannot join the two histories; '
              : 'pg_rewind did not complete; ') +
            `run again with --rebuild to copy the active afresh (this data directory is then kept aside): ktadmin --confdir ${opts.confdir} rejoin --master ${opts.master} --rebuild`,
        );
      },
    );
    step(`pg_rewind done in ${r.elapsedMs} ms`);
    writeStandbyConfig(inst, { primaryHost, primaryPort: port, standbyName });
  } else {
    method = 'rebuild';
    if (!isEmptyDir(inst.dataDir)) {
      movedAside = moveAside(inst.dataDir);
      step(`old data directory kept as ${movedAside} (remove it once the pair is healthy)`);
    }
    step(`base backup from ${host}:${port} into ${inst.dataDir}…`);
    await takeBasebackup(inst, { primaryHost, primaryPort: port, standbyName, password, recreateSlot: true });
  }
  step('starting PostgreSQL as passive…');
  await startPostgres(inst);
  const streamingAfterMs = await waitStreaming(inst, 60 * SECOND_MS);
  updateKeytrusteeConf(opts.confdir, {
    REPLICATION_MASTER: `${host}:${port}`,
    REPLICATION_STANDBY: undefined,
    REPLICATION_SLAVE: undefined,
    DB_ROOTDIR: inst.dataDir,
  });
  updateHaState(opts.confdir, (h) => ({ ...h, fenced: undefined, singleNodeWrites: undefined }));
  return { method, elapsedMs: Date.now() - t0, streamingAfterMs, movedAside };
}

/** Parses `30m`, `2h`, `1d`, `90s` (at most 7 days) into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration such as 30m, 2h or 1d`);
  const ms = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'] * SECOND_MS;
  if (ms <= 0 || ms > 7 * 86400 * SECOND_MS) throw new Error(`duration ${text} must be between 1s and 7d`);
  return ms;
}

/**
 * `ktadmin allow-single-node-writes --for DURATION`: on a surviving active whose peer is dead,
 * writes commit on this node alone until the permission expires. Refused while the peer answers.
 */
export async function allowSingleNodeWrites(opts: {
  confdir: string;
  forMs: number;
  now?: number;
}): Promise<{ until: string }> {
  const conf = loadKeytrusteeConf(opts.confdir);
  const inst = nodeInstance({ confdir: opts.confdir });
  await assertRunning(inst, opts.confdir);
  const t = await readTimeline(inst);
  if (t.inRecovery) {
    throw new FailoverRefused(
      `this node is passive; single-node writes apply to an active. Promote it first: ktadmin --confdir ${opts.confdir} promote`,
    );
  }
  const fence = readHaState(opts.confdir).fenced;
  if (fence) {
    throw new FailoverRefused(
      `this node is fenced (its peer was promoted to timeline ${fence.peerTimeline} on ${fence.since}); it must rejoin as a passive, not write alone`,
    );
  }
  const evidence = await livePeerEvidence(conf);
  if (evidence) {
    throw new FailoverRefused(
      `refusing: ${evidence}. Single-node writes are only for a survivor whose peer is dead; with a live peer they would create two histories.`,
    );
  }
  const now = opts.now ?? Date.now();
  const until = new Date(now + opts.forMs).toISOString();
  updateHaState(opts.confdir, (h) => ({
    ...h,
    singleNodeWrites: { until, since: new Date(now).toISOString(), by: userInfo().username },
  }));
  return { until };
}

/** `ktadmin allow-single-node-writes --off`. Returns whether it was on. */
export function disallowSingleNodeWrites(confdir: string): boolean {
  let was = false;
  updateHaState(confdir, (h) => {
    was = !!h.singleNodeWrites;
    return { ...h, singleNodeWrites: undefined };
  });
  return was;
}
