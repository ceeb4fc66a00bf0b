import { readPostmasterPid } from '@trustee/replicator';
import { loadKeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { readSecretFile } from '../confdir/secret-files';
import { keyFingerprint } from '../crypto/fingerprint';
import { connectNodeDb } from '../db/node-db';
import type { DecidedRole, PeerObservation, WriteMode } from './decide';
import { readHaState, type HaState } from './ha-state-file';
import { NodeState, type NodeSnapshot } from './node-state';
import { probePeer } from './peer-probe';

export interface NodeStatus {
  confdir: string;
  host: string;
  port: number;
  peers: string[];
  fingerprint: string;
  db: { rootdir: string | null; port: number; pid: number | null; up: boolean; error?: string };
  /** The node's one decision (the same function the server uses). */
  role: DecidedRole | 'unknown';
  writable: boolean;
  writeMode: WriteMode | null;
  reason: string;
  /** PostgreSQL's own view: primary (active) or in recovery (passive). */
  pgRole: NodeSnapshot['role'];
  timeline: number | null;
  replication: NodeSnapshot['replication'] & { lostSlots: string[] };
  syncStreaming: boolean;
  identity: 'ok' | 'mismatch' | 'unrecorded';
  peer: (PeerObservation & { url: string }) | null;
  ha: HaState;
}

export async function readNodeStatus(confdir: string): Promise<NodeStatus> {
  const conf = loadKeytrusteeConf(confdir);
  const fingerprint = keyFingerprint(readSecretFile(confPaths(confdir).identityKey).toString('utf8'));
  const base = {
    confdir,
    host: conf.HOST,
    port: conf.PORT,
    peers: conf.PEERS,
    fingerprint,
  };
  const pid = conf.DB_ROOTDIR ? (readPostmasterPid(conf.DB_ROOTDIR) ?? null) : null;
  const dbInfo = { rootdir: conf.DB_ROOTDIR ?? null, port: conf.DB_PORT, pid };
  const ha = readHaState(confdir);
  const peerUrl = conf.PEERS[0];
  const down = async (error: string): Promise<NodeStatus> => {
    const peer = peerUrl ? { url: peerUrl, ...(await probePeer(peerUrl, 1500, fingerprint)) } : null;
    return {
      ...base,
      db: { ...dbInfo, up: false, error },
      role: 'unavailable',
      writable: false,
      writeMode: null,
      reason: `the local database does not answer (${error})`,
      pgRole: 'unknown',
      timeline: null,
      replication: {
        state: 'none',
        syncState: 'none',
        lagBytes: null,
        replayLagSeconds: null,
        lostSlots: [],
      },
      syncStreaming: false,
      identity: 'unrecorded',
      peer,
      ha,
    };
  };
  if (!conf.DB_ROOTDIR) return down('not bootstrapped');
  const db = connectNodeDb(conf, confdir, { max: 1 });
  try {
    const ns = new NodeState({
      pool: db.control,
      identityFingerprint: fingerprint,
      requireSyncStandby: conf.PEERS.length > 0,
      peerUrl,
      confdir,
    });
    await ns.probePeerOnce();
    const s = await ns.poll();
    if (!s.dbUp) return await down(s.error ?? 'unreachable');
    const d = ns.decide();
    const peer = ns.peerObservation();
    return {
      ...base,
      db: { ...dbInfo, up: true },
      role: d.role,
      writable: d.writable,
      writeMode: d.writeMode,
      reason: d.reason,
      pgRole: s.role,
      timeline: s.timeline,
      replication: { ...s.replication, lostSlots: s.lostSlots },
      syncStreaming: s.syncStreaming,
      identity: s.identityMatches === null ? 'unrecorded' : s.identityMatches ? 'ok' : 'mismatch',
      peer: peer && peerUrl ? { url: peerUrl, ...peer } : null,
      ha: ns.persistedHaState(),
    };
  } finally {
    await db.close();
  }
}

export function formatNodeStatus(s: NodeStatus): string {
  const lines = [
    `node:         ${s.host}:${s.port} (${s.confdir})`,
    `role:         ${s.role}${s.timeline !== null ? ` (PostgreSQL timeline ${s.timeline})` : ''}`,
    `why:          ${s.reason}`,
    `writes:       ${s.writable ? `accepted (${s.writeMode})` : 'refused'}`,
    `fingerprint:  ${s.fingerprint} (identity ${s.identity})`,
    `database:     ${s.db.up ? 'up' : `down${s.db.error ? ` (${s.db.error})` : ''}`}, port ${s.db.port}, dir ${s.db.rootdir ?? '-'}, pid ${s.db.pid ?? '-'}`,
    `peers:        ${s.peers.join(', ') || '(none: single node)'}${s.peer ? ` — ${s.peer.reachable ? `answers (${s.peer.role ?? '?'}, timeline ${s.peer.timeline ?? '?'})` : 'does not answer'}` : ''}`,
    `replication:  ${s.replication.state}, sync ${s.replication.syncState}, lag ${s.replication.lagBytes ?? '-'} bytes / ${s.replication.replayLagSeconds ?? '-'} s`,
  ];
  if (s.ha.singleNodeWrites)
    lines.push(`single-node:  writes without the passive allowed until ${s.ha.singleNodeWrites.until}`);
  if (s.ha.fenced)
    lines.push(`fenced:       since ${s.ha.fenced.since} (peer on timeline ${s.ha.fenced.peerTimeline})`);
  return lines.join('\n');
}
