import { readPostmasterPid } from '@trustee/replicator';
import { loadKeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { readSecretFile } from '../confdir/secret-files';
import { keyFingerprint } from '../crypto/fingerprint';
import { connectNodeDb } from '../server';
import { readNodeSnapshot, type NodeSnapshot } from './node-state';

export interface NodeStatus {
  confdir: string;
  host: string;
  port: number;
  peers: string[];
  fingerprint: string;
  db: { rootdir: string | null; port: number; pid: number | null; up: boolean; error?: string };
  role: NodeSnapshot['role'];
  replication: NodeSnapshot['replication'];
  syncStreaming: boolean;
  identity: 'ok' | 'mismatch' | 'unrecorded';
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
  if (!conf.DB_ROOTDIR) {
    return {
      ...base,
      db: { ...dbInfo, up: false, error: 'not bootstrapped' },
      role: 'unknown',
      replication: { state: 'none', syncState: 'none', lagBytes: null, replayLagSeconds: null },
      syncStreaming: false,
      identity: 'unrecorded',
    };
  }
  const db = connectNodeDb(conf, confdir, { max: 1 });
  try {
    const s = await readNodeSnapshot(db.control, fingerprint);
    return {
      ...base,
      db: { ...dbInfo, up: true },
      role: s.role,
      replication: s.replication,
      syncStreaming: s.syncStreaming,
      identity: s.identityMatches === null ? 'unrecorded' : s.identityMatches ? 'ok' : 'mismatch',
    };
  } catch (e) {
    return {
      ...base,
      db: { ...dbInfo, up: false, error: (e as Error).message },
      role: 'unknown',
      replication: { state: 'none', syncState: 'none', lagBytes: null, replayLagSeconds: null },
      syncStreaming: false,
      identity: 'unrecorded',
    };
  } finally {
    await db.close();
  }
}

export function formatNodeStatus(s: NodeStatus): string {
  const lines = [
    `node:         ${s.host}:${s.port} (${s.confdir})`,
    `role:         ${s.role}`,
    `fingerprint:  ${s.fingerprint} (identity ${s.identity})`,
    `database:     ${s.db.up ? 'up' : `down${s.db.error ? ` (${s.db.error})` : ''}`}, port ${s.db.port}, dir ${s.db.rootdir ?? '-'}, pid ${s.db.pid ?? '-'}`,
    `peers:        ${s.peers.join(', ') || '(none: single node)'}`,
    `replication:  ${s.replication.state}, sync ${s.replication.syncState}, lag ${s.replication.lagBytes ?? '-'} bytes / ${s.replication.replayLagSeconds ?? '-'} s`,
  ];
  if (s.role === 'active')
    lines.push(
      `writes:       ${s.syncStreaming || s.peers.length === 0 ? 'accepted' : 'refused (no synchronous standby streaming)'}`,
    );
  return lines.join('\n');
}
